"""Overhead of EMCallback on Keras ``fit``, side by side with peers.

A small MLP (20k samples of 32 features, 10 classes, batch 64, 5 epochs, validation_split 0.1)
is trained with each setup, the setups interleaved round after round:

- ``none``:            no callback;
- ``em-epoch``:        ``EMCallback()`` (owns its run: creation and finish are counted);
- ``em-batch``:        ``EMCallback(log_every_n_batches=1)``;
- ``csvlogger``:       ``keras.callbacks.CSVLogger``;
- ``mlflow-epoch``:    ``mlflow.keras.MlflowCallback()`` inside ``mlflow.start_run()``;
- ``mlflow-batch``:    ``MlflowCallback(log_every_epoch=False, log_every_n_steps=1)``;
- ``dvclive-epoch``:   ``dvclive.keras.DVCLiveCallback()`` (only with ``--setups``).

Two figures per setup:

(a) hook share: time spent inside the callback's own hooks (every overridden hook method is
    wrapped with a timer, so Keras dispatches exactly as without the timer), divided by the
    ``fit`` time of the same run; the median over rounds.
(b) fit time: the median wall time of ``fit`` over the rounds, and its ratio to ``none``. The noise
    of the machine is the spread of ``none`` itself: the median absolute deviation of its fit
    times, as a share of its median.

Tracing (``tf.function``) is done before the timed ``fit`` (one ``train_on_batch`` and one
``test_on_batch``), so it does not dilute the shares. Everything is written under a temporary
directory. Usage: ``python benchmarks/keras_overhead.py [--rounds 9] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

import numpy as np

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import keras  # noqa: E402

from t9k.em.keras import EMCallback  # noqa: E402

SAMPLES, FEATURES, CLASSES, BATCH, EPOCHS = 20_000, 32, 10, 64, 5
HOOKS = ('on_train_begin', 'on_train_end', 'on_epoch_begin', 'on_epoch_end', 'on_batch_begin',
         'on_batch_end', 'on_train_batch_begin', 'on_train_batch_end', 'on_test_begin',
         'on_test_end', 'on_test_batch_begin', 'on_test_batch_end')


class HookTimer:
    """Accumulates the time spent in the overridden hooks of one callback.

    ``setup_seconds`` is the part spent in ``on_train_begin``/``on_train_end`` (for EMCallback:
    creating and finishing its run), which does not grow with the length of training.
    """

    def __init__(self, callback: keras.callbacks.Callback) -> None:
        self.seconds = 0.0
        self.setup_seconds = 0.0
        for name in HOOKS:
            method = getattr(callback, name)
            if not getattr(method, '_is_default', False):  # Keras' marker of a base-class hook
                is_setup = name in ('on_train_begin', 'on_train_end')
                setattr(callback, name, self._timed(method, is_setup))

    def _timed(self, method: Callable, is_setup: bool) -> Callable:
        @functools.wraps(method)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.seconds += elapsed
                if is_setup:
                    self.setup_seconds += elapsed
        return timed


def em_epoch(tmp: str) -> tuple:
    return EMCallback(), contextlib.nullcontext()


def em_batch(tmp: str) -> tuple:
    return EMCallback(log_every_n_batches=1), contextlib.nullcontext()


def csvlogger(tmp: str) -> tuple:
    path = os.path.join(tmp, f'log{time.monotonic_ns()}.csv')
    return keras.callbacks.CSVLogger(path), contextlib.nullcontext()


def _mlflow(tmp: str, **kwargs) -> tuple:
    import mlflow
    mlflow.set_tracking_uri('sqlite:///' + os.path.join(tmp, 'mlflow.db'))
    return mlflow.keras.MlflowCallback(**kwargs), mlflow.start_run()


def mlflow_epoch(tmp: str) -> tuple:
    return _mlflow(tmp)


def mlflow_batch(tmp: str) -> tuple:
    return _mlflow(tmp, log_every_epoch=False, log_every_n_steps=1)


def dvclive_epoch(tmp: str) -> tuple:
    from dvclive.keras import DVCLiveCallback
    path = os.path.join(tmp, f'dvclive{time.monotonic_ns()}')
    return DVCLiveCallback(dir=path, save_dvc_exp=False), contextlib.nullcontext()


SETUPS: Dict[str, Optional[Callable[[str], tuple]]] = {
    'none': None, 'em-epoch': em_epoch, 'em-batch': em_batch, 'csvlogger': csvlogger,
    'mlflow-epoch': mlflow_epoch, 'mlflow-batch': mlflow_batch, 'dvclive-epoch': dvclive_epoch,
}
DEFAULT_SETUPS = ['none', 'em-epoch', 'em-batch', 'csvlogger', 'mlflow-epoch', 'mlflow-batch']


def print_table(rows: List[dict], rounds: int) -> None:
    print(f'Keras {keras.__version__} ({keras.backend.backend()}), {SAMPLES} samples, batch {BATCH}, '
          f'{EPOCHS} epochs, {rounds} interleaved rounds; noise = MAD of fit time / median',
          flush=True)
    print(f"{'setup':<15}{'hook share':>11}{'w/o begin+end':>14}{'hook ms':>9}{'begin+end ms':>13}"
          f"{'fit s':>8}{'MAD':>7}{'vs none':>9}")
    for r in rows:
        print(f"{r['setup']:<15}{r['hook_share_pct']:>10.3f}%{r['per_step_share_pct']:>13.3f}%"
              f"{r['hook_ms_median']:>9.1f}{r['setup_ms_median']:>13.1f}"
              f"{r['fit_s_median']:>8.2f}{r['fit_mad_pct']:>6.1f}%{r['fit_ratio_to_none']:>9.3f}",
              flush=True)


def available(names: List[str]) -> List[str]:
    """The setups whose packages import here."""
    usable = []
    for name in names:
        package = name.split('-')[0]
        if package in ('mlflow', 'dvclive'):
            try:
                importlib.import_module(f'{package}.keras')
            except ImportError as e:
                print(f'skipping {name}: {e}', file=sys.stderr)
                continue
        usable.append(name)
    return usable


def data() -> tuple:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((SAMPLES, FEATURES)).astype('float32')
    w = rng.standard_normal((FEATURES, CLASSES)).astype('float32')
    return x, np.argmax(x @ w + rng.standard_normal((SAMPLES, CLASSES)), axis=1).astype('int32')


def model() -> keras.Model:
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(64, activation='relu'),
                          keras.layers.Dense(64, activation='relu'),
                          keras.layers.Dense(CLASSES, activation='softmax')], name='bench_mlp')
    m.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
    return m


def one_fit(setup: str, x: np.ndarray, y: np.ndarray, tmp: str) -> tuple:
    """Fit time, hook time and the setup part of the hook time (seconds) of one run of ``setup``."""
    m = model()
    m.train_on_batch(x[:BATCH], y[:BATCH])  # trace outside the timed fit
    m.test_on_batch(x[:BATCH], y[:BATCH])
    factory = SETUPS[setup]
    callback, context = factory(tmp) if factory else (None, contextlib.nullcontext())
    timer = HookTimer(callback) if callback is not None else None
    with context:
        start = time.perf_counter()
        m.fit(x, y, batch_size=BATCH, epochs=EPOCHS, validation_split=0.1, verbose=0,
              callbacks=[callback] if callback is not None else [])
        fit_seconds = time.perf_counter() - start
    return fit_seconds, timer.seconds if timer else 0.0, timer.setup_seconds if timer else 0.0


def summarize(results: Dict[str, List[tuple]]) -> List[dict]:
    base = statistics.median(f for f, _, _ in results['none'])
    rows = []
    for setup, runs in results.items():
        fits = [f for f, _, _ in runs]
        median_fit = statistics.median(fits)
        mad = statistics.median(abs(f - median_fit) for f in fits)
        rows.append({'setup': setup, 'rounds': len(runs),
                     'hook_share_pct': 100 * statistics.median(h / f for f, h, _ in runs),
                     'per_step_share_pct': 100 * statistics.median((h - s) / f for f, h, s in runs),
                     'hook_ms_median': 1000 * statistics.median(h for _, h, _ in runs),
                     'setup_ms_median': 1000 * statistics.median(s for _, _, s in runs),
                     'fit_s_median': median_fit, 'fit_mad_pct': 100 * mad / median_fit,
                     'fit_ratio_to_none': median_fit / base})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=9)
    parser.add_argument('--setups', nargs='*', default=DEFAULT_SETUPS, choices=list(SETUPS))
    parser.add_argument('--json', help='also write the table as JSON to this file')
    args = parser.parse_args()
    json_path = os.path.abspath(args.json) if args.json else None
    with tempfile.TemporaryDirectory(prefix='keras-overhead-') as tmp:
        os.chdir(tmp)
        os.environ['EM_RUN_PARENT_DIR'] = os.path.join(tmp, 'runs')
        os.environ['EM_ARTIFACT_PARENT_DIR'] = os.path.join(tmp, 'artifacts')
        setups = available(['none'] + [s for s in args.setups if s != 'none'])
        x, y = data()
        one_fit('none', x, y, tmp)  # warm-up: imports, thread pools, allocator
        results: Dict[str, List[tuple]] = {s: [] for s in setups}
        for round_ in range(args.rounds):
            order = setups[round_ % len(setups):] + setups[:round_ % len(setups)]  # rotate
            for setup in order:
                results[setup].append(one_fit(setup, x, y, tmp))
            rows = summarize(results)
            print_table(rows, round_ + 1)  # the table so far: a long run can be read at any time
            if json_path:
                with open(json_path, 'w') as f:
                    json.dump({'rounds': round_ + 1, 'rows': rows}, f, indent=1)


if __name__ == '__main__':
    main()
