"""``Params.parse`` with real distributed training: tf.distribute and torch.distributed.

Each case runs a real training script in subprocesses (2 logical CPU devices, 2 torchrun ranks
over gloo, 2 TensorFlow workers over TF_CONFIG on loopback) in which every process calls
``create_run``; the rank-0 guard must leave exactly one Run directory, whose
``hyperparameters.yaml`` holds what ``parse`` recorded.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from t9k_em_core import run_files

pytestmark = pytest.mark.timeout(240)


def _env(tmp_path) -> dict:
    env = dict(os.environ)
    env.update({
        'EM_RUN_PARENT_DIR': str(tmp_path / 'runs'),
        'EM_ARTIFACT_PARENT_DIR': str(tmp_path / 'artifacts'),
        'TF_CPP_MIN_LOG_LEVEL': '2',
        'CUDA_VISIBLE_DEVICES': '',
        'OMP_NUM_THREADS': '1',
    })
    for name in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'TF_CONFIG', 'EM_ALL_RANKS'):
        env.pop(name, None)
    return env


def _script(tmp_path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def _only_run(tmp_path) -> dict:
    """The one Run directory under the test's parent: its files, read back."""
    runs = sorted(os.listdir(tmp_path / 'runs'))
    assert len(runs) == 1, f'expected exactly one Run directory, found {runs}'
    return run_files.read_run_dir(str(tmp_path / 'runs' / runs[0]))


def _free_ports(n: int) -> list:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(('127.0.0.1', 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _check(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f'exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}'


MIRRORED = """
    import json
    import tensorflow as tf
    from t9k import em
    from t9k_em_integrations.tf_distribute import batch_sizes, describe

    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])

    run = em.create_run(name='mirrored', hparams={'lr': 0.1})
    run.params.parse(dist_tf_strategy=strategy)
    with strategy.scope():
        w = tf.Variable(1.0)

    @tf.function
    def step():
        def replica_fn():
            with tf.GradientTape() as tape:
                loss = (w - 3.0) ** 2
            w.assign_sub(0.1 * tape.gradient(loss, w) / strategy.num_replicas_in_sync)
            return loss
        return strategy.reduce('MEAN', strategy.run(replica_fn), axis=None)

    for i in range(3):
        run.log('train', {'loss': float(step())}, step=i)
    run.finish()
    print('BATCH', json.dumps([describe(strategy, global_batch_size=64), batch_sizes(strategy, 65)]))
"""


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    proc = subprocess.run([sys.executable, _script(tmp_path, 'mirrored.py', MIRRORED)],
                          env=_env(tmp_path), capture_output=True, text=True, timeout=200)
    _check(proc)
    run = _only_run(tmp_path)
    assert run['hparams']['lr'] == 0.1  # parse adds to, never replaces, the hparams
    tf_info = run['hparams']['distributed']['tensorflow']
    assert tf_info['api'] == 'tf.distribute'
    assert tf_info['strategy'] == 'MirroredStrategy'
    assert tf_info['replicas'] == 2
    assert [d.rsplit('/', 1)[-1] for d in tf_info['devices']] == ['device:CPU:0', 'device:CPU:1']
    assert tf_info['world_size'] == 1 and tf_info['rank'] == 0
    assert tf_info['cluster_spec'] is None and tf_info['task_type'] is None
    assert tf_info['cross_device_ops']  # the all-reduce implementation the strategy picked
    assert len(run['metrics']['train']) == 3
    batch, uneven = json.loads(proc.stdout.split('BATCH ', 1)[1])
    assert batch['global_batch_size'] == 64 and batch['per_replica_batch_size'] == 32
    assert batch['replicas'] == 2  # the batch keys come on top of the description
    assert uneven == {'global_batch_size': 65, 'per_replica_batch_size': 32.5}


DDP = """
    import os
    import torch
    import torch.distributed as dist
    from torch import nn
    from t9k import em

    dist.init_process_group('gloo')
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(nn.Linear(4, 1))
    run = em.create_run(name='ddp', hparams={'lr': 0.05})
    run.params.parse(dist_torch_model=model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    for i in range(3):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        run.log('train', {'loss': loss.item(), 'rank': dist.get_rank()}, step=i)
    run.finish()
    dist.destroy_process_group()
"""


def test_ddp_gloo_under_torchrun(tmp_path):
    script = _script(tmp_path, 'ddp.py', DDP)
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone',
                           '--nproc_per_node=2', script],
                          env=_env(tmp_path), capture_output=True, text=True, timeout=200)
    _check(proc)
    run = _only_run(tmp_path)
    torch_info = run['hparams']['distributed']['torch']
    assert torch_info['api'] == 'torch.distributed'
    assert torch_info['wrapper'] == 'DistributedDataParallel'
    assert torch_info['module'] == 'Linear'
    assert torch_info['backend'] == 'gloo'
    assert torch_info['world_size'] == 2 and torch_info['replicas'] == 2
    assert torch_info['rank'] == 0 and torch_info['local_rank'] == 0
    assert torch_info['local_world_size'] == 2
    # Only rank 0's metrics were written.
    assert [e['value']['rank'] for e in run['metrics']['train']] == [0.0, 0.0, 0.0]


MULTI_WORKER = """
    import tensorflow as tf
    from t9k import em

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    run = em.create_run(name='multiworker')
    run.params.parse(dist_tf_strategy=strategy)
    with strategy.scope():
        w = tf.Variable(1.0)

    @tf.function
    def step():
        def replica_fn():
            with tf.GradientTape() as tape:
                loss = (w - 3.0) ** 2
            w.assign_sub(0.1 * tape.gradient(loss, w) / strategy.num_replicas_in_sync)
            return loss
        return strategy.reduce('MEAN', strategy.run(replica_fn), axis=None)

    for i in range(2):
        run.log('train', {'loss': float(step())}, step=i)
    run.finish()
"""


def test_multi_worker_mirrored_strategy_over_tf_config(tmp_path):
    script = _script(tmp_path, 'multiworker.py', MULTI_WORKER)
    workers = [f'localhost:{p}' for p in _free_ports(2)]
    procs = []
    for index in range(2):
        env = _env(tmp_path)
        env['TF_CONFIG'] = json.dumps({'cluster': {'worker': workers},
                                       'task': {'type': 'worker', 'index': index}})
        procs.append(subprocess.Popen([sys.executable, script], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    try:
        for p in procs:
            out, err = p.communicate(timeout=200)
            _check(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    run = _only_run(tmp_path)
    tf_info = run['hparams']['distributed']['tensorflow']
    assert tf_info['strategy'] == 'MultiWorkerMirroredStrategy'
    assert tf_info['cluster_spec'] == {'worker': workers}
    assert tf_info['task_type'] == 'worker' and tf_info['task_index'] == 0
    assert tf_info['world_size'] == 2 and tf_info['replicas'] == 2 and tf_info['rank'] == 0
    assert tf_info['communication'] == 'AUTO'
    assert len(run['metrics']['train']) == 2


def test_parse_records_data_parallel_and_rejects_wrong_objects():
    torch = pytest.importorskip('torch')
    from t9k_em_core.params import Params

    written = []
    params = Params(written.append, {'lr': 0.1})
    params.parse(dist_torch_model=torch.nn.DataParallel(torch.nn.Linear(2, 1)))
    info = params['distributed']['torch']
    assert info['wrapper'] == 'DataParallel' and info['module'] == 'Linear'
    assert info['world_size'] == 1 and info['rank'] == 0 and info['backend'] is None
    assert written[-1]['distributed']['torch'] == info and written[-1]['lr'] == 0.1

    with pytest.raises(TypeError, match='dist_torch_model must be a torch.nn.Module'):
        params.parse(dist_torch_model='not a model')
    params.parse()  # nothing given: nothing recorded
    assert list(params['distributed']) == ['torch']
