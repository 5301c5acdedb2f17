"""The one exception type the routers raise, and the handlers that turn errors into responses.

Error bodies are plain text, because the 0.6.0b0 client matches substrings of them
(spec server-api §2): ``Invalid conflicting node Name``, ``node not found [<path>]``,
``permission denied``, ``api key … not found\\n``. Unknown URLs get a 404 with an empty body.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with the HTTP status and the plain-text body the client sees."""

    def __init__(self, status: int, text: str, headers: dict[str, str] | None = None):
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = headers or {}


def conflict(name: str) -> ApiError:
    """The 400 the client reads as "node with that name already exists"."""
    return ApiError(400, f"Invalid conflicting node Name: {name!r} already exists")


def node_not_found(ref: str) -> ApiError:
    """The 404 the client reads as "node missing"; the path/id sits in the last ``[…]``."""
    return ApiError(404, f"node not found [{ref}]")


def permission_denied() -> ApiError:
    """The 403 whose body equals ``permission denied`` (spec §2)."""
    return ApiError(403, "permission denied")


def install_error_handlers(app: FastAPI) -> None:
    """Map ApiError, unknown routes, validation errors and crashes to plain-text responses."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return PlainTextResponse(exc.text, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return Response(status_code=404)  # empty body: the client's "Incorrect URL"
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code,
                                 headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}"
            for err in exc.errors())
        return PlainTextResponse(f"invalid request: {problems}", status_code=400)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return PlainTextResponse("internal server error", status_code=500)
