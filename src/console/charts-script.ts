/**
 * The console's live charts (issue 19): polls GET /stats once a second and
 * draws the last five minutes — open connections, messages in/out per second,
 * refusals, drops and server disconnects per second by reason, ping
 * round-trip percentiles — and the busiest rooms in broadcast mode. Rates are
 * differences of the server's cumulative counters over the server's own clock,
 * as Prometheus' rate() does, so a missed poll loses no message from the totals.
 * Runs after uPlot and CHART_HELPERS; reads the token from #token.
 */
export const CHARTS_SCRIPT = `
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const KEEP = 300;
  const POLL_MS = 1000;
  const snapshots = [];
  const charts = [];
  let eventKeys = [];
  let pingWindowMs = 10000;

  const t = [];
  const open = [];
  const messagesIn = [];
  const messagesOut = [];
  const p50 = [];
  const p90 = [];
  const p99 = [];
  const events = new Map();

  const eventLabel = (key) => {
    const [kind, reason] = key.split(':');
    return { dropped: 'drop ', serverDisconnects: 'disconnect ', upgradesRejected: 'refused ' }[kind] + reason.replace(/_/g, ' ');
  };

  function chartEntry(id) {
    return charts.find((entry) => entry.container.id === id);
  }

  function build(id, options) {
    const container = $(id);
    const old = chartEntry(id);
    if (old) {
      old.chart.destroy();
      charts.splice(charts.indexOf(old), 1);
    }
    container.replaceChildren();
    charts.push({ container, chart: wshubChart(container, options) });
  }

  function buildAll() {
    build('chart-connections', { title: 'Open connections', yLabel: 'connections', series: [{ label: 'open' }], data: [t, open] });
    build('chart-messages', {
      title: 'Messages per second',
      yLabel: 'messages/s',
      series: [{ label: 'in (from clients)' }, { label: 'out (to clients)', color: WSHUB_COLORS[1] }],
      data: [t, messagesIn, messagesOut],
    });
    build('chart-ping', {
      title: 'Ping round trip',
      yLabel: 'ms',
      series: [{ label: 'p50', unit: 'ms' }, { label: 'p90', unit: 'ms', color: WSHUB_COLORS[3] }, { label: 'p99', unit: 'ms', color: WSHUB_COLORS[2] }],
      data: [t, p50, p90, p99],
    });
    buildEvents();
  }

  function buildEvents() {
    const keys = eventKeys.length ? eventKeys : [];
    build('chart-events', {
      title: 'Refusals, drops and server disconnects per second',
      yLabel: 'events/s',
      series: keys.length ? keys.map((key, i) => ({ label: eventLabel(key), color: WSHUB_COLORS[(i + 2) % WSHUB_COLORS.length] })) : [{ label: 'none so far', color: '#888' }],
      data: [t].concat(keys.length ? keys.map((key) => events.get(key)) : [t.map(() => 0)]),
    });
  }

  const counterKeys = (snapshot) => {
    const keys = [];
    for (const kind of ['upgradesRejected', 'dropped', 'serverDisconnects']) {
      for (const reason of Object.keys(snapshot[kind] || {})) keys.push(kind + ':' + reason);
    }
    return keys;
  };
  const counterOf = (snapshot, key) => {
    const [kind, reason] = key.split(':');
    return (snapshot[kind] || {})[reason] || 0;
  };

  function rate(before, after, read) {
    if (!before) return null;
    const seconds = (after.time - before.time) / 1000;
    const delta = read(after) - read(before);
    return seconds > 0 && delta >= 0 ? delta / seconds : null;
  }

  // histogram_quantile over the buckets' increase: linear inside the bucket, the last finite bound above it.
  function quantile(q, bounds, counts) {
    const total = counts.reduce((a, b) => a + b, 0);
    if (total <= 0) return null;
    const rank = q * total;
    let seen = 0;
    for (let i = 0; i < counts.length; i++) {
      if (seen + counts[i] >= rank && counts[i] > 0) {
        if (i >= bounds.length) return bounds[bounds.length - 1];
        const lower = i === 0 ? 0 : bounds[i - 1];
        return lower + (bounds[i] - lower) * ((rank - seen) / counts[i]);
      }
      seen += counts[i];
    }
    return bounds[bounds.length - 1];
  }

  function pingWindow(latest) {
    let oldest = null;
    for (let i = snapshots.length - 1; i >= 0; i--) {
      const snapshot = snapshots[i];
      if (!snapshot) continue;
      oldest = snapshot;
      if (latest.time - snapshot.time >= pingWindowMs) break;
    }
    if (!oldest || oldest === latest) return null;
    const counts = latest.pingRtt.counts.map((count, i) => count - (oldest.pingRtt.counts[i] || 0));
    if (counts.some((count) => count < 0)) return null;
    return counts;
  }

  function show(id, value, text) {
    const element = $(id);
    element.dataset.value = String(value);
    element.textContent = text;
  }

  function record(snapshot) {
    const previous = snapshots.length ? snapshots[snapshots.length - 1] : null;
    snapshots.push(snapshot);
    t.push((snapshot ? snapshot.time : Date.now()) / 1000);
    if (!snapshot) {
      for (const column of [open, messagesIn, messagesOut, p50, p90, p99]) column.push(null);
      for (const column of events.values()) column.push(null);
    } else {
      open.push(snapshot.connections);
      messagesIn.push(rate(previous, snapshot, (s) => s.messagesIn));
      messagesOut.push(rate(previous, snapshot, (s) => s.messagesOut));
      const window = pingWindow(snapshot);
      const bounds = snapshot.pingRtt.bounds;
      const ms = (q) => {
        const seconds = window ? quantile(q, bounds, window) : null;
        return seconds === null ? null : seconds * 1000;
      };
      p50.push(ms(0.5));
      p90.push(ms(0.9));
      p99.push(ms(0.99));
      let added = false;
      for (const key of counterKeys(snapshot)) {
        const value = rate(previous, snapshot, (s) => counterOf(s, key));
        if (!events.has(key)) events.set(key, t.slice(0, -1).map(() => null));
        events.get(key).push(value);
        if (value > 0 && !eventKeys.includes(key)) {
          eventKeys.push(key);
          added = true;
        }
      }
      if (added) buildEvents();
      showNumbers(snapshot, previous, window);
      showRooms(snapshot);
    }
    if (t.length > KEEP) {
      snapshots.shift();
      for (const column of [t, open, messagesIn, messagesOut, p50, p90, p99]) column.shift();
      for (const column of events.values()) column.shift();
    }
    for (const entry of charts) {
      const id = entry.container.id;
      const data = {
        'chart-connections': [t, open],
        'chart-messages': [t, messagesIn, messagesOut],
        'chart-ping': [t, p50, p90, p99],
        'chart-events': [t].concat(eventKeys.length ? eventKeys.map((key) => events.get(key)) : [t.map(() => 0)]),
      }[id];
      entry.chart.setData(data);
      entry.container.dataset.points = String(t.length);
    }
  }

  function showNumbers(snapshot, previous, window) {
    const plural = (n, word) => wshubFormat(n) + ' ' + word + (n === 1 ? '' : 's');
    $('server').textContent = plural(snapshot.connections, 'connection') + ' open on the server (' + snapshot.mode + ' mode' +
      (snapshot.workers > 1 ? ', ' + snapshot.workers + ' workers' : '') + ')';
    show('now-connections', snapshot.connections, wshubFormat(snapshot.connections) + ' open');
    const last = (column) => column[column.length - 1];
    show('rate-in', last(messagesIn), wshubFormat(last(messagesIn)) + '/s');
    show('rate-out', last(messagesOut), wshubFormat(last(messagesOut)) + '/s');
    show('ping-now', last(p99), 'p50 ' + wshubFormat(last(p50)) + ' · p90 ' + wshubFormat(last(p90)) + ' · p99 ' + wshubFormat(last(p99)) + ' ms');
    show('total-in', snapshot.messagesIn, wshubFormat(snapshot.messagesIn));
    show('total-out', snapshot.messagesOut, wshubFormat(snapshot.messagesOut));
    const sum = (record) => Object.values(record || {}).reduce((a, b) => a + b, 0);
    show('total-refused', sum(snapshot.upgradesRejected), wshubFormat(sum(snapshot.upgradesRejected)));
    show('total-dropped', sum(snapshot.dropped), wshubFormat(sum(snapshot.dropped)));
    show('total-disconnects', sum(snapshot.serverDisconnects), wshubFormat(sum(snapshot.serverDisconnects)));
    const pongs = window ? window.reduce((a, b) => a + b, 0) : 0;
    show('ping-pongs', snapshot.pingRtt.count, wshubFormat(pongs) + ' pongs in the last ' + Math.round(pingWindowMs / 1000) + ' s, ' + wshubFormat(snapshot.pingRtt.count) + ' in all');
    const stamp = new Date(snapshot.time).toLocaleTimeString('en-GB');
    $('live-state').textContent = 'updated ' + stamp;
    $('live-state').dataset.state = 'live';
  }

  function showRooms(snapshot) {
    const section = $('rooms');
    if (!snapshot.rooms) {
      section.hidden = true;
      return;
    }
    section.hidden = false;
    $('room-count').textContent = wshubFormat(snapshot.rooms.count) + (snapshot.rooms.count === 1 ? ' room' : ' rooms') + ' with members';
    const rows = snapshot.rooms.busiest.map((room) => {
      const row = document.createElement('tr');
      const name = document.createElement('td');
      if (room.room === '') {
        name.textContent = '(default room, /ws)';
        name.className = 'muted';
      } else name.textContent = room.room;
      row.append(name);
      for (const value of [room.members, room.messagesPerSecond, room.deliveredPerSecond]) {
        const cell = document.createElement('td');
        cell.textContent = wshubFormat(value);
        row.append(cell);
      }
      return row;
    });
    $('room-rows').replaceChildren(...rows);
  }

  async function poll() {
    const token = $('token').value.trim();
    try {
      const response = await fetch('stats', { cache: 'no-store', headers: token ? { Authorization: 'Bearer ' + token } : {} });
      if (!response.ok) {
        const hint = response.status === 401 || response.status === 403 ? ' — enter an access token above' : '';
        throw new Error('HTTP ' + response.status + hint);
      }
      const snapshot = await response.json();
      pingWindowMs = Math.min(60000, Math.max(10000, snapshot.pingIntervalMs || 0));
      record(snapshot);
    } catch (error) {
      record(null);
      $('live-state').textContent = 'stats unavailable (' + error.message + ')';
      $('live-state').dataset.state = 'error';
      $('server').textContent = 'server stats unavailable (' + error.message + ')';
    }
    setTimeout(poll, POLL_MS);
  }

  buildAll();
  wshubResizeWithWindow(() => charts);
  poll();
})();
`;
