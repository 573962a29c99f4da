// Agents: the node's own agents and pools (status, breaker,
// heartbeats, counters), its supervised processes, the external agents
// with their leases and claims (GET /v1/agents), and the task queue
// (GET /v1/tasks, one status at a time, bounded). Refreshed live on
// agent, task and process events.

import { h, fill, timeEl, ago, clip, errorBox, num, section, table, badge, short } from '../dom.js';
import { get, query } from '../api.js';
import { setQuery } from '../route.js';

const TASKS = 50;
const STATUSES = ['', 'queued', 'claimed', 'completing', 'done', 'failed'];

export async function render(main, ctx, { params }) {
  const own = h('div', { id: 'own-agents' });
  const procs = h('div', { id: 'processes' });
  const ext = h('div', { id: 'external-agents' });
  const tasks = h('div', { id: 'tasks' });
  const err = h('div');
  let status = params.get('status') || '';
  const statusSel = h('select', { id: 't-status', 'aria-label': 'Task status' }, STATUSES.map((s) => h('option', { value: s, selected: s === status }, s || 'every status')));
  fill(main, h('div', { class: 'page-head' }, h('h1', {}, 'Agents')), err,
    section('The node’s agents and pools', own),
    section('Supervised processes', procs),
    section('External agents and leases', ext),
    section('Task queue', h('div', { class: 'filters inline' }, h('label', { for: 't-status' }, 'Status'), statusSel), tasks));

  const loadAgents = async () => {
    let a;
    try {
      a = await get('/v1/agents', { signal: ctx.signal });
      fill(err);
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      fill(err, errorBox(e));
      return;
    }
    fill(own, table(['Agent', 'Capabilities', 'Status', 'Breaker', 'Provider / model', 'Last heartbeat', 'Last success', 'Calls', 'Failures', 'Tokens in / out', 'Last error'],
      a.agents.map((x) => {
        const s = x.status;
        if (!s) return [h('strong', {}, x.id), caps(x.capabilities), h('span', { class: 'muted' }, 'pool'), '—', '—', '—', '—', '—', '—', '—', '—'];
        return [h('strong', {}, x.id), caps(x.capabilities), badge(s.status), badge(s.breaker || 'closed'), `${s.provider || '—'} / ${s.model || '—'}`,
          s.last_heartbeat ? timeEl(s.last_heartbeat) : '—', s.last_success ? timeEl(s.last_success) : '—',
          num(s.calls), `${num(s.failures)}${s.consecutive_failures ? ` (${s.consecutive_failures} in a row)` : ''}`,
          `${num(s.tokens_in)} / ${num(s.tokens_out)}`, s.last_error ? h('span', { class: 'error small', title: s.last_error_at || '' }, clip(s.last_error, 160)) : '—'];
      }), { empty: 'No agents configured (serve --config).' }));
    fill(procs, table(['Process', 'State', 'PID', 'Restarts', 'Started', 'Last exit', 'Reason'],
      a.processes.map((p) => [h('strong', {}, p.name), badge(p.state), p.pid || '—', num(p.restarts), p.started_at ? timeEl(p.started_at) : '—',
        p.last_exit ? `${p.last_exit.signal || `code ${p.last_exit.code}`}${p.last_exit.error ? `: ${clip(p.last_exit.error, 80)}` : ''} (${ago(p.last_exit.at)})` : '—',
        p.reason ? clip(p.reason, 160) : (p.next_restart ? `restarts ${ago(p.next_restart)}` : '—')]), { empty: 'No supervised processes.' }));
    const now = Date.now();
    fill(ext, table(['Agent', 'Name', 'Capabilities', 'Status', 'Last heartbeat', 'Lease', 'Claims', 'Principal'],
      a.external.map((x) => [h('strong', {}, x.id), x.name || '—', caps(x.capabilities, 'every task'), badge(x.status), timeEl(x.last_heartbeat),
        h('span', { title: x.lease_expires }, new Date(x.lease_expires).getTime() > now ? `expires ${ago(x.lease_expires, now)}` : `lapsed ${ago(x.lease_expires, now)}`),
        x.claims && x.claims.length ? x.claims.map((id) => short(id, 10)) : '—', x.principal || '—']), { empty: 'No external agents registered.' }));
  };

  const loadTasks = async () => {
    let r;
    try {
      r = await get(`/v1/tasks${query({ status, limit: TASKS })}`, { signal: ctx.signal });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      fill(tasks, errorBox(e));
      return;
    }
    // A task's claim is the claimer's secret: it is never shown.
    fill(tasks, table(['Task', 'Status', 'Capability', 'Namespace', 'Content', 'Claimed by', 'Attempts', 'Lease', 'Result / error', 'Created'],
      r.tasks.map((t) => [short(t.id, 10), badge(t.status), t.capability || 'any', t.namespace, clip(t.content, 120), t.claimed_by || '—',
        `${t.attempts} / ${t.max_attempts}`, t.lease_expires && t.status === 'claimed' ? ago(t.lease_expires) : '—',
        t.result ? h('a', { href: `#/contexts/${t.result}` }, short(t.result, 10)) : (t.error ? h('span', { class: 'error small' }, clip(t.error, 120)) : '—'),
        timeEl(t.created)]),
      { empty: status ? `No ${status} tasks.` : 'No tasks.' }),
    r.tasks.length >= TASKS ? h('p', { class: 'muted small' }, `The oldest ${TASKS} shown; pick a status to narrow.`) : null);
  };
  statusSel.addEventListener('change', () => {
    status = statusSel.value;
    setQuery({ status });
    loadTasks();
  });

  // Live: reload (at most once a second) on the events about agents.
  let pending = null;
  const soon = (f) => () => {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      f();
    }, 300);
  };
  ctx.cleanup(() => clearTimeout(pending));
  const both = soon(() => Promise.all([loadAgents(), loadTasks()]).catch(() => {}));
  ctx.on('agent', both);
  ctx.on('process', both);
  ctx.on('task', both);
  // Leases count down: refresh the times every 5 s as well.
  await Promise.all([ctx.every(5000, loadAgents), loadTasks()]);
  ctx.ready();
}

// caps shows capabilities; none means every task for an external agent,
// and no routing by capability for the node's own.
function caps(list, none = '—') {
  if (!list || !list.length) return h('span', { class: 'muted' }, none);
  return list.map((c) => h('span', { class: 'tag' }, c));
}
