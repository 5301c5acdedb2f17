"""Fixtures of the SDK-side remote tests: a real `em server` subprocess on loopback.

The server process is our own handle (not the server package's fixture) because the fault tests
kill and restart it on the same port and data. PostgreSQL tests get a fresh database each.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator, Optional

import pytest
import requests

from t9k_em_core import client as em_client

PG_ADMIN_URL = os.environ.get('EM_TEST_PG_URL', 'postgresql://postgres@127.0.0.1:5432/test')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class ServerProcess:
    """A `python -m t9k_em_server` subprocess that can be killed and started again."""

    def __init__(self, data_dir: Path, db_url: Optional[str] = None) -> None:
        self.data_dir = data_dir
        self.db_url = db_url
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def _store_args(self) -> list[str]:
        return ['--data-dir', str(self.data_dir)] + (['--db', self.db_url] if self.db_url else [])

    def add_user(self, name: str) -> str:
        """Creates a user and returns their API key (the last line `add-user` prints)."""
        out = subprocess.run([sys.executable, '-m', 't9k_em_server', 'add-user', name,
                              *self._store_args()], check=True, capture_output=True, text=True)
        return out.stdout.strip().splitlines()[-1]

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 't9k_em_server', '--host', '127.0.0.1', '--port',
             str(self.port), '--log-level', 'warning', *self._store_args()],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f'server exited: {self.proc.stderr.read().decode()[-2000:]}')
            try:
                requests.get(self.url + '/oauth2/userinfo', timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError('server did not start within 30 s')

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, like a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def _server(tmp_dir: Path, db_url: Optional[str] = None) -> Iterator[tuple[ServerProcess, str]]:
    server = ServerProcess(tmp_dir, db_url)
    key = server.add_user('alice')
    server.start()
    try:
        yield server, key
    finally:
        server.stop()


@pytest.fixture(scope='session')
def em_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """A server shared by the tests of this folder (SQLite): ``(server, alice's key)``."""
    yield from _server(tmp_path_factory.mktemp('em-server'))


@pytest.fixture
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """A server for one test (it may kill it): ``(server, alice's key)``."""
    yield from _server(tmp_path_factory.mktemp('em-server-own'))


@pytest.fixture
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """A server on a fresh PostgreSQL database (dropped afterwards)."""
    psycopg = pytest.importorskip('psycopg')
    name = f'em_sdk_{uuid.uuid4().hex[:12]}'
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        pytest.skip(f'PostgreSQL not reachable at {PG_ADMIN_URL}: {e}')
    admin.execute(f'CREATE DATABASE {name}')
    try:
        url = PG_ADMIN_URL.rsplit('/', 1)[0] + '/' + name
        yield from _server(tmp_path_factory.mktemp('em-server-pg'), url)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS {name} WITH (FORCE)')
        admin.close()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cwd and every SDK directory (runs, artifacts, upload state) inside ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('EM_RUN_PARENT_DIR', str(tmp_path / 'runs'))
    monkeypatch.setenv('EM_ARTIFACT_PARENT_DIR', str(tmp_path / 'artifacts'))
    monkeypatch.setenv('EM_UPLOAD_STATE_DIR', str(tmp_path / 'upload-state'))
    monkeypatch.setenv('T9K_CONFIG', str(tmp_path / 't9k-config.yaml'))
    return tmp_path


@pytest.fixture
def logged_in(em_server: tuple[ServerProcess, str], workdir: Path) -> Iterator[em_client.AISClient]:
    """Logged in to the shared server as alice; logged out afterwards."""
    server, key = em_server
    em_client.login(server.url, key)
    try:
        yield em_client.current()
    finally:
        em_client.logout()


@pytest.fixture
def folder() -> str:
    """A Folder name no other test uses."""
    return 'f' + uuid.uuid4().hex[:12]
