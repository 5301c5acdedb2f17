"""Run search over the run index tables: one page of Runs (keyset paging) with the total, group
aggregates, the fields seen in a folder, and the series of many Runs for one chart.

The query language and its SQL form belong to ``query.py``; this module puts the pieces into
statements and reads them through the metadata store's sessions. The HTTP contract is
``routers/search.py`` (documented in docs/server.md).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from sqlalchemy import and_, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.selectable import SelectBase

from t9k_em_core import run_files

from . import query
from .indexing import flatten_hparams, run_fields_of
from .metadata_store import (FolderField, MetadataStore, Node, NodeView, RunFields, RunHparam,
                             RunLabel)
from .series import band, load_series, series_points
from .stores import Stores

TIMEOUT_MS = 30_000  #: a PostgreSQL search statement is cancelled after this long
#: PostgreSQL memory per sort or hash of a search (its default, 4 MB, spills the hash of a
#: 100,000-Run scope's ``run_fields`` to disk: the newest-first folder view took 424 ms, 318 here)
WORK_MEM = "32MB"


@contextmanager
def _reading(meta: MetadataStore) -> Iterator[Session]:
    """A read session whose statements PostgreSQL cancels after ``TIMEOUT_MS`` (a QueryError)
    and gives ``WORK_MEM`` per sort or hash. SQLite has no statement timeout; its regular
    expressions are bounded by length only.

    On SQLite the session's statements get no automatic indexes: every search statement has
    an index to use, and with one the planner would rather index all of ``nodes`` on the fly
    for the recursive step of a scope than probe ``ix_nodes_parent_type`` a few times."""
    with meta.reading() as s:
        dialect = s.get_bind().dialect.name
        if dialect == "postgresql":
            s.execute(text(f"SET LOCAL statement_timeout = {int(TIMEOUT_MS)}"))
            s.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
        elif dialect == "sqlite":
            s.execute(text("PRAGMA automatic_index = OFF"))
        try:
            yield s
        except OperationalError as exc:
            if "statement timeout" not in str(exc):
                raise
            raise query.QueryError(f"the search took longer than {TIMEOUT_MS / 1000:g} s; "
                                   "narrow the filter or the folder") from None
        finally:
            if dialect == "sqlite":  # the connection goes back to the pool
                s.execute(text("PRAGMA automatic_index = ON"))


@dataclass(frozen=True)
class Scope:
    """The Runs of one Folder, or (``recursive``) of it and every Folder below it. The one
    place that says which Runs a search sees."""

    folder_id: str
    recursive: bool

    @cached_property
    def _tree(self) -> Any:
        tree = select(Node.id).where(Node.id == self.folder_id).cte("scope", recursive=True)
        child = aliased(Node)
        return tree.union_all(select(child.id).where(child.parent_id == tree.c.id,
                                                     child.type == "Folder"))

    def folders(self) -> Any:
        """A SELECT of the Folder ids in scope."""
        if not self.recursive:
            return select(Node.id).where(Node.id == self.folder_id)
        return select(self._tree.c.id)

    def holds(self, folder_id: Any) -> Any:
        """The condition that a Folder id column (``nodes.parent_id``, an index table's
        ``folder_id``) is in scope."""
        return folder_id == self.folder_id if not self.recursive else folder_id.in_(self.folders())

    def condition(self) -> Any:
        """The condition on ``nodes`` that a row is a Run in scope."""
        return and_(Node.type == "Run", self.holds(Node.parent_id))


def _matches(scope: Scope, selection: query.Selection) -> tuple[Any, query.RunRef]:
    """A SELECT of the ids of the Runs in scope that the selection's index rows select, and the
    columns that name its Run (``_filtered`` adds the rest of the filter). With index rows the
    statement starts from the first one's table and joins the others by Folder and Run (no
    ``nodes``), so the database can start from the most selective index and probe the others
    within one Folder's range; without, it lists the Runs of the scope's Folders."""
    if not selection.rows:
        return select(Node.id).select_from(Node).where(scope.condition()), query.NODES
    anchor, condition = selection.rows[0]
    run = query.RunRef(anchor.node_id, anchor.folder_id)
    statement = select(run.id.label("id")).select_from(anchor)
    for alias, on in selection.rows[1:]:
        statement = statement.join(alias, and_(run.rows_of(alias), on))
    return statement.where(scope.holds(anchor.folder_id), condition), run


def _filtered(statement: Any, run: query.RunRef, selection: query.Selection,
              outer_joins: list[tuple[Any, Any]], *uses: Any) -> Any:
    """``statement`` (from ``_matches``) outer-joined to ``outer_joins`` (sort keys, group
    columns) and with the rest of the filter, joined to ``run_fields`` and ``nodes`` where the
    filter or one of ``uses`` (other columns the statement will read) needs them (otherwise a
    join would only cost a probe per Run)."""
    for alias, on in outer_joins:
        statement = statement.outerjoin(alias, on)
    where = selection.where(run)
    tables = _tables_read(where, *uses)
    if run is not query.NODES and Node.__tablename__ in tables:
        statement = statement.join(Node, Node.id == run.id)
    if RunFields.__tablename__ in tables:
        statement = statement.outerjoin(RunFields, run.rows_of(RunFields))
    return statement.where(where)


def _tables_read(*clauses: Any) -> set[str]:
    """Names of the tables (or aliases) whose columns ``clauses`` read themselves; a subquery's
    own tables (an ``IN (SELECT …)``, the scope's CTE over ``nodes``) need no join."""
    names: set[str] = set()
    todo = [c.__clause_element__() if hasattr(c, "__clause_element__") else c for c in clauses]
    while todo:
        element = todo.pop()
        if isinstance(element, SelectBase):
            continue
        if isinstance(element, ColumnClause) and element.table is not None:
            names.add(element.table.name)
        todo.extend(element.get_children())
    return names


def _count(s: Session, scope: Scope, selection: query.Selection) -> int:
    statement, run = _matches(scope, selection)
    matching = _filtered(statement, run, selection, []).subquery()
    return s.scalar(select(func.count()).select_from(matching)) or 0


@dataclass(frozen=True)
class Page:
    nodes: list[NodeView]
    total: int
    next_page_token: str | None


def search(meta: MetadataStore, scope: Scope, filter_text: str | None, order_by: list[str] | None,
           page_size: int, page_token: str | None) -> Page:
    """One page of Runs matching ``filter_text`` in ``order_by`` order, how many match, and
    the token of the next page (None on the last).

    One statement chooses the page on the index tables alone (ids and sort values) and counts
    every match in the same pass (a window over all matches, which the sort visits anyway);
    then only the page's Runs are read from ``nodes`` (their documents are large)."""
    parsed = query.parse_filter(filter_text)
    selection = parsed.selection(scope.holds)
    matches, run = _matches(scope, selection)
    keys = query.parse_order(order_by, run)
    owner = query.fingerprint(parsed.text, [f"{k.field} {k.descending}" for k in keys],
                              scope.folder_id, scope.recursive)
    values = [c for key in keys for c in key.columns]
    matches = (_filtered(matches, run, selection, [j for key in keys for j in key.joins], *values)
               .add_columns(*(c.label(f"v{i}") for i, c in enumerate(values)),
                            func.count().over().label("total")).subquery())
    columns = [matches.c[f"v{i}"] for i in range(len(values))]
    statement = select(matches.c.id, *columns, matches.c.total)
    if page_token:
        last_values, last_id = query.decode_token(page_token, owner)
        statement = statement.where(query.after_condition(keys, last_values, last_id, columns,
                                                          matches.c.id))
    statement = (statement.order_by(*query.order_clauses(keys, columns, matches.c.id))
                 .limit(page_size + 1))
    with _reading(meta) as s:
        rows = s.execute(statement).all()
        total = rows[0][-1] if rows else _count(s, scope, selection)
        ids = [row[0] for row in rows[:page_size]]
        by_id = {n.id: n for n in s.scalars(select(Node).where(Node.id.in_(ids)))} if ids else {}
        nodes = [NodeView.of(by_id[i]) for i in ids if i in by_id]
    token = None
    if len(rows) > page_size:
        last = rows[page_size - 1]
        token = query.encode_token(list(last[1:1 + len(columns)]), last[0], owner)
    return Page(nodes, total, token)


def records(meta: MetadataStore, nodes: list[NodeView]) -> list[dict[str, Any]]:
    """Light records of Runs: id, path, name, status, times, labels, hparams, summaries."""
    summaries = meta.summaries_of([n.id for n in nodes])
    return [{**_record_base(node), "hparams": node.hparams or {},
             "summaries": {t: {n: s.as_dict() for n, s in sorted(by_name.items())}
                           for t, by_name in sorted(summaries.get(node.id, {}).items())}}
            for node in nodes]


def _record_base(node: NodeView) -> dict[str, Any]:
    """A record's fields of ``metadata.yaml``: id, path, name, status, times, labels, description."""
    meta_doc = node.meta or {}
    fields = run_fields_of(node, meta_doc)
    return {"id": node.id, "path": node.path, "name": node.name,
            "status": meta_doc.get("status"), "start": meta_doc.get("startTimestamp"),
            "end": meta_doc.get("endTimestamp"), "duration": fields.duration if fields else None,
            "labels": fields.labels if fields else node.labels,
            "description": fields.description if fields else node.description}


def field_values(meta: MetadataStore, nodes: list[NodeView], field_texts: list[str]) -> list[dict[str, Any]]:
    """Lean rows for plots of many Runs: ``{id, name, values: {field: value or None}}`` with
    only the given fields (builtins, ``hparams.<key>``, ``<type>.<metric>.<summary>``)."""
    wanted = [query.parse_field(t) for t in field_texts]
    summaries = meta.summaries_of([n.id for n in nodes]) if any(f.kind == "metric" for f in wanted) else {}
    out = []
    for node in nodes:
        base = _record_base(node)
        hparams = {h.key: h for h in flatten_hparams(node.hparams)} if any(
            f.kind == "hparam" for f in wanted) else {}
        values: dict[str, Any] = {}
        for f in wanted:
            if f.kind == "hparam":
                values[f.text] = _hparam_value(hparams.get(f.key))
            elif f.kind == "metric":
                summary = summaries.get(node.id, {}).get(f.metric_type, {}).get(f.key)
                values[f.text] = getattr(summary, f.summary) if summary is not None else None
            else:
                values[f.text] = base[f.kind]
        out.append({"id": node.id, "name": node.name, "values": values})
    return out


def _hparam_value(h: Any) -> Any:
    if h is None:
        return None
    if h.kind == "bool":
        return bool(h.num)
    return h.num if h.kind == "number" else h.text


# ------------------------------------------------------------------------------------ groups

def _group_columns(by: query.Field, run: query.RunRef) -> tuple[list[tuple[Any, Any]], list[Any]]:
    """(outer joins, columns) that group the Runs ``run`` names by ``by``."""
    if by.kind == "hparam":
        h = aliased(RunHparam)
        return [(h, and_(run.rows_of(h), h.key == by.key))], [h.kind, h.num, h.text]
    if by.kind == "labels":
        label = aliased(RunLabel)
        return [(label, run.rows_of(label))], [label.label]
    if by.kind in ("status", "description"):
        return [], [getattr(RunFields, by.kind)]
    if by.kind == "name":
        return [], [Node.name]
    raise query.QueryError(f"cannot group by {by}: use status, name, description, labels or "
                           "hparams.<key>", by.position)


def _group_value(by: query.Field, values: tuple) -> Any:
    if by.kind != "hparam":
        return values[0]
    kind, num, text = values
    if kind == "bool":
        return bool(num)
    if kind == "number":
        return int(num) if float(num).is_integer() and abs(num) < 2 ** 53 else num
    return text


def group_filter(by: query.Field, value: Any) -> str:
    """The filter that selects one group's Runs (to AND with the search's filter)."""
    if by.kind == "labels":
        return "labels = null" if value is None else f"labels contains {query.format_literal(value)}"
    return f"{query.format_field(by)} = {query.format_literal(value)}"


def _aggregate(field: query.Field, run: query.RunRef) -> tuple[list[tuple[Any, Any]], Any]:
    if field.kind in ("labels", "name", "status", "description"):
        raise query.QueryError(f"cannot aggregate {field}: it is not a number", field.position)
    key = query.sort_key(field, False, run)
    return key.joins, key.columns[0]  # an hparam's numbers (its first column)


def groups(meta: MetadataStore, scope: Scope, filter_text: str | None, by_text: str,
           aggregate_texts: list[str], max_groups: int) -> dict[str, Any]:
    """Runs grouped by a field: per group its value, count, the filter that selects it, and
    mean/min/max/count of each aggregate field; largest groups first."""
    selection = query.parse_filter(filter_text).selection(scope.holds)
    by = query.parse_field(by_text)
    aggregates = [query.parse_field(text) for text in aggregate_texts]
    statement, run = _matches(scope, selection)
    joins, columns = _group_columns(by, run)
    agg_columns = []
    for field in aggregates:
        extra, column = _aggregate(field, run)
        joins += extra
        agg_columns.append(column)
    # Every join matches at most one row per Run (and group value), so count(*) counts Runs.
    stats = [f(c) for c in agg_columns for f in (func.avg, func.min, func.max, func.count)]
    statement = (_filtered(statement, run, selection, joins, *columns, *agg_columns)
                 .with_only_columns(*columns, func.count(), *stats)
                 .group_by(*columns)
                 .order_by(func.count().desc(), *[c.asc().nulls_last() for c in columns])
                 .limit(max_groups + 1))
    with _reading(meta) as s:
        rows = s.execute(statement).all()
        if by.kind == "labels" or len(rows) > max_groups:  # a Run in several groups, or not all
            total = _count(s, scope, selection)
        else:
            total = sum(row[len(columns)] for row in rows)
    out = []
    width = len(columns)
    for row in rows[:max_groups]:
        value = _group_value(by, tuple(row[:width]))
        stats = {}
        for i, field in enumerate(aggregates):
            mean, low, high, n = row[width + 1 + 4 * i: width + 5 + 4 * i]
            stats[field.text] = {"mean": mean, "min": low, "max": high, "count": n}
        out.append({"value": value, "count": row[width], "filter": group_filter(by, value),
                    "aggregates": stats})
    return {"by": by.text, "groups": out, "truncated": len(rows) > max_groups, "total": total}


# ------------------------------------------------------------------------------------ fields

def fields(meta: MetadataStore, scope: Scope) -> dict[str, Any]:
    """The fields a query or a column picker can use in this scope: builtins, every hparam key
    (with the kinds of its values) and every metric (type, name) seen in it."""
    with _reading(meta) as s:
        rows = s.execute(select(FolderField.kind, FolderField.key, FolderField.detail)
                         .where(FolderField.folder_id.in_(scope.folders()))
                         .distinct()).all()
    hparams: dict[str, set[str]] = {}
    metrics: set[tuple[str, str]] = set()
    for kind, key, detail in rows:
        if kind == "hparam":
            hparams.setdefault(key, set()).add(detail)
        else:
            metrics.add((key, detail))
    hparam_list = [{"key": k, "field": query.format_field(query.Field("hparam", "", 0, key=k)),
                    "types": sorted(v)} for k, v in sorted(hparams.items())]
    metric_list = [{"type": t, "name": n} for t, n in sorted(metrics)]
    return {"builtin": list(query.BUILTIN_FIELDS), "summaries": list(query.SUMMARY_FIELDS),
            "hparams": hparam_list, "metrics": metric_list,
            "fields": list(query.BUILTIN_FIELDS) + [h["field"] for h in hparam_list]
            + [f"{t}.{n}.{s}" for t, n in sorted(metrics) for s in query.SUMMARY_FIELDS]}


# ------------------------------------------------------------------------------------ series

def runs_series(stores: Stores, runs: list[NodeView], metric_type: str, metric: str, x: str,
                max_points: int) -> list[dict[str, Any]]:
    """One downsampled series per Run that has the metric (extremes kept, see ``downsample``)."""
    out = []
    for run in runs:
        series = _series(stores, run, metric_type, metric)
        if series is not None:
            out.append({**series_points(series, metric, x, max_points),  # its "name" is the run's
                        "id": run.id, "name": run.name, "path": run.path})
    return out


def _series(stores: Stores, run: NodeView, metric_type: str, metric: str) -> Any:
    obj = stores.meta.get_object(run.id, run_files.metric_index_path(metric_type))
    if obj is None:
        return None
    series = load_series(stores.meta, stores.blobs, obj, [metric])
    return series if metric in series.values else None


def group_bands(stores: Stores, scope: Scope, filter_text: str | None, by_text: str,
                metric_type: str, metric: str, x: str, max_points: int, max_groups: int,
                runs_per_group: int) -> dict[str, Any]:
    """Per group (largest first) the mean and min–max band of a metric over the group's Runs
    (up to ``runs_per_group`` of each, newest first), bucketed along ``x``."""
    grouped = groups(stores.meta, scope, filter_text, by_text, [], max_groups)
    out = []
    for group in grouped["groups"]:
        combined = group["filter"] if not filter_text else f"({filter_text}) and {group['filter']}"
        page = search(stores.meta, scope, combined, None, runs_per_group, None)
        xs, ys = [], []
        for run in page.nodes:
            series = _series(stores, run, metric_type, metric)
            if series is not None:
                xs.append(getattr(series, x))
                ys.append(series.values[metric])
        drawn = band(np.concatenate(xs) if xs else np.zeros(0),
                     np.concatenate(ys) if ys else np.zeros(0), max_points)
        out.append({"value": group["value"], "filter": group["filter"], "runs": group["count"],
                    "runs_used": len(xs), **drawn})
    return {"by": grouped["by"], "type": metric_type, "metric": metric, "x_axis": x,
            "groups": out, "truncated": grouped["truncated"]}
