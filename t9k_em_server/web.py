"""The web UI: sign-in/out with a session cookie, and the HTML pages.

Each page is a small server-rendered shell (``templates/page.html``) whose script
(``static/js/<page>.js``) fills it from the UI JSON API (``/api/ui/v1``). Every script and
stylesheet is served from the package's ``static/`` folder (uPlot is vendored there), so the UI
works without any CDN. The session cookie set here authenticates the browser on the UI JSON API
only (``routers/auth.py``); object downloads go through ``/api/ui/v1/objects``.

A session is a random token in an HttpOnly, SameSite=Lax cookie; the metadata store keeps only
its SHA-256 and expiry, so signing out (or revoking the user's keys) ends it server-side. A user
has at most ``MAX_SESSIONS`` sessions: signing in again evicts the oldest.

Forms are CSRF-safe on top of ``guards.RequestGuard``'s refusal of cross-origin writes:

- sign-in (login CSRF: a foreign form signing the victim in as the attacker): the form carries a
  random token that must equal the ``em_signin`` cookie set with the form;
- sign-out is a POST carrying the session's CSRF token (``auth.csrf_token``), never a GET.

Failed sign-ins are rate limited per client address (``SigninThrottle``: 10 a minute, then
``429``). No URL the server builds carries an API key: the ``next`` of the sign-in redirect
drops ``apikey`` parameters (``logredact.without_key_params``).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import timedelta
from os import PathLike
from pathlib import Path
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.types import Scope

from .access import Role, role_of
from .logredact import without_key_params
from .metadata_store import UserView, utcnow
from .routers.auth import SESSION_COOKIE, csrf_token
from .stores import Stores, get_stores
from .users import authenticate, hash_key

UI = "/ui"
API = "/api/ui/v1"
STATIC_DIR = Path(__file__).parent / "static"
TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
SESSION_TTL = timedelta(days=7)
MAX_SESSIONS = 10            #: sessions per user; the oldest is evicted
SIGNIN_COOKIE = "em_signin"  #: the sign-in form's anti-CSRF token


def _static_version() -> str:
    """A hash of the static files' contents: versioned URLs (``?v=``) change with any file."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(STATIC_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


VERSION = _static_version()


def static_url(name: str) -> str:
    """The versioned URL of a static file (cached by browsers for a year)."""
    return f"{UI}/static/{name}?v={VERSION}"


# Page modules import each other by plain relative paths ("./common.js"); this import map sends
# those imports to the versioned URLs too, so no module is ever revalidated or mixed across versions.
IMPORT_MAP = {"imports": {f"{UI}/static/js/{p.name}": static_url(f"js/{p.name}")
                          for p in sorted((STATIC_DIR / "js").glob("*.js"))}}


class _StaticFiles(StaticFiles):
    """Static files: a versioned URL is immutable, an unversioned one is revalidated each time."""

    def file_response(self, full_path: PathLike, stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        versioned = f"v={VERSION}".encode() in scope.get("query_string", b"").split(b"&")
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable" if versioned else "no-cache"
        return response


TEMPLATES.env.globals.update(ui_prefix=UI, api_prefix=API, static=static_url, import_map=IMPORT_MAP)

router = APIRouter(include_in_schema=False)
router.mount(f"{UI}/static", _StaticFiles(directory=STATIC_DIR), name="ui-static")


def session_user(request: Request, stores: Stores) -> UserView | None:
    """The user of the request's session cookie, or None (no cookie, unknown or expired)."""
    token = request.cookies.get(SESSION_COOKIE)
    return stores.meta.user_by_session(hash_key(token)) if token else None


class SigninThrottle:
    """At most ``limit`` failed sign-ins per client address in ``window`` seconds (in-process: with
    several server processes, each counts its own)."""

    def __init__(self, limit: int = 10, window: float = 60.0, max_clients: int = 10_000):
        self.limit, self.window, self.max_clients = limit, window, max_clients
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.get(client, deque())
        while times and times[0] < now - self.window:
            times.popleft()
        return times

    def wait_seconds(self, client: str) -> int:
        """0 if ``client`` may try now, else how long until it may."""
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            return 0 if len(times) < self.limit else int(times[0] + self.window - now) + 1

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) >= self.max_clients:
                self._failures.clear()
            times = self._recent(client, now)
            times.append(now)
            self._failures[client] = times


SIGNIN_THROTTLE = SigninThrottle()


def _start_session(request: Request, response: Response, stores: Stores, user: UserView,
                   key_id: int | None) -> None:
    token = secrets.token_urlsafe(32)
    stores.meta.create_session(hash_key(token), user.id, key_id, utcnow() + SESSION_TTL, MAX_SESSIONS)
    response.set_cookie(SESSION_COOKIE, token, max_age=int(SESSION_TTL.total_seconds()), path="/",
                        httponly=True, samesite="lax", secure=request.url.scheme == "https")
    response.delete_cookie(SIGNIN_COOKIE, path=f"{UI}/signin")


def _end_session(request: Request, response: Response, stores: Stores) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        stores.meta.delete_session(hash_key(token))
    response.delete_cookie(SESSION_COOKIE, path="/")


def _signin_redirect(request: Request) -> RedirectResponse:
    target = without_key_params(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return RedirectResponse(f"{UI}/signin?next={quote(target, safe='')}", status_code=303)


def _safe_next(target: str | None, user: str) -> str:
    """Only a local UI path may be a redirect target (no open redirect to other sites)."""
    if target and target.startswith(f"{UI}/") and not target.startswith("//") and "\\" not in target:
        return without_key_params(target)
    return f"{UI}/folders/{quote(user)}"


def _signin_page(request: Request, next_: str, error: str | None = None,
                 status_code: int = 200) -> Response:
    """The sign-in form with a fresh anti-CSRF token (also set as the ``em_signin`` cookie)."""
    token = secrets.token_urlsafe(32)
    response = TEMPLATES.TemplateResponse(request, "signin.html", {
        "next": without_key_params(next_), "error": error, "csrf": token},
        status_code=status_code, headers={"Cache-Control": "no-store"})
    response.set_cookie(SIGNIN_COOKIE, token, max_age=3600, path=f"{UI}/signin", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


def _page(request: Request, stores: Stores, script: str, *, sidebar: bool = False, nav: str = "",
          preload: str | list[str] | None = None, **data: str) -> Response:
    """The page shell; ``preload`` names the UI JSON API paths the page's script will fetch
    first (exactly as it will ask for them), so the browser fetches them while the modules load."""
    user = session_user(request, stores)
    if user is None:
        return _signin_redirect(request)
    return TEMPLATES.TemplateResponse(request, "page.html", {
        "user": user.name, "script": script, "sidebar": sidebar, "nav": nav, "data": data,
        "preloads": [f"{API}{p}" for p in ([preload] if isinstance(preload, str) else preload or [])],
        "csrf": csrf_token(request.cookies[SESSION_COOKIE]),
    }, headers={"Cache-Control": "no-store"})


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse(f"{UI}/", status_code=303)


@router.get(UI)
@router.get(f"{UI}/")
def ui_home(request: Request, stores: Stores = Depends(get_stores)) -> Response:
    user = session_user(request, stores)
    if user is None:
        return _signin_redirect(request)
    return RedirectResponse(f"{UI}/folders/{quote(user.name)}", status_code=303)


@router.get(f"{UI}/signin")
def signin_form(request: Request, next: str = "",  # noqa: A002 - the query name
                stores: Stores = Depends(get_stores)) -> Response:
    user = session_user(request, stores)
    if user is not None:
        return RedirectResponse(_safe_next(next, user.name), status_code=303)
    return _signin_page(request, next)


@router.post(f"{UI}/signin")
def signin(request: Request, apikey: str = Form(""), next: str = Form(""),  # noqa: A002
           csrf: str = Form(""), stores: Stores = Depends(get_stores)) -> Response:
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    if not expected or not hmac.compare_digest(csrf.encode(), expected.encode()):
        return _signin_page(request, next, "The sign-in form expired. Please try again.", 403)
    client = request.client.host if request.client else "?"
    wait = SIGNIN_THROTTLE.wait_seconds(client)
    if wait:
        response = _signin_page(request, next, f"Too many failed sign-ins: try again in {wait} s.", 429)
        response.headers["Retry-After"] = str(wait)
        return response
    user = authenticate(stores.meta, apikey.strip())
    if user is None:
        SIGNIN_THROTTLE.failed(client)
        return _signin_page(request, next, "That API key is not valid (unknown or revoked).", 401)
    response = RedirectResponse(_safe_next(next, user.name), status_code=303)
    _start_session(request, response, stores, user, stores.meta.key_id_of(hash_key(apikey.strip())))
    return response


@router.post(f"{UI}/signout")
def signout(request: Request, csrf: str = Form(""), stores: Stores = Depends(get_stores)) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token and not hmac.compare_digest(csrf.encode(), csrf_token(token).encode()):
        return HTMLResponse("sign-out needs the page's CSRF token", status_code=403)
    response = RedirectResponse(f"{UI}/signin", status_code=303)
    _end_session(request, response, stores)
    return response


@router.get(f"{UI}/folders/{{path:path}}", response_class=HTMLResponse)
def folder_page(request: Request, path: str, stores: Stores = Depends(get_stores)) -> Response:
    path = "/" + path.strip("/")
    return _page(request, stores, "folder.js", sidebar=True, nav="folders",
                 preload=_folder_preloads(path, request.query_params), path=path)


def _folder_preloads(path: str, params: Mapping[str, str]) -> list[str]:
    """What folder.js asks for first: the folder (without its runs), the fields of its scope and,
    unless grouped, the first page of runs (filter ``q``, newest first), each spelled as the
    browser's ``URLSearchParams`` spells it."""
    scope = [("folder", path)] + ([("recursive", "true")] if params.get("recursive") == "1" else [])
    urls = [f"/folders?{urlencode([('path', path), ('runs', 'false')])}", f"/search/fields?{urlencode(scope)}"]
    if not params.get("group"):
        first = scope + ([("filter", params["q"])] if params.get("q") else []) + [("page_size", "50"), ("order_by", "start desc")]
        urls.append(f"/search/runs?{urlencode(first)}")
    return urls


@router.get(f"{UI}/runs/{{node_id}}", response_class=HTMLResponse)
def run_page(request: Request, node_id: str, stores: Stores = Depends(get_stores)) -> Response:
    return _page(request, stores, "run.js", nav="folders", preload=f"/runs/{quote(node_id, safe='')}",
                 node=node_id)


@router.get(f"{UI}/artifacts/{{node_id}}", response_class=HTMLResponse)
def artifact_page(request: Request, node_id: str, stores: Stores = Depends(get_stores)) -> Response:
    return _page(request, stores, "artifact.js", nav="folders", preload=f"/artifacts/{quote(node_id, safe='')}",
                 node=node_id)


@router.get(f"{UI}/trash", response_class=HTMLResponse)
def trash_page(request: Request, stores: Stores = Depends(get_stores)) -> Response:
    return _page(request, stores, "trash.js", nav="trash", preload="/trash")


@router.get(f"{UI}/keys", response_class=HTMLResponse)
def keys_page(request: Request, stores: Stores = Depends(get_stores)) -> Response:
    return _page(request, stores, "keys.js", nav="keys", preload="/keys")


@router.get(f"{UI}/compare", response_class=HTMLResponse)
def compare_page(request: Request, stores: Stores = Depends(get_stores)) -> Response:
    return _page(request, stores, "compare.js", nav="folders")


@router.get(f"{UI}/lineage/{{node_id}}", response_class=HTMLResponse)
def lineage_page(request: Request, node_id: str, stores: Stores = Depends(get_stores)) -> Response:
    return _page(request, stores, "lineage.js", nav="folders", node=node_id)


@router.get(f"{UI}/nodes/{{node_id}}")
def node_page(request: Request, node_id: str, stores: Stores = Depends(get_stores)) -> Response:
    """Redirect to the page of a node by id, whatever its type (404 if the user cannot see it)."""
    user = session_user(request, stores)
    if user is None:
        return _signin_redirect(request)
    node = stores.meta.get_node(node_id) if not node_id.startswith("/") else None
    if role_of(stores.meta, user, node) == Role.NONE:
        return HTMLResponse("node not found", status_code=404)
    kind = {"Run": "runs", "Artifact": "artifacts"}.get(node.type)
    target = f"{UI}/{kind}/{quote(node.id)}" if kind else f"{UI}/folders{quote(node.path)}"
    return RedirectResponse(target, status_code=303)


@router.get("/em/web/", response_class=HTMLResponse)
def console_link(request: Request) -> Response:
    """The console link the 0.6.0b0 client prints (``/em/web/#/folders/<node id>/``).

    The node id sits in the URL fragment, which never reaches the server, so a tiny script
    forwards to ``/ui/nodes/<id>``.
    """
    return TEMPLATES.TemplateResponse(request, "console_link.html", {})
