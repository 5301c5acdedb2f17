"""How long ``em ls`` and ``em describe`` take on big local Runs, next to a full parse and MLflow.

Data: ``--runs`` Run directories in the 0.6.0b0 layout, each with ``--entries`` ``train`` entries
(2 metrics) and ``--entries``/100 ``val`` entries. The same metrics go into an MLflow file store
(one MLflow run per Run, ``log_batch``).

Timed (median of ``--rounds``, in-process, output to /dev/null):

- ``em ls``: ``t9k_em_core.cli.main(['ls', PARENT])``: metadata + entry counts (files counted,
  not parsed);
- ``full parse``: ``run_files.read_run_dir`` of every Run (what a listing that loads each Run costs);
- ``em describe``: ``cli.main(['describe', RUN])`` of one Run (last entries from the file tails);
- ``read one Run``: ``run_files.read_run_dir`` of that Run;
- ``mlflow search_runs``: ``mlflow.search_runs`` over the experiment (latest metric values);
- ``em ls (process)``: the ``em ls`` console script as a subprocess, interpreter start included.

Usage: ``python benchmarks/em_ls.py [--runs 20] [--entries 20000] [--rounds 5] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict

from t9k_em_core import cli, fileio, run_files

RUN_FILES = {
    'index.yaml': 'hyperparameters: hyperparameters.yaml\nmetrics:\n  train: metrics/train.yaml\n'
                  '  val: metrics/val.yaml\nplatform: platform.yaml\ngit: git.yaml\nlog: stdout.log\n',
    'hyperparameters.yaml': 'lr: 0.001\nbatch_size: 32\n',
    'platform.yaml': "hostname: bench\nos: Linux\npython: 3.11.7\npypkgs: {}\nframework: ''\n",
    'git.yaml': 'repo_path: null\nremote_url: null\nbranch: null\ncommit: null\nis_dirty: null\n'
                'entrypoint: null\n',
    'stdout.log': '',
}


def _entries(n: int, keys: tuple) -> str:
    parts = []
    for step in range(n):
        values = ''.join(f'    {k}: {1.0 / (step + 1 + i)!r}\n' for i, k in enumerate(keys))
        parts.append(f"- value:\n{values}  sequence:\n    epoch: {step // 100}\n    step: {step}\n"
                     f"    timestamp: '2026-11-26T19:01:21.{step % 1000000:06d}+08:00'\n")
    return ''.join(parts)


def build_runs(parent: str, runs: int, entries: int) -> None:
    train, val = _entries(entries, ('loss', 'accuracy')), _entries(max(entries // 100, 1), ('loss',))
    for r in range(runs):
        run_dir = os.path.join(parent, f'bench{r}_261126_190121_{r:06d}')
        os.makedirs(os.path.join(run_dir, 'metrics'))
        fileio.write_yaml(os.path.join(run_dir, 'metadata.yaml'), {
            'kind': 'Run', 'name': f'bench{r}', 'labels': [], 'description': '',
            'startTimestamp': '2026-11-26T19:01:21.646034+08:00',
            'endTimestamp': '2026-11-26T19:11:21.646034+08:00', 'status': 'Complete',
            'alternativeName': os.path.basename(run_dir),
            'associations': {'input': [], 'output': []}, 'remote': []})
        for name, text in RUN_FILES.items():
            with open(os.path.join(run_dir, name), 'w') as f:
                f.write(text)
        for metric_type, text in (('train', train), ('val', val)):
            with open(os.path.join(run_dir, 'metrics', f'{metric_type}.yaml'), 'w') as f:
                f.write(text)


def build_mlflow(store: str, runs: int, entries: int) -> Callable[[], object]:
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    os.environ['MLFLOW_ALLOW_FILE_STORE'] = 'true'
    uri = 'file://' + store
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment('bench')
    for r in range(runs):
        run_id = client.create_run(experiment).info.run_id
        metrics = [Metric(k, 1.0 / (s + 1 + i), 0, s) for s in range(entries)
                   for i, k in enumerate(('loss', 'accuracy'))]
        metrics += [Metric('val_loss', 0.5, 0, s) for s in range(max(entries // 100, 1))]
        for i in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[i:i + 1000])
        client.set_terminated(run_id)
    mlflow.set_tracking_uri(uri)
    return lambda: mlflow.search_runs(experiment_ids=[experiment])


def median_time(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def quiet(fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        with open(os.devnull, 'w') as null, contextlib.redirect_stdout(null):
            return fn()
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--runs', type=int, default=20)
    p.add_argument('--entries', type=int, default=20000)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--no-mlflow', action='store_true')
    p.add_argument('--json')
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        parent = os.path.join(tmp, 'runs')
        build_runs(parent, args.runs, args.entries)
        one = sorted(os.listdir(parent))[0]
        one = os.path.join(parent, one)
        em = os.path.join(os.path.dirname(sys.executable), 'em')
        results: Dict[str, float] = {
            'em ls': median_time(quiet(lambda: cli.main(['ls', parent])), args.rounds),
            'full parse': median_time(lambda: [run_files.read_run_dir(os.path.join(parent, d))
                                               for d in os.listdir(parent)], max(args.rounds // 2, 1)),
            'em describe': median_time(quiet(lambda: cli.main(['describe', one])), args.rounds),
            'read one Run': median_time(lambda: run_files.read_run_dir(one), args.rounds),
            'em ls (process)': median_time(lambda: subprocess.run([em, 'ls', parent], check=True,
                                                                  stdout=subprocess.DEVNULL),
                                           args.rounds),
        }
        if not args.no_mlflow:
            search = build_mlflow(os.path.join(tmp, 'mlruns'), args.runs, args.entries)
            results['mlflow search_runs'] = median_time(search, args.rounds)
    print(f'{args.runs} Runs x {args.entries} train entries (+{max(args.entries // 100, 1)} val), '
          f'median of {args.rounds}')
    for name, seconds in results.items():
        ratio = seconds / results['em ls']
        print(f'  {name:20s} {seconds * 1000:10.1f} ms   x{ratio:.1f} of em ls')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'runs': args.runs, 'entries': args.entries, 'seconds': results}, f, indent=1)


if __name__ == '__main__':
    main()
