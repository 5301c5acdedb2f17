"""Helpers of the abuse suites (``test_abuse_*.py``): the server's peak memory, a snapshot of
data that must not change, a check that other clients are served while a case runs, a signed-in
browser session, and which of an app's routes read a JSON body."""
from __future__ import annotations

import inspect
import re
import threading
import time
from collections.abc import Callable, Iterator
from types import CodeType, FunctionType
from typing import Any

import requests
from support.server_api import Api

#: peak RSS the shared test server may reach during the abuse suites (it idles near 120 MB)
RSS_BOUND_MB = 400


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size so far (``VmHWM``), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def snapshot(api: Api, node_path: str) -> dict[str, bytes]:
    """Every object below ``node_path`` and its bytes."""
    return {item["path"]: api.get(node_path + item["path"]).content for item in api.ls(node_path)}


def served_meanwhile(base_url: str, action: Callable[[], Any], max_wait: float = 2.0) -> Any:
    """Run ``action`` while another client polls ``/healthz``; assert every poll is answered
    within ``max_wait`` seconds. Returns what ``action`` returned."""
    done = threading.Event()
    slowest: list[float] = []

    def poll() -> None:
        with requests.Session() as http:
            while not done.is_set() or not slowest:  # at least one poll, however quick the action
                start = time.monotonic()
                try:
                    ok = http.get(base_url + "/healthz", timeout=max_wait * 5).status_code == 200
                except requests.RequestException:
                    ok = False
                slowest.append(time.monotonic() - start if ok else float("inf"))
                time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        return action()
    finally:
        done.set()
        poller.join(max_wait * 5)
        assert slowest and max(slowest) < max_wait, f"healthz took {max(slowest or [0]):.2f} s"


def signed_in(base: str, key: str) -> requests.Session:
    """A browser-like session signed in through the form (token from the form, same origin)."""
    http = requests.Session()
    form = http.get(f"{base}/ui/signin", timeout=30)
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    reply = http.post(f"{base}/ui/signin", data={"apikey": key, "csrf": token, "next": ""},
                      headers={"Origin": base}, allow_redirects=False, timeout=30)
    assert reply.status_code == 303, reply.text
    return http


def page_token(http: requests.Session, base: str, user: str) -> str:
    """The CSRF token a page renders for the session of ``http`` (``X-EM-CSRF``)."""
    page = http.get(f"{base}/ui/folders/{user}", timeout=30)
    return re.search(r'data-csrf="([0-9a-f]+)"', page.text).group(1)


def _routes(routes: list[Any]) -> Iterator[Any]:
    """Every route with an endpoint, also inside included routers and mounts."""
    for route in routes:
        if hasattr(route, "endpoint"):
            yield route
        inner = getattr(route, "original_router", route)  # FastAPI keeps included routers whole
        if inner is not route or hasattr(route, "routes"):
            yield from _routes(list(getattr(inner, "routes", [])))


def _calls_read_json(function: FunctionType, seen: set[CodeType]) -> bool:
    """Whether ``function`` names ``read_json``, itself or through the server's functions it
    calls (nested functions and lambdas included)."""
    codes = [function.__code__]
    while codes:
        code = codes.pop()
        if code in seen:
            continue
        seen.add(code)
        if "read_json" in code.co_names:
            return True
        codes += [c for c in code.co_consts if isinstance(c, CodeType)]
        for name in code.co_names:
            called = function.__globals__.get(name)
            if (inspect.isfunction(called) and called.__module__.startswith("t9k_em_server")
                    and _calls_read_json(called, seen)):
                return True
    return False


def routes_reading_json(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route of ``app`` whose handler reads its body with
    ``routers.common.read_json``, found from the handlers' code, not from what the routes declare."""
    return {(method, route.path) for route in _routes(list(app.routes))
            if inspect.isfunction(endpoint := inspect.unwrap(route.endpoint))
            and _calls_read_json(endpoint, set())
            for method in getattr(route, "methods", None) or ()}
