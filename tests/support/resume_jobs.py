"""Training jobs that are killed and restarted, for tests/test_resume_jobs.py.

Each job logs ``attempt`` (the restart count, from ``$ATTEMPT`` or torchelastic's
``TORCHELASTIC_RESTART_COUNT``) next to its metrics, so a test can tell which attempt wrote
each entry; ``$KILL_AT`` makes the job SIGKILL itself right after that step (after the metrics
of the step reached the disk), the way a preemption ends a job: no exit hook runs.

Usage: ``python -m support.resume_jobs plain|torchrun|lightning|keras|horovod WORKDIR``.
"""

from __future__ import annotations

import os
import signal
import sys


def attempt() -> int:
    return int(os.environ.get('ATTEMPT') or os.environ.get('TORCHELASTIC_RESTART_COUNT') or 0)


def kill_at() -> int:
    return int(os.environ.get('KILL_AT', '-1'))


def die(run) -> None:
    """SIGKILL this process once what it logged is on disk (a preemption)."""
    from t9k_em_core import metrics
    metrics.flush_all()
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def value(step: int) -> float:
    return (step * 7919 % 1000) / 1000 + attempt()


def plain(workdir: str, total: int = 1500, every: int = 500) -> None:
    """A loop with a checkpoint (a JSON file) every ``every`` steps and ``resume='auto'``
    (``EM_RESUME_KEY`` set by the test); uploads at the end when ``$UPLOAD_FOLDER`` is set."""
    import json
    from t9k import em
    ckpt = os.path.join(workdir, 'checkpoint.json')
    start = json.load(open(ckpt))['step'] if os.path.exists(ckpt) else 0
    run = em.create_run(name='plain', resume='auto')
    run.rewind(start, reason=f'restarted from checkpoint at step {start}')
    for step in range(start + 1, total + 1):
        run.log('train', {'loss': value(step), 'attempt': float(attempt())}, step=step)
        if step % 10 == 0:
            run.log('val', {'loss': value(step) / 2, 'attempt': float(attempt())}, step=step)
        if step % every == 0:
            with open(ckpt + '.tmp', 'w') as f:
                json.dump({'step': step}, f)
            os.replace(ckpt + '.tmp', ckpt)
        if step == kill_at():
            die(run)
    folder = os.environ.get('UPLOAD_FOLDER')
    if folder:
        run.upload(folder=folder, make_folder=True)
    run.finish()


def torchrun(workdir: str, total: int = 60, every: int = 20) -> None:
    """Two ranks (gloo); rank 1 crashes once after step ``$KILL_AT``; torchrun restarts both,
    which go on from the last checkpoint (rank 0 writes it)."""
    import json

    import torch
    import torch.distributed as dist
    from t9k import em
    dist.init_process_group('gloo')
    rank = dist.get_rank()
    ckpt = os.path.join(workdir, 'checkpoint.json')
    start = json.load(open(ckpt))['step'] if os.path.exists(ckpt) else 0
    run = em.create_run(name='ddp', resume='auto')
    run.rewind(start, reason=f'torchelastic restart {attempt()}')
    for step in range(start + 1, total + 1):
        loss = torch.tensor([value(step)])
        dist.all_reduce(loss)
        run.log('train', {'loss': float(loss) / 2, 'attempt': float(attempt())}, step=step)
        if step % every == 0 and rank == 0:
            with open(ckpt + '.tmp', 'w') as f:
                json.dump({'step': step}, f)
            os.replace(ckpt + '.tmp', ckpt)
        dist.barrier()
        if step == kill_at() and rank == 1 and attempt() == 0:
            os._exit(3)  # a crash of one worker
    run.finish()
    dist.destroy_process_group()


def lightning(workdir: str) -> None:
    """BoringModel with EMLogger, a checkpoint every 4 steps, 2 epochs of 8 batches; killed
    after step ``$KILL_AT``; restarted with ``fit(ckpt_path=<last checkpoint>)``."""
    import glob

    from lightning.pytorch import Callback, Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.demos.boring_classes import BoringModel

    from t9k.em.lightning import EMLogger

    class Model(BoringModel):
        def training_step(self, batch, batch_idx):
            out = super().training_step(batch, batch_idx)
            self.log('train_loss', out['loss'])
            self.log('train_attempt', float(attempt()))
            return out

        def validation_step(self, batch, batch_idx):
            out = super().validation_step(batch, batch_idx)
            self.log('val_attempt', float(attempt()))
            return out

    class Preempt(Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step - 1 == kill_at() and attempt() == 0:
                die(None)

    checkpoints = sorted(glob.glob(os.path.join(workdir, 'ck', '*.ckpt')), key=os.path.getmtime)
    trainer = Trainer(max_epochs=2, limit_train_batches=8, limit_val_batches=2, log_every_n_steps=1,
                      logger=EMLogger(name='boring'), num_sanity_val_steps=0, accelerator='cpu',
                      enable_progress_bar=False, enable_model_summary=False,
                      callbacks=[ModelCheckpoint(dirpath=os.path.join(workdir, 'ck'),
                                                 every_n_train_steps=4, save_top_k=-1,
                                                 filename='{step}'), Preempt()])
    trainer.fit(Model(), ckpt_path=checkpoints[-1] if checkpoints else None)


def keras(workdir: str) -> None:
    """An MLP fit for 4 epochs of 5 steps with EMCallback and BackupAndRestore (a backup at each
    epoch end); killed at the end of epoch ``$KILL_AT`` (1-based) after EMCallback logged it and
    before the backup of that epoch; restarted with the same code."""
    import keras as keras_module
    import numpy as np

    from t9k.em.keras import EMCallback

    class Preempt(keras_module.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == kill_at() and attempt() == 0:
                die(None)

    class Attempt(keras_module.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs['attempt'] = float(attempt())

    rng = np.random.default_rng(0)
    x = rng.random((100, 8)).astype('float32')
    y = (x[:, 0] + x[:, 1] > 1).astype('int32')
    model = keras_module.Sequential([keras_module.Input((8,)), keras_module.layers.Dense(2)],
                                    name='mlp')
    model.compile(optimizer='sgd', loss=keras_module.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    backup = keras_module.callbacks.BackupAndRestore(os.path.join(workdir, 'backup'))
    model.fit(x, y, batch_size=20, epochs=4, verbose=0, validation_split=0.0,
              callbacks=[Attempt(), EMCallback(), Preempt(), backup])


def horovod_elastic(workdir: str) -> None:
    """``hvd.elastic.run`` over a ``TorchState`` committed every 10 steps; at step 14 a worker
    is lost once: under ``horovodrun`` rank 1 exits, alone (one process) the training function
    raises the ``HorovodInternalError`` a lost worker raises. The wrapper restores the commit of
    step 10, resets and goes on. The state counts in ``step`` (no t9k-em code: the
    integration's hook), or with ``$EXPLICIT`` in ``batch``, given to
    ``em.horovod.rewind_on_reset``."""
    import horovod.torch as hvd
    import torch
    from horovod.common.exceptions import HorovodInternalError

    from t9k import em
    from t9k.em import horovod as em_hvd
    hvd.init()
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), 0.1)
    counter = 'batch' if os.environ.get('EXPLICIT') else 'step'
    state = hvd.elastic.TorchState(model=model, optimizer=optimizer, **{counter: 0})
    run = em.create_run(name='elastic')
    if counter == 'batch':
        em_hvd.rewind_on_reset(run, state, step_attribute='batch')
    lost = os.path.join(workdir, 'lost')

    @hvd.elastic.run
    def train(state):
        while getattr(state, counter) < 20:
            step = getattr(state, counter) + 1
            setattr(state, counter, step)
            em_hvd.log_averaged(run, hvd, 'train', {'attempt': float(os.path.exists(lost))},
                                step=step)
            if step % 10 == 0:
                state.commit()
            if step == 14 and not os.path.exists(lost) and hvd.rank() == hvd.size() - 1:
                open(lost, 'w').close()
                if hvd.size() > 1:
                    os._exit(3)
                raise HorovodInternalError('a worker was lost')

    train(state)
    run.finish()


JOBS = {'horovod': horovod_elastic, 'plain': plain, 'torchrun': torchrun, 'lightning': lightning,
        'keras': keras}

if __name__ == '__main__':
    JOBS[sys.argv[1]](sys.argv[2])
