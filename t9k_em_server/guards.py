"""Checks every request passes before any route sees it, and headers every response gets.

One ASGI middleware (``RequestGuard``), so routes added later get them without doing anything:

- **encodings**: the path and the query string must percent-decode to valid UTF-8 (``%ff`` →
  ``400``; Starlette would silently turn it into U+FFFD);
- **cross-origin writes**: a request with an unsafe method (not GET/HEAD/OPTIONS) that a browser
  marks as coming from another origin (``Sec-Fetch-Site: cross-site``/``same-site``, or an
  ``Origin`` whose host differs from ``Host`` and from ``EM_SERVER_TRUSTED_ORIGINS``) gets
  ``403``. A page on another port of the same host is same-site, so ``SameSite=Lax`` alone would
  let it post with the user's cookie. API clients send no such headers;
- **form bodies**: a request to the web UI's pages and forms (``/ui/``) may carry at most
  ``MAX_FORM_BYTES`` (``413``): sign-in and sign-out take a few fields, and Starlette would
  otherwise spool file parts of any size to disk;
- **slow bodies**: a request body that stalls for ``BODY_IDLE_SECONDS``, or arrives slower than
  ``MIN_BODY_RATE`` bytes/s on average after ``BODY_GRACE_SECONDS``, ends with ``408`` (an
  ``ApiError`` raised from ``receive``, which the app's error handler answers);
- **response headers**: ``Content-Security-Policy`` (scripts from the server only, plus the page's
  inline import map by a per-response nonce, ``scope["state"]["csp_nonce"]``; ``frame-ancestors
  'none'``), ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: same-origin`` (not ``no-referrer``, under which browsers send
  ``Origin: null`` with the pages' own forms), ``Cross-Origin-Resource-Policy: same-origin``.

Slow or idle connections before a request's head is complete are closed by the HTTP protocol
(``TimedH11Protocol``), which the ASGI app never sees.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import time
from urllib.parse import unquote_to_bytes, urlsplit

import h11
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import ApiError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: a connection must deliver a request head within this long (``EM_SERVER_HEADER_TIMEOUT``)
HEADER_SECONDS = float(os.environ.get("EM_SERVER_HEADER_TIMEOUT", "30"))
#: longest pause between two pieces of a request body (``EM_SERVER_BODY_TIMEOUT``)
BODY_IDLE_SECONDS = float(os.environ.get("EM_SERVER_BODY_TIMEOUT", "30"))
BODY_GRACE_SECONDS = 60.0  #: after this long, a body must have averaged MIN_BODY_RATE
MIN_BODY_RATE = 1024       #: bytes per second
MAX_FORM_BYTES = 64 << 10  #: largest body under FORM_PREFIX
FORM_PREFIX = "/ui/"

CSP = ("default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
STATIC_HEADERS = [(b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
                  (b"referrer-policy", b"same-origin"),
                  (b"cross-origin-resource-policy", b"same-origin")]


def trusted_origins() -> frozenset[str]:
    """``EM_SERVER_TRUSTED_ORIGINS`` (comma-separated ``scheme://host[:port]``): origins whose
    pages may write, next to the server's own (e.g. the public name behind a proxy that rewrites
    ``Host``)."""
    return frozenset(o.strip().rstrip("/") for o in os.environ.get("EM_SERVER_TRUSTED_ORIGINS", "").split(",")
                     if o.strip())


def check_encoding(scope: Scope) -> None:
    """The raw path and query string percent-decode to UTF-8 (400 naming the part otherwise)."""
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    try:
        unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the URL path is not valid UTF-8 once percent-decoded") from None
    for piece in scope.get("query_string", b"").split(b"&"):
        name, _, value = piece.partition(b"=")
        for part in (name, value):
            try:
                unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError:
                shown = unquote_to_bytes(name).decode("utf-8", "replace")[:50]
                raise ApiError(400, f"query parameter {shown!r} is not valid UTF-8 once "
                                          "percent-decoded") from None


def check_origin(scope: Scope, headers: dict[bytes, bytes], trusted: frozenset[str]) -> None:
    """Unsafe methods from another origin (as the browser declares it) are refused (403)."""
    if scope["method"] in SAFE_METHODS:
        return
    site = headers.get(b"sec-fetch-site")
    if site in (b"cross-site", b"same-site"):
        raise ApiError(403, f"cross-origin request refused (Sec-Fetch-Site: {site.decode()})")
    origin = headers.get(b"origin")
    if origin is None:
        return
    text = origin.decode("latin-1").rstrip("/")
    if text in trusted:
        return
    host = headers.get(b"host", b"").decode("latin-1")
    if text == "null" or urlsplit(text).netloc != host:
        raise ApiError(403, f"cross-origin request refused (Origin: {text[:100]})")


class _BodyClock:
    """Wraps ``receive`` so a stalled or trickling request body ends the request (408), and one
    over ``limit`` bytes too (413)."""

    def __init__(self, receive: Receive, limit: int | None):
        self.receive, self.limit = receive, limit
        self.start = time.monotonic()
        self.bytes = 0

    async def __call__(self) -> Message:
        # A timer that cancels this task if the receive takes too long: it adds ~5 µs per call
        # where asyncio.wait_for or an anyio cancel scope add ~20 µs (16 000 calls per GiB).
        task = asyncio.current_task()
        assert task is not None
        fired = []
        timer = asyncio.get_running_loop().call_later(
            BODY_IDLE_SECONDS, lambda: (fired.append(True), task.cancel()))
        try:
            message = await self.receive()
        except asyncio.CancelledError:
            if not fired:
                raise
            if hasattr(task, "uncancel"):
                task.uncancel()
            raise ApiError(408, f"request body stalled for {BODY_IDLE_SECONDS:.0f} s") from None
        finally:
            timer.cancel()
        if message["type"] == "http.request":
            self.bytes += len(message.get("body", b""))
            if self.limit is not None and self.bytes > self.limit:
                raise ApiError(413, f"request body larger than {self.limit} bytes")
            elapsed = time.monotonic() - self.start
            if elapsed > BODY_GRACE_SECONDS and self.bytes < MIN_BODY_RATE * elapsed and message.get("more_body"):
                raise ApiError(408, f"request body slower than {MIN_BODY_RATE} bytes/s")
        return message


class RequestGuard:
    """The ASGI middleware of the module doc."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.trusted = trusted_origins()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        security = [*STATIC_HEADERS, (b"content-security-policy", CSP.format(nonce=nonce).encode())]
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {name.lower() for name, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []),
                                                  *(h for h in security if h[0] not in names)]}
            await send(message)

        try:
            check_encoding(scope)
            headers = dict(scope.get("headers", []))
            check_origin(scope, headers, self.trusted)
            limit = MAX_FORM_BYTES if scope["path"].startswith(FORM_PREFIX) else None
            declared = headers.get(b"content-length", b"")
            if limit is not None and declared.isdigit() and int(declared) > limit:
                raise ApiError(413, f"request body larger than {limit} bytes")
            await self.app(scope, _BodyClock(receive, limit), send_with_headers)
        except ApiError as refused:
            if started:  # the reply is under way: nothing better to do than cut it
                raise
            body = refused.text.encode()
            await send_with_headers({"type": "http.response.start", "status": refused.status,
                                     "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                                 (b"content-length", str(len(body)).encode()),
                                                 (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head: a connection that has not
    delivered a complete request line and headers ``HEADER_SECONDS`` after it opened (or after its
    previous response) is closed. uvicorn alone waits forever for a client that trickles headers
    (slowloris); its ``timeout_keep_alive`` only covers silence after a response."""

    _head_timer: asyncio.TimerHandle | None = None

    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(HEADER_SECONDS, self._head_timeout)

    def _head_timeout(self) -> None:
        self._head_timer = None
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and not self.transport.is_closing():
            try:
                self.conn.send(h11.ConnectionClosed())
            except h11.LocalProtocolError:
                pass
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)
