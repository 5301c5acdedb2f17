"""The web UI: sign-in/out with a session cookie, and the HTML pages.

Each page is a small server-rendered shell (``templates/page.html``) whose script
(``static/js/<page>.js``) fills it from the UI JSON API (``/api/ui/v1``). Every script and
stylesheet is served from the package's ``static/`` folder (uPlot is vendored there), so the UI
works without any CDN. The session cookie set here is what authenticates the browser on the UI
JSON API and on object downloads (see ``auth.py``).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from . import auth

UI = "/ui"
API = "/api/ui/v1"
STATIC_DIR = Path(__file__).parent / "static"
TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


def _static_version() -> str:
    """A short hash of the static files, appended to their URLs so a new release busts caches."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(STATIC_DIR)).encode())
            digest.update(str(path.stat().st_mtime_ns).encode())
    return digest.hexdigest()[:10]


_VERSION = _static_version()
TEMPLATES.env.globals.update(
    ui_prefix=UI, api_prefix=API,
    static=lambda name: f"{UI}/static/{name}?v={_VERSION}")

router = APIRouter(include_in_schema=False)
router.mount(f"{UI}/static", StaticFiles(directory=STATIC_DIR), name="ui-static")


def _signin_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{UI}/signin?next={quote(target, safe='')}", status_code=303)


def _safe_next(target: str | None, user: str) -> str:
    """Only a local UI path may be a redirect target (no open redirect to other sites)."""
    if target and target.startswith(f"{UI}/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{UI}/folders/{quote(user)}"


async def _page(request: Request, script: str, *, sidebar: bool = False, nav: str = "",
                **data: str) -> Response:
    user = await auth.ui_user(request)
    if user is None:
        return _signin_redirect(request)
    return TEMPLATES.TemplateResponse(request, "page.html", {
        "user": user.name, "script": script, "sidebar": sidebar, "nav": nav, "data": data,
    }, headers={"Cache-Control": "no-store"})


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse(f"{UI}/", status_code=303)


@router.get(UI)
@router.get(f"{UI}/")
async def ui_home(request: Request) -> Response:
    user = await auth.ui_user(request)
    if user is None:
        return _signin_redirect(request)
    return RedirectResponse(f"{UI}/folders/{quote(user.name)}", status_code=303)


@router.get(f"{UI}/signin")
async def signin_form(request: Request, next: str = "") -> Response:  # noqa: A002 - the query name
    user = await auth.ui_user(request)
    if user is not None:
        return RedirectResponse(_safe_next(next, user.name), status_code=303)
    return TEMPLATES.TemplateResponse(request, "signin.html", {"next": next, "error": None})


@router.post(f"{UI}/signin")
async def signin(request: Request, apikey: str = Form(""), next: str = Form("")) -> Response:  # noqa: A002
    user = await auth.user_of_key(request, apikey.strip())
    if user is None:
        return TEMPLATES.TemplateResponse(request, "signin.html", {
            "next": next, "error": "That API key is not valid (unknown or revoked)."}, status_code=401)
    response = RedirectResponse(_safe_next(next, user.name), status_code=303)
    await auth.start_session(request, response, user)
    return response


@router.post(f"{UI}/signout")
async def signout(request: Request) -> Response:
    response = RedirectResponse(f"{UI}/signin", status_code=303)
    await auth.end_session(request, response)
    return response


@router.get(f"{UI}/folders/{{path:path}}", response_class=HTMLResponse)
async def folder_page(request: Request, path: str) -> Response:
    return await _page(request, "folder.js", sidebar=True, nav="folders", path="/" + path.strip("/"))


@router.get(f"{UI}/runs/{{node_id}}", response_class=HTMLResponse)
async def run_page(request: Request, node_id: str) -> Response:
    return await _page(request, "run.js", nav="folders", node=node_id)


@router.get(f"{UI}/artifacts/{{node_id}}", response_class=HTMLResponse)
async def artifact_page(request: Request, node_id: str) -> Response:
    return await _page(request, "artifact.js", nav="folders", node=node_id)


@router.get(f"{UI}/compare", response_class=HTMLResponse)
async def compare_page(request: Request) -> Response:
    return await _page(request, "compare.js", nav="folders")


@router.get(f"{UI}/lineage/{{node_id}}", response_class=HTMLResponse)
async def lineage_page(request: Request, node_id: str) -> Response:
    return await _page(request, "lineage.js", nav="folders", node=node_id)


@router.get("/em/web/", response_class=HTMLResponse)
async def console_link(request: Request) -> Response:
    """The console link the 0.6.0b0 client prints (``/em/web/#/folders/<node id>/``)."""
    return TEMPLATES.TemplateResponse(request, "console_link.html", {})
