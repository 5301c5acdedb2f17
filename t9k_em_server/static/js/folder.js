// The folder page: the folder tree (sidebar), breadcrumbs, sub-folders, and the runs/artifacts
// table with status, start, duration, labels, mean GPU utilisation and peak GPU memory (when a run
// sampled GPUs), and the chosen hparams and last-metric columns.
import { getJSON, el, mount, showError, links, fmtTime, fmtShortTime, fmtDuration, durationSeconds, parseTime, statusBadge,
  labelChips, breadcrumbs, flatten, fmtBytes, Table } from "./common.js";
import { renderTree } from "./tree.js";
import { SYSTEM_TYPE } from "./system.js";

const root = document.getElementById("page");
const folderPath = root.dataset.path;
const MAX_DEFAULT_HP = 3, MAX_DEFAULT_METRICS = 3;

/** Flat {"train/loss": value} from the server's last metrics ({type: {metric: value}}), system
 * metrics left out (their last values say little; the GPU columns summarise them). */
function lastMetrics(item) {
  const out = {};
  for (const [type, values] of Object.entries(item.last_metrics || {})) {
    if (type === SYSTEM_TYPE) continue;
    if (values && typeof values === "object") for (const [k, v] of Object.entries(values)) out[`${type}/${k}`] = v;
    else out[type] = values;
  }
  return out;
}

/** Keys of rows[i][field], those whose values differ between rows first (what a user wants to see). */
function rankKeys(rows, field) {
  const keys = new Map();
  for (const r of rows) for (const [k, v] of Object.entries(r[field])) {
    if (!keys.has(k)) keys.set(k, new Set());
    keys.get(k).add(JSON.stringify(v));
  }
  const differing = (k) => keys.get(k).size > 1;
  const ranked = [...keys.keys()].sort((a, b) => differing(b) - differing(a) || a.localeCompare(b));
  return { all: ranked, differing: ranked.filter(differing) };
}

function storedColumns() {
  try { return JSON.parse(localStorage.getItem(`em.columns:${folderPath}`)); } catch (_) { return null; }
}

function columnPicker(hpKeys, metricKeys, chosen, onChange) {
  const box = (group, key) => el("label", { class: "pick" }, el("input", {
    type: "checkbox", checked: chosen[group].includes(key),
    onchange: (e) => {
      chosen[group] = e.target.checked ? [...chosen[group], key] : chosen[group].filter((k) => k !== key);
      localStorage.setItem(`em.columns:${folderPath}`, JSON.stringify(chosen));
      onChange();
    },
  }), key);
  return el("details", { class: "dropdown" }, el("summary", { class: "button" }, "Columns"),
    el("div", { class: "dropdown-menu" },
      el("h3", {}, "Hyperparameters"), hpKeys.length ? hpKeys.map((k) => box("hparams", k)) : el("div", { class: "muted" }, "none"),
      el("h3", {}, "Metrics (last value)"), metricKeys.length ? metricKeys.map((k) => box("metrics", k)) : el("div", { class: "muted" }, "none")));
}

const GPU_COLUMNS = [
  { key: "gpu_util", title: "Mean GPU util", num: true, value: (r) => r.gpu?.util_mean ?? undefined,
    render: (r) => (r.gpu?.util_mean ?? null) === null ? "" : `${r.gpu.util_mean.toFixed(1)}%` },
  { key: "gpu_memory", title: "Peak GPU memory", num: true, value: (r) => r.gpu?.memory_peak ?? undefined,
    render: (r) => fmtBytes(r.gpu?.memory_peak ?? null) },
];

function columns(chosen, withGpu) {
  const cols = [
    { key: "name", title: "Name", value: (r) => r.name, render: (r) => el("a", { href: links.node(r), class: "name" }, r.name) },
    { key: "status", title: "Status", value: (r) => r.status || "", render: (r) => statusBadge(r.status) },
    { key: "start", title: "Start", value: (r) => parseTime(r.start), render: (r) => el("span", { title: fmtTime(r.start) }, fmtShortTime(r.start)) },
    { key: "duration", title: "Duration", num: true, value: (r) => durationSeconds(r), render: (r) => fmtDuration(durationSeconds(r)) },
    { key: "labels", title: "Labels", value: (r) => (r.labels || []).join(" "), render: (r) => labelChips(r.labels) },
    ...(withGpu ? GPU_COLUMNS : []),
  ];
  for (const k of chosen.hparams) {
    cols.push({ key: `hp:${k}`, title: k, group: "Hyperparameters", num: true, value: (r) => r.hp[k] });
  }
  for (const k of chosen.metrics) {
    cols.push({ key: `m:${k}`, title: k, group: "Last metrics", num: true, value: (r) => r.metrics[k] });
  }
  return cols;
}

const ARTIFACT_COLUMNS = [
  { key: "name", title: "Name", value: (r) => r.name, render: (r) => el("a", { href: links.node(r), class: "name" }, r.name) },
  { key: "start", title: "Created", value: (r) => parseTime(r.start || r.created), render: (r) => fmtTime(r.start || r.created) },
  { key: "labels", title: "Labels", value: (r) => (r.labels || []).join(" "), render: (r) => labelChips(r.labels) },
  { key: "description", title: "Description", value: (r) => r.description || "" },
];

async function main() {
  renderTree(document.getElementById("tree"), folderPath);
  let data;
  try { data = await getJSON("/folders", { path: folderPath }); } catch (e) { showError(root, e); return; }
  const children = data.children || [];
  const folders = children.filter((c) => c.type === "Folder");
  const runs = children.filter((c) => c.type === "Run").map((c) => ({ ...c, hp: flatten(c.hparams), metrics: lastMetrics(c) }));
  const artifacts = children.filter((c) => c.type === "Artifact");
  const hp = rankKeys(runs, "hp"), hpKeys = hp.all;
  const metricKeys = rankKeys(runs, "metrics").all.sort();
  const chosen = storedColumns() || {
    hparams: (hp.differing.length ? hp.differing : hpKeys).slice(0, MAX_DEFAULT_HP),
    metrics: (metricKeys.some((k) => k.startsWith("val/")) ? metricKeys.filter((k) => k.startsWith("val/"))
      : metricKeys.filter((k) => k.startsWith("train/"))).slice(0, MAX_DEFAULT_METRICS),
  };
  chosen.hparams = chosen.hparams.filter((k) => hpKeys.includes(k));
  chosen.metrics = chosen.metrics.filter((k) => metricKeys.includes(k));

  const compareBtn = el("button", { class: "primary", id: "compare", disabled: true,
    onclick: () => { location.href = links.compare([...table.checked]); } }, "Compare");
  const withGpu = runs.some((r) => r.gpu);
  const table = new Table(columns(chosen, withGpu), runs, {
    sortKey: "start", sortDir: -1, checkable: true, emptyText: "No runs in this folder yet.",
    onCheck: (set) => { compareBtn.disabled = set.size < 2; compareBtn.textContent = set.size ? `Compare (${set.size})` : "Compare"; },
  });
  table.node.id = "runs";
  const artTable = new Table(ARTIFACT_COLUMNS, artifacts, { sortKey: "start", sortDir: -1 });
  artTable.node.id = "artifacts";
  const picker = columnPicker(hpKeys, metricKeys, chosen, () => { table.columns = columns(chosen, withGpu); table.render(); });
  const filter = el("input", { type: "search", id: "filter", placeholder: "Filter, e.g. resnet  status:complete  lr:0.01", style: "width:320px",
    oninput: (e) => { table.setQuery(e.target.value); artTable.setQuery(e.target.value); } });
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  document.title = `${data.folder.name} · t9k EM`;
  mount(root,
    breadcrumbs(folderPath),
    el("div", { class: "page-head" }, el("h1", {}, data.folder.name),
      el("span", { class: "subtitle" }, `${plural(runs.length, "run")}, ${plural(artifacts.length, "artifact")}`)),
    folders.length ? el("div", { class: "card folders" }, el("h3", {}, "Folders"),
      el("div", { class: "folder-chips" }, folders.map((f) => el("a", { class: "folder-chip", href: links.folder(f.path) },
        el("span", { class: "icon-folder" }), f.name)))) : null,
    !runs.length && (folders.length || artifacts.length) ? null : el("div", { class: "card flush" },
      el("div", { class: "toolbar" }, filter, picker, el("span", { class: "grow" }),
        el("span", { class: "muted" }, "Select runs to compare"), compareBtn),
      table.node),
    artifacts.length ? el("div", { class: "card flush" }, el("div", { class: "card-head" }, el("h2", {}, "Artifacts")), artTable.node) : null);
}

main();
