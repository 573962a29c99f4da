// Recovery: the integrity checks (figures from /metrics; an admin runs
// one with POST /v1/admin/fsck), the backups (the backups component of
// /health), the incidents as a timeline (GET /v1/incidents, a page at a
// time; each opens its post-mortem, GET /v1/incidents/{id}), and, for
// admins only, the cascading recovery on demand (POST /v1/admin/recover)
// and a point-in-time restore (POST /v1/admin/restore): a dry run first,
// then the target typed to confirm.

import { h, fill, timeEl, clip, errorBox, num, section, table, badge, kv, dur, bytes, short } from '../dom.js';
import { get, text, send, query, isAdmin } from '../api.js';
import { parse, value } from '../metrics.js';

const INCIDENTS = 20;

export async function render(main, ctx) {
  const fsck = h('div', { id: 'fsck' });
  const backups = h('div', { id: 'backups' });
  const timeline = h('ol', { class: 'timeline', id: 'timeline' });
  const older = h('button', { type: 'button', class: 'ghost', hidden: true, 'data-key': 'next' }, 'Older incidents');
  const admin = isAdmin();
  fill(main, h('div', { class: 'page-head' }, h('h1', {}, 'Recovery')),
    h('div', { class: 'cols' },
      section('Integrity checks', fsck, admin ? fsckActions() : null),
      section('Backups', backups)),
    section('Incidents', h('p', { class: 'muted small' }, 'Newest first. Each failure the node found, what it did, and each restore.'), timeline, older),
    admin ? restoreSection(ctx, () => reloadIncidents()) : null,
    admin ? recoverSection() : null);

  const loadFsck = async () => {
    const m = parse(await text('/metrics', { signal: ctx.signal }));
    const rows = ['fast', 'deep'].map((mode) => {
      const last = value(m, 'nexus_fsck_last_run_timestamp_seconds', { mode });
      if (last === null) return null;
      return [mode, timeEl(new Date(last * 1000).toISOString()), num(value(m, 'nexus_fsck_runs_total', { mode })),
        (() => { const p = value(m, 'nexus_fsck_problems', { mode }); return p ? h('span', { class: 'error' }, num(p)) : badge('ok'); })(),
        dur((value(m, 'nexus_fsck_duration_seconds', { mode }) || 0) * 1e9)];
    }).filter(Boolean);
    // modes the node named otherwise
    for (const s of m.get('nexus_fsck_last_run_timestamp_seconds') || []) {
      const mode = s.labels.mode;
      if (['fast', 'deep'].includes(mode)) continue;
      const p = value(m, 'nexus_fsck_problems', { mode });
      rows.push([mode, timeEl(new Date(s.value * 1000).toISOString()), num(value(m, 'nexus_fsck_runs_total', { mode })), p ? h('span', { class: 'error' }, num(p)) : badge('ok'), dur((value(m, 'nexus_fsck_duration_seconds', { mode }) || 0) * 1e9)]);
    }
    fill(fsck, table(['Mode', 'Last run', 'Runs', 'Problems', 'Took'], rows, { empty: 'No integrity check has run since the node started.' }));
  };

  const loadBackups = async () => {
    const hl = await get('/health', { signal: ctx.signal, okStatuses: [503] });
    const b = hl.components && hl.components.backups;
    if (!b) {
      fill(backups, h('p', { class: 'muted' }, 'This node reports no backups component.'));
      return;
    }
    const d = b.details || {};
    const svc = d.backup || {};
    fill(backups, h('p', {}, badge(b.status), b.error ? h('span', { class: 'error small' }, ' ', clip(b.error, 300)) : null),
      kv([
        ['Newest backup', d.newest_backup ? timeEl(d.newest_backup) : 'none yet'],
        ['Size', bytes(d.bytes)],
        ['Runs', `${num(svc.runs)} (${num(svc.failures)} failed)`],
        svc.last_error ? ['Last error', clip(svc.last_error, 200)] : null,
        ['Schedule', svc.running ? 'running' : 'stopped'],
      ]));
  };

  let cursor = '';
  const loadIncidents = async (append) => {
    const page = await get(`/v1/incidents${query({ limit: INCIDENTS, cursor: append ? cursor : '' })}`, { signal: ctx.signal });
    if (!append) fill(timeline);
    for (const i of page.incidents) timeline.append(incident(ctx, i));
    if (!timeline.children.length) timeline.append(h('li', { class: 'muted empty' }, 'No incidents recorded.'));
    cursor = page.next_cursor || '';
    older.hidden = !cursor;
  };
  const reloadIncidents = () => loadIncidents(false).catch((err) => fill(timeline, h('li', {}, errorBox(err))));
  older.addEventListener('click', () => loadIncidents(true).catch((err) => timeline.append(h('li', {}, errorBox(err)))));
  // An incident is a thread in the namespace incidents: its record, then
  // an update per outcome. Reload (once for a burst) on any of them.
  let pending = null;
  const soon = () => {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      reloadIncidents();
    }, 250);
  };
  ctx.cleanup(() => clearTimeout(pending));
  ctx.on('context', (c) => {
    if (c.namespace === 'incidents') soon();
  });
  ctx.on('restore', soon);

  await Promise.all([
    ctx.every(10000, loadFsck),
    ctx.every(10000, loadBackups),
    loadIncidents(false).catch((err) => fill(timeline, h('li', {}, errorBox(err)))),
  ]);
  ctx.ready();

  function fsckActions() {
    const out = h('div', { id: 'fsck-result' });
    const run = async (deep) => {
      fill(out, h('p', { class: 'muted' }, deep ? 'Reading every pack, commit and tree…' : 'Checking the refs, the head and the catalog…'));
      try {
        const r = await send('POST', `/v1/admin/fsck${deep ? '?deep=true' : ''}`, undefined);
        fill(out, kv([
          ['Mode', r.deep ? 'deep' : 'fast'],
          ['Head', short(r.head, 12)],
          ['Packs / objects / commits', `${num(r.packs)} / ${num(r.objects)} / ${num(r.commits)}`],
          ['Contexts', num(r.contexts)],
          ['Took', dur(r.took_ns)],
          ['Problems', r.problems && r.problems.length ? h('span', { class: 'error' }, num(r.problems.length)) : badge('ok')],
        ]), r.problems && r.problems.length ? table(['Kind', 'Object', 'Path', 'Message'], r.problems.map((p) => [p.kind, p.object ? short(p.object) : '—', p.path || '—', clip(p.message, 200)])) : null);
        loadFsck().catch(() => {});
      } catch (err) {
        fill(out, errorBox(err));
      }
    };
    return h('div', { 'data-admin': true, class: 'admin-box' },
      h('div', { class: 'actions' },
        h('button', { type: 'button', id: 'fsck-quick', onclick: () => run(false) }, 'Check now'),
        h('button', { type: 'button', class: 'ghost', id: 'fsck-deep', onclick: () => run(true) }, 'Deep check')),
      out);
  }
}

function incident(ctx, i) {
  const pm = h('div', { class: 'postmortem' });
  const btn = h('button', { type: 'button', class: 'link', 'aria-expanded': 'false', 'data-row': true }, badge(i.status), ' ', h('strong', {}, i.kind === 'restore' ? 'restore' : i.component), ' ', clip(i.cause, 160));
  btn.addEventListener('click', async () => {
    const open = btn.getAttribute('aria-expanded') === 'true';
    btn.setAttribute('aria-expanded', String(!open));
    if (open) {
      fill(pm);
      return;
    }
    fill(pm, h('p', { class: 'muted' }, 'Loading the post-mortem…'));
    try {
      const a = await get(`/v1/incidents/${i.id}`, { signal: ctx.signal });
      const p = a.post_mortem || {};
      fill(pm, kv([
        ['Summary', p.summary],
        ['What failed', p.what_failed],
        ['How it was found', p.how_found],
        ['Outcome', p.outcome],
        ['Time to recovery', p.time_to_recovery_ns ? dur(p.time_to_recovery_ns) : '—'],
        p.operator_action ? ['Operator action', p.operator_action] : null,
      ]), (a.incident.steps || []).length ? table(['At', 'Action', 'Status', 'Reason', 'Took'],
        a.incident.steps.map((s) => [timeEl(s.at), s.action, badge(s.status), clip(s.reason || '', 200), dur(s.took_ns)])) : null,
      h('p', { class: 'small' }, h('a', { href: `#/contexts/${i.id}` }, 'The incident’s record in the memory →')));
    } catch (err) {
      if (err.name !== 'AbortError') fill(pm, errorBox(err));
    }
  });
  return h('li', { class: `incident s-${i.status}`, dataset: { id: i.id, status: i.status } },
    h('div', { class: 'when' }, timeEl(i.detected_at), h('div', { class: 'muted small' }, i.resolved_at ? `resolved after ${dur(i.duration_ns)}` : `${i.attempts} attempts`)),
    h('div', { class: 'what' }, btn,
      h('div', { class: 'muted small' }, `found by ${i.found_by}${i.node ? ` on ${i.node}` : ''}${i.stopped ? ' · the node stopped trying' : ''}`),
      i.advice ? h('p', { class: 'small advice' }, i.advice) : null, pm));
}

// restoreSection is the point-in-time restore: a dry run shows what
// would be kept and rolled back; the restore itself needs the target
// typed again, and is refused by the page until it matches.
function restoreSection(ctx, afterRestore) {
  const at = h('input', { id: 'restore-at', name: 'at', type: 'text', value: new Date().toISOString(), required: true, spellcheck: 'false', autocomplete: 'off', 'aria-describedby': 'restore-help' });
  const preview = h('button', { type: 'submit', id: 'restore-preview' }, 'Preview (dry run)');
  const plan = h('div', { id: 'restore-plan', 'aria-live': 'polite' });
  const form = h('form', { id: 'restore-form', class: 'restore' },
    h('label', { for: 'restore-at' }, 'Restore point (RFC 3339)'),
    h('div', { class: 'search-bar' }, at, preview),
    h('p', { class: 'muted small', id: 'restore-help' }, 'The memory moves back to the last context written at or before this time. What is rolled back stays under refs/recovery/ and can be restored again.'));
  at.addEventListener('input', () => fill(plan)); // a new time needs a new preview
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = new Date(at.value.trim());
    if (isNaN(t)) {
      fill(plan, h('p', { class: 'error', role: 'alert' }, 'Not a time: write it as 2026-11-01T12:00:00Z.'));
      return;
    }
    const when = at.value.trim();
    fill(plan, h('p', { class: 'muted' }, 'Asking the node what a restore would do…'));
    let p;
    try {
      p = await send('POST', '/v1/admin/restore', { at: when, dry_run: true });
    } catch (err) {
      fill(plan, errorBox(err));
      return;
    }
    showPlan(p, when);
  });

  const showPlan = (p, when) => {
    const summary = kv([
      ['Keeps', `${num(p.kept)} contexts, the newest ${p.last_kept || 'none'}`],
      ['Rolls back', h('strong', { id: 'plan-rolled-back' }, `${num(p.rolled_back)} contexts`)],
      p.first_rolled_back ? ['First rolled back', h('a', { href: `#/contexts/${p.first_rolled_back}` }, p.first_rolled_back)] : null,
      p.last_rolled_back ? ['Last rolled back', h('a', { href: `#/contexts/${p.last_rolled_back}` }, p.last_rolled_back)] : null,
      ['Head now', short(p.from, 12)],
      ['Head after', short(p.to, 12)],
      ['Kept under', p.recovery_ref || '—'],
    ]);
    if (!p.rolled_back) {
      fill(plan, h('h3', {}, 'Dry run'), summary, h('p', { class: 'muted' }, 'Nothing would be rolled back: there is nothing to restore.'));
      return;
    }
    const target = p.to ? p.to.slice(0, 12) : when;
    const confirm = h('input', { id: 'restore-confirm', type: 'text', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'restore-confirm-help' });
    const go = h('button', { type: 'button', id: 'restore-go', class: 'danger', disabled: true }, 'Restore');
    const out = h('div', { id: 'restore-result', 'aria-live': 'polite' });
    confirm.addEventListener('input', () => { go.disabled = confirm.value.trim() !== target; });
    go.addEventListener('click', async () => {
      if (confirm.value.trim() !== target) return;
      go.disabled = true;
      confirm.disabled = true;
      fill(out, h('p', { class: 'muted' }, 'Restoring…'));
      try {
        const r = await send('POST', '/v1/admin/restore', { at: when });
        fill(out, h('p', { class: 'ok', role: 'status', id: 'restore-done' },
          `Restored: ${num(r.kept)} contexts kept, ${num(r.rolled_back)} rolled back, kept under ${r.recovery_ref || '—'}.`));
        afterRestore();
      } catch (err) {
        fill(out, errorBox(err));
        go.disabled = false;
        confirm.disabled = false;
      }
    });
    fill(plan, h('h3', {}, 'Dry run'), summary,
      h('div', { class: 'confirm' },
        h('label', { for: 'restore-confirm' }, 'To restore, type ', h('code', { id: 'restore-target' }, target), ' (the commit the memory moves back to)'),
        h('div', { class: 'search-bar' }, confirm, go),
        h('p', { class: 'muted small', id: 'restore-confirm-help' }, 'Writes made after this preview are rolled back too. Every client following /v1/events gets a restore event.')),
      out);
  };
  return h('section', { class: 'card danger-zone', 'data-admin': true, id: 'restore' }, h('h2', {}, 'Point-in-time restore'), form, plan);
}

function recoverSection() {
  const out = h('div', { id: 'recover-result' });
  const btn = h('button', { type: 'button', id: 'recover-now' }, 'Run the recovery cascade now');
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    fill(out, h('p', { class: 'muted' }, 'Checking every component…'));
    try {
      const r = await send('POST', '/v1/admin/recover', undefined);
      fill(out, h('pre', { class: 'json' }, JSON.stringify(r, null, 2)));
    } catch (err) {
      fill(out, errorBox(err));
    } finally {
      btn.disabled = false;
    }
  });
  return h('section', { class: 'card', 'data-admin': true, id: 'recover' }, h('h2', {}, 'Recovery cascade'),
    h('p', { class: 'muted small' }, 'Checks every component and repairs what fails, as the node does on its own every few seconds.'), btn, out);
}
