// Reading the node's /metrics (Prometheus text format) in the browser.

// parse returns a Map from metric name to its samples [{labels, value}].
export function parse(text) {
  const m = new Map();
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const sample = parseLine(line);
    if (!sample) continue;
    if (!m.has(sample.name)) m.set(sample.name, []);
    m.get(sample.name).push({ labels: sample.labels, value: sample.value });
  }
  return m;
}

function parseLine(line) {
  let i = 0;
  while (i < line.length && line[i] !== '{' && line[i] !== ' ') i++;
  const name = line.slice(0, i);
  const labels = {};
  if (line[i] === '{') {
    i++;
    while (i < line.length && line[i] !== '}') {
      const eq = line.indexOf('=', i);
      if (eq < 0) return null;
      const key = line.slice(i, eq).trim();
      let j = eq + 2; // after ="
      let val = '';
      while (j < line.length && line[j] !== '"') {
        if (line[j] === '\\' && j + 1 < line.length) {
          const c = line[j + 1];
          val += c === 'n' ? '\n' : c;
          j += 2;
        } else {
          val += line[j++];
        }
      }
      labels[key] = val;
      i = j + 1;
      if (line[i] === ',') i++;
    }
    i++; // past }
  }
  const rest = line.slice(i).trim().split(/\s+/);
  const value = Number(rest[0]);
  if (!name || isNaN(value) && rest[0] !== 'NaN') return null;
  return { name, labels, value };
}

// sum adds the samples of name whose labels match filter (an object of
// exact values); null when the metric is absent.
export function sum(m, name, filter = {}) {
  const samples = m.get(name);
  if (!samples) return null;
  let total = 0;
  let found = false;
  for (const s of samples) {
    if (Object.entries(filter).every(([k, v]) => s.labels[k] === v)) {
      total += s.value;
      found = true;
    }
  }
  return found ? total : null;
}

// value is the first sample of name matching filter, or null.
export function value(m, name, filter = {}) {
  for (const s of m.get(name) || []) {
    if (Object.entries(filter).every(([k, v]) => s.labels[k] === v)) return s.value;
  }
  return null;
}
