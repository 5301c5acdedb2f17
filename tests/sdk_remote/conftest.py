"""Fixtures of the SDK-side remote tests, on top of the shared server fixtures (tests/conftest.py).

- ``em_server`` (shared, session): the suite's server; alice's key is ``em_server.api_key``.
- ``own_server``: a server of one test, which may kill it and start it again on the same port.
- ``pg_server``: a server on a fresh PostgreSQL database (dropped afterwards).
- ``team_server``: like ``own_server``, on a fresh PostgreSQL database and the moto S3 store.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator, Optional

import pytest

from support.em_server_process import ServerProcess
from support.team_services import fresh_pg_database, pg_available
from t9k_em_core import client as em_client


def _server(data_dir: Path, db: Optional[str] = None, blob_store: Optional[str] = None,
            env: Optional[dict] = None) -> Iterator[tuple[ServerProcess, str]]:
    server = ServerProcess(data_dir, db=db, blob_store=blob_store, env=env)
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
    """A server on a fresh PostgreSQL database (dropped afterwards): ``(server, alice's key)``."""
    if not pg_available():
        pytest.skip('PostgreSQL not reachable')
    with fresh_pg_database() as url:
        yield from _server(tmp_path_factory.mktemp('em-server-pg'), url)


@pytest.fixture
def team_server(tmp_path_factory: pytest.TempPathFactory,
                s3_env: dict) -> Iterator[tuple[ServerProcess, str]]:
    """A server of one test on a fresh PostgreSQL database and a fresh prefix of the moto S3
    bucket (it may kill it): ``(server, alice's key)``."""
    if not pg_available():
        pytest.skip('PostgreSQL not reachable')
    with fresh_pg_database() as url:
        yield from _server(tmp_path_factory.mktemp('em-server-team'), url,
                           f's3://em-team/{uuid.uuid4().hex[:8]}', s3_env)


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
