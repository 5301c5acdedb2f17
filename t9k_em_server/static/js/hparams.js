// The nested, searchable hyperparameter view of the run page.
import { el, mount } from "./common.js";

function valueNode(v) {
  if (v === null || v === undefined) return el("span", { class: "v null" }, "null");
  if (typeof v === "number") return el("span", { class: "v num" }, String(v));
  if (typeof v === "boolean") return el("span", { class: "v bool" }, String(v));
  if (Array.isArray(v) && v.every((x) => x === null || typeof x !== "object")) {
    return el("span", { class: "v" }, "[" + v.map((x) => JSON.stringify(x)).join(", ") + "]");
  }
  return el("span", { class: "v" }, typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v));
}

function highlight(text, q) {
  if (!q) return text;
  const i = text.toLowerCase().indexOf(q);
  if (i < 0) return text;
  return [text.slice(0, i), el("mark", {}, text.slice(i, i + q.length)), text.slice(i + q.length)];
}

/** True when the key path or a leaf value under it matches the query. */
function matches(key, value, q) {
  if (!q) return true;
  if (key.toLowerCase().includes(q)) return true;
  if (value && typeof value === "object" && !(Array.isArray(value) && value.every((x) => typeof x !== "object"))) {
    return Object.entries(value).some(([k, v]) => matches(k, v, q));
  }
  return JSON.stringify(value ?? null).toLowerCase().includes(q);
}

function tree(obj, q, parentMatched) {
  const items = [];
  for (const [k, v] of Object.entries(obj)) {
    const selfMatch = !q || k.toLowerCase().includes(q);
    if (!parentMatched && !matches(k, v, q)) continue;
    const nested = v && typeof v === "object" && !(Array.isArray(v) && v.every((x) => x === null || typeof x !== "object"));
    if (nested) {
      items.push(el("li", { dataset: { key: k } }, el("details", { open: true },
        el("summary", {}, el("span", { class: "k" }, highlight(k, q))),
        tree(v, q, parentMatched || selfMatch))));
    } else {
      items.push(el("li", { dataset: { key: k } }, el("span", { class: "k" }, highlight(k, q)), ": ", valueNode(v)));
    }
  }
  return el("ul", {}, items);
}

/** Render hparams into container, with a search box that filters keys and values. */
export function renderHparams(container, hparams) {
  const body = el("div", { class: "hp-tree" });
  const count = el("span", { class: "muted" });
  const draw = (q) => {
    const t = tree(hparams || {}, q.trim().toLowerCase(), false);
    mount(body, t.children.length ? t : el("div", { class: "empty" }, q ? "No hyperparameter matches." : "No hyperparameters."));
  };
  const search = el("input", { type: "search", placeholder: "Search hyperparameters", "aria-label": "search hyperparameters",
    oninput: (e) => draw(e.target.value) });
  mount(container, el("div", { class: "toolbar" }, search, el("span", { class: "grow" }), count), el("div", { class: "card-body" }, body));
  count.textContent = `${Object.keys(hparams || {}).length} top-level keys`;
  draw("");
}
