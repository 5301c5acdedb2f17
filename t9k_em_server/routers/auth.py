"""Authentication: who is calling, and ``GET /oauth2/userinfo``.

Credentials, in order: ``Authorization: Bearer KEY``, the query parameter ``apikey=KEY`` (the
0.6.0b0 client), the web UI's session cookie. Failures:

- Bearer with an unknown/revoked key, or no credentials at all: ``401`` (``WWW-Authenticate: Bearer``).
- ``?apikey=`` with an unknown/revoked key: ``400`` with body ``api key not found\\n``, which the
  0.6.0b0 client turns into ``RuntimeError('API Key not found')`` (spec server-api §2).
- ``?apikey=`` empty: ``400`` ``query is needed: apikey`` (the client's "Empty string" error).
- a stale session cookie: ``401``.

A key that checked out is remembered for a few seconds (``users.KeyCache``): revoking it takes
effect within ``EM_SERVER_KEY_CACHE_SECONDS`` (default 5).
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from ..errors import ApiError
from ..metadata_store import UserView
from ..stores import Stores, get_stores
from ..users import authenticate, cached_user, hash_key

SESSION_COOKIE = "em_session"

router = APIRouter(tags=["auth"])


def _unauthorized(text: str) -> ApiError:
    return ApiError(401, text, headers={"WWW-Authenticate": "Bearer"})


async def _user_of_key(stores: Stores, key: str) -> UserView | None:
    """The key's user: from the key cache when fresh, else from the database (in a worker)."""
    return cached_user(stores.keys, key) or await run_in_threadpool(
        authenticate, stores.meta, key, stores.keys)


async def current_user(request: Request, stores: Stores = Depends(get_stores)) -> UserView:
    """FastAPI dependency: the authenticated user, or the error described in the module doc."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("invalid Authorization header: use 'Bearer <api key>'")
        user = await _user_of_key(stores, token.strip())
        if user is None:
            raise _unauthorized("invalid api key")
        return user
    if "apikey" in request.query_params:
        key = request.query_params["apikey"]
        if not key:
            raise ApiError(400, "query is needed: apikey")
        user = await _user_of_key(stores, key)
        if user is None:
            raise ApiError(400, "api key not found\n")
        return user
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        user = await run_in_threadpool(stores.meta.user_by_session, hash_key(token))
        if user is None:
            raise _unauthorized("session expired: log in again")
        return user
    raise _unauthorized("authentication required: send 'Authorization: Bearer <api key>'")


@router.get("/oauth2/userinfo", summary="The calling user (spec §5.1)")
def userinfo(user: UserView = Depends(current_user)) -> dict:
    return {"preferred_username": user.name, "sub": str(user.id), "name": user.name}
