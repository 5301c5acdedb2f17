"""Logistic regression in plain NumPy, tracked with ``t9k.em`` from start to finish.

The script generates a data set, records it as an input Artifact, trains with mini-batch
gradient descent while logging ``train`` metrics per step and ``val`` metrics per epoch, saves
the weights as an output Artifact, evaluates on a test split and finishes the Run.

    python examples/numpy_train.py --epochs 5
    python examples/numpy_train.py --host http://127.0.0.1:8080 --api-key <key> --folder demo

With ``--host``/``--api-key`` (or ``EM_HOST``/``EM_API_KEY``) the finished Run is uploaded with
its Artifacts; without them everything stays in ``.em/`` (``em ls`` lists it).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from t9k import em


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--lr', type=float, default=0.5)
    p.add_argument('--samples', type=int, default=2000)
    p.add_argument('--features', type=int, default=8)
    p.add_argument('--log-every', type=int, default=10, help='log train metrics every N steps')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--host', default=os.environ.get('EM_HOST'), help='AIStore host to upload to')
    p.add_argument('--api-key', default=os.environ.get('EM_API_KEY'), help='API key for the host')
    p.add_argument('--folder', default='examples/numpy', help='server Folder of the upload')
    return p.parse_args(argv)


def make_data(samples: int, features: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Points drawn around a random hyperplane; labels from a noisy logistic model."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, features))
    true_w = rng.normal(size=features)
    p = 1 / (1 + np.exp(-(x @ true_w + 0.5)))
    y = (rng.random(samples) < p).astype(np.float64)
    return x, y


def evaluate(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray) -> Dict[str, float]:
    """Mean binary cross-entropy and accuracy."""
    p = np.clip(1 / (1 + np.exp(-(x @ w + b))), 1e-7, 1 - 1e-7)
    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    return {'loss': float(loss), 'accuracy': float(np.mean((p > 0.5) == y))}


def main(argv: Optional[Sequence[str]] = None) -> em.Run:
    args = parse_args(argv)
    run = em.create_run(
        name='numpy_logreg', labels=['numpy', 'example'],
        description='Logistic regression with mini-batch gradient descent in NumPy.',
        hparams={'epochs': args.epochs, 'batch_size': args.batch_size, 'learning_rate': args.lr,
                 'samples': args.samples, 'features': args.features, 'seed': args.seed,
                 'optimizer': 'sgd', 'loss': 'binary_crossentropy'})

    x, y = make_data(args.samples, args.features, args.seed)
    n_train, n_val = int(0.7 * len(x)), int(0.15 * len(x))
    splits = {'train': (x[:n_train], y[:n_train]),
              'val': (x[n_train:n_train + n_val], y[n_train:n_train + n_val]),
              'test': (x[n_train + n_val:], y[n_train + n_val:])}

    with tempfile.TemporaryDirectory() as tmp:
        data_file = os.path.join(tmp, 'data.npz')
        np.savez(data_file, **{f'{k}_{part}': v for k, (xs, ys) in splits.items()
                               for part, v in (('x', xs), ('y', ys))})
        dataset = em.create_artifact(name='numpy_logreg_data', labels=['dataset'],
                                     description=f'{args.samples} generated points, 70/15/15 split')
        dataset.add_file(data_file, obj_path='data/')
    run.mark_input(dataset)

    rng = np.random.default_rng(args.seed)
    w, b = np.zeros(args.features), 0.0
    x_train, y_train = splits['train']
    step = 0
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), args.batch_size):
            idx = order[start:start + args.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            error = 1 / (1 + np.exp(-(xb @ w + b))) - yb
            w -= args.lr * xb.T @ error / len(idx)
            b -= args.lr * float(np.mean(error))
            step += 1
            if step % args.log_every == 0:
                run.log('train', evaluate(w, b, xb, yb), step=step, epoch=epoch)
        val = evaluate(w, b, *splits['val'])
        run.log('val', val, step=step, epoch=epoch)
        print(f'epoch {epoch}: val loss {val["loss"]:.4f}, accuracy {val["accuracy"]:.3f}')

    run.log('test', evaluate(w, b, *splits['test']), step=step, epoch=args.epochs)

    with tempfile.TemporaryDirectory() as tmp:
        weights_file = os.path.join(tmp, 'weights.npz')
        np.savez(weights_file, w=w, b=np.array(b))
        model = em.create_artifact(name='numpy_logreg_model', labels=['weights'],
                                   description='Logistic regression weights (w, b)')
        model.add_file(weights_file)
    run.mark_output(model)
    run.finish()

    if args.host or args.api_key:
        em.login(ais_host=args.host, api_key=args.api_key)
        run.upload(folder=args.folder, make_folder=True)
        print(f'uploaded {run.alternative_name} to {args.folder}')
    print(f'run directory: {run.local}')
    return run


if __name__ == '__main__':
    main()
