// The node's API, as the console calls it: reads are plain fetches with
// the session cookie (same origin); state changes are JSON and carry the
// session's CSRF token in X-Nexus-CSRF. Errors become APIError with the
// API's code and message.

// session is who the console acts as (GET /v1/session). The CSRF token
// is kept here, in memory only; the session itself is an HttpOnly
// cookie the page cannot read.
export const session = {
  principal: '',
  role: '',
  namespaces: [],
  csrf: '',
  auth: false,
  expires: '',
};

export function isAdmin() {
  return session.role === 'admin';
}

export class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// onUnauthorized is called when a request is answered 401 (the session
// expired or was ended): the app shows the login form.
let onUnauthorized = () => {};
export function setUnauthorized(f) {
  onUnauthorized = f;
}

async function fail(res) {
  let code = `http_${res.status}`;
  let message = res.statusText || 'request failed';
  try {
    const b = await res.json();
    if (b && b.error) {
      code = b.error.code || code;
      message = b.error.message || message;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new APIError(res.status, code, message);
}

async function call(method, path, body, opts = {}) {
  const init = { method, credentials: 'same-origin', headers: {}, signal: opts.signal };
  if (method !== 'GET' && method !== 'HEAD') {
    init.headers['Content-Type'] = 'application/json';
    if (session.csrf) init.headers['X-Nexus-CSRF'] = session.csrf;
    if (body !== undefined) init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 401 && !opts.quiet401) onUnauthorized();
  // /health answers 503 with its full body when a component is unhealthy.
  if (!res.ok && !(opts.okStatuses || []).includes(res.status)) throw await fail(res);
  return res;
}

// get reads JSON.
export async function get(path, opts) {
  const res = await call('GET', path, undefined, opts);
  return res.json();
}

// text reads a text body (/metrics).
export async function text(path, opts) {
  const res = await call('GET', path, undefined, opts);
  return res.text();
}

// send makes a state change with a JSON body (or none).
export async function send(method, path, body, opts) {
  const res = await call(method, path, body, opts);
  if (res.status === 204) return null;
  const t = await res.text();
  return t ? JSON.parse(t) : null;
}

// query builds a query string from an object, leaving out empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

// loadSession asks the node who the console is. It answers 'ok',
// 'login' (a login is needed) or throws. A node without authentication
// answers for the anonymous admin, with auth false.
export async function loadSession() {
  const res = await fetch('/v1/session', { credentials: 'same-origin' });
  if (res.status === 401) return 'login';
  if (!res.ok) throw await fail(res);
  adopt(await res.json());
  return 'ok';
}

function adopt(b) {
  Object.assign(session, {
    principal: b.principal || '',
    role: b.role || '',
    namespaces: b.namespaces || [],
    csrf: b.csrf_token || '',
    auth: !!b.auth,
    expires: b.expires_at || '',
  });
}

// login exchanges a token for a session cookie. The token is sent once
// and kept nowhere.
export async function login(token) {
  const res = await fetch('/v1/session', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ token }),
  });
  if (!res.ok) throw await fail(res);
  adopt(await res.json());
}

// logout ends the session.
export async function logout() {
  await send('DELETE', '/v1/session', undefined, { quiet401: true });
  Object.assign(session, { principal: '', role: '', namespaces: [], csrf: '', expires: '' });
}

// clusterNode reports whether the node is a member of a cluster: every
// answer of a cluster's node names the node that served it
// (Nexus-Served-By), so a GET /livez tells without a 404 on a single
// node.
export async function clusterNode(signal) {
  const res = await fetch('/livez', { credentials: 'same-origin', signal });
  return res.headers.has('Nexus-Served-By');
}
