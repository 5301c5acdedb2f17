"""Fixtures of the SDK-side remote tests, on top of the shared server fixtures (tests/conftest.py).

- ``em_server`` (shared, session): the suite's server; alice's key is ``em_server.api_key``.
- ``own_server``: a server of one test, which may kill it and start it again on the same port.
- ``pg_server``: a server on a fresh PostgreSQL database (dropped afterwards).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterator, Optional

import pytest

from em_server_process import ServerProcess
from t9k_em_core import client as em_client

PG_ADMIN_URL = os.environ.get('EM_TEST_PG_URL', 'postgresql://postgres@127.0.0.1:5432/test')


def _server(data_dir: Path, db: Optional[str] = None) -> Iterator[tuple[ServerProcess, str]]:
    server = ServerProcess(data_dir, db=db)
    _, key = server.add_user('alice')
    server.start()
    try:
        yield server, key
    finally:
        server.stop()


@pytest.fixture
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """A server for one test (it may kill it): ``(server, alice's key)``."""
    yield from _server(tmp_path_factory.mktemp('em-server-own'))


@pytest.fixture
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """A server on a fresh PostgreSQL database: ``(server, alice's key)``."""
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
    """cwd and every SDK directory (runs, artifacts, upload state, config) inside ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('EM_RUN_PARENT_DIR', str(tmp_path / 'runs'))
    monkeypatch.setenv('EM_ARTIFACT_PARENT_DIR', str(tmp_path / 'artifacts'))
    monkeypatch.setenv('EM_UPLOAD_STATE_DIR', str(tmp_path / 'upload-state'))
    monkeypatch.setenv('T9K_CONFIG', str(tmp_path / 't9k-config.yaml'))
    monkeypatch.delenv('T9K_CONFIG_CONTEXT', raising=False)
    return tmp_path


@pytest.fixture
def logged_in(em_server, workdir: Path) -> Iterator[em_client.AISClient]:
    """Logged in to the shared server as alice; logged out afterwards."""
    em_client.login(em_server.url, em_server.api_key)
    try:
        yield em_client.current()
    finally:
        em_client.logout()


@pytest.fixture
def folder() -> str:
    """A Folder name no other test uses."""
    return 'f' + uuid.uuid4().hex[:12]
