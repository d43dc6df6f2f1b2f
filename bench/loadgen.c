/*
 * wshub benchmark client: one thread, one epoll loop, non-blocking sockets, loopback only.
 * Built by bench/run (cc -O2); the benchmark suite drives it, one JSON line of results on stdout.
 *
 *   loadgen echo    -p PORT -n CONNS -s BYTES -d SECONDS [-w WARMUP]   closed loop, 1 message in flight per conn
 *   loadgen fanout  -p PORT -n SUBS  -s BYTES -d SECONDS [-w WARMUP] -W WINDOW
 *                   1 publisher (connection n+1), up to WINDOW messages not yet received by every subscriber
 *                   [-q PUBPORT]: the publisher connects to PUBPORT instead (another wshub node: cross-node fan-out)
 *                   [-z 1]: offer permessage-deflate; payloads are JSON-like text; compressed copies are counted
 *                   in order (not inflated) and timed from when the publisher sent them
 *   loadgen hold    -p PORT -n CONNS -t SECONDS    open CONNS, print {"ready":..} and hold until -t or SIGTERM
 *   loadgen connect -p PORT -d SECONDS [-c CONCURRENCY]   open, upgrade, close handshake, repeat
 *
 * Common: -H 127.x.y.z (default 127.0.0.1, nothing but loopback accepted) -P /path (default /ws)
 * -A TOKEN: send "Authorization: Bearer TOKEN" with every upgrade (a wshub with --auth=jwt).
 * Client frames are masked with one key per run and pre-built once (header + masked payload); only the
 * 8-16 bytes that identify a message are masked per send. Every phase has a deadline; alarm() backs them up.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define NS 1000000000LL
#define RBUF (256 * 1024)
#define MAXEV 1024

enum { ECHO, FANOUT, HOLD, CONNECT };
enum { C_FREE, C_CONNECTING, C_UPGRADING, C_OPEN, C_CLOSING, C_DONE };

typedef struct {
  int fd;
  uint8_t st, is_pub, want_out, hs_match, hs_ok, hs_seen;
  uint8_t hn, hneed, op, cop, fin, in_payload, ctl_n, pn, awaiting, rsv1, pmd_match;
  uint8_t hdr[14], ctl[125], pfx[16];
  uint32_t usent;
  uint64_t left, mlen, seq;
  int64_t t_sent;
  uint8_t *ob; /* pending output (partial writes, control frames, publisher frames) */
  size_t obn, obcap;
} conn;

static int mode = ECHO, port, pub_port, nconn = 100, concurrency = 64, nsrc = 1, offer_deflate, deflate_conns;
static long msize = 20, window = 16;
static double dur = 5, warm = 1, hold_s = 10;
static const char *host = "127.0.0.1", *path = "/ws";

static int ep;
static conn *cs;
static int ntotal, opened, pending, established, failed, live;
static uint8_t mkey[4], *frame; /* pre-masked data frame: header + payload */
static size_t flen, hlen;
static char upreq[4096];
static const char *bearer = NULL;
static char auth_header[3072];
static int upreq_len;
static struct sockaddr_in dst, pub_dst;
static uint8_t rbuf[RBUF];
static int64_t now_cached;
static int sending, measuring, closing;
static volatile sig_atomic_t stop_req;
static char err1[256];

static uint64_t done_total, meas_n, lost, dups, self_copies, pongs, unexpected, server_closed;
static uint64_t pub_sent, pub_done, *ring, rmask;
static int64_t *sent_at; /* fanout: when each message in the window was published (compressed copies carry no readable timestamp) */
static conn *pub;

/* latency histogram, ns, 64 linear sub-buckets per power of two (~1.5%) */
#define SUB 64
static uint64_t hist[SUB + 58 * SUB], hn_total;
static void hist_add(int64_t v) {
  uint64_t u = v < 0 ? 0 : (uint64_t)v;
  unsigned i;
  if (u < SUB) i = (unsigned)u;
  else {
    int sh = 63 - __builtin_clzll(u) - 6;
    i = SUB + (unsigned)sh * SUB + (unsigned)((u >> sh) & (SUB - 1));
  }
  hist[i]++;
  hn_total++;
}
static double hist_us(double p) {
  if (!hn_total) return 0;
  uint64_t rank = (uint64_t)(p * (double)hn_total), acc = 0;
  if (rank < 1) rank = 1;
  for (unsigned i = 0; i < sizeof hist / sizeof hist[0]; i++) {
    acc += hist[i];
    if (acc >= rank) {
      if (i < SUB) return i / 1000.0;
      unsigned sh = (i - SUB) / SUB, sub = (i - SUB) % SUB;
      return (double)(((uint64_t)(SUB + sub) << sh) + ((1ull << sh) >> 1)) / 1000.0;
    }
  }
  return 0;
}

static int64_t mono(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * NS + t.tv_nsec;
}
static double cpu_s(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return (double)r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + (double)r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}
__attribute__((noreturn)) static void die(const char *fmt, const char *a) {
  fprintf(stderr, "loadgen: error: ");
  fprintf(stderr, fmt, a);
  fputc('\n', stderr);
  exit(1);
}
static void note_err(const char *what) {
  if (!err1[0]) snprintf(err1, sizeof err1, "%s: %s", what, strerror(errno));
}

static void want_out(conn *c, int on) {
  if (c->want_out == on) return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->want_out = (uint8_t)on;
}

static void ob_add(conn *c, const void *p, size_t n) {
  if (c->obn + n > c->obcap) {
    size_t cap = c->obcap ? c->obcap : 256;
    while (cap < c->obn + n) cap *= 2;
    c->ob = realloc(c->ob, cap);
    if (!c->ob) die("%s", "out of memory");
    c->obcap = cap;
  }
  memcpy(c->ob + c->obn, p, n);
  c->obn += n;
}

static void conn_end(conn *c) {
  if (c->st == C_DONE || c->st == C_FREE) return;
  if (c->st == C_CONNECTING || c->st == C_UPGRADING) pending--;
  close(c->fd);
  c->fd = -1;
  c->st = C_DONE;
  live--;
  free(c->ob);
  c->ob = NULL;
  c->obn = c->obcap = 0;
}

static void fail(conn *c, const char *what) {
  if (c->st == C_OPEN && !closing && mode != HOLD && mode != CONNECT) {
    fprintf(stderr, "loadgen: error: connection lost during the run: %s: %s\n", what, strerror(errno));
    exit(1);
  }
  if (c->st == C_CONNECTING || c->st == C_UPGRADING) failed++;
  note_err(what);
  conn_end(c);
}

/* Writes pending bytes; returns 0 if the connection failed. */
static int flush(conn *c) {
  size_t off = 0;
  while (off < c->obn) {
    ssize_t w = send(c->fd, c->ob + off, c->obn - off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      fail(c, "write");
      return 0;
    }
    off += (size_t)w;
  }
  memmove(c->ob, c->ob + off, c->obn - off);
  c->obn -= off;
  want_out(c, c->obn > 0);
  return 1;
}

/* Sends the pre-built data frame with `id` (8 bytes) masked into the start of the payload.
   With `batch`, the frame is only appended to the output buffer (the caller flushes once). */
static void send_data_b(conn *c, uint64_t id, int64_t ts, int batch) {
  uint8_t head[32], idb[16];
  size_t idn = msize < 8 ? (size_t)msize : 8;
  memcpy(idb, &id, 8);
  if (mode == FANOUT) memcpy(idb + 8, &ts, 8), idn = 16;
  memcpy(head, frame, hlen);
  for (size_t i = 0; i < idn; i++) head[hlen + i] = idb[i] ^ mkey[i & 3];
  size_t headn = hlen + idn, restn = flen - headn;
  if (c->obn || batch) { /* keep order behind pending bytes */
    ob_add(c, head, headn);
    ob_add(c, frame + headn, restn);
    if (!batch) flush(c);
    return;
  }
  struct iovec iov[2] = {{head, headn}, {frame + headn, restn}};
  ssize_t w;
  do w = writev(c->fd, iov, restn ? 2 : 1); while (w < 0 && errno == EINTR);
  if (w < 0) {
    if (errno != EAGAIN) { fail(c, "write"); return; }
    w = 0;
  }
  size_t n = (size_t)w;
  if (n < headn) ob_add(c, head + n, headn - n), n = headn;
  if (n - headn < restn) ob_add(c, frame + n, restn - (n - headn));
  if (c->obn) want_out(c, 1);
}

static void send_data(conn *c, uint64_t id, int64_t ts) { send_data_b(c, id, ts, 0); }

static void send_ctl(conn *c, int op, const uint8_t *p, size_t n) {
  uint8_t f[6 + 125];
  f[0] = (uint8_t)(0x80 | op);
  f[1] = (uint8_t)(0x80 | n);
  memcpy(f + 2, mkey, 4);
  for (size_t i = 0; i < n; i++) f[6 + i] = p[i] ^ mkey[i & 3];
  ob_add(c, f, 6 + n);
  flush(c);
}

static void start_close(conn *c) {
  if (c->st == C_CONNECTING || c->st == C_UPGRADING) { conn_end(c); return; }
  if (c->st != C_OPEN) return;
  static const uint8_t normal[2] = {0x03, 0xe8};
  c->st = C_CLOSING;
  send_ctl(c, 8, normal, 2);
}

static void start_conn(conn *c) {
  static unsigned next_src;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
  if (fd < 0) die("socket: %s (raise ulimit -n)", strerror(errno));
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  memset(c, 0, sizeof *c);
  c->fd = fd;
  c->st = C_CONNECTING;
  c->is_pub = (uint8_t)(mode == FANOUT && c == &cs[nconn]);
  pending++;
  live++;
  if (nsrc > 1) { /* spread over 127.0.0.1..N so that ephemeral ports do not run out */
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000001u + next_src++ % (unsigned)nsrc);
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) { fail(c, "bind"); return; }
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  c->want_out = 1;
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  const struct sockaddr_in *to = c->is_pub && pub_dst.sin_port ? &pub_dst : &dst;
  if (connect(fd, (const struct sockaddr *)to, sizeof *to) < 0 && errno != EINPROGRESS) fail(c, "connect");
}

static void on_open(conn *c) {
  c->st = C_OPEN;
  pending--;
  established++;
  if (c->is_pub) pub = c;
  if (mode == CONNECT) {
    if (measuring) meas_n++;
    done_total++;
    start_close(c);
  } else if (mode == ECHO && sending) {
    c->seq++;
    c->awaiting = 1;
    c->t_sent = now_cached;
    send_data(c, c->seq, 0);
  }
}

static void ring_hit(uint64_t s) {
  if (++ring[s & rmask] < (uint64_t)nconn) return;
  while (pub_done < pub_sent && ring[pub_done & rmask] >= (uint64_t)nconn) ring[pub_done++ & rmask] = 0;
}

static void on_message(conn *c) {
  if (c->st != C_OPEN) return;
  if (mode == ECHO) {
    uint64_t want = c->seq;
    size_t k = msize < 8 ? (size_t)msize : 8;
    /* a compressed reply (RSV1, permessage-deflate) is checked by type only: this client does not inflate */
    int compressed = c->rsv1;
    if (!c->awaiting || c->op != 2 || (!compressed && (c->mlen != (uint64_t)msize || memcmp(c->pfx, &want, k) != 0))) {
      fprintf(stderr, "loadgen: error: wrong echo (length %llu, opcode %d, expected %ld bytes, binary)\n",
              (unsigned long long)c->mlen, c->op, msize);
      exit(1);
    }
    c->awaiting = 0;
    done_total++;
    if (measuring) meas_n++, hist_add(now_cached - c->t_sent);
    if (sending) {
      c->seq++;
      c->awaiting = 1;
      c->t_sent = now_cached;
      send_data(c, c->seq, 0);
    }
  } else if (mode == FANOUT) {
    if (c->is_pub) { self_copies++; return; }
    uint64_t s;
    int64_t ts;
    if (c->rsv1) {
      /* compressed (permessage-deflate): this client does not inflate; the server keeps one publisher's
         order (TCP, no loss without a close), so it is the next message, published at sent_at[] */
      s = c->seq;
      ts = s < pub_sent ? sent_at[s & rmask] : 0;
    } else {
      memcpy(&s, c->pfx, 8);
      memcpy(&ts, c->pfx + 8, 8);
    }
    if ((!c->rsv1 && c->mlen != (uint64_t)msize) || s >= pub_sent) {
      fprintf(stderr, "loadgen: error: unexpected broadcast message (%llu bytes)\n", (unsigned long long)c->mlen);
      exit(1);
    }
    if (s < c->seq) { dups++; return; }
    while (c->seq < s) lost++, ring_hit(c->seq++);
    ring_hit(s);
    c->seq = s + 1;
    done_total++;
    if (measuring) meas_n++, hist_add(now_cached - ts);
  } else {
    unexpected++;
  }
}

static void on_control(conn *c) {
  if (c->cop == 9) {
    if (c->st == C_OPEN) send_ctl(c, 10, c->ctl, c->ctl_n), pongs++;
  } else if (c->cop == 8 && c->st == C_OPEN) { /* server-initiated close: answer it */
    server_closed++;
    if (!closing && mode != HOLD && mode != CONNECT) {
      fprintf(stderr, "loadgen: error: server closed a connection during the run (code %d)\n",
              c->ctl_n >= 2 ? c->ctl[0] << 8 | c->ctl[1] : 1005);
      exit(1);
    }
    start_close(c);
  }
}

static void parse(conn *c, const uint8_t *p, size_t n) {
  while (n) {
    if (!c->in_payload) {
      c->hdr[c->hn++] = *p++;
      n--;
      if (c->hn == 2) {
        uint8_t l = c->hdr[1] & 0x7f;
        c->hneed = (uint8_t)(2 + (l == 126 ? 2 : l == 127 ? 8 : 0));
        if (c->hdr[1] & 0x80) die("%s", "server sent a masked frame");
      }
      if (c->hn < 2 || c->hn < c->hneed) continue;
      uint64_t len = c->hdr[1] & 0x7f;
      if (len == 126) len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
      else if (len == 127) { len = 0; for (int i = 2; i < 10; i++) len = len << 8 | c->hdr[i]; }
      int op = c->hdr[0] & 15, fin = c->hdr[0] >> 7;
      c->hn = 0;
      c->left = len;
      if (op >= 8) {
        if (len > 125) die("%s", "control frame longer than 125 bytes");
        c->cop = (uint8_t)op, c->ctl_n = 0;
        if (len) c->in_payload = 2;
        else on_control(c);
        continue;
      }
      if (op != 0) c->op = (uint8_t)op, c->mlen = 0, c->pn = 0, c->rsv1 = (c->hdr[0] >> 6) & 1;
      c->mlen += len;
      c->fin = (uint8_t)fin;
      if (len) c->in_payload = 1;
      else if (fin) on_message(c);
      continue;
    }
    size_t take = n < c->left ? n : (size_t)c->left;
    if (c->in_payload == 2) memcpy(c->ctl + c->ctl_n, p, take), c->ctl_n += (uint8_t)take;
    else if (c->pn < 16) {
      size_t k = (size_t)(16 - c->pn);
      if (k > take) k = take;
      memcpy(c->pfx + c->pn, p, k);
      c->pn += (uint8_t)k;
    }
    p += take;
    n -= take;
    c->left -= take;
    if (c->left) continue;
    if (c->in_payload == 2) c->in_payload = 0, on_control(c);
    else if (c->in_payload = 0, c->fin) on_message(c);
  }
}

static void on_readable(conn *c) {
  ssize_t r = recv(c->fd, rbuf, RBUF, 0);
  if (r < 0) {
    if (errno != EAGAIN && errno != EINTR) fail(c, "read");
    return;
  }
  if (r == 0) {
    if (c->st == C_CLOSING) { conn_end(c); return; }
    errno = ECONNRESET;
    fail(c, c->st == C_UPGRADING ? "server closed during the upgrade" : "server closed without a close frame");
    return;
  }
  now_cached = mono();
  const uint8_t *p = rbuf;
  size_t n = (size_t)r;
  if (c->st == C_UPGRADING) {
    static const char crlf2[] = "\r\n\r\n";
    while (n && c->hs_match < 4) {
      if (c->hs_seen < 12) {
        if (*p != (uint8_t)"HTTP/1.1 101"[c->hs_seen]) {
          errno = EPROTO;
          fail(c, "upgrade refused (no 101 response)");
          return;
        }
        c->hs_seen++;
      }
      c->hs_match = *p == (uint8_t)crlf2[c->hs_match] ? c->hs_match + 1 : (*p == '\r' ? 1 : 0);
      if (c->pmd_match < 18) c->pmd_match = *p == (uint8_t)"permessage-deflate"[c->pmd_match] ? c->pmd_match + 1 : *p == 'p';
      else if (c->pmd_match == 18) c->pmd_match = 19, deflate_conns++;
      p++, n--;
    }
    if (c->hs_match < 4) return;
    on_open(c);
  }
  if (n) parse(c, p, n);
}

static void on_event(conn *c, uint32_t ev) {
  if (c->st == C_DONE || c->st == C_FREE) return;
  if (c->st == C_CONNECTING) {
    int e = 0;
    socklen_t l = sizeof e;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &l);
    if (e) { errno = e; fail(c, "connect"); return; }
    if (!(ev & EPOLLOUT)) return;
    c->st = C_UPGRADING;
  }
  if (c->st == C_UPGRADING && c->usent < (uint32_t)upreq_len) {
    ssize_t w = send(c->fd, upreq + c->usent, (size_t)upreq_len - c->usent, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN) { fail(c, "sending the upgrade request"); return; }
    if (w > 0) c->usent += (uint32_t)w;
    want_out(c, c->usent < (uint32_t)upreq_len);
    return;
  }
  if ((ev & EPOLLOUT) && c->obn && !flush(c)) return;
  if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
}

static void pump_pub(void) {
  if (!pub || pub->st != C_OPEN || !sending) return;
  int64_t t = mono();
  if (pub_sent - pub_done >= (uint64_t)window) return;
  /* every message the window allows goes out in one write, as a publisher batching its sends would */
  while (pub_sent - pub_done < (uint64_t)window) sent_at[pub_sent & rmask] = t, send_data_b(pub, pub_sent++, t, 1);
  flush(pub);
}

static void on_signal(int s) { (void)s; stop_req = 1; }
static void on_alarm(int s) {
  (void)s;
  static const char m[] = "loadgen: error: watchdog expired\n";
  if (write(2, m, sizeof m - 1)) _exit(3);
  _exit(3);
}

static void raise_nofile(long need) {
  struct rlimit r;
  getrlimit(RLIMIT_NOFILE, &r);
  if ((long)r.rlim_cur >= need) return;
  if ((long)r.rlim_max < need) r.rlim_max = (rlim_t)need;
  r.rlim_cur = (rlim_t)need;
  if (setrlimit(RLIMIT_NOFILE, &r) < 0) {
    fprintf(stderr, "loadgen: error: need %ld file descriptors: %s (raise ulimit -n)\n", need, strerror(errno));
    exit(2);
  }
}

static void build_frames(void) {
  FILE *u = fopen("/dev/urandom", "rb");
  if (!u || fread(mkey, 1, 4, u) != 4) mkey[0] = 0x37, mkey[1] = 0xfa, mkey[2] = 0x21, mkey[3] = 0x3d;
  if (u) fclose(u);
  hlen = 0;
  uint8_t h[14];
  h[hlen++] = 0x82; /* FIN + binary */
  if (msize <= 125) h[hlen++] = (uint8_t)(0x80 | msize);
  else if (msize <= 65535) h[hlen++] = 0x80 | 126, h[hlen++] = (uint8_t)(msize >> 8), h[hlen++] = (uint8_t)msize;
  else { h[hlen++] = 0x80 | 127; for (int i = 7; i >= 0; i--) h[hlen++] = (uint8_t)((uint64_t)msize >> (8 * i)); }
  memcpy(h + hlen, mkey, 4);
  hlen += 4;
  flen = hlen + (size_t)msize;
  frame = malloc(flen);
  memcpy(frame, h, hlen);
  for (long i = 0; i < msize; i++) frame[hlen + (size_t)i] = (uint8_t)('a' + i % 26) ^ mkey[i & 3];
  if (mode == FANOUT && offer_deflate) {
    /* compressible like a feed of JSON records (~4:1 with deflate), after the 16-byte id + timestamp */
    char text[64];
    long at = 16;
    for (long rec = 0; at < msize; rec++) {
      int n = snprintf(text, sizeof text, "{\"id\":%ld,\"user\":\"u%ld\",\"score\":%ld},", rec, (rec * 7919) % 1000, (rec * 104729) % 100000);
      for (int i = 0; i < n && at < msize; i++, at++) frame[hlen + (size_t)at] = (uint8_t)text[i] ^ mkey[at & 3];
    }
  }
  if (bearer) snprintf(auth_header, sizeof auth_header, "Authorization: Bearer %s\r\n", bearer);
  upreq_len = snprintf(upreq, sizeof upreq,
                       "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: d3NodWItYmVuY2gta2V5MQ==\r\nSec-WebSocket-Version: 13\r\n%s%s\r\n",
                       path, port, offer_deflate ? "Sec-WebSocket-Extensions: permessage-deflate\r\n" : "", auth_header);
}

static double arg_num(const char *s, double lo, double hi, const char *flag) {
  char *e;
  double v = strtod(s, &e);
  if (*e || e == s || v < lo || v > hi) {
    fprintf(stderr, "loadgen: error: bad value for %s: '%s' (allowed %g..%g)\n", flag, s, lo, hi);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: loadgen echo|fanout|hold|connect -p PORT [options] (see bench/README.md)\n"); return 2; }
  const char *m = argv[1];
  mode = !strcmp(m, "echo") ? ECHO : !strcmp(m, "fanout") ? FANOUT : !strcmp(m, "hold") ? HOLD : !strcmp(m, "connect") ? CONNECT : -1;
  if (mode < 0) { fprintf(stderr, "loadgen: error: unknown mode '%s'\n", m); return 2; }
  for (int i = 2; i < argc; i++) {
    const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) { fprintf(stderr, "loadgen: error: %s needs a value\n", f); return 2; }
    i++;
    if (!strcmp(f, "-p")) port = (int)arg_num(v, 1, 65535, f);
    else if (!strcmp(f, "-q")) pub_port = (int)arg_num(v, 1, 65535, f);
    else if (!strcmp(f, "-H")) host = v;
    else if (!strcmp(f, "-P")) path = v;
    else if (!strcmp(f, "-n")) nconn = (int)arg_num(v, 1, 1000000, f);
    else if (!strcmp(f, "-s")) msize = (long)arg_num(v, 0, 16 << 20, f);
    else if (!strcmp(f, "-d")) dur = arg_num(v, 0.1, 3600, f);
    else if (!strcmp(f, "-w")) warm = arg_num(v, 0, 3600, f);
    else if (!strcmp(f, "-t")) hold_s = arg_num(v, 0, 3600, f);
    else if (!strcmp(f, "-W")) window = (long)arg_num(v, 1, 1 << 16, f);
    else if (!strcmp(f, "-c")) concurrency = (int)arg_num(v, 1, 100000, f);
    else if (!strcmp(f, "-z")) offer_deflate = (int)arg_num(v, 0, 1, f);
    else if (!strcmp(f, "-A")) bearer = v;
    else { fprintf(stderr, "loadgen: error: unknown option %s\n", f); return 2; }
  }
  if (!port) { fprintf(stderr, "loadgen: error: -p PORT is required\n"); return 2; }
  if (strlen(path) > 200 || path[0] != '/' || strpbrk(path, " \r\n")) { fprintf(stderr, "loadgen: error: bad path\n"); return 2; }
  if (bearer && (strlen(bearer) > 3000 || strpbrk(bearer, " \r\n"))) { fprintf(stderr, "loadgen: error: bad -A token\n"); return 2; }
  if (mode == FANOUT && msize < 16) { fprintf(stderr, "loadgen: error: fanout needs -s >= 16\n"); return 2; }
  if (inet_pton(AF_INET, host, &dst.sin_addr) != 1 || (ntohl(dst.sin_addr.s_addr) >> 24) != 127) {
    fprintf(stderr, "loadgen: error: -H must be a 127.x.y.z loopback address, got '%s'\n", host);
    return 2;
  }
  dst.sin_family = AF_INET;
  dst.sin_port = htons((uint16_t)port);
  if (pub_port) {
    if (mode != FANOUT) { fprintf(stderr, "loadgen: error: -q is for fanout only\n"); return 2; }
    pub_dst = dst;
    pub_dst.sin_port = htons((uint16_t)pub_port);
  }

  ntotal = mode == CONNECT ? concurrency : nconn + (mode == FANOUT);
  {
    int lo = 32768, hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) { if (fscanf(f, "%d %d", &lo, &hi) != 2) lo = 32768, hi = 60999; fclose(f); }
    long usable = (long)(hi - lo + 1) * 3 / 4;
    nsrc = (int)((ntotal + usable - 1) / usable);
    if (mode == CONNECT) nsrc = 16; /* connections are recycled fast; spread the TIME_WAIT load */
    if (nsrc > 250) { fprintf(stderr, "loadgen: error: too many connections\n"); return 2; }
  }
  raise_nofile(ntotal + 64L);
  build_frames();
  if (mode == FANOUT) {
    uint64_t rs = 1;
    while (rs < (uint64_t)window + 1) rs <<= 1;
    ring = calloc(rs, sizeof *ring);
    sent_at = calloc(rs, sizeof *sent_at);
    rmask = rs - 1;
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGALRM, on_alarm);
  alarm((unsigned)(warm + dur + (mode == HOLD ? hold_s : 0) + 120));

  cs = calloc((size_t)ntotal, sizeof *cs);
  struct epoll_event *evs = malloc(sizeof *evs * MAXEV);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (!cs || !evs || ep < 0) die("%s", "setup failed");

  int64_t t0 = mono(), deadline = t0 + 60 * NS, t_meas = 0, t_end = 0;
  double cpu0 = 0, cpu_used = 0, connect_s = 0;
  int phase = 0; /* 0 connect subscribers/conns, 1 connect publisher, 2 warm-up, 3 measure, 4 hold, 5 close */
  int open_target = mode == FANOUT ? nconn : ntotal;
  for (;;) {
    while (opened < open_target && pending < 256 && phase < 2) start_conn(&cs[opened++]);
    if (mode == CONNECT && phase >= 2 && phase < 5) /* recycle finished slots */
      for (int i = 0; i < ntotal && pending < ntotal; i++)
        if (cs[i].st == C_DONE) start_conn(&cs[i]);
    int64_t now = mono();
    int tmo = deadline > now ? (int)((deadline - now) / 1000000) + 1 : 0;
    if (tmo > 50) tmo = 50;
    int k = epoll_wait(ep, evs, MAXEV, tmo);
    now_cached = mono();
    for (int i = 0; i < k; i++) on_event((conn *)evs[i].data.ptr, evs[i].events);
    if (mode == FANOUT) pump_pub();
    now = mono();
    if (stop_req && phase < 5) {
      phase = 5, closing = 1, sending = measuring = 0;
      for (int i = 0; i < ntotal; i++) start_close(&cs[i]);
      deadline = now + 5 * NS;
    }
    switch (phase) {
    case 0:
    case 1:
      if (now > deadline) { fprintf(stderr, "loadgen: error: connect phase timed out (%d of %d open)\n", established, open_target); return 1; }
      if (opened < open_target || pending) break;
      if (failed && mode != CONNECT) { fprintf(stderr, "loadgen: error: %d of %d connections failed; first: %s\n", failed, ntotal, err1); return 1; }
      if (phase == 0 && mode == FANOUT) { phase = 1, open_target = ntotal; break; }
      connect_s = (double)(now - t0) / 1e9;
      if (mode == HOLD) {
        printf("{\"ready\":%d,\"connect_s\":%.3f}\n", established, connect_s);
        fflush(stdout);
        phase = 4, deadline = now + (int64_t)(hold_s * NS);
        break;
      }
      phase = 2, sending = 1, deadline = now + (int64_t)(warm * NS);
      if (mode == ECHO)
        for (int i = 0; i < ntotal; i++)
          if (cs[i].st == C_OPEN && !cs[i].awaiting) { cs[i].seq++, cs[i].awaiting = 1, cs[i].t_sent = now, send_data(&cs[i], cs[i].seq, 0); }
      if (mode == FANOUT) pump_pub();
      break;
    case 2:
      if (now < deadline) break;
      printf("measure-start\n"); /* the suite samples the server's CPU time at these markers */
      fflush(stdout);
      phase = 3, measuring = 1, meas_n = 0, t_meas = now, cpu0 = cpu_s(), deadline = now + (int64_t)(dur * NS);
      memset(hist, 0, sizeof hist), hn_total = 0;
      break;
    case 3:
      if (now < deadline) break;
      t_end = now, cpu_used = cpu_s() - cpu0, measuring = 0, sending = 0;
      printf("measure-end\n");
      fflush(stdout);
      phase = 5, closing = 1, deadline = now + 5 * NS;
      for (int i = 0; i < ntotal; i++) start_close(&cs[i]);
      break;
    case 4:
      if (now < deadline) break;
      phase = 5, closing = 1, deadline = now + 5 * NS;
      for (int i = 0; i < ntotal; i++) start_close(&cs[i]);
      break;
    case 5:
      if (live > 0 && now < deadline) break;
      {
        int unclean = live;
        for (int i = 0; i < ntotal; i++) conn_end(&cs[i]);
        if (mode == HOLD) {
          printf("{\"mode\":\"hold\",\"established\":%d,\"failed\":%d,\"server_closed\":%llu,\"unclean_close\":%d}\n",
                 established, failed, (unsigned long long)server_closed, unclean);
          return stop_req || !failed ? 0 : 1;
        }
        if (!t_end) { fprintf(stderr, "loadgen: error: interrupted\n"); return 130; }
        double el = (double)(t_end - t_meas) / 1e9;
        printf("{\"mode\":\"%s\",\"conns\":%d,\"size\":%ld,\"window\":%ld,\"seconds\":%.3f,\"count\":%llu,\"per_s\":%.0f,"
               "\"p50_us\":%.1f,\"p99_us\":%.1f,\"client_cpu_pct\":%.1f,\"lost\":%llu,\"dups\":%llu,\"self_copies\":%llu,"
               "\"failed\":%d,\"unclean_close\":%d,\"deflate_conns\":%d}\n",
               m, mode == CONNECT ? concurrency : nconn, msize, mode == FANOUT ? window : 0, el, (unsigned long long)meas_n,
               (double)meas_n / el, hist_us(0.5), hist_us(0.99), 100.0 * cpu_used / el, (unsigned long long)lost,
               (unsigned long long)dups, (unsigned long long)self_copies, failed, unclean, deflate_conns);
        return lost ? 1 : 0;
      }
    }
    (void)connect_s;
  }
}
