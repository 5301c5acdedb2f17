"""The application factory: stores + routers + error handlers.

``create_app(config)`` opens the stores (running migrations), mounts every router and wraps them
in ``guards.RequestGuard`` (checks every request and headers every response gets). Another
router (e.g. the web UI pages) is added with ``app.include_router(...)``; it reaches the stores
through the ``get_stores`` dependency and the caller through ``routers.auth.current_user``.
``EM_SERVER_BATCH_UPLOAD=0`` leaves out our batch-upload extension (``routers/batch.py``) and
``EM_SERVER_APPEND=0`` our append/truncate extension (``routers/appends.py``), so the server
answers them 404 like a real AIStore server would; ``GET /apis/v1/capabilities`` says which are on.
"""
from __future__ import annotations

import os
from contextlib import asynccontextmanager

from fastapi import FastAPI

from . import __version__, web
from .config import ServerConfig
from .errors import install_error_handlers
from .guards import RequestGuard
from .routers import appends, auth, batch, edits, graphs, keys, nodes, objects, search, shares, ui_api
from .stores import Stores


def create_app(config: ServerConfig | None = None, stores: Stores | None = None) -> FastAPI:
    """A ready app for ``config`` (or for already opened ``stores``)."""
    stores = stores or Stores.open(config or ServerConfig())

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # type: ignore[no-untyped-def]
        yield
        stores.close()

    app = FastAPI(title="t9k-em tracking server", version=__version__, lifespan=lifespan,
                  description="AIStore API of t9k 0.6.0b0 `em` plus the web UI's JSON API.")
    app.state.stores = stores
    install_error_handlers(app)
    app.add_middleware(RequestGuard)  # encodings, cross-origin writes, slow bodies, headers

    @app.get("/healthz", tags=["health"], summary="Liveness check (no auth)")
    def healthz() -> dict:
        return {"status": "ok"}

    for module in (auth, nodes, objects, graphs, ui_api):
        app.include_router(module.router)
    app.include_router(nodes.ui_router)
    for module in (search, shares, keys, edits):
        app.include_router(module.api_router)
        app.include_router(module.ui_router)
    app.include_router(keys.admin_router)
    with_batch = os.environ.get("EM_SERVER_BATCH_UPLOAD", "1") != "0"  # "0": as 0.6.0b0's server
    with_append = os.environ.get("EM_SERVER_APPEND", "1") != "0"
    if with_batch:
        app.include_router(batch.router)
    if with_append:
        app.include_router(appends.router)
    app.include_router(appends.capabilities_router(with_append, with_batch,
                                                   stores.limits.max_append_bytes))
    app.include_router(web.router)  # the web UI's pages, sign-in and static files
    return app
