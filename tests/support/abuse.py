"""Helpers of the abuse suites (``test_abuse_*.py``): the server's peak memory, a snapshot of
data that must not change, and a check that other clients are served while a case runs."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
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
