"""Data-parallel training with ``horovod.torch``, tracked by ``t9k.em``.

    horovodrun -np 2 --gloo python examples/horovod_torch.py

Every rank trains a small MLP on its shard of scikit-learn's digits (bundled, no download);
``hvd.DistributedOptimizer`` averages the gradients and rank 0's parameters and optimizer
state are broadcast before training. Every rank calls ``em.create_run``: only rank 0 writes a
Run (the others get an inert one). Each epoch, every rank evaluates on its own shards and
``log_averaged`` logs the mean over all ranks (a collective: all ranks call it).

``--raw-metrics-dir DIR`` also writes each rank's own, un-averaged metrics to
``DIR/rank<k>.jsonl``, to see what the averaging does, with the sum of the model's weights
(equal on all ranks while the gradients are averaged).
"""

from __future__ import annotations

import argparse
import json
import os

import horovod.torch as hvd
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F

from t9k import em
from t9k.em.horovod import log_averaged, rank_zero_only

VALIDATION_SAMPLES = 360


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--batch-size', type=int, default=32, help='per rank')
    parser.add_argument('--lr', type=float, default=0.05, help='scaled by the number of ranks')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--raw-metrics-dir', help="write each rank's un-averaged metrics here")
    return parser.parse_args()


def shards() -> tuple[torch.Tensor, ...]:
    """This rank's shard of the training and of the validation samples."""
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.long)
    x_train, y_train = x[:-VALIDATION_SAMPLES], y[:-VALIDATION_SAMPLES]
    x_val, y_val = x[-VALIDATION_SAMPLES:], y[-VALIDATION_SAMPLES:]
    # Equal shards, so that every rank runs the same number of steps (collectives pair up).
    train = _shard(len(x_train))
    val = _shard(len(x_val))
    return x_train[train], y_train[train], x_val[val], y_val[val]


def _shard(samples: int) -> slice:
    per_rank = samples // hvd.size()
    return slice(hvd.rank() * per_rank, (hvd.rank() + 1) * per_rank)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    model.eval()
    logits = model(x)
    return {'loss': F.cross_entropy(logits, y).item(),
            'accuracy': (logits.argmax(dim=1) == y).float().mean().item()}


@rank_zero_only
def report(epoch: int, train: dict[str, float], val: dict[str, float]) -> None:
    print(f"epoch {epoch}: loss {train['loss']:.4f}, val_loss {val['loss']:.4f}, "
          f"val_accuracy {val['accuracy']:.4f}")


def write_raw(directory: str | None, record: dict) -> None:
    if directory:
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f'rank{hvd.rank()}.jsonl'), 'a') as f:
            f.write(json.dumps(record) + '\n')


def main() -> None:
    args = parse_args()
    hvd.init()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed + hvd.rank())  # different on purpose: the broadcast unifies them
    x_train, y_train, x_val, y_val = shards()

    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr * hvd.size(), momentum=0.9)
    optimizer = hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters())
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(optimizer, root_rank=0)

    run = em.create_run(name='horovod_torch', labels=['Horovod', 'PyTorch'],
                        hparams={'epochs': args.epochs, 'batch_size': args.batch_size,
                                 'learning_rate': args.lr * hvd.size(), 'optimizer': 'SGD',
                                 'momentum': 0.9})
    run.params.parse(dist_hvd=hvd)

    step = 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        for batch in torch.randperm(len(x_train)).split(args.batch_size):
            optimizer.zero_grad()
            F.cross_entropy(model(x_train[batch]), y_train[batch]).backward()
            optimizer.step()
            step += 1
        train, val = evaluate(model, x_train, y_train), evaluate(model, x_val, y_val)
        weights_sum = sum(p.sum().item() for p in model.parameters())
        write_raw(args.raw_metrics_dir, {'epoch': epoch, 'step': step, 'train': train, 'val': val,
                                         'weights_sum': weights_sum})
        train = log_averaged(run, hvd, 'train', train, step=step, epoch=epoch)
        val = log_averaged(run, hvd, 'val', val, step=step, epoch=epoch)
        report(epoch, train, val)
    run.finish()


if __name__ == '__main__':
    main()
