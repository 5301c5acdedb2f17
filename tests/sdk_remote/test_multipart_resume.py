"""Resuming multipart uploads at part granularity, against a real server subprocess.

The multipart threshold and part unit are lowered (3 MiB file, 15 parts of 208 KiB) so that the
real code paths run without writing 100+ MiB. Which parts travel is read from the server's own
access log and multipart records, not from the client.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple, Optional
from urllib.parse import parse_qs

import pytest

from support.em_server_process import ServerProcess
from t9k_em_core import client as em_client
from t9k_em_core import transfer
from t9k_em_server.config import ServerConfig
from t9k_em_server.metadata_store import MetadataStore
from support.sdk_remote_util import make_artifact, restart, server_md5s

pytestmark = pytest.mark.timeout(120)

SIZE = 3 * (1 << 20)
UNIT = 16 << 10  # part size floor(sqrt(3 MiB / 16 KiB)) * 16 KiB = 208 KiB: 15 parts
PARTS = 15
_ACCESS = re.compile(r'"(PUT|POST) /apis/v1/objects/multipart(?:/([^?\s]+))?\?(\S*) HTTP/[\d.]+" '
                     r'(\d{3})')


class Call(NamedTuple):
    """A multipart request in the server's access log."""

    method: str
    upload_id: Optional[str]  # None: the start of an upload
    part: Optional[int]       # None: a start or a completion
    status: int


def multipart_calls(log: str, object_path: str) -> list[Call]:
    """The multipart requests for ``object_path`` in an access log, in order."""
    calls = []
    for method, upload_id, query, status in _ACCESS.findall(log):
        params = parse_qs(query)
        if params.get('path') == [object_path]:
            part = params.get('partNumber')
            calls.append(Call(method, upload_id or None, int(part[0]) if part else None,
                              int(status)))
    return calls


def parts_put(calls: list[Call], upload_id: str) -> list[int]:
    return sorted(c.part for c in calls if c.part is not None and c.upload_id == upload_id)


def server_parts(server: ServerProcess, upload_id: str) -> dict[int, str]:
    """The server's records of an upload's parts: number to MD5."""
    meta = MetadataStore(ServerConfig(data_dir=server.data_dir, db_url=server.db).resolved_db_url)
    try:
        return {n: md5 for n, _, _, md5 in meta.list_parts(upload_id)}
    finally:
        meta.close()


def forget_upload(server: ServerProcess, upload_id: str) -> None:
    """Makes the server forget an upload, as its expiry after a week does."""
    meta = MetadataStore(ServerConfig(data_dir=server.data_dir, db_url=server.db).resolved_db_url)
    try:
        meta.finish_multipart(upload_id)
    finally:
        meta.close()


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, 'MULTIPART_THRESHOLD', 1 << 20)
    monkeypatch.setattr(transfer, 'PART_UNIT', UNIT)


def big_artifact(tmp: Path) -> tuple[str, str]:
    """An Artifact holding ``big.bin`` of ``SIZE`` random bytes: (its dir, the file's MD5)."""
    data = os.urandom(SIZE)
    return make_artifact('big', {'big.bin': data}, str(tmp)), hashlib.md5(data).hexdigest()


def recorded_upload(client: em_client.AISClient, node_path: str,
                    local: str) -> Optional[tuple[str, dict[int, str]]]:
    """The multipart upload of big.bin as the state file on disk records it."""
    st = os.stat(os.path.join(local, 'big.bin'))
    return transfer.UploadState(client.host, node_path, local).multipart_of(
        'big.bin', f'{node_path}/big.bin', st.st_size, st.st_mtime_ns, transfer.part_size(SIZE))


def test_part_size_in_units() -> None:
    assert transfer.part_size(101 * (1 << 20) + 1) == 10 << 20  # spec §5.12
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transfer, 'PART_UNIT', UNIT)
        assert transfer.part_size(SIZE) == 13 * UNIT
    assert -(-SIZE // (13 * UNIT)) == PARTS


def test_killed_client_resumes_after_server_restart(own_server, workdir: Path, folder: str,
                                                    small_parts: None) -> None:
    server, key = own_server
    local, md5 = big_artifact(workdir)
    node_path, sent = f'/alice/{folder}/big', 7
    client = em_client.AISClient(server.base_url, key)
    script = Path(__file__).parents[1] / 'support' / 'stalled_multipart.py'
    child = subprocess.Popen([sys.executable, str(script), server.base_url, key, local, folder,
                              str(sent), str(1 << 20), str(UNIT)])
    try:
        deadline = time.monotonic() + 60
        while True:  # the server has `sent` parts, the state file on disk some of them
            assert child.poll() is None and time.monotonic() < deadline, 'the child did not stall'
            recorded = recorded_upload(client, node_path, local)
            if recorded and len(recorded[1]) >= transfer.UploadState.SAVE_EVERY_PARTS and len(
                    server_parts(server, recorded[0])) == sent:
                break
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    upload_id, etags = recorded_upload(client, node_path, local)
    on_server = server_parts(server, upload_id)
    assert len(on_server) == sent > len(etags)  # the last part sent never got its eTag recorded
    assert all(on_server[n] == tag for n, tag in etags.items())

    server.kill()
    restart(server)  # a new server process (and a new access log)
    client.user = client.userinfo()
    node = transfer.upload_artifact(local, folder, client=client, progress=False)

    assert node.path == node_path
    calls = multipart_calls(server.log_text(), f'{node_path}/big.bin')
    assert not [c for c in calls if c.upload_id is None]  # no new upload was started
    # exactly the parts without a recorded eTag went, the one the server had already included
    assert parts_put(calls, upload_id) == sorted(set(range(1, PARTS + 1)) - set(etags))
    assert set(on_server) - set(etags) <= set(parts_put(calls, upload_id))
    assert [c for c in calls if c.part is None] == [Call('POST', upload_id, None, 200)]
    assert server_md5s(client, node_path)['big.bin'] == md5
    assert recorded_upload(client, node_path, local) is None  # done: the file is recorded as sent
    assert transfer.UploadState(client.host, node_path, local).sent_as('big.bin') == (
        SIZE, os.stat(os.path.join(local, 'big.bin')).st_mtime_ns)
    client.close()


def _interrupted_upload(client: em_client.AISClient, local: str, folder: str,
                        monkeypatch: pytest.MonkeyPatch, method: str, fail_after: int) -> str:
    """Uploads ``local`` with ``AISClient.<method>`` failing from call ``fail_after + 1`` on;
    returns the node path. The state saved on failure records the parts that arrived."""
    real = getattr(em_client.AISClient, method)
    lock, calls = threading.Lock(), [0]

    def failing(self: em_client.AISClient, *args: object) -> object:
        with lock:
            calls[0] += 1
            call = calls[0]
        if call > fail_after:
            raise em_client.HostUnreachableError('interrupted')
        return real(self, *args)

    with monkeypatch.context() as patch:
        patch.setattr(em_client.AISClient, method, failing)
        with pytest.raises(em_client.HostUnreachableError, match='interrupted'):
            transfer.upload_artifact(local, folder, make_folder=True, client=client,
                                     progress=False)
    return f'/alice/{folder}/big'


def test_unknown_upload_id_falls_back_to_a_new_upload(em_server, logged_in, folder: str,
                                                      workdir: Path, small_parts: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    local, md5 = big_artifact(workdir)
    node_path = _interrupted_upload(logged_in, local, folder, monkeypatch, 'upload_part', 5)
    old_id, etags = recorded_upload(logged_in, node_path, local)
    assert 0 < len(etags) <= 5
    forget_upload(em_server.process, old_id)  # the server's data was reset / the upload expired
    offset = len(em_server.process.log_text())

    transfer.upload_artifact(local, folder, client=logged_in, progress=False)

    calls = multipart_calls(em_server.process.log_text()[offset:], f'{node_path}/big.bin')
    old = [c for c in calls if c.upload_id == old_id]
    assert old and all(c.method == 'PUT' and c.status == 404 for c in old)
    new_ids = {c.upload_id for c in calls} - {old_id, None}
    assert len(new_ids) == 1 and [c for c in calls if c.upload_id is None] == [
        Call('POST', None, None, 200)]
    new_id = new_ids.pop()
    assert parts_put(calls, new_id) == list(range(1, PARTS + 1))  # the whole file, once
    assert calls[-1] == Call('POST', new_id, None, 200)
    assert server_md5s(logged_in, node_path)['big.bin'] == md5
    assert recorded_upload(logged_in, node_path, local) is None


def test_upload_completed_already_falls_back_to_a_new_upload(
        em_server, logged_in, folder: str, workdir: Path, small_parts: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    local, md5 = big_artifact(workdir)
    node_path = _interrupted_upload(logged_in, local, folder, monkeypatch, 'complete_multipart', 0)
    old_id, etags = recorded_upload(logged_in, node_path, local)
    assert sorted(etags) == list(range(1, PARTS + 1))  # every part, saved at the failure
    # the completion reached the server, its reply was lost: the server forgot the upload
    logged_in.complete_multipart(old_id, f'{node_path}/big.bin', [etags[n] for n in sorted(etags)])
    offset = len(em_server.process.log_text())

    transfer.upload_artifact(local, folder, client=logged_in, progress=False)

    calls = multipart_calls(em_server.process.log_text()[offset:], f'{node_path}/big.bin')
    assert calls[0] == Call('POST', old_id, None, 404)  # no part missing: straight to completion
    assert calls[1] == Call('POST', None, None, 200)
    new_ids = {c.upload_id for c in calls} - {old_id, None}
    assert len(new_ids) == 1
    new_id = new_ids.pop()
    assert parts_put(calls, new_id) == list(range(1, PARTS + 1))
    assert calls[-1] == Call('POST', new_id, None, 200)
    assert server_md5s(logged_in, node_path)['big.bin'] == md5


def test_changed_file_starts_a_new_upload(em_server, logged_in, folder: str, workdir: Path,
                                          small_parts: None,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    local, _ = big_artifact(workdir)
    node_path = _interrupted_upload(logged_in, local, folder, monkeypatch, 'upload_part', 5)
    old_id, _ = recorded_upload(logged_in, node_path, local)
    with open(os.path.join(local, 'big.bin'), 'r+b') as f:
        f.write(b'changed')  # same size, new mtime
    offset = len(em_server.process.log_text())

    transfer.upload_artifact(local, folder, client=logged_in, progress=False)

    calls = multipart_calls(em_server.process.log_text()[offset:], f'{node_path}/big.bin')
    assert not [c for c in calls if c.upload_id == old_id]
    assert calls[0] == Call('POST', None, None, 200)
    assert len(calls) == PARTS + 2
    with open(os.path.join(local, 'big.bin'), 'rb') as f:
        assert server_md5s(logged_in, node_path)['big.bin'] == hashlib.md5(f.read()).hexdigest()
