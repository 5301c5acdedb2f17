"""Small files travel in batches (``POST /apis/v1/objects/batch``, our server's extension), and
fall back to one request per file against a server without it (started with
``EM_SERVER_BATCH_UPLOAD=0``, which answers the batch 404 as a real AIStore server would)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.em_server_process import ServerProcess
from t9k_em_core import client as em_client
from t9k_em_core import transfer
from support.sdk_remote_util import local_md5s, make_artifact, server_md5s

pytestmark = pytest.mark.timeout(180)


def many_small_files(count: int) -> dict[str, bytes]:
    files = {f'part{i % 4}/f{i}.txt': os.urandom(i % 3000 + 1) for i in range(count)}
    files['big.bin'] = os.urandom(transfer.BATCH_FILE_LIMIT + 10)  # over the limit: its own POST
    return files


def test_many_small_files_round_trip_through_batches(em_server, workdir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, 'BATCH_FILES', 100)  # several batches, sent concurrently
    client = em_client.AISClient(em_server.url, em_server.api_key)
    client.user = client.userinfo()
    local = make_artifact('smalls', many_small_files(450), str(workdir))
    node = transfer.upload_artifact(local, 'batches', make_folder=True, client=client,
                                    progress=False)
    assert client.batch_upload is True
    assert server_md5s(client, node.path) == local_md5s(local)
    # A changed small file is sent again (in a batch) on the next upload; the rest is skipped.
    with open(os.path.join(local, 'part1', 'f1.txt'), 'wb') as f:
        f.write(b'changed')
    assert transfer.send_files(client, local, node.path,
                               transfer.UploadState(client.host, node.path, local)) == 1
    assert server_md5s(client, node.path) == local_md5s(local)
    target = transfer.download(node.path, 'Artifact', client=client, progress=False)
    downloaded = local_md5s(target)
    downloaded.pop('metadata.yaml')  # it gained a 'download' record
    assert downloaded == {k: v for k, v in local_md5s(local).items() if k != 'metadata.yaml'}


def test_falls_back_to_single_uploads_without_batch_endpoint(tmp_path_factory, workdir: Path) -> None:
    server = ServerProcess(tmp_path_factory.mktemp('em-server-nobatch'),
                           env={'EM_SERVER_BATCH_UPLOAD': '0'})
    _, key = server.add_user('alice')
    server.start()
    try:
        client = em_client.AISClient(server.base_url, key)
        client.user = client.userinfo()
        with pytest.raises(em_client.BatchUnsupportedError):
            client.upload_batch('/alice/nowhere', [])
        client.batch_upload = None  # forget it: the upload must find out by itself
        local = make_artifact('smalls', many_small_files(120), str(workdir))
        node = transfer.upload_artifact(local, 'nobatch', make_folder=True, client=client,
                                        progress=False)
        assert client.batch_upload is False
        assert server_md5s(client, node.path) == local_md5s(local)
    finally:
        server.stop()
