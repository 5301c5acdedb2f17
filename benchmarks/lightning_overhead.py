"""What a Lightning logger costs a training job: ``EMLogger`` next to Lightning's own loggers.

A small model (Linear 32→64→2 on random data, batch 32) is trained for 2,000 steps with
``log_every_n_steps=1`` (three metrics per step, no validation, no checkpoints), with:
no logger; a do-nothing ``Logger``; ``CSVLogger``; ``TensorBoardLogger``; ``EMLogger``;
``MLFlowLogger`` (local file store, allowed with ``MLFLOW_ALLOW_FILE_STORE=true``; its SQLite
store would add a schema migration per fresh database). Each logger writes to a fresh temporary
directory.

Two figures:

(a) time spent inside the logger's own methods and properties (``log_metrics``,
    ``log_hyperparams``, ``experiment``, ``save``, ``finalize``, ...; timed around every call
    made by Lightning, nested calls counted once), as a share of that fit's wall time. Measured
    in separate, instrumented fits (``--timed-rounds``), median share reported.
(b) fit wall time (``trainer.fit``), median over ``--rounds`` (≥ 9) uninstrumented fits run
    interleaved (each round runs every configuration once, in a rotated order), with the
    ratio to the do-nothing logger.

Goals for EMLogger: (a) below CSVLogger and TensorBoardLogger; (b) no slower than CSVLogger and
at most 2% over the do-nothing logger.

Run: ``.venv/bin/python benchmarks/lightning_overhead.py [--rounds 9] [--steps 2000]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
import warnings
from typing import Any, Callable, Dict, List, Optional

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from t9k.em.lightning import EMLogger

TIMED_MEMBERS = ('log_metrics', 'log_hyperparams', 'log_graph', 'save', 'finalize',
                 'after_save_checkpoint', 'experiment', 'name', 'version', 'save_dir', 'log_dir')


class SmallModel(LightningModule):
    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        loss = nn.functional.cross_entropy(logits, y)
        accuracy = (logits.argmax(dim=1) == y).float().mean()
        self.log_dict({'train_loss': loss, 'train_accuracy': accuracy, 'lr': self.hparams.lr})
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class DoNothingLogger(Logger):
    """A Logger whose every method returns at once: the floor for any logger."""

    @property
    def name(self) -> str:
        return 'nothing'

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics: Dict[str, float], step: Optional[int] = None) -> None:
        pass

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


def make_loggers(tmp: str) -> Dict[str, Callable[[], Any]]:
    """Configuration name → factory of a fresh logger writing under ``tmp``."""
    def fresh(label: str) -> str:
        return tempfile.mkdtemp(prefix=label + '-', dir=tmp)

    def em_logger() -> EMLogger:
        os.environ['EM_RUN_PARENT_DIR'] = fresh('em')
        return EMLogger(name='bench')

    return {
        'no logger': lambda: False,
        'do-nothing Logger': DoNothingLogger,
        'CSVLogger': lambda: CSVLogger(save_dir=fresh('csv')),
        'TensorBoardLogger': lambda: TensorBoardLogger(save_dir=fresh('tb')),
        'EMLogger': em_logger,
        'MLFlowLogger': lambda: MLFlowLogger(tracking_uri='file:' + fresh('mlflow')),
    }


class CallTimer:
    """Accumulates wall time inside the timed members of one logger (outermost calls only)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._depth = 0

    def wrap(self, fn: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return fn(*args, **kwargs)
            self._depth += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1
                self._depth -= 1
        return timed

    def instrument(self, logger: Any) -> Any:
        """Swaps ``logger``'s class for a subclass whose members are timed."""
        cls = type(logger)
        overrides: Dict[str, Any] = {}
        for member in TIMED_MEMBERS:
            attr = getattr(cls, member, None)
            if isinstance(attr, property):
                overrides[member] = property(self.wrap(attr.fget))
            elif callable(attr):
                overrides[member] = self.wrap(attr)
        logger.__class__ = type('Timed' + cls.__name__, (cls,), overrides)
        return logger


def fit_once(make_logger: Callable[[], Any], loader: DataLoader, steps: int,
             timer: Optional[CallTimer] = None) -> float:
    logger = make_logger()
    if timer is not None and logger is not False:
        timer.instrument(logger)
    trainer = Trainer(max_steps=steps, logger=logger, log_every_n_steps=1, accelerator='cpu',
                      limit_val_batches=0, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0)
    model = SmallModel()
    start = time.perf_counter()
    trainer.fit(model, loader)
    return time.perf_counter() - start


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--steps', type=int, default=2000)
    p.add_argument('--rounds', type=int, default=9, help='uninstrumented rounds, figure (b)')
    p.add_argument('--timed-rounds', type=int, default=3, help='instrumented rounds, figure (a)')
    args = p.parse_args(argv)

    warnings.filterwarnings('ignore')
    os.environ['MLFLOW_ALLOW_FILE_STORE'] = 'true'
    logging.getLogger('lightning.pytorch').setLevel(logging.ERROR)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    data = TensorDataset(torch.randn(args.steps * 32, 32), torch.randint(0, 2, (args.steps * 32,)))
    loader = DataLoader(data, batch_size=32)

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # MLflow and others may write relative paths
        loggers = make_loggers(tmp)
        names = list(loggers)
        for name in names:  # warm-up: imports, first-use costs
            fit_once(loggers[name], loader, 50)

        shares: Dict[str, List[float]] = {n: [] for n in names}
        calls: Dict[str, int] = {}
        for r in range(args.timed_rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                timer = CallTimer()
                wall = fit_once(loggers[name], loader, args.steps, timer)
                shares[name].append(timer.seconds / wall)
                calls[name] = timer.calls

        walls: Dict[str, List[float]] = {n: [] for n in names}
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                walls[name].append(fit_once(loggers[name], loader, args.steps))
            # the table so far, so that a long run can be read while it goes on
            print_table(names, shares, calls, walls, args, r + 1)


def print_table(names: List[str], shares: Dict[str, List[float]], calls: Dict[str, int],
                walls: Dict[str, List[float]], args: argparse.Namespace, rounds: int) -> None:
    floor = statistics.median(walls['do-nothing Logger'])
    print(f'\n{args.steps} steps, log_every_n_steps=1, 3 metrics/step; '
          f'(a) median of {args.timed_rounds} instrumented fits, '
          f'(b) median of {rounds} interleaved fits; torch threads 1; '
          f'load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n')
    print('| configuration | (a) time in logger methods | calls | (b) median fit wall [s] '
          '| min–max [s] | vs do-nothing |')
    print('|---|---:|---:|---:|---:|---:|')
    for name in names:
        share = '—' if name == 'no logger' else f'{100 * statistics.median(shares[name]):.2f}%'
        n_calls = '—' if name == 'no logger' else str(calls[name])
        wall = statistics.median(walls[name])
        print(f'| {name} | {share} | {n_calls} | {wall:.3f} | {min(walls[name]):.3f}–'
              f'{max(walls[name]):.3f} | {100 * (wall / floor - 1):+.1f}% |', flush=True)


if __name__ == '__main__':
    main()
