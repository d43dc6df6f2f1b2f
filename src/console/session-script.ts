/**
 * The console's client part (issue 8): connect to /ws or a room, send text,
 * and watch what comes back with timestamps and close codes. The token of
 * #token, when set, goes in ?access_token= (browsers cannot set headers on a
 * WebSocket). The live charts are charts-script.ts.
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

function connect() {
  const url = targetUrl();
  sent = 0;
  received = 0;
  entry('event', 'connecting to ' + shown(url));
  setState('connecting');
  let ws;
  try {
    ws = new WebSocket(url);
  } catch (error) {
    entry('error', String(error.message || error));
    setState('closed');
    return;
  }
  ws.binaryType = 'arraybuffer';
  socket = ws;
  const openedAt = performance.now();
  ws.onopen = () => {
    entry('event', 'open (' + Math.round(performance.now() - openedAt) + ' ms)');
    setState('open', shown(url));
    $('message').focus();
  };
  ws.onmessage = (event) => {
    received++;
    if (typeof event.data === 'string') {
      entry('received', event.data);
    } else {
      const bytes = new Uint8Array(event.data);
      const hex = Array.from(bytes.slice(0, 32), (b) => b.toString(16).padStart(2, '0')).join(' ');
      entry('received', '[binary ' + bytes.length + ' bytes] ' + hex + (bytes.length > 32 ? ' …' : ''));
    }
    setState('open', shown(url));
  };
  ws.onerror = () => entry('error', 'connection error (the browser gives no detail; see the close code)');
  ws.onclose = (event) => {
    const reason = event.reason ? ' "' + event.reason + '"' : '';
    entry('event', 'closed with code ' + event.code + reason + (event.wasClean ? '' : ' (not clean)'));
    if (socket === ws) socket = null;
    setState('closed', 'last close code ' + event.code + reason);
  };
}

function send() {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  const text = $('message').value;
  socket.send(text);
  sent++;
  entry('sent', text);
  setState('open', shown(socket.url));
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
