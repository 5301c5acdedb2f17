// The "System" section of the run page: the Run's system metrics (metric type "system", written by
// t9k_em_core/system_metrics.py; fields in docs/system-metrics.md) as charts over time, GPUs first.
import { MetricChart, PALETTE } from "./charts.js";
import { seriesLoader } from "./series.js";

export const SYSTEM_TYPE = "system";
const GIB = 2 ** 30, MIB = 2 ** 20;
const GPU_FIELD = /^gpu(\d+)_(\w+)$/;

// Charts of one line per GPU: [title, quantity of the gpu<k>_<quantity> field, scale].
const PER_GPU = [
  ["GPU utilisation (%)", "util_percent", 1],
  ["GPU memory used (GiB)", "memory_used_bytes", 1 / GIB],
  ["GPU power (W)", "power_watts", 1],
  ["GPU temperature (°C)", "temperature_c", 1],
];
// Host charts: [title, [[field, label, scale]…]].
const HOST = [
  ["CPU (%)", [["cpu_percent", "host, all cores", 1], ["process_cpu_percent", "training, % of one core", 1]]],
  ["Memory (GiB)", [["process_rss_bytes", "training RSS", 1 / GIB], ["memory_used_bytes", "host used", 1 / GIB]]],
  ["Disk (MiB/s)", [["disk_read_bytes_per_s", "read", 1 / MIB], ["disk_write_bytes_per_s", "write", 1 / MIB]]],
  ["Network (MiB/s)", [["net_recv_bytes_per_s", "received", 1 / MIB], ["net_sent_bytes_per_s", "sent", 1 / MIB]]],
];

function scaled(load, factor) {
  if (factor === 1) return load;
  return async (x, maxPoints) => {
    const r = await load(x, maxPoints);
    return { ...r, y: r.y.map((v) => (v === null || v === undefined ? v : v * factor)) };
  };
}

/** The names of the Run's system metrics ([] when it has none), from the run detail's `metrics`. */
export function systemFields(metrics) {
  const names = (metrics || {})[SYSTEM_TYPE];
  return Array.isArray(names) ? names : Object.keys(names || {});
}

/** One MetricChart per chart that has data: per-GPU charts (a line per GPU), then the host's. */
export function systemCharts(runId, fields) {
  const have = new Set(fields);
  const gpus = [...new Set(fields.map((f) => GPU_FIELD.exec(f)).filter(Boolean).map((m) => Number(m[1])))].sort((a, b) => a - b);
  const line = (field, label, i, factor) => ({
    key: field, label, color: PALETTE[i % PALETTE.length], dash: null,
    load: scaled(seriesLoader(runId, SYSTEM_TYPE, field), factor),
  });
  const charts = [];
  for (const [title, quantity, factor] of PER_GPU) {
    const lines = gpus.filter((k) => have.has(`gpu${k}_${quantity}`))
      .map((k, i) => line(`gpu${k}_${quantity}`, `GPU ${k}`, i, factor));
    if (lines.length) charts.push(new MetricChart(title, lines));
  }
  for (const [title, series] of HOST) {
    const lines = series.filter(([field]) => have.has(field)).map(([field, label, factor], i) => line(field, label, i, factor));
    if (lines.length) charts.push(new MetricChart(title, lines));
  }
  return charts;
}
