// The run page: overview, environment, charts (live while Running), hparams, inputs/outputs, log.
import { getJSON, el, mount, showError, links, fmtTime, fmtAgo, fmtDuration, durationSeconds, statusBadge,
  labelChips, breadcrumbs, kindBadge } from "./common.js";
import { ChartPanel, MetricChart, typeColor, typeDash } from "./charts.js";
import { renderHparams } from "./hparams.js";
import { seriesLoader, metricNames } from "./series.js";

const POLL_MS = Number(document.body.dataset.pollMs || 3000);
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

function buildCharts(run) {
  const byMetric = metricNames(run.metrics);
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
  const hpBox = el("div", { class: "card flush", id: "hparams" });
  const logBox = el("pre", { class: "log", id: "stdout" }, "Loading…");
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
    el("div", { class: "grid-2" },
      hpBox,
      el("div", { class: "card", id: "io" },
        el("h2", {}, "Inputs"), el("div", { id: "inputs" }, nodeList(run.inputs, "No inputs.")),
        el("h2", { style: "margin-top:14px" }, "Outputs"), el("div", { id: "outputs" }, nodeList(run.outputs, "No outputs.")))),
    el("div", { class: "card flush" }, el("div", { class: "card-head" }, el("h2", {}, "Log"), el("span", { class: "muted" }, "stdout.log")), logBox));
  mount(hpBox, el("div", { class: "card-head" }, el("h2", {}, "Hyperparameters")), el("div", { id: "hp-body" }));
  renderHparams(hpBox.querySelector("#hp-body"), run.hparams);

  const head = el("div", { class: "card-head" }, el("h2", {}, "Charts"));
  const panelBox = el("div");
  mount(chartsBox, head, panelBox);
  const panel = new ChartPanel(panelBox);
  let chartKey = JSON.stringify([...metricNames(run.metrics)]);
  panel.setCharts(buildCharts(run));
  await panel.reload(true);
  await loadLog(run, logBox);

  // Live: while the run is Running, poll its detail and series and redraw what changed.
  const tick = async () => {
    try {
      const fresh = await getJSON(`/runs/${encodeURIComponent(runId)}`);
      mount(statusHead, statusBadge(fresh.status));
      mount(root.querySelector("#run-status"), statusBadge(fresh.status));
      mount(root.querySelector("#run-end"), fresh.end ? fmtTime(fresh.end) : el("span", { class: "muted" }, "—"));
      mount(root.querySelector("#run-duration"), fmtDuration(durationSeconds(fresh)));
      const key = JSON.stringify([...metricNames(fresh.metrics)]);
      if (key !== chartKey) { chartKey = key; panel.setCharts(buildCharts(fresh)); await panel.reload(true); }
      else await panel.reload(false);
      await loadLog(fresh, logBox);
      panel.status.textContent = fresh.status === "Running" ? `Live · updated ${new Date().toLocaleTimeString()}` : "";
      if (fresh.status === "Running") setTimeout(tick, POLL_MS);
    } catch (e) {
      panel.status.textContent = `Live update failed: ${e.message}`;
      setTimeout(tick, POLL_MS * 2);
    }
  };
  if (run.status === "Running") { panel.status.textContent = "Live"; setTimeout(tick, POLL_MS); }
}

async function loadLog(run, box) {
  try {
    const r = await fetch(links.object(`${run.path}/stdout.log`), { credentials: "same-origin" });
    const text = r.ok ? await r.text() : "";
    box.textContent = text || "(empty)";
  } catch (_) {
    box.textContent = "(unavailable)";
  }
}

main();
