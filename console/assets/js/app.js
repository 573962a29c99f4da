// The console's shell: the session (or the login form), the hash routes,
// the navigation, keyboard shortcuts and the live-stream indicator. Each
// page is a module under pages/ exporting render(main, ctx, params).

import { h, fill, errorBox } from './dom.js';
import { session, loadSession, login, logout, setUnauthorized, isAdmin } from './api.js';
import * as live from './live.js';
import { hashRoute } from './route.js';
import * as overview from './pages/overview.js';
import * as contexts from './pages/contexts.js';
import * as context from './pages/context.js';
import * as search from './pages/search.js';
import * as agents from './pages/agents.js';
import * as recovery from './pages/recovery.js';
import * as cluster from './pages/cluster.js';

const main = document.getElementById('page');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const logoutBtn = document.getElementById('logout');
const liveEl = document.getElementById('live');
const keysDialog = document.getElementById('keys');

const routes = [
  { re: /^\/overview$/, page: 'overview', mod: overview },
  { re: /^\/contexts$/, page: 'contexts', mod: contexts },
  { re: /^\/contexts\/([0-9A-Za-z]{26})$/, page: 'context', nav: 'contexts', mod: context },
  { re: /^\/search$/, page: 'search', mod: search },
  { re: /^\/agents$/, page: 'agents', mod: agents },
  { re: /^\/recovery$/, page: 'recovery', mod: recovery },
  { re: /^\/cluster$/, page: 'cluster', mod: cluster },
];

const titles = {
  overview: 'Overview', contexts: 'Contexts', context: 'Context', search: 'Search',
  agents: 'Agents', recovery: 'Recovery', cluster: 'Cluster',
};

// current is the page shown: its route and the controller that ends its
// timers, streams and requests when the page is left.
let current = null;
let signedIn = false;

// pageContext is what a page gets: its signal, timers and live events,
// all ended when the page is left, and ready() to say its first data is
// shown.
function pageContext(name) {
  const ctrl = new AbortController();
  const start = performance.now();
  const cleanups = [];
  return {
    signal: ctrl.signal,
    // every runs f now and then every ms, one run at a time, until the
    // page is left.
    every(ms, f) {
      let timer = null;
      const tick = async () => {
        if (ctrl.signal.aborted) return;
        try {
          await f();
        } catch (err) {
          if (err.name !== 'AbortError') console.warn(err);
        }
        if (!ctrl.signal.aborted) timer = setTimeout(tick, ms);
      };
      cleanups.push(() => clearTimeout(timer));
      return tick();
    },
    on(type, f) {
      cleanups.push(live.on(type, f));
    },
    cleanup(f) {
      cleanups.push(f);
    },
    ready() {
      if (ctrl.signal.aborted || main.dataset.page !== name) return;
      // How long the page took to show its first data (the tests read it).
      main.dataset.readyMs = String(Math.round(performance.now() - start));
      main.dataset.readyAt = String(Math.round(performance.now()));
      main.dataset.ready = 'true';
    },
    end() {
      ctrl.abort();
      for (const f of cleanups) f();
    },
  };
}

async function route() {
  if (!signedIn) return;
  const { path, params } = hashRoute();
  let r = null;
  let m = null;
  for (const x of routes) {
    m = path.match(x.re);
    if (m) {
      r = x;
      break;
    }
  }
  if (current) current.end();
  delete main.dataset.ready;
  if (!r) {
    main.dataset.page = 'missing';
    fill(main, h('h1', {}, 'No such page'), h('p', {}, 'Try ', h('a', { href: '#/overview' }, 'the overview'), '.'));
    main.dataset.ready = 'true';
    return;
  }
  main.dataset.page = r.page;
  document.title = `${titles[r.page]} · Nexus console`;
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.nav === (r.nav || r.page)) {
      a.setAttribute('aria-current', 'page');
      // On a phone the navigation scrolls sideways: show the current page.
      const nr = nav.getBoundingClientRect();
      const ar = a.getBoundingClientRect();
      if (ar.right > nr.right) nav.scrollLeft += ar.right - nr.right + 8;
      else if (ar.left < nr.left) nav.scrollLeft -= nr.left - ar.left + 8;
    } else {
      a.removeAttribute('aria-current');
    }
  }
  fill(main);
  current = pageContext(r.page);
  try {
    await r.mod.render(main, current, { match: m, params });
  } catch (err) {
    if (err.name === 'AbortError') return;
    main.append(errorBox(err));
    current.ready();
  }
}

function showLogin(message) {
  signedIn = false;
  if (current) current.end();
  current = null;
  live.stop();
  nav.hidden = true;
  logoutBtn.hidden = true;
  who.textContent = '';
  main.dataset.page = 'login';
  const input = h('input', { name: 'token', type: 'password', id: 'token', autocomplete: 'off', required: true, spellcheck: 'false' });
  const err = h('p', { class: 'error', role: 'alert', hidden: !message }, message || '');
  const form = h('form', { id: 'login', class: 'card login' },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'Paste an API token of this node (or a JWT). It is exchanged for a session cookie and not kept by the page.'),
    h('label', { for: 'token' }, 'Token'),
    input,
    err,
    h('button', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = input.value;
    input.value = '';
    try {
      await login(token);
      err.hidden = true;
      enter();
    } catch (e) {
      err.textContent = e.status === 401 ? 'That token was refused.' : `${e.code || 'error'}: ${e.message}`;
      err.hidden = false;
      input.focus();
    }
  });
  fill(main, form);
  main.dataset.ready = 'true';
  input.focus();
}

function enter() {
  signedIn = true;
  nav.hidden = false;
  logoutBtn.hidden = !session.auth;
  fill(who, h('span', { class: 'principal' }, session.principal), ' ', h('span', { class: `role role-${session.role}` }, session.role));
  who.title = session.auth ? `namespaces: ${session.namespaces.join(', ')}` : 'this node has no authentication: anyone who can reach it is admin';
  document.body.classList.toggle('admin', isAdmin());
  live.start();
  if (!location.hash || location.hash === '#' || location.hash === '#/') history.replaceState(null, '', '#/overview');
  route();
}

async function boot() {
  live.onState((s) => {
    liveEl.textContent = s;
    liveEl.dataset.state = s;
  });
  setUnauthorized(() => {
    if (signedIn && session.auth) showLogin('Your session ended: sign in again.');
  });
  logoutBtn.addEventListener('click', async () => {
    try {
      await logout();
    } finally {
      showLogin('');
    }
  });
  window.addEventListener('hashchange', route);
  // The skip link focuses the page without touching the hash (the route).
  document.getElementById('skip').addEventListener('click', (ev) => {
    ev.preventDefault();
    main.focus();
  });
  document.getElementById('keys-open').addEventListener('click', () => keysDialog.showModal());
  keyboard();
  try {
    if ((await loadSession()) === 'login') showLogin('');
    else enter();
  } catch (err) {
    main.dataset.page = 'error';
    fill(main, h('h1', {}, 'The node did not answer'), errorBox(err));
    main.dataset.ready = 'true';
  }
}

const keys = { o: 'overview', c: 'contexts', s: 'search', a: 'agents', r: 'recovery', l: 'cluster' };
const numbers = ['overview', 'contexts', 'search', 'agents', 'recovery', 'cluster'];

function keyboard() {
  let g = false;
  let gTimer = null;
  document.addEventListener('keydown', (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    const typing = t instanceof HTMLElement && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName));
    if (typing) {
      if (ev.key === 'Escape') t.blur();
      return;
    }
    if (!signedIn || keysDialog.open) return;
    if (g) {
      g = false;
      clearTimeout(gTimer);
      if (keys[ev.key]) {
        ev.preventDefault();
        location.hash = `#/${keys[ev.key]}`;
      }
      return;
    }
    if (ev.key === 'g') {
      g = true;
      gTimer = setTimeout(() => { g = false; }, 1500);
      return;
    }
    if (ev.key >= '1' && ev.key <= '6') {
      ev.preventDefault();
      location.hash = `#/${numbers[Number(ev.key) - 1]}`;
      return;
    }
    if (ev.key === '/') {
      ev.preventDefault();
      const q = document.getElementById('q');
      if (q) q.focus();
      else location.hash = '#/search?focus=1';
      return;
    }
    if (ev.key === '?') {
      ev.preventDefault();
      keysDialog.showModal();
      return;
    }
    if (ev.key === 'j' || ev.key === 'k') {
      ev.preventDefault();
      moveRow(ev.key === 'j' ? 1 : -1);
      return;
    }
    if (ev.key === 'n' || ev.key === 'p') {
      const b = main.querySelector(ev.key === 'n' ? '[data-key="next"]' : '[data-key="prev"]');
      if (b && !b.disabled) {
        ev.preventDefault();
        b.click();
      }
    }
  });
}

// moveRow moves the focus to the next or previous row link of the page's
// lists (elements with data-row).
function moveRow(step) {
  const rows = [...main.querySelectorAll('[data-row]')];
  if (!rows.length) return;
  const i = rows.indexOf(document.activeElement);
  const next = rows[Math.min(rows.length - 1, Math.max(0, i < 0 ? 0 : i + step))];
  next.focus();
  next.scrollIntoView({ block: 'nearest' });
}

boot();
