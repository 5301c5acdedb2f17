"""Helpers of the SDK remote tests: real Runs/Artifacts made with the core, server comparisons."""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

from t9k_em_core import client as em_client
from t9k_em_core import artifact_files, fileio
from t9k_em_core.artifact import create_artifact
from t9k_em_core.run import create_run


def make_artifact(name: str, files: dict[str, bytes], tmp: str) -> str:
    """An Artifact with the given object files (added through ``add_file``); returns its dir."""
    artifact = create_artifact(name)
    for rel, content in files.items():
        src = os.path.join(tmp, 'src-' + rel.replace('/', '_'))
        with open(src, 'wb') as f:
            f.write(content)
        artifact.add_file(src, obj_path=rel)
    return artifact.local


def make_run(name: str = 'mnist', steps: int = 50, inputs: Optional[list] = None,
             outputs: Optional[list] = None):
    """A finished Run with ``steps`` train metrics, hparams and associations; returns the Run."""
    run = create_run(name=name, hparams={'lr': 0.01, 'batch_size': 32}, labels=['t'],
                     description='d')
    for artifact in inputs or []:
        run.mark_input(artifact)
    for artifact in outputs or []:
        run.mark_output(artifact)
    for i in range(steps):
        run.log('train', {'loss': 1.0 / (i + 1)}, step=i, epoch=i // 10)
    run.finish()
    return run


def server_md5s(client: em_client.AISClient, node_path: str) -> dict[str, str]:
    """MD5 of every object of a node, downloaded from the server."""
    def md5(rel: str) -> str:
        response = client.session.get(client.host + '/apis/v1/objects',
                                      params={'path': f'{node_path}/{rel}'})
        response.raise_for_status()
        return hashlib.md5(response.content).hexdigest()

    rels = list(client.list_objects(node_path))
    with ThreadPoolExecutor(8) as pool:
        return dict(zip(rels, pool.map(md5, rels)))


def local_md5s(local_dir: str) -> dict[str, str]:
    """MD5 of every file of a local directory (temporary files left out)."""
    return {rel: artifact_files.file_md5(os.path.join(local_dir, rel))
            for rel in artifact_files.walk_files(local_dir)
            if not fileio.is_temporary_file(rel.rsplit('/', 1)[-1])}


def restart(server) -> None:
    """Starts a killed ``em_server_process.ServerProcess`` again on its port (clients keep
    their URL)."""
    server.start(port=server.port)


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Polls ``predicate`` every 0.1 s until it holds or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()
