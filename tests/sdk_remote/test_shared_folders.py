"""The client path of 0.6.0b0 (spec server-api §6: ``Run.upload``/``Artifact.upload`` with an
absolute ``folder``, ``load_run`` of a remote path), through our ``transfer``, into and out of a
Folder alice shared (tests/support/team_world.py), on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from t9k import em
from t9k_em_core import client as em_client
from t9k_em_core import metadata_file, transfer
from support.sdk_remote_util import local_md5s, make_artifact, make_run, server_md5s
from support.team_world import World

pytestmark = pytest.mark.timeout(180)


def _login(team: World, role: str) -> em_client.AISClient:
    em_client.login(team.server.base_url, team.api(role).key)
    return em_client.current()


def test_editor_uploads_into_and_viewer_downloads_from_a_shared_folder(
        team: World, workdir: Path, tmp_path: Path) -> None:
    shared = team.shared.folder
    name = 'b' + uuid.uuid4().hex[:8]
    try:
        bob = _login(team, 'editor')
        assert bob.user == 'bob'
        dataset = em.load_artifact(make_artifact(f'{name}-ds', {'data/w.bin': os.urandom(2000)},
                                                 str(tmp_path)))
        run = make_run(name, steps=40, inputs=[dataset])
        run.upload(folder=shared)
        node_path = f'{shared}/{name}'
        info = bob.node_info(node_path)
        assert server_md5s(bob, node_path) == local_md5s(run.local)
        record = metadata_file.read_metadata(run.local)['remote'][-1]
        assert (record['path'], record['id']) == (node_path, info['id'])
        ds_id = bob.node_info(f'{shared}/{name}-ds')['id']
        assert bob.graph(info['id']) == ([ds_id], [])
        # a Folder made on demand below the shared one, as make_folder does (spec §6.2)
        again = make_run(name, steps=2)
        node = transfer.upload_run(again.local, f'{shared}/{name}-sub/deeper', make_folder=True)
        assert node.path == f'{shared}/{name}-sub/deeper/{name}'
        em.logout()

        vic = _login(team, 'viewer')
        os.environ['EM_RUN_PARENT_DIR'] = str(tmp_path / 'vic' / 'runs')
        target = transfer.download(node_path, 'Run')
        assert target.startswith(str(tmp_path / 'vic'))
        assert {k: v for k, v in local_md5s(target).items() if k != 'metadata.yaml'} == {
            k: v for k, v in local_md5s(run.local).items() if k != 'metadata.yaml'}
        assert vic.graph(info['id']) == ([ds_id], [])  # bob's edge shows to the team
        # the viewer cannot write: the client says the server denied it, and nothing appears
        mine = make_run(f'{name}-vic', steps=1)
        with pytest.raises(em_client.KeyRejectedError, match='denied'):
            mine.upload(folder=shared)
        assert [n['name'] for n in vic.iter_nodes(shared) if n['name'] == f'{name}-vic'] == []
        em.logout()

        # a stranger: the shared Folder is exactly as missing as a Folder that does not exist
        _login(team, 'stranger')
        for folder in (shared, '/alice/no-such-folder'):
            with pytest.raises(ValueError, match=f"Folder does not exist: '{folder}'"):
                make_run(f'{name}-sam', steps=1).upload(folder=folder)
        with pytest.raises(OSError, match='Not a local directory or a remote path'):
            em.load_run(node_path)
    finally:
        em.logout()
