// The node's own timings (took_ms) of the searches this console made,
// for the Overview's latency chart while /metrics has no search
// latency of its own. Bounded.

const log = [];

export function record(tookMs) {
  log.push({ at: Date.now(), ms: tookMs });
  if (log.length > 1000) log.shift();
}

// since is the timings recorded after t (ms since the epoch).
export function since(t) {
  return log.filter((x) => x.at > t);
}
