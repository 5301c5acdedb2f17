"""Moving nodes, the trash and the audit trail: the same handlers under ``/apis/v1`` (API key) and ``/api/ui/v1``
(the web UI: session cookie and CSRF header). Editing labels and descriptions, and deleting into
the trash, are ``PUT``/``DELETE /nodes`` (``routers/nodes.py``).

| endpoint | needs | does |
|---|---|---|
| ``POST /nodes/move`` ``{node, to}`` | editor of the node's Folder and of ``to`` | moves a node with its subtree into the Folder ``to`` |
| ``GET /trash`` | | ``{items: [{id, name, type, path, deleted_by, deleted_at, expires_at}]}``: what the caller may restore (editor of the Folder it was in) |
| ``POST /trash/restore`` ``{id}`` | editor of the Folder it was in | puts it back (``400`` when that Folder is gone or the name taken) |
| ``GET /audit?folder=&user=&action=&limit=&before=`` | owner of the Folder | ``{events: [{id, at, user, action, node, path, to, detail}]}`` on it and below, newest first (``audit.py``) |

``em server gc`` frees what was trashed more than ``EM_SERVER_TRASH_DAYS`` (30) days ago.
"""
from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from .. import audit
from ..access import Role, node_for, parent_for, roles_of
from ..config import trash_days
from ..errors import ApiError, conflict, node_not_found, permission_denied
from ..metadata_store import Conflict, NotFound, TrashView, UserView
from ..stores import Stores, get_stores
from .auth import current_user
from .common import body_schema, node_json, parse_body, read_json

api_router = APIRouter(prefix="/apis/v1", tags=["edits"])
ui_router = APIRouter(prefix="/api/ui/v1", tags=["edits"])


class Move(BaseModel):
    node: str
    to: str


class TrashRef(BaseModel):
    id: str


def _move(stores: Stores, user: UserView, body: Move) -> dict:
    node = node_for(stores.meta, user, body.node)
    parent_for(stores.meta, user, node, Role.EDITOR)
    folder = node_for(stores.meta, user, body.to, Role.EDITOR)
    if folder.type != "Folder":
        raise ApiError(400, f"{folder.path} is a {folder.type}: nodes move into Folders")
    try:
        moved = stores.meta.move_node(node.id, folder.id)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    except Conflict:
        raise conflict(node.name) from None
    except NotFound:
        raise node_not_found(body.node) from None
    audit.record(stores.meta, user, "move", node, moved.path)
    return node_json(moved)


async def move_node(request: Request, user: UserView = Depends(current_user),
                    stores: Stores = Depends(get_stores)) -> dict:
    body = parse_body(Move, await read_json(request, stores.limits.max_json_bytes))
    return await run_in_threadpool(_move, stores, user, body)


def _trash_roles(stores: Stores, user: UserView) -> list[tuple[TrashView, Role]]:
    """Every trash entry with the user's role on the Folder it was in."""
    entries = stores.meta.trash_entries()
    folders = stores.meta.get_nodes([e.parent_id for e in entries])
    roles = roles_of(stores.meta, user, folders.values())
    return [(e, roles.get(e.parent_id, Role.NONE)) for e in entries]


def trash_list(user: UserView = Depends(current_user), stores: Stores = Depends(get_stores)) -> dict:
    keep = timedelta(days=trash_days())
    return {"items": [{"id": e.node_id, "name": e.name, "type": e.type, "path": e.path,
                       "deleted_by": e.deleted_by, "deleted_at": e.deleted_at.isoformat(),
                       "expires_at": (e.deleted_at + keep).isoformat()}
                      for e, role in _trash_roles(stores, user) if role >= Role.EDITOR]}


def _restore(stores: Stores, user: UserView, body: TrashRef) -> dict:
    role = next((r for e, r in _trash_roles(stores, user) if e.node_id == body.id), Role.NONE)
    if role == Role.NONE:  # as for an id never trashed: the user cannot see where it was
        raise ApiError(404, f"node not found [{body.id}]")
    if role < Role.EDITOR:
        raise permission_denied()
    try:
        restored = stores.meta.restore(body.id)
    except NotFound as exc:
        raise ApiError(400, f"cannot restore: the Folder {exc.args[0]} is gone") from None
    except Conflict as exc:
        raise ApiError(400, f"cannot restore: {exc.args[0]!r} exists in its Folder again") from None
    audit.record(stores.meta, user, "restore", restored)
    return node_json(restored)


async def restore(request: Request, user: UserView = Depends(current_user),
                  stores: Stores = Depends(get_stores)) -> dict:
    body = parse_body(TrashRef, await read_json(request, stores.limits.max_json_bytes))
    return await run_in_threadpool(_restore, stores, user, body)


def audit_events(folder: str = Query(..., description="path or id of a Folder"),
                 user: str | None = Query(None, description="only what this user did"),
                 action: str | None = Query(None, description="|".join(audit.ACTIONS)),
                 limit: int = Query(100, ge=1, le=1000),
                 before: int | None = Query(None, description="the id of the last event of the page before"),
                 caller: UserView = Depends(current_user), stores: Stores = Depends(get_stores)) -> dict:
    if action is not None and action not in audit.ACTIONS:
        raise ApiError(400, f"action must be one of {', '.join(audit.ACTIONS)}")
    node = node_for(stores.meta, caller, folder, Role.OWNER)
    events = stores.meta.events_under(node.path, user, action, limit, before)
    return {"folder": {"id": node.id, "path": node.path},
            "events": [{"id": e.id, "at": e.at.isoformat(), "user": e.user, "action": e.action,
                        "node": e.node_id, "path": e.path, "to": e.path_to, "detail": e.detail}
                       for e in events]}


for _router in (api_router, ui_router):
    _router.add_api_route("/audit", audit_events, methods=["GET"],
                          summary="Who shared, edited, moved, deleted or restored what below a Folder (its owner)")
    _router.add_api_route("/nodes/move", move_node, methods=["POST"], openapi_extra=body_schema(Move),
                          summary="Move a node with its subtree into another Folder")
    _router.add_api_route("/trash", trash_list, methods=["GET"],
                          summary="What the caller may restore from the trash")
    _router.add_api_route("/trash/restore", restore, methods=["POST"], openapi_extra=body_schema(TrashRef),
                          summary="Put a trashed node back where it was")
