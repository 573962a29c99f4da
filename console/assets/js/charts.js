// Time-series charts (uPlot, vendored) with a bounded window of samples.

import { h } from './dom.js';

// WINDOW is how many samples a chart keeps (at one every 2 s: 10 min).
export const WINDOW = 300;

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// clock is the local time of day of t (seconds), for the time axis.
function clock(t) {
  const d = new Date(t * 1000);
  const p = (n) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

const dark = window.matchMedia('(prefers-color-scheme: dark)');

// Chart is one titled chart of one or more series sharing a time axis.
export class Chart {
  // series: [{label, color}] (color: a CSS variable name); fmt: formats
  // a value for the axis and legend.
  constructor(title, series, fmt, opts = {}) {
    this.title = title;
    this.series = series;
    this.fmt = fmt;
    this.opts = opts;
    this.data = [[], ...series.map(() => [])];
    this.latest = h('span', { class: 'chart-now' }, '—');
    this.plotEl = h('div', { class: 'chart-plot' });
    this.el = h('figure', { class: 'chart', dataset: { chart: opts.id || title } },
      h('figcaption', {}, h('span', { class: 'chart-title' }, title), this.latest),
      this.plotEl,
      opts.note ? h('p', { class: 'chart-note muted' }, opts.note) : null);
    this.plot = null;
    this.onTheme = () => this.rebuild();
    dark.addEventListener('change', this.onTheme);
    this.resize = new ResizeObserver(() => {
      if (this.plot) this.plot.setSize(this.size());
      else this.rebuild();
    });
    this.resize.observe(this.plotEl);
  }

  size() {
    const w = Math.max(200, Math.floor(this.plotEl.clientWidth || 300));
    return { width: w, height: this.opts.height || 130 };
  }

  rebuild() {
    if (!window.uPlot || !this.plotEl.isConnected) return;
    if (this.plot) this.plot.destroy();
    const axis = css('--muted');
    const grid = css('--grid');
    const fmt = this.fmt;
    this.plot = new window.uPlot({
      ...this.size(),
      legend: { show: this.series.length > 1 },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: this.opts.range ? { range: this.opts.range } : { auto: true } },
      axes: [
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 28, values: (u, vals) => vals.map(clock) },
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 76, values: (u, vals) => vals.map((v) => fmt(v)) },
      ],
      series: [
        {},
        ...this.series.map((s) => ({
          label: s.label,
          stroke: css(s.color) || '#2f5d8a',
          width: 2,
          spanGaps: false,
          points: { show: !!this.opts.points, size: 6 },
          value: (u, v) => (v === null || v === undefined ? '—' : fmt(v)),
        })),
      ],
    }, this.data, this.plotEl);
  }

  // push adds one sample at t (seconds) with a value per series (null: a
  // gap), dropping the oldest past WINDOW.
  push(t, values) {
    this.data[0].push(t);
    values.forEach((v, i) => this.data[i + 1].push(v));
    if (this.data[0].length > WINDOW) for (const d of this.data) d.shift();
    this.el.dataset.samples = String(this.data[0].length);
    const last = values.find((v) => v !== null && v !== undefined);
    this.latest.textContent = last === undefined ? '—' : this.fmt(last);
    if (!this.plot) this.rebuild();
    else this.plot.setData(this.data);
  }

  // samples is how many samples the chart holds.
  samples() {
    return this.data[0].length;
  }

  destroy() {
    dark.removeEventListener('change', this.onTheme);
    this.resize.disconnect();
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }
}
