// How pages ask the server for metric series: the one place that knows the series endpoint.
import { getJSON } from "./common.js";

/** {metric name -> [types]} from a run's metrics summary ({type: [metric names]}), train/val/test first. */
export function metricNames(metrics) {
  const order = (t) => ({ train: 0, val: 1, test: 2 }[t] ?? 3);
  const out = new Map();
  const types = Object.keys(metrics || {}).sort((a, b) => order(a) - order(b) || a.localeCompare(b));
  for (const type of types) {
    const names = Array.isArray(metrics[type]) ? metrics[type] : Object.keys(metrics[type] || {});
    for (const name of names) {
      if (!out.has(name)) out.set(name, []);
      out.get(name).push(type);
    }
  }
  return new Map([...out.entries()].sort((a, b) => a[0].localeCompare(b[0])));
}

/** A loader for one series: (x, maxPoints) -> {x: number[], y: number[], total}. */
export function seriesLoader(runId, type, metric) {
  return async (x, maxPoints) => {
    const r = await getJSON(`/runs/${encodeURIComponent(runId)}/series`, { type, metric, x, max_points: maxPoints });
    return { x: r.x, y: r.y, total: r.total };
  };
}
