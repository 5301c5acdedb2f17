// The folder tree of the sidebar: the user's root folder, expanded down to the current folder;
// other folders load their children when opened.
import { getJSON, el, mount, links } from "./common.js";

async function childFolders(path) {
  const data = await getJSON("/folders", { path });
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

/** Render the tree of the signed-in user's folders into container, opened at currentPath. */
export function renderTree(container, currentPath) {
  const user = document.documentElement.dataset.user;
  const rootPath = `/${user}`;
  mount(container, el("h3", {}, "Folders"), el("ul", { class: "tree root" }, item({ name: user, path: rootPath }, currentPath || rootPath)));
}
