"""Handwritten digits (scikit-learn's bundled 8x8 set) with Lightning, tracked by ``EMLogger()``.

A small MLP is trained with ``Trainer(logger=EMLogger(log_model=True))``: the logger creates a
Run named after the LightningModule class (``DigitsClassifier``), records the hyperparameters
that ``save_hyperparameters()`` stores, ``train``/``val``/``test`` metrics, the best checkpoint
as an output Artifact, and finishes the Run (``Complete``, or ``Error`` if training fails).

    python examples/lightning_digits.py --epochs 5
    python examples/lightning_digits.py --host http://127.0.0.1:8080 --api-key <key> --folder demo

With ``--host``/``--api-key`` (or ``EM_HOST``/``EM_API_KEY``) the finished Run is uploaded with
its checkpoint Artifact; without them everything stays in ``.em/`` (``em ls`` lists it).
"""

from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

import torch
from lightning.pytorch import LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

from t9k import em
from t9k.em.lightning import EMLogger


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--lr', type=float, default=0.01)
    p.add_argument('--hidden', type=int, default=64)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--host', default=os.environ.get('EM_HOST'), help='AIStore host to upload to')
    p.add_argument('--api-key', default=os.environ.get('EM_API_KEY'), help='API key for the host')
    p.add_argument('--folder', default='examples/lightning', help='server Folder of the upload')
    return p.parse_args(argv)


class DigitsClassifier(LightningModule):
    """64 pixels → hidden layer → 10 classes."""

    def __init__(self, hidden: int = 64, lr: float = 0.01, batch_size: int = 64) -> None:
        super().__init__()
        self.save_hyperparameters()  # EMLogger writes these to hyperparameters.yaml
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch, prefix: str, **log_options) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y)
        accuracy = (logits.argmax(dim=1) == y).float().mean()
        # train_* → metrics/train.yaml, val_* → metrics/val.yaml, test_* → metrics/test.yaml
        self.log_dict({f'{prefix}_loss': loss, f'{prefix}_accuracy': accuracy}, **log_options)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, 'train')

    def validation_step(self, batch, batch_idx):
        self._step(batch, 'val', prog_bar=True)

    def test_step(self, batch, batch_idx):
        self._step(batch, 'test')

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def make_loaders(batch_size: int, seed: int):
    """Digits scaled to [0, 1], split 70/15/15."""
    digits = load_digits()
    data = TensorDataset(torch.tensor(digits.data / 16.0, dtype=torch.float32),
                         torch.tensor(digits.target, dtype=torch.long))
    n_val = n_test = len(data) * 15 // 100
    parts = random_split(data, [len(data) - n_val - n_test, n_val, n_test],
                         generator=torch.Generator().manual_seed(seed))
    return [DataLoader(part, batch_size=batch_size, shuffle=i == 0) for i, part in enumerate(parts)]


def main(argv: Optional[Sequence[str]] = None) -> em.Run:
    args = parse_args(argv)
    seed_everything(args.seed, verbose=False)
    train, val, test = make_loaders(args.batch_size, args.seed)
    model = DigitsClassifier(hidden=args.hidden, lr=args.lr, batch_size=args.batch_size)

    logger = EMLogger(log_model=True, labels=['lightning', 'example'],
                      description='MLP on the scikit-learn digits, tracked by EMLogger')
    trainer = Trainer(max_epochs=args.epochs, logger=logger, log_every_n_steps=5,
                      accelerator='cpu', enable_model_summary=False,
                      callbacks=[ModelCheckpoint(monitor='val_loss')])
    trainer.fit(model, train, val)
    result = trainer.test(model, test, verbose=False)[0]
    print(f"test accuracy {result['test_accuracy']:.3f}")

    run = logger.experiment  # finished by the logger (Complete) after test
    if args.host or args.api_key:
        em.login(ais_host=args.host, api_key=args.api_key)
        run.upload(folder=args.folder, make_folder=True)
        print(f'uploaded {run.alternative_name} to {args.folder}')
    print(f'run directory: {run.local}')
    return run


if __name__ == '__main__':
    main()
