"""The scripts in ``examples/`` run end to end and leave the Runs and Artifacts they promise."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from t9k_em_core import artifact_files, metadata_file, run_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMPY_EXAMPLE = os.path.join(ROOT, 'examples', 'numpy_train.py')


def _run_numpy_example(cwd, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(('EM_', 'T9K_'))}
    env['T9K_CONFIG'] = os.path.join(str(cwd), 'no-config.yaml')  # never the user's own file
    proc = subprocess.run([sys.executable, NUMPY_EXAMPLE, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _only(path) -> str:
    entries = os.listdir(path)
    assert len(entries) == 1, entries
    return os.path.join(path, entries[0])


@pytest.mark.timeout(150)
def test_numpy_example(tmp_path):
    epochs, samples, batch, log_every = 4, 1000, 25, 7
    proc = _run_numpy_example(tmp_path, '--epochs', str(epochs), '--samples', str(samples),
                              '--batch-size', str(batch), '--log-every', str(log_every))
    run_dir = _only(tmp_path / '.em' / 'runs')
    run = run_files.read_run_dir(run_dir)
    meta = run['metadata']
    assert meta['name'] == 'numpy_logreg' and meta['status'] == 'Complete'
    assert meta['endTimestamp'] and meta['labels'] == ['numpy', 'example']
    assert run['hparams']['epochs'] == epochs and run['hparams']['batch_size'] == batch

    steps_per_epoch = math.ceil(0.7 * samples / batch)
    train, val, test = run['metrics']['train'], run['metrics']['val'], run['metrics']['test']
    assert [e['sequence']['step'] for e in train] == list(
        range(log_every, epochs * steps_per_epoch + 1, log_every))
    assert [e['sequence']['epoch'] for e in val] == list(range(1, epochs + 1))
    assert len(test) == 1 and set(test[0]['value']) == {'loss', 'accuracy'}
    assert val[-1]['value']['loss'] < math.log(2)  # better than the all-zero start
    assert test[0]['value']['accuracy'] > 0.6
    assert 'epoch 4: val loss' in open(os.path.join(run_dir, 'stdout.log')).read()
    assert f'run directory: {os.path.relpath(run_dir, tmp_path)}' in proc.stdout

    (dataset,) = meta['associations']['input']
    (model,) = meta['associations']['output']
    dataset_dir = os.path.join(tmp_path, dataset['localDir'])
    model_dir = os.path.join(tmp_path, model['localDir'])
    assert artifact_files.read_artifact_dir(dataset_dir)['metadata']['name'] == 'numpy_logreg_data'
    data = np.load(os.path.join(dataset_dir, 'data', 'data.npz'))
    assert data['train_x'].shape == (int(0.7 * samples), 8) and len(data['test_y']) == 150
    weights = np.load(os.path.join(model_dir, 'weights.npz'))
    assert weights['w'].shape == (8,) and np.any(weights['w'] != 0)
    assert set(artifact_files.read_artifact_dir(model_dir)['objects']) == {'weights.npz'}


@pytest.mark.timeout(180)
def test_numpy_example_uploads_to_a_server(tmp_path, em_server):
    base_url, api_key, user = em_server
    _run_numpy_example(tmp_path, '--epochs', '1', '--samples', '300', '--host', base_url,
                       '--api-key', api_key, '--folder', 'examples/numpy-test')
    run_dir = _only(tmp_path / '.em' / 'runs')
    (record,) = metadata_file.read_metadata(run_dir)['remote']
    assert record['action'] == 'upload' and record['host'] == base_url
    assert record['path'] == f'/{user}/examples/numpy-test/numpy_logreg'
    for artifact in metadata_file.read_metadata(run_dir)['associations']['input'] + \
            metadata_file.read_metadata(run_dir)['associations']['output']:
        uploads = metadata_file.read_metadata(os.path.join(tmp_path, artifact['localDir']))['remote']
        assert [r['action'] for r in uploads] == ['upload']

    # Download it again through the same API into a fresh place and compare.
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    script = ('from t9k import em; import sys; '
              f'em.login(ais_host={base_url!r}, api_key={api_key!r}); '
              f'run = em.load_run({record["path"]!r}, system_metrics=False); '  # adds no sample
              'print(run.local); run.finish()')
    env = {k: v for k, v in os.environ.items() if not k.startswith('EM_')}
    proc = subprocess.run([sys.executable, '-c', script], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    downloaded = os.path.join(elsewhere, proc.stdout.strip().splitlines()[-1])
    assert run_files.read_metrics(downloaded) == run_files.read_metrics(run_dir)


@pytest.mark.timeout(600)
def test_main_job_serves_trains_and_uploads_three_runs(tmp_path):
    """The README's first command (after set-up): a real `em server` on the embedded default,
    the NumPy, Keras and Lightning examples, each uploading its Run; then the server is read back."""
    import requests

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    data_dir, work_dir = tmp_path / 'server', tmp_path / 'work'
    env = {k: v for k, v in os.environ.items() if not k.startswith(('EM_', 'T9K_'))}
    env['T9K_CONFIG'] = str(tmp_path / 'no-config.yaml')
    env['T9K_EM_LOG'] = str(tmp_path / 'main.log')
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'examples', 'main_job.py'), '--no-serve',
                           '--port', str(port), '--data-dir', str(data_dir), '--workdir', str(work_dir)],
                          env=env, capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'Three runs uploaded' in proc.stdout
    assert len(os.listdir(work_dir / '.em' / 'runs')) == 3
    # Quiet: the examples' output and the summary, without the server's access log or
    # TensorFlow's banners; the server's log is in the log file.
    shown = proc.stdout + proc.stderr
    for noise in ('HTTP/1.1', 'oneDNN', 'absl::InitializeLog', 'cpu_feature_guard', 'Uvicorn running'):
        assert noise not in shown, noise
    assert 'Epoch 5/5' in shown and 'test accuracy' in shown
    log = (tmp_path / 'main.log').read_text()
    assert 'Uvicorn running on' in log and '"POST /apis/v1/nodes HTTP/1.1" 200' in log

    # The job stopped its server; start it again on the same data and read the uploads back.
    api_key = (data_dir / 'demo.key').read_text().strip()
    em = os.path.join(os.path.dirname(sys.executable), 'em')
    server = subprocess.Popen([em, 'server', '--port', str(port), '--data-dir', str(data_dir)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f'http://127.0.0.1:{port}'
        for _ in range(200):
            try:
                requests.get(f'{url}/healthz', timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        kinds = {}
        for sub in ('numpy', 'keras', 'lightning'):
            reply = requests.get(f'{url}/apis/v1/nodes', params={'parent': f'/demo/examples/{sub}'},
                                 headers={'Authorization': f'Bearer {api_key}'}, timeout=10)
            assert reply.status_code == 200, reply.text
            kinds[sub] = sorted(node['type'] for node in reply.json()['data'] or [])
        assert all('Run' in found for found in kinds.values()), kinds
    finally:
        server.terminate()
        server.wait(timeout=30)
