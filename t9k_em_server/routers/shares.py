"""Sharing Folders: the same handlers under ``/apis/v1`` (API key) and ``/api/ui/v1`` (the web
UI's session cookie, with its CSRF header on writes). The model is ``access``'s.

| endpoint | who | does |
|---|---|---|
| ``GET /shares?folder=`` | owner, admin | ``{folder, shares: [{kind, name, role, created}]}`` |
| ``POST /shares`` ``{folder, user or group, role}`` | owner, admin | share (or change the role): ``viewer`` or ``editor`` |
| ``DELETE /shares`` ``{folder, user or group}`` | owner, admin | revoke |
| ``GET /shared`` | anyone | ``{folders: [{id, name, path, role, owner}]}``: "Shared with me" |
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from .. import audit
from ..access import SHARE_ROLES, Role, node_for
from ..errors import ApiError
from ..metadata_store import NodeView, NotFound, ShareView, UserView
from ..stores import Stores, get_stores
from .auth import current_user
from .common import body_schema, parse_body, read_json

api_router = APIRouter(prefix="/apis/v1", tags=["sharing"])
ui_router = APIRouter(prefix="/api/ui/v1", tags=["sharing"])


class Grantee(BaseModel):
    """Body of ``DELETE /shares``: a Folder and exactly one of ``user``/``group``."""

    folder: str = Field(description="path or id of a Folder")
    user: str | None = None
    group: str | None = None

    def kind_and_name(self) -> tuple[str, str]:
        if (self.user is None) == (self.group is None):
            raise ApiError(400, "give exactly one of 'user' and 'group'")
        return ("user", self.user) if self.user is not None else ("group", self.group or "")


class ShareRequest(Grantee):
    """Body of ``POST /shares``."""

    role: str = Field(description="viewer or editor")


def _shared_folder(stores: Stores, user: UserView, ref: str) -> NodeView:
    folder = node_for(stores.meta, user, ref, Role.OWNER)
    if folder.type != "Folder":
        raise ApiError(400, f"{folder.path} is a {folder.type}: only Folders are shared")
    return folder


def _share_json(share: ShareView) -> dict:
    return {"kind": share.kind, "name": share.name, "role": share.role,
            "created": share.created_at.isoformat()}


def list_shares(folder: str = Query(..., description="path or id of a Folder"),
                user: UserView = Depends(current_user),
                stores: Stores = Depends(get_stores)) -> dict:
    node = _shared_folder(stores, user, folder)
    return {"folder": {"id": node.id, "path": node.path},
            "shares": [_share_json(s) for s in stores.meta.shares_of(node.id)]}


def _grant(stores: Stores, user: UserView, body: ShareRequest) -> dict:
    kind, name = body.kind_and_name()
    if body.role not in SHARE_ROLES:
        raise ApiError(400, f"invalid role {body.role!r}: use one of {', '.join(SHARE_ROLES)}")
    node = _shared_folder(stores, user, body.folder)
    try:
        share = stores.meta.share(node.id, kind, name, body.role)
    except NotFound:
        raise ApiError(400, f"no {kind} named {name!r}") from None
    audit.record(stores.meta, user, "share", node, detail={kind: name, "role": body.role})
    return {"folder": {"id": node.id, "path": node.path}, **_share_json(share)}


async def add_share(request: Request, user: UserView = Depends(current_user),
                    stores: Stores = Depends(get_stores)) -> dict:
    body = parse_body(ShareRequest, await read_json(request, stores.limits.max_json_bytes))
    return await run_in_threadpool(_grant, stores, user, body)


def _revoke(stores: Stores, user: UserView, body: Grantee) -> dict:
    kind, name = body.kind_and_name()
    node = _shared_folder(stores, user, body.folder)
    try:
        revoked = stores.meta.unshare(node.id, kind, name)
    except NotFound:
        raise ApiError(400, f"no {kind} named {name!r}") from None
    if revoked:
        audit.record(stores.meta, user, "unshare", node, detail={kind: name})
    return {"folder": {"id": node.id, "path": node.path}, "kind": kind, "name": name,
            "revoked": revoked}


async def remove_share(request: Request, user: UserView = Depends(current_user),
                       stores: Stores = Depends(get_stores)) -> dict:
    body = parse_body(Grantee, await read_json(request, stores.limits.max_json_bytes))
    return await run_in_threadpool(_revoke, stores, user, body)


def shared_with_me(user: UserView = Depends(current_user),
                   stores: Stores = Depends(get_stores)) -> dict:
    shared = [(n, roles) for n, roles in stores.meta.shared_with(user.id) if n.owner_id != user.id]
    owners = stores.meta.get_users({n.owner_id for n, _ in shared})
    folders = []
    for node, roles in shared:
        role = max(SHARE_ROLES[r] for r in roles if r in SHARE_ROLES)
        folders.append({"id": node.id, "name": node.name, "path": node.path,
                        "role": role.name.lower(),
                        "owner": owners[node.owner_id].name if node.owner_id in owners else None})
    return {"folders": folders}


for _router in (api_router, ui_router):
    _router.add_api_route("/shares", list_shares, methods=["GET"],
                          summary="Who a Folder is shared with (owner, admin)")
    _router.add_api_route("/shares", add_share, methods=["POST"],
                          summary="Share a Folder with a user or group as viewer or editor",
                          openapi_extra=body_schema(ShareRequest))
    _router.add_api_route("/shares", remove_share, methods=["DELETE"],
                          summary="Revoke a user's or group's share of a Folder",
                          openapi_extra=body_schema(Grantee))
    _router.add_api_route("/shared", shared_with_me, methods=["GET"],
                          summary="Folders shared with the caller (\"Shared with me\")")
