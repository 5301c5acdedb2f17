"""Real training jobs killed and restarted (tests/support/resume_jobs.py): the Run they continue
has each step exactly once, with the last attempt's values, on disk, for t9k 0.6.0b0's reader and
on a real server."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys

import pytest

from support import legacy_loader, resume_jobs
from t9k_em_core import client as em_client
from t9k_em_core import metadata_file, metric_file, run_files, transfer

TESTS = os.path.dirname(os.path.abspath(__file__))


def job(kind, workdir, env, check=True):
    """Runs a job of tests/support/resume_jobs.py; returns the finished process."""
    env = {**os.environ, 'PYTHONPATH': TESTS + os.pathsep + os.environ.get('PYTHONPATH', ''),
           'EM_SYSTEM_METRICS': '0', **env}
    done = subprocess.run([sys.executable, '-m', 'support.resume_jobs', kind, str(workdir)],
                          env=env, cwd=str(workdir), capture_output=True, text=True, timeout=600)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def the_run_dir(parent):
    dirs = glob.glob(os.path.join(str(parent), '*_[0-9]*_[0-9]*_*'))
    assert len(dirs) == 1, dirs
    return dirs[0]


def by_step(entries):
    steps = [e['sequence']['step'] for e in entries]
    assert len(steps) == len(set(steps)), 'a step has two entries'
    return {e['sequence']['step']: e['value'] for e in entries}


def test_job_killed_at_1234_after_checkpoint_at_1000(tmp_path, em_server):
    runs = tmp_path / 'runs'
    env = {'EM_RUN_PARENT_DIR': str(runs), 'EM_RESUME_KEY': 'job-17'}
    killed = job('plain', tmp_path, {**env, 'ATTEMPT': '0', 'KILL_AT': '1234'}, check=False)
    assert killed.returncode == -signal.SIGKILL
    run_dir = the_run_dir(runs)
    assert metric_file.last_entry(run_files.metric_path(run_dir, 'train'))['sequence']['step'] == 1234
    job('plain', tmp_path, {**env, 'ATTEMPT': '1'})
    assert the_run_dir(runs) == run_dir  # the same Run, continued

    def check(train, val):
        train, val = by_step(train), by_step(val)
        assert sorted(train) == list(range(1, 1501)) and sorted(val) == list(range(10, 1501, 10))
        for step, values in train.items():
            again = step > 1000
            assert values == {'loss': resume_jobs.value(step) % 1 + again, 'attempt': float(again)}
        assert all(v['attempt'] == float(step > 1000) for step, v in val.items())

    local = legacy_loader.load_run_dir(run_dir)  # as t9k 0.6.0b0 reads it
    check(local['metrics']['train'], local['metrics']['val'])
    metadata = local['metadata']
    assert metadata['status'] == 'Complete' and metadata['resumeKey'] == 'job-17'
    (segment,) = metadata['segments']  # the first attempt's rewind(0) had nothing to record
    assert segment['resumedAt'] == 1000
    assert segment['reason'] == 'restarted from checkpoint at step 1000'
    assert segment['previousStatus'] == 'Running'  # SIGKILL: no exit hook could say Error

    base, key, user = em_server
    client = em_client.AISClient(base, key)
    node = transfer.upload_run(run_dir, f'/{user}/resume-1234', make_folder=True, client=client)
    server = {}
    for metric_type in ('train', 'val'):
        dest = str(tmp_path / f'server-{metric_type}.yaml')
        client.download_object(f'{node.path}/metrics/{metric_type}.yaml', dest)
        server[metric_type] = metric_file.read_entries(dest)
    check(server['train'], server['val'])


def test_torchrun_with_a_rank_that_crashes_once(tmp_path):
    """Rank 1 crashes once after step 45 (checkpoint at 40), ``--max-restarts 1``, with
    ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``: with torchelastic's store shared over restarts (its
    default), a restarted rank 0 that connects before rank 1 re-registers reads the dead rank 1's
    gloo address (``connectFullMesh``: connection refused; docs/resume.md)."""
    runs = tmp_path / 'runs'
    done = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
         '--max-restarts', '1', '--monitor-interval', '0.5', '-m', 'support.resume_jobs', 'torchrun',
         str(tmp_path)],
        env={**os.environ, 'PYTHONPATH': TESTS + os.pathsep + os.environ.get('PYTHONPATH', ''),
             'EM_SYSTEM_METRICS': '0', 'EM_RUN_PARENT_DIR': str(runs), 'KILL_AT': '45',
             'OMP_NUM_THREADS': '1', 'TORCH_DISABLE_SHARE_RDZV_TCP_STORE': '1'},
        cwd=str(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    run_dir = the_run_dir(runs)  # rank 0's one Run over every attempt
    legacy = legacy_loader.load_run_dir(run_dir)
    train = by_step(legacy['metrics']['train'])
    assert sorted(train) == list(range(1, 61))
    assert all((v['attempt'] > 0) == (step > 40) for step, v in train.items())
    metadata = legacy['metadata']
    assert metadata['status'] == 'Complete' and metadata['resumeKey'].startswith('torchelastic-')
    assert {s['resumedAt'] for s in metadata['segments']} == {40}
    assert [s['reason'] for s in metadata['segments']] == ['torchelastic restart 1']
    assert metadata['segments'][0]['metricBytes']['train'] > 0  # steps 41-45 were cut


def test_lightning_fit_from_ckpt_path_continues_the_run(tmp_path):
    runs = tmp_path / 'runs'
    env = {'EM_RUN_PARENT_DIR': str(runs)}
    killed = job('lightning', tmp_path, {**env, 'ATTEMPT': '0', 'KILL_AT': '9'}, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert sorted(os.listdir(tmp_path / 'ck')) == ['step=4.ckpt', 'step=8.ckpt']
    job('lightning', tmp_path, {**env, 'ATTEMPT': '1'})
    run_dir = the_run_dir(runs)
    legacy = legacy_loader.load_run_dir(run_dir)
    train = by_step(legacy['metrics']['train'])
    assert sorted(train) == list(range(16))  # Lightning counts steps from 0
    assert all(v['attempt'] == float(step >= 8) for step, v in train.items())
    val = by_step(legacy['metrics']['val'])
    # epoch 0's validation ran after the checkpoint of step 8 and is not run again on resume
    assert {step: v['attempt'] for step, v in val.items()} == {7: 0.0, 15: 1.0}
    metadata = legacy['metadata']
    assert metadata['status'] == 'Complete'
    (segment,) = metadata['segments']
    assert segment['resumedAt'] == 7 and segment['reason'] == 'Lightning resumed from step=8.ckpt'


def test_keras_backup_and_restore_after_an_interrupted_fit(tmp_path):
    runs = tmp_path / 'runs'
    env = {'EM_RUN_PARENT_DIR': str(runs)}
    killed = job('keras', tmp_path, {**env, 'ATTEMPT': '0', 'KILL_AT': '3'}, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    run_dir = the_run_dir(runs)
    assert [e['sequence']['step'] for e in metric_file.read_entries(
        run_files.metric_path(run_dir, 'train'))] == [5, 10, 15]  # epoch 3 logged, not backed up
    job('keras', tmp_path, {**env, 'ATTEMPT': '1'})
    assert the_run_dir(runs) == run_dir
    legacy = legacy_loader.load_run_dir(run_dir)
    train = by_step(legacy['metrics']['train'])
    assert {step: v['attempt'] for step, v in train.items()} == {5: 0.0, 10: 0.0, 15: 1.0, 20: 1.0}
    metadata = legacy['metadata']
    assert metadata['status'] == 'Complete'
    (segment,) = metadata['segments']
    assert segment['resumedAt'] == 10 and segment['reason'].startswith('Keras resumed from ')
    assert not os.path.exists(tmp_path / 'backup')  # BackupAndRestore's own clean-up at the end


def assert_rewound_to_the_commit_of_step_10(runs) -> None:
    """The Horovod jobs' Run: steps 1..20 once each, those after the commit of step 10 from the
    second attempt, one segment at step 10, Complete (read as 0.6.0b0 reads it)."""
    legacy = legacy_loader.load_run_dir(the_run_dir(runs))
    train = by_step(legacy['metrics']['train'])
    assert {step: v['attempt'] for step, v in train.items()} == {
        step: float(step > 10) for step in range(1, 21)}
    (segment,) = legacy['metadata']['segments']
    assert (segment['resumedAt'], segment['reason']) == (10, 'Horovod elastic reset')
    assert legacy['metadata']['status'] == 'Complete'


@pytest.mark.parametrize('explicit', ['', '1'], ids=['no-user-code', 'rewind_on_reset'])
def test_horovod_elastic_reset_rewinds_to_the_committed_step(tmp_path, explicit):
    """The real ``hvd.elastic.run`` and ``TorchState`` in one process: horovodrun's elastic mode
    (host discovery, a worker actually lost) is not exercised here; the failure is the
    ``HorovodInternalError`` a lost worker raises, and the wrapper's restore + reset are real.
    With no t9k-em code (``state.step``) and with ``rewind_on_reset(..., 'batch')``."""
    runs = tmp_path / 'runs'
    job('horovod', tmp_path, {'EM_RUN_PARENT_DIR': str(runs), 'EXPLICIT': explicit})
    assert_rewound_to_the_commit_of_step_10(runs)


def test_horovodrun_elastic_job_that_loses_a_worker(tmp_path):
    """``horovodrun`` in elastic mode on this host, seen as two (``localhost`` and
    ``127.0.0.1``, one slot each: a failed worker's host is blacklisted, and with one host the
    survivor would go too); rank 1 exits at step 14, rank 0 goes on alone from the commit of
    step 10, with no t9k-em code. ``--network-interface lo``: without it an elastic job waits
    for two hosts to compare their network interfaces."""
    runs = tmp_path / 'runs'
    discover = tmp_path / 'discover.sh'
    discover.write_text('#!/bin/sh\necho localhost:1\necho 127.0.0.1:1\n')
    discover.chmod(0o755)
    done = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), 'horovodrun'), '-np', '2', '--min-np', '1',
         '--max-np', '2', '--host-discovery-script', str(discover), '--network-interface', 'lo',
         '--gloo', sys.executable, '-m', 'support.resume_jobs', 'horovod', str(tmp_path)],
        env={**os.environ, 'PYTHONPATH': TESTS + os.pathsep + os.environ.get('PYTHONPATH', ''),
             'EM_SYSTEM_METRICS': '0', 'EM_RUN_PARENT_DIR': str(runs), 'OMP_NUM_THREADS': '1'},
        cwd=str(tmp_path), capture_output=True, text=True, timeout=420)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_rewound_to_the_commit_of_step_10(runs)


def test_keras_fit_of_a_model_loaded_from_model_checkpoint_continues_the_run(em_dirs):
    """In this process: a fit that saves ``ModelCheckpoint`` files and ends; then a model loaded
    from the last one fits on (``initial_epoch``) with a new EMCallback: the same Run goes on."""
    import keras
    import numpy as np

    from t9k.em.keras import EMCallback

    rng = np.random.default_rng(0)
    x = rng.random((100, 8)).astype('float32')
    y = (x[:, 0] + x[:, 1] > 1).astype('int32')
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)], name='mlp')
    model.compile(optimizer='sgd', loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    path = str(em_dirs / 'ckpt' / 'model.keras')
    model.fit(x, y, batch_size=20, epochs=2, verbose=0,
              callbacks=[EMCallback(), keras.callbacks.ModelCheckpoint(path)])
    restored = keras.models.load_model(path)
    restored.fit(x, y, batch_size=20, epochs=4, initial_epoch=2, verbose=0,
                 callbacks=[EMCallback(), keras.callbacks.ModelCheckpoint(path)])
    run_dir = the_run_dir(em_dirs / 'runs')  # one Run
    legacy = legacy_loader.load_run_dir(run_dir)
    assert sorted(by_step(legacy['metrics']['train'])) == [5, 10, 15, 20]
    (segment,) = legacy['metadata']['segments']
    assert (segment['resumedAt'], segment['previousStatus']) == (10, 'Complete')
    assert legacy['metadata']['status'] == 'Complete'
