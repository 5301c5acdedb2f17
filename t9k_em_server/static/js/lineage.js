// The lineage page: a layered left-to-right graph Artifact → Run → Artifact drawn as SVG.
// Every known node links to its page; IDs the server does not know (Asset Hub refs) are shown dashed.
import { getJSON, el, mount, showError, links, breadcrumbs } from "./common.js";

const root = document.getElementById("page");
const nodeId = root.dataset.node;
const SVG = "http://www.w3.org/2000/svg";
const W = 200, H = 50, GX = 110, GY = 22, PAD = 20;

function svg(tag, attrs = {}, ...children) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  for (const c of children) if (c) n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return n;
}

/** Layer of each node = longest path from a source (cycles are cut by a visit guard). */
export function layers(nodes, edges) {
  const preds = new Map(nodes.map((n) => [n.id, []]));
  for (const e of edges) if (preds.has(e.to) && preds.has(e.from)) preds.get(e.to).push(e.from);
  const layer = new Map(), visiting = new Set();
  const depth = (id) => {
    if (layer.has(id)) return layer.get(id);
    if (visiting.has(id)) return 0;
    visiting.add(id);
    const d = Math.max(-1, ...preds.get(id).map(depth)) + 1;
    visiting.delete(id);
    layer.set(id, d);
    return d;
  };
  nodes.forEach((n) => depth(n.id));
  return layer;
}

function clip(text, n = 24) { return text.length > n ? text.slice(0, n - 1) + "…" : text; }

function draw(graph, currentId) {
  const layer = layers(graph.nodes, graph.edges);
  const cols = [];
  for (const n of graph.nodes) (cols[layer.get(n.id)] ||= []).push(n);
  // Column 0 is stacked; each later node sits at the mean height of its predecessors, then
  // column 0 moves to the mean height of its successors. Nodes never overlap in a column.
  const pos = new Map();
  const mean = (ys) => ys.reduce((a, b) => a + b, 0) / ys.length;
  const place = (col, ci, want) => {
    col.sort((a, b) => want(a) - want(b) || a.name.localeCompare(b.name));
    let next = -Infinity;
    for (const n of col) {
      const y = Math.max(want(n), next);
      pos.set(n.id, { x: PAD + ci * (W + GX), y });
      next = y + H + GY;
    }
  };
  const around = (n, dir) => graph.edges.filter((e) => (dir < 0 ? e.to : e.from) === n.id)
    .map((e) => pos.get(dir < 0 ? e.from : e.to)).filter(Boolean).map((p) => p.y);
  cols.forEach((col, ci) => {
    if (!ci) {
      const order = new Map([...col].sort((a, b) => a.name.localeCompare(b.name)).map((n, i) => [n.id, i]));
      place(col, 0, (n) => order.get(n.id) * (H + GY));
      return;
    }
    place(col, ci, (n) => { const ys = around(n, -1); return ys.length ? mean(ys) : 0; });
  });
  if (cols.length > 1) place(cols[0], 0, (n) => { const ys = around(n, 1); return ys.length ? mean(ys) : pos.get(n.id).y; });
  const top = Math.min(...[...pos.values()].map((p) => p.y));
  for (const p of pos.values()) p.y += PAD - top;
  const height = Math.max(...[...pos.values()].map((p) => p.y)) + H + PAD;
  const width = PAD * 2 + cols.length * W + (cols.length - 1) * GX;
  const s = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "lineage graph" },
    svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
      svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#8c959f" }))));
  for (const e of graph.edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x - 2, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
    s.append(svg("path", { class: "edge", d: `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`, "marker-end": "url(#arrow)" }));
  }
  for (const n of graph.nodes) {
    const p = pos.get(n.id);
    const known = n.known !== false && (n.type === "Run" || n.type === "Artifact");
    const g = svg("g", { class: `node ${known ? n.type : "external"}${n.id === currentId ? " current" : ""}`, transform: `translate(${p.x},${p.y})`, "data-id": n.id },
      svg("title", {}, n.path || n.id),
      svg("rect", { width: W, height: H, rx: 8 }),
      svg("text", { x: 12, y: 19, class: "kindtext" }, known ? n.type : `${n.type || "external"} · not on this server`),
      svg("text", { x: 12, y: 37 }, clip(n.name || n.id)));
    s.append(known ? svg("a", { href: links.node(n), "data-id": n.id }, g) : g);
  }
  return s;
}

async function main() {
  let graph;
  try { graph = await getJSON(`/lineage/${encodeURIComponent(nodeId)}`); } catch (e) { showError(root, e); return; }
  const current = graph.nodes.find((n) => n.id === nodeId) || { name: nodeId, path: "" };
  document.title = `Lineage of ${current.name} · t9k EM`;
  mount(root,
    current.path ? breadcrumbs(current.path, false) : null,
    el("div", { class: "page-head" }, el("h1", {}, `Lineage of ${current.name}`),
      el("span", { class: "subtitle" }, "inputs on the left, outputs on the right; click a node to open it"),
      el("div", { class: "actions" }, current.type ? el("a", { class: "button", href: links.node(current) }, `Open ${current.type.toLowerCase()}`) : null)),
    el("div", { class: "card flush" }, el("div", { class: "lineage", id: "lineage" },
      graph.edges.length ? draw(graph, nodeId) : el("div", { class: "empty" }, "No lineage recorded for this node."))));
}

main();
