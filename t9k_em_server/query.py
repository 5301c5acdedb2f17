"""The query language of run search: its grammar, and its compilation to SQLAlchemy.

    hparams.optimizer.name = 'Adam' and hparams.lr <= 0.01 and val.accuracy.max > 0.9
    and status = 'Complete' and labels contains 'resnet' and name ~ '^resnet'

A query is parsed (``lark``, LALR) into a small tree and compiled to SQLAlchemy expressions
over the run index tables of ``metadata_store``; every value becomes a bound parameter, and so
does every hparam key and metric name. Nothing is evaluated. Errors are ``QueryError`` with the
1-based character position of the problem. The user guide is docs/server.md ("Searching runs").

Fields: ``name``, ``status``, ``labels``, ``description``, ``start``, ``end`` (timestamps or
seconds since the epoch), ``duration`` (seconds), ``hparams.<dotted key>``,
``<type>.<metric>.<summary>`` with a summary of ``SUMMARY_FIELDS``. A segment with other
characters is written in backquotes: ``hparams.`odd key`.x``.

Semantics: a comparison is false for a Run that lacks the field (``!=`` and ``not in`` too);
``not`` is the exact complement; ``field = null`` is true when the field is missing and
``field != null`` when present. Hparams are typed: a number literal matches numbers, a quoted
string strings, ``true``/``false`` bools. ``contains`` is a case-insensitive substring (on
``labels``: has that label, exactly); ``~`` a regular expression (``re`` on SQLite, POSIX on
PostgreSQL: keep to the common subset).
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field as dataclass_field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Callable

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from sqlalchemy import and_, not_, or_, select, true
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from .metadata_store import SUMMARY_FIELDS, Node, RunFields, RunHparam, RunLabel, RunSummary

MAX_QUERY_CHARS = 4000
MAX_REGEX_CHARS = 256
MAX_ORDER_FIELDS = 4
STRING_FIELDS = ("name", "status", "description")
TIME_FIELDS = ("start", "end")
BUILTIN_FIELDS = ("name", "status", "labels", "description", "start", "end", "duration")

#: the scope of a search: given an index table's ``folder_id`` column, the condition on it
InScope = Callable[[Any], ColumnElement]

_GRAMMAR = r"""
filter: or_expr?
order: field ORDER_DIR?
?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: _NOT not_expr -> negation
         | atom
?atom: comparison
     | "(" or_expr ")"
comparison: field OP value -> compare
          | field _IN list -> in_
          | field _NOT _IN list -> not_in
          | field _CONTAINS value -> contains
field: SEGMENT ("." SEGMENT)*
list: "(" value ("," value)* ")"
?value: STRING | NUMBER | TRUE | FALSE | NULL
SEGMENT: /(?!(?i:and|or|not|in|contains)(?![A-Za-z0-9_\-\/]))[A-Za-z_][A-Za-z0-9_\-\/]*/ | /`[^`]+`/
OP: "=" | "!=" | "<=" | ">=" | "<" | ">" | "~"
STRING: /'(?:[^'\\]|\\.)*'/ | /"(?:[^"\\]|\\.)*"/
NUMBER: /[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/
TRUE: "true"i
FALSE: "false"i
NULL: "null"i
ORDER_DIR: "asc"i | "desc"i
_AND: "and"i
_OR: "or"i
_NOT: "not"i
_IN: "in"i
_CONTAINS: "contains"i
%ignore /\s+/
"""

_NAMES = {"STRING": "a quoted string", "NUMBER": "a number", "TRUE": "true", "FALSE": "false",
          "NULL": "null", "SEGMENT": "a field name", "OP": "an operator", "LPAR": "'('",
          "RPAR": "')'", "COMMA": "','", "DOT": "'.'", "_AND": "and", "_OR": "or", "_NOT": "not",
          "_IN": "in", "_CONTAINS": "contains", "ORDER_DIR": "asc or desc", "$END": "the end"}


class QueryError(ValueError):
    """A query that cannot be parsed or compiled; ``position`` is 1-based (0: the whole query)."""

    def __init__(self, message: str, position: int = 0):
        super().__init__(f"position {position}: {message}" if position else message)
        self.problem, self.position = message, position


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(_GRAMMAR, parser="lalr", start=["filter", "order"], propagate_positions=True,
                maybe_placeholders=False)


# ------------------------------------------------------------------------------------ fields

@dataclass(frozen=True)
class Field:
    """A field of a query: ``kind`` is a builtin name, ``hparam`` or ``metric``."""

    kind: str
    text: str
    position: int
    key: str = ""           #: hparam key / metric name
    metric_type: str = ""
    summary: str = ""

    def __str__(self) -> str:
        return self.text


def _segments(tree: Tree) -> list[str]:
    return [t[1:-1] if t.startswith("`") else str(t) for t in tree.children]


def _field(tree: Tree) -> Field:
    parts, pos = _segments(tree), tree.meta.start_pos + 1
    text = ".".join(parts)
    if len(parts) == 1 and parts[0] in BUILTIN_FIELDS:
        return Field(parts[0], text, pos)
    if parts[0] == "hparams" and len(parts) >= 2:
        return Field("hparam", text, pos, key=".".join(parts[1:]))
    if len(parts) >= 3 and parts[-1] in SUMMARY_FIELDS:
        return Field("metric", text, pos, key=".".join(parts[1:-1]), metric_type=parts[0],
                     summary=parts[-1])
    raise QueryError(f"unknown field {text!r}: use {', '.join(BUILTIN_FIELDS)}, hparams.<key> or "
                     f"<type>.<metric>.<summary> with a summary of {', '.join(SUMMARY_FIELDS)}", pos)


def parse_field(text: str) -> Field:
    """A field name alone (group-by and aggregate parameters)."""
    tree = _parse(text, "order")
    if len(tree.children) != 1:
        raise QueryError("expected a field name alone", tree.children[1].start_pos + 1)
    return _field(tree.children[0])


# ------------------------------------------------------------------------------------ parsing

@dataclass(frozen=True)
class Value:
    value: Any   #: str, float, bool or None
    position: int


def _value(token: Token) -> Value:
    pos = token.start_pos + 1
    if token.type == "STRING":
        return Value(re.sub(r"\\(.)", r"\1", token[1:-1], flags=re.S), pos)
    if token.type == "NUMBER":
        return Value(float(token), pos)
    if token.type == "NULL":
        return Value(None, pos)
    return Value(token.type == "TRUE", pos)


def _parse(text: str, start: str) -> Tree:
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is longer than {MAX_QUERY_CHARS} characters")
    try:
        return _parser().parse(text, start=start)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text) from None


def _syntax_error(exc: UnexpectedInput, text: str) -> QueryError:
    if isinstance(exc, UnexpectedCharacters):
        return QueryError(f"unexpected character {text[exc.pos_in_stream]!r}", exc.pos_in_stream + 1)
    expected = sorted({_NAMES.get(e, e) for e in getattr(exc, "expected", ()) or ()})
    wanted = f"; expected {', '.join(expected)}" if expected else ""
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        return QueryError(f"the query ends too early{wanted}", len(text) + 1)
    token = exc.token  # type: ignore[attr-defined]
    return QueryError(f"unexpected {str(token)!r}{wanted}", token.start_pos + 1)


@dataclass(frozen=True)
class RunRef:
    """The columns of a statement that say which Run a row is about: its id and its Folder.
    A Run's index rows are joined on both, since their keys lead with the Folder
    (``metadata_store``): the probes for many Runs of one Folder then read one small range."""

    id: Any
    folder_id: Any

    def rows_of(self, table: Any) -> ColumnElement:
        """The condition that a row of index table (alias) ``table`` belongs to this Run."""
        return and_(table.folder_id == self.folder_id, table.node_id == self.id)


#: a statement over ``nodes``: the Run is the node, its Folder the node's parent
NODES = RunRef(Node.id, Node.parent_id)


@dataclass(frozen=True)
class _Context:
    in_scope: InScope
    run: RunRef


@dataclass(frozen=True)
class Selection:
    """A filter in SQL. ``rows``: (index table alias, condition on it) for the comparisons at
    the top level of the filter that hold exactly when a Run has one index row meeting them (an
    hparam, a summary, one label): a statement starts from one of them and joins the others to
    it (``RunRef.rows_of``), so the database can start from the most selective one's index and
    probe the others by key, with no set of ids per condition. ``where(run)``: the rest of the
    filter, about the Run that ``run`` names."""

    rows: list[tuple[Any, ColumnElement]]
    rest: list[Tree]
    in_scope: InScope

    def where(self, run: RunRef) -> ColumnElement:
        context = _Context(self.in_scope, run)
        return and_(*(_compile(part, context) for part in self.rest)) if self.rest else true()


@dataclass(frozen=True)
class Filter:
    """A parsed filter; ``selection()`` is its SQL form (no rows and ``true()`` when empty)."""

    text: str
    tree: Tree | None

    def selection(self, in_scope: InScope) -> Selection:
        """The filter over the Runs whose Folder ``in_scope(folder_id column)`` accepts (every
        index row the filter reads is kept to that scope)."""
        rows: list[tuple[Any, ColumnElement]] = []
        rest: list[Tree] = []
        for part in _conjuncts(self.tree) if self.tree is not None else []:
            row = _row_of(part)
            if row is None:
                rest.append(part)
            else:
                rows.append(row)
        return Selection(rows, rest, in_scope)


def parse_filter(text: str | None) -> Filter:
    """Parse and check a filter (errors name their position); '' selects everything."""
    text = text or ""
    tree = _parse(text, "filter")
    node = tree.children[0] if tree.children else None
    parsed = Filter(text, node)
    parsed.selection(lambda folder: true()).where(NODES)  # type and value errors surface now
    return parsed


def _conjuncts(tree: Tree) -> list[Tree]:
    """The parts of a filter joined by ``and`` at its top level (parentheses flattened)."""
    if tree.data != "and_expr":
        return [tree]
    return [part for child in tree.children for part in _conjuncts(child)]


def _comparison_parts(tree: Tree) -> tuple[Field, str, list[Value]]:
    field = _field(tree.children[0])
    if tree.data == "compare":
        return field, str(tree.children[1]), [_value(tree.children[2])]
    if tree.data in ("in_", "not_in"):
        values = [_value(t) for t in tree.children[1].children]
        return field, "in" if tree.data == "in_" else "not in", values
    return field, "contains", [_value(tree.children[1])]


def _compile(tree: Tree, context: _Context) -> ColumnElement:
    kind = tree.data
    if kind == "and_expr":
        return and_(*(_compile(c, context) for c in tree.children))
    if kind == "or_expr":
        return or_(*(_compile(c, context) for c in tree.children))
    if kind == "negation":
        return not_(_compile(tree.children[0], context))
    return _comparison(*_comparison_parts(tree), context)


def _row_of(tree: Tree) -> tuple[Any, ColumnElement] | None:
    """(alias, condition on it) when comparison ``tree`` holds exactly for the Runs that have
    one index row meeting the condition; None for every other part of a filter."""
    if tree.data not in ("compare", "in_", "not_in", "contains"):
        return None
    field, op, values = _comparison_parts(tree)
    if any(v.value is None for v in values):
        return None
    if field.kind == "hparam":
        return _hparam_row(field, op, values)
    if field.kind == "metric":
        return _summary_row(field, op, values)
    if field.kind == "labels" and op in ("=", "contains"):
        _expect(field, values, (str,), "a list of strings")
        label = aliased(RunLabel)
        return label, label.label == values[0].value
    return None


# ------------------------------------------------------------------------------------ compiling

def _having(table: Any, condition: ColumnElement, context: _Context) -> ColumnElement:
    """Runs in scope with a row of ``table`` (an index table) that meets ``condition``: an
    uncorrelated ``IN`` over the table's index that leads with the Folder (for the parts of a
    filter under ``or``/``not``; the top-level ones are joins, see ``Selection``)."""
    return context.run.id.in_(select(table.node_id).where(context.in_scope(table.folder_id), condition))


def _check_regex(value: Value) -> str:
    if not isinstance(value.value, str):
        raise QueryError("~ takes a quoted regular expression", value.position)
    if len(value.value) > MAX_REGEX_CHARS:
        raise QueryError(f"regular expression longer than {MAX_REGEX_CHARS} characters", value.position)
    try:
        re.compile(value.value)
    except re.error as exc:
        raise QueryError(f"bad regular expression: {exc}", value.position) from None
    return value.value


def _apply(column: Any, op: str, values: list[Value]) -> ColumnElement:
    """``column <op> values`` for present values (the caller handles null and missing)."""
    v = values[0].value
    if op == "=":
        return column == v
    if op == "!=":
        return column != v
    if op == "<":
        return column < v
    if op == "<=":
        return column <= v
    if op == ">":
        return column > v
    if op == ">=":
        return column >= v
    if op == "in":
        return column.in_([x.value for x in values])
    if op == "not in":
        return column.not_in([x.value for x in values])
    if op == "contains":
        return column.icontains(v, autoescape=True)
    return column.regexp_match(_check_regex(values[0]))


def _expect(field: Field, values: list[Value], kinds: tuple[type, ...], what: str) -> None:
    for value in values:
        if value.value is None or not isinstance(value.value, kinds) or (
                bool not in kinds and isinstance(value.value, bool)):
            raise QueryError(f"{field} is {what}: compare it with {_kind_name(kinds)}", value.position)


def _kind_name(kinds: tuple[type, ...]) -> str:
    return "a quoted string" if kinds == (str,) else "a number" if float in kinds else "true or false"


def _null_test(present: ColumnElement, op: str, values: list[Value]) -> ColumnElement | None:
    """``field = null`` / ``field != null``; None when no value is null. Other uses of null fail."""
    nulls = [v for v in values if v.value is None]
    if not nulls:
        return None
    if op not in ("=", "!=") or len(values) != 1:
        raise QueryError("null works only with = and != (missing or present)", nulls[0].position)
    return not_(present) if op == "=" else present


def _comparison(field: Field, op: str, values: list[Value], context: _Context) -> ColumnElement:
    if field.kind == "labels":
        return _labels(field, op, values, context)
    if field.kind == "hparam":
        return _hparam(field, op, values, context)
    if field.kind == "metric":
        present = and_(RunSummary.type == field.metric_type, RunSummary.name == field.key,
                       getattr(RunSummary, field.summary).is_not(None))
        null = _null_test(_having(RunSummary, present, context), op, values)
        if null is not None:
            return null
        return _having(*_summary_row(field, op, values), context)
    column = {"name": Node.name, "status": RunFields.status, "description": RunFields.description,
              "start": RunFields.start_time, "end": RunFields.end_time,
              "duration": RunFields.duration}[field.kind]
    null = _null_test(column.is_not(None), op, values)
    if null is not None:
        return null
    if field.kind in STRING_FIELDS:
        _expect(field, values, (str,), "a string")
    elif field.kind in TIME_FIELDS:
        _numeric_op(field, op, values)
        values = [Value(_seconds(v), v.position) for v in values]
    else:
        _numeric_op(field, op, values)
    return and_(column.is_not(None), _apply(column, op, values))


def _numeric_op(field: Field, op: str, values: list[Value]) -> None:
    if op in ("~", "contains"):
        raise QueryError(f"{op} works on strings; {field} is a number", field.position)
    if field.kind in TIME_FIELDS:
        _expect(field, values, (str, float), "a time")
    else:
        _expect(field, values, (float,), "a number")


def _seconds(value: Value) -> float:
    if isinstance(value.value, float):
        return value.value
    try:
        moment = datetime.fromisoformat(value.value)
    except ValueError:
        raise QueryError(f"not a timestamp: {value.value!r} (use ISO 8601, e.g. "
                         "'2026-11-26T10:00:00+08:00')", value.position) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _labels(field: Field, op: str, values: list[Value], context: _Context) -> ColumnElement:
    null = _null_test(_having(RunLabel, true(), context), op, values)
    if null is not None:
        return null
    if op in ("<", "<=", ">", ">="):
        raise QueryError(f"{op} does not apply to labels (use contains, =, !=, in, not in, ~)",
                         field.position)
    _expect(field, values, (str,), "a list of strings")
    if op == "!=":
        return not_(_having(RunLabel, RunLabel.label == values[0].value, context))
    if op == "not in":
        return not_(_having(RunLabel, RunLabel.label.in_([v.value for v in values]), context))
    return _having(RunLabel, _apply(RunLabel.label, "=" if op == "contains" else op, values), context)


def _typed(h: Any, op: str, value: Value) -> ColumnElement:
    """One hparam comparison against one value, typed by the literal."""
    v = value.value
    if isinstance(v, bool):
        if op not in ("=", "!=", "in", "not in"):
            raise QueryError(f"{op} does not apply to true/false", value.position)
        return and_(h.kind == "bool", h.num == (1.0 if v else 0.0))
    if isinstance(v, float):
        if op in ("~", "contains"):
            raise QueryError(f"{op} takes a quoted string", value.position)
        return and_(h.kind == "number", _apply(h.num, "=" if op in ("in", "not in", "!=") else op, [value]))
    # text is set exactly for strings (and the text index is partial on that)
    return and_(h.text.is_not(None), _apply(h.text, "=" if op in ("in", "not in", "!=") else op, [value]))


def _hparam(field: Field, op: str, values: list[Value], context: _Context) -> ColumnElement:
    null = _null_test(_having(RunHparam, RunHparam.key == field.key, context), op, values)
    if null is not None:
        return null
    return _having(*_hparam_row(field, op, values), context)


def _hparam_row(field: Field, op: str, values: list[Value]) -> tuple[Any, ColumnElement]:
    """The ``run_hparams`` row a Run needs for ``field op values`` (no null among them)."""
    h = aliased(RunHparam)
    match = or_(*(_typed(h, op, v) for v in values))
    return h, and_(h.key == field.key, not_(match) if op in ("!=", "not in") else match)


def _summary_row(field: Field, op: str, values: list[Value]) -> tuple[Any, ColumnElement]:
    """The ``run_summaries`` row a Run needs for ``field op values`` (no null among them)."""
    _numeric_op(field, op, values)
    s = aliased(RunSummary)
    column = getattr(s, field.summary)
    return s, and_(s.type == field.metric_type, s.name == field.key, column.is_not(None),
                   _apply(column, op, values))


# ------------------------------------------------------------------------------------ order

@dataclass(frozen=True)
class SortKey:
    """One ``order_by`` entry: the joins it needs and its value columns (compared in turn)."""

    field: Field
    descending: bool
    joins: list[tuple[Any, ColumnElement]] = dataclass_field(default_factory=list)
    columns: list[Any] = dataclass_field(default_factory=list)


def sort_key(field: Field, descending: bool, run: RunRef = NODES) -> SortKey:
    """Columns that order the Runs ``run`` names by ``field`` (missing values come last in
    either direction)."""
    if field.kind == "labels":
        raise QueryError("labels cannot be sorted", field.position)
    if field.kind == "hparam":
        h = aliased(RunHparam)
        return SortKey(field, descending, [(h, and_(run.rows_of(h), h.key == field.key))],
                       [h.num, h.text])  # numbers (and bools) first, then strings
    if field.kind == "metric":
        s = aliased(RunSummary)
        return SortKey(field, descending, [(s, and_(run.rows_of(s), s.type == field.metric_type,
                                                    s.name == field.key))],
                       [getattr(s, field.summary)])
    column = {"name": Node.name, "status": RunFields.status, "description": RunFields.description,
              "start": RunFields.start_time, "end": RunFields.end_time,
              "duration": RunFields.duration}[field.kind]
    return SortKey(field, descending, [], [column])


def parse_order(entries: list[str] | None, run: RunRef = NODES) -> list[SortKey]:
    """``["val.accuracy.max desc", "name"]`` → sort keys of the Runs ``run`` names (default:
    ``start desc``)."""
    entries = [e for e in (entries or []) if e.strip()] or ["start desc"]
    if len(entries) > MAX_ORDER_FIELDS:
        raise QueryError(f"order_by takes at most {MAX_ORDER_FIELDS} fields")
    keys = []
    for entry in entries:
        try:
            tree = _parse(entry, "order")
        except QueryError as exc:
            raise QueryError(f"order_by {entry!r}: {exc.problem}", exc.position) from None
        direction = str(tree.children[1]).lower() if len(tree.children) > 1 else "asc"
        keys.append(sort_key(_field(tree.children[0]), direction == "desc", run))
    return keys


def _atoms(keys: list[SortKey], columns: list[Any] | None) -> list[tuple[Any, bool]]:
    """(value column, descending) of each sort column; ``columns`` stand in for the keys' own
    (the same values selected from a subquery)."""
    atoms = [(column, key.descending) for key in keys for column in key.columns]
    if columns is not None:
        atoms = [(column, descending) for column, (_, descending) in zip(columns, atoms)]
    return atoms


def order_clauses(keys: list[SortKey], columns: list[Any] | None = None,
                  run_id: Any = Node.id) -> list[Any]:
    """ORDER BY terms: each column in its direction, nulls last; then the node id."""
    terms = [(column.desc() if descending else column.asc()).nulls_last()
             for column, descending in _atoms(keys, columns)]
    return terms + [run_id.asc()]


def after_condition(keys: list[SortKey], last: list[Any], last_id: str,
                    columns: list[Any] | None = None, run_id: Any = Node.id) -> ColumnElement:
    """Rows strictly after the row whose sort values are ``last`` (keyset paging)."""
    atoms = _atoms(keys, columns)
    if len(last) != len(atoms):
        raise QueryError("the page token does not belong to this order")
    ties: list[ColumnElement] = []
    after: list[ColumnElement] = []
    for (column, descending), value in zip(atoms, last):
        if value is None:  # nulls sort last: only other nulls tie, nothing comes after
            ties.append(column.is_(None))
            continue
        beyond = column < value if descending else column > value
        after.append(and_(*ties, or_(column.is_(None), beyond)))
        ties.append(column == value)
    after.append(and_(*ties, run_id > last_id))
    return or_(*after)


# ------------------------------------------------------------------------------------ tokens

def fingerprint(*parts: Any) -> str:
    """A short digest of what a page token belongs to (filter, order, scope)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encode_token(values: list[Any], last_id: str, owner: str) -> str:
    raw = json.dumps({"v": values, "id": last_id, "f": owner}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, owner: str) -> tuple[list[Any], str]:
    """(sort values, node id) of a page token made for ``owner``; QueryError if it is not one."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        values, last_id = data["v"], data["id"]
        ok = (data.get("f") == owner and isinstance(last_id, str) and isinstance(values, list)
              and all(v is None or isinstance(v, (str, float, int)) and not isinstance(v, bool)
                      for v in values))
    except (ValueError, TypeError, KeyError):
        ok = False
    if not ok:
        raise QueryError("bad page token (it belongs to another query, or was altered)")
    return values, last_id


def format_literal(value: Any) -> str:
    """A value written in the query language (group rows give the filter that selects them)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(float(value))
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def format_field(field: Field) -> str:
    """A field written so that it parses back to itself (odd segments in backquotes)."""
    plain = re.compile(r"[A-Za-z_][A-Za-z0-9_\-/]*")

    def seg(s: str) -> str:
        return s if plain.fullmatch(s) and s.lower() not in _KEYWORDS else f"`{s}`"

    if field.kind == "hparam":
        return "hparams." + ".".join(seg(s) for s in field.key.split("."))
    return field.text


_KEYWORDS = {"and", "or", "not", "in", "contains", "true", "false", "null", "asc", "desc"}
