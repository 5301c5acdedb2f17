"""Authentication: who is calling, and ``GET /oauth2/userinfo``.

Credentials, in order: ``Authorization: Bearer KEY``, the query parameter ``apikey=KEY`` (the
0.6.0b0 client), the web UI's session cookie. Failures:

- Bearer with an unknown/revoked key, or no credentials at all: ``401`` (``WWW-Authenticate: Bearer``).
- ``?apikey=`` with an unknown/revoked key: ``400`` with body ``api key not found\\n``, which the
  0.6.0b0 client turns into ``RuntimeError('API Key not found')`` (spec server-api §2).
- ``?apikey=`` empty: ``400`` ``query is needed: apikey`` (the client's "Empty string" error).
- a stale session cookie: ``401``.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from ..errors import ApiError
from ..metadata_store import UserView
from ..stores import Stores, get_stores
from ..users import authenticate, hash_key

SESSION_COOKIE = "em_session"

router = APIRouter(tags=["auth"])


def _unauthorized(text: str) -> ApiError:
    return ApiError(401, text, headers={"WWW-Authenticate": "Bearer"})


def current_user(request: Request, stores: Stores = Depends(get_stores)) -> UserView:
    """FastAPI dependency: the authenticated user, or the error described in the module doc."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("invalid Authorization header: use 'Bearer <api key>'")
        user = authenticate(stores.meta, token.strip())
        if user is None:
            raise _unauthorized("invalid api key")
        return user
    if "apikey" in request.query_params:
        key = request.query_params["apikey"]
        if not key:
            raise ApiError(400, "query is needed: apikey")
        user = authenticate(stores.meta, key)
        if user is None:
            raise ApiError(400, "api key not found\n")
        return user
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        user = stores.meta.user_by_session(hash_key(token))
        if user is None:
            raise _unauthorized("session expired: log in again")
        return user
    raise _unauthorized("authentication required: send 'Authorization: Bearer <api key>'")


@router.get("/oauth2/userinfo", summary="The calling user (spec §5.1)")
def userinfo(user: UserView = Depends(current_user)) -> dict:
    return {"preferred_username": user.name, "sub": str(user.id), "name": user.name}
