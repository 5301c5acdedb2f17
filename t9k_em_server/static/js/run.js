// The run page: overview, environment, charts and system metrics (live while Running), hparams,
// inputs/outputs, log.
import { getJSON, el, mount, showError, links, fmtTime, fmtAgo, fmtDuration, durationSeconds, statusBadge,
  labelChips, breadcrumbs, kindBadge, fmtBytes, fmtValue } from "./common.js";
import { ChartPanel, MetricChart, markerTitle, typeColor } from "./charts.js";
import { renderHparams } from "./hparams.js";
import { seriesLoader, metricNames } from "./series.js";
import { SYSTEM_TYPE, systemCharts, systemFields } from "./system.js";
import { editCard } from "./manage.js";

// With incremental sync the server is about a second behind Run.log; a 1 s poll keeps the page within
// ~2 s of the training. A poll with nothing new costs one small JSON request.
const POLL_MS = 1000;
const root = document.getElementById("page");
const runId = root.dataset.node;

function overview(run) {
  return el("dl", { class: "kv" },
    el("dt", {}, "Status"), el("dd", { id: "run-status" }, statusBadge(run.status)),
    el("dt", {}, "Started"), el("dd", { id: "run-start" }, fmtTime(run.start), " ", el("span", { class: "muted" }, `(${fmtAgo(run.start)})`)),
    el("dt", {}, "Ended"), el("dd", { id: "run-end" }, run.end ? fmtTime(run.end) : el("span", { class: "muted" }, "—")),
    el("dt", {}, "Duration"), el("dd", { id: "run-duration" }, fmtDuration(durationSeconds(run))),
    el("dt", {}, "Description"), el("dd", {}, run.description || el("span", { class: "muted" }, "—")),
    el("dt", {}, "Labels"), el("dd", {}, run.labels && run.labels.length ? labelChips(run.labels) : el("span", { class: "muted" }, "—")),
    el("dt", {}, "Alternative name"), el("dd", { class: "mono" }, run.alternative_name || ""),
    el("dt", {}, "Path"), el("dd", { class: "mono" }, run.path));
}

/**
 * The run's segments: the first attempt from its start, then one row per resume point (the
 * steps after `step` were dropped and redone), the last one's status being the run's.
 */
function segmentList(run) {
  const segments = run.segments || [];
  if (!segments.length) return el("div", { class: "muted" }, "One attempt: never resumed.");
  const rows = [{ n: 1, time: run.start, step: null, reason: "first attempt", status: segments[0].previous_status }];
  segments.forEach((s, i) => rows.push({ n: i + 2, time: s.time, step: s.step, reason: s.reason,
    status: i + 1 < segments.length ? segments[i + 1].previous_status : run.status, title: markerTitle(s) }));
  return el("table", { class: "data compact", id: "segments" },
    el("thead", {}, el("tr", {}, el("th", { class: "num" }, "#"), el("th", {}, "Started"),
      el("th", { class: "num" }, "Resumed after step"), el("th", {}, "Reason"), el("th", {}, "Ended as"))),
    el("tbody", {}, rows.map((r) => el("tr", { title: r.title || null, dataset: { step: r.step === null ? "" : String(r.step) } },
      el("td", { class: "num" }, String(r.n)), el("td", {}, fmtTime(r.time)),
      el("td", { class: "num" }, r.step === null ? "—" : String(r.step)), el("td", {}, r.reason || ""),
      el("td", {}, r.status ? statusBadge(r.status) : "")))));
}

function environment(run) {
  const p = run.platform || {}, g = run.git || {};
  const pkgs = Object.entries(p.pypkgs || {}).map(([k, v]) => `${k} ${v}`).join(", ");
  const dash = el("span", { class: "muted" }, "—");
  return el("dl", { class: "kv" },
    el("dt", {}, "Host"), el("dd", {}, p.hostname || dash.cloneNode(true)),
    el("dt", {}, "OS"), el("dd", {}, p.os || dash.cloneNode(true)),
    el("dt", {}, "Python"), el("dd", {}, p.python || dash.cloneNode(true)),
    el("dt", {}, "Framework"), el("dd", {}, p.framework || dash.cloneNode(true)),
    el("dt", {}, "Packages"), el("dd", {}, pkgs || dash.cloneNode(true)),
    el("dt", {}, "Git commit"), el("dd", { class: "mono", id: "git-commit" }, g.commit ? g.commit : dash.cloneNode(true),
      g.is_dirty ? el("span", { class: "label" }, "dirty") : null),
    el("dt", {}, "Git branch"), el("dd", {}, g.branch || dash.cloneNode(true)),
    el("dt", {}, "Git remote"), el("dd", { class: "mono" }, g.remote_url || dash.cloneNode(true)),
    el("dt", {}, "Entrypoint"), el("dd", { class: "mono" }, g.entrypoint || dash.cloneNode(true)));
}

function nodeList(items, empty) {
  if (!items || !items.length) return el("div", { class: "muted" }, empty);
  return el("ul", { class: "plain-list" }, items.map((a) => el("li", {},
    kindBadge(a.type || "Artifact"), " ",
    a.id && a.known !== false ? el("a", { href: links.node(a) }, a.name || a.path || a.id)
      : el("span", { class: "mono", title: "not on this server" }, a.path || a.name || a.id || "unknown"))));
}

/** The metric types the Charts section and the last-metrics table show: all but system metrics. */
function loggedMetrics(metrics) {
  const { [SYSTEM_TYPE]: _, ...logged } = metrics || {};
  return logged;
}

/** The last value of every metric, one row per metric name and a column per type. */
function summary(run) {
  const last = loggedMetrics(run.last_metrics);
  const types = Object.keys(last).sort((a, b) => ({ train: 0, val: 1, test: 2 }[a] ?? 3) - ({ train: 0, val: 1, test: 2 }[b] ?? 3));
  const names = [...new Set(types.flatMap((t) => Object.keys(last[t])))].sort();
  if (!names.length) return el("div", { class: "muted" }, "No metrics logged yet.");
  return el("table", { class: "data compact", id: "summary" },
    el("thead", {}, el("tr", {}, el("th", {}, "Metric"), types.map((t) => el("th", { class: "num" }, t)))),
    el("tbody", {}, names.map((n) => el("tr", {}, el("td", { class: "mono" }, n),
      types.map((t) => el("td", { class: "num" }, n in last[t] ? fmtValue(last[t][n]) : ""))))));
}

function buildCharts(run) {
  const byMetric = metricNames(loggedMetrics(run.metrics));
  return [...byMetric.entries()].map(([metric, types]) => new MetricChart(metric, types.map((type, i) => ({
    key: type, label: type, color: typeColor(type, i), dash: null,
    load: seriesLoader(run.id, type, metric),
  }))));
}

async function main() {
  let run;
  try { run = await getJSON(`/runs/${encodeURIComponent(runId)}`); } catch (e) { showError(root, e); return; }
  document.title = `${run.name} · t9k EM`;
  const chartsBox = el("div", { class: "card flush", id: "charts" });
  const systemBox = el("div", { class: "card flush", id: "system", hidden: true });
  const hpBox = el("div", { class: "card flush", id: "hparams" });
  const logBox = el("pre", { class: "log", id: "stdout" }, "Loading…");
  const logNote = el("span", { class: "muted" }, "stdout.log");
  const statusHead = el("span", { id: "head-status" }, statusBadge(run.status));
  mount(root,
    breadcrumbs(run.path, false),
    el("div", { class: "page-head" }, el("h1", {}, run.name), statusHead,
      el("span", { class: "subtitle mono" }, run.alternative_name || ""),
      el("div", { class: "actions" }, el("a", { class: "button", href: links.lineage(run.id) }, "Lineage"))),
    el("div", { class: "grid-2" },
      el("div", { class: "card", id: "overview" }, el("h2", {}, "Overview"), overview(run)),
      el("div", { class: "card", id: "environment" }, el("h2", {}, "Environment"), environment(run))),
    chartsBox,
    el("div", { class: "card", id: "segments-card" }, el("h2", {}, "Segments"), el("div", { id: "segments-box" }, segmentList(run))),
    systemBox,
    el("div", { class: "grid-2" },
      hpBox,
      el("div", { class: "card", id: "io" },
        el("h2", {}, "Last metrics"), el("div", { id: "summary-box", style: "margin-bottom:14px" }, summary(run)),
        el("h2", {}, "Inputs"), el("div", { id: "inputs" }, nodeList(run.inputs, "No inputs.")),
        el("h2", { style: "margin-top:14px" }, "Outputs"), el("div", { id: "outputs" }, nodeList(run.outputs, "No outputs.")))),
    el("div", { class: "card flush" }, el("div", { class: "card-head" }, el("h2", {}, "Log"), logNote), logBox),
    editCard(run, run.role));
  mount(hpBox, el("div", { class: "card-head" }, el("h2", {}, "Hyperparameters")), el("div", { id: "hp-body" }));
  renderHparams(hpBox.querySelector("#hp-body"), run.hparams);

  const head = el("div", { class: "card-head" }, el("h2", {}, "Charts"));
  const panelBox = el("div");
  mount(chartsBox, head, panelBox);
  const panel = new ChartPanel(panelBox);
  let chartKey = JSON.stringify([...metricNames(loggedMetrics(run.metrics))]);
  let counts = run.metric_counts;
  panel.setMarkers(run.segments);
  panel.setCharts(buildCharts(run));
  await panel.reload(true);
  const system = { panel: null, key: "" };
  await showSystem(systemBox, system, run);
  await loadLog(run, logBox, logNote);

  // Live: while the run is Running, poll its detail and series and redraw what changed.
  const tick = async () => {
    try {
      const fresh = await getJSON(`/runs/${encodeURIComponent(runId)}`);
      mount(statusHead, statusBadge(fresh.status));
      mount(root.querySelector("#run-status"), statusBadge(fresh.status));
      mount(root.querySelector("#run-end"), fresh.end ? fmtTime(fresh.end) : el("span", { class: "muted" }, "—"));
      mount(root.querySelector("#run-duration"), fmtDuration(durationSeconds(fresh)));
      const key = JSON.stringify([...metricNames(loggedMetrics(fresh.metrics))]);
      // Refetch only the series of metric types that got new entries since the last poll.
      const grown = (type) => (fresh.metric_counts || {})[type] !== (counts || {})[type];
      const grownLogged = Object.keys(loggedMetrics(fresh.metric_counts)).filter(grown);
      panel.setMarkers(fresh.segments);
      mount(root.querySelector("#segments-box"), segmentList(fresh));
      if (key !== chartKey) { chartKey = key; panel.setCharts(buildCharts(fresh)); await panel.reload(true); }
      else if (grownLogged.length) await panel.reload(false, (type) => grownLogged.includes(type));
      if (grown(SYSTEM_TYPE)) await showSystem(systemBox, system, fresh);
      counts = fresh.metric_counts;
      mount(root.querySelector("#summary-box"), summary(fresh));
      await loadLog(fresh, logBox, logNote);
      panel.status.textContent = fresh.status === "Running" ? `Live · updated ${new Date().toLocaleTimeString()}` : "";
      if (system.panel) system.panel.status.textContent = panel.status.textContent;
      if (fresh.status === "Running") setTimeout(tick, POLL_MS);
    } catch (e) {
      panel.status.textContent = `Live update failed: ${e.message}`;
      setTimeout(tick, POLL_MS * 2);
    }
  };
  if (run.status === "Running") { panel.status.textContent = "Live"; setTimeout(tick, POLL_MS); }
}

/**
 * Shows (or refreshes) the System section: a chart panel over time of the run's system metrics,
 * built afresh when the set of fields changed (a GPU appeared), else only reloaded.
 */
async function showSystem(box, system, run) {
  const fields = systemFields(run.metrics);
  if (!fields.length) return;
  const key = JSON.stringify(fields);
  if (!system.panel) {
    const body = el("div");
    mount(box, el("div", { class: "card-head" }, el("h2", {}, "System"),
      el("span", { class: "muted" }, "GPUs, CPU, memory, disk and network of the training")), body);
    box.hidden = false;
    system.panel = new ChartPanel(body, { x: "time" });
  }
  if (key !== system.key) { system.key = key; system.panel.setCharts(systemCharts(run.id, fields)); await system.panel.reload(true); }
  else await system.panel.reload(false);
}

async function loadLog(run, box, note) {
  try {
    const log = await getJSON(`/runs/${encodeURIComponent(run.id)}/log`);
    box.textContent = log.text || "(empty)";
    mount(note, log.truncated ? ["last part of ", fmtBytes(log.size), " · ",
      el("a", { href: links.object(`${run.path}/stdout.log`), download: "stdout.log" }, "download all")] : "stdout.log");
  } catch (e) {
    box.textContent = `(unavailable: ${e.message})`;
  }
}

main();
