// Building the page: elements are made with h() and filled with text
// nodes only (never innerHTML), so nothing the API returns can become
// markup or script.

// h(tag, attrs, ...children) makes an element. attrs: "class", "text",
// "dataset" (an object), "on<event>" (a function, added as a listener),
// a boolean (set or left out), anything else set as an attribute.
// Children are nodes, strings (text), arrays of them, or null/false
// (skipped).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

// clear empties el and fills it with children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// time formats an RFC 3339 time (or a Date) as local date and time.
export function time(t) {
  if (!t) return '—';
  const d = t instanceof Date ? t : new Date(t);
  if (isNaN(d)) return String(t);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// ago says how long before now t was ("12 s ago", "in 30 s" for the future).
export function ago(t, now = Date.now()) {
  if (!t) return '—';
  const ms = now - new Date(t).getTime();
  if (isNaN(ms)) return String(t);
  const s = Math.round(Math.abs(ms) / 1000);
  let v;
  if (s < 60) v = `${s} s`;
  else if (s < 3600) v = `${Math.round(s / 60)} min`;
  else if (s < 86400) v = `${Math.round(s / 3600)} h`;
  else v = `${Math.round(s / 86400)} d`;
  return ms >= 0 ? `${v} ago` : `in ${v}`;
}

// timeEl is a <time> showing the local time, with the exact time as its
// title.
export function timeEl(t) {
  return h('time', { datetime: t || '', title: t ? `${t} (${ago(t)})` : '' }, time(t));
}

// bytes formats a number of bytes.
export function bytes(n) {
  if (n === null || n === undefined || isNaN(n)) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${u[i]}`;
}

// num formats a count with thousands separators.
export function num(n) {
  if (n === null || n === undefined || isNaN(n)) return '—';
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: 2 });
}

// dur formats nanoseconds.
export function dur(ns) {
  if (ns === null || ns === undefined || isNaN(ns)) return '—';
  const ms = ns / 1e6;
  if (ms < 1) return `${(ns / 1e3).toFixed(0)} µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
  const s = ms / 1000;
  if (s < 120) return `${s.toFixed(1)} s`;
  return `${(s / 60).toFixed(1)} min`;
}

// short is the start of a long id or hash, with the whole as its title.
export function short(s, n = 12) {
  if (!s) return h('span', { class: 'muted' }, '—');
  return h('code', { title: s, class: 'id' }, s.length > n ? s.slice(0, n) + '…' : s);
}

// clip shortens text for a table cell.
export function clip(s, n = 160) {
  s = String(s ?? '');
  return s.length > n ? s.slice(0, n) + '…' : s;
}

// badge shows a status word, coloured by what it means.
export function badge(status) {
  const s = String(status ?? 'unknown');
  return h('span', { class: `badge s-${tone(s)}`, dataset: { status: s } }, s);
}

function tone(s) {
  switch (s) {
    case 'healthy': case 'active': case 'done': case 'recovered': case 'closed': case 'running':
    case 'leader': case 'cleared': case 'restored': case 'ok':
      return 'good';
    case 'degraded': case 'queued': case 'claimed': case 'completing': case 'half-open': case 'half_open':
    case 'open': case 'starting': case 'backoff': case 'follower': case 'candidate': case 'warning':
      return 'warn';
    case 'unhealthy': case 'failed': case 'lost': case 'auth_failed': case 'stopped': case 'exited':
    case 'shutdown': case 'error':
      return 'bad';
    default:
      return 'neutral';
  }
}

// table makes a table from column headers and rows of cells; rows may
// carry attributes as row.attrs.
export function table(headers, rows, opts = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', { class: opts.class || '' },
      opts.caption ? h('caption', {}, opts.caption) : null,
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows.length ? rows.map((r) => row(r)) :
        h('tr', {}, h('td', { colspan: headers.length, class: 'muted empty' }, opts.empty || 'Nothing here.')))));
}

export function row(cells) {
  return h('tr', cells.attrs || {}, cells.map((c) => h('td', {}, c)));
}

// kv is a definition list of [label, value] pairs (values may be nodes).
export function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '—')]));
}

// section is a titled block of a page.
export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', {}, title), ...children);
}

// errorBox shows an API error.
export function errorBox(err) {
  const code = err && err.code ? `${err.code}: ` : '';
  return h('p', { class: 'error', role: 'alert' }, code + (err && err.message ? err.message : String(err)));
}

// localInput turns the value of an <input type="datetime-local"> into
// RFC 3339 (UTC), or "" when empty.
export function localInput(v) {
  if (!v) return '';
  const d = new Date(v);
  return isNaN(d) ? '' : d.toISOString();
}

// toLocalInput is the value for an <input type="datetime-local"> of an
// RFC 3339 time.
export function toLocalInput(t) {
  if (!t) return '';
  const d = new Date(t);
  if (isNaN(d)) return '';
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
