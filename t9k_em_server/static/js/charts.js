// Metric charts on uPlot (vendored in static/vendor/uplot/, global `uPlot`).
// A ChartPanel owns the toolbar (x-axis, smoothing, log scale) and one MetricChart per metric
// name; each chart overlays several series (train/val/test of one run, or of several runs).
// The server downsamples (keeping extremes), so a series never holds more than maxPoints points.
import { el, mount, fmtTime, fmtValue } from "./common.js";

export const TYPE_COLORS = { train: "#2f6fde", val: "#e8710a", test: "#1a7f37" };
export const PALETTE = ["#2f6fde", "#e8710a", "#1a7f37", "#a333c8", "#d6336c", "#0c8599", "#8d6e00", "#5c6bc0", "#c2255c", "#2b8a3e"];
const TYPE_DASH = { train: null, val: [6, 4], test: [2, 3] };

export function typeColor(type, i) { return TYPE_COLORS[type] || PALETTE[(i + 3) % PALETTE.length]; }
export function typeDash(type) { return type in TYPE_DASH ? TYPE_DASH[type] : [8, 3, 2, 3]; }

/** TensorBoard-style exponential moving average with bias correction; nulls stay null. */
export function smooth(ys, weight) {
  if (!weight) return ys;
  let last = 0, n = 0;
  return ys.map((y) => {
    if (y === null || y === undefined || !Number.isFinite(y)) return y;
    last = last * weight + (1 - weight) * y;
    n++;
    return last / (1 - Math.pow(weight, n));
  });
}

const X_LABELS = { step: "step", epoch: "epoch", time: "time" };

/**
 * Where a resume point (a segment of the run JSON: {step, time, reason, previous_status}) lies on
 * the x-axis `x`: its step, or its time in seconds; null on the epoch axis (a segment has none).
 */
function markerX(segment, x) {
  if (x === "step") return segment.step;
  if (x === "time") { const t = Date.parse(segment.time); return Number.isNaN(t) ? null : t / 1000; }
  return null;
}

/** The tooltip of a resume point: time, step, reason. */
export function markerTitle(segment) {
  return [`Resumed at step ${segment.step}`, fmtTime(segment.time), segment.reason,
    segment.previous_status ? `(was ${segment.previous_status})` : ""].filter(Boolean).join("\n");
}

/**
 * One chart: `series` is [{key, label, color, dash, load(x, maxPoints) -> Promise<{x, y, total}>}].
 */
export class MetricChart {
  /** `legend: false` hides uPlot's per-series legend (the compare page shows its own key). */
  constructor(title, series, { legend = true } = {}) {
    this.title = title;
    this.series = series;
    this.legend = legend;
    this.data = new Map(); // key -> {x, y, total}
    this.markers = []; // resume points drawn as vertical lines (ChartPanel.setMarkers)
    this.plot = null;
    this.body = el("div", { class: "chart-body" });
    this.info = el("span", { class: "muted" });
    this.node = el("div", { class: "chart", dataset: { metric: title } },
      el("div", { class: "chart-title" }, el("span", {}, title), this.info), this.body);
  }

  /** Fetch the series (only those whose key passes `only`, when given); true if any data changed. */
  async load(x, maxPoints, only = null) {
    const results = await Promise.all(this.series.map((s) => (only && !only(s.key) ? null : s.load(x, maxPoints).catch(() => null))));
    let changed = false;
    this.series.forEach((s, i) => {
      const r = results[i];
      const prev = this.data.get(s.key);
      if (!r) return;
      if (!prev || prev.x.length !== r.x.length || prev.total !== r.total || prev.x[prev.x.length - 1] !== r.x[r.x.length - 1]) changed = true;
      this.data.set(s.key, r);
    });
    return changed;
  }

  render(opts) {
    const present = this.series.filter((s) => this.data.has(s.key) && this.data.get(s.key).x.length);
    const counts = {}, totals = {};
    for (const s of present) { counts[s.key] = this.data.get(s.key).x.length; totals[s.key] = this.data.get(s.key).total; }
    this.node.dataset.points = JSON.stringify(counts);
    this.node.dataset.totals = JSON.stringify(totals);
    const shown = Object.values(counts).reduce((a, b) => a + b, 0);
    const total = Object.values(totals).reduce((a, b) => a + (b || 0), 0);
    this.info.textContent = total > shown ? `${shown.toLocaleString()} of ${total.toLocaleString()} points` : `${shown.toLocaleString()} points`;
    if (this.plot) { this.plot.destroy(); this.plot = null; }
    if (!present.length) { mount(this.body, el("div", { class: "empty" }, "No data for this x-axis.")); return; }
    mount(this.body);

    const clean = (ys) => opts.log ? ys.map((v) => (v > 0 ? v : null)) : ys;
    const tables = [];
    const uSeries = [{ label: X_LABELS[opts.x] }];
    const rawIdx = [];
    for (const s of present) {
      const d = this.data.get(s.key);
      if (opts.smoothing > 0) {
        tables.push([d.x, clean(d.y)]);
        uSeries.push({ label: `${s.label} (raw)`, stroke: s.color + "40", width: 1, dash: s.dash || undefined, spanGaps: true, points: { show: false } });
        rawIdx.push(uSeries.length - 1);
        tables.push([d.x, clean(smooth(d.y, opts.smoothing))]);
      } else {
        tables.push([d.x, clean(d.y)]);
      }
      uSeries.push({ label: s.label, stroke: s.color, width: 1.6, dash: s.dash || undefined, spanGaps: true,
        points: { show: d.x.length < 60, size: 4, fill: s.color }, value: (u, v) => fmtValue(v) });
    }
    const data = tables.length === 1 ? tables[0] : uPlot.join(tables);
    const width = Math.max(300, this.body.clientWidth || this.node.clientWidth - 20);
    this.plot = new uPlot({
      width, height: 240,
      scales: { x: { time: opts.x === "time" }, y: { distr: opts.log ? 3 : 1 } },
      axes: [
        { stroke: "#656d76", grid: { stroke: "#eef1f4" }, ticks: { stroke: "#d0d7de" } },
        { stroke: "#656d76", grid: { stroke: "#eef1f4" }, ticks: { stroke: "#d0d7de" }, size: 56, values: (u, vals) => vals.map(fmtValue) },
      ],
      cursor: { drag: { x: true, y: false } },
      legend: { show: this.legend, live: true },
      series: uSeries,
      hooks: { draw: [(u) => this.placeMarkers(u, opts.x)] },
    }, data, this.body);
    const rows = this.plot.root.querySelectorAll(".u-legend .u-series");
    for (const i of rawIdx) if (rows[i]) rows[i].style.display = "none";
  }

  /** One line per resume point inside the plot area, with the point as its tooltip. */
  placeMarkers(u, x) {
    u.over.querySelectorAll(".resume-marker").forEach((m) => m.remove());
    const [min, max] = [u.scales.x.min, u.scales.x.max];
    for (const segment of this.markers) {
      const at = markerX(segment, x);
      if (at === null || at < min || at > max) continue;
      u.over.append(el("div", { class: "resume-marker", title: markerTitle(segment), dataset: { step: String(segment.step) },
        style: `left:${u.valToPos(at, "x")}px` }));
    }
  }

  resize() {
    if (this.plot) this.plot.setSize({ width: Math.max(300, this.body.clientWidth), height: 240 });
  }
}

/** The toolbar plus a grid of charts. `charts` is a list of MetricChart. */
export class ChartPanel {
  constructor(container, { maxPoints = 1500, x = "step" } = {}) {
    this.container = container;
    this.maxPoints = maxPoints;
    this.opts = { x, smoothing: 0, log: false };
    this.charts = [];
    this.grid = el("div", { class: "charts" });
    const seg = el("div", { class: "segmented", role: "group", "aria-label": "x-axis" },
      ["step", "epoch", "time"].map((x) => el("button", { type: "button", class: x === this.opts.x ? "on" : "", dataset: { x },
        onclick: (e) => this.setX(x, e.target) }, x)));
    this.smoothLabel = el("span", { class: "mono" }, "0.00");
    const slider = el("input", { type: "range", min: "0", max: "0.99", step: "0.01", value: "0", "aria-label": "smoothing",
      oninput: (e) => { this.opts.smoothing = Number(e.target.value); this.smoothLabel.textContent = this.opts.smoothing.toFixed(2); this.renderAll(); } });
    const log = el("input", { type: "checkbox", "aria-label": "log scale", onchange: (e) => { this.opts.log = e.target.checked; this.renderAll(); } });
    this.toolbar = el("div", { class: "toolbar chart-toolbar" },
      el("label", {}, "X axis", seg),
      el("label", {}, "Smoothing", slider, this.smoothLabel),
      el("label", {}, log, "Log scale"),
      el("span", { class: "grow" }),
      this.status = el("span", { class: "muted" }));
    mount(container, this.toolbar, this.grid);
    new ResizeObserver(() => this.charts.forEach((c) => c.resize())).observe(this.grid);
  }

  setCharts(charts) {
    this.charts = charts;
    charts.forEach((c) => { c.markers = this.markers || []; });
    mount(this.grid, charts.length ? charts.map((c) => c.node) : el("div", { class: "empty" }, "No metrics logged yet."));
  }

  async setX(x, button) {
    this.opts.x = x;
    this.toolbar.querySelectorAll(".segmented button").forEach((b) => b.classList.toggle("on", b === button));
    await this.reload(true);
  }

  /**
   * Fetch the charts' series for the current x-axis (only those whose key passes `only`, when
   * given) and re-render the charts whose data changed (all of them with `force`).
   */
  async reload(force = false, only = null) {
    this.grid.dataset.loading = "1";
    const changed = await Promise.all(this.charts.map((c) => c.load(this.opts.x, this.maxPoints, only)));
    this.charts.forEach((c, i) => { if (force || changed[i] || !c.plot) c.render(this.opts); });
    delete this.grid.dataset.loading;
    this.grid.dataset.ready = "1";
  }

  renderAll() { this.charts.forEach((c) => c.render(this.opts)); }

  /** Resume points (the run's segments) to mark on every chart; redraws when they changed. */
  setMarkers(segments) {
    const markers = segments || [];
    const changed = JSON.stringify(markers) !== JSON.stringify(this.markers || []);
    this.markers = markers;
    this.charts.forEach((c) => { c.markers = markers; });
    if (changed) this.charts.forEach((c) => { if (c.plot) c.placeMarkers(c.plot, this.opts.x); });
  }
}
