// The folder page: the folder tree (sidebar), breadcrumbs, sub-folders, the runs table (paged
// from the search endpoint: the filter box takes the query language, columns sort on the server,
// group-by with aggregates), charts of many runs, parallel coordinates and a scatter of the
// filtered runs, and the artifacts. docs/ui.md describes it.
import { getJSON, el, mount, showError, links, fmtTime, fmtShortTime, fmtDuration, durationSeconds, parseTime, statusBadge,
  labelChips, breadcrumbs, flatten, fmtBytes, fmtValue, Table } from "./common.js";
import { renderTree } from "./tree.js";
import { activityCard, editCard, sharingCard } from "./manage.js";
import { SYSTEM_TYPE } from "./system.js";
import { searchRuns, searchFields, fieldValues, runsSeries, groupSeries, fieldName, andFilters, QueryFailure, SUMMARIES,
  MAX_OVERLAY_RUNS, MAX_PLOT_RUNS } from "./search.js";
import { QueryBox } from "./query_box.js";
import { RunTable } from "./runs_table.js";
import { ManyChart, runLines, groupLines } from "./many_charts.js";
import { ParallelCoords, drawScatter } from "./plots.js";

const root = document.getElementById("page");
const folderPath = root.dataset.path;
const params = new URLSearchParams(location.search);
const MAX_DEFAULT_HP = 3, MAX_DEFAULT_SUMMARIES = 3, MAX_DEFAULT_AXES = 6;
const GPU_UTIL = /^gpu\d+_util_percent$/, GPU_MEMORY = /^gpu\d+_memory_used_bytes$/;

// ---- columns -------------------------------------------------------------------------------
const hpOf = (r) => r._hp || (r._hp = flatten(r.hparams));
const summaryOf = (r, type, name, summary) => r.summaries?.[type]?.[name]?.[summary];

/** Mean GPU utilisation over every sample of every GPU, and the peak memory of any GPU, from the
 *  run's `system` summaries (docs/system-metrics.md). */
function gpuUsage(r) {
  const system = r.summaries?.[SYSTEM_TYPE];
  if (!system) return null;
  let sum = 0, n = 0, peak = null;
  for (const [name, s] of Object.entries(system)) {
    if (GPU_UTIL.test(name) && s.count) { sum += s.mean * s.count; n += s.count; }
    if (GPU_MEMORY.test(name) && s.max !== null) peak = Math.max(peak ?? s.max, s.max);
  }
  return n || peak !== null ? { util: n ? sum / n : null, memory: peak } : null;
}

const GPU_COLUMNS = [
  { key: "gpu_util", title: "Mean GPU util", num: true, value: (r) => gpuUsage(r)?.util ?? undefined,
    render: (r) => (gpuUsage(r)?.util ?? null) === null ? "" : `${gpuUsage(r).util.toFixed(1)}%` },
  { key: "gpu_memory", title: "Peak GPU memory", num: true, value: (r) => gpuUsage(r)?.memory ?? undefined,
    render: (r) => fmtBytes(gpuUsage(r)?.memory ?? null) },
];

const BUILTIN_COLUMNS = [
  { key: "name", title: "Name", field: "name", value: (r) => r.name, render: (r) => el("a", { href: links.run(r.id), class: "name" }, r.name) },
  { key: "status", title: "Status", field: "status", value: (r) => r.status, render: (r) => statusBadge(r.status) },
  { key: "start", title: "Start", field: "start", value: (r) => parseTime(r.start), render: (r) => el("span", { title: fmtTime(r.start) }, fmtShortTime(r.start)) },
  { key: "duration", title: "Duration", field: "duration", num: true, aggregate: true, value: (r) => durationSeconds(r), render: (r) => fmtDuration(durationSeconds(r)) },
  { key: "labels", title: "Labels", value: (r) => (r.labels || []).join(" "), render: (r) => labelChips(r.labels) },
];

function columns(chosen, fields, withGpu) {
  const hp = new Map(fields.hparams.map((h) => [h.key, h]));
  const cols = [...BUILTIN_COLUMNS, ...(withGpu ? GPU_COLUMNS : [])];
  for (const key of chosen.hparams) {
    const h = hp.get(key);
    if (!h) continue;
    const numeric = h.types.every((t) => t === "number");
    cols.push({ key: `hp:${key}`, title: key, group: "Hyperparameters", field: h.field, num: numeric, aggregate: numeric,
      value: (r) => hpOf(r)[key], render: (r) => fmtValue(hpOf(r)[key]) });
  }
  for (const [type, name, summary] of chosen.summaries) {
    const field = fieldName(type, name, summary);
    cols.push({ key: `s:${field}`, title: field, group: "Metrics", field, num: true, aggregate: true,
      value: (r) => summaryOf(r, type, name, summary) });
  }
  return cols;
}

// ---- chosen columns (kept per folder in localStorage) ---------------------------------------
const STORE_KEY = `em.columns:${folderPath}`;

function storedColumns() {
  try {
    const c = JSON.parse(localStorage.getItem(STORE_KEY));
    if (!c || !Array.isArray(c.hparams)) return null;
    // Earlier pages stored last-value metrics as "type/name".
    const summaries = c.summaries || (c.metrics || []).map((m) => [...m.split("/", 2), "last"]);
    return { hparams: c.hparams, summaries: summaries.filter((s) => Array.isArray(s) && s.length === 3) };
  } catch (_) { return null; }
}

/** Default columns: hparams whose values differ in the first page first; the last value of val
 *  metrics (else train), system metrics left out (the GPU columns summarise them). */
function defaultColumns(fields, rows) {
  const seen = new Map();
  for (const r of rows) for (const [k, v] of Object.entries(hpOf(r))) {
    if (!seen.has(k)) seen.set(k, new Set());
    seen.get(k).add(JSON.stringify(v));
  }
  const keys = fields.hparams.map((h) => h.key);
  const differing = (k) => (seen.get(k)?.size || 0) > 1;
  const hparams = [...keys].sort((a, b) => differing(b) - differing(a) || keys.indexOf(a) - keys.indexOf(b)).slice(0, MAX_DEFAULT_HP);
  const metrics = fields.metrics.filter((m) => m.type !== SYSTEM_TYPE);
  const pick = metrics.some((m) => m.type === "val") ? metrics.filter((m) => m.type === "val") : metrics.filter((m) => m.type === "train");
  return { hparams, summaries: pick.slice(0, MAX_DEFAULT_SUMMARIES).map((m) => [m.type, m.name, "last"]) };
}

function columnPicker(fields, chosen, onChange) {
  const save = () => { localStorage.setItem(STORE_KEY, JSON.stringify(chosen)); onChange(); };
  const hpBox = (key) => el("label", { class: "pick" }, el("input", {
    type: "checkbox", checked: chosen.hparams.includes(key),
    onchange: (e) => { chosen.hparams = e.target.checked ? [...chosen.hparams, key] : chosen.hparams.filter((k) => k !== key); save(); },
  }), key);
  const has = (t, n, s) => chosen.summaries.some((c) => c[0] === t && c[1] === n && c[2] === s);
  const summaryRow = (m) => el("div", { class: "pick-row", dataset: { metric: `${m.type}.${m.name}` } },
    el("span", { class: "mono" }, fieldName(m.type, m.name)),
    SUMMARIES.map((s) => el("label", { class: "pick small" }, el("input", {
      type: "checkbox", checked: has(m.type, m.name, s), "aria-label": `${m.type}.${m.name}.${s}`,
      onchange: (e) => {
        chosen.summaries = e.target.checked ? [...chosen.summaries, [m.type, m.name, s]]
          : chosen.summaries.filter((c) => !(c[0] === m.type && c[1] === m.name && c[2] === s));
        save();
      },
    }), s)));
  const metrics = [...fields.metrics].sort((a, b) => (a.type === SYSTEM_TYPE) - (b.type === SYSTEM_TYPE));
  return el("details", { class: "dropdown", id: "columns" }, el("summary", { class: "button" }, "Columns"),
    el("div", { class: "dropdown-menu wide" },
      el("h3", {}, "Hyperparameters"), fields.hparams.length ? fields.hparams.map((h) => hpBox(h.key)) : el("div", { class: "muted" }, "none"),
      el("h3", {}, "Metric summaries"), metrics.length ? metrics.map(summaryRow) : el("div", { class: "muted" }, "none")));
}

// ---- charts and plots ----------------------------------------------------------------------
function select(id, options, value, onchange) {
  return el("select", { id, onchange: (e) => onchange(e.target.value) },
    options.map(([v, text]) => el("option", { value: v, selected: v === value }, text)));
}

/** The "Charts of many runs" card: one metric of the selected runs (or of the groups). */
function chartsCard(ctx) {
  const metrics = ctx.fields.metrics;
  const first = metrics.find((m) => m.type === "val") || metrics[0];
  const state = { metric: first ? `${first.type}\u0000${first.name}` : "", x: "step" };
  const chart = new ManyChart("many-chart");
  const note = el("span", { class: "muted" });
  let asked = 0; // a newer draw wins over a slower older one
  const draw = async () => {
    if (!state.metric || !card.open) return;
    const mine = ++asked;
    const [type, metric] = state.metric.split("\u0000");
    const started = performance.now();
    chart.node.dataset.loading = "1";
    try {
      if (ctx.table.groupBy) {
        const groups = await groupSeries(ctx.scope, { filter: ctx.table.filter, by: ctx.table.groupBy, type, metric, x: state.x });
        if (mine !== asked) return;
        const { lines, bands } = groupLines(groups, ctx.table.groupBy);
        chart.draw(`${type}/${metric} by ${ctx.table.groupBy}: mean and min–max`, lines, { bands, xLabel: state.x, time: state.x === "time" });
        note.textContent = "one line per group (its mean) and its min–max band";
      } else {
        const picked = ctx.table.checked.size ? [...ctx.table.checked.keys()] : ctx.table.rows.map((r) => r.id);
        const ids = picked.slice(0, MAX_OVERLAY_RUNS);
        const series = ids.length ? await runsSeries(ids, { type, metric, x: state.x }) : [];
        if (mine !== asked) return;
        chart.draw(`${type}/${metric}`, runLines(series), { xLabel: state.x, time: state.x === "time" });
        note.textContent = ctx.table.checked.size ? `the ${ids.length} selected runs` : `the first ${ids.length} runs of the table (select runs to choose)`;
      }
    } catch (e) { showError(chart.body, e); }
    await new Promise(requestAnimationFrame); // uPlot draws in a microtask after its constructor
    delete chart.node.dataset.loading;
    chart.node.dataset.ms = String(Math.round(performance.now() - started)); // request + drawing (benchmarks)
    chart.node.dataset.ready = "1";
  };
  const card = el("details", { class: "card flush", id: "many-charts", ontoggle: () => draw() },
    el("summary", { class: "card-head" }, el("h2", {}, "Charts of many runs")),
    el("div", { class: "toolbar" },
      el("label", {}, "Metric", select("chart-metric", metrics.map((m) => [`${m.type}\u0000${m.name}`, `${m.type}/${m.name}`]), state.metric,
        (v) => { state.metric = v; draw(); })),
      el("label", {}, "X axis", select("chart-x", ["step", "epoch", "time"].map((x) => [x, x]), state.x, (v) => { state.x = v; draw(); })),
      el("span", { class: "grow" }), note),
    el("div", { class: "card-body" }, chart.node));
  return { node: card, draw };
}

/** The "Parallel coordinates" card: the chosen hparams against a summary, and a scatter. */
function plotsCard(ctx) {
  const summaries = ctx.fields.metrics.filter((m) => m.type !== SYSTEM_TYPE)
    .flatMap((m) => ["last", "min", "max", "mean"].map((s) => fieldName(m.type, m.name, s)));
  const hparams = ctx.fields.hparams.map((h) => h.field);
  const chosenSummary = ctx.chosen.summaries[0];
  const state = { y: chosenSummary ? fieldName(...chosenSummary) : summaries[0], x: null };
  const pcBox = el("div", { class: "plot", id: "parallel" }), scatterBox = el("div", { class: "plot", id: "scatter" });
  const note = el("span", { class: "muted" });
  const pc = new ParallelCoords(pcBox, { onBrush: (f) => ctx.setBrush(f) });
  let rows = [];
  const axes = () => {
    const chosen = ctx.chosen.hparams.map((k) => ctx.fields.hparams.find((h) => h.key === k)?.field).filter(Boolean);
    return (chosen.length ? chosen : hparams).slice(0, MAX_DEFAULT_AXES);
  };
  const xSelect = select("scatter-x", hparams.map((h) => [h, h]), null, (v) => { state.x = v; scatter(); });
  const scatter = () => { if (rows.length && state.x && state.y) drawScatter(scatterBox, state.x, state.y, rows); };
  let asked = 0; // a newer load wins over a slower older one
  const load = async () => {
    if (!card.open || !state.y) return;
    const mine = ++asked;
    const fields = [...new Set([...axes(), state.y, state.x || axes()[0]])].filter(Boolean);
    state.x = state.x || axes()[0];
    xSelect.value = state.x;
    pcBox.dataset.loading = "1";
    try {
      const got = await fieldValues(ctx.scope, { filter: ctx.query(), fields });
      if (mine !== asked) return;
      rows = got.rows;
      note.textContent = `${rows.length.toLocaleString()} runs${got.total > rows.length ? ` of ${got.total.toLocaleString()} (the first ${MAX_PLOT_RUNS.toLocaleString()})` : ""}; drag along an axis to filter the table`;
      pc.setData([...axes().filter((f) => f !== state.y), state.y], rows);
      scatter();
    } catch (e) { showError(pcBox, e); }
    delete pcBox.dataset.loading;
  };
  const card = el("details", { class: "card flush", id: "plots", ontoggle: () => load() },
    el("summary", { class: "card-head" }, el("h2", {}, "Parallel coordinates and scatter")),
    el("div", { class: "toolbar" },
      el("label", {}, "Summary", select("plot-summary", summaries.map((s) => [s, s]), state.y, (v) => { state.y = v; load(); })),
      el("label", {}, "Scatter x", xSelect),
      el("span", { class: "grow" }), note),
    el("div", { class: "card-body" }, pcBox, scatterBox));
  return { node: card, load, clear: () => pc.clearBrushes() };
}

// ---- page ----------------------------------------------------------------------------------
function setUrl(state) {
  const p = new URLSearchParams();
  if (state.query) p.set("q", state.query);
  if (state.group) p.set("group", state.group);
  if (state.recursive) p.set("recursive", "1");
  history.replaceState(null, "", location.pathname + (p.size ? `?${p}` : ""));
}

const ARTIFACT_COLUMNS = [
  { key: "name", title: "Name", value: (r) => r.name, render: (r) => el("a", { href: links.node(r), class: "name" }, r.name) },
  { key: "start", title: "Created", value: (r) => parseTime(r.start || r.created), render: (r) => fmtTime(r.start || r.created) },
  { key: "labels", title: "Labels", value: (r) => (r.labels || []).join(" "), render: (r) => labelChips(r.labels) },
  { key: "description", title: "Description", value: (r) => r.description || "" },
];

async function main() {
  renderTree(document.getElementById("tree"), folderPath);
  const state = { query: params.get("q") || "", group: params.get("group") || "", recursive: params.get("recursive") === "1", brush: "" };
  const scope = { folder: folderPath, recursive: state.recursive };
  // The first page of runs is asked for at once, beside the folder and its fields.
  const order = [{ field: "start", desc: true }];
  const first = state.group ? null : searchRuns(scope, { filter: state.query, order: order.map((o) => `${o.field} desc`) });
  first?.catch(() => null); // a refused filter is shown when the table awaits it
  let data, fields;
  try {
    [data, fields] = await Promise.all([getJSON("/folders", { path: folderPath, runs: "false" }), searchFields(scope)]);
  } catch (e) { showError(root, e); return; }
  const children = data.children || [];
  const folders = children.filter((c) => c.type === "Folder");
  const artifacts = children.filter((c) => c.type === "Artifact");
  const withGpu = fields.metrics.some((m) => m.type === SYSTEM_TYPE && (GPU_UTIL.test(m.name) || GPU_MEMORY.test(m.name)));
  const stored = storedColumns();
  let chosen = stored || { hparams: [], summaries: [] };

  const queryBox = new QueryBox({ value: state.query, onApply: (q) => { state.query = q; refresh(); } });
  queryBox.setFields(fields.fields);
  const compareBtn = el("button", { class: "primary", id: "compare", disabled: true,
    onclick: () => { location.href = links.compare([...table.checked.keys()]); } }, "Compare");
  const brushChip = el("div", { class: "brush", id: "brush", hidden: true });
  const ctx = { scope, fields, get chosen() { return chosen; }, query: () => state.query };
  const table = new RunTable({
    scope, columns: columns(chosen, fields, withGpu), order,
    onCheck: (set) => {
      compareBtn.disabled = set.size < 2;
      compareBtn.textContent = set.size ? `Compare (${set.size})` : "Compare";
      if (!table.groupBy) charts.draw(); // the overlay follows the selection
    },
    onError: (e) => {
      if (!(e instanceof QueryFailure)) { showError(table.node, e); return; }
      // The table's filter is "(query) and (brush)" when both are set: positions shift by one.
      const shift = state.query && state.brush ? 1 : 0;
      const inQuery = e.position - shift >= 1 && e.position - shift <= state.query.length + 1;
      queryBox.showError(new QueryFailure(e.problem, inQuery ? e.position - shift : 0));
      mount(table.node, el("div", { class: "empty" }, "Fix the filter to see runs."));
    },
    onLoaded: ({ rows }) => {
      queryBox.clearError();
      if (!stored && !chosen.hparams.length && !chosen.summaries.length && rows.length) {
        chosen = defaultColumns(fields, rows);
        table.setColumns(columns(chosen, fields, withGpu));
        picker.replaceWith(picker = columnPicker(fields, chosen, onColumns));
      }
    },
  });
  ctx.table = table;
  const onColumns = () => table.setColumns(columns(chosen, fields, withGpu));
  let picker = columnPicker(fields, chosen, onColumns);
  const charts = chartsCard(ctx);
  ctx.setBrush = (f) => {
    state.brush = f;
    mount(brushChip, el("span", { class: "muted" }, "Brushed: "), el("code", {}, f),
      el("button", { type: "button", id: "brush-clear", onclick: () => { plots.clear(); ctx.setBrush(""); } }, "Clear"));
    brushChip.hidden = !f;
    refresh(false);
  };
  const plots = plotsCard(ctx);
  const groupOptions = [["", "No grouping"], ["status", "status"], ["labels", "labels"], ...fields.hparams.map((h) => [h.field, h.field])];
  const groupSelect = select("group-by", groupOptions, state.group, (v) => { state.group = v; refresh(false); });
  const recursive = el("input", { type: "checkbox", id: "recursive", checked: state.recursive,
    onchange: (e) => { state.recursive = scope.recursive = e.target.checked; setUrl(state); location.reload(); } });

  function refresh(withPlots = true, firstPage = null) {
    setUrl(state);
    table.filter = andFilters(state.query, state.brush);
    table.groupBy = state.group;
    table.reload(firstPage).then(() => charts.draw());
    if (withPlots) plots.load();
  }

  const plural = (n, word) => `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;
  document.title = `${data.folder.name} · t9k EM`;
  mount(root,
    breadcrumbs(folderPath),
    el("div", { class: "page-head" }, el("h1", {}, data.folder.name),
      el("span", { class: "subtitle" }, `${plural(data.runs, "run")}, ${plural(artifacts.length, "artifact")}`)),
    folders.length ? el("div", { class: "card folders" }, el("h3", {}, "Folders"),
      el("div", { class: "folder-chips" }, folders.map((f) => el("a", { class: "folder-chip", href: links.folder(f.path) },
        el("span", { class: "icon-folder" }), f.name)))) : null,
    !data.runs && !state.recursive && (folders.length || artifacts.length) ? null : [
      el("div", { class: "card flush" },
        el("div", { class: "toolbar" }, queryBox.node, el("label", {}, "Group by", groupSelect), picker,
          el("label", { title: "Runs of every folder below this one too" }, recursive, "Sub-folders"),
          el("span", { class: "grow" }), el("span", { class: "muted" }, "Select runs to compare"), compareBtn),
        brushChip, table.node, table.footer),
      charts.node, plots.node],
    artifacts.length ? el("div", { class: "card flush" }, el("div", { class: "card-head" }, el("h2", {}, "Artifacts")),
      Object.assign(new Table(ARTIFACT_COLUMNS, artifacts, { sortKey: "start", sortDir: -1 }).node, { id: "artifacts" })) : null,
    sharingCard(data.folder, data.role), activityCard(data.folder, data.role),
    folderPath.split("/").length > 2 ? editCard(data.folder, data.role) : null);
  refresh(true, first);
}

main();
