"""auto_upload against a live server: the server copy follows the Run while it trains."""

from __future__ import annotations

import os
import time

import pytest

from t9k import em
from t9k_em_core import client as em_client
from t9k_em_core import metadata_file, run_files
from support.sdk_remote_util import local_md5s, server_md5s, wait_for


def _server_sizes(client: em_client.AISClient, node_path: str) -> dict[str, int]:
    try:
        return client.list_objects(node_path)
    except em_client.NodeNotFoundError:
        return {}


@pytest.mark.timeout(120)
def test_live_run_is_synced_while_training(logged_in, folder: str, monkeypatch) -> None:
    client = logged_in
    monkeypatch.setenv('EM_SYNC_INTERVAL', '0.2')
    run = em.create_run(name='live', auto_upload=True, folder=folder, make_folder=True)
    node_path = f'/alice/{folder}/live'
    for step in range(100):
        run.log('train', {'loss': 1.0 / (step + 1)}, step=step)
    run.hparams['lr'] = 0.5
    metric_file = run_files.metric_path(run.local, 'train')

    # while the Run is still running, the appended metric file and new hparams reach the server
    assert wait_for(lambda: os.path.exists(metric_file) and _server_sizes(client, node_path).get(
        'metrics/train.yaml') == os.path.getsize(metric_file))
    assert wait_for(lambda: server_md5s(client, node_path).get('hyperparameters.yaml') ==
                     local_md5s(run.local)['hyperparameters.yaml'])

    model = em.create_artifact('model')
    model.add_reference('s3://bucket/model.pt')
    run.mark_output(model)  # a new association: the Artifact goes up and the edge is added
    assert wait_for(lambda: len(client.graph(client.node_info(node_path)['id'])[1]) == 1)

    run.finish()  # waits for the final sync
    assert server_md5s(client, node_path) == local_md5s(run.local)
    metadata = metadata_file.read_metadata(run.local)
    assert metadata['status'] == 'Complete'
    assert [r['action'] for r in metadata['remote']] == ['upload']  # one node, one record


@pytest.mark.timeout(120)
def test_sync_stops_on_conflict_error_and_finish_says_how_to_complete(
        logged_in, folder: str, monkeypatch, capsys) -> None:
    monkeypatch.setenv('EM_SYNC_INTERVAL', '0.2')
    first = em.create_run(name='taken')
    first.finish()
    first.upload(folder=folder, make_folder=True)
    run = em.create_run(name='taken', auto_upload=True, folder=folder, conflict_strategy='error')
    run.log('train', {'loss': 1.0}, step=0)
    started = time.monotonic()
    run.finish()
    assert time.monotonic() - started < 10  # a permanent stop is not waited for
    err = capsys.readouterr().err
    assert "Run already exists in Folder" in err
    assert f'em upload {run.local} -f {folder} -c error' in err
    assert metadata_file.read_metadata(run.local)['remote'] == []


@pytest.mark.timeout(120)
def test_sync_stops_for_good_on_a_missing_folder(logged_in, folder: str, monkeypatch,
                                                 capsys) -> None:
    """A missing Folder (no make_folder) is a TransferError: the syncer stops at once instead
    of retrying, and finish says how to complete the upload."""
    monkeypatch.setenv('EM_SYNC_INTERVAL', '0.2')
    run = em.create_run(name='nowhere', auto_upload=True, folder=f'{folder}/missing')
    run.log('train', {'loss': 1.0}, step=0)
    started = time.monotonic()
    run.finish()
    assert time.monotonic() - started < 10  # a permanent stop is not waited for
    err = capsys.readouterr().err
    assert f"Folder does not exist: '/alice/{folder}/missing'" in err
    assert f'em upload {run.local} -f {folder}/missing -c new' in err
    assert metadata_file.read_metadata(run.local)['remote'] == []


@pytest.mark.timeout(60)
def test_auto_upload_without_login_keeps_data_local(workdir, monkeypatch, capsys) -> None:
    monkeypatch.setenv('EM_SYNC_INTERVAL', '0.2')
    em_client.logout()
    run = em.create_run(name='offline', auto_upload=True)
    run.log('train', {'loss': 1.0}, step=0)
    started = time.monotonic()
    run.finish()
    assert time.monotonic() - started < 10
    assert 'not logged in' in capsys.readouterr().err
    assert len(run.metrics['train']) == 1


@pytest.mark.timeout(60)
def test_folder_path_is_the_upload_folder(logged_in, folder: str) -> None:
    """The seed's ``create_run(..., folder_path=...)`` means ``folder``."""
    run = em.create_run(name='aliased', auto_upload=True, folder_path=folder, make_folder=True)
    run.log('train', {'loss': 1.0}, step=0)
    run.finish()
    assert server_md5s(logged_in, f'/alice/{folder}/aliased') == local_md5s(run.local)
    with pytest.raises(ValueError, match='give one of them'):
        em.create_run(name='both', folder='a', folder_path='b')
