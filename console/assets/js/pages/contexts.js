// Contexts: the memory one page at a time (GET /v1/contexts with limit
// and cursor, never the whole list), filtered by namespace, type, agent
// and time; new contexts matching the filters appear at the top live
// (/v1/events) while the newest page is shown.

import { h, fill, timeEl, clip, errorBox, table, localInput, toLocalInput } from '../dom.js';
import { get, query } from '../api.js';
import { setQuery } from '../route.js';

const LIMIT = 50;
export const TYPES = ['instruction', 'conversation', 'code', 'document', 'analysis', 'decision', 'memory',
  'observation', 'result', 'summary', 'agent_state', 'error', 'incident'];

export async function render(main, ctx, { params }) {
  const f = {
    namespace: params.get('namespace') || '',
    type: params.get('type') || '',
    agent: params.get('agent') || '',
    since: params.get('since') || '',
    until: params.get('until') || '',
  };
  let cursor = params.get('cursor') || '';
  const back = []; // cursors of the pages before this one
  const input = (name, label, attrs = {}) => [h('label', { for: `f-${name}` }, label), h('input', { id: `f-${name}`, name, value: f[name], ...attrs })];
  const typeSel = h('select', { id: 'f-type', name: 'type' }, h('option', { value: '' }, 'any'),
    TYPES.map((t) => h('option', { value: t, selected: t === f.type }, t)));
  const since = h('input', { id: 'f-since', name: 'since', type: 'datetime-local', step: '1', value: toLocalInput(f.since) });
  const until = h('input', { id: 'f-until', name: 'until', type: 'datetime-local', step: '1', value: toLocalInput(f.until) });
  const form = h('form', { class: 'filters', id: 'filters' },
    h('div', {}, input('namespace', 'Namespace', { placeholder: 'any', autocomplete: 'off', pattern: '[a-z0-9][a-z0-9._\\-]{0,63}' })),
    h('div', {}, h('label', { for: 'f-type' }, 'Type'), typeSel),
    h('div', {}, input('agent', 'Agent', { placeholder: 'any', autocomplete: 'off' })),
    h('div', {}, h('label', { for: 'f-since' }, 'Since'), since),
    h('div', {}, h('label', { for: 'f-until' }, 'Until'), until),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Filter'), h('button', { type: 'reset', class: 'ghost' }, 'Clear')));
  const list = h('div', { id: 'list' });
  const status = h('p', { class: 'muted small', id: 'list-status' });
  const prevBtn = h('button', { type: 'button', class: 'ghost', 'data-key': 'prev' }, '← Newer');
  const nextBtn = h('button', { type: 'button', class: 'ghost', 'data-key': 'next' }, 'Older →');
  const firstBtn = h('button', { type: 'button', class: 'ghost' }, 'Newest');
  fill(main, h('div', { class: 'page-head' }, h('h1', {}, 'Contexts')), form, h('section', { class: 'card' }, status, list,
    h('div', { class: 'pager' }, firstBtn, prevBtn, nextBtn)));

  let rows = [];
  let next = '';
  const tbody = () => list.querySelector('tbody');

  const load = async () => {
    const q = query({ limit: LIMIT, cursor, namespace: f.namespace, type: f.type, agent: f.agent, since: f.since, until: f.until });
    let page;
    try {
      page = await get(`/v1/contexts${q}`, { signal: ctx.signal });
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      fill(list, errorBox(err));
      status.textContent = '';
      return;
    }
    rows = page.contexts;
    next = page.next_cursor || '';
    fill(list, table(['Time', 'Type', 'Namespace', 'Agent', 'Content', 'Thread'], rows.map(rowOf), { class: 'contexts', empty: 'No context matches.' }));
    status.textContent = `${rows.length} contexts on this page${cursor ? '' : ' (newest first; new ones appear here live)'}.`;
    nextBtn.disabled = !next;
    prevBtn.disabled = back.length === 0;
    firstBtn.disabled = !cursor;
    setQuery({ ...f, cursor });
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    f.namespace = form.elements.namespace.value.trim();
    f.type = typeSel.value;
    f.agent = form.elements.agent.value.trim();
    f.since = localInput(since.value);
    f.until = localInput(until.value);
    cursor = '';
    back.length = 0;
    load();
  });
  form.addEventListener('reset', () => {
    for (const k of Object.keys(f)) f[k] = '';
    cursor = '';
    back.length = 0;
    setTimeout(load);
  });
  nextBtn.addEventListener('click', () => {
    if (!next) return;
    back.push(cursor);
    cursor = next;
    load();
  });
  prevBtn.addEventListener('click', () => {
    if (!back.length) return;
    cursor = back.pop();
    load();
  });
  firstBtn.addEventListener('click', () => {
    cursor = '';
    back.length = 0;
    load();
  });

  ctx.on('context', (c) => {
    if (cursor || !matches(f, c)) return;
    const body = tbody();
    if (!body || body.querySelector(`[data-id="${c.id}"]`)) return;
    body.querySelector('.empty')?.closest('tr')?.remove();
    const tr = h('tr', rowOf(c).attrs, rowOf(c).map((x) => h('td', {}, x)));
    tr.classList.add('fresh');
    body.prepend(tr);
    while (body.children.length > LIMIT) body.lastElementChild.remove();
  });
  ctx.on('restore', () => {
    if (!cursor) load();
  });

  await load();
  ctx.ready();
}

function matches(f, c) {
  if (f.namespace && c.namespace !== f.namespace) return false;
  if (f.type && c.type !== f.type) return false;
  if (f.agent && c.agent_id !== f.agent) return false;
  const t = new Date(c.timestamp).getTime();
  if (f.since && t < new Date(f.since).getTime()) return false;
  if (f.until && t >= new Date(f.until).getTime()) return false;
  return true;
}

function rowOf(c) {
  const cells = [
    h('a', { href: `#/contexts/${c.id}`, 'data-row': true }, timeEl(c.timestamp)),
    h('span', { class: 'type' }, c.type),
    c.namespace,
    c.agent_id,
    h('span', { class: 'content' }, clip(c.content, 200)),
    c.parent_id ? h('span', { class: 'muted small', title: `continues ${c.parent_id}` }, '↳ reply') : h('span', { class: 'muted small' }, 'root'),
  ];
  cells.attrs = { dataset: { id: c.id } };
  return cells;
}
