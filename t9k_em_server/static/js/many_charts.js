// A chart of one metric over many runs, on uPlot (each series with its own x: uPlot's mode 2):
// up to 100 runs overlaid, or one mean line per group with its min–max band. One request per
// chart; the server downsamples each series keeping its extremes (docs/server.md "/series").
import { el, mount, fmtValue } from "./common.js";
import { PALETTE } from "./charts.js";

const HEIGHT = 300;

function fill(color) { return color + "33"; }

/** Draw each band (min–max of a group) under the lines: a polygon along max, back along min. */
function bandsHook(bands) {
  return (u) => {
    const ctx = u.ctx;
    ctx.save();
    ctx.beginPath();
    ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
    ctx.clip();
    for (const b of bands) {
      if (!b.x.length) continue;
      ctx.beginPath();
      b.x.forEach((x, i) => ctx.lineTo(u.valToPos(x, "x", true), u.valToPos(b.max[i], "y", true)));
      for (let i = b.x.length - 1; i >= 0; i--) ctx.lineTo(u.valToPos(b.x[i], "x", true), u.valToPos(b.min[i], "y", true));
      ctx.closePath();
      ctx.fillStyle = fill(b.color);
      ctx.fill();
    }
    ctx.restore();
  };
}

/** The y range that holds the lines and the bands (uPlot's auto range sees only the lines). */
function yRange(lines, bands) {
  let lo = Infinity, hi = -Infinity;
  for (const l of lines) for (const v of l.y) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  for (const b of bands) for (let i = 0; i < b.x.length; i++) { lo = Math.min(lo, b.min[i]); hi = Math.max(hi, b.max[i]); }
  const pad = (hi - lo) * 0.05 || 1;
  return [lo - pad, hi + pad];
}

export class ManyChart {
  constructor(id) {
    this.body = el("div", { class: "chart-body" });
    this.key = el("div", { class: "chart-key" });
    this.info = el("span", { class: "muted" });
    this.node = el("div", { class: "chart wide", id }, el("div", { class: "chart-title" }, this.title = el("span"), this.info), this.body, this.key);
    this.plot = null;
  }

  /** `lines`: [{label, color, x, y}]; `bands`: [{color, x, min, max}] drawn under the lines. */
  draw(title, lines, { xLabel = "step", time = false, bands = [] } = {}) {
    this.title.textContent = title;
    if (this.plot) { this.plot.destroy(); this.plot = null; }
    const present = lines.filter((l) => l.x.length);
    const points = present.reduce((a, l) => a + l.x.length, 0);
    this.info.textContent = `${present.length} line${present.length === 1 ? "" : "s"}, ${points.toLocaleString()} points`;
    Object.assign(this.node.dataset, { lines: present.length, points, bands: bands.filter((b) => b.x.length).length });
    mount(this.key, present.slice(0, 100).map((l) => el("span", { class: "key-item" },
      el("span", { class: "swatch", style: `background:${l.color}` }), l.label)));
    if (!present.length) { mount(this.body, el("div", { class: "empty" }, "No data for this metric.")); return; }
    mount(this.body);
    this.plot = new uPlot({
      mode: 2, width: Math.max(400, this.body.clientWidth || 800), height: HEIGHT,
      scales: { x: { time }, y: bands.length ? { range: yRange(present, bands) } : {} },
      axes: [
        { stroke: "#656d76", grid: { stroke: "#eef1f4" }, label: time ? "" : xLabel },
        { stroke: "#656d76", grid: { stroke: "#eef1f4" }, size: 56, values: (u, vals) => vals.map(fmtValue) },
      ],
      legend: { show: false },
      cursor: { drag: { x: true, y: true } },
      hooks: bands.length ? { drawAxes: [bandsHook(bands)] } : {},
      series: [{}, ...present.map((l) => ({ label: l.label, stroke: l.color, width: l.width || 1.2,
        paths: uPlot.paths.linear(), points: { show: false } }))],
    }, [null, ...present.map((l) => [l.x, l.y])], this.body);
    Object.assign(this.node, { plot: this.plot, bands }); // tests read the drawn canvas through its scales
  }
}

/** Lines of runs coloured by the palette. */
export function runLines(series) {
  return series.map((s, i) => ({ label: s.name, color: PALETTE[i % PALETTE.length], x: s.x, y: s.y }));
}

/** Mean lines and min–max bands of groups. */
export function groupLines(groups, by) {
  const color = (i) => PALETTE[i % PALETTE.length];
  return {
    lines: groups.map((g, i) => ({ label: `${by} = ${g.value === null ? "(none)" : fmtValue(g.value)} (${g.runs_used} runs)`,
      color: color(i), x: g.x, y: g.mean, width: 2 })),
    bands: groups.map((g, i) => ({ color: color(i), x: g.x, min: g.min, max: g.max })),
  };
}
