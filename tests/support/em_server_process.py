"""Run a real ``python -m t9k_em_server`` process on a free loopback port (for tests).

``ServerProcess(data_dir, db=None, blob_store=None, env=None).start()`` starts the server and
waits for ``/healthz``; ``add_user(name)`` creates a user in the same stores and returns the key; ``stop()`` terminates it, ``kill()`` SIGKILLs it. The server's output
goes to ``<data_dir>/server-<port>.log`` (``log_text()``).
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """One ``em server`` subprocess."""

    def __init__(self, data_dir: str | Path, db: str | None = None, blob_store: str | None = None,
                 env: dict[str, str] | None = None):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db, self.blob_store = db, blob_store
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _store_args(self) -> list[str]:
        args = ["--data-dir", str(self.data_dir)]
        if self.db:
            args += ["--db", self.db]
        return args

    def start(self, timeout: float = 60, port: int | None = None) -> "ServerProcess":
        """Start (or restart, with ``port=`` the previous port) and wait until it answers."""
        for _ in range(3):  # a port picked free can be taken before the server binds it
            self.port = port or free_port()
            self.log_path = self.data_dir / f"server-{self.port}.log"
            args = [sys.executable, "-m", "t9k_em_server", "--host", "127.0.0.1",
                    "--port", str(self.port), *self._store_args()]
            if self.blob_store:
                args += ["--blob-store", self.blob_store]
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if requests.get(self.base_url + "/healthz", timeout=2).status_code == 200:
                        return self
                except requests.RequestException:
                    pass
                time.sleep(0.1)
            if self.proc.poll() is None:
                self.kill()
                raise RuntimeError(f"server did not come up:\n{self.log_text()}")
            if "address already in use" not in self.log_text():
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_text()}")
        raise RuntimeError("no free port found")

    def add_user(self, name: str | None = None, admin: bool = False) -> tuple[str, str]:
        """Create a user (a random name by default; an admin if asked) in this server's stores;
        returns (name, key).

        Runs in this process through ``t9k_em_server.users`` (what ``em server add-user`` calls),
        which is much quicker than a CLI subprocess; the CLI itself is tested in test_auth.py.
        """
        from t9k_em_server import users

        name = name or "u" + uuid.uuid4().hex[:10]
        with self.metadata() as meta:
            return name, users.add_user(meta, name, admin=admin)

    def add_group(self, name: str, members: list[str]) -> None:
        """Create a group with these members (what ``em server add-group``/``add-member`` call)."""
        from t9k_em_server import users

        with self.metadata() as meta:
            users.add_group(meta, name)
            for member in members:
                meta.set_member(name, member, True)

    @contextlib.contextmanager
    def metadata(self) -> Iterator[Any]:
        """This server's metadata store, migrated, opened in this process."""
        from t9k_em_server.config import ServerConfig
        from t9k_em_server.metadata_store import MetadataStore

        meta = MetadataStore(ServerConfig(data_dir=self.data_dir, db_url=self.db).resolved_db_url)
        try:
            meta.upgrade()
            yield meta
        finally:
            meta.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, timeout: float = 15) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
