"""Our client against the real server (a subprocess on loopback): login, upload with the conflict
rules of spec §6.3–6.5, lineage, multipart, resume, and download round trips."""

from __future__ import annotations

import json
import re
import os
from pathlib import Path

import pytest

from t9k import em
from t9k_em_core import client as em_client
from t9k_em_core import metadata_file, metric_file, run_files, transfer
from support.sdk_remote_util import local_md5s, make_artifact, make_run, server_md5s

pytestmark = pytest.mark.timeout(120)


def test_login_names_user_and_rejects_unknown_key(em_server, workdir) -> None:
    em.login(em_server.url, em_server.api_key)
    try:
        assert em_client.current().user == 'alice'
        em.logout()
        with pytest.raises(RuntimeError, match='Not logged in'):
            em_client.current()
        with pytest.raises(em_client.KeyRejectedError, match=re.escape('rejected the API key ****5555')):
            em.login(em_server.url, '11111111-2222-3333-4444-555555555555')
        assert not em_client.is_logged_in()
    finally:
        em.logout()


def test_login_from_config_file(em_server, workdir: Path) -> None:
    url, key = em_server.url, em_server.api_key
    import t9k
    (workdir / 't9k-config.yaml').write_text(
        f'current-context: c\ncontexts:\n- name: c\n  server: {url}\n  prefixes:\n'
        f'    aistore: ""\n    asset-hub: ""\n  auth:\n    apikey: {key}\n')
    t9k.CONFIG.reload()
    try:
        em.login()
        assert em_client.current().host == url
    finally:
        em.logout()
        t9k.CONFIG.reload()


def test_run_round_trip_with_artifacts_and_lineage(logged_in, folder: str, tmp_path: Path) -> None:
    client = logged_in
    dataset = em.load_artifact(make_artifact('ds', {'data/w.bin': os.urandom(3000)}, str(tmp_path)))
    model = em.create_artifact('model')
    model.add_reference('s3://bucket/model.tar.gz')
    run = make_run('mnist', steps=200, inputs=[dataset], outputs=[model])

    run.upload(folder=f'{folder}/sub', make_folder=True)

    node_path = f'/alice/{folder}/sub/mnist'
    info = client.node_info(node_path)
    assert info['type'] == 'Run'
    assert json.loads(info['extra'])['alternativeName'] == run.alternative_name
    # the server copy equals the local directory byte for byte, upload record included
    assert server_md5s(client, node_path) == local_md5s(run.local)
    record = metadata_file.read_metadata(run.local)['remote'][-1]
    assert list(record) == ['action', 'timestamp', 'host', 'path', 'id']
    assert (record['action'], record['host'], record['path'], record['id']) == (
        'upload', client.host, node_path, info['id'])
    # the Artifacts went up into the same Folder, with their own records, and the edges exist
    ds_node = client.node_info(f'/alice/{folder}/sub/ds')
    model_node = client.node_info(f'/alice/{folder}/sub/model')
    assert server_md5s(client, f'/alice/{folder}/sub/ds') == local_md5s(dataset.local)
    assert list(metadata_file.read_metadata(dataset.local)['remote'][-1]) == [
        'action', 'timestamp', 'host', 'id', 'path']
    assert client.graph(info['id']) == ([ds_node['id']], [model_node['id']])

    # a second upload reuses the node (same alternativeName) and adds no edges twice
    run.upload(folder=f'{folder}/sub')
    assert [r['id'] for r in metadata_file.read_metadata(run.local)['remote']] == [info['id']] * 2
    assert client.graph(info['id']) == ([ds_node['id']], [model_node['id']])
    assert len(list(client.iter_nodes(f'/alice/{folder}/sub'))) == 3

    # download into other parent dirs: same files, plus a `download` record
    os.environ['EM_RUN_PARENT_DIR'] = str(tmp_path / 'elsewhere' / 'runs')
    os.environ['EM_ARTIFACT_PARENT_DIR'] = str(tmp_path / 'elsewhere' / 'artifacts')
    loaded_ds = em.load_artifact(f'{folder}/sub/ds')
    assert loaded_ds.local == str(tmp_path / 'elsewhere' / 'artifacts' / dataset.alternative_name)
    assert loaded_ds.objects['data/w.bin']['checksum'] == dataset.objects['data/w.bin']['checksum']
    target = transfer.download(node_path, 'Run')
    assert target == str(tmp_path / 'elsewhere' / 'runs' / run.alternative_name)
    server_copy = server_md5s(client, node_path)
    downloaded = local_md5s(target)
    assert {k: v for k, v in downloaded.items() if k != 'metadata.yaml'} == {
        k: v for k, v in server_copy.items() if k != 'metadata.yaml'}
    remote = metadata_file.read_metadata(target)['remote']
    assert [r['action'] for r in remote] == ['upload', 'upload', 'download']
    assert metric_file.read_entries(run_files.metric_path(target, 'train'))[-1]['sequence']['step'] == 199


def test_conflict_strategies(logged_in, folder: str) -> None:
    client = logged_in
    first = make_run('same', steps=1)
    first.upload(folder=folder, make_folder=True)
    other = make_run('same', steps=1)
    base = f'/alice/{folder}'

    assert transfer.upload_run(other.local, folder, conflict_strategy='skip') is None
    assert metadata_file.read_metadata(other.local)['remote'] == []  # nothing recorded when skipped
    with pytest.raises(RuntimeError, match=f"Run already exists in Folder {base}: 'same'"):
        transfer.upload_run(other.local, folder, conflict_strategy='error')
    node = transfer.upload_run(other.local, folder, conflict_strategy='new')
    assert node.path == f'{base}/{other.alternative_name}'
    third = make_run('same', steps=1)
    replaced = transfer.upload_run(third.local, folder, conflict_strategy='replace')
    assert replaced.path == f'{base}/same'
    assert json.loads(client.node_info(f'{base}/same')['extra'])['alternativeName'] == \
        third.alternative_name
    names = sorted(n['name'] for n in client.iter_nodes(base))
    assert names == sorted(['same', other.alternative_name])
    with pytest.raises(ValueError, match='Invalid conflict_strategy'):
        third.upload(folder=folder, conflict_strategy='overwrite')


def test_missing_folder_rules(logged_in, folder: str) -> None:
    run = make_run('r', steps=1)
    with pytest.raises(ValueError, match=f"Folder does not exist: '/alice/{folder}/x'") as raised:
        run.upload(folder=f'{folder}/x')
    assert isinstance(raised.value, transfer.FolderNotFoundError)  # a TransferError: final
    # `default` is made on demand, as in 0.6.0b0
    node = transfer.upload_run(run.local, client=logged_in)
    assert node.path.startswith('/alice/default/')


def test_em_upload_of_a_parent_directory(logged_in, folder: str, tmp_path: Path) -> None:
    make_run('a', steps=3)
    make_run('b', steps=3)
    em.upload(os.environ['EM_RUN_PARENT_DIR'], folder=folder, make_folder=True)
    assert sorted(n['name'] for n in logged_in.iter_nodes(f'/alice/{folder}')) == ['a', 'b']
    with pytest.raises(RuntimeError, match='No Run/Artifact is to be uploaded'):
        em.upload(str(tmp_path / 'upload-state'), folder=folder)


def test_multipart_upload_of_a_large_file(logged_in, folder: str, tmp_path: Path) -> None:
    big = tmp_path / 'big.bin'
    with open(big, 'wb') as f:  # 101 MiB + 1 byte: 10 parts of 10 MiB and a short last one
        for _ in range(101):
            f.write(os.urandom(1 << 20))
        f.write(b'x')
    artifact = em.create_artifact('big')
    artifact.add_file(str(big))
    node = transfer.upload_artifact(artifact.local, folder, make_folder=True)
    sizes = logged_in.list_objects(node.path)
    assert sizes['big.bin'] == 101 * (1 << 20) + 1
    assert server_md5s(logged_in, node.path)['big.bin'] == artifact.objects['big.bin']['checksum']


def test_reupload_sends_only_what_changed(logged_in, folder: str, tmp_path: Path) -> None:
    files = {f'f{i}.bin': os.urandom(100) for i in range(30)}
    local = make_artifact('many', files, str(tmp_path))
    node = transfer.upload_artifact(local, folder, make_folder=True)
    state = transfer.UploadState(logged_in.host, node.path, local)
    assert state.sent_as('f0.bin') is not None
    with open(os.path.join(local, 'f3.bin'), 'ab') as f:
        f.write(b'more')
    # a new upload record changes metadata.yaml; f3.bin changed: exactly those two are sent
    transfer.start_upload(logged_in, local, 'Artifact', f'/alice/{folder}', False, 'new')
    sent = transfer.send_files(logged_in, local, node.path, state)
    assert sent == 2
    assert server_md5s(logged_in, node.path) == local_md5s(local)
    # an object lost on the server is sent again even though the state says it was sent
    logged_in.delete_node(node.path)
    node = transfer.upload_artifact(local, folder)
    assert server_md5s(logged_in, node.path) == local_md5s(local)


def test_download_errors(logged_in, folder: str) -> None:
    with pytest.raises(OSError, match='Not a local directory or a remote path'):
        em.load_run(f'{folder}/nothing')
    run = make_run('r', steps=1)
    run.upload(folder=folder, make_folder=True)
    with pytest.raises(RuntimeError, match="Remote path refers to type 'Folder' rather than 'Run'"):
        em.load_run(f'/alice/{folder}')
    with pytest.raises(RuntimeError, match="type 'Run' rather than 'Artifact'"):
        em.load_artifact(f'{folder}/r')
    em.logout()
    with pytest.raises(OSError, match='Not a local directory'):
        em.load_run(f'{folder}/r')
