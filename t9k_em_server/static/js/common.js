// Shared helpers of the t9k EM pages: the UI JSON API client, DOM building, formatting,
// and the sortable/filterable table. Plain ES module, no build step, no dependencies.

export const API = document.documentElement.dataset.api || "/api/ui/v1";
export const UI = document.documentElement.dataset.ui || "/ui";

// The page's CSRF token: the server requires it as X-EM-CSRF on every cookie-authenticated write.
const CSRF = document.documentElement.dataset.csrf || "";

/** GET a UI JSON API path (relative to API) with query params (an object, or URLSearchParams for
 *  repeated names); the session cookie authenticates. */
export async function getJSON(path, params = {}) {
  const url = new URL(API + path, location.origin);
  for (const [k, v] of params instanceof URLSearchParams ? params.entries() : Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.append(k, v);
  }
  return request(url, { headers: { Accept: "application/json" } });
}

/** Send a JSON body to a UI JSON API path with a writing method (POST, PUT, DELETE …),
 *  carrying the page's CSRF token; resolves to the reply's JSON. */
export async function sendJSON(method, path, body) {
  return request(new URL(API + path, location.origin), {
    method, body: JSON.stringify(body),
    headers: { Accept: "application/json", "Content-Type": "application/json", "X-EM-CSRF": CSRF },
  });
}

async function request(url, init) {
  const resp = await fetch(url, { credentials: "same-origin", ...init });
  if (resp.status === 401) {
    location.href = `${UI}/signin?next=${encodeURIComponent(location.pathname + location.search)}`;
    throw new Error("signed out");
  }
  if (!resp.ok) {
    let detail = await resp.text();
    try { detail = JSON.parse(detail).detail || detail; } catch (_) { /* plain text */ }
    throw new Error(`${resp.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
  return resp.json();
}

/** Build an element: el("a", {href: "/x", class: "y"}, "text", child, ...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, v);
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace the children of a node. */
export function mount(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function showError(container, err) {
  mount(container, el("div", { class: "error-box" }, String(err.message || err)));
}

// ---- links -------------------------------------------------------------------------------
export const links = {
  folder: (path) => `${UI}/folders${path.split("/").map(encodeURIComponent).join("/")}`,
  run: (id) => `${UI}/runs/${encodeURIComponent(id)}`,
  artifact: (id) => `${UI}/artifacts/${encodeURIComponent(id)}`,
  lineage: (id) => `${UI}/lineage/${encodeURIComponent(id)}`,
  compare: (ids) => `${UI}/compare?runs=${ids.map(encodeURIComponent).join(",")}`,
  node: (item) => item.type === "Run" ? links.run(item.id)
    : item.type === "Artifact" ? links.artifact(item.id) : links.folder(item.path),
  object: (path) => `${API}/objects?path=${encodeURIComponent(path)}`,
};

// ---- formatting --------------------------------------------------------------------------
export function parseTime(s) {
  if (!s) return null;
  const t = Date.parse(s);
  return Number.isNaN(t) ? null : t;
}

export function fmtTime(s) {
  const t = parseTime(s);
  if (t === null) return "";
  const d = new Date(t);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** "Nov 26, 09:08": compact, for tables (the full time goes in a tooltip). */
export function fmtShortTime(s) {
  const t = parseTime(s);
  if (t === null) return "";
  const d = new Date(t);
  const month = d.toLocaleString("en-US", { month: "short" });
  const pad = (n) => String(n).padStart(2, "0");
  return `${month} ${d.getDate()}, ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function fmtAgo(s) {
  const t = parseTime(s);
  if (t === null) return "";
  const sec = Math.max(0, (Date.now() - t) / 1000);
  if (sec < 60) return `${Math.floor(sec)}s ago`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m ago`;
  if (sec < 86400) return `${Math.floor(sec / 3600)}h ago`;
  return `${Math.floor(sec / 86400)}d ago`;
}

/** Duration in seconds of a run: end - start, or now - start while it runs. */
export function durationSeconds(item) {
  const a = parseTime(item.start);
  if (a === null) return null;
  const b = parseTime(item.end) ?? (item.status === "Running" ? Date.now() : null);
  return b === null ? null : Math.max(0, (b - a) / 1000);
}

export function fmtDuration(sec) {
  if (sec === null || sec === undefined) return "";
  if (sec < 1) return `${Math.round(sec * 1000)}ms`;
  if (sec < 60) return `${sec.toFixed(1)}s`;
  const h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = Math.floor(sec % 60);
  return h ? `${h}h ${m}m` : `${m}m ${s}s`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0, v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

export function fmtValue(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-4 || a >= 1e7) ? Number(v.toPrecision(4)).toExponential() : String(Number(v.toPrecision(5)));
  }
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function statusBadge(status) {
  const s = ["Running", "Complete", "Error"].includes(status) ? status : "Unknown";
  return el("span", { class: `status ${s}` }, status || "—");
}

export function labelChips(labels) {
  return (labels || []).map((l) => el("span", { class: "label" }, l));
}

export function kindBadge(type) {
  return el("span", { class: `kind ${type}` }, type);
}

/** Flatten nested hparams to {"opt.name": "Adam", ...}. */
export function flatten(obj, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
    else out[key] = v;
  }
  return out;
}

/** Breadcrumbs for a node path "/alice/a/b": every ancestor folder links to its page. */
export function breadcrumbs(path, lastIsFolder = true) {
  const parts = path.split("/").filter(Boolean);
  const nodes = [];
  parts.forEach((p, i) => {
    const sub = "/" + parts.slice(0, i + 1).join("/");
    const last = i === parts.length - 1;
    if (i) nodes.push(el("span", { class: "sep" }, "/"));
    nodes.push(last && !lastIsFolder ? el("span", {}, p) : el("a", { href: links.folder(sub) }, p));
  });
  return el("div", { class: "breadcrumbs" }, nodes);
}

// ---- table -------------------------------------------------------------------------------
/**
 * A table of a few rows, sorted in the browser (runs, which can be many, have runs_table.js).
 * columns: [{key, title, value(row) -> sortable value, render(row) -> Node|string, num}]
 */
export class Table {
  constructor(columns, rows, { sortKey = null, sortDir = -1, emptyText = "Nothing here yet." } = {}) {
    this.columns = columns;
    this.rows = rows;
    this.sortKey = sortKey;
    this.sortDir = sortDir;
    this.emptyText = emptyText;
    this.node = el("div", { class: "table-wrap" });
    this.render();
  }

  sortedRows() {
    if (!this.sortKey) return this.rows;
    const col = this.columns.find((c) => c.key === this.sortKey);
    const get = (r) => (col && col.value ? col.value(r) : r[this.sortKey]);
    return [...this.rows].sort((a, b) => {
      const x = get(a), y = get(b);
      const xe = x === null || x === undefined || x === "", ye = y === null || y === undefined || y === "";
      if (xe || ye) return xe === ye ? 0 : xe ? 1 : -1; // blanks last in both directions
      if (typeof x === "number" && typeof y === "number") return (x - y) * this.sortDir;
      return String(x).localeCompare(String(y), undefined, { numeric: true }) * this.sortDir;
    });
  }

  render() {
    const head = el("tr", {}, this.columns.map((c) => {
      const arrow = this.sortKey === c.key ? el("span", { class: "arrow" }, this.sortDir > 0 ? "▲" : "▼") : null;
      return el("th", {
        class: `sortable${c.num ? " num" : ""}`, title: `Sort by ${c.title}`, dataset: { key: c.key },
        onclick: () => {
          if (this.sortKey === c.key) this.sortDir = -this.sortDir;
          else { this.sortKey = c.key; this.sortDir = c.num ? -1 : 1; }
          this.render();
        },
      }, c.title, arrow);
    }));
    const rows = this.sortedRows();
    const body = rows.map((r) => el("tr", { dataset: { id: r.id } },
      this.columns.map((c) => el("td", { class: c.num ? "num" : "" }, c.render ? c.render(r) : fmtValue(c.value ? c.value(r) : r[c.key])))));
    const table = el("table", { class: "data" }, el("thead", {}, head), el("tbody", {}, body));
    mount(this.node, table, rows.length ? null : el("div", { class: "empty" }, this.emptyText));
  }
}
