// Cluster: this node's raft state, the leader, the applied index and the
// head of each member (GET /v1/cluster, every 2 s). Every answer of a
// cluster's node carries the header Nexus-Served-By; without it (a node
// started without --node-id, where /v1/cluster is 404) the page says it
// is a single node.

import { h, fill, timeEl, errorBox, num, section, table, badge, kv, short } from '../dom.js';
import { get, clusterNode } from '../api.js';

export async function render(main, ctx) {
  const body = h('div', { id: 'cluster' });
  fill(main, h('div', { class: 'page-head' }, h('h1', {}, 'Cluster')), body);
  const load = async () => {
    if (!(await clusterNode(ctx.signal))) {
      single();
      return;
    }
    let c;
    try {
      c = await get('/v1/cluster', { signal: ctx.signal });
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      if (err.status === 404) {
        single();
        return;
      }
      fill(body, errorBox(err));
      return;
    }
    const inSync = (m) => m.applied_index !== undefined && m.head && c.head && m.head === (c.members.find((x) => x.leader) || {}).head;
    fill(body,
      section(`Node ${c.node_id}`, kv([
        ['State', badge(c.state)],
        ['Leader', c.leader ? h('strong', {}, c.leader) : h('span', { class: 'error' }, 'none known')],
        ['Term', num(c.term)],
        ['Commit index', num(c.commit_index)],
        ['Applied index', num(c.applied_index)],
        ['Last index', num(c.last_index)],
        ['Head', short(c.head, 12)],
        ['Takes writes', c.writable ? 'yes (leader)' : `no: forwards them to ${c.leader_api || 'the leader'}`],
        c.last_contact ? ['Last contact with the leader', timeEl(c.last_contact)] : null,
        c.stalled ? ['Stalled', h('span', { class: 'error' }, c.stalled)] : null,
      ])),
      section('Members', table(['Member', 'Role', 'Voter', 'Applied index', 'Head', 'Raft', 'API', 'Error'],
        c.members.map((m) => [h('strong', {}, m.id), m.leader ? badge('leader') : badge('follower'), m.voter ? 'yes' : 'no',
          m.applied_index !== undefined ? num(m.applied_index) : '—',
          m.head ? h('span', {}, short(m.head, 12), inSync(m) ? '' : h('span', { class: 'warn small' }, ' differs from the leader')) : '—',
          m.raft_addr || '—', m.api_url || '—', m.error ? h('span', { class: 'error small' }, m.error) : '—']),
        { empty: 'No members.' })));
  };
  const single = () => fill(body, section('Single node', h('p', { id: 'single-node' }, 'This node is a single node, not part of a cluster.'),
    h('p', { class: 'muted small' }, 'A cluster is made by starting nodes with --node-id and --raft-addr (docs/CLUSTER.md).')));
  await ctx.every(2000, load);
  ctx.ready();
}
