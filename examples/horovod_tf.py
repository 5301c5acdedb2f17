"""Data-parallel training of a Keras 3 model with ``horovod.tensorflow``, tracked by ``t9k.em``.

    horovodrun -np 2 --gloo python examples/horovod_tf.py

On Keras 3, ``horovod.keras`` and ``horovod.tensorflow.keras`` are broken (see docs/horovod.md),
so the model is trained in a custom loop: ``hvd.DistributedGradientTape`` averages the
gradients, and ``hvd.broadcast_variables`` copies rank 0's model and optimizer variables to
every rank before training. Every rank trains on its shard of scikit-learn's digits and calls
``em.create_run``: only rank 0 writes a Run. Each epoch, ``log_averaged`` logs the mean over
all ranks of each rank's metrics (a collective: all ranks call it).

``--raw-metrics-dir DIR`` also writes each rank's own, un-averaged metrics to
``DIR/rank<k>.jsonl``, to see what the averaging does, with the sum of the model's weights
(equal on all ranks while the gradients are averaged).
"""

from __future__ import annotations

import argparse
import json
import os

import horovod.tensorflow as hvd
import keras
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits

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


def shards() -> tuple[np.ndarray, ...]:
    """This rank's shard of the training and of the validation samples."""
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype('float32')
    x_train, y_train = x[:-VALIDATION_SAMPLES], y[:-VALIDATION_SAMPLES]
    x_val, y_val = x[-VALIDATION_SAMPLES:], y[-VALIDATION_SAMPLES:]
    # Equal shards, so that every rank runs the same number of steps (collectives pair up).
    train = _shard(len(x_train))
    val = _shard(len(x_val))
    return x_train[train], y_train[train], x_val[val], y_val[val]


def _shard(samples: int) -> slice:
    per_rank = samples // hvd.size()
    return slice(hvd.rank() * per_rank, (hvd.rank() + 1) * per_rank)


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
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(args.seed + hvd.rank())  # the broadcast below unifies the weights
    x_train, y_train, x_val, y_val = shards()

    model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(64, activation='relu'),
                              keras.layers.Dense(10)])
    optimizer = keras.optimizers.SGD(learning_rate=args.lr * hvd.size(), momentum=0.9)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    # Horovod 0.28.1 works on tf.Variables (it calls .assign and .ref on them): a Keras 3
    # variable's ``value`` is its tf.Variable on the TensorFlow backend.
    hvd.broadcast_variables([v.value for v in model.variables + optimizer.variables], root_rank=0)
    trainable = [v.value for v in model.trainable_variables]

    @tf.function
    def train_step(x: tf.Tensor, y: tf.Tensor) -> None:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        tape = hvd.DistributedGradientTape(tape)
        gradients = tape.gradient(loss, trainable)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))

    def evaluate(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        logits = model(x, training=False)
        return {'loss': float(loss_fn(y, logits)),
                'accuracy': float(np.mean(np.argmax(logits, axis=1) == y))}

    run = em.create_run(name='horovod_tf', labels=['Horovod', 'TensorFlow', 'Keras'],
                        hparams={'epochs': args.epochs, 'batch_size': args.batch_size,
                                 'learning_rate': args.lr * hvd.size(), 'optimizer': 'SGD',
                                 'momentum': 0.9})
    run.params.parse(dist_hvd=hvd)

    rng = np.random.default_rng(args.seed + hvd.rank())
    step = 0
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x_train))
        for start in range(0, len(x_train), args.batch_size):
            batch = order[start:start + args.batch_size]
            train_step(x_train[batch], y_train[batch])
            step += 1
        train, val = evaluate(x_train, y_train), evaluate(x_val, y_val)
        write_raw(args.raw_metrics_dir, {'epoch': epoch, 'step': step, 'train': train, 'val': val,
                                         'weights_sum': float(sum(np.sum(w) for w in trainable))})
        train = log_averaged(run, hvd, 'train', train, step=step, epoch=epoch)
        val = log_averaged(run, hvd, 'val', val, step=step, epoch=epoch)
        report(epoch, train, val)
    run.finish()


if __name__ == '__main__':
    main()
