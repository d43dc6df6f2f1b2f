import { CHART_HELPERS } from '../charts/helpers.js';
import { chartLibrary } from '../charts/uplot.js';
import { CHARTS_SCRIPT } from './charts-script.js';
import { SESSION_SCRIPT } from './session-script.js';

const CONSOLE_STYLE = `
:root { color-scheme: light dark; --muted: #777; --accent: #2563eb; }
* { box-sizing: border-box; }
body { font: 15px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 78rem; padding: 1rem; }
h2 { font-size: 1.1rem; margin: 1.2rem 0 .4rem; }
h1 { font-size: 1.3rem; margin: 0 0 .25rem; }
p.lead { margin: 0 0 1rem; color: var(--muted); }
.row { display: flex; gap: .5rem; margin: .5rem 0; align-items: center; flex-wrap: wrap; }
input[type=text] { flex: 1; min-width: 12rem; font: 14px ui-monospace, monospace; padding: .45rem .5rem; }
button { font: inherit; padding: .4rem .9rem; cursor: pointer; }
#state { font-weight: 600; padding: .1rem .5rem; border-radius: .3rem; background: #8883; }
#state[data-state=open] { background: #16a34a; color: #fff; }
#state[data-state=connecting] { background: #ca8a04; color: #fff; }
#state-detail, #counts, #server { color: var(--muted); font-size: .9rem; }
#log { list-style: none; margin: .5rem 0; padding: .5rem; height: 30vh; overflow-y: auto;
  border: 1px solid #8886; border-radius: .3rem; font: 13px/1.5 ui-monospace, monospace; }
#log li { display: flex; gap: .6rem; white-space: pre-wrap; word-break: break-all; }
#log time { color: var(--muted); flex: none; }
#log b { flex: none; width: 1em; }
#log .sent b { color: var(--accent); }
#log .received b { color: #16a34a; }
#log .error { color: #dc2626; }
#log .event span { color: var(--muted); }
code { font-size: .9em; white-space: nowrap; }
#token { flex: 0 1 22rem; min-width: 10rem; font: 14px ui-monospace, monospace; padding: .45rem .5rem; }
#live-state { color: var(--muted); font-size: .9rem; }
#live-state[data-state=error] { color: #dc2626; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(30rem, 1fr)); gap: .8rem 1.2rem; }
.chart-box { min-width: 0; }
.chart-box .now { color: var(--muted); font-size: .85rem; margin: 0 0 .2rem; font-variant-numeric: tabular-nums; }
.chart-box .now b { color: CanvasText; font-weight: 600; }
.chart { min-height: 260px; }
.uplot .u-title { font-size: .95rem; font-weight: 600; }
.uplot .u-legend { font-size: .8rem; }
.muted { color: var(--muted); }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; font-size: .9rem; }
th, td { text-align: right; padding: .25rem .6rem; border-bottom: 1px solid #8884; }
th:first-child, td:first-child { text-align: left; word-break: break-all; }
`;

const BODY = `
<h1>wshub console</h1>
<p class="lead">Live figures of this server, and a client to connect, send text and see what comes back.
<span id="server">…</span></p>
<div class="row">
  <label for="token">Access token</label>
  <input type="password" id="token" autocomplete="off" spellcheck="false" placeholder="only with --auth=jwt">
  <span class="muted">sent as <code>?access_token=</code> on the WebSocket and <code>Authorization: Bearer</code> on <code>/stats</code></span>
</div>
<h2>Live <span id="live-state">waiting for the first figures…</span></h2>
<div class="charts">
  <section class="chart-box">
    <p class="now">now <b id="now-connections">–</b></p>
    <div class="chart" id="chart-connections"></div>
  </section>
  <section class="chart-box">
    <p class="now">in <b id="rate-in">–</b> (total <b id="total-in">–</b>) · out <b id="rate-out">–</b> (total <b id="total-out">–</b>)</p>
    <div class="chart" id="chart-messages"></div>
  </section>
  <section class="chart-box">
    <p class="now">totals: refused upgrades <b id="total-refused">–</b> · dropped messages <b id="total-dropped">–</b> · server disconnects <b id="total-disconnects">–</b></p>
    <div class="chart" id="chart-events"></div>
  </section>
  <section class="chart-box">
    <p class="now"><b id="ping-now">–</b> · <span id="ping-pongs">–</span></p>
    <div class="chart" id="chart-ping"></div>
  </section>
</div>
<section id="rooms" hidden>
  <h2>Busiest rooms <span class="muted" id="room-count"></span></h2>
  <table>
    <thead><tr><th>Room</th><th>Members</th><th>Messages/s</th><th>Delivered/s</th></tr></thead>
    <tbody id="room-rows"></tbody>
  </table>
</section>
<h2>Try it</h2>
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

export interface ConsolePage {
  readonly html: string;
  /** The inline scripts, in page order, for the CSP's hashes. */
  readonly scripts: readonly string[];
  readonly style: string;
}

/**
 * The browser console (issues 8 and 19), served at GET / of the WebSocket
 * port: one self-contained page (inline CSS and scripts, uPlot included; no
 * CDN, nothing to fetch but /stats and the WebSocket) with live charts of the
 * server and a client to try it.
 */
export function consolePage(): ConsolePage {
  const uplot = chartLibrary();
  const style = uplot.style + CONSOLE_STYLE;
  const scripts = [uplot.script, CHART_HELPERS, SESSION_SCRIPT, CHARTS_SCRIPT];
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wshub console</title>
<style>${style}</style>
</head>
<body>${BODY}${scripts.map((script) => `<script>${script}</script>`).join('\n')}
</body>
</html>
`;
  return { html, scripts, style };
}
