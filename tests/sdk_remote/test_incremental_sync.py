"""Incremental sync (``t9k_em_core.incremental``) against real server processes: a live Run's
growing files travel as appends and end up equal to a whole upload; a lost reply is taken as
delivered, a diverged object is resynced; a rewound Run (``run.rewind``: a segment with
``metricBytes``, the files cut in place) is cut back on the server, by the live syncer and by a
resumed one in a new Syncer, with the server's series and summaries following; against a server
with the extension off everything goes whole."""

from __future__ import annotations

import logging
import os

import pytest

from support.em_server_process import ServerProcess
from support.sdk_remote_util import local_md5s, server_md5s, wait_for
from t9k import em
from t9k_em_core import client as em_client
from t9k_em_core import incremental, metadata_file, metrics, run_files, transfer

pytestmark = pytest.mark.timeout(180)

TRAIN = run_files.metric_index_path('train')


def _synced(client: em_client.AISClient, node_path: str, run_dir: str, rel: str = TRAIN) -> bool:
    try:
        return client.list_objects(node_path).get(rel) == os.path.getsize(os.path.join(run_dir, rel))
    except (em_client.NodeNotFoundError, FileNotFoundError):
        return False


def _log(run, steps: range, offset: float = 0.0) -> None:
    """Logs ``steps`` and waits until they are on disk."""
    for step in steps:
        run.log('train', {'loss': offset + 1.0 / (step + 1), 'acc': step / 1000}, step=step)
    metrics.flush_all()


def _rewind(run, step: int) -> int:
    """``run.rewind(step)``; returns the length of ``metrics/train.yaml`` after the cut."""
    run.rewind(step, reason='test')
    return metadata_file.read_metadata(run.local)[metadata_file.SEGMENTS][-1]['metricBytes']['train']


def _server_view(client: em_client.AISClient, node_path: str) -> tuple[int, dict]:
    """(points of the loss series, loss summary) as the server indexed them."""
    node = client.node_info(node_path)['id']
    series = client.session.get(f'{client.host}/api/ui/v1/runs/{node}/series',
                                params={'type': 'train', 'metric': 'loss', 'max_points': 100000}).json()
    runs = client.session.get(f'{client.host}/apis/v1/search/runs',
                              params={'folder': node_path.rsplit('/', 1)[0]}).json()['runs']
    (record,) = [r for r in runs if r['id'] == node]
    return series['total'], record['summaries']['train']['loss']


def test_live_run_sends_only_new_bytes(logged_in, folder: str) -> None:
    client = logged_in
    run = em.create_run(name='live', auto_upload=True, folder=folder, make_folder=True)
    node_path = f'/alice/{folder}/live'
    for burst in range(5):
        _log(run, range(burst * 200, (burst + 1) * 200))
        print(f'burst {burst}')  # stdout.log grows too
        assert wait_for(lambda: _synced(client, node_path, run.local), 30)
    appender = run._syncer._appender
    assert appender is not None and run._syncer.interval == 0.5
    run.finish()
    assert server_md5s(client, node_path) == local_md5s(run.local)
    grown = sum(os.path.getsize(os.path.join(run.local, rel)) for rel in local_md5s(run.local)
                if run_files.grows_by_appends(rel))
    assert grown <= appender.bytes_sent <= 1.1 * grown  # each byte sent about once
    points, loss = _server_view(client, node_path)
    assert points == 1000 and loss['count'] == 1000 and loss['last_step'] == 999


def test_lost_reply_and_diverged_object(logged_in, folder: str, monkeypatch) -> None:
    client = logged_in
    run = em.create_run(name='lossy')
    _log(run, range(100))
    run.finish()
    node = transfer.upload_run(run.local, folder, make_folder=True)
    state = transfer.UploadState(client.host, node.path, run.local)
    appender = incremental.Appender(client, node.path, state)
    full = os.path.join(run.local, TRAIN)
    resumed = em.load_run(run.local)
    _log(resumed, range(100, 200))
    resumed.finish()

    real, offsets = client.append_object, []

    def reply_lost_once(path: str, offset: int, data: bytes) -> dict:
        offsets.append(offset)
        reply = real(path, offset, data)
        if len(offsets) == 1:
            raise em_client.HostUnreachableError('the reply was lost')
        return reply

    monkeypatch.setattr(client, 'append_object', reply_lost_once)
    with pytest.raises(em_client.HostUnreachableError):
        appender.send(TRAIN, full)
    appender.send(TRAIN, full)  # sends it again: the 409 says it arrived
    assert len(offsets) == 2 and offsets[0] == offsets[1]
    assert server_md5s(client, node.path)[TRAIN] == local_md5s(run.local)[TRAIN]

    # someone else overwrote the object: the next append gets a 409 and resyncs
    client.upload_object(f'{node.path}/{TRAIN}', os.path.join(run.local, metadata_file.METADATA_FILE))
    again = em.load_run(run.local)
    _log(again, range(200, 250))
    again.finish()
    appender.send(TRAIN, full)
    assert server_md5s(client, node.path)[TRAIN] == local_md5s(run.local)[TRAIN]


def test_rewind_cuts_the_server_copy(logged_in, folder: str, caplog) -> None:
    caplog.set_level(logging.INFO, logger='t9k_em_core.incremental')
    client = logged_in
    run = em.create_run(name='rewound', auto_upload=True, folder=folder, make_folder=True)
    node_path = f'/alice/{folder}/rewound'
    for burst in range(3):
        _log(run, range(burst * 500, (burst + 1) * 500))
        assert wait_for(lambda: _synced(client, node_path, run.local), 30)
    node_id = client.node_info(node_path)['id']
    cut = _rewind(run, 1199)
    _log(run, range(1200, 1300), offset=10.0)  # the redone steps, other values
    assert wait_for(lambda: _synced(client, node_path, run.local), 30)
    assert 'cut back to %d bytes' % cut in caplog.text
    first = run._syncer._appender.bytes_sent
    run.finish()
    assert server_md5s(client, node_path)[TRAIN] == local_md5s(run.local)[TRAIN]
    points, loss = _server_view(client, node_path)
    assert points == 1300 and loss['count'] == 1300 and loss['max'] > 10
    assert first < 1.5 * os.path.getsize(os.path.join(run.local, TRAIN))  # no whole re-send

    # a restarted job: a new process (a new Syncer, its state from the state file) rewinds again
    caplog.clear()
    resumed = em.load_run(run.local, auto_upload=True, folder=folder)
    before = os.path.getsize(os.path.join(run.local, TRAIN))
    cut = _rewind(resumed, 699)
    _log(resumed, range(700, 800), offset=20.0)
    resumed.finish()
    assert client.node_info(node_path)['id'] == node_id  # the same node
    assert {r['id'] for r in metadata_file.read_metadata(run.local)['remote']} == {node_id}
    assert server_md5s(client, node_path)[TRAIN] == local_md5s(run.local)[TRAIN]
    points, loss = _server_view(client, node_path)
    assert points == 800 and loss['count'] == 800 and loss['max'] > 20
    detail = client.session.get(f'{client.host}/api/ui/v1/runs/{node_id}').json()
    assert [(s['step'], s['reason']) for s in detail['segments']] == [(1199, 'test'), (699, 'test')]
    sent = resumed._syncer._appender.bytes_sent
    after_cut = os.path.getsize(os.path.join(run.local, TRAIN)) - cut
    assert sent < after_cut + (before - cut)  # from the checkpoint before the cut, not from 0


@pytest.fixture
def plain_server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp('em-server-plain'),
                           env={'EM_SERVER_APPEND': '0', 'EM_SERVER_BATCH_UPLOAD': '0'})
    _, key = server.add_user('alice')
    server.start()
    yield server, key
    server.stop()


def test_fallback_to_whole_files_without_the_extension(plain_server, workdir, folder: str) -> None:
    server, key = plain_server
    em_client.login(server.base_url, key)
    try:
        client = em_client.current()
        run = em.create_run(name='plain', auto_upload=True, folder=folder, make_folder=True)
        node_path = f'/alice/{folder}/plain'
        for burst in range(3):
            _log(run, range(burst * 100, (burst + 1) * 100))
            assert wait_for(lambda: _synced(client, node_path, run.local), 30)
        assert client.can_append() is False and run._syncer._appender is None
        _rewind(run, 149)
        _log(run, range(150, 180), offset=10.0)
        run.finish()
        assert server_md5s(client, node_path) == local_md5s(run.local)
    finally:
        em_client.logout()


def test_a_file_the_server_lacks_goes_whole_then_grows_by_appends(logged_in, folder: str) -> None:
    client = logged_in
    run = em.create_run(name='first')
    _log(run, range(300))
    run.finish()
    node = transfer.start_upload(client, run.local, 'Run', f'/alice/{folder}', True, 'new')
    state = transfer.UploadState(client.host, node.path, run.local)
    appender = incremental.Appender(client, node.path, state)
    appender.max_bytes = 4096  # the file takes several appends: it goes whole instead
    transfer.send_files(client, run.local, node.path, state, progress=False, appender=appender)
    assert appender.bytes_sent == 0
    assert server_md5s(client, node.path)[TRAIN] == local_md5s(run.local)[TRAIN]
    more = em.load_run(run.local)
    _log(more, range(300, 320))
    more.finish()
    transfer.send_files(client, run.local, node.path, state, progress=False, appender=appender)
    grown = os.path.getsize(os.path.join(run.local, TRAIN)) - client.list_objects(node.path)[TRAIN]
    assert grown == 0 and 0 < appender.bytes_sent < 4096 * 2
    assert server_md5s(client, node.path) == local_md5s(run.local)
