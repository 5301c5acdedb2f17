"""Only rank 0 writes: the rank from launcher environment variables, inert Runs elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from t9k_em_core import distributed, naming

RANK_VARS = ('RANK', 'HOROVOD_RANK', 'OMPI_COMM_WORLD_RANK', 'PMI_RANK', 'LOCAL_RANK',
             'NODE_RANK', 'GROUP_RANK', 'LOCAL_WORLD_SIZE', 'TF_CONFIG', 'SLURM_PROCID',
             'SLURM_NTASKS', 'EM_ALL_RANKS')


@pytest.fixture
def clean_env(monkeypatch):
    for name in RANK_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _tf_config(task_type, index, chief=True):
    cluster = {'worker': ['h1:1', 'h2:1']}
    if chief:
        cluster['chief'] = ['h0:1']
    return json.dumps({'cluster': cluster, 'task': {'type': task_type, 'index': index}})


@pytest.mark.parametrize('env, rank', [
    ({}, 0),
    ({'RANK': '3'}, 3),
    ({'RANK': '0', 'LOCAL_RANK': '1'}, 0),
    ({'HOROVOD_RANK': '1'}, 1),
    ({'OMPI_COMM_WORLD_RANK': '2'}, 2),
    ({'PMI_RANK': '1'}, 1),
    ({'LOCAL_RANK': '1'}, 1),
    ({'LOCAL_RANK': '0', 'NODE_RANK': '1', 'LOCAL_WORLD_SIZE': '4'}, 4),
    ({'TF_CONFIG': _tf_config('chief', 0)}, 0),
    ({'TF_CONFIG': _tf_config('worker', 0)}, 1),
    ({'TF_CONFIG': _tf_config('worker', 0, chief=False)}, 0),
    ({'TF_CONFIG': _tf_config('worker', 1, chief=False)}, 1),
    ({'SLURM_PROCID': '2', 'SLURM_NTASKS': '4'}, 2),
    ({'SLURM_PROCID': '0', 'SLURM_NTASKS': '1'}, 0),
])
def test_rank_from_environment(clean_env, env, rank):
    for name, value in env.items():
        clean_env.setenv(name, value)
    assert distributed.get_rank() == rank
    assert distributed.should_write() == (rank == 0)


def test_parameter_server_never_writes(clean_env):
    clean_env.setenv('TF_CONFIG', _tf_config('ps', 0))
    assert distributed.get_rank() != 0


def test_rank_zero_only_decorator(clean_env):
    calls = []

    @distributed.rank_zero_only
    def record(x):
        calls.append(x)
        return x

    assert record(1) == 1
    clean_env.setenv('RANK', '1')
    assert record(2) is None
    clean_env.setenv('EM_ALL_RANKS', '1')
    assert record(3) == 3
    assert calls == [1, 3] and record.__name__ == 'record'


def test_rank_suffixed_name_keeps_the_name_rule():
    assert distributed.rank_suffixed_name('cnn', 3) == 'cnn-rank3'
    long = distributed.rank_suffixed_name('x' * 40, 12)
    assert len(long) == 40 and naming.NAME_RE.match(long)


SCRIPT = textwrap.dedent('''
    import os
    from t9k import em
    run = em.create_run(name='ddp', hparams={'lr': 0.1})
    run.log('train', {'loss': 1.0}, step=0)
    run.hparams['epochs'] = 2
    run.mark_output(em.Reference('Model', 'i', '/p'))
    print('is_inert', run.is_inert, run.metrics, flush=True)
    art = em.create_artifact('ckpt')
    with open('w.pt', 'w') as f:
        f.write('w')
    art.add_file('w.pt')
    art.add_reference('s3://b/k')
    run.mark_output(art)
    if run.is_inert:  # no server here: only inert objects may be asked to upload
        run.upload()
        art.upload()
    run.finish()
    print('done', art.is_inert)
''')


def _run_as(tmp_path, env):
    script = tmp_path / 'train.py'
    script.write_text(SCRIPT)
    full_env = {k: v for k, v in os.environ.items() if k not in RANK_VARS}
    full_env.update({'EM_RUN_PARENT_DIR': str(tmp_path / 'runs'),
                     'EM_ARTIFACT_PARENT_DIR': str(tmp_path / 'artifacts'), **env})
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=full_env,
                          capture_output=True, text=True, timeout=60, check=True).stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize('env', [{'RANK': '1'}, {'OMPI_COMM_WORLD_RANK': '1'},
                                 {'TF_CONFIG': _tf_config('worker', 1)}])
def test_non_zero_rank_accepts_everything_and_writes_nothing(tmp_path, env):
    out = _run_as(tmp_path, env)
    assert 'is_inert True {}' in out and 'done True' in out
    assert not (tmp_path / 'runs').exists() and not (tmp_path / 'artifacts').exists()


@pytest.mark.timeout(60)
def test_all_ranks_opt_out_writes_a_suffixed_run(tmp_path):
    out = _run_as(tmp_path, {'RANK': '1', 'EM_ALL_RANKS': '1'})
    assert 'is_inert False' in out
    (run_dir,) = os.listdir(tmp_path / 'runs')
    assert run_dir.startswith('ddp-rank1_')
    (art_dir,) = os.listdir(tmp_path / 'artifacts')
    assert art_dir.startswith('ckpt-rank1_')
