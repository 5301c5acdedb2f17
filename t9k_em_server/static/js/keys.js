// The "API keys" page: the signed-in user's active keys (name, first 8 characters, created),
// a form that makes a named key and shows it once, and a revoke button per key.
import { getJSON, sendJSON, el, mount, showError, fmtTime } from "./common.js";

const root = document.getElementById("page");
const fresh = el("div", { id: "new-key" });

function keysTable(keys) {
  if (!keys.length) return el("p", { class: "empty" }, "No active keys.");
  return el("table", { class: "data", id: "keys" },
    el("thead", {}, el("tr", {}, ["Name", "Key", "Created", ""].map((t) => el("th", {}, t)))),
    el("tbody", {}, keys.map((k) => el("tr", { dataset: { id: k.id } },
      el("td", {}, k.name || el("span", { class: "muted" }, "unnamed")),
      el("td", { class: "mono" }, `${k.prefix}…`),
      el("td", {}, fmtTime(k.created)),
      el("td", {}, el("button", { type: "button", class: "revoke", onclick: () => revoke(k) }, "Revoke"))))));
}

async function revoke(key) {
  if (!confirm(`Revoke the key ${key.name || key.prefix}? Programs and sign-ins using it stop working.`)) return;
  try {
    await sendJSON("DELETE", "/keys", { id: key.id });
    mount(fresh);
    await load();
  } catch (err) { showError(fresh, err); }
}

async function create(event) {
  event.preventDefault();
  const name = event.target.elements.name.value.trim();
  try {
    const made = await sendJSON("POST", "/keys", { name });
    event.target.reset();
    mount(fresh, el("div", { class: "card" },
      el("p", {}, "Your new key. Copy it now: it is not shown again."),
      el("code", { class: "mono", id: "new-key-value" }, made.key)));
    await load();
  } catch (err) { showError(fresh, err); }
}

const list = el("div", { id: "key-list" });

async function load() {
  mount(list, keysTable((await getJSON("/keys")).keys));
}

mount(root, el("h1", {}, "API keys"),
  el("p", { class: "subtitle" }, "Keys sign in to this page and authenticate the SDK (em.login) and the em command."),
  el("form", { class: "toolbar", id: "create-key", onsubmit: create },
    el("label", {}, "Name", el("input", { name: "name", maxlength: "64", placeholder: "e.g. laptop" })),
    el("button", { type: "submit", class: "primary" }, "Create key")),
  fresh, list);
load().catch((err) => showError(list, err));
