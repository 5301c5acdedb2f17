// How pages ask the server about many runs: the one place that knows the search endpoints
// (/search/runs, /search/groups, /search/fields, /search/series; docs/server.md "Searching runs").
import { getJSON } from "./common.js";

export const PAGE_SIZE = 50;
export const MAX_PLOT_RUNS = 10000;
export const MAX_OVERLAY_RUNS = 100;
export const SUMMARIES = ["last", "min", "max", "mean", "count", "last_step", "min_step", "max_step"];

/** A query the server refused: `position` is 1-based (0: not at one place). */
export class QueryFailure extends Error {
  constructor(problem, position) {
    super(position ? `position ${position}: ${problem}` : problem);
    this.problem = problem;
    this.position = position;
  }
}

/** The server's 400 about a query ("400: position N: …") as a QueryFailure; other errors unchanged. */
function asQueryFailure(err) {
  const m = String(err.message || "").match(/^400: (?:position (\d+): )?(.*)$/s);
  return m ? new QueryFailure(m[2], Number(m[1] || 0)) : err;
}

async function ask(path, params) {
  try { return await getJSON(path, params); } catch (e) { throw asQueryFailure(e); }
}

/** URLSearchParams-friendly params of a scope {folder, recursive} and filter. */
function scoped(scope, filter) {
  return { folder: scope.folder, recursive: scope.recursive ? "true" : undefined, filter: filter || undefined };
}

function withLists(params, lists) {
  const out = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  for (const [k, values] of Object.entries(lists)) for (const v of values || []) out.push([k, v]);
  return new URLSearchParams(out);
}

/** One page of run records: {runs, total, next_page_token}. `order` is ["field asc|desc", …]. */
export function searchRuns(scope, { filter = "", order = [], pageSize = PAGE_SIZE, token = null } = {}) {
  return ask("/search/runs", withLists({ ...scoped(scope, filter), page_size: pageSize, page_token: token }, { order_by: order }));
}

/** The fields seen in the scope: {hparams: [{key, field, types}], metrics: [{type, name}], fields: [...]}. */
export function searchFields(scope) {
  return ask("/search/fields", scoped(scope, ""));
}

/** Runs grouped by `by` with mean/min/max/count of each `aggregate` field. */
export function searchGroups(scope, { filter = "", by, aggregate = [], maxGroups = 1000 }) {
  return ask("/search/groups", withLists({ ...scoped(scope, filter), by, max_groups: maxGroups }, { aggregate }));
}

/** [{id, name, values: {field: value}}] of every run matching (at most `limit`), in pages of 10,000. */
export async function fieldValues(scope, { filter = "", fields, limit = MAX_PLOT_RUNS }) {
  const rows = [];
  let token = null, total = 0;
  do {
    const page = await ask("/search/runs", withLists({ ...scoped(scope, filter), page_size: Math.min(10000, limit - rows.length),
      page_token: token }, { fields }));
    rows.push(...page.runs);
    total = page.total;
    token = page.next_page_token;
  } while (token && rows.length < limit);
  return { rows, total };
}

/** One metric of up to 100 runs in one request: [{id, name, x, y, total}]. */
export async function runsSeries(ids, { type, metric, x = "step", maxPoints = 1000 }) {
  const r = await ask("/search/series", withLists({ type, metric, x, max_points: maxPoints }, { run: ids }));
  return r.series;
}

/** One metric per group of `by` in one request: [{value, runs, runs_used, x, mean, min, max}]. */
export async function groupSeries(scope, { filter = "", by, type, metric, x = "step", maxPoints = 500, maxGroups = 10 }) {
  const r = await ask("/search/series", { ...scoped(scope, filter), by, type, metric, x, max_points: maxPoints, max_groups: maxGroups });
  return r.groups;
}

/** A field name of the query language from its segments (odd segments in backquotes). */
export function fieldName(...segments) {
  const plain = /^[A-Za-z_][A-Za-z0-9_\-/]*$/;
  const keywords = new Set(["and", "or", "not", "in", "contains", "true", "false", "null", "asc", "desc"]);
  return segments.map((s) => (plain.test(s) && !keywords.has(s.toLowerCase()) ? s : `\`${s}\``)).join(".");
}

/** A value written in the query language. */
export function literal(v) {
  if (v === null || v === undefined) return "null";
  if (typeof v === "boolean") return String(v);
  if (typeof v === "number") return String(v);
  return `'${String(v).replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/** `a and b` of the non-empty filters, each in parentheses when there are several. */
export function andFilters(...filters) {
  const parts = filters.filter((f) => f && f.trim());
  return parts.length > 1 ? parts.map((f) => `(${f})`).join(" and ") : parts[0] || "";
}
