/**
 * The console's client part (issue 8): connect to /ws or a room, send text,
 * and watch what comes back with timestamps and close codes. The token of
 * #token, when set, goes in ?access_token= (browsers cannot set headers on a
 * WebSocket). The live charts are charts-script.ts. It connects through the
 * client library (wshub/client, GET /client.js): reconnects and resumes.
 */
export const SESSION_SCRIPT = `
'use strict';
const $ = (id) => document.getElementById(id);
const log = $('log');
let socket = null;
let sent = 0;
let received = 0;

function stamp() {
  const now = new Date();
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return pad(now.getHours()) + ':' + pad(now.getMinutes()) + ':' + pad(now.getSeconds()) + '.' + pad(now.getMilliseconds(), 3);
}

function entry(kind, text) {
  const row = document.createElement('li');
  row.className = kind;
  const time = document.createElement('time');
  time.textContent = stamp();
  const arrow = document.createElement('b');
  arrow.textContent = { sent: '→', received: '←', event: '●', error: '✕' }[kind];
  const body = document.createElement('span');
  body.textContent = text;
  row.append(time, arrow, body);
  log.append(row);
  while (log.children.length > 500) log.firstElementChild.remove();
  log.scrollTop = log.scrollHeight;
}

function setState(state, detail) {
  $('state').textContent = state;
  $('state').dataset.state = state;
  $('state-detail').textContent = detail || '';
  const open = state === 'open';
  $('connect').disabled = state === 'connecting' || open;
  $('disconnect').disabled = !(state === 'connecting' || open);
  $('send').disabled = !open;
  $('counts').textContent = sent + ' sent, ' + received + ' received';
}

function targetUrl() {
  let path = $('path').value.trim() || '/ws';
  if (!path.startsWith('/')) path = '/' + path;
  const url = new URL((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path);
  const token = $('token').value.trim();
  if (token) url.searchParams.set('access_token', token);
  return url.href;
}

// The token stays out of the log: it is a secret.
const shown = (url) => url.replace(/([?&]access_token=)[^&]*/, '$1…');

// wshub/client (issue 16, GET /client.js): reconnects with backoff and, when the server keeps
// room history (body data-history), speaks wshub.v1 and resumes where it left off.
const library = import('./client.js');

function connect() {
  const url = targetUrl();
  sent = 0;
  received = 0;
  entry('event', 'connecting to ' + shown(url));
  setState('connecting');
  let openedAt = performance.now();
  const at = (position) => position.epoch + ':' + position.offset;
  library.then(({ connect: connectWshub }) => {
    const client = connectWshub(url, {
      subprotocol: document.body.dataset.history === 'on',
      onOpen(info) {
        const where = info.position ? (info.resumed ? ', resumed at ' : ', welcome at ') + at(info.position) : '';
        entry('event', 'open (' + Math.round(performance.now() - openedAt) + ' ms)' + where);
        setState('open', shown(url));
        $('message').focus();
      },
      onMessage(message) {
        received++;
        if (typeof message.data === 'string') {
          entry('received', message.data);
        } else {
          const bytes = message.data;
          const hex = Array.from(bytes.slice(0, 32), (b) => b.toString(16).padStart(2, '0')).join(' ');
          entry('received', '[binary ' + bytes.length + ' bytes] ' + hex + (bytes.length > 32 ? ' …' : ''));
        }
        setState('open', shown(url));
      },
      onReset(info) {
        entry('error', 'reset to ' + at(info.position) + (info.previous ? ': messages after ' + at(info.previous) + ' may be missing' : ''));
      },
      onRefused(info) {
        // Issue 15: the handshake was refused for the token; retrying it would only be refused again.
        entry('error', info.status === 401
          ? 'refused: 401 Unauthorized — the access token is missing, invalid or expired; enter a valid one above and connect again'
          : 'refused: 403 Forbidden — the access token does not allow ' + (info.room ? 'room ' + info.room : 'the default room /ws'));
      },
      onClose(info) {
        const reason = info.reason ? ' "' + info.reason + '"' : '';
        entry('event', 'closed with code ' + info.code + reason);
        if (info.retryInMs !== undefined) {
          entry('event', 'reconnecting in ' + info.retryInMs + ' ms');
          setState('connecting', 'last close code ' + info.code + reason);
          openedAt = performance.now() + info.retryInMs;
        } else {
          if (socket === client) socket = null;
          setState('closed', info.status ? 'refused with HTTP ' + info.status : 'last close code ' + info.code + reason);
        }
      },
    });
    socket = client;
  }, (error) => {
    entry('error', 'client library unavailable: ' + String(error.message || error));
    setState('closed');
  });
}

function send() {
  if (!socket) return;
  const text = $('message').value;
  if (!socket.send(text)) return;
  sent++;
  entry('sent', text);
  setState('open', shown(targetUrl()));
  $('message').select();
}

$('connect').addEventListener('click', connect);
$('disconnect').addEventListener('click', () => socket && socket.close(1000, 'closed from the console'));
$('send').addEventListener('click', send);
$('message').addEventListener('keydown', (event) => {
  if (event.key === 'Enter') send();
});
$('path').addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !$('connect').disabled) connect();
});
$('clear').addEventListener('click', () => log.replaceChildren());
setState('closed');
`;
