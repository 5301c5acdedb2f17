"""A user's own API keys, and what an admin manages (users, keys, groups), over HTTP, so a team
needs no shell on the server.

Own keys: the same handlers under ``/apis/v1/keys`` (API key) and ``/api/ui/v1/keys`` (the web UI's
"API keys" page: session cookie and CSRF header):

| endpoint | does |
|---|---|
| ``GET /keys`` | ``{keys: [{id, name, prefix, created}]}``: the caller's active keys (first 8 characters only) |
| ``POST /keys`` ``{name}`` | a new key: ``{id, name, prefix, created, key}``; the key is in this reply only |
| ``DELETE /keys`` ``{id}`` | revokes one of the caller's keys and ends the web sessions opened with it |

Admins only (``403 permission denied`` for anyone else), under ``/apis/v1/admin``:

| endpoint | does |
|---|---|
| ``GET /users`` | ``{users: [{name, created, active_keys, admin}]}`` |
| ``POST /users`` ``{name, admin}`` | a user with a root Folder: ``{name, admin, key}`` |
| ``PUT /users`` ``{name, admin}`` | grants or takes the admin role |
| ``GET /keys?user=`` / ``POST /keys`` ``{user, name}`` / ``DELETE /keys`` ``{user, id}`` | a user's keys, as above |
| ``GET /groups`` / ``POST /groups`` ``{name}`` | ``{groups: [{name, members}]}`` / a new group |
| ``POST /groups/members`` / ``DELETE /groups/members`` ``{group, user}`` | membership |
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from .. import users
from ..errors import ApiError, permission_denied
from ..metadata_store import Conflict, KeyView, NotFound, UserView
from ..stores import Stores, get_stores
from .auth import current_user
from .common import body_schema, parse_body, read_json

api_router = APIRouter(prefix="/apis/v1", tags=["keys"])
ui_router = APIRouter(prefix="/api/ui/v1", tags=["keys"])
admin_router = APIRouter(prefix="/apis/v1/admin", tags=["admin"])


class NewKey(BaseModel):
    name: str = Field("", max_length=64, description="what the key is for, e.g. 'laptop'")


class KeyRef(BaseModel):
    id: int


class NewUserKey(NewKey):
    user: str


class UserKeyRef(KeyRef):
    user: str


class NewUser(BaseModel):
    name: str
    admin: bool = False


class GroupName(BaseModel):
    name: str


class Membership(BaseModel):
    group: str
    user: str


def _key_json(key: KeyView) -> dict[str, Any]:
    return {"id": key.id, "name": key.name, "prefix": key.prefix, "created": key.created_at.isoformat()}


async def _body(request: Request, stores: Stores, model: type[BaseModel]) -> Any:
    return parse_body(model, await read_json(request, stores.limits.max_json_bytes))


def _issue(stores: Stores, user_name: str, key_name: str) -> dict[str, Any]:
    try:
        key, view = users.add_key(stores.meta, user_name, key_name)
    except NotFound:
        raise ApiError(400, f"no user named {user_name!r}") from None
    return {**_key_json(view), "key": key}


def _revoke(stores: Stores, user_name: str, key_id: int) -> dict[str, Any]:
    try:
        stores.meta.revoke_key_id(user_name, key_id)
    except NotFound:
        raise ApiError(404, f"no active key {key_id} of {user_name!r}") from None
    return {"id": key_id, "revoked": True}


# ------------------------------------------------------------------------------- own keys

def own_keys(user: UserView = Depends(current_user), stores: Stores = Depends(get_stores)) -> dict:
    return {"keys": [_key_json(k) for k in stores.meta.list_keys(user.name)]}


async def create_own_key(request: Request, user: UserView = Depends(current_user),
                         stores: Stores = Depends(get_stores)) -> dict:
    body: NewKey = await _body(request, stores, NewKey)
    return await run_in_threadpool(_issue, stores, user.name, body.name)


async def revoke_own_key(request: Request, user: UserView = Depends(current_user),
                         stores: Stores = Depends(get_stores)) -> dict:
    body: KeyRef = await _body(request, stores, KeyRef)
    return await run_in_threadpool(_revoke, stores, user.name, body.id)


for _router in (api_router, ui_router):
    _router.add_api_route("/keys", own_keys, methods=["GET"], summary="The caller's active API keys")
    _router.add_api_route("/keys", create_own_key, methods=["POST"], openapi_extra=body_schema(NewKey),
                          summary="A new API key for the caller (shown in this reply only)")
    _router.add_api_route("/keys", revoke_own_key, methods=["DELETE"], openapi_extra=body_schema(KeyRef),
                          summary="Revoke one of the caller's API keys")


# ---------------------------------------------------------------------------------- admin

async def admin_user(user: UserView = Depends(current_user)) -> UserView:
    """FastAPI dependency: the caller, who must be an admin (403 otherwise)."""
    if not user.is_admin:
        raise permission_denied()
    return user


def _bad(exc: Exception) -> ApiError:
    return ApiError(400, str(exc))


@admin_router.get("/users", summary="Every user")
def list_users(_: UserView = Depends(admin_user), stores: Stores = Depends(get_stores)) -> dict:
    return {"users": [{"name": u.name, "created": u.created_at.isoformat(),
                       "active_keys": u.active_keys, "admin": u.is_admin}
                      for u in stores.meta.list_users()]}


@admin_router.post("/users", summary="Create a user (the key is in this reply only)",
                   openapi_extra=body_schema(NewUser))
async def create_user(request: Request, _: UserView = Depends(admin_user),
                      stores: Stores = Depends(get_stores)) -> dict:
    body: NewUser = await _body(request, stores, NewUser)
    try:
        key = await run_in_threadpool(users.add_user, stores.meta, body.name, body.admin)
    except ValueError as exc:
        raise _bad(exc) from None
    except Conflict:
        raise ApiError(400, f"user {body.name!r} already exists") from None
    return {"name": body.name, "admin": body.admin, "key": key}


@admin_router.put("/users", summary="Grant or take the admin role", openapi_extra=body_schema(NewUser))
async def set_admin(request: Request, _: UserView = Depends(admin_user),
                    stores: Stores = Depends(get_stores)) -> dict:
    body: NewUser = await _body(request, stores, NewUser)
    try:
        await run_in_threadpool(stores.meta.set_admin, body.name, body.admin)
    except NotFound:
        raise ApiError(400, f"no user named {body.name!r}") from None
    return {"name": body.name, "admin": body.admin}


@admin_router.get("/keys", summary="A user's active keys")
def user_keys(user: str = Query(...), _: UserView = Depends(admin_user),
              stores: Stores = Depends(get_stores)) -> dict:
    return {"keys": [_key_json(k) for k in stores.meta.list_keys(user)]}


@admin_router.post("/keys", summary="A new key for a user (shown in this reply only)",
                   openapi_extra=body_schema(NewUserKey))
async def create_user_key(request: Request, _: UserView = Depends(admin_user),
                          stores: Stores = Depends(get_stores)) -> dict:
    body: NewUserKey = await _body(request, stores, NewUserKey)
    return await run_in_threadpool(_issue, stores, body.user, body.name)


@admin_router.delete("/keys", summary="Revoke a user's key", openapi_extra=body_schema(UserKeyRef))
async def revoke_user_key(request: Request, _: UserView = Depends(admin_user),
                          stores: Stores = Depends(get_stores)) -> dict:
    body: UserKeyRef = await _body(request, stores, UserKeyRef)
    return await run_in_threadpool(_revoke, stores, body.user, body.id)


@admin_router.get("/groups", summary="Every group and its members")
def list_groups(_: UserView = Depends(admin_user), stores: Stores = Depends(get_stores)) -> dict:
    return {"groups": [{"name": g.name, "members": g.members} for g in stores.meta.list_groups()]}


@admin_router.post("/groups", summary="Create a group", openapi_extra=body_schema(GroupName))
async def create_group(request: Request, _: UserView = Depends(admin_user),
                       stores: Stores = Depends(get_stores)) -> dict:
    body: GroupName = await _body(request, stores, GroupName)
    try:
        await run_in_threadpool(users.add_group, stores.meta, body.name)
    except ValueError as exc:
        raise _bad(exc) from None
    except Conflict:
        raise ApiError(400, f"group {body.name!r} already exists") from None
    return {"name": body.name, "members": []}


async def _membership(request: Request, stores: Stores, member: bool) -> dict:
    body: Membership = await _body(request, stores, Membership)
    try:
        changed = await run_in_threadpool(stores.meta.set_member, body.group, body.user, member)
    except NotFound as exc:
        raise ApiError(400, f"no {exc.args[0]}") from None
    return {"group": body.group, "user": body.user, "member": member, "changed": changed}


@admin_router.post("/groups/members", summary="Add a user to a group", openapi_extra=body_schema(Membership))
async def add_member(request: Request, _: UserView = Depends(admin_user),
                     stores: Stores = Depends(get_stores)) -> dict:
    return await _membership(request, stores, True)


@admin_router.delete("/groups/members", summary="Remove a user from a group",
                     openapi_extra=body_schema(Membership))
async def remove_member(request: Request, _: UserView = Depends(admin_user),
                        stores: Stores = Depends(get_stores)) -> dict:
    return await _membership(request, stores, False)
