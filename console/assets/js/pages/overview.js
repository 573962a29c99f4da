// Overview: each health component (GET /health every 2 s), charts from
// /metrics (polled every 2 s, rates computed here over a bounded
// window), the newest contexts (live over /v1/events) and the newest
// incidents.

import { h, fill, section, badge, timeEl, bytes, num, clip, errorBox, dur, ago } from '../dom.js';
import { get, text } from '../api.js';
import { parse, sum, value } from '../metrics.js';
import { Chart } from '../charts.js';
import * as searchlog from '../searchlog.js';

const POLL = 2000;
const RECENT = 8;

export async function render(main, ctx) {
  const overall = h('span', { id: 'overall' });
  const healthGrid = h('div', { class: 'grid health', id: 'health' });
  const healthErr = h('div');
  const chartsGrid = h('div', { class: 'grid charts', id: 'charts' });
  const recentList = h('ol', { class: 'feed', id: 'recent' });
  const incidentsList = h('ol', { class: 'feed', id: 'incidents' });
  fill(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Overview'), overall),
    section('Health', healthErr, healthGrid),
    section('Activity', h('p', { class: 'muted small' }, 'From /metrics every 2 s; the last 10 minutes this page was open.'), chartsGrid),
    h('div', { class: 'cols' },
      section('Newest contexts', recentList, h('p', {}, h('a', { href: '#/contexts' }, 'All contexts →'))),
      section('Newest incidents', incidentsList, h('p', {}, h('a', { href: '#/recovery' }, 'Recovery →')))));

  const charts = {
    writes: new Chart('New contexts / s', [{ label: 'contexts/s', color: '--c1' }], (v) => v.toFixed(v < 10 ? 2 : 0), { id: 'writes', note: 'Change of nexus_contexts between samples.' }),
    search: new Chart('Search latency', [{ label: 'ms', color: '--c2' }], (v) => `${v.toFixed(v < 10 ? 2 : 0)} ms`, { id: 'search', points: true }),
    lag: new Chart('Index lag', [{ label: 'contexts', color: '--c3' }], (v) => num(Math.round(v)), { id: 'lag', note: 'nexus_index_lag_contexts: contexts not yet searchable.' }),
    cache: new Chart('Cache hit ratio', [{ label: 'hit ratio', color: '--c4' }], (v) => `${(v * 100).toFixed(0)} %`, { id: 'cache', range: [0, 1], note: 'Hits over hits and misses between samples (nexus_cache_hits_total, nexus_cache_misses_total).' }),
    disk: new Chart('Disk free', [{ label: 'free', color: '--c5' }], (v) => bytes(v), { id: 'disk', note: 'nexus_disk_free_bytes of the data directory.' }),
    recov: new Chart('Recoveries', [{ label: 'recovered', color: '--good' }, { label: 'failed', color: '--bad' }], (v) => num(Math.round(v)), { id: 'recoveries', note: 'Recovery attempts since this page opened, by result (nexus_recovery_total).' }),
  };
  for (const c of Object.values(charts)) {
    chartsGrid.append(c.el);
    ctx.cleanup(() => c.destroy());
  }

  let prev = null;
  let lastSearchCheck = Date.now() - 600_000; // the searches of the last 10 minutes
  let base = null; // recoveries at the first sample
  const sample = async () => {
    const m = parse(await text('/metrics', { signal: ctx.signal }));
    const now = Date.now();
    const t = now / 1000;
    const cur = {
      t,
      contexts: sum(m, 'nexus_contexts'),
      hits: sum(m, 'nexus_cache_hits_total'),
      misses: sum(m, 'nexus_cache_misses_total'),
      searchSum: sum(m, 'nexus_http_request_duration_seconds_sum', { route: 'POST /v1/search' }),
      searchCount: sum(m, 'nexus_http_request_duration_seconds_count', { route: 'POST /v1/search' }),
      recovered: sum(m, 'nexus_recovery_total', { result: 'recovered' }) ?? sum(m, 'nexus_recovery_total', { result: 'ok' }) ?? 0,
      failed: sum(m, 'nexus_recovery_total', { result: 'failed' }) ?? 0,
    };
    if (!base) base = { recovered: cur.recovered, failed: cur.failed };
    const dt = prev ? cur.t - prev.t : 0;
    charts.writes.push(t, [prev && dt > 0 && cur.contexts !== null ? Math.max(0, (cur.contexts - prev.contexts) / dt) : null]);
    if (cur.searchCount !== null) {
      // The node's own figure (every POST /v1/search it answered): the mean between samples.
      charts.search.el.querySelector('.chart-note')?.remove();
      let lat = null;
      if (prev && cur.searchCount > prev.searchCount) lat = ((cur.searchSum - prev.searchSum) / (cur.searchCount - prev.searchCount)) * 1000;
      charts.search.push(t, [lat]);
    } else {
      // Otherwise one point per search of this console, at its time.
      for (const x of searchlog.since(lastSearchCheck)) charts.search.push(x.at / 1000, [x.ms]);
    }
    lastSearchCheck = now;
    charts.lag.push(t, [value(m, 'nexus_index_lag_contexts')]);
    let ratio = null;
    if (prev && cur.hits !== null) {
      const dh = cur.hits - prev.hits;
      const dm = cur.misses - prev.misses;
      if (dh + dm > 0) ratio = dh / (dh + dm);
    }
    charts.cache.push(t, [ratio]);
    charts.disk.push(t, [value(m, 'nexus_disk_free_bytes')]);
    charts.recov.push(t, [cur.recovered - base.recovered, cur.failed - base.failed]);
    prev = cur;
  };
  charts.search.el.append(h('p', { class: 'chart-note muted' }, 'The node reports no search latency on /metrics: this is the took_ms of the searches made from this console.'));

  const health = async () => {
    let body;
    try {
      body = await get('/health', { signal: ctx.signal, okStatuses: [503] });
      fill(healthErr);
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      fill(healthErr, errorBox(err));
      return;
    }
    fill(overall, badge(body.status));
    const cards = Object.entries(body.components || {}).sort(([a], [b]) => a.localeCompare(b)).map(([name, c]) => component(name, c));
    fill(healthGrid, cards);
  };

  const recent = async () => {
    const page = await get(`/v1/contexts?limit=${RECENT}`, { signal: ctx.signal });
    fill(recentList, page.contexts.map((c) => contextItem(c)));
    if (!page.contexts.length) recentList.append(h('li', { class: 'muted empty' }, 'No contexts yet.'));
  };
  ctx.on('context', (c) => {
    recentList.querySelector('.empty')?.remove();
    if (recentList.querySelector(`[data-id="${c.id}"]`)) return;
    const li = contextItem(c);
    li.classList.add('fresh');
    recentList.prepend(li);
    while (recentList.children.length > RECENT) recentList.lastElementChild.remove();
    if (c.namespace === 'incidents') incidents().catch(() => {});
  });
  ctx.on('restore', () => recent());

  const incidents = async () => {
    const page = await get('/v1/incidents?limit=5', { signal: ctx.signal });
    fill(incidentsList, page.incidents.map((i) => h('li', {},
      h('a', { href: '#/recovery', 'data-row': true }, badge(i.status), ' ', h('strong', {}, i.kind === 'restore' ? 'restore' : i.component), ' ', clip(i.cause, 100)),
      ' ', h('span', { class: 'muted' }, timeEl(i.detected_at)))));
    if (!page.incidents.length) incidentsList.append(h('li', { class: 'muted empty' }, 'No incidents.'));
  };

  await Promise.all([
    ctx.every(POLL, health),
    ctx.every(POLL, sample),
    recent(),
    incidents().catch((err) => fill(incidentsList, h('li', {}, errorBox(err)))),
  ]);
  ctx.ready();
}

// KEY are the figures a component's card shows first, with their
// labels; all of them are behind "All figures".
const KEY = {
  context_manager: [['contexts', 'contexts'], ['head', 'head']],
  git_repository: [['packs', 'packs'], ['pack_bytes', 'size']],
  memory_cache: [['entries', 'entries'], ['hit_rate', 'hit rate']],
  semantic_index: [['indexed', 'indexed'], ['lag', 'lag']],
  backups: [['newest_backup', 'newest'], ['backup.failures', 'failures']],
  agents: [['agents', 'own'], ['external_agents.active', 'external'], ['tasks.queued', 'queued']],
  predictions: [['disk.free_bytes', 'disk free'], ['disk.full_in_seconds', 'full in']],
};

// component is the card of one health component: its status, its error,
// its key figures and, folded, all its figures.
function component(name, c) {
  const rows = [];
  flatten('', c.details || {}, rows);
  const want = KEY[name] || rows.slice(0, 2).map(([k]) => [k, k]);
  const key = want.map(([k, label]) => {
    const r = rows.find(([x]) => x === k);
    return r ? [label, r[1]] : null;
  }).filter(Boolean);
  const list = (rs) => h('dl', { class: 'kv small' }, rs.map(([k, v]) => [h('dt', {}, k.replace(/_/g, ' ')), h('dd', {}, v)]));
  return h('article', { class: `component s-${c.status}`, dataset: { component: name, status: c.status } },
    h('header', {}, h('h3', {}, name.replace(/_/g, ' ')), badge(c.status)),
    c.error ? h('p', { class: 'error small' }, clip(c.error, 300)) : null,
    key.length ? list(key) : null,
    rows.length > key.length ? h('details', { class: 'small' }, h('summary', {}, 'All figures'), list(rows)) : null);
}

function flatten(prefix, obj, rows) {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v)) flatten(key, v, rows);
    else if (Array.isArray(v)) rows.push([key, v.length > 3 ? `${v.length} items` : v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', ')]);
    else rows.push([key, fmtDetail(k, v)]);
  }
}

function fmtDetail(k, v) {
  if (typeof v === 'number') {
    if (/seconds$/.test(k) && v > 0) return dur(v * 1e9);
    if (/bytes/.test(k)) return bytes(v);
    if (/rate|ratio/.test(k) && v <= 1) return `${(v * 100).toFixed(1)} %`;
    return num(v);
  }
  if (typeof v === 'string' && /^[0-9a-f]{40}$/.test(v)) return v.slice(0, 12);
  if (typeof v === 'string' && /^\d{4}-\d\d-\d\dT/.test(v)) return ago(v);
  return String(v);
}

export function contextItem(c) {
  return h('li', { dataset: { id: c.id } },
    h('a', { href: `#/contexts/${c.id}`, 'data-row': true },
      h('span', { class: 'type' }, c.type), ' ',
      h('span', { class: 'ns' }, c.namespace), ' ',
      h('span', { class: 'content' }, clip(c.content, 140))),
    ' ', h('span', { class: 'muted small' }, c.agent_id, ' · ', timeEl(c.timestamp)));
}
