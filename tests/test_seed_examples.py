"""Every code example of the seed (t9k 0.6.0b0's API reference, ``support/t9k-em-api-0.6.0b0.txt``)
runs unchanged and does what its text says.

Each example is written to ``example.py`` in a fresh directory and run in its own process by
``support/seed_example_runner.py`` after a prelude that gives it what it needs around it (``from
t9k import em``, the ``run`` or ``artifact`` it calls, ``em.login()`` from a config file that points
at a real ``em server``), with the files it works on made beforehand (a local Run or Artifact
directory with the seed's own names, ``1.png``, the seed's ``run_config.yaml``). The test then
checks what the example produced: the local directories and, for ``login``/``upload``, the nodes
and objects on the server. A new example in the seed fails ``test_every_seed_example_has_a_harness``
until it gets its prelude and its check here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import pytest

from support import seed_api
from support.em_server_process import ServerProcess
from t9k_em_core import artifact_files, client as em_client, fileio, metadata_file, run_files

RUNNER = Path(__file__).parent / 'support' / 'seed_example_runner.py'
EXAMPLES = seed_api.examples()
SEED_RUN = 'cnn_keras_220823_194728_4e48t2'
SEED_ARTIFACT = 'tensorboard_logs_220823_194728_4e48t2'
EVENTS = b'tensorboard events\n'

# The local Run and Artifact directories the seed's load/upload examples name, made by the SDK.
LOCAL_RUN = f"""
from t9k import em
run = em.Run({{'name': 'cnn_keras', 'alternativeName': '{SEED_RUN}'}}, {{'batch_size': 32}})
run.log('train', {{'loss': 0.5}}, step=1)
run.finish()
"""
LOCAL_ARTIFACTS = f"""
from t9k import em
artifact = em.Artifact({{'name': 'tensorboard_logs', 'alternativeName': '{SEED_ARTIFACT}'}})
artifact.add_file('events.out.tfevents')
em.create_artifact(name='model').add_file('events.out.tfevents', obj_path='model.bin')
"""
EM = 'from t9k import em\n'
LOGGED_IN = EM + 'em.login()  # aistore_host and api_key from $T9K_CONFIG\n'


class Server(NamedTuple):
    """The module's server: user ``user`` (the seed's paths are ``/user/...``) and its config."""

    url: str
    key: str
    config: Path

    def client(self) -> em_client.AISClient:
        client = em_client.AISClient(self.url, self.key)
        client.user = 'user'
        return client


class Ran(NamedTuple):
    """What one example produced: its directory and its standard output."""

    cwd: Path
    stdout: str


@dataclass(frozen=True)
class Harness:
    """What an example needs around it and what it must produce.

    ``prelude`` runs in the example's process first; ``before`` in a process of its own (local
    Runs and Artifacts it loads or uploads); ``files`` are written beforehand; ``check`` asserts
    the outcome."""

    prelude: str
    check: Callable[[Ran, Server], None]
    files: dict[str, bytes] = field(default_factory=dict)
    before: str = ''


def _only(parent: Path, prefix: str) -> Path:
    found = [p for p in parent.iterdir() if p.name.startswith(prefix + '_')]
    assert len(found) == 1, (prefix, sorted(os.listdir(parent)))
    return found[0]


def _run_dir(ran: Ran, name: str) -> Path:
    return _only(ran.cwd / '.em' / 'runs', name)


def _artifact_dir(ran: Ran, name: str) -> Path:
    return _only(ran.cwd / '.em' / 'artifacts', name)


def _hparams(run_dir: Path) -> dict:
    return fileio.read_yaml(str(run_dir / 'hyperparameters.yaml'))


def _check_add_dir(ran: Ran, server: Server) -> None:
    objects = artifact_files.walk_objects(str(_artifact_dir(ran, 'example')))
    assert sorted(objects) == ['a/sub/y.txt', 'a/x.txt', 'b/a/sub/y.txt', 'b/a/x.txt']
    assert (_artifact_dir(ran, 'example') / 'b' / 'a' / 'sub' / 'y.txt').read_bytes() == b'y\n'


def _check_add_file(ran: Ran, server: Server) -> None:
    art = _artifact_dir(ran, 'example')
    assert sorted(artifact_files.walk_objects(str(art))) == ['1.png', 'a/1.png']
    assert (art / 'a' / '1.png').read_bytes() == PNG


def _check_params(ran: Ran, server: Server) -> None:
    assert _hparams(_run_dir(ran, 'params_example')) == {'batch_size': 32, 'epochs': 10}


def _check_create_artifact(ran: Ran, server: Server) -> None:
    art = _artifact_dir(ran, 'tensorboard_logs')
    assert metadata_file.read_metadata(str(art))['name'] == 'tensorboard_logs'


def _check_basic_run(ran: Ran, server: Server) -> None:
    assert metadata_file.read_metadata(str(_run_dir(ran, 'cnn_keras')))['name'] == 'cnn_keras'


def _check_run_with_hparams(ran: Ran, server: Server) -> None:
    hparams = _hparams(_run_dir(ran, 'cnn_keras'))
    assert hparams['learning_rate'] == 0.001 and hparams['linear_features1'] == 64
    assert len(hparams) == 9


def _check_run_config(ran: Ran, server: Server) -> None:
    run_dir = _run_dir(ran, 'cnn_keras')
    metadata = metadata_file.read_metadata(str(run_dir))
    assert metadata['labels'] == ['Keras']
    assert metadata['description'].startswith('Train a simple CNN model')
    assert _hparams(run_dir)['conv_kernel_size'] == 3 and len(_hparams(run_dir)) == 9


def _check_load_local_artifact(ran: Ran, server: Server) -> None:
    assert f'>>> <Artifact {SEED_ARTIFACT} (1 objects) at ' in ran.stdout


def _check_load_remote_artifact(ran: Ran, server: Server) -> None:
    assert '>>> <Artifact tensorboard_logs_' in ran.stdout
    art = _artifact_dir(ran, 'tensorboard_logs')  # downloaded here
    assert (art / 'events.out.tfevents').read_bytes() == EVENTS


def _check_load_local_run(ran: Ran, server: Server) -> None:
    assert f'>>> <Run {SEED_RUN} Running at ' in ran.stdout
    run_dir = ran.cwd / '.em' / 'runs' / SEED_RUN
    # reopened (status Running), then left unfinished by the process: Error, as in 0.6.0b0
    assert metadata_file.read_metadata(str(run_dir))['status'] == 'Error'
    assert [e['value'] for e in run_files.read_metrics(str(run_dir))['train']] == [{'loss': 0.5}]


def _check_load_remote_run(ran: Ran, server: Server) -> None:
    assert '>>> <Run cnn_keras_' in ran.stdout
    run_dir = _run_dir(ran, 'cnn_keras')  # downloaded here
    assert [e['value'] for e in run_files.read_metrics(str(run_dir))['train']] == [{'loss': 0.5}]
    assert _hparams(run_dir) == {'batch_size': 32}


def _check_uploaded_run(folder: str) -> Callable[[Ran, Server], None]:
    def check(ran: Ran, server: Server) -> None:
        client = server.client()
        objects = client.list_objects(f'/user/{folder}/cnn_keras')
        assert {'metadata.yaml', 'hyperparameters.yaml', 'metrics/train.yaml'} <= set(objects)
        remote = metadata_file.read_metadata(str(ran.cwd / '.em' / 'runs' / SEED_RUN))['remote']
        assert [r['action'] for r in remote] == ['upload']
    return check


def _check_uploaded_artifacts(ran: Ran, server: Server) -> None:
    client = server.client()
    assert set(client.list_objects('/user/default/tensorboard_logs')) == {
        'metadata.yaml', 'events.out.tfevents'}
    assert set(client.list_objects('/user/default/model')) == {'metadata.yaml', 'model.bin'}


PNG = b'\x89PNG\r\n\x1a\n fake image'
ARTIFACT = EM + "artifact = em.create_artifact(name='example')\n"
RUN = EM + "run = em.create_run(name='params_example')\n"
LOCAL_ARTIFACT_FILES = {'events.out.tfevents': EVENTS}

HARNESS: dict[tuple[str, str], Harness] = {
    ('t9k.em.artifact.Artifact', 'The directory will be copied to local directory of the Artifact, '
     'the specific subpath depends on its obj_path, for example:'):
        Harness(ARTIFACT, _check_add_dir, {'a/x.txt': b'x\n', 'a/sub/y.txt': b'y\n'}),
    ('t9k.em.artifact.Artifact', 'The file will be copied to local directory of the Artifact, the '
     'specific subpath depends on its object path, for example:'):
        Harness(ARTIFACT, _check_add_file, {'1.png': PNG}),
    ('t9k.em.containers.Params', 'Recommended method of setting hyperparameters:'):
        Harness(RUN, _check_params),
    ('t9k.em.containers.Params', 'Assign parameter like an item of dict or attribute of object:'):
        Harness(RUN, _check_params),
    ('t9k.em.create_artifact', 'Examples'): Harness(EM, _check_create_artifact),
    ('t9k.em.create_run', 'Basic usage:'): Harness('', _check_basic_run),
    ('t9k.em.create_run', 'Provide initial parameters of Run:'):
        Harness(EM, _check_run_with_hparams),
    ('t9k.em.create_run', 'Provide a Run config file:'):
        Harness(EM, _check_run_config, {'run_config.yaml': seed_api.yaml_block_after(
            'where the config file run_config.yaml is like').encode()}),
    ('t9k.em.load_artifact', 'Load by local path:'):
        Harness(EM, _check_load_local_artifact, LOCAL_ARTIFACT_FILES, LOCAL_ARTIFACTS),
    ('t9k.em.load_artifact', 'Load by remote path:'):
        Harness(LOGGED_IN, _check_load_remote_artifact),
    ('t9k.em.load_run', 'Load by local path:'): Harness(EM, _check_load_local_run, before=LOCAL_RUN),
    ('t9k.em.load_run', 'Load by remote path:'): Harness(LOGGED_IN, _check_load_remote_run),
    ('t9k.em.upload', 'Upload a Run by its local directory:'):
        Harness(LOGGED_IN, _check_uploaded_run('default'), before=LOCAL_RUN),
    ('t9k.em.upload', 'Upload all Artifact under the parent directory:'):
        Harness(LOGGED_IN, _check_uploaded_artifacts, LOCAL_ARTIFACT_FILES, LOCAL_ARTIFACTS),
    ('t9k.em.upload', 'Specify the path of Folder to which the Run is uploaded:'):
        Harness(LOGGED_IN, _check_uploaded_run('image_classification/mnist'), before=LOCAL_RUN),
}

# What the remote examples find on the server: /user/path/to/{tensorboard_logs,cnn_keras} and the
# Folders the upload examples name (they do not pass make_folder).
SERVER_CONTENT = f"""
from t9k import em
from t9k_em_core import client, transfer
em.login()
{LOCAL_ARTIFACTS}
artifact.upload(folder='path/to', make_folder=True)
{LOCAL_RUN}
run.upload(folder='path/to')
for folder in ('/user/default', '/user/image_classification/mnist'):
    transfer.make_folder(client.current(), folder)
"""


def _env(home: Path, config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(('EM_', 'T9K_'))}
    env.update(HOME=str(home), T9K_CONFIG=str(config), EM_SYSTEM_METRICS='0')
    return env


def _python(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f'{args} failed:\n{proc.stdout}\n{proc.stderr}'
    return proc


@pytest.fixture(scope='module')
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp('seed-examples-server')
    process = ServerProcess(base / 'data')
    _, key = process.add_user('user')
    process.start()
    try:
        config = base / 't9k-config.yaml'
        env = _env(base, config)
        _python(['-c', 'import sys; from t9k_em_core import config; '
                 'config.save_credentials(sys.argv[1], sys.argv[2])', process.base_url, key],
                base, env)
        (base / 'events.out.tfevents').write_bytes(EVENTS)
        _python(['-c', SERVER_CONTENT], base, env)
        yield Server(process.base_url, key, config)
    finally:
        process.stop()


def _example_id(example: seed_api.SeedExample) -> str:
    return f"{example.section.rsplit('.', 1)[-1]}: {example.intro}"[:70]


def test_every_seed_example_has_a_harness():
    found = {(e.section, e.intro) for e in EXAMPLES}
    assert len(EXAMPLES) == len(found) == 15
    assert found == set(HARNESS)


@pytest.mark.timeout(180)
@pytest.mark.parametrize('example', EXAMPLES, ids=[_example_id(e) for e in EXAMPLES])
def test_seed_example_runs_unchanged(example: seed_api.SeedExample, server: Server,
                                     tmp_path: Path) -> None:
    harness = HARNESS[(example.section, example.intro)]
    for rel, data in harness.files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    env = _env(tmp_path, server.config)
    if harness.before:
        _python(['-c', harness.before], tmp_path, env)
    (tmp_path / 'prelude.py').write_text(harness.prelude)
    (tmp_path / 'example.py').write_text(example.code)
    proc = _python([str(RUNNER), 'prelude.py', 'example.py'], tmp_path, env)
    harness.check(Ran(tmp_path, proc.stdout), server)
