"""Handwritten digits (scikit-learn's bundled 8x8 set) with Keras, tracked by ``EMCallback()``.

A small MLP is trained with ``model.fit(..., callbacks=[EMCallback(save_model='best')])``: the
callback creates a Run named after the model (``digits_mlp``), records the optimizer, loss, metric
names, batch size, epochs, steps, validation split and parameter counts, logs ``train`` and ``val``
metrics each epoch, saves the best model as an output Artifact and finishes the Run (``Complete``).
The script then reopens the Run (``em.load_run``) and evaluates the test set with
``EMCallback(run)``, which logs ``test`` metrics into a Run it is given and leaves finishing it to
the script.

    python examples/keras_digits.py --epochs 5
    python examples/keras_digits.py --host http://127.0.0.1:8080 --api-key <key> --folder demo

With ``--host``/``--api-key`` (or ``EM_HOST``/``EM_API_KEY``) the finished Run is uploaded with
the model Artifact; without them everything stays in ``.em/`` (``em ls`` lists it).
"""

from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from t9k import em
from t9k.em.keras import EMCallback


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--lr', type=float, default=0.01)
    p.add_argument('--hidden', type=int, default=64)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--host', default=os.environ.get('EM_HOST'), help='AIStore host to upload to')
    p.add_argument('--api-key', default=os.environ.get('EM_API_KEY'), help='API key for the host')
    p.add_argument('--folder', default='examples/keras', help='server Folder of the upload')
    return p.parse_args(argv)


def build_model(hidden: int, lr: float) -> keras.Model:
    """64 pixels → hidden layer → 10 classes."""
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(hidden, activation='relu'),
                              keras.layers.Dense(10, activation='softmax')], name='digits_mlp')
    model.compile(optimizer=keras.optimizers.Adam(lr), loss='sparse_categorical_crossentropy',
                  metrics=['accuracy'])
    return model


def main(argv: Optional[Sequence[str]] = None) -> em.Run:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        (digits.data / 16.0).astype(np.float32), digits.target, test_size=0.15,
        random_state=args.seed)
    model = build_model(args.hidden, args.lr)

    fit_callback = EMCallback(save_model='best', description='MLP on the scikit-learn digits')
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
              validation_split=0.15, verbose=2, callbacks=[fit_callback])

    run = em.load_run(fit_callback.run.local)  # reopened: test metrics go to the same Run
    result = model.evaluate(x_test, y_test, verbose=0, return_dict=True,
                            callbacks=[EMCallback(run)])
    run.finish()
    print(f"test accuracy {result['accuracy']:.3f}")

    if args.host or args.api_key:
        em.login(ais_host=args.host, api_key=args.api_key)
        run.upload(folder=args.folder, make_folder=True)
        print(f'uploaded {run.alternative_name} to {args.folder}')
    print(f'run directory: {run.local}')
    return run


if __name__ == '__main__':
    main()
