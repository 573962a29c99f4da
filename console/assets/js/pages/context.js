// One context: its content and fields, its thread (GET .../chain for the
// ancestors, GET .../children for the replies, one page at a time) drawn
// as a nested list, its commit (looked up in the newest part of GET
// /v1/log), its provenance (metadata.provenance of an agent's answer)
// and the contexts nearest to it by meaning (GET .../related).

import { h, fill, timeEl, clip, errorBox, kv, section, short, dur, num, table } from '../dom.js';
import { get, query } from '../api.js';

const CHAIN = 50;
const LOG_PAGE = 200;
const LOG_PAGES = 2; // the commit is looked for in the newest 400 journal entries, then on request

export async function render(main, ctx, { match }) {
  const id = match[1];
  const c = await get(`/v1/contexts/${id}`, { signal: ctx.signal });
  const thread = h('div', { id: 'thread' });
  const commit = h('div', { id: 'commit' });
  const related = h('div', { id: 'related' });
  const meta = { ...(c.metadata || {}) };
  const prov = meta.provenance && typeof meta.provenance === 'object' ? meta.provenance : null;
  delete meta.provenance;
  fill(main,
    h('div', { class: 'page-head' },
      h('h1', {}, h('span', { class: 'type' }, c.type), ' ', h('code', { class: 'id' }, c.id)),
      h('a', { href: '#/contexts', class: 'muted' }, '← Contexts')),
    h('div', { class: 'cols wide-left' },
      h('div', {},
        section('Content', h('pre', { class: 'content-full', id: 'content' }, c.content)),
        section('Thread', thread)),
      h('div', {},
        section('Fields', kv([
          ['Namespace', c.namespace],
          ['Type', c.type],
          ['Agent', c.agent_id],
          ['Principal', c.principal || h('span', { class: 'muted' }, 'the node')],
          ['Time', timeEl(c.timestamp)],
          ['Parent', c.parent_id ? h('a', { href: `#/contexts/${c.parent_id}` }, short(c.parent_id, 26)) : h('span', { class: 'muted' }, 'none: a thread’s root')],
          ['Semantic hash', short(c.semantic_hash, 16)],
        ])),
        section('Commit', commit),
        prov ? section('Provenance', provenance(prov)) : null,
        Object.keys(meta).length ? section('Metadata', h('pre', { class: 'json' }, JSON.stringify(meta, null, 2))) : null,
        section('Related', related))));

  await Promise.all([
    drawThread(ctx, c, thread),
    findCommit(ctx, c, commit),
    loadRelated(ctx, c, related),
  ]);
  ctx.ready();
}

// drawThread draws root → … → parent → this → children as nested lists.
async function drawThread(ctx, c, el) {
  const chain = await get(`/v1/contexts/${c.id}/chain${query({ limit: CHAIN })}`, { signal: ctx.signal });
  const line = chain.contexts.slice().reverse(); // root first
  const cut = line.length && line[0].parent_id; // more ancestors than shown
  const kids = h('ol', { class: 'thread-children', id: 'children' });
  const more = h('button', { type: 'button', class: 'ghost', hidden: true }, 'More replies');
  let cursor = '';
  const loadKids = async () => {
    const page = await get(`/v1/contexts/${c.id}/children${query({ cursor })}`, { signal: ctx.signal });
    for (const k of page.contexts) kids.append(node(k, false));
    cursor = page.next_cursor || '';
    more.hidden = !cursor;
    if (!kids.children.length) kids.append(h('li', { class: 'muted empty' }, 'No replies.'));
  };
  more.addEventListener('click', loadKids);
  // Nest: each ancestor's list holds the next one.
  const root = h('ol', { class: 'thread', role: 'tree', 'aria-label': 'Thread' });
  let list = root;
  for (const x of line) {
    const li = node(x, x.id === c.id);
    list.append(li);
    if (x.id === c.id) {
      li.append(kids, more);
      break;
    }
    const sub = h('ol', {});
    li.append(sub);
    list = sub;
  }
  fill(el, cut ? h('p', { class: 'muted small' }, `Showing the nearest ${CHAIN} ancestors; `,
    h('a', { href: `#/contexts/${line[0].parent_id}` }, 'go further up'), '.') : null, root);
  await loadKids();
  ctx.on('context', (x) => {
    if (x.parent_id !== c.id || kids.querySelector(`[data-id="${x.id}"]`)) return;
    kids.querySelector('.empty')?.remove();
    const li = node(x, false);
    li.classList.add('fresh');
    if (!cursor) kids.append(li);
  });
}

function node(x, current) {
  return h('li', { class: current ? 'node current' : 'node', dataset: { id: x.id }, role: 'treeitem', 'aria-current': current ? 'true' : null },
    h('div', { class: 'bubble' },
      h('div', { class: 'bubble-head' },
        h('span', { class: 'type' }, x.type), ' ',
        h('strong', {}, x.agent_id), ' ',
        h('span', { class: 'muted small' }, timeEl(x.timestamp))),
      current ? h('p', {}, clip(x.content, 400)) :
        h('a', { href: `#/contexts/${x.id}`, 'data-row': true }, clip(x.content, 240))));
}

// findCommit looks the context up in the journal, newest first, a page
// at a time: the newest LOG_PAGES pages at once, older ones on request
// (no route gives a context's commit by its id).
async function findCommit(ctx, c, el) {
  let cursor = '';
  let seen = 0;
  const scan = async (pages) => {
    for (let i = 0; i < pages; i++) {
      const page = await get(`/v1/log${query({ limit: LOG_PAGE, cursor })}`, { signal: ctx.signal });
      seen += page.entries.length;
      const e = page.entries.find((x) => x.context_id === c.id);
      if (e) {
        fill(el, kv([
          ['Commit', h('code', { class: 'id', id: 'commit-hash' }, e.commit)],
          ['Summary', e.summary],
          ['Author', `${e.agent_id} (principal ${e.principal || 'the node'})`],
          ['Committed', timeEl(e.time)],
        ]));
        return;
      }
      cursor = page.next_cursor || '';
      if (!cursor) {
        fill(el, h('p', { class: 'muted' }, `Not in the journal (${num(seen)} entries read): the context may have been written before a restore moved the memory back.`));
        return;
      }
    }
    const btn = h('button', { type: 'button', class: 'ghost' }, `Read ${num(LOG_PAGE * LOG_PAGES)} more entries`);
    btn.addEventListener('click', () => {
      fill(el, h('p', { class: 'muted' }, 'Reading the journal…'));
      scan(LOG_PAGES).catch((err) => fill(el, errorBox(err)));
    });
    fill(el, h('p', { class: 'muted' }, `Not among the newest ${num(seen)} journal entries (GET /v1/log, newest first).`), btn);
  };
  try {
    await scan(LOG_PAGES);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    fill(el, errorBox(err));
  }
}

function provenance(p) {
  return h('div', { id: 'provenance' },
    kv([
      ['Asked', p.agent],
      ['Answered by', p.final_agent],
      ['Model', p.model],
      ['Tokens', `${num(p.tokens_in)} in, ${num(p.tokens_out)} out`],
      ['Latency', dur(p.latency_ns)],
      ['Requests', num(p.attempts)],
    ]),
    Array.isArray(p.trail) && p.trail.length ? table(['Agent', 'Requests', 'Failure', 'Latency'],
      p.trail.map((a) => [a.agent, num(a.requests), a.class ? `${a.class}${a.error ? `: ${clip(a.error, 120)}` : ''}` : 'answered', dur(a.latency_ns)])) : null);
}

async function loadRelated(ctx, c, el) {
  try {
    const r = await get(`/v1/contexts/${c.id}/related${query({ limit: 5 })}`, { signal: ctx.signal });
    if (!r.hits.length) {
      fill(el, h('p', { class: 'muted' }, 'Nothing near it.'));
      return;
    }
    fill(el, h('ol', { class: 'feed' }, r.hits.map((x) => h('li', {},
      h('a', { href: `#/contexts/${x.context.id}`, 'data-row': true }, h('span', { class: 'type' }, x.context.type), ' ', clip(x.context.content, 120)),
      ' ', h('span', { class: 'muted small' }, `score ${x.score.toFixed(3)}`)))));
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    fill(el, h('p', { class: 'muted' }, err.status === 503 ? 'Search is off on this node.' : `${err.code}: ${err.message}`));
  }
}
