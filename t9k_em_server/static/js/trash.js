// The trash page: what the signed-in user deleted or may restore (things that were in folders
// they may edit), until the server frees it; Restore puts an item back where it was.
import { getJSON, sendJSON, el, mount, showError, fmtTime, links } from "./common.js";

const root = document.getElementById("page");
const note = el("div", { id: "trash-note" });
const list = el("div", { id: "trash-list" });

async function restore(item) {
  try {
    const back = await sendJSON("POST", "/trash/restore", { id: item.id });
    mount(note, el("p", {}, "Restored ", el("a", { href: links.node(back) }, back.path), "."));
    await load();
  } catch (err) { showError(note, err); }
}

async function load() {
  const items = (await getJSON("/trash")).items;
  mount(list, items.length ? el("table", { class: "data", id: "trash" },
    el("thead", {}, el("tr", {}, ["Name", "Type", "Was at", "Deleted", "By", "Freed after", ""].map((t) => el("th", {}, t)))),
    el("tbody", {}, items.map((i) => el("tr", { dataset: { id: i.id } },
      el("td", {}, i.name), el("td", {}, i.type), el("td", { class: "mono" }, i.path),
      el("td", {}, fmtTime(i.deleted_at)), el("td", {}, i.deleted_by || "—"), el("td", {}, fmtTime(i.expires_at)),
      el("td", {}, el("button", { type: "button", class: "restore", onclick: () => restore(i) }, "Restore"))))))
    : el("p", { class: "empty" }, "The trash is empty."));
}

mount(root, el("h1", {}, "Trash"),
  el("p", { class: "subtitle" }, "Deleted runs, artifacts and folders stay here until the date shown, then the server frees them."),
  note, list);
load().catch((err) => showError(list, err));
