// The hash routes' paths and query parameters.

// hashRoute splits location.hash into a path and its query parameters.
export function hashRoute() {
  const raw = location.hash.replace(/^#/, '') || '/overview';
  const [path, q] = raw.split('?');
  return { path, params: new URLSearchParams(q || '') };
}

// setQuery replaces the current hash's query without reloading the page
// (the filters of a list, a search), so a reload or a shared link shows
// the same.
export function setQuery(params) {
  const { path } = hashRoute();
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  history.replaceState(null, '', `#${path}${s ? `?${s}` : ''}`);
}
