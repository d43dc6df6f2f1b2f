/**
 * The browser console (issue 8), served at GET / of the WebSocket port: one
 * self-contained page (inline CSS and script, no CDN, nothing to build) to
 * connect to /ws or a room, send text, and watch what comes back with
 * timestamps and close codes. It polls GET /stats for the server's live
 * connection count.
 */
export const CONSOLE_SCRIPT = `
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
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path;
}

function connect() {
  const url = targetUrl();
  sent = 0;
  received = 0;
  entry('event', 'connecting to ' + url);
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
    setState('open', url);
    $('message').focus();
    refreshStats();
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
    setState('open', url);
  };
  ws.onerror = () => entry('error', 'connection error (the browser gives no detail; see the close code)');
  ws.onclose = (event) => {
    const reason = event.reason ? ' "' + event.reason + '"' : '';
    entry('event', 'closed with code ' + event.code + reason + (event.wasClean ? '' : ' (not clean)'));
    if (socket === ws) socket = null;
    setState('closed', 'last close code ' + event.code + reason);
    refreshStats();
  };
}

function send() {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  const text = $('message').value;
  socket.send(text);
  sent++;
  entry('sent', text);
  setState('open', socket.url);
  $('message').select();
}

async function refreshStats() {
  try {
    const response = await fetch('stats', { cache: 'no-store' });
    if (!response.ok) throw new Error('HTTP ' + response.status);
    const stats = await response.json();
    $('server').textContent = stats.connections + ' connection' + (stats.connections === 1 ? '' : 's') + ' open on the server (' + stats.mode + ' mode)';
  } catch (error) {
    $('server').textContent = 'server stats unavailable (' + error.message + ')';
  }
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
refreshStats();
setInterval(refreshStats, 2000);
`;

export const CONSOLE_STYLE = `
:root { color-scheme: light dark; --muted: #777; --accent: #2563eb; }
* { box-sizing: border-box; }
body { font: 15px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 60rem; padding: 1rem; }
h1 { font-size: 1.3rem; margin: 0 0 .25rem; }
p.lead { margin: 0 0 1rem; color: var(--muted); }
.row { display: flex; gap: .5rem; margin: .5rem 0; align-items: center; flex-wrap: wrap; }
input[type=text] { flex: 1; min-width: 12rem; font: 14px ui-monospace, monospace; padding: .45rem .5rem; }
button { font: inherit; padding: .4rem .9rem; cursor: pointer; }
#state { font-weight: 600; padding: .1rem .5rem; border-radius: .3rem; background: #8883; }
#state[data-state=open] { background: #16a34a; color: #fff; }
#state[data-state=connecting] { background: #ca8a04; color: #fff; }
#state-detail, #counts, #server { color: var(--muted); font-size: .9rem; }
#log { list-style: none; margin: .5rem 0; padding: .5rem; height: 55vh; overflow-y: auto;
  border: 1px solid #8886; border-radius: .3rem; font: 13px/1.5 ui-monospace, monospace; }
#log li { display: flex; gap: .6rem; white-space: pre-wrap; word-break: break-all; }
#log time { color: var(--muted); flex: none; }
#log b { flex: none; width: 1em; }
#log .sent b { color: var(--accent); }
#log .received b { color: #16a34a; }
#log .error { color: #dc2626; }
#log .event span { color: var(--muted); }
code { font-size: .9em; white-space: nowrap; }
`;

const BODY = `
<h1>wshub console</h1>
<p class="lead">Connect to this server, send text, see what comes back.
<span id="server">…</span></p>
<div class="row">
  <label for="path">Path</label>
  <input type="text" id="path" value="/ws" spellcheck="false" aria-label="WebSocket path">
  <button id="connect">Connect</button>
  <button id="disconnect">Disconnect</button>
</div>
<div class="row"><span id="state">closed</span><span id="state-detail"></span><span id="counts"></span></div>
<div class="row">
  <input type="text" id="message" value="hello wshub" spellcheck="false" aria-label="Message">
  <button id="send">Send</button>
  <button id="clear">Clear</button>
</div>
<ol id="log" aria-live="polite"></ol>
<p class="lead">Paths: <code>/ws</code>, or <code>/ws/ROOM</code> for a room in broadcast mode.
With <code>--allow-fault-injection</code>, add <code>?delay=200ms</code>, <code>?close=4000&amp;reason=bye</code>,
<code>?drop</code> or <code>?hello</code> (see the README).</p>
`;

export const CONSOLE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wshub console</title>
<style>${CONSOLE_STYLE}</style>
</head>
<body>${BODY}<script>${CONSOLE_SCRIPT}</script>
</body>
</html>
`;
