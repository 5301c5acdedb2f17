// The runs table of the folder page: rows come from the server a page at a time (keyset paging,
// the next page loads when the end of the table scrolls into view), every column with a field
// sorts on the server, and with a group-by field the table shows group rows (count and the
// mean/min/max of the numeric columns) that expand into their runs.
import { el, mount, fmtValue } from "./common.js";
import { searchRuns, searchGroups, andFilters, literal } from "./search.js";

/** The value of a column for a record, or undefined. */
export function cellValue(col, r) { return col.value ? col.value(r) : r[col.key]; }

export class RunTable {
  /** `scope` {folder, recursive}; `onCheck(checked)` with the Map id -> name of checked runs;
   *  `onError(err)` for a refused query; `onLoaded({total, rows})` after a first page. */
  constructor({ scope, columns, order = [], onCheck = null, onError = null, onLoaded = null }) {
    this.scope = scope;
    this.columns = columns;
    this.order = order;           // [{field, desc}]
    this.filter = "";
    this.groupBy = "";
    this.checked = new Map();
    this.onCheck = onCheck;
    this.onError = onError;
    this.onLoaded = onLoaded;
    this.generation = 0;
    this.rows = [];
    this.node = el("div", { class: "table-wrap", id: "runs" });
    this.footer = el("div", { class: "table-foot" });
    this.count = el("span", { class: "muted", id: "run-count" });
    this.more = el("button", { type: "button", id: "runs-more", hidden: true, onclick: () => this.next() }, "Load more");
    mount(this.footer, this.count, this.more);
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && !this.more.hidden) this.next();
    }, { rootMargin: "400px" });
    this.observer.observe(this.more);
  }

  orderBy() { return this.order.map((o) => `${o.field} ${o.desc ? "desc" : "asc"}`); }

  /** Reload from the first page (or the groups) with the current filter, order and grouping;
   *  `first` is the first page when the caller asked for it already (a promise). */
  async reload(first = null) {
    const gen = ++this.generation;
    this.token = null;
    this.rows = [];
    this.node.dataset.loading = "1";
    try {
      if (this.groupBy) await this.loadGroups(gen);
      else await this.loadFirst(gen, first);
    } catch (e) {
      if (gen === this.generation) { delete this.node.dataset.loading; this.onError && this.onError(e); }
      return;
    }
  }

  async loadFirst(gen, first) {
    const page = await (first || searchRuns(this.scope, { filter: this.filter, order: this.orderBy() }));
    if (gen !== this.generation) return;
    this.total = page.total;
    this.token = page.next_page_token;
    this.rows = page.runs;
    this.tbody = el("tbody", {}, page.runs.map((r) => this.row(r)));
    this.render();
    performance.mark("em:first-rows"); // benchmarks/ui_many_runs.py reads it
    this.onLoaded && this.onLoaded({ total: page.total, rows: page.runs });
  }

  async next() {
    if (!this.token || this.loadingMore || this.groupBy) return;
    const gen = this.generation;
    this.loadingMore = true;
    try {
      const page = await searchRuns(this.scope, { filter: this.filter, order: this.orderBy(), token: this.token });
      if (gen !== this.generation) return;
      this.token = page.next_page_token;
      this.total = page.total;
      this.rows.push(...page.runs);
      this.tbody.append(...page.runs.map((r) => this.row(r)));
      this.status();
      // The observer fires on changes only: go on while the end is still in view.
      requestAnimationFrame(() => { if (!this.more.hidden && this.more.getBoundingClientRect().top < innerHeight + 400) this.next(); });
    } catch (e) {
      this.onError && this.onError(e);
    } finally {
      this.loadingMore = false;
    }
  }

  /** Numeric columns whose field the server can aggregate. */
  aggregated() { return this.columns.filter((c) => c.aggregate); }

  async loadGroups(gen) {
    const grouped = await searchGroups(this.scope, { filter: this.filter, by: this.groupBy,
      aggregate: this.aggregated().map((c) => c.field) });
    if (gen !== this.generation) return;
    this.total = grouped.total;
    this.groups = grouped.groups;
    this.tbody = el("tbody", {}, grouped.groups.map((g) => this.groupRow(g)));
    this.render();
    this.onLoaded && this.onLoaded({ total: grouped.total, rows: [], groups: grouped.groups });
  }

  groupRow(group) {
    const toggle = el("button", { type: "button", class: "toggle", "aria-label": `expand ${fmtValue(group.value)}` }, "▸");
    const cells = this.columns.map((c, i) => {
      if (i === 0) {
        return el("td", { class: "group-name" }, toggle, el("span", { class: "group-value" },
          group.value === null ? "(none)" : `${this.groupBy} = ${literal(group.value)}`),
          el("span", { class: "count" }, `${group.count} run${group.count === 1 ? "" : "s"}`));
      }
      const stats = c.aggregate && group.aggregates[c.field];
      if (!stats || stats.mean === null) return el("td", { class: c.num ? "num" : "" });
      return el("td", { class: "num agg", dataset: { field: c.field, mean: stats.mean, min: stats.min, max: stats.max, count: stats.count },
        title: `mean of ${stats.count}; min ${fmtValue(stats.min)}, max ${fmtValue(stats.max)}` },
        fmtValue(stats.mean), el("span", { class: "range" }, ` ${fmtValue(stats.min)} – ${fmtValue(stats.max)}`));
    });
    const tr = el("tr", { class: "group-row", dataset: { value: JSON.stringify(group.value), count: group.count } },
      el("td", { class: "check" }), cells);
    let rows = null;
    toggle.addEventListener("click", async () => {
      if (rows) {
        const open = toggle.textContent === "▸";
        toggle.textContent = open ? "▾" : "▸";
        rows.forEach((r) => { r.hidden = !open; });
        return;
      }
      toggle.textContent = "▾";
      rows = [];
      await this.expand(group, tr, rows, null);
    });
    return tr;
  }

  /** Insert a page of a group's runs after `after`, and a "more" row while there are more. */
  async expand(group, after, rows, token) {
    const gen = this.generation;
    let page;
    try {
      page = await searchRuns(this.scope, { filter: andFilters(this.filter, group.filter), order: this.orderBy(), token });
    } catch (e) { this.onError && this.onError(e); return; }
    if (gen !== this.generation) return;
    const added = page.runs.map((r) => { this.rows.push(r); const tr = this.row(r); tr.classList.add("in-group"); return tr; });
    if (page.next_page_token) {
      const more = el("tr", { class: "group-more" }, el("td", { colspan: this.columns.length + 1 },
        el("button", { type: "button", onclick: () => { more.remove(); rows.splice(rows.indexOf(more), 1); this.expand(group, added[added.length - 1], rows, page.next_page_token); } },
          "More runs of this group")));
      added.push(more);
    }
    after.after(...added);
    rows.push(...added);
  }

  row(r) {
    const box = el("input", { type: "checkbox", checked: this.checked.has(r.id), "aria-label": `select ${r.name}`,
      onchange: (e) => {
        if (e.target.checked) this.checked.set(r.id, r.name); else this.checked.delete(r.id);
        this.onCheck && this.onCheck(this.checked);
      } });
    return el("tr", { dataset: { id: r.id } }, el("td", { class: "check" }, box),
      this.columns.map((c) => el("td", { class: c.num ? "num" : "" }, c.render ? c.render(r) : fmtValue(cellValue(c, r)))));
  }

  /** Rebuild the head (after a change of columns or order); rows are rebuilt from the records. */
  setColumns(columns) {
    this.columns = columns;
    if (this.groupBy) { this.reload(); return; }
    this.tbody = el("tbody", {}, this.rows.map((r) => this.row(r)));
    this.render();
  }

  head() {
    const head = [];
    if (this.columns.some((c) => c.group)) {
      const cells = [el("th", { class: "check" })];
      for (let i = 0; i < this.columns.length;) {
        const g = this.columns[i].group || "";
        let n = 0;
        while (i + n < this.columns.length && (this.columns[i + n].group || "") === g) n++;
        cells.push(el("th", { class: "group", colspan: n }, g));
        i += n;
      }
      head.push(el("tr", {}, cells));
    }
    const sorted = this.order[0];
    const all = el("input", { type: "checkbox", id: "check-all", "aria-label": "select the runs shown",
      onchange: (e) => this.checkAll(e.target.checked) });
    head.push(el("tr", {}, el("th", { class: "check" }, all), this.columns.map((c) => {
      const on = sorted && c.field && sorted.field === c.field;
      return el("th", { class: `${c.field ? "sortable" : ""}${c.num ? " num" : ""}`, dataset: { key: c.key, field: c.field || "" },
        title: c.field ? `Sort by ${c.field} (on the server)` : "", onclick: c.field ? () => this.sortBy(c) : null },
        c.title, on ? el("span", { class: "arrow" }, sorted.desc ? "▼" : "▲") : null);
    })));
    return el("thead", {}, head);
  }

  /** Tick (or clear) every run row the table shows. */
  checkAll(on) {
    const shown = new Map(this.rows.map((r) => [r.id, r.name]));
    for (const box of this.tbody.querySelectorAll("tr[data-id] input[type=checkbox]")) {
      const id = box.closest("tr").dataset.id;
      box.checked = on;
      if (on) this.checked.set(id, shown.get(id)); else this.checked.delete(id);
    }
    this.onCheck && this.onCheck(this.checked);
  }

  sortBy(col) {
    const cur = this.order[0];
    this.order = [{ field: col.field, desc: cur && cur.field === col.field ? !cur.desc : !!col.num }];
    this.reload();
  }

  render() {
    delete this.node.dataset.loading;
    mount(this.node, el("table", { class: "data" }, this.head(), this.tbody),
      this.total ? null : el("div", { class: "empty" }, this.filter ? "No runs match the filter." : "No runs in this folder yet."));
    this.status();
  }

  status() {
    const n = this.groupBy ? (this.groups || []).length : this.rows.length;
    const what = this.groupBy ? `${n} group${n === 1 ? "" : "s"} of ${this.total.toLocaleString()} runs`
      : `${n.toLocaleString()} of ${this.total.toLocaleString()} run${this.total === 1 ? "" : "s"}`;
    this.count.textContent = what;
    this.count.dataset.total = String(this.total);
    this.count.dataset.shown = String(n);
    this.more.hidden = !this.token || !!this.groupBy;
  }
}
