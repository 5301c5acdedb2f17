"""Horovod integration, with real ``horovodrun -np 2 --gloo`` jobs.

Each job runs real training (``horovod.torch``, and ``horovod.tensorflow`` with a Keras 3
model) in two processes in which every rank calls ``create_run``: exactly one Run directory
must appear, its hyperparameters must describe the job, and each logged metric must be the
mean of the values each rank saw (the examples write those to a side file with
``--raw-metrics-dir``). The Horovod tests are skipped only when Horovod is not installed;
``scripts/build_horovod.sh`` builds it and CI runs it.

``horovodrun --check-build`` imports TensorFlow afresh in about eight subprocesses (a minute of
CPU), so it is started in the background with the first Horovod test and checked last.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from t9k_em_core import run_files

REPO = Path(__file__).resolve().parents[1]
HOROVODRUN = os.path.join(os.path.dirname(sys.executable), 'horovodrun')

needs_horovod = pytest.mark.skipif(
    importlib.util.find_spec('horovod') is None or not os.path.exists(HOROVODRUN),
    reason='Horovod is not installed: run scripts/build_horovod.sh')
pytestmark = pytest.mark.timeout(480)


def _env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('HOROVOD_', 'OMPI_', 'PMI_', 'EM_'))
           and k not in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'TF_CONFIG')}
    env.update({'TF_CPP_MIN_LOG_LEVEL': '2', 'CUDA_VISIBLE_DEVICES': '', 'OMP_NUM_THREADS': '1'})
    return env


def _horovodrun(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``horovodrun -np 2 --gloo python ARGS`` with Runs written under ``tmp_path/runs``."""
    env = _env()
    env['EM_RUN_PARENT_DIR'] = str(tmp_path / 'runs')
    env['EM_ARTIFACT_PARENT_DIR'] = str(tmp_path / 'artifacts')
    # A loaded 2-core machine can start the two ranks far apart (wait longer than 30 s for them) and
    # run TensorFlow on two ranks for minutes: the limits only catch a hung job.
    command = [HOROVODRUN, '-np', '2', '--gloo', '--gloo-timeout-seconds', '120',
               sys.executable, *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=420)


def _only_run(tmp_path: Path) -> dict:
    runs = sorted(os.listdir(tmp_path / 'runs'))
    assert len(runs) == 1, f'expected exactly one Run directory, found {runs}'
    return run_files.read_run_dir(str(tmp_path / 'runs' / runs[0]))


def _raw_metrics(raw_dir: Path) -> dict[int, list[dict]]:
    return {rank: [json.loads(line) for line in (raw_dir / f'rank{rank}.jsonl').open()]
            for rank in (0, 1)}


def _assert_example_run(tmp_path: Path, api: str, epochs: int) -> None:
    run = _only_run(tmp_path)
    assert run['metadata']['status'] == 'Complete'
    job = run['hparams']['distributed']['horovod']
    assert job['api'] == api
    assert (job['size'], job['local_size'], job['cross_size'], job['rank']) == (2, 2, 1, 0)
    assert job['controller'] == 'gloo' and job['built']['gloo'] is True
    # System metrics are on by default (_env drops EM_SYSTEM_METRICS), from rank 0's one Run.
    samples = run['metrics']['system']
    assert [entry['sequence']['step'] for entry in samples] == list(range(len(samples)))
    assert samples[-1]['value']['process_rss_bytes'] > 0
    raw = _raw_metrics(tmp_path / 'raw')
    for metric_type in ('train', 'val'):
        logged = run['metrics'][metric_type]
        assert [entry['sequence']['epoch'] for entry in logged] == list(range(1, epochs + 1))
        for entry, rank0, rank1 in zip(logged, raw[0], raw[1]):
            assert entry['sequence']['step'] == rank0['step'] == rank1['step']
            # Broadcast + averaged gradients keep the replicas identical.
            assert rank0['weights_sum'] == rank1['weights_sum']
            values0, values1 = rank0[metric_type], rank1[metric_type]
            assert values0 != values1, 'ranks saw identical metrics: the averaging is not tested'
            expected = {key: (values0[key] + values1[key]) / 2 for key in values0}
            assert entry['value'] == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.fixture(scope='module')
def check_build_job() -> Iterator[subprocess.Popen]:
    """``horovodrun --check-build``, running in the background while the other tests run."""
    process = subprocess.Popen([HOROVODRUN, '--check-build'], env=_env(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    yield process
    if process.poll() is None:
        process.kill()
        process.communicate()


CRASHING_RANK = textwrap.dedent('''
    import os, sys
    import horovod.torch as hvd
    from t9k import em
    from t9k.em.horovod import average_metrics, log_averaged, rank_zero_only

    hvd.init()
    run = em.create_run(name='crash')

    def mark(what):
        open(os.path.join(sys.argv[1], f'{what}{hvd.rank()}'), 'w').close()

    rank_zero_only(mark)('rank_zero_only')
    try:
        average_metrics(hvd, {f'only_on_rank{hvd.rank()}': 1.0})
    except ValueError as e:
        assert 'different metric names' in str(e)
        mark('mismatch')
    log_averaged(run, hvd, 'train', {'loss': float(hvd.rank() + 1)}, step=1, epoch=1)
    if hvd.rank() == 1:
        raise RuntimeError('rank 1 fails')
    log_averaged(run, hvd, 'train', {'loss': 0.0}, step=2, epoch=1)  # never completes
    run.finish()
''')


@needs_horovod
@pytest.mark.usefixtures('check_build_job')
class TestHorovodrun:
    def test_torch_example_writes_one_run_with_averaged_metrics(self, tmp_path):
        result = _horovodrun(tmp_path, str(REPO / 'examples' / 'horovod_torch.py'),
                             '--epochs', '2', '--raw-metrics-dir', str(tmp_path / 'raw'))
        assert result.returncode == 0, result.stdout + result.stderr
        _assert_example_run(tmp_path, 'horovod.torch', epochs=2)

    def test_tensorflow_example_writes_one_run_with_averaged_metrics(self, tmp_path):
        result = _horovodrun(tmp_path, str(REPO / 'examples' / 'horovod_tf.py'),
                             '--epochs', '2', '--raw-metrics-dir', str(tmp_path / 'raw'))
        assert result.returncode == 0, result.stdout + result.stderr
        _assert_example_run(tmp_path, 'horovod.tensorflow', epochs=2)

    def test_a_crashing_rank_ends_the_run_as_error_keeping_what_was_logged(self, tmp_path):
        # The same job checks rank_zero_only and that every rank rejects differing names.
        script = tmp_path / 'crash.py'
        script.write_text(CRASHING_RANK)
        marks = tmp_path / 'marks'
        marks.mkdir()
        result = _horovodrun(tmp_path, str(script), str(marks))
        assert result.returncode != 0
        assert 'rank 1 fails' in result.stdout + result.stderr
        run = _only_run(tmp_path)
        assert run['metadata']['status'] == 'Error', result.stdout + result.stderr
        assert run['metadata']['endTimestamp']
        assert [entry['value'] for entry in run['metrics']['train']] == [{'loss': 1.5}]
        assert sorted(os.listdir(marks)) == ['mismatch0', 'mismatch1', 'rank_zero_only0']

    def test_check_build_shows_tensorflow_pytorch_and_gloo(self, check_build_job):
        out, _ = check_build_job.communicate(timeout=420)
        assert check_build_job.returncode == 0, out
        for feature in ('TensorFlow', 'PyTorch', 'Gloo'):
            assert f'[X] {feature}' in out, out


RANK_AFTER_INIT = textwrap.dedent('''
    import horovod.torch as hvd
    from t9k import em

    before = em.create_run(name='before_init')   # OMPI_COMM_WORLD_RANK=1: not rank 0
    hvd.init()                                   # one process without a launcher: rank 0
    after = em.create_run(name='after_init')
    print(before.is_inert, after.is_inert, hvd.rank(), hvd.size())
    after.finish()
''')


@needs_horovod
def test_initialised_horovod_decides_the_rank_over_launcher_variables(tmp_path):
    env = _env()
    env.update({'EM_RUN_PARENT_DIR': str(tmp_path / 'runs'), 'OMPI_COMM_WORLD_RANK': '1'})
    script = tmp_path / 'rank.py'
    script.write_text(RANK_AFTER_INIT)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=420)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['True', 'False', '0', '1']
    assert _only_run(tmp_path)['metadata']['name'] == 'after_init'


def test_parse_rejects_what_is_not_a_horovod_module(tmp_path, monkeypatch):
    monkeypatch.setenv('EM_RUN_PARENT_DIR', str(tmp_path / 'runs'))
    from t9k import em

    run = em.create_run(name='not_hvd')
    try:
        with pytest.raises(TypeError, match='dist_hvd must be a Horovod API module'):
            run.params.parse(dist_hvd='horovod.torch')
        assert 'distributed' not in run.params
    finally:
        run.finish()
