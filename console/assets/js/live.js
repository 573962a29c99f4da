// Live updates: one EventSource on /v1/events for the whole console.
// Pages subscribe to event types; the browser reconnects by itself and
// resumes from the last event id it got.

const handlers = new Map(); // type -> Set of functions
let source = null;
let state = 'offline';
const stateListeners = new Set();

const TYPES = ['context', 'restore', 'resync', 'agent', 'task', 'process'];

function setState(s) {
  state = s;
  for (const f of stateListeners) f(s);
}

// start opens the stream (once).
export function start() {
  if (source) return;
  source = new EventSource('/v1/events');
  setState('connecting');
  source.addEventListener('open', () => setState('live'));
  source.addEventListener('error', () => {
    setState(source && source.readyState === EventSource.CLOSED ? 'offline' : 'reconnecting');
  });
  for (const type of TYPES) {
    source.addEventListener(type, (ev) => {
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch {
        return;
      }
      for (const f of handlers.get(type) || []) f(data, ev.lastEventId);
    });
  }
}

// stop closes the stream (logout).
export function stop() {
  if (source) source.close();
  source = null;
  setState('offline');
}

// on calls f(data, id) for each event of type; it returns the function
// that unsubscribes.
export function on(type, f) {
  if (!handlers.has(type)) handlers.set(type, new Set());
  handlers.get(type).add(f);
  return () => handlers.get(type).delete(f);
}

// onState calls f with the stream's state: connecting, live,
// reconnecting, offline.
export function onState(f) {
  stateListeners.add(f);
  f(state);
  return () => stateListeners.delete(f);
}
