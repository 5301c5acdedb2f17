"""System metrics on a real GPU: a short Lightning training with ``EMLogger`` on ``cuda:0``.

For a machine with an NVIDIA GPU, torch with CUDA, and the ``system`` extra (``nvidia-ml-py``).
It trains a stack of wide linear layers on random data three times: sampling off, every 1 s and
every 0.1 s, and checks:

1. utilisation: some ``gpu0_util_percent`` sample taken while training is above 0;
2. memory: the largest ``gpu0_memory_used_bytes`` sample is at least
   ``torch.cuda.max_memory_reserved()`` (NVML counts every allocation on the device, torch's
   caching allocator is part of it);
3. overhead: the median and p99 step time (each step timed with ``torch.cuda.synchronize``) with
   sampling, next to the run without.

Prints a table; the exit status is 1 when check 1 or 2 fails.

Run: ``python benchmarks/system_metrics_gpu.py [--steps 600] [--width 4096]``; about a minute on
one GPU. ``--accelerator cpu`` runs the same code on a machine without a GPU (checks 1 and 2 then
report that there are no GPU samples).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Optional

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from t9k.em.lightning import EMLogger
from t9k_em_core import run_files


class WideMLP(LightningModule):
    def __init__(self, width: int, depth: int = 8) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(depth)])
        self.width = width

    def training_step(self, batch, batch_idx):
        x = batch[0]
        loss = self.net(x).pow(2).mean()
        self.log('train_loss', loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-4)

    def train_dataloader(self):
        data = torch.randn(64 * 1024, self.width)
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data), batch_size=1024)


class StepTimer(Callback):
    """Wall time of each training step, the device synchronised at both ends."""

    def __init__(self) -> None:
        self.times: List[float] = []
        self.first_step_at: Optional[float] = None
        self._start = 0.0

    def _sync(self, pl_module) -> None:
        if pl_module.device.type == 'cuda':
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()
        if self.first_step_at is None:
            self.first_step_at = time.time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync(pl_module)
        self.times.append(time.perf_counter() - self._start)


def train(args: argparse.Namespace, system_metrics) -> Dict[str, object]:
    timer = StepTimer()
    logger = EMLogger(name='gpu-check', system_metrics=system_metrics)
    trainer = Trainer(accelerator=args.accelerator, devices=1, max_steps=args.steps, logger=logger,
                      callbacks=[timer], enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, log_every_n_steps=50)
    if args.accelerator == 'gpu':
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(WideMLP(args.width))
    ended = time.time()
    reserved = torch.cuda.max_memory_reserved() if args.accelerator == 'gpu' else 0
    samples = run_files.read_metrics(logger.experiment.local).get('system', [])
    return {'times': timer.times[5:], 'reserved': reserved, 'samples': samples,
            'training': (timer.first_step_at, ended)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--steps', type=int, default=600)
    parser.add_argument('--width', type=int, default=4096)
    parser.add_argument('--accelerator', default='gpu', choices=('gpu', 'cpu'))
    args = parser.parse_args()
    os.environ['EM_RUN_PARENT_DIR'] = tempfile.mkdtemp(prefix='em-gpu-check-')
    if args.accelerator == 'gpu':
        print(f'device: {torch.cuda.get_device_name(0)}; CUDA_VISIBLE_DEVICES='
              f'{os.environ.get("CUDA_VISIBLE_DEVICES")!r}')
    results = {label: train(args, setting) for label, setting in
               (('off', False), ('every 1 s', 1.0), ('every 0.1 s', 0.1))}
    base = statistics.median(results['off']['times'])
    print('\n| sampling | steps | median step ms | p99 step ms | median / off | samples |')
    print('|---|---:|---:|---:|---:|---:|')
    for label, result in results.items():
        times = sorted(result['times'])
        median, p99 = statistics.median(times), times[int(len(times) * 0.99)]
        print(f'| {label} | {len(times)} | {median * 1e3:.3f} | {p99 * 1e3:.3f} '
              f'| {median / base:.3f} | {len(result["samples"])} |')

    ok = True
    sampled = results['every 0.1 s']
    start, end = sampled['training']
    during = [s['value'] for s in sampled['samples']
              if start <= _epoch_seconds(s['sequence']['timestamp']) <= end]
    utils = [v['gpu0_util_percent'] for v in during if 'gpu0_util_percent' in v]
    memory = [s['value']['gpu0_memory_used_bytes'] for s in sampled['samples']
              if 'gpu0_memory_used_bytes' in s['value']]
    print(f'\n1. utilisation while training: {len(utils)} samples, max '
          f'{max(utils) if utils else "-"} %')
    if not utils or max(utils) <= 0:
        ok = False
        print('   FAILED: no GPU utilisation above 0 while training')
    print(f'2. peak memory used (NVML) {max(memory) / 2**20 if memory else "-"} MiB >= '
          f'torch.cuda.max_memory_reserved() {sampled["reserved"] / 2**20:.0f} MiB')
    if not memory or max(memory) < sampled['reserved']:
        ok = False
        print('   FAILED: NVML saw less memory than torch reserved')
    print('3. overhead: see the table (median / off)')
    return 0 if ok else 1


def _epoch_seconds(timestamp: str) -> float:
    return datetime.datetime.fromisoformat(timestamp).timestamp()


if __name__ == '__main__':
    sys.exit(main())
