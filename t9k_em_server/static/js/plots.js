// Plots of many runs on a plain canvas (thousands of lines: uPlot draws series, not polylines
// across axes): parallel coordinates of hparams against a summary, with brushing, and a scatter of
// one field against another. Rows are {id, name, values: {field: value}} (search.fieldValues).
import { el, fmtValue } from "./common.js";
import { literal } from "./search.js";

const PAD = { top: 28, bottom: 26, left: 56, right: 56 };
const HEIGHT = 320;
const BINS = 16;

/** A scale of one field over the rows: numbers (linear, or log when positive and spread), else categories. */
export function scaleOf(field, rows) {
  const vals = rows.map((r) => r.values[field]).filter((v) => v !== null && v !== undefined);
  if (vals.length && vals.every((v) => typeof v === "number")) {
    let lo = Math.min(...vals), hi = Math.max(...vals);
    const log = lo > 0 && hi / lo >= 100;
    const f = log ? Math.log10 : (v) => v;
    if (lo === hi) { lo -= 0.5; hi += 0.5; }
    const a = f(lo), b = f(hi);
    return { field, kind: "number", lo, hi, log, at: (v) => (typeof v === "number" ? (f(v) - a) / (b - a) : null),
      invert: (t) => (log ? 10 ** (a + t * (b - a)) : a + t * (b - a)) };
  }
  const cats = [...new Set(vals.map((v) => JSON.stringify(v)))].sort().map((s) => JSON.parse(s));
  const index = new Map(cats.map((c, i) => [JSON.stringify(c), i]));
  return { field, kind: "category", cats,
    at: (v) => (v === null || v === undefined ? null : cats.length === 1 ? 0.5 : index.get(JSON.stringify(v)) / (cats.length - 1)) };
}

/** The filter clause that keeps the values of `scale` between the fractions t0 < t1. */
function clause(scale, t0, t1) {
  if (scale.kind === "number") {
    const a = scale.invert(t0), b = scale.invert(t1);
    return `${scale.field} >= ${Number(a.toPrecision(6))} and ${scale.field} <= ${Number(b.toPrecision(6))}`;
  }
  const inside = scale.cats.filter((c) => { const t = scale.at(c); return t >= t0 && t <= t1; });
  return inside.length ? `${scale.field} in (${inside.map(literal).join(", ")})` : `${scale.field} = null and ${scale.field} != null`;
}

function colorOf(t) { // blue (low) to orange (high)
  const c0 = [47, 111, 222], c1 = [232, 113, 10];
  return `rgb(${c0.map((c, i) => Math.round(c + (c1[i] - c) * t)).join(",")})`;
}

function canvas(container, height) {
  const node = el("canvas", { height: String(height) });
  container.replaceChildren(node);
  node.width = Math.max(400, container.clientWidth || 800);
  return node;
}

function tickLabels(scale) {
  if (scale.kind === "category") return scale.cats.map((c) => [scale.at(c), fmtValue(c)]);
  return [0, 0.5, 1].map((t) => [t, fmtValue(Number(scale.invert(t).toPrecision(3)))]);
}

/** Parallel coordinates: one axis per field, one line per run coloured by the last axis. */
export class ParallelCoords {
  /** `onBrush(filter)` gets the filter clause of the brushed ranges ("" when none). */
  constructor(container, { onBrush }) {
    this.container = container;
    this.onBrush = onBrush;
    this.brushes = new Map(); // field -> [t0, t1]
  }

  setData(fields, rows) {
    this.rows = rows;
    this.scales = fields.map((f) => scaleOf(f, rows));
    for (const f of [...this.brushes.keys()]) if (!fields.includes(f)) this.brushes.delete(f);
    this.canvas = canvas(this.container, HEIGHT);
    this.canvas.addEventListener("mousedown", (e) => this.startBrush(e));
    this.draw();
  }

  xOf(i) { return PAD.left + (i * (this.canvas.width - PAD.left - PAD.right)) / Math.max(1, this.scales.length - 1); }
  yOf(t) { return PAD.top + (1 - t) * (HEIGHT - PAD.top - PAD.bottom); }
  tOf(y) { return Math.min(1, Math.max(0, 1 - (y - PAD.top) / (HEIGHT - PAD.top - PAD.bottom))); }

  selected(r) {
    for (const [field, [t0, t1]] of this.brushes) {
      const t = this.scales.find((s) => s.field === field).at(r.values[field]);
      if (t === null || t < t0 - 1e-9 || t > t1 + 1e-9) return false;
    }
    return true;
  }

  draw() {
    const ctx = this.canvas.getContext("2d");
    ctx.clearRect(0, 0, this.canvas.width, HEIGHT);
    const color = this.scales[this.scales.length - 1];
    const bins = Array.from({ length: BINS + 1 }, () => new Path2D()); // the last one: brushed out
    let drawn = 0, chosen = 0;
    for (const r of this.rows) {
      const inside = this.selected(r);
      const c = color.at(r.values[color.field]);
      const path = bins[inside ? (c === null ? 0 : Math.min(BINS - 1, Math.floor(c * BINS))) : BINS];
      let pen = false;
      this.scales.forEach((s, i) => {
        const t = s.at(r.values[s.field]);
        if (t === null) { pen = false; return; }
        const x = this.xOf(i), y = this.yOf(t);
        if (pen) path.lineTo(x, y); else path.moveTo(x, y);
        pen = true;
      });
      drawn++;
      if (inside) chosen++;
    }
    ctx.lineWidth = 1;
    ctx.strokeStyle = "rgba(160,167,175,0.25)";
    ctx.stroke(bins[BINS]);
    ctx.globalAlpha = this.rows.length > 2000 ? 0.25 : 0.6;
    bins.slice(0, BINS).forEach((p, i) => { ctx.strokeStyle = colorOf(i / (BINS - 1)); ctx.stroke(p); });
    ctx.globalAlpha = 1;
    this.drawAxes(ctx);
    Object.assign(this.container.dataset, { lines: drawn, selected: chosen, axes: this.scales.length,
      fields: JSON.stringify(this.scales.map((s) => s.field)) });
  }

  drawAxes(ctx) {
    ctx.font = "11px sans-serif";
    this.scales.forEach((s, i) => {
      const x = this.xOf(i);
      ctx.strokeStyle = "#57606a";
      ctx.beginPath(); ctx.moveTo(x, PAD.top); ctx.lineTo(x, HEIGHT - PAD.bottom); ctx.stroke();
      ctx.fillStyle = "#1f2328";
      ctx.textAlign = "center";
      ctx.fillText(s.field.replace(/^hparams\./, ""), x, PAD.top - 12);
      ctx.fillStyle = "#656d76";
      ctx.textAlign = i === this.scales.length - 1 ? "left" : "right";
      const labels = tickLabels(s);
      const every = Math.ceil(labels.length / 12);
      labels.forEach(([t, text], k) => { if (k % every === 0) ctx.fillText(text, x + (ctx.textAlign === "left" ? 4 : -4), this.yOf(t) + 4); });
      const b = this.brushes.get(s.field);
      if (b) {
        ctx.fillStyle = "rgba(47,111,222,0.18)";
        ctx.strokeStyle = "#2f6fde";
        ctx.fillRect(x - 7, this.yOf(b[1]), 14, this.yOf(b[0]) - this.yOf(b[1]));
        ctx.strokeRect(x - 7, this.yOf(b[1]), 14, this.yOf(b[0]) - this.yOf(b[1]));
      }
    });
  }

  /** Drag along an axis to brush it; a click without a drag clears that axis's brush. */
  startBrush(e) {
    const box = this.canvas.getBoundingClientRect();
    const px = (e.clientX - box.left) * (this.canvas.width / box.width), py0 = e.clientY - box.top;
    const i = this.scales.findIndex((_, k) => Math.abs(this.xOf(k) - px) <= 12);
    if (i < 0) return;
    e.preventDefault();
    const field = this.scales[i].field;
    const move = (ev) => {
      const py1 = ev.clientY - box.top;
      if (Math.abs(py1 - py0) < 3) return;
      const a = this.tOf(py0), b = this.tOf(py1);
      this.brushes.set(field, [Math.min(a, b), Math.max(a, b)]);
      this.draw();
    };
    const up = (ev) => {
      window.removeEventListener("mousemove", move);
      window.removeEventListener("mouseup", up);
      if (Math.abs(ev.clientY - box.top - py0) < 3) this.brushes.delete(field);
      this.draw();
      this.onBrush(this.filter());
    };
    window.addEventListener("mousemove", move);
    window.addEventListener("mouseup", up);
  }

  /** The filter clause of the current brushes. */
  filter() {
    return [...this.brushes].map(([field, [t0, t1]]) => clause(this.scales.find((s) => s.field === field), t0, t1)).join(" and ");
  }

  clearBrushes() { this.brushes.clear(); if (this.rows) this.draw(); }
}

/** A scatter of one field (x) against another (y). */
export function drawScatter(container, xField, yField, rows) {
  const node = canvas(container, HEIGHT);
  const ctx = node.getContext("2d");
  const sx = scaleOf(xField, rows), sy = scaleOf(yField, rows);
  const w = node.width - PAD.left - PAD.right, h = HEIGHT - PAD.top - PAD.bottom;
  const X = (t) => PAD.left + t * w, Y = (t) => PAD.top + (1 - t) * h;
  ctx.strokeStyle = "#d0d7de";
  ctx.strokeRect(PAD.left, PAD.top, w, h);
  ctx.fillStyle = "#656d76";
  ctx.font = "11px sans-serif";
  ctx.textAlign = "center";
  for (const [t, text] of tickLabels(sx)) ctx.fillText(text, X(t), HEIGHT - PAD.bottom + 14);
  ctx.fillText(`${xField}  →`, PAD.left + w / 2, HEIGHT - 2);
  ctx.textAlign = "right";
  for (const [t, text] of tickLabels(sy)) ctx.fillText(text, PAD.left - 4, Y(t) + 4);
  ctx.textAlign = "left";
  ctx.fillText(`↑ ${yField}`, 4, PAD.top - 12);
  ctx.fillStyle = "rgba(47,111,222,0.6)";
  let n = 0;
  for (const r of rows) {
    const tx = sx.at(r.values[xField]), ty = sy.at(r.values[yField]);
    if (tx === null || ty === null) continue;
    ctx.beginPath();
    ctx.arc(X(tx), Y(ty), 2.5, 0, 2 * Math.PI);
    ctx.fill();
    n++;
  }
  container.dataset.points = String(n);
}
