"""Shared fixtures.

Tracking server (``t9k_em_server``), for any test that needs a real server over HTTP:

- ``em_server`` (session): one ``python -m t9k_em_server`` process on a free loopback port with
  an embedded SQLite db + blob folder in a temp dir, users ``alice`` and ``bob`` created.
  It is a tuple ``(base_url, api_key, user)`` for alice, so ``base, key, user = em_server`` works;
  it also has ``.url`` (= base_url), ``.keys`` ({user: key}), ``.process`` (the
  ``tests/support/em_server_process.ServerProcess``: ``pid``, ``log_text()``, ``data_dir``).
  The server is shared by the session: use your own folder names, or a fresh user.
- ``em_add_user`` (session): a factory ``em_add_user(name=None) -> (name, key)`` creating a user
  (random name by default) on that server; the key is also added to ``em_server.keys``.
- For a server of your own (other db/blob store, kill/restart), use
  ``ServerProcess(data_dir, db=..., blob_store=...)`` from ``tests/support/em_server_process.py``.

Every Run samples no system metrics unless its test asks (``EM_SYSTEM_METRICS=0`` is set here).

Local runs: ``em_dirs`` puts Runs and Artifacts under ``tmp_path`` (also the working directory),
outside any distributed job; it returns ``tmp_path``.

Team setup (tests/support/team_services.py): ``pg_database`` (module) is the URL of a fresh database on
the machine's PostgreSQL; ``s3_env`` (module) the ``AWS_*`` environment of a ``moto_server`` with
the bucket ``em-team``. Mark tests that need PostgreSQL with ``team_services.needs_pg``.

Sharing (tests/support/team_world.py): ``team`` (module, once on SQLite and once on PostgreSQL)
is a ``World``: a server with one user per role (owner, editor, viewer, group member, stranger,
admin) towards alice's shared Folder, and a Folder of hers shared with nobody.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import NamedTuple

import pytest

from support.em_server_process import ServerProcess
from support.team_services import fresh_pg_database, moto_s3, pg_available
from support.team_world import World, team_world

# Runs of the tests (and of the jobs they start) sample no system metrics unless a test asks:
# most tests assert the exact metric types a Run holds. tests/test_system_metrics.py turns it on.
os.environ.setdefault('EM_SYSTEM_METRICS', '0')


@pytest.fixture(scope='module')
def pg_database():
    """A fresh database on the local PostgreSQL (one per test module); yields its URL."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(scope='module', params=['sqlite', 'postgresql'])
def team(request, tmp_path_factory) -> Iterator[World]:
    """The sharing ``World`` (see the module doc), on SQLite, then on PostgreSQL."""
    data_dir = tmp_path_factory.mktemp(f'team-{request.param}')
    if request.param == 'sqlite':
        with team_world(data_dir) as world:
            yield world
        return
    if not pg_available():
        pytest.skip('PostgreSQL not reachable')
    with fresh_pg_database() as url, team_world(data_dir, url) as world:
        yield world


@pytest.fixture(scope='module')
def s3_env(tmp_path_factory):
    """A moto S3 server with the bucket ``em-team`` (one per test module); yields the AWS_*
    environment pointing at it."""
    with moto_s3(tmp_path_factory.mktemp('moto'), 'em-team') as env:
        yield env


@pytest.fixture
def em_dirs(tmp_path, monkeypatch):
    """Runs under ``tmp_path/runs``, Artifacts under ``tmp_path/artifacts``, cwd ``tmp_path``, and
    no rank variables (so ``create_run`` is never inert)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('EM_RUN_PARENT_DIR', str(tmp_path / 'runs'))
    monkeypatch.setenv('EM_ARTIFACT_PARENT_DIR', str(tmp_path / 'artifacts'))
    for name in ('RANK', 'LOCAL_RANK', 'HOROVOD_RANK', 'OMPI_COMM_WORLD_RANK', 'PMI_RANK',
                 'TF_CONFIG', 'SLURM_NTASKS', 'EM_ALL_RANKS'):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


class EmServer(NamedTuple):
    """A running server and alice's credentials."""

    base_url: str
    api_key: str
    user: str
    keys: dict[str, str]
    process: ServerProcess

    @property
    def url(self) -> str:
        return self.base_url

    def __iter__(self):  # unpacks as (base_url, api_key, user)
        return iter((self.base_url, self.api_key, self.user))

    def __len__(self) -> int:
        return 3


@pytest.fixture(scope="session")
def em_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmServer]:
    server = ServerProcess(tmp_path_factory.mktemp("em-server"))
    keys = dict((server.add_user("alice"), server.add_user("bob")))
    server.start()
    try:
        yield EmServer(server.base_url, keys["alice"], "alice", keys, server)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def em_add_user(em_server: EmServer) -> Callable[..., tuple[str, str]]:
    def add(name: str | None = None, admin: bool = False) -> tuple[str, str]:
        name, key = em_server.process.add_user(name, admin=admin)
        em_server.keys[name] = key
        return name, key
    return add
