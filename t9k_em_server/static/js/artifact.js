// The artifact page: metadata, objects (each downloadable) and references (shown as links).
import { getJSON, el, mount, showError, links, fmtTime, fmtBytes, labelChips, breadcrumbs, kindBadge, Table } from "./common.js";
import { editCard } from "./manage.js";

const root = document.getElementById("page");
const artifactId = root.dataset.node;

/** Only these schemes become links (never javascript: or data:). */
function isLink(uri) { return /^(https?|s3|gs|hdfs|ftp):\/\//i.test(uri); }

async function main() {
  let a;
  try { a = await getJSON(`/artifacts/${encodeURIComponent(artifactId)}`); } catch (e) { showError(root, e); return; }
  document.title = `${a.name} · t9k EM`;
  const objects = new Table([
    { key: "path", title: "Object", value: (o) => o.path,
      render: (o) => el("a", { class: "mono", href: links.object(`${a.path}/${o.path}`), download: o.path.split("/").pop() }, o.path) },
    { key: "size", title: "Size", num: true, value: (o) => o.size_bytes, render: (o) => fmtBytes(o.size_bytes) },
    { key: "checksum", title: "MD5", value: (o) => o.checksum || "", render: (o) => el("span", { class: "mono muted" }, o.checksum || "") },
  ], a.objects || [], { sortKey: "path", sortDir: 1, emptyText: "No objects." });
  const refs = new Table([
    { key: "path", title: "Object", value: (r) => r.path, render: (r) => el("span", { class: "mono" }, r.path) },
    { key: "uri", title: "Reference", value: (r) => r.uri,
      render: (r) => isLink(r.uri) ? el("a", { href: r.uri, target: "_blank", rel: "noopener noreferrer", class: "mono" }, r.uri) : el("span", { class: "mono" }, r.uri) },
  ], a.references || [], { sortKey: "path", sortDir: 1, emptyText: "No references." });
  const total = (a.objects || []).reduce((s, o) => s + (o.size_bytes || 0), 0);
  const graph = await getJSON(`/lineage/${encodeURIComponent(artifactId)}`, { depth: 1 }).catch(() => ({ nodes: [], edges: [] }));
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const runLinks = (ids) => {
    const nodes = ids.map((id) => byId.get(id)).filter((n) => n && n.known);
    return nodes.length ? nodes.map((n, i) => [i ? ", " : "", el("a", { href: links.node(n) }, n.name)]) : el("span", { class: "muted" }, "—");
  };
  mount(root,
    breadcrumbs(a.path, false),
    el("div", { class: "page-head" }, el("h1", {}, a.name), kindBadge("Artifact"),
      el("span", { class: "subtitle mono" }, a.alternative_name || ""),
      el("div", { class: "actions" }, el("a", { class: "button", href: links.lineage(a.id) }, "Lineage"))),
    el("div", { class: "card", id: "overview" }, el("h2", {}, "Overview"), el("dl", { class: "kv" },
      el("dt", {}, "Created"), el("dd", {}, fmtTime(a.start || a.created) || el("span", { class: "muted" }, "—")),
      el("dt", {}, "Description"), el("dd", {}, a.description || el("span", { class: "muted" }, "—")),
      el("dt", {}, "Labels"), el("dd", {}, a.labels && a.labels.length ? labelChips(a.labels) : el("span", { class: "muted" }, "—")),
      el("dt", {}, "Path"), el("dd", { class: "mono" }, a.path),
      el("dt", {}, "Size"), el("dd", {}, `${fmtBytes(total)} in ${(a.objects || []).length} objects`),
      el("dt", {}, "Produced by"), el("dd", { id: "produced-by" }, runLinks(graph.edges.filter((e) => e.to === a.id).map((e) => e.from))),
      el("dt", {}, "Used by"), el("dd", { id: "used-by" }, runLinks(graph.edges.filter((e) => e.from === a.id).map((e) => e.to))))),
    el("div", { class: "card flush", id: "objects" }, el("div", { class: "card-head" }, el("h2", {}, "Objects"),
      el("span", { class: "muted" }, "click a file to download it")), objects.node),
    el("div", { class: "card flush", id: "references" }, el("div", { class: "card-head" }, el("h2", {}, "References")), refs.node),
    editCard(a, a.role));
}

main();
