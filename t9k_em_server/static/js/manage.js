// Team actions on a page: the "Edit" card of a Run, Artifact or Folder (description, labels,
// move, delete into the trash) for those who may edit it, and the "Sharing" and "Activity"
// cards of a Folder for its owner. Every write goes through sendJSON (the page's CSRF token).
import { getJSON, sendJSON, el, mount, showError, fmtTime, links } from "./common.js";

const WRITERS = new Set(["editor", "owner", "admin"]);
const OWNERS = new Set(["owner", "admin"]);

/** The Edit card of a node (null unless role may edit): description and labels, move, delete. */
export function editCard(node, role) {
  if (!WRITERS.has(role)) return null;
  const note = el("div", { id: "edit-note" });
  const description = el("textarea", { id: "edit-description", rows: "2", style: "width:100%" });
  description.value = node.description || "";
  const labels = el("input", { id: "edit-labels", style: "width:100%", placeholder: "comma-separated" });
  labels.value = (node.labels || []).join(", ");
  const target = el("input", { id: "move-to", placeholder: "/user/folder", style: "min-width:260px" });
  const run = (action) => async () => {
    try { await action(); } catch (err) { showError(note, err); }
  };
  const save = run(async () => {
    const body = { node: node.id, description: description.value,
      labels: labels.value.split(",").map((s) => s.trim()).filter(Boolean) };
    await sendJSON("PUT", "/nodes", body);
    mount(note, el("span", { class: "muted" }, "Saved."));
  });
  const move = run(async () => {
    const moved = await sendJSON("POST", "/nodes/move", { node: node.id, to: target.value.trim() });
    location.href = node.type === "Folder" ? links.folder(moved.path) : location.href;
  });
  const remove = run(async () => {
    if (!confirm(`Delete ${node.path}? It goes to the trash, where it can be restored for a while.`)) return;
    await sendJSON("DELETE", "/nodes", { node: node.id });
    location.href = `${links.folder(node.path.split("/").slice(0, -1).join("/"))}`;
  });
  return el("div", { class: "card", id: "edit" }, el("h2", {}, "Edit"),
    el("dl", { class: "kv" },
      el("dt", {}, "Description"), el("dd", {}, description),
      el("dt", {}, "Labels"), el("dd", {}, labels)),
    el("div", { class: "toolbar" },
      el("button", { type: "button", class: "primary", id: "edit-save", onclick: save }, "Save"),
      el("span", { class: "grow" }),
      el("label", {}, "Move to", target), el("button", { type: "button", id: "move", onclick: move }, "Move"),
      el("button", { type: "button", id: "delete", onclick: remove }, "Delete")),
    note);
}

function sharesTable(folder, shares, reload, note) {
  if (!shares.length) return el("p", { class: "empty" }, "Not shared.");
  return el("table", { class: "data", id: "shares" },
    el("thead", {}, el("tr", {}, ["With", "Role", "Since", ""].map((t) => el("th", {}, t)))),
    el("tbody", {}, shares.map((s) => el("tr", { dataset: { name: s.name } },
      el("td", {}, `${s.kind === "group" ? "group " : ""}${s.name}`), el("td", {}, s.role), el("td", {}, fmtTime(s.created)),
      el("td", {}, el("button", { type: "button", class: "revoke", onclick: async () => {
        try { await sendJSON("DELETE", "/shares", { folder: folder.id, [s.kind]: s.name }); await reload(); }
        catch (err) { showError(note, err); }
      } }, "Revoke"))))));
}

/** The Sharing card of a Folder (null unless role is owner or admin). */
export function sharingCard(folder, role) {
  if (!OWNERS.has(role)) return null;
  const list = el("div", { id: "share-list" });
  const note = el("div", { id: "share-note" });
  const reload = async () => mount(list, sharesTable(folder, (await getJSON("/shares", { folder: folder.id })).shares, reload, note));
  const kind = el("select", { id: "share-kind" }, el("option", { value: "user" }, "user"), el("option", { value: "group" }, "group"));
  const name = el("input", { id: "share-name", placeholder: "name" });
  const shareRole = el("select", { id: "share-role" }, el("option", { value: "viewer" }, "viewer"), el("option", { value: "editor" }, "editor"));
  const share = async (event) => {
    event.preventDefault();
    try {
      await sendJSON("POST", "/shares", { folder: folder.id, [kind.value]: name.value.trim(), role: shareRole.value });
      name.value = "";
      mount(note);
      await reload();
    } catch (err) { showError(note, err); }
  };
  reload().catch((err) => showError(list, err));
  return el("div", { class: "card", id: "sharing" }, el("h2", {}, "Sharing"),
    el("p", { class: "subtitle" }, "Viewers read this folder and everything below it; editors also upload, edit, move and delete there."),
    el("form", { class: "toolbar", id: "share-form", onsubmit: share }, kind, name, shareRole,
      el("button", { type: "submit", class: "primary", id: "share" }, "Share")),
    note, list);
}

const ACTIONS = ["share", "unshare", "edit", "rename", "move", "delete", "restore"];

/** The Activity card of a Folder: its audit trail, filterable by user and action (owner, admin). */
export function activityCard(folder, role) {
  if (!OWNERS.has(role)) return null;
  const user = el("input", { id: "audit-user", placeholder: "user" });
  const action = el("select", { id: "audit-action" }, el("option", { value: "" }, "any action"),
    ACTIONS.map((a) => el("option", { value: a }, a)));
  const body = el("div", { id: "audit-list" });
  const load = async () => {
    const data = await getJSON("/audit", { folder: folder.id, user: user.value.trim(), action: action.value });
    mount(body, data.events.length ? el("table", { class: "data", id: "audit" },
      el("thead", {}, el("tr", {}, ["When", "Who", "What", "Path", ""].map((t) => el("th", {}, t)))),
      el("tbody", {}, data.events.map((e) => el("tr", { dataset: { action: e.action } },
        el("td", {}, fmtTime(e.at)), el("td", {}, e.user), el("td", {}, e.action),
        el("td", { class: "mono" }, e.to ? `${e.path} → ${e.to}` : e.path),
        el("td", { class: "mono" }, Object.keys(e.detail).length ? JSON.stringify(e.detail) : "")))))
      : el("p", { class: "empty" }, "Nothing yet."));
  };
  const refresh = () => load().catch((err) => showError(body, err));
  user.addEventListener("change", refresh);
  action.addEventListener("change", refresh);
  refresh();
  return el("div", { class: "card", id: "activity" }, el("h2", {}, "Activity"),
    el("div", { class: "toolbar" }, el("label", {}, "Who", user), el("label", {}, "What", action)), body);
}
