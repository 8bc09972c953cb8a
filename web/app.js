// The memory dashboard of `orion serve` (docs/dashboard.md).
//
// Live: the manager's events through GET /events (EventSource; reconnects
// when the server restarts). Polled every 2 s: /api/profile (device, tier,
// every served model and its task), /api/ps (loaded models, their bytes and
// idle timers) and /metrics (process memory, budget, pressure, the cache,
// request counts and latency histograms). Each poll adds one point to the
// memory chart. No library: the chart is SVG drawn here.
'use strict';

const POLL_MS = 2000;
const HISTORY = 450;            // points kept: 15 minutes at one per 2 s
const WINDOW_S = 60;            // request rates and percentiles: the last minute
const EVENT_NAMES = ['load_started', 'load_progress', 'loaded', 'load_failed', 'load_cancelled', 'unloaded',
                     'pressure', 'dropped'];
const LEVELS = ['low', 'medium', 'high', 'critical'];
const PALETTE = ['#2563eb', '#16a34a', '#db2777', '#ea580c', '#0891b2', '#7c3aed', '#ca8a04', '#4b5563'];
const BAND_COLOURS = { low: '#bbf7d0', medium: '#fde68a', high: '#fdba74', critical: '#fca5a5' };

const S = {
  key: sessionStorage.getItem('orion.apikey') || '',
  profile: null,          // /api/profile
  ps: new Map(),          // id -> /api/ps entry
  history: [],            // {t, rss, budget, pressure, models: {id: resident}}
  snapshots: [],          // {t, req: Map(endpoint -> {total, buckets})} for rates
  metrics: null,          // the last parsed /metrics
  loading: new Map(),     // id -> {done, total}
  progressSeen: {},       // id -> the largest fraction a load_progress event showed
  colours: new Map(),     // id -> colour
  eventsOpen: false,
  everOpen: false,
  pollOk: false,
  pollTimer: 0,
  rows: new Map(),        // id -> the row's cells
};
window.orionDashboard = S;  // for the end-to-end test and for curious users

const $ = (id) => document.getElementById(id);

// ---- formatting ----------------------------------------------------------------

function fmtBytes(n) {
  if (n === null || n === undefined || !isFinite(n)) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + u[i];
}

function fmtDur(s) {
  if (s === null || s === undefined || !isFinite(s)) return '–';
  if (s < 1) return '<1 s';
  if (s < 90) return Math.round(s) + ' s';
  if (s < 5400) return Math.round(s / 60) + ' min';
  return (s / 3600).toFixed(1) + ' h';
}

function fmtMs(s) {
  if (s === null || !isFinite(s)) return '–';
  const ms = s * 1000;
  return ms < 10 ? ms.toFixed(2) + ' ms' : ms < 1000 ? ms.toFixed(0) + ' ms' : (ms / 1000).toFixed(2) + ' s';
}

function clock(t) {
  const d = t ? new Date(t * 1000) : new Date();
  return d.toLocaleTimeString([], { hour12: false });
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function colourOf(id) {
  if (!S.colours.has(id)) S.colours.set(id, PALETTE[(S.colours.size + 1) % PALETTE.length]);
  return S.colours.get(id);
}

// ---- the server ----------------------------------------------------------------

async function api(path, opts) {
  opts = Object.assign({ cache: 'no-store' }, opts || {});
  opts.headers = Object.assign({}, opts.headers || {});
  if (S.key) opts.headers.Authorization = 'Bearer ' + S.key;
  const r = await fetch(path, opts);
  if (r.status === 401) {
    $('keyform').hidden = false;
    throw new Error('this server wants an API key');
  }
  return r;
}

async function postJSON(path, body) {
  const r = await api(path, { method: 'POST', headers: { 'Content-Type': 'application/json' },
                              body: JSON.stringify(body) });
  let j = null;
  try { j = await r.json(); } catch (e) { j = null; }
  if (!r.ok) throw new Error((j && j.error && j.error.message) || ('HTTP ' + r.status));
  return j;
}

// Prometheus text -> [{name, labels, value}]
function parseProm(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[2]) for (const l of m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: parseFloat(m[3]) });
  }
  return out;
}

function metric(ms, name, labels) {
  let sum = null;
  for (const x of ms) {
    if (x.name !== name) continue;
    if (labels && Object.entries(labels).some(([k, v]) => x.labels[k] !== v)) continue;
    sum = (sum || 0) + x.value;
  }
  return sum;
}

// Per endpoint: total requests and the cumulative latency buckets.
function requestTable(ms) {
  const t = new Map();
  const get = (ep) => {
    if (!t.has(ep)) t.set(ep, { total: 0, buckets: [] });
    return t.get(ep);
  };
  for (const x of ms) {
    if (x.name === 'orion_requests_total') get(x.labels.endpoint).total += x.value;
    else if (x.name === 'orion_request_duration_seconds_bucket')
      get(x.labels.endpoint).buckets.push({ le: x.labels.le === '+Inf' ? Infinity : parseFloat(x.labels.le),
                                            n: x.value });
  }
  for (const v of t.values()) v.buckets.sort((a, b) => a.le - b.le);
  return t;
}

// The q-quantile of a cumulative histogram (linear inside a bucket).
function quantile(buckets, q) {
  const total = buckets.length ? buckets[buckets.length - 1].n : 0;
  if (total <= 0) return null;
  const want = q * total;
  let prevLe = 0, prevN = 0;
  for (const b of buckets) {
    if (b.n >= want) {
      if (b.le === Infinity) return prevLe;  // beyond the last bound: report the bound
      const f = b.n > prevN ? (want - prevN) / (b.n - prevN) : 1;
      return prevLe + (b.le - prevLe) * f;
    }
    prevLe = b.le === Infinity ? prevLe : b.le;
    prevN = b.n;
  }
  return prevLe;
}

// ---- polling -------------------------------------------------------------------

async function poll() {
  clearTimeout(S.pollTimer);
  try {
    const [pr, ps, mt] = await Promise.all([api('/api/profile'), api('/api/ps'), api('/metrics')]);
    if (!pr.ok || !ps.ok || !mt.ok) throw new Error('HTTP ' + [pr.status, ps.status, mt.status].join('/'));
    const profile = await pr.json(), psj = await ps.json(), ms = parseProm(await mt.text());
    S.profile = profile;
    S.ps = new Map((psj.models || []).map((m) => [m.name, m]));
    S.metrics = ms;
    const now = Date.now() / 1000;
    const sample = {
      t: now,
      rss: metric(ms, 'orion_process_resident_bytes') || (profile.process && profile.process.rss) || 0,
      budget: metric(ms, 'orion_memory_budget_bytes') || profile.budget || 0,
      pressure: LEVELS[metric(ms, 'orion_memory_pressure_level') || 0] || profile.pressure,
      models: {},
    };
    for (const [id, m] of S.ps) sample.models[id] = m.resident_bytes || 0;
    S.history.push(sample);
    if (S.history.length > HISTORY) S.history.shift();
    S.snapshots.push({ t: now, req: requestTable(ms) });
    while (S.snapshots.length > 2 && now - S.snapshots[1].t >= WINDOW_S) S.snapshots.shift();
    S.pollOk = true;
    render();
  } catch (e) {
    S.pollOk = false;
  }
  showConn();
  S.pollTimer = setTimeout(poll, POLL_MS);
}

// ---- events --------------------------------------------------------------------

let source = null;

function connectEvents() {
  if (source) { source.close(); source = null; }
  if (S.key) { connectEventsFetch(); return; }  // EventSource cannot send a header
  source = new EventSource('/events');
  source.onopen = () => {
    log('info', null, S.everOpen ? 'reconnected to the server: events resume' : 'connected: events from now on');
    S.everOpen = true;
    S.eventsOpen = true;
    showConn();
    poll();
  };
  source.onerror = () => {
    S.eventsOpen = false;
    showConn();
    // a network error: the browser retries by itself; a refused stream
    // (the server restarting, answering 503) closes it: we retry
    if (source && source.readyState === EventSource.CLOSED) setTimeout(connectEvents, 3000);
  };
  for (const name of EVENT_NAMES)
    source.addEventListener(name, (e) => { try { onEvent(name, JSON.parse(e.data)); } catch (x) { /* not JSON */ } });
}

// With an API key: the same stream read through fetch.
async function connectEventsFetch() {
  try {
    const r = await api('/events');
    if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
    log('info', null, S.everOpen ? 'reconnected to the server: events resume' : 'connected: events from now on');
    S.everOpen = true;
    S.eventsOpen = true;
    showConn();
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let name = 'message', data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) name = line.slice(6).trim();
          else if (line.startsWith('data:')) data += line.slice(5).trim();
        }
        if (data) try { onEvent(name, JSON.parse(data)); } catch (x) { /* not JSON */ }
      }
    }
  } catch (e) { /* retried below */ }
  S.eventsOpen = false;
  showConn();
  setTimeout(connectEvents, 3000);
}

function onEvent(name, d) {
  const id = d.model;
  switch (name) {
  case 'load_started':
    S.loading.set(id, { done: 0, total: 0 });
    log(name, d, `${id}: loading at ${d.level}`);
    break;
  case 'load_progress': {
    S.loading.set(id, { done: d.bytes, total: d.bytes_total });
    const f = d.bytes_total > 0 ? d.bytes / d.bytes_total : 1;
    S.progressSeen[id] = Math.max(S.progressSeen[id] || 0, f);
    break;
  }
  case 'loaded':
    S.loading.delete(id);
    S.progressSeen[id] = Math.max(S.progressSeen[id] || 0, 1);
    log(name, d, `${id}: loaded at ${d.level}, needs ${fmtBytes(d.bytes)}`);
    break;
  case 'load_failed':
    S.loading.delete(id);
    log(name, d, `${id}: load failed (${d.status})`);
    break;
  case 'load_cancelled':
    S.loading.delete(id);
    log(name, d, `${id}: load cancelled`);
    break;
  case 'unloaded':
    S.loading.delete(id);
    log(name, d, `${id}: unloaded, reason ${d.reason}`);
    break;
  case 'pressure':
    log(name, d, `memory pressure ${d.previous} → ${d.pressure}`);
    break;
  case 'dropped':
    log('error', d, 'some events were dropped (the page was too slow)');
    break;
  }
  renderModels();
  if (name !== 'load_progress') setTimeout(poll, 50);  // the bytes behind the event
}

function log(kind, d, text) {
  const li = el('li', { class: 'ev-' + kind, 'data-event': kind },
                el('time', { text: clock(d && d.time) }), el('span', { class: 'kind', text: kind.replace('_', ' ') }),
                el('span', { class: 'text', text }));
  if (d && d.model) li.dataset.model = d.model;
  if (d && d.reason) li.dataset.reason = d.reason;
  const ol = $('events');
  ol.prepend(li);
  while (ol.children.length > 200) ol.lastChild.remove();
}

// ---- actions -------------------------------------------------------------------

async function load(id) {
  if (!S.loading.has(id)) S.loading.set(id, { done: 0, total: 0 });
  renderModels();
  try {
    const j = await postJSON('/api/load', { model: id });
    if (!S.progressSeen[id]) S.progressSeen[id] = 1;  // a model held outside the manager: no events
    if (j && j.seconds !== undefined && !S.eventsOpen) log('loaded', { model: id }, `${id}: loaded in ${j.seconds.toFixed(2)} s`);
  } catch (e) {
    log('error', { model: id }, `${id}: ${e.message}`);
  }
  S.loading.delete(id);
  poll();
}

async function unload(id) {
  try {
    await postJSON('/api/unload', { model: id });
  } catch (e) {
    log('error', { model: id }, `${id}: ${e.message}`);
  }
  poll();
}

async function cancel(id) {
  try {
    await postJSON('/api/load/cancel', { model: id });
  } catch (e) {
    log('error', { model: id }, `${id}: ${e.message}`);
  }
}

// ---- rendering -----------------------------------------------------------------

function showConn() {
  const c = $('conn');
  const live = S.eventsOpen && S.pollOk;
  c.textContent = live ? 'live' : S.pollOk || S.eventsOpen ? 'reconnecting…' : 'server unreachable';
  c.className = 'pill ' + (live ? 'pill-live' : S.pollOk || S.eventsOpen ? 'pill-wait' : 'pill-down');
}

function render() {
  renderDevice();
  renderModels();
  renderCache();
  renderRequests();
  renderChart();
}

function setText(id, text) {
  const e = $(id);
  if (e.textContent !== text) e.textContent = text;
}

function renderDevice() {
  const p = S.profile;
  if (!p) return;
  const last = S.history[S.history.length - 1];
  setText('f-budget', fmtBytes(p.budget));
  setText('f-tier', p.tier.name);
  setText('f-level', p.tier.level);
  setText('f-maxmodels', String(p.tier.max_models));
  setText('f-idle', p.tier.idle_unload_s < 0 ? 'never' : fmtDur(p.tier.idle_unload_s));
  const lvl = (last && last.pressure) || p.pressure;
  const dd = $('f-pressure');
  if (!dd.firstChild || dd.firstChild.textContent !== lvl) dd.replaceChildren(el('span', { class: 'lvl lvl-' + lvl, text: lvl }));
  setText('f-rss', fmtBytes(last ? last.rss : p.process.rss) + (p.process.pss ? ` (PSS ${fmtBytes(p.process.pss)})` : ''));
  setText('f-mem', `${fmtBytes(p.device.mem_available)} free of ${fmtBytes(p.device.mem_total)}` +
                   (p.device.cgroup_max !== null ? `, cgroup ${fmtBytes(p.device.cgroup_max)}` : ''));
  setText('f-cpus', `${p.device.n_cpus} (${p.device.cpu_features || '–'})`);
}

const COLUMNS = ['model', 'task', 'quant', 'state', 'mapped', 'resident', 'refs', 'last', 'until', 'actions'];
const LABELS = { model: 'Model', task: 'Task', quant: 'Quant', state: 'State', mapped: 'Mapped', resident: 'Resident',
                 refs: 'In use', last: 'Last use', until: 'Idle unload in', actions: 'Actions' };

function modelRow(id) {
  if (S.rows.has(id)) return S.rows.get(id);
  const tr = el('tr', { 'data-model': id });
  const cells = { tr, actionsKey: '' };
  for (const c of COLUMNS) {
    const td = el('td', { 'data-label': LABELS[c], class: c === 'actions' ? 'actions-cell' : ['mapped', 'resident', 'refs'].includes(c) ? 'num' : '' });
    cells[c] = td;
    tr.append(td);
  }
  S.rows.set(id, cells);
  return cells;
}

function renderModels() {
  const p = S.profile;
  if (!p) return;
  const tbody = $('models');
  const seen = new Set();
  for (const m of p.models) {
    const id = m.id;
    seen.add(id);
    const ps = S.ps.get(id);
    const loaded = !!ps || m.loaded;
    const ld = S.loading.get(id) || (m.loading ? { done: 0, total: 0 } : null);
    const r = modelRow(id);
    if (r.tr.parentNode !== tbody) tbody.append(r.tr);
    if (!r.model.firstChild) {
      r.model.append(el('span', {}, el('span', { class: 'name', text: id }),
                        m.default ? el('span', { class: 'tag', text: 'default' }) : null));
    }
    r.task.textContent = m.task + (m.arch ? ` · ${m.arch}` : '');
    r.quant.textContent = (ps && ps.level) || m.level || '–';
    const state = ld ? 'loading' : loaded ? 'loaded' : 'not loaded';
    r.state.textContent = state;
    r.state.className = 'state-' + (ld ? 'loading' : loaded ? 'loaded' : 'idle');
    r.tr.dataset.state = state;
    r.mapped.textContent = ps && ps.mapped_bytes !== undefined ? fmtBytes(ps.mapped_bytes) : '–';
    r.resident.textContent = ps ? fmtBytes(ps.resident_bytes) : '–';
    r.refs.textContent = ps && ps.refs !== undefined ? String(ps.refs) : loaded ? '0' : '–';
    r.last.textContent = m.last_used_ago === null ? 'never' : fmtDur(m.last_used_ago) + ' ago';
    let until = '–';
    if (ps && ps.expires_in !== undefined) until = ps.expires_in < 0 ? (ps.refs > 0 ? 'in use' : 'never') : fmtDur(ps.expires_in);
    else if (ps && m.builtin) until = 'never';
    r.until.textContent = until;
    // actions: rebuilt only when the state changes, so a click never hits a replaced button
    const key = state + (m.builtin ? ':b' : '');
    if (r.actionsKey !== key) {
      r.actionsKey = key;
      const box = el('div', { class: 'actions' });
      if (ld) {
        box.append(el('progress', { max: '1', value: '0', 'aria-label': `Loading ${id}` }));
        if (!m.builtin) box.append(el('button', { type: 'button', class: 'danger', 'aria-label': `Cancel loading ${id}`,
                                                  text: 'Cancel', onclick: () => cancel(id) }));
      } else if (loaded) {
        box.append(el('button', { type: 'button', 'aria-label': `Unload ${id}`, text: 'Unload', onclick: () => unload(id) }));
      } else {
        box.append(el('button', { type: 'button', class: 'primary', 'aria-label': `Load ${id}`, text: 'Load',
                                  onclick: () => load(id) }));
      }
      r.actions.replaceChildren(box);
    }
    const bar = r.actions.querySelector('progress');
    if (bar && ld) {
      const f = ld.total > 0 ? ld.done / ld.total : 0;
      bar.value = f;
      bar.textContent = Math.round(f * 100) + '%';
    }
  }
  for (const [id, r] of S.rows) if (!seen.has(id)) { r.tr.remove(); S.rows.delete(id); }
}

function renderCache() {
  const ms = S.metrics;
  if (!ms) return;
  const entries = metric(ms, 'orion_cache_entries');
  if (entries === null) {
    setText('c-entries', 'off');
    return;
  }
  const hits = metric(ms, 'orion_cache_hits_total') || 0, misses = metric(ms, 'orion_cache_misses_total') || 0;
  setText('c-entries', `${entries} of ${metric(ms, 'orion_cache_max_entries')}`);
  setText('c-bytes', `${fmtBytes(metric(ms, 'orion_cache_bytes'))} of ${fmtBytes(metric(ms, 'orion_cache_max_bytes'))}`);
  setText('c-hitrate', hits + misses > 0 ? `${(100 * hits / (hits + misses)).toFixed(1)}% (${hits} / ${hits + misses})` : '–');
  setText('c-evictions', String(metric(ms, 'orion_cache_evictions_total') || 0));
}

function renderRequests() {
  if (S.snapshots.length === 0) return;
  const cur = S.snapshots[S.snapshots.length - 1], old = S.snapshots[0];
  const dt = cur.t - old.t;
  const rows = [];
  for (const [ep, v] of cur.req) {
    if (v.total <= 0 || ep === '/events') continue;  // a stream's "latency" is its lifetime
    const o = old.req.get(ep) || (old !== cur ? { total: 0, buckets: v.buckets.map((b) => ({ le: b.le, n: 0 })) } : null);
    let buckets = v.buckets;
    // percentiles over the window when it saw requests, else since start
    if (o && o.buckets.length === v.buckets.length && v.buckets.length) {
      const d = v.buckets.map((b, i) => ({ le: b.le, n: b.n - o.buckets[i].n }));
      if (d[d.length - 1].n > 0) buckets = d;
    }
    const rate = o && dt > 0 ? (v.total - o.total) / dt : 0;
    rows.push(el('tr', { 'data-endpoint': ep },
                 el('td', { text: ep === 'other' ? 'other (page, 404s)' : ep }),
                 el('td', { class: 'num', text: rate.toFixed(rate < 10 ? 2 : 1) }),
                 el('td', { class: 'num', text: fmtMs(quantile(buckets, 0.5)) }),
                 el('td', { class: 'num', text: fmtMs(quantile(buckets, 0.99)) }),
                 el('td', { class: 'num', text: String(v.total) })));
  }
  if (rows.length) $('requests').replaceChildren(...rows);
}

// ---- the chart -------------------------------------------------------------------

function renderChart() {
  const g = $('memchart');
  const H = S.history;
  g.dataset.points = String(H.length);
  if (H.length === 0) return;
  // the viewBox is the element's size in pixels, so text is never stretched
  const W = Math.max(280, Math.round(g.clientWidth || 800)), HT = Math.max(160, Math.round(g.clientHeight || 260));
  g.setAttribute('viewBox', `0 0 ${W} ${HT}`);
  const L = 64, R = 10, T = 12, B = 36, BAND = 10;
  const now = H[H.length - 1].t;
  const span = Math.max(60, Math.min(now - H[0].t, HISTORY * POLL_MS / 1000));
  setText('chart-span', span < 120 ? `${Math.round(span)} s` : `${Math.round(span / 60)} minutes`);
  const t0 = now - span;
  const ids = [];
  for (const h of H) for (const id of Object.keys(h.models)) if (!ids.includes(id)) ids.push(id);
  let top = 1;
  for (const h of H) {
    top = Math.max(top, h.rss);
    for (const v of Object.values(h.models)) top = Math.max(top, v);
  }
  const budget = H[H.length - 1].budget;
  const budgetOn = budget > 0 && budget <= top * 1.6;  // else it would flatten everything: noted at the top
  if (budgetOn) top = Math.max(top, budget);
  top *= 1.1;
  const x = (t) => L + (W - L - R) * (t - t0) / span;
  const y = (v) => T + (HT - T - B) * (1 - v / top);
  const kids = [];
  for (let i = 0; i <= 4; i++) {
    const v = top * i / 4, yy = y(v);
    kids.push(svg('line', { class: 'grid', x1: L, x2: W - R, y1: yy, y2: yy }));
    const label = svg('text', { class: 'axis', x: L - 6, y: yy + 4, 'text-anchor': 'end' });
    label.textContent = fmtBytes(v);
    kids.push(label);
  }
  for (const [frac, text] of [[0, `-${Math.round(span)} s`], [1, 'now']]) {
    const label = svg('text', { class: 'axis', x: L + (W - L - R) * frac, y: HT - 4, 'text-anchor': frac ? 'end' : 'start' });
    label.textContent = span >= 120 && !frac ? `-${Math.round(span / 60)} min` : text;
    kids.push(label);
  }
  // pressure band
  const by = HT - B + 6;
  for (let i = 0; i < H.length; i++) {
    const xa = x(Math.max(t0, i ? H[i - 1].t : H[i].t - POLL_MS / 1000)), xb = x(H[i].t);
    if (xb <= L) continue;
    const r = svg('rect', { x: Math.max(L, xa), y: by, width: Math.max(1, xb - Math.max(L, xa)), height: BAND,
                            fill: BAND_COLOURS[H[i].pressure] || BAND_COLOURS.low });
    const tip = svg('title');
    tip.textContent = `pressure ${H[i].pressure}`;
    r.append(tip);
    kids.push(r);
  }
  const line = (pts, attrs) => {
    if (pts.length === 0) return;
    const d = pts.map(([t, v], i) => `${i ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    kids.push(svg('path', Object.assign({ d, fill: 'none', 'stroke-width': 2, 'stroke-linejoin': 'round' }, attrs)));
    if (pts.length === 1) kids.push(svg('circle', { cx: x(pts[0][0]), cy: y(pts[0][1]), r: 2.5, fill: attrs.stroke }));
  };
  if (budgetOn) line(H.map((h) => [h.t, h.budget]), { stroke: '#6b7280', 'stroke-dasharray': '6 4', class: 'series-budget' });
  else if (budget > 0) {
    const note = svg('text', { class: 'axis', x: W - R, y: T + 10, 'text-anchor': 'end' });
    note.textContent = `budget ${fmtBytes(budget)} (above the scale)`;
    kids.push(note);
  }
  line(H.map((h) => [h.t, h.rss]), { stroke: '#111827', class: 'series-rss' });
  for (const id of ids) {
    // a model's line runs while it is loaded; it is 0 in between
    line(H.map((h) => [h.t, h.models[id] || 0]), { stroke: colourOf(id), class: 'series-model', 'data-model': id });
  }
  g.replaceChildren(...kids);
  const legend = [el('li', {}, el('span', { class: 'sw', 'aria-hidden': 'true' }), 'process RSS'),
                  el('li', {}, el('span', { class: 'sw sw-dash', 'aria-hidden': 'true' }),
                     `budget ${fmtBytes(budget)}${budgetOn ? '' : ' (off scale)'}`)];
  legend[0].firstChild.style.background = '#111827';
  for (const id of ids) {
    const sw = el('span', { class: 'sw', 'aria-hidden': 'true' });
    sw.style.background = colourOf(id);
    legend.push(el('li', {}, sw, `${id} resident`));
  }
  legend.push(el('li', {}, el('span', { class: 'sw sw-band', 'aria-hidden': 'true' }), 'pressure: low → critical'));
  $('legend').replaceChildren(...legend);
}

// ---- start -------------------------------------------------------------------------

$('keyform').addEventListener('submit', (e) => {
  e.preventDefault();
  S.key = $('apikey').value.trim();
  sessionStorage.setItem('orion.apikey', S.key);
  $('keyform').hidden = true;
  connectEvents();
  poll();
});
window.addEventListener('resize', () => renderChart());
connectEvents();
poll();
