"""Run search: the same handlers under ``/apis/v1/search`` (API key: the SDK and the CLI) and
``/api/ui/v1/search`` (the web UI's session cookie). The contract is in docs/server.md
("Searching runs"); the query language in ``query.py``.

| endpoint | returns |
|---|---|
| ``GET /runs?folder=&recursive=&filter=&order_by=…&page_size=&page_token=`` | ``{runs, total, next_page_token}`` |
| ``GET /runs?…&fields=…`` (pages up to 10,000) | ``runs`` as ``{id, name, values: {field: value}}`` (plots of many runs) |
| ``GET /groups?folder=&recursive=&filter=&by=&aggregate=…&max_groups=`` | ``{by, groups: [{value, count, filter, aggregates}], truncated, total}`` |
| ``GET /fields?folder=&recursive=`` | ``{builtin, summaries, hparams, metrics, fields}`` |
| ``GET /series?run=…&type=&metric=&x=&max_points=`` | ``{series: [{id, name, path, x, y, total, returned}]}`` |
| ``GET /series?folder=&filter=&by=&type=&metric=…`` | ``{groups: [{value, filter, runs, runs_used, x, mean, min, max, total}]}`` |

A bad query is a 400 whose text starts ``position N:`` and whose ``X-Query-Position`` header
holds N (1-based; 0 when the problem is not at one place).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Query

from .. import run_search
from ..access import node_for
from ..errors import ApiError
from ..metadata_store import UserView
from ..query import QueryError
from ..series import X_AXES
from ..stores import Stores, get_stores
from .auth import current_user

api_router = APIRouter(prefix="/apis/v1/search", tags=["search"])
ui_router = APIRouter(prefix="/api/ui/v1/search", tags=["search"])

MAX_PAGE_SIZE = 1000
MAX_VALUES_PAGE_SIZE = 10_000  #: pages of lean rows (``fields=``): a parallel-coordinates plot
MAX_VALUE_FIELDS = 32
MAX_SERIES_RUNS = 100
MAX_BAND_GROUPS = 20
MAX_RUNS_PER_GROUP = 500

FOLDER = Query(None, description="Folder path or id (the user's or one shared with them); "
                                "default: the user's root")
RECURSIVE = Query(False, description="also the Runs of every Folder below it")
FILTER = Query("", description="query language, e.g. hparams.lr <= 0.01 and val.accuracy.max > 0.9")


def _scope(stores: Stores, user: UserView, folder: str | None, recursive: bool) -> run_search.Scope:
    node = node_for(stores.meta, user, folder or f"/{user.name}")
    if node.type != "Folder":
        raise ApiError(400, f"{node.path} is a {node.type}, not a Folder")
    return run_search.Scope(node.id, recursive)


def _answer(action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return action()
    except QueryError as exc:
        raise ApiError(400, str(exc), {"X-Query-Position": str(exc.position)}) from None


def search_runs(folder: str | None = FOLDER, recursive: bool = RECURSIVE, filter: str = FILTER,
                order_by: list[str] = Query([], description="field [asc|desc], repeatable; "
                                                            "default start desc"),
                page_size: int = Query(50, ge=1, le=MAX_VALUES_PAGE_SIZE,
                                       description=f"up to {MAX_PAGE_SIZE}; {MAX_VALUES_PAGE_SIZE} "
                                                   "with fields="),
                page_token: str | None = Query(None, description="next_page_token of the page before"),
                fields: list[str] = Query([], description="only these fields: rows {id, name, values}"),
                user: UserView = Depends(current_user), stores: Stores = Depends(get_stores)) -> dict:
    if len(fields) > MAX_VALUE_FIELDS:
        raise ApiError(400, f"fields= takes at most {MAX_VALUE_FIELDS} fields")
    if page_size > MAX_PAGE_SIZE and not fields:
        raise ApiError(400, f"page_size is at most {MAX_PAGE_SIZE} (or {MAX_VALUES_PAGE_SIZE} with fields=)")
    scope = _scope(stores, user, folder, recursive)

    def run() -> dict[str, Any]:
        page = run_search.search(stores.meta, scope, filter, order_by, page_size, page_token)
        rows = (run_search.field_values(stores.meta, page.nodes, fields) if fields
                else run_search.records(stores.meta, page.nodes))
        return {"runs": rows, "total": page.total, "next_page_token": page.next_page_token}
    return _answer(run)


def group_runs(folder: str | None = FOLDER, recursive: bool = RECURSIVE, filter: str = FILTER,
               by: str = Query(..., description="status, name, description, labels or hparams.<key>"),
               aggregate: list[str] = Query([], description="numeric field, repeatable, e.g. "
                                                            "val.accuracy.max"),
               max_groups: int = Query(1000, ge=1, le=10_000),
               user: UserView = Depends(current_user), stores: Stores = Depends(get_stores)) -> dict:
    scope = _scope(stores, user, folder, recursive)
    return _answer(lambda: run_search.groups(stores.meta, scope, filter, by, aggregate, max_groups))


def search_fields(folder: str | None = FOLDER, recursive: bool = RECURSIVE,
                  user: UserView = Depends(current_user), stores: Stores = Depends(get_stores)) -> dict:
    return run_search.fields(stores.meta, _scope(stores, user, folder, recursive))


def many_series(type: str = Query(..., description="metric type, e.g. val"),
                metric: str = Query(..., description="metric name, e.g. loss"),
                x: str = Query("step", description="|".join(X_AXES)),
                max_points: int = Query(1000, ge=2, le=100_000),
                run: list[str] = Query([], description=f"Run ids, up to {MAX_SERIES_RUNS}"),
                folder: str | None = FOLDER, recursive: bool = RECURSIVE, filter: str = FILTER,
                by: str | None = Query(None, description="group by this field: one mean + min–max "
                                                         "band per group instead of runs"),
                max_groups: int = Query(10, ge=1, le=MAX_BAND_GROUPS),
                runs_per_group: int = Query(100, ge=1, le=MAX_RUNS_PER_GROUP),
                user: UserView = Depends(current_user), stores: Stores = Depends(get_stores)) -> dict:
    if x not in X_AXES:
        raise ApiError(400, f"x must be one of {', '.join(X_AXES)}")
    if by:
        scope = _scope(stores, user, folder, recursive)
        return _answer(lambda: run_search.group_bands(stores, scope, filter, by, type, metric, x,
                                                      max_points, max_groups, runs_per_group))
    if not run or len(run) > MAX_SERIES_RUNS:
        raise ApiError(400, f"give 1 to {MAX_SERIES_RUNS} run ids (run=…), or by=")
    runs = [node_for(stores.meta, user, ref, type_="Run") for ref in dict.fromkeys(run)]
    return {"type": type, "metric": metric, "x_axis": x,
            "series": run_search.runs_series(stores, runs, type, metric, x, max_points)}


for _router in (api_router, ui_router):
    _router.add_api_route("/runs", search_runs, methods=["GET"],
                          summary="Runs matching a query: one page (keyset) and the total")
    _router.add_api_route("/groups", group_runs, methods=["GET"],
                          summary="Runs grouped by a field, with counts and aggregates")
    _router.add_api_route("/fields", search_fields, methods=["GET"],
                          summary="Hparam keys and metric summaries seen in a folder")
    _router.add_api_route("/series", many_series, methods=["GET"],
                          summary="One metric of many Runs (or per group a mean and band), downsampled")
