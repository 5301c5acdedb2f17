"""Faults and load against a real server subprocess: a server killed mid-upload, a server down
for a whole training with auto_upload, and 20 concurrent clients on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from t9k import em
from t9k_em_core import client as em_client
from t9k_em_core import artifact_files, metadata_file, transfer
from support.sdk_remote_util import local_md5s, make_artifact, make_run, restart, server_md5s


@pytest.mark.timeout(180)
@pytest.mark.parametrize('setup', ['own_server', 'team_server'])  # SQLite + folder; PostgreSQL + S3
def test_server_killed_mid_upload_then_upload_resumes(setup: str, workdir: Path, folder: str,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      request: pytest.FixtureRequest) -> None:
    server, key = request.getfixturevalue(setup)
    monkeypatch.setattr(transfer, 'BATCH_FILES', 2)  # many small batches: the kill lands mid-upload
    files = {f'd{i % 10}/f{i}.bin': os.urandom(8192) for i in range(250)}
    local = make_artifact('many', files, str(workdir))
    em.login(server.base_url, key)
    client = em_client.current()
    client.set_retry(em_client.default_retry(attempts=2))  # give up sooner once it is killed
    errors: list[BaseException] = []

    def first_upload() -> None:
        try:
            transfer.upload_artifact(local, folder, make_folder=True)
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            errors.append(e)

    uploader = threading.Thread(target=first_upload)
    uploader.start()
    node_path = f'/alice/{folder}/many'
    state = transfer.UploadState(client.host, node_path, local)
    deadline = time.monotonic() + 60
    while not os.path.exists(state.path) and time.monotonic() < deadline:
        time.sleep(0.02)  # the state file appears once some files have arrived
    server.kill()
    uploader.join(60)
    assert errors and isinstance(errors[0], (em_client.HostUnreachableError,
                                             em_client.RequestFailedError)), errors
    sent_before = len([rel for rel in files if transfer.UploadState(
        client.host, node_path, local).sent_as(rel)])
    assert 0 < sent_before < len(files)

    restart(server)
    node = transfer.start_upload(client, local, 'Artifact', f'/alice/{folder}', False, 'new')
    assert node.path == node_path  # the same node, found by its alternativeName
    resent = transfer.send_files(client, local, node.path,
                                 transfer.UploadState(client.host, node.path, local))
    assert resent <= len(files) + 1 - sent_before  # only what was missing (+ metadata.yaml)
    assert server_md5s(client, node.path) == local_md5s(local)
    em.logout()


def _train(run, steps: int = 300) -> float:
    """A short numpy training loop that logs every step; returns its duration."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 1))
    started = time.perf_counter()
    for step in range(steps):
        x = rng.standard_normal((256, 64))
        y = x @ w
        grad = x.T @ (x @ w - y + 0.01) / 256
        w -= 0.01 * grad
        run.log('train', {'loss': float(np.mean((x @ w - y) ** 2))}, step=step, epoch=step // 100)
    return time.perf_counter() - started


@pytest.mark.timeout(180)
def test_auto_upload_with_server_down_does_not_hurt_training(own_server, workdir: Path,
                                                             folder: str, monkeypatch) -> None:
    server, key = own_server
    em.login(server.base_url, key)
    server.kill()
    monkeypatch.setenv('EM_SYNC_INTERVAL', '0.2')
    monkeypatch.setenv('EM_SYNC_TIMEOUT', '90')

    baseline = em.create_run(name='baseline')
    base_s = _train(baseline)
    baseline.finish()

    run = em.create_run(name='auto', auto_upload=True, folder=folder, make_folder=True)
    run.hparams['lr'] = 0.01
    auto_s = _train(run)
    deadline = time.monotonic() + 30
    while run._syncer.last_error is None and time.monotonic() < deadline:
        time.sleep(0.1)
    # it did try (each attempt gives up after the client's retries), and kept the error to itself
    assert isinstance(run._syncer.last_error, em_client.HostUnreachableError)
    # training was not slowed down by the unreachable server (each attempt waits ~8 s in retries)
    assert auto_s < max(1.5 * base_s, base_s + 1.0), (auto_s, base_s)
    assert len(run.metrics['train']) == 300  # everything is on disk

    restart(server)
    run.finish()  # waits for the last sync
    client = em_client.current()
    node_path = f'/alice/{folder}/auto'
    assert server_md5s(client, node_path) == local_md5s(run.local)
    assert metadata_file.read_metadata(run.local)['status'] == 'Complete'
    em.logout()


def _concurrent_uploads(url: str, key: str, folder: str, clients: int = 20) -> None:
    runs = [make_run('same', steps=20) for _ in range(clients)]

    def upload(run) -> transfer.Node:
        own = em_client.AISClient(url, key)
        own.user = own.userinfo()
        try:
            return transfer.upload_run(run.local, folder, make_folder=True, client=own,
                                       progress=False)
        finally:
            own.close()

    with ThreadPoolExecutor(clients) as pool:
        nodes = list(pool.map(upload, runs))  # raises the first error, if any

    checker = em_client.AISClient(url, key)
    checker.user = 'alice'
    listed = list(checker.iter_nodes(f'/alice/{folder}'))
    assert len(listed) == clients  # none lost, none duplicated
    assert sorted(n['name'] for n in listed) == sorted(
        ['same'] + [r.alternative_name for r in runs if not nodes[runs.index(r)].path.endswith('/same')])
    assert len({n.id for n in nodes}) == clients
    for run, node in zip(runs, nodes):
        local_sizes = {rel: os.path.getsize(os.path.join(run.local, rel))
                       for rel in artifact_files.walk_files(run.local)}
        assert checker.list_objects(node.path) == local_sizes
        assert metadata_file.read_metadata(run.local)['remote'][-1]['id'] == node.id
    checker.close()


@pytest.mark.timeout(180)
def test_twenty_concurrent_clients_sqlite(em_server, workdir: Path, folder: str) -> None:
    _concurrent_uploads(em_server.url, em_server.api_key, folder)


@pytest.mark.timeout(180)
def test_twenty_concurrent_clients_postgresql(pg_server, workdir: Path, folder: str) -> None:
    server, key = pg_server
    _concurrent_uploads(server.base_url, key, folder)
