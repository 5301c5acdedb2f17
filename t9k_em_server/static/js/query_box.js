// The filter box of the folder page: the query language of run search (docs/server.md), with
// completion of field names, the server's errors shown inline at their position, and a help panel.
import { el, mount } from "./common.js";

const MAX_SUGGESTIONS = 12;
const TOKEN_BEFORE_CARET = /[A-Za-z0-9_.`\-/]*$/;

export const EXAMPLES = [
  "hparams.lr <= 0.01 and val.accuracy.max > 0.9",
  "status = 'Complete' and labels contains 'resnet'",
  "name ~ '^resnet' or hparams.optimizer.name in ('Adam', 'AdamW')",
  "hparams.model.depth >= 50 and not (status = 'Error')",
  "duration > 3600 and start >= '2026-11-01T00:00:00+00:00'",
  "val.loss.min = null",
];

const HELP = [
  ["Fields", "name, status, labels, description, start, end, duration, hparams.<dotted key>, <type>.<metric>.<summary> with a summary of last, min, max, mean, count, last_step, min_step, max_step. A key with other characters goes in backquotes: hparams.`odd key`."],
  ["Operators", "=  !=  <  <=  >  >=  in (…)  not in (…)  contains (substring; on labels: has the label)  ~ (regular expression), combined with and, or, not and parentheses."],
  ["Values", "numbers, 'quoted strings', true, false; times as ISO 8601 text or seconds. A run without the field never matches a comparison; field = null finds the runs without it, field != null those with it."],
  ["Sorting", "click a column header: the server sorts, runs without the field come last."],
];

function helpPanel(onExample) {
  return el("details", { class: "query-help" }, el("summary", { title: "Query language help" }, "?"),
    el("div", { class: "dropdown-menu query-help-body", id: "query-help" },
      HELP.map(([title, text]) => el("p", {}, el("strong", {}, `${title}: `), text)),
      el("h3", {}, "Examples (click to use)"),
      el("ul", { class: "examples" }, EXAMPLES.map((q) => el("li", {}, el("code", { class: "example", onclick: () => onExample(q) }, q))))));
}

/**
 * The filter input. `onApply(text)` runs on Enter, on a pause in typing, and when an example is
 * chosen; `showError(failure)` marks the position of a QueryFailure under the input.
 */
export class QueryBox {
  constructor({ value = "", onApply, placeholder = "Filter runs, e.g. hparams.lr <= 0.01 and val.accuracy.max > 0.9" }) {
    this.onApply = onApply;
    this.fields = [];
    this.selected = -1;
    this.timer = null;
    this.input = el("input", { type: "search", id: "filter", value, placeholder, autocomplete: "off", spellcheck: "false",
      "aria-label": "filter query", class: "mono" });
    this.list = el("ul", { class: "suggestions", id: "filter-suggestions", role: "listbox", hidden: true });
    this.error = el("div", { class: "query-error", id: "filter-error", role: "alert", hidden: true });
    this.help = helpPanel((q) => { this.input.value = q; this.help.open = false; this.apply(); });
    this.node = el("div", { class: "query-box" },
      el("div", { class: "query-row" }, el("div", { class: "query-input" }, this.input, this.list), this.help), this.error);
    this.input.addEventListener("input", () => { this.suggest(); this.schedule(); });
    this.input.addEventListener("keydown", (e) => this.key(e));
    this.input.addEventListener("blur", () => setTimeout(() => this.close(), 150));
  }

  get value() { return this.input.value.trim(); }

  setFields(fields) { this.fields = fields; }

  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.apply(), 600);
  }

  apply() {
    clearTimeout(this.timer);
    this.close();
    this.onApply(this.value);
  }

  key(e) {
    const open = !this.list.hidden;
    if (e.key === "Enter" && !(open && this.selected >= 0)) { e.preventDefault(); this.apply(); return; }
    if (!open) return;
    const items = this.list.children;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      this.selected = (this.selected + (e.key === "ArrowDown" ? 1 : -1) + items.length) % items.length;
      [...items].forEach((li, i) => li.classList.toggle("on", i === this.selected));
    } else if ((e.key === "Tab" || e.key === "Enter") && items.length) {
      e.preventDefault();
      this.complete(items[Math.max(0, this.selected)].dataset.field);
    } else if (e.key === "Escape") { // closes the list only (a search input clears itself on Escape)
      e.preventDefault();
      this.close();
    }
  }

  /** The field-name fragment before the caret: [start, text]. */
  fragment() {
    const before = this.input.value.slice(0, this.input.selectionStart ?? this.input.value.length);
    const text = before.match(TOKEN_BEFORE_CARET)[0];
    return [before.length - text.length, text];
  }

  suggest() {
    const [, text] = this.fragment();
    const q = text.toLowerCase();
    const found = q ? this.fields.filter((f) => f.toLowerCase().startsWith(q) && f.toLowerCase() !== q) : [];
    if (!found.length) { this.close(); return; }
    this.selected = -1;
    mount(this.list, found.slice(0, MAX_SUGGESTIONS).map((f) => el("li", { role: "option", dataset: { field: f },
      onmousedown: (e) => { e.preventDefault(); this.complete(f); } }, f)));
    this.list.hidden = false;
  }

  complete(field) {
    const [start] = this.fragment();
    const caret = this.input.selectionStart ?? this.input.value.length;
    const v = this.input.value;
    this.input.value = v.slice(0, start) + field + " " + v.slice(caret);
    const at = start + field.length + 1;
    this.input.setSelectionRange(at, at);
    this.close();
    this.input.focus();
  }

  close() { this.list.hidden = true; this.selected = -1; }

  /** Show the server's complaint: the query with the character at `position` marked, and why. */
  showError(failure) {
    const text = this.value;
    const at = failure.position ? Math.min(failure.position - 1, text.length) : -1;
    mount(this.error,
      at >= 0 ? el("div", { class: "mono query-echo" }, text.slice(0, at),
        el("mark", { class: "at" }, text.slice(at, at + 1) || " "), text.slice(at + 1)) : null,
      el("div", { class: "problem" }, failure.position ? `Position ${failure.position}: ${failure.problem}` : failure.problem));
    this.error.dataset.position = String(failure.position || 0);
    this.error.hidden = false;
    this.input.classList.add("invalid");
  }

  clearError() {
    this.error.hidden = true;
    this.input.classList.remove("invalid");
  }
}
