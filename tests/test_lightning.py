"""EMLogger and EMCallback with real Lightning training (CPU), real runs on disk.

The generic checks are those Lightning applies to its own loggers (tests/tests_pytorch/loggers/
test_all.py): the (step, metric names) sequence of fit + test, pickling, lazy experiment,
dummy experiment on ranks above 0 with ddp_spawn. Multi-process tests use gloo on 2 CPU processes.
Run files are read with ``yaml.safe_load``, as t9k 0.6.0b0 reads them.
"""

from __future__ import annotations

import argparse
import enum
import glob
import os
import pathlib
import pickle
import subprocess
import sys

import pytest
import torch
import yaml
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.logger import DummyExperiment

from t9k.em.lightning import EMCallback, EMLogger
from t9k_em_core.run import Run, create_run

HERE = pathlib.Path(__file__).parent
QUIET = dict(enable_progress_bar=False, enable_model_summary=False, accelerator='cpu')


@pytest.fixture(autouse=True)
def em_dirs(em_dirs):
    """conftest's ``em_dirs`` for every test here; returns the run parent directory."""
    return em_dirs / 'runs'


def run_dirs(parent) -> list[str]:
    return sorted(glob.glob(os.path.join(str(parent), '*_[0-9]*_[0-9]*_*')))


def read_run(run_dir) -> dict:
    def load(name):
        with open(os.path.join(run_dir, name)) as f:
            return yaml.safe_load(f)
    metrics = {os.path.basename(p)[:-5]: load(os.path.join('metrics', os.path.basename(p)))
               for p in glob.glob(os.path.join(run_dir, 'metrics', '*.yaml'))}
    return {'metadata': load('metadata.yaml'), 'hparams': load('hyperparameters.yaml'),
            'metrics': metrics}


def only_run(parent) -> dict:
    dirs = run_dirs(parent)
    assert len(dirs) == 1, dirs
    return read_run(dirs[0])


class LoggingModel(BoringModel):
    """Logs in training, validation and test like Lightning's own logger test."""

    def training_step(self, batch, batch_idx):
        loss = self.step(batch)
        self.log('train_some_val', loss)
        return {'loss': loss}

    def on_validation_epoch_end(self):
        self.log_dict({'early_stop_on': torch.tensor(1), 'val_loss': torch.tensor(0.5)})

    def on_test_epoch_end(self):
        self.log('test_loss', torch.tensor(2))


class HParamsModel(LoggingModel):
    def __init__(self, lr=0.1, optimizer=None, args=None):
        super().__init__()
        self.save_hyperparameters()


def with_history(logger_class):
    class StoreHistory(logger_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.history = []

        def log_metrics(self, metrics, step=None):
            super().log_metrics(metrics, step)
            self.history.append((step, sorted(metrics.keys())))
    return StoreHistory


def fit_and_test(logger, model=None, **trainer_kwargs):
    options = dict(max_epochs=1, limit_train_batches=1, limit_val_batches=1, log_every_n_steps=1,
                   **QUIET)
    options.update(trainer_kwargs)
    trainer = Trainer(logger=logger, **options)
    model = model or LoggingModel()
    trainer.fit(model)
    trainer.test(model)
    return trainer


# --- Lightning's generic logger checks ---------------------------------------------------------

def test_fit_test_log_metrics_sequence_matches_csvlogger(tmp_path, em_dirs):
    csv = with_history(CSVLogger)(save_dir=str(tmp_path / 'csv'))
    fit_and_test(csv)
    em = with_history(EMLogger)()
    fit_and_test(em)

    assert em.history == csv.history == [
        (0, ['epoch', 'train_some_val']),
        (0, ['early_stop_on', 'epoch', 'val_loss']),
        (1, ['epoch', 'test_loss']),
    ]
    # fit and test went into one Run, reopened for test and finished again
    run = only_run(em_dirs)
    assert run['metadata']['status'] == 'Complete'
    metrics = run['metrics']
    assert [(e['sequence']['step'], e['sequence']['epoch'], list(e['value']))
            for e in metrics['train']] == [(0, 0, ['some_val'])]
    assert [(e['sequence']['step'], list(e['value'])) for e in metrics['val']] == [
        (0, ['early_stop_on', 'loss'])]
    assert metrics['test'] == [{'value': {'loss': 2.0}, 'sequence': {
        'epoch': 1, 'step': 1, 'timestamp': metrics['test'][0]['sequence']['timestamp']}}]


class LazyInitExperimentCheck(Callback):
    def setup(self, trainer, pl_module, stage=None):
        if trainer.global_rank == 0:
            assert trainer.logger._experiment


class RankZeroLoggerCheck(Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        is_dummy = isinstance(trainer.logger.experiment, DummyExperiment)
        assert is_dummy != trainer.is_global_zero
        if not trainer.is_global_zero:
            assert pl_module.logger.experiment.something(foo='bar') is None


def test_experiment_is_created_lazily_and_named_after_the_module(em_dirs):
    logger = EMLogger()
    assert logger._experiment is None and run_dirs(em_dirs) == []
    trainer = Trainer(logger=logger, max_steps=1, limit_val_batches=0, callbacks=[
        LazyInitExperimentCheck(), RankZeroLoggerCheck()], **QUIET)
    trainer.fit(BoringModel())

    run = only_run(em_dirs)
    assert run['metadata']['name'] == 'BoringModel' == logger.name
    assert run['metadata']['status'] == 'Complete'
    assert run['metadata']['alternativeName'] == f'BoringModel_{logger.version}'
    assert isinstance(logger.experiment, Run)
    assert logger.log_dir == logger.save_dir == logger.experiment.local == trainer.log_dir


@pytest.mark.timeout(180)
def test_ddp_spawn_ranks_above_zero_see_the_dummy_experiment(em_dirs):
    trainer = Trainer(logger=EMLogger(), strategy='ddp_spawn', devices=2, max_steps=1,
                      limit_val_batches=0, enable_checkpointing=False,
                      callbacks=[LazyInitExperimentCheck(), RankZeroLoggerCheck()], **QUIET)
    trainer.fit(BoringModel())
    run = only_run(em_dirs)
    assert run['metadata']['status'] == 'Complete'
    assert run['hparams']['distributed']['lightning']['strategy'] == 'ddp_spawn'


def test_logger_and_trainer_pickle(em_dirs):
    logger = EMLogger(name='pickled')
    run = logger.experiment
    logger.log_metrics({'a': 1})
    logger.save()
    pickle.dumps(logger)

    trainer = Trainer(max_epochs=1, logger=logger, **QUIET)
    trainer2 = pickle.loads(pickle.dumps(trainer))
    trainer2.logger.log_metrics({'acc': 1.0})

    assert trainer2.logger.name == logger.name == 'pickled'
    assert trainer2.logger.save_dir == logger.save_dir == run.local
    assert trainer2.logger.experiment is run  # same process: the same Run object
    assert [list(e['value']) for e in run.metrics['train']] == [['a'], ['acc']]
    run.finish()


# --- the Logger contract -------------------------------------------------------------------------

def test_log_metrics_types_by_prefix_and_phase(em_dirs):
    logger = EMLogger(name='prefixes')
    logger.log_metrics({'train_loss': 1, 'train/acc': 0.5, 'loss': 3, 'lr-Adam': 0.1,
                        'epoch': 2}, step=7)
    logger.log_metrics({'val_loss': 2, 'val/acc': 0.4, 'valid_f1': 0.3, 'validation/auc': 0.2,
                        'test_loss': 4, 'test/acc': 0.6}, step=8)
    logger.log_metrics({'loss': 5})  # step defaults to the count of earlier calls
    logger.finalize('success')

    metrics = only_run(em_dirs)['metrics']
    assert [(e['sequence'], e['value']) for e in metrics['train']] == [
        ({'epoch': 2, 'step': 7, 'timestamp': metrics['train'][0]['sequence']['timestamp']},
         {'train_loss': 1.0, 'acc': 0.5, 'loss': 3.0, 'lr-Adam': 0.1}),
        ({'epoch': None, 'step': 2, 'timestamp': metrics['train'][1]['sequence']['timestamp']},
         {'loss': 5.0}),
    ]  # 'train_loss' and 'loss' of one call both shorten to 'loss': the first keeps its name
    assert metrics['val'][0]['value'] == {'loss': 2.0, 'acc': 0.4, 'f1': 0.3, 'auc': 0.2}
    assert metrics['test'][0]['value'] == {'loss': 4.0, 'acc': 0.6}
    assert metrics['val'][0]['sequence']['step'] == 8


class Color(enum.Enum):
    RED = 1


def test_log_hyperparams_namespace_nested_and_sanitised(em_dirs):
    model = HParamsModel(lr=0.01, optimizer={'name': 'Adam', 'betas': (0.9, 0.999)},
                         args=argparse.Namespace(depth=3, inner=argparse.Namespace(x=1)))
    logger = EMLogger(name='hparams')
    Trainer(logger=logger, max_steps=1, limit_val_batches=0, enable_checkpointing=False,
            **QUIET).fit(model)
    logger.log_hyperparams(argparse.Namespace(
        color=Color.RED, path=pathlib.Path('/data/x'), act=torch.relu, weight=torch.tensor(2.5),
        ids={1, 2}))

    hparams = only_run(em_dirs)['hparams']
    assert hparams['lr'] == 0.01
    assert hparams['optimizer'] == {'name': 'Adam', 'betas': [0.9, 0.999]}
    assert hparams['args'] == {'depth': 3, 'inner': {'x': 1}}
    assert hparams['color'] == 'RED' and hparams['path'] == '/data/x'
    assert hparams['act'].endswith('relu') and hparams['weight'] == 2.5
    assert sorted(hparams['ids']) == [1, 2]


class FailingModel(BoringModel):
    def training_step(self, batch, batch_idx):
        if batch_idx == 1:
            raise RuntimeError('boom')
        out = super().training_step(batch, batch_idx)
        self.log('train_loss', out['loss'])
        return out


def test_failed_fit_finishes_the_run_with_error(em_dirs):
    trainer = Trainer(logger=EMLogger(), max_epochs=1, log_every_n_steps=1, **QUIET)
    with pytest.raises(RuntimeError, match='boom'):
        trainer.fit(FailingModel())
    run = only_run(em_dirs)
    assert run['metadata']['status'] == 'Error'
    assert run['metadata']['endTimestamp'] is not None
    assert len(run['metrics']['train']) == 1  # the step before the failure was kept


def test_given_run_is_used_and_left_open(em_dirs):
    run = create_run(name='mine')
    logger = EMLogger(run=run)
    fit_and_test(logger, enable_checkpointing=False)
    assert logger.experiment is run and run.status == 'Running'
    assert [list(e['value']) for e in run.metrics['test']] == [['loss']]
    run.finish()
    assert only_run(em_dirs)['metadata']['status'] == 'Complete'


def test_system_metrics_option_reaches_the_run(em_dirs, monkeypatch):
    monkeypatch.delenv('EM_SYSTEM_METRICS')  # sampling at its default (on): False must stop it
    sampled, quiet = EMLogger(name='sampled', system_metrics=0.1), EMLogger(name='quiet',
                                                                           system_metrics=False)
    fit_and_test(sampled)
    fit_and_test(quiet)
    samples = read_run(sampled.experiment.local)['metrics']['system']
    assert [e['sequence']['step'] for e in samples] == list(range(len(samples)))
    assert len(samples) >= 2 and 'process_rss_bytes' in samples[-1]['value']
    assert 'system' not in read_run(quiet.experiment.local)['metrics']


def test_bad_arguments_are_refused_at_construction():
    with pytest.raises(ValueError, match='Invalid name of Run'):
        EMLogger(name='bad name')
    with pytest.raises(ValueError, match='log_model'):
        EMLogger(log_model='best')
    with pytest.raises(ValueError, match='either run='):
        EMLogger(name='x', run=object())


@pytest.mark.parametrize('log_model, expected', [(True, 1), ('all', 3)])
def test_checkpoints_become_output_artifacts(em_dirs, tmp_path, log_model, expected):
    checkpoint = ModelCheckpoint(monitor='val_loss', save_top_k=-1)
    trainer = Trainer(logger=EMLogger(log_model=log_model), max_epochs=3, limit_train_batches=2,
                      limit_val_batches=1, callbacks=[checkpoint], **QUIET)

    class ValLoss(BoringModel):
        def validation_step(self, batch, batch_idx):
            self.log('val_loss', 1.0 / (self.current_epoch + 1))
    trainer.fit(ValLoss())

    outputs = only_run(em_dirs)['metadata']['associations']['output']
    assert len(outputs) == expected
    for entry in outputs:
        files = os.listdir(entry['localDir'])
        assert 'metadata.yaml' in files and any(f.endswith('.ckpt') for f in files)
    if log_model is True:  # the best: the lowest val_loss, the last epoch
        (best,) = outputs
        assert os.listdir(best['localDir']).count('epoch=2-step=6.ckpt') == 1
        with open(os.path.join(best['localDir'], 'metadata.yaml')) as f:
            assert 'best' in yaml.safe_load(f)['labels']


# --- 0.6.0b0's callback and the pytorch_lightning namespace ----------------------------------

def test_emcallback_logs_epoch_metrics_into_the_given_run(em_dirs):
    run = create_run(name='callback')
    model = HParamsModel(lr=0.2)
    trainer = Trainer(logger=False, max_epochs=2, limit_train_batches=2, limit_val_batches=1,
                      callbacks=[EMCallback(run)], enable_checkpointing=False, **QUIET)
    trainer.fit(model)
    trainer.test(model)
    run.finish()

    saved = only_run(em_dirs)
    assert saved['hparams']['lr'] == 0.2
    metrics = saved['metrics']
    # early_stop_on has no prefix: a train metric in Lightning's accumulated callback_metrics
    assert [(e['sequence']['epoch'], e['sequence']['step'], list(e['value']))
            for e in metrics['train']] == [(0, 2, ['some_val', 'early_stop_on']),
                                           (1, 4, ['some_val', 'early_stop_on'])]
    assert [(e['sequence']['epoch'], list(e['value'])) for e in metrics['val']] == [
        (0, ['loss']), (1, ['loss'])]
    assert [e['value'] for e in metrics['test']] == [{'loss': 2.0}]


def test_pytorch_lightning_namespace(em_dirs):
    import pytorch_lightning as pl
    from pytorch_lightning.demos.boring_classes import BoringModel as PLBoringModel

    from t9k.em.lightning import pl as em_pl
    from t9k.em.lightning.pl import EMCallback, EMLogger
    assert (EMLogger, EMCallback) == (em_pl.EMLogger, em_pl.EMCallback)

    class PLModel(PLBoringModel):
        def training_step(self, batch, batch_idx):
            out = super().training_step(batch, batch_idx)
            self.log('train_loss', out['loss'])
            return out

    logger = em_pl.EMLogger()
    assert isinstance(logger, pl.loggers.Logger) and isinstance(em_pl.EMCallback(None), pl.Callback)
    trainer = pl.Trainer(logger=logger, max_epochs=1, limit_train_batches=2, limit_val_batches=1,
                         log_every_n_steps=1, enable_progress_bar=False,
                         enable_model_summary=False, accelerator='cpu')
    trainer.fit(PLModel())
    assert pickle.loads(pickle.dumps(logger)).version == logger.version

    run = only_run(em_dirs)
    assert run['metadata']['name'] == 'PLModel' and run['metadata']['status'] == 'Complete'
    assert [e['sequence']['step'] for e in run['metrics']['train']] == [0, 1]


# --- DDP with 2 processes: exactly one run, distributed setup recorded -----------------------

@pytest.mark.timeout(240)
@pytest.mark.parametrize('launcher', ['torchrun', 'lightning'])
def test_ddp_job_makes_exactly_one_run(em_dirs, launcher):
    script = str(HERE / 'support' / 'lightning_ddp_job.py')
    command = ([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
                '--standalone', script] if launcher == 'torchrun' else [sys.executable, script])
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=220)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    run = only_run(em_dirs)
    assert run['metadata']['name'] == 'DDPModel' and run['metadata']['status'] == 'Complete'
    assert [e['sequence']['step'] for e in run['metrics']['train']] == [0, 1, 2]
    distributed = run['hparams']['distributed']
    assert distributed['torch']['world_size'] == 2
    assert distributed['torch']['backend'] == 'gloo'
    assert distributed['torch']['wrapper'] == 'DistributedDataParallel'
    assert distributed['lightning']['strategy'] == 'ddp'
    assert run['hparams']['lr'] == 0.05


# --- the example, uploaded to a real server -----------------------------------------------------

@pytest.mark.timeout(240)
def test_digits_example_trains_and_uploads(em_server, em_dirs, tmp_path, monkeypatch):
    import importlib.util

    from t9k import em

    spec = importlib.util.spec_from_file_location(
        'lightning_digits', HERE.parent / 'examples' / 'lightning_digits.py')
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    run = example.main(['--epochs', '2', '--host', em_server.url, '--api-key',
                        em_server.api_key, '--folder', 'lightning-example'])

    saved = only_run(em_dirs)
    assert saved['metadata']['name'] == 'DigitsClassifier'
    assert saved['metadata']['status'] == 'Complete'
    assert [r['action'] for r in saved['metadata']['remote']] == ['upload']
    assert saved['hparams'] == {'hidden': 64, 'lr': 0.01, 'batch_size': 64}
    assert saved['metrics']['test'][0]['value']['accuracy'] > 0.8
    assert len(saved['metadata']['associations']['output']) == 1  # the best checkpoint

    monkeypatch.setenv('EM_RUN_PARENT_DIR', str(tmp_path / 'downloaded'))
    downloaded = em.load_run('lightning-example/DigitsClassifier')
    assert downloaded.alternative_name == run.alternative_name
    assert downloaded.metrics['test'] == saved['metrics']['test']
    assert len(downloaded.metrics['val']) == 2
    downloaded.finish()
    em.logout()
