// Search: POST /v1/search in hybrid, semantic or keyword mode, with
// filters and as_of; each hit shows which signals matched it, its
// similarity and BM25, and its snippet with the matched terms marked.

import { h, fill, timeEl, clip, errorBox, num, localInput, toLocalInput } from '../dom.js';
import { send } from '../api.js';
import { setQuery } from '../route.js';
import * as searchlog from '../searchlog.js';
import { TYPES } from './contexts.js';

export async function render(main, ctx, { params }) {
  const q = h('input', { id: 'q', name: 'q', type: 'search', placeholder: 'What are you looking for?  (press / to come here)', value: params.get('q') || '', autocomplete: 'off', required: true, maxlength: '4096', 'aria-label': 'Query' });
  const mode = h('select', { id: 's-mode', name: 'mode' }, ['hybrid', 'semantic', 'keyword'].map((m) => h('option', { value: m, selected: m === (params.get('mode') || 'hybrid') }, m)));
  const ns = h('input', { id: 's-ns', name: 'namespace', value: params.get('namespace') || '', placeholder: 'any', autocomplete: 'off' });
  const type = h('select', { id: 's-type', name: 'type' }, h('option', { value: '' }, 'any'), TYPES.map((t) => h('option', { value: t, selected: t === params.get('type') }, t)));
  const agent = h('input', { id: 's-agent', name: 'agent', value: params.get('agent') || '', placeholder: 'any', autocomplete: 'off' });
  const asOf = h('input', { id: 's-asof', name: 'as_of', type: 'datetime-local', step: '1', value: toLocalInput(params.get('as_of')) });
  const limit = h('select', { id: 's-limit', name: 'limit' }, [10, 20, 50, 100].map((n) => h('option', { value: n, selected: String(n) === (params.get('limit') || '10') }, n)));
  const form = h('form', { id: 'search', class: 'search', role: 'search' },
    h('div', { class: 'search-bar' }, q, mode, h('button', { type: 'submit' }, 'Search')),
    h('div', { class: 'filters' },
      h('div', {}, h('label', { for: 's-ns' }, 'Namespace'), ns),
      h('div', {}, h('label', { for: 's-type' }, 'Type'), type),
      h('div', {}, h('label', { for: 's-agent' }, 'Agent'), agent),
      h('div', {}, h('label', { for: 's-asof', title: 'Search the memory as it was at that time' }, 'As of'), asOf),
      h('div', {}, h('label', { for: 's-limit' }, 'Hits'), limit)));
  const summary = h('p', { class: 'muted small', id: 'search-summary', 'aria-live': 'polite' });
  const results = h('ol', { class: 'hits', id: 'hits' });
  fill(main, h('div', { class: 'page-head' }, h('h1', {}, 'Search')), form, summary, results);

  const run = async () => {
    const query = q.value.trim();
    if (!query) {
      fill(summary, 'Type a query: hybrid mode fuses meaning (the embedding) and words (BM25).');
      fill(results);
      return;
    }
    const body = { query, mode: mode.value, limit: Number(limit.value) };
    if (ns.value.trim()) body.namespace = ns.value.trim();
    if (type.value) body.type = type.value;
    if (agent.value.trim()) body.agent_id = agent.value.trim();
    const at = localInput(asOf.value);
    if (at) body.as_of = at;
    setQuery({ q: query, mode: mode.value, namespace: body.namespace, type: body.type, agent: body.agent_id, as_of: at, limit: limit.value === '10' ? '' : limit.value });
    fill(summary, 'Searching…');
    let r;
    try {
      r = await send('POST', '/v1/search', body, { signal: ctx.signal });
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      fill(summary);
      fill(results, h('li', {}, errorBox(err)));
      return;
    }
    searchlog.record(r.took_ms);
    fill(summary, `${r.hits.length} hits, ${r.mode} mode, ${r.took_ms} ms on the node`,
      r.index_lag ? `, ${num(r.index_lag)} contexts not yet indexed` : '',
      at ? `, as of ${at}` : '',
      r.degraded ? h('span', { class: 'warn' }, ` — degraded: ${r.degraded}`) : '', '.');
    fill(results, r.hits.map(hit));
    if (!r.hits.length) results.append(h('li', { class: 'muted empty' }, 'No hits.'));
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    run();
  });
  await run();
  if (params.get('focus') || !q.value) q.focus();
  ctx.ready();
}

function hit(x) {
  const c = x.context;
  return h('li', { class: 'hit', dataset: { id: c.id } },
    h('div', { class: 'hit-head' },
      h('a', { href: `#/contexts/${c.id}`, 'data-row': true }, h('span', { class: 'type' }, c.type), ' ', h('code', { class: 'id' }, c.id)),
      h('span', { class: 'score', title: 'fused score' }, x.score.toFixed(3))),
    h('p', { class: 'snippet' }, marked(x.snippet || clip(c.content, 300), x.terms || [])),
    h('div', { class: 'signals small' },
      (x.matched || []).map((m) => h('span', { class: `signal sig-${m}`, dataset: { signal: m } }, m)),
      x.similarity !== undefined ? h('span', { class: 'muted' }, ` similarity ${x.similarity.toFixed(3)}`) : null,
      x.bm25 !== undefined ? h('span', { class: 'muted' }, ` · bm25 ${x.bm25.toFixed(3)}`) : null,
      x.terms && x.terms.length ? h('span', { class: 'muted' }, ` · terms: ${x.terms.join(', ')}`) : null,
      h('span', { class: 'muted' }, ' · ', c.namespace, ' · ', c.agent_id, ' · ', timeEl(c.timestamp))));
}

// marked splits text into text nodes and <mark> elements around the
// matched terms (case-insensitive, whole words or word starts).
function marked(text, terms) {
  const ts = terms.filter((t) => t && t.length > 1).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  if (!ts.length) return text;
  const re = new RegExp(`(${ts.join('|')})`, 'gi');
  const out = [];
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(h('mark', {}, m[0]));
    last = m.index + m[0].length;
  }
  out.push(text.slice(last));
  return out;
}
