// The folder tree of the sidebar: the user's root folder, expanded down to the current folder,
// then "Shared with me" (folders others shared with the user); folders load their children when opened.
import { getJSON, el, mount, links } from "./common.js";

async function childFolders(path) {
  const data = await getJSON("/folders", { path, runs: "false" });
  return (data.children || []).filter((c) => c.type === "Folder").sort((a, b) => a.name.localeCompare(b.name));
}

function item(folder, current) {
  const onPath = current === folder.path || current.startsWith(folder.path + "/");
  const sub = el("ul", { class: "tree" });
  const toggle = el("button", { class: "toggle", type: "button", "aria-label": `expand ${folder.name}` }, "▸");
  const li = el("li", {}, el("div", { class: `row${current === folder.path ? " current" : ""}` },
    toggle, el("a", { href: links.folder(folder.path) }, el("span", { class: "icon-folder" }), folder.name)), sub);
  let loaded = false, open = false;
  const setOpen = async (value) => {
    open = value;
    toggle.textContent = open ? "▾" : "▸";
    sub.hidden = !open;
    if (open && !loaded) {
      loaded = true;
      const kids = await childFolders(folder.path).catch(() => []);
      if (!kids.length) toggle.classList.add("leaf");
      mount(sub, kids.map((k) => item(k, current)));
    }
  };
  toggle.addEventListener("click", () => setOpen(!open));
  if (onPath) setOpen(true); else sub.hidden = true;
  return li;
}

/** Render the tree of the signed-in user's folders and of those shared with them into
 * container, opened at currentPath. */
export function renderTree(container, currentPath) {
  const user = document.documentElement.dataset.user;
  const rootPath = `/${user}`;
  const current = currentPath || rootPath;
  const shared = el("ul", { class: "tree root shared" });
  mount(container, el("h3", {}, "Folders"), el("ul", { class: "tree root" }, item({ name: user, path: rootPath }, current)),
    el("h3", {}, "Shared with me"), shared);
  getJSON("/shared").then((data) => {
    const folders = data.folders || [];
    mount(shared, folders.length
      ? folders.map((f) => item({ name: `${f.path.slice(1)} (${f.role})`, path: f.path }, current))
      : [el("li", { class: "subtitle" }, "nothing yet")]);
  }).catch(() => mount(shared, []));
}
