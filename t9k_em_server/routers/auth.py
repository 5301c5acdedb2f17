"""Authentication: who is calling, and ``GET /oauth2/userinfo``.

Credentials, in order: ``Authorization: Bearer KEY``, the query parameter ``apikey=KEY`` (the
0.6.0b0 client; only that literal name: ``api%6Bey`` is not a key parameter), the web UI's
session cookie. The cookie is accepted only on the web UI's JSON API (``/api/ui/``); the API-key
endpoints (``/apis/v1/*``, ``/oauth2/userinfo``) do not take it at all, so no page can make a
browser write there with the user's session. On the UI JSON API a cookie-authenticated request
with an unsafe method (not GET/HEAD/OPTIONS) must carry the header ``X-EM-CSRF`` equal to the
session's CSRF token (``csrf_token``; pages render it in ``<html data-csrf>``): a form cannot send
a custom header, and a cross-origin script cannot without a CORS preflight the server never
grants. (Cross-origin unsafe requests are also refused earlier, by ``guards.RequestGuard``.)

Failures:

- Bearer with an unknown/revoked key, or no credentials at all: ``401`` (``WWW-Authenticate: Bearer``).
- ``?apikey=`` with an unknown/revoked key: ``400`` with body ``api key not found\\n``, which the
  0.6.0b0 client turns into ``RuntimeError('API Key not found')`` (spec server-api §2).
- ``?apikey=`` empty: ``400`` ``query is needed: apikey`` (the client's "Empty string" error);
  given twice: ``400``.
- a stale session cookie: ``401``; a session cookie on an API-key endpoint: ``401`` saying so;
  a missing or wrong ``X-EM-CSRF``: ``403``.

A key that checked out is remembered for a few seconds (``users.KeyCache``): revoking it takes
effect within ``EM_SERVER_KEY_CACHE_SECONDS`` (default 5).
"""
from __future__ import annotations

import hashlib
import hmac
from urllib.parse import unquote_plus

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from ..errors import ApiError
from ..metadata_store import UserView
from ..stores import Stores, get_stores
from ..users import authenticate, cached_user, hash_key

SESSION_COOKIE = "em_session"
CSRF_HEADER = "X-EM-CSRF"
COOKIE_PREFIX = "/api/ui/"  #: the only paths where the session cookie authenticates
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

router = APIRouter(tags=["auth"])


def _unauthorized(text: str) -> ApiError:
    return ApiError(401, text, headers={"WWW-Authenticate": "Bearer"})


async def _user_of_key(stores: Stores, key: str) -> UserView | None:
    """The key's user: from the key cache when fresh, else from the database (in a worker)."""
    return cached_user(stores.keys, key) or await run_in_threadpool(
        authenticate, stores.meta, key, stores.keys)


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: derived from its (HttpOnly) cookie value, so it needs no
    storage and no other site can compute it."""
    return hashlib.sha256(b"em-csrf\0" + session_token.encode()).hexdigest()


def query_apikey(request: Request) -> str | None:
    """The value of the literal query parameter ``apikey`` (None when absent; 400 if twice).

    Read from the raw query string: a percent-encoded spelling of the name (``api%6Bey``) is not
    the key parameter, so no second spelling can slip past log redaction."""
    values = [value for name, _, value in
              (piece.partition(b"=") for piece in request.scope.get("query_string", b"").split(b"&"))
              if name == b"apikey"]
    if len(values) > 1:
        raise ApiError(400, "apikey given more than once")
    return unquote_plus(values[0].decode("ascii", "replace")) if values else None


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
    key = query_apikey(request)
    if key is not None:
        if not key:
            raise ApiError(400, "query is needed: apikey")
        user = await _user_of_key(stores, key)
        if user is None:
            raise ApiError(400, "api key not found\n")
        return user
    token = request.cookies.get(SESSION_COOKIE)
    if token and not request.url.path.startswith(COOKIE_PREFIX):
        raise _unauthorized("this endpoint takes an API key ('Authorization: Bearer <api key>'), "
                            "not the web UI's session cookie")
    if token:
        if request.method not in SAFE_METHODS and not hmac.compare_digest(
                request.headers.get(CSRF_HEADER, "").encode("latin-1"), csrf_token(token).encode()):
            raise ApiError(403, f"missing or wrong {CSRF_HEADER} header (the page's CSRF token)")
        user = await run_in_threadpool(stores.meta.user_by_session, hash_key(token))
        if user is None:
            raise _unauthorized("session expired: log in again")
        return user
    raise _unauthorized("authentication required: send 'Authorization: Bearer <api key>'")


@router.get("/oauth2/userinfo", summary="The calling user (spec §5.1)")
def userinfo(user: UserView = Depends(current_user)) -> dict:
    return {"preferred_username": user.name, "sub": str(user.id), "name": user.name}
