"""`em login/logout/upload/download/ls` as subprocesses against the real server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from support.sdk_remote_util import make_run

pytestmark = pytest.mark.timeout(180)


def em(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 't9k_em_core.cli', *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_login_upload_ls_download_logout(em_server, workdir: Path) -> None:
    url, key = em_server.url, em_server.api_key
    env = dict(os.environ)
    config = workdir / 't9k-config.yaml'

    done = em('login', '--host', url, '--api-key', key, '--save', env=env)
    assert done.returncode == 0, done.stderr
    assert 'as alice' in done.stdout
    assert key not in done.stdout + done.stderr and key[-4:] in done.stdout
    saved = yaml.safe_load(config.read_text())
    context = saved['contexts'][0]
    assert (context['server'], context['prefixes']['aistore'], context['auth']['apikey']) == (
        url, '', key)

    name = 'cli' + uuid.uuid4().hex[:8]
    run = make_run(name, steps=5)
    done = em('upload', str(workdir / 'runs'), env=env)  # no -f: the folder is `default`
    assert done.returncode == 0, done.stderr
    assert f'-> /alice/default/{name}' in done.stdout

    done = em('ls', '-d', 'default', env=env)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith(name + ' '))
    assert 'Run' in row and run.alternative_name in row
    done = em('ls', f'default/{name}', env=env)
    assert 'metrics/train.yaml' in done.stdout and 'stdout.log' in done.stdout

    env_dl = dict(env, EM_RUN_PARENT_DIR=str(workdir / 'downloaded'))
    done = em('download', f'default/{name}', env=env_dl)
    assert done.returncode == 0, done.stderr
    target = Path(done.stdout.strip().splitlines()[-1])
    assert target == workdir / 'downloaded' / run.alternative_name
    assert (target / 'metrics' / 'train.yaml').read_bytes() == \
        (Path(run.local) / 'metrics' / 'train.yaml').read_bytes()

    wrong = em('upload', str(workdir / 'runs'), '--api-key', str(uuid.uuid4()), env=env)
    assert wrong.returncode == 1 and 'rejected the API key' in wrong.stderr
    down = em('upload', str(workdir / 'runs'), '--host', 'http://127.0.0.1:9', env=env)
    assert down.returncode == 1 and 'Cannot reach AIStore host http://127.0.0.1:9' in down.stderr
    bad = em('upload', str(workdir / 'runs'), '-f', 'nope/deeper', env=env)
    assert bad.returncode == 1 and "Folder does not exist: '/alice/nope/deeper'" in bad.stderr

    done = em('logout', env=env)
    assert done.returncode == 0 and 'Removed the API key' in done.stdout
    assert 'apikey' not in yaml.safe_load(config.read_text())['contexts'][0]['auth']
    after = em('upload', str(workdir / 'runs'), env=env)
    assert after.returncode == 1 and 'API Key not provided' in after.stderr
