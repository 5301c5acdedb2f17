// The compare page: overlaid charts of the chosen runs (colour = run, dash = train/val/test) and
// a hyperparameter table whose differing rows are highlighted.
import { getJSON, el, mount, showError, links, fmtTime, fmtDuration, durationSeconds, statusBadge,
  flatten, fmtValue, breadcrumbs } from "./common.js";
import { ChartPanel, MetricChart, PALETTE, typeDash } from "./charts.js";
import { seriesLoader, metricNames } from "./series.js";

const root = document.getElementById("page");
const ids = (new URLSearchParams(location.search).get("runs") || "").split(",").filter(Boolean);

function runsTable(runs) {
  return el("table", { class: "data", id: "compare-runs" },
    el("thead", {}, el("tr", {}, ["Run", "Status", "Start", "Duration", "Folder"].map((t) => el("th", {}, t)))),
    el("tbody", {}, runs.map((r, i) => el("tr", {},
      el("td", {}, el("span", { class: "swatch", style: `background:${PALETTE[i % PALETTE.length]}` }), el("a", { class: "name", href: links.run(r.id) }, r.name)),
      el("td", {}, statusBadge(r.status)), el("td", {}, fmtTime(r.start)), el("td", {}, fmtDuration(durationSeconds(r))),
      el("td", {}, el("a", { href: links.folder(r.path.split("/").slice(0, -1).join("/")) }, r.path.split("/").slice(0, -1).join("/")))))));
}

function hparamTable(runs) {
  const flat = runs.map((r) => flatten(r.hparams));
  const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))].sort();
  const body = el("tbody");
  const onlyDiff = el("input", { type: "checkbox", id: "only-diff", onchange: () => draw() });
  const draw = () => {
    mount(body, keys.map((k) => {
      const vals = flat.map((f) => (k in f ? JSON.stringify(f[k]) : undefined));
      const differs = new Set(vals).size > 1;
      if (onlyDiff.checked && !differs) return null;
      return el("tr", { class: differs ? "diff" : "", dataset: { key: k } }, el("td", { class: "mono" }, k),
        flat.map((f) => el("td", { class: "num" }, k in f ? fmtValue(f[k]) : el("span", { class: "muted" }, "—"))));
    }));
    if (!body.children.length) mount(body, el("tr", {}, el("td", { colspan: runs.length + 1, class: "empty" }, "No hyperparameters.")));
  };
  draw();
  const nDiff = keys.filter((k) => new Set(flat.map((f) => (k in f ? JSON.stringify(f[k]) : undefined))).size > 1).length;
  return [
    el("div", { class: "toolbar" }, el("label", {}, onlyDiff, "Only differences"), el("span", { class: "grow" }),
      el("span", { class: "muted" }, `${nDiff} of ${keys.length} differ`)),
    el("div", { class: "table-wrap" }, el("table", { class: "data", id: "compare-hparams" },
      el("thead", {}, el("tr", {}, el("th", {}, "Hyperparameter"), runs.map((r, i) => el("th", { class: "num" },
        el("span", { class: "swatch", style: `background:${PALETTE[i % PALETTE.length]}` }), r.name)))),
      body)),
  ];
}

async function main() {
  if (ids.length < 1) { showError(root, new Error("Pick runs to compare on a folder page.")); return; }
  let runs;
  try { runs = await Promise.all(ids.map((id) => getJSON(`/runs/${encodeURIComponent(id)}`))); } catch (e) { showError(root, e); return; }
  const metrics = new Map();
  runs.forEach((r, ri) => {
    for (const [name, types] of metricNames(r.metrics)) {
      if (!metrics.has(name)) metrics.set(name, []);
      for (const type of types) metrics.get(name).push({ run: r, ri, type });
    }
  });
  const charts = [...metrics.keys()].sort().map((name) => new MetricChart(name, metrics.get(name).map(({ run, ri, type }) => ({
    key: `${run.id}:${type}`, label: `${run.name} ${type}`, color: PALETTE[ri % PALETTE.length], dash: typeDash(type),
    load: seriesLoader(run.id, type, name),
  })), { legend: false }));
  const parent = runs[0].path.split("/").slice(0, -1).join("/");
  const panelBox = el("div");
  document.title = `Compare ${runs.length} runs · t9k EM`;
  mount(root,
    breadcrumbs(parent),
    el("div", { class: "page-head" }, el("h1", {}, `Compare ${runs.length} runs`)),
    el("div", { class: "card flush" }, el("div", { class: "card-head" }, el("h2", {}, "Runs")), el("div", { class: "table-wrap" }, runsTable(runs))),
    el("div", { class: "card flush", id: "charts" }, el("div", { class: "card-head" }, el("h2", {}, "Charts"),
      el("span", { class: "muted" }, "colour = run · solid = train, dashed = val, dotted = test")), panelBox),
    el("div", { class: "card flush", id: "hparams" }, el("div", { class: "card-head" }, el("h2", {}, "Hyperparameters")), hparamTable(runs)));
  const panel = new ChartPanel(panelBox);
  panel.setCharts(charts);
  await panel.reload(true);
}

main();
