/*
 * The echo ceiling of this machine (bench/README.md, "C reference"): the least work a WebSocket echo
 * server can do per message, so that the suite can show what the kernel and the CPU allow any server,
 * Node or not, under the same load generator and pinning. One thread, one epoll loop, non-blocking
 * sockets, loopback only. Built by the suite with the system C compiler, no library beyond libc.
 *
 *   ceiling-server [-p PORT] [-H 127.x.y.z]     prints "listening PORT" once ready; SIGTERM/SIGINT end it
 *
 * What it does (RFC 6455): the opening handshake (GET with Upgrade: websocket, Connection: Upgrade,
 * Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key; 101 with Sec-WebSocket-Accept = base64(SHA-1(key +
 * GUID)), §4.2.2; 400 otherwise, 426 for another version); no extension is negotiated. Every data frame
 * (text, binary, continuation) goes back unmasked with the same FIN bit and opcode once it has arrived whole,
 * so a fragmented message is echoed as the same fragments; ping gets a pong with its payload; a close frame
 * gets a close frame with the same status code, then the server closes the TCP connection (§7.1.1). Unmasked
 * client frames, reserved bits or opcodes, control frames over 125 bytes or fragmented, frames over 16 MiB and
 * a bad close payload get a close frame with 1002 (1009 for size). All replies to the frames of one read go
 * out in one write. Not done, on purpose (not on the measured path): UTF-8 validation of text, timeouts.
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
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define RBUF (256 * 1024)
#define MAXEV 1024
#define MAX_FRAME (16u << 20)
#define MAX_REQUEST 8192
/* Past this much unsent output, reading from the connection pauses until the client drains it. */
#define OUT_HIGH (4u << 20)

typedef struct {
  int fd;
  uint8_t upgraded, closing, reading, want_out;
  uint8_t *in, *out; /* unprocessed input (a partial request or frame), unsent output */
  size_t inn, incap, outn, outoff, outcap;
} conn;

static int ep;
static uint8_t rbuf[RBUF];
static volatile sig_atomic_t stop_req;

/* --- SHA-1 (FIPS 180-4), only for Sec-WebSocket-Accept */

static uint32_t rol(uint32_t x, int n) { return x << n | x >> (32 - n); }

static void sha1_block(uint32_t h[5], const uint8_t *p) {
  uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 16; i++) w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) f = (b & c) | (~b & d), k = 0x5a827999;
    else if (i < 40) f = b ^ c ^ d, k = 0x6ed9eba1;
    else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8f1bbcdc;
    else f = b ^ c ^ d, k = 0xca62c1d6;
    uint32_t t = rol(a, 5) + f + e + k + w[i];
    e = d, d = c, c = rol(b, 30), b = a, a = t;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void sha1(const uint8_t *msg, size_t n, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
  uint8_t block[64];
  size_t i = 0;
  for (; i + 64 <= n; i += 64) sha1_block(h, msg + i);
  size_t rest = n - i;
  memset(block, 0, 64);
  memcpy(block, msg + i, rest);
  block[rest] = 0x80;
  if (rest >= 56) sha1_block(h, block), memset(block, 0, 64);
  uint64_t bits = (uint64_t)n * 8;
  for (int j = 0; j < 8; j++) block[63 - j] = (uint8_t)(bits >> (8 * j));
  sha1_block(h, block);
  for (int j = 0; j < 20; j++) out[j] = (uint8_t)(h[j / 4] >> (24 - 8 * (j % 4)));
}

static size_t base64(const uint8_t *p, size_t n, char *out) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
    out[o++] = tab[v >> 18 & 63];
    out[o++] = tab[v >> 12 & 63];
    out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? tab[v & 63] : '=';
  }
  out[o] = 0;
  return o;
}

/* --- buffers and connection life */

static void reserve(uint8_t **buf, size_t *cap, size_t need) {
  if (need <= *cap) return;
  size_t c = *cap ? *cap : 4096;
  while (c < need) c *= 2;
  uint8_t *b = realloc(*buf, c);
  if (!b) {
    fprintf(stderr, "ceiling-server: out of memory\n");
    exit(1);
  }
  *buf = b, *cap = c;
}

static void out_add(conn *c, const void *p, size_t n) {
  reserve(&c->out, &c->outcap, c->outn + n);
  memcpy(c->out + c->outn, p, n);
  c->outn += n;
}

static void conn_free(conn *c) {
  close(c->fd);
  free(c->in);
  free(c->out);
  free(c);
}

static void set_events(conn *c) {
  int reading = !c->closing && c->outn - c->outoff < OUT_HIGH, want_out = c->outn > c->outoff;
  if (reading == c->reading && want_out == c->want_out) return;
  struct epoll_event ev = {.events = (reading ? EPOLLIN : 0) | (want_out ? EPOLLOUT : 0) | EPOLLRDHUP, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->reading = (uint8_t)reading, c->want_out = (uint8_t)want_out;
}

/* Writes pending output; returns 0 when the connection is gone (freed). */
static int flush(conn *c) {
  while (c->outoff < c->outn) {
    ssize_t w = send(c->fd, c->out + c->outoff, c->outn - c->outoff, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      conn_free(c);
      return 0;
    }
    c->outoff += (size_t)w;
  }
  if (c->outoff == c->outn) {
    c->outoff = c->outn = 0;
    if (c->closing) { /* the close frame is out: the server closes the TCP connection first (§7.1.1) */
      conn_free(c);
      return 0;
    }
  }
  set_events(c);
  return 1;
}

static void frame_header(conn *c, uint8_t b0, uint64_t len) {
  uint8_t h[10];
  size_t n = 0;
  h[n++] = b0;
  if (len < 126) h[n++] = (uint8_t)len;
  else if (len < 65536) h[n++] = 126, h[n++] = (uint8_t)(len >> 8), h[n++] = (uint8_t)len;
  else {
    h[n++] = 127;
    for (int i = 7; i >= 0; i--) h[n++] = (uint8_t)(len >> (8 * i));
  }
  out_add(c, h, n);
}

static void close_with(conn *c, unsigned code) {
  uint8_t frame[4] = {0x88, 2, (uint8_t)(code >> 8), (uint8_t)code};
  out_add(c, frame, sizeof frame);
  c->closing = 1;
}

/* --- opening handshake (RFC 6455 §4.2) */

static const char *header_value(const char *req, const char *name, size_t *len) {
  size_t nl = strlen(name);
  for (const char *line = strstr(req, "\r\n"); line && line[2] != '\r'; line = strstr(line + 2, "\r\n")) {
    const char *h = line + 2;
    if (strncasecmp(h, name, nl) || h[nl] != ':') continue;
    const char *v = h + nl + 1, *end = strstr(v, "\r\n");
    while (*v == ' ' || *v == '\t') v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
    *len = (size_t)(end - v);
    return v;
  }
  return NULL;
}

static int has_token(const char *v, size_t len, const char *token) {
  size_t tl = strlen(token);
  for (size_t i = 0; i + tl <= len; i++)
    if (!strncasecmp(v + i, token, tl) && (i == 0 || v[i - 1] == ',' || v[i - 1] == ' ') &&
        (i + tl == len || v[i + tl] == ',' || v[i + tl] == ' '))
      return 1;
  return 0;
}

static void refuse(conn *c, const char *status, const char *extra) {
  char resp[256];
  int n = snprintf(resp, sizeof resp, "HTTP/1.1 %s\r\nConnection: close\r\n%sContent-Length: 0\r\n\r\n", status, extra);
  out_add(c, resp, (size_t)n);
  c->closing = 1;
}

/* Handles the request in c->in[0..end) (NUL-terminated at end); answers 101 or refuses. */
static void upgrade(conn *c, size_t end) {
  char *req = (char *)c->in;
  req[end] = 0;
  size_t kl = 0, ul = 0, cl = 0, vl = 0;
  const char *key = header_value(req, "Sec-WebSocket-Key", &kl), *up = header_value(req, "Upgrade", &ul);
  const char *connection = header_value(req, "Connection", &cl), *version = header_value(req, "Sec-WebSocket-Version", &vl);
  if (strncmp(req, "GET ", 4) || !strstr(req, " HTTP/1.1\r\n") || !key || kl != 24 || !up || !has_token(up, ul, "websocket") ||
      !connection || !has_token(connection, cl, "upgrade") || !version) {
    refuse(c, "400 Bad Request", "");
    return;
  }
  if (vl != 2 || strncmp(version, "13", 2)) {
    refuse(c, "426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n");
    return;
  }
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  uint8_t material[24 + sizeof guid], digest[20];
  char accept[32], resp[256];
  memcpy(material, key, 24);
  memcpy(material + 24, guid, sizeof guid - 1);
  sha1(material, 24 + sizeof guid - 1, digest);
  base64(digest, 20, accept);
  int n = snprintf(resp, sizeof resp,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                   accept);
  out_add(c, resp, (size_t)n);
  c->upgraded = 1;
}

/* --- frames (RFC 6455 §5) */

/*
 * Handles every complete frame in p[0..n); returns how many bytes it used (the rest is a partial frame).
 * Data frames are echoed unmasked with their first byte (FIN, opcode) unchanged.
 */
static size_t frames(conn *c, const uint8_t *p, size_t n) {
  size_t used = 0;
  while (!c->closing && n - used >= 2) {
    const uint8_t *f = p + used;
    size_t avail = n - used, hl = 2;
    uint8_t b0 = f[0], op = b0 & 15, l7 = f[1] & 127;
    uint64_t len = l7;
    if (!(f[1] & 0x80) || (b0 & 0x70) || (op > 2 && op < 8) || op > 10) { /* §5.1 mask, §5.2 RSV and opcodes */
      close_with(c, 1002);
      break;
    }
    if (l7 == 126) {
      if (avail < 4) break;
      len = (uint64_t)f[2] << 8 | f[3], hl = 4;
    } else if (l7 == 127) {
      if (avail < 10) break;
      len = 0;
      for (int i = 2; i < 10; i++) len = len << 8 | f[i];
      hl = 10;
    }
    if (op >= 8 && (len > 125 || !(b0 & 0x80))) { /* §5.5 */
      close_with(c, 1002);
      break;
    }
    if (len > MAX_FRAME) {
      close_with(c, 1009);
      break;
    }
    if (avail < hl + 4 + len) break;
    const uint8_t *mask = f + hl, *payload = f + hl + 4;
    used += hl + 4 + (size_t)len;
    if (op == 10) continue; /* pong */
    if (op == 8) {
      /* §5.5.1: echo the status code; an empty close gets an empty close */
      uint8_t code[2];
      if (len == 1) { close_with(c, 1002); break; }
      frame_header(c, 0x88, len >= 2 ? 2 : 0);
      if (len >= 2) code[0] = payload[0] ^ mask[0], code[1] = payload[1] ^ mask[1], out_add(c, code, 2);
      c->closing = 1;
      break;
    }
    frame_header(c, op == 9 ? 0x8a : b0, len);
    reserve(&c->out, &c->outcap, c->outn + (size_t)len);
    uint8_t *o = c->out + c->outn;
    size_t i = 0;
    uint32_t m32;
    memcpy(&m32, mask, 4);
    for (; i + 4 <= len; i += 4) { /* unmask 4 bytes at a time; the key repeats every 4 bytes */
      uint32_t v;
      memcpy(&v, payload + i, 4);
      v ^= m32;
      memcpy(o + i, &v, 4);
    }
    for (; i < len; i++) o[i] = payload[i] ^ mask[i & 3];
    c->outn += (size_t)len;
  }
  return used;
}

/* Input that arrived: the request until the upgrade, frames after it. Returns 0 when the connection is gone. */
static int input(conn *c, const uint8_t *p, size_t n) {
  if (c->inn) { /* a partial request or frame is waiting: append and work from the connection's buffer */
    reserve(&c->in, &c->incap, c->inn + n + 1);
    memcpy(c->in + c->inn, p, n);
    c->inn += n;
    p = c->in, n = c->inn;
  }
  size_t used = 0;
  if (!c->upgraded) {
    const uint8_t *end = memmem(p, n, "\r\n\r\n", 4);
    if (!end) {
      if (n > MAX_REQUEST) refuse(c, "431 Request Header Fields Too Large", "");
      used = c->closing ? n : 0;
    } else {
      size_t reqlen = (size_t)(end - p) + 4;
      if (p != c->in) { /* header_value needs the request in a writable buffer to NUL-terminate it */
        reserve(&c->in, &c->incap, n + 1);
        memcpy(c->in, p, n);
        c->inn = n;
        p = c->in;
      }
      uint8_t next = c->in[reqlen]; /* the first byte of a frame sent right behind the request, if any */
      upgrade(c, reqlen);
      c->in[reqlen] = next;
      used = reqlen;
    }
  }
  if (c->upgraded && !c->closing) used += frames(c, p + used, n - used);
  size_t left = c->closing ? 0 : n - used;
  if (p == c->in) memmove(c->in, c->in + used, left);
  else if (left) {
    reserve(&c->in, &c->incap, left + 1);
    memcpy(c->in, p + used, left);
  }
  c->inn = left;
  return flush(c);
}

static void on_readable(conn *c) {
  ssize_t r;
  do r = recv(c->fd, rbuf, RBUF, 0); while (r < 0 && errno == EINTR);
  if (r < 0 && errno == EAGAIN) return;
  if (r <= 0) { /* the client closed or reset the connection */
    conn_free(c);
    return;
  }
  input(c, rbuf, (size_t)r);
}

static void accept_all(int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return; /* EAGAIN, or out of descriptors: try again on the next event */
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn *c = calloc(1, sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    c->fd = fd, c->reading = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) conn_free(c);
  }
}

static void on_signal(int s) {
  (void)s;
  stop_req = 1;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-p") && i + 1 < argc) port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-H") && i + 1 < argc) host = argv[++i];
    else {
      fprintf(stderr, "usage: ceiling-server [-p PORT] [-H 127.x.y.z]\n");
      return 2;
    }
  }
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1 || (ntohl(addr.sin_addr.s_addr) >> 24) != 127 || port < 0 || port > 65535) {
    fprintf(stderr, "ceiling-server: -H must be a 127.x.y.z loopback address and -p a port\n");
    return 2;
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) rl.rlim_cur = rl.rlim_max, setrlimit(RLIMIT_NOFILE, &rl);
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: epoll_wait returns EINTR */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  socklen_t al = sizeof addr;
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 4096) < 0 ||
      getsockname(lfd, (struct sockaddr *)&addr, &al) < 0) {
    perror("ceiling-server: listen");
    return 1;
  }
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL}, evs[MAXEV];
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  printf("listening %d\n", ntohs(addr.sin_port));
  fflush(stdout);

  while (!stop_req) {
    int k = epoll_wait(ep, evs, MAXEV, -1);
    for (int i = 0; i < k; i++) {
      conn *c = evs[i].data.ptr;
      uint32_t ev = evs[i].events;
      if (!c) {
        accept_all(lfd);
        continue;
      }
      /* one event per connection per wake-up, so a connection freed here is not seen again in this batch */
      if ((ev & EPOLLOUT) && !flush(c)) continue;
      if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c);
    }
  }
  return 0;
}
