"""Cost of one "log 10 scalars" call: t9k-em ``Run.log`` next to its peers.

Peers, each writing to a temporary directory:

- ``list.append`` of ``(metrics, step)``: the floor of any in-process logger;
- t9k-em ``Run.log('train', metrics, step)``, with the optional ``orjson`` float formatter (the
  ``fast`` extra) and without it, without the optional C extension ``t9k_em_core._speedups``,
  with ``train`` and ``val`` logged in turn, and with system metrics sampled every 1 s (the
  default of ``create_run``) and 0.1 s (the other rows sample none);
- Lightning ``CSVLogger.log_metrics(metrics, step)`` (buffers, writes a CSV every 100 steps);
- DVCLive ``log_metric`` × 10 + ``next_step()``;
- MLflow ``log_metrics(metrics, step=...)`` with the local file store and with SQLite.

For each: the per-call latency (median, p99; each call timed with ``perf_counter_ns``, which adds
the "timer" row's cost to every number) and the amortised mean (an untimed loop of the same calls
plus the final flush/close, divided by the number of calls; for t9k-em this includes the
flusher thread's formatting and writes), in wall time and in process CPU time (the latter is
robust to a busy machine). Slow peers get fewer calls (stated in the table).

Run: ``.venv/bin/python benchmarks/log_overhead.py [--calls 100000] [--rounds 3]``; each round
runs every peer once, and the table shows the median of each figure over the rounds.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from typing import Callable, Dict, List, Tuple
from unittest import mock

NUM_METRICS = 10
VARIANTS = 1000  # distinct metric dicts, cycled (built before timing)


def _metric_dicts() -> List[Dict[str, float]]:
    return [{f'metric_{k}': (i * 31 + k) / 997.0 for k in range(NUM_METRICS)}
            for i in range(VARIANTS)]


def _measure(log: Callable[[Dict[str, float], int], None], close: Callable[[], None],
             calls: int, dicts: List[Dict[str, float]]) -> Tuple[List[int], float, float]:
    """Per-call nanoseconds of ``calls`` timed calls, then the amortised wall and CPU seconds
    per call of ``calls`` untimed calls followed by ``close()`` (CPU: every thread of the
    process, so background writers count)."""
    clock = time.perf_counter_ns
    per_call = [0] * calls
    gc.collect()
    for i in range(calls):
        metrics = dicts[i % VARIANTS]
        t0 = clock()
        log(metrics, i)
        per_call[i] = clock() - t0
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(calls, 2 * calls):
        log(dicts[i % VARIANTS], i)
    close()
    return (per_call, (time.perf_counter() - start) / calls,
            (time.process_time() - cpu_start) / calls)


def bench_list_append(root: str, calls: int, dicts):
    buf: list = []
    append = buf.append
    return _measure(lambda m, s: append((m, s)), lambda: None, calls, dicts)


def bench_timer(root: str, calls: int, dicts):
    return _measure(lambda m, s: None, lambda: None, calls, dicts)


def bench_t9k_em(root: str, calls: int, dicts, system_metrics=False):
    os.environ['EM_RUN_PARENT_DIR'] = os.path.join(root, 'runs')
    from t9k import em
    run = em.create_run(name='bench', system_metrics=system_metrics)
    log = run.log
    return _measure(lambda m, s: log('train', m, s), run.finish, calls, dicts)


def bench_t9k_em_sampled(root: str, calls: int, dicts):
    """With system metrics sampled every second (the default of ``create_run``)."""
    return bench_t9k_em(root, calls, dicts, system_metrics=1.0)


def bench_t9k_em_sampled_fast(root: str, calls: int, dicts):
    """With system metrics sampled every 0.1 s (the shortest interval)."""
    return bench_t9k_em(root, calls, dicts, system_metrics=0.1)


def bench_t9k_em_in_turn(root: str, calls: int, dicts):
    """Two metric types logged in turn (``train`` and ``val`` every step)."""
    os.environ['EM_RUN_PARENT_DIR'] = os.path.join(root, 'runs')
    from t9k import em
    run = em.create_run(name='bench', system_metrics=False)
    log = run.log
    return _measure(lambda m, s: log('val' if s & 1 else 'train', m, s >> 1), run.finish, calls,
                    dicts)


def bench_t9k_em_without_orjson(root: str, calls: int, dicts):
    from t9k_em_core import metric_file
    with mock.patch.multiple(metric_file, _orjson_dumps=None):  # as where orjson is not installed
        return bench_t9k_em(root, calls, dicts)


def bench_t9k_em_without_c(root: str, calls: int, dicts):
    from t9k_em_core import metric_file, metrics
    with mock.patch.multiple(metric_file, _interleave=metric_file._interleave_py), \
            mock.patch.multiple(metrics, _pack=metrics._pack_py):  # as where the C extension was not built
        return bench_t9k_em(root, calls, dicts)


def bench_csvlogger(root: str, calls: int, dicts):
    from lightning.pytorch.loggers import CSVLogger
    logger = CSVLogger(root, name='bench')
    return _measure(logger.log_metrics, lambda: logger.finalize('success'), calls, dicts)


def bench_dvclive(root: str, calls: int, dicts):
    from dvclive import Live
    live = Live(os.path.join(root, 'dvclive'), save_dvc_exp=False, dvcyaml=None)

    def log(metrics, step):
        for key, value in metrics.items():
            live.log_metric(key, value)
        live.next_step()

    return _measure(log, live.end, calls, dicts)


def _mlflow(uri: str, calls: int, dicts):
    import mlflow
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment('bench')
    mlflow.start_run()
    return _measure(lambda m, s: mlflow.log_metrics(m, step=s), mlflow.end_run, calls, dicts)


def bench_mlflow_file(root: str, calls: int, dicts):
    return _mlflow('file://' + os.path.join(root, 'mlruns'), calls, dicts)


def bench_mlflow_sqlite(root: str, calls: int, dicts):
    return _mlflow('sqlite:///' + os.path.join(root, 'mlflow.db'), calls, dicts)


PEERS = [  # (label, function, fraction of --calls it gets)
    ('timer (empty call)', bench_timer, 1.0),
    ('list.append (floor)', bench_list_append, 1.0),
    ('t9k-em Run.log', bench_t9k_em, 1.0),
    ('t9k-em Run.log, without orjson', bench_t9k_em_without_orjson, 1.0),
    ('t9k-em Run.log, without the C extension', bench_t9k_em_without_c, 1.0),
    ('t9k-em Run.log, train and val in turn', bench_t9k_em_in_turn, 1.0),
    ('t9k-em Run.log, system metrics every 1 s', bench_t9k_em_sampled, 1.0),
    ('t9k-em Run.log, system metrics every 0.1 s', bench_t9k_em_sampled_fast, 1.0),
    ('Lightning CSVLogger.log_metrics', bench_csvlogger, 1.0),
    ('DVCLive log_metric x10 + next_step', bench_dvclive, 0.01),
    ('MLflow log_metrics (file store)', bench_mlflow_file, 0.01),
    ('MLflow log_metrics (sqlite)', bench_mlflow_sqlite, 0.005),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--calls', type=int, default=100_000)
    parser.add_argument('--rounds', type=int, default=3,
                        help='rounds over every peer; the table shows medians over rounds')
    parser.add_argument('--only', help='comma-separated substrings of peer labels to run')
    args = parser.parse_args()
    warnings.filterwarnings('ignore')
    logging.disable(logging.WARNING)
    os.environ.setdefault('MLFLOW_ENABLE_ASYNC_LOGGING', 'false')
    os.environ.setdefault('MLFLOW_ALLOW_FILE_STORE', 'true')  # MLflow 3 deprecates, still ships it
    dicts = _metric_dicts()
    start = os.getcwd()
    peers = [p for p in PEERS
             if not args.only or any(s.strip() in p[0] for s in args.only.split(','))]
    results: Dict[str, List[Tuple[float, float, float, float]]] = {}
    calls_of: Dict[str, int] = {}
    for round_ in range(args.rounds):
        for label, fn, share in peers:
            calls = calls_of[label] = max(100, int(args.calls * share))
            with tempfile.TemporaryDirectory() as root:
                os.chdir(root)  # outside any git repository: DVCLive sets up DVC around cwd
                try:
                    per_call, amortised, cpu = fn(root, calls, dicts)
                except Exception as e:  # a peer that cannot run here is reported, not fatal
                    print(f'{label}: skipped ({type(e).__name__}: {e})', file=sys.stderr)
                    continue
                finally:
                    os.chdir(start)
            per_call.sort()
            results.setdefault(label, []).append(
                (statistics.median(per_call) / 1000, per_call[int(len(per_call) * 0.99)] / 1000,
                 amortised * 1e6, cpu * 1e6))
            print(f'round {round_ + 1}: {label}', file=sys.stderr, flush=True)
    print_table(results, calls_of, args.rounds)


def print_table(results: Dict[str, List[Tuple[float, float, float, float]]],
                calls_of: Dict[str, int], rounds: int) -> None:
    """Medians over rounds; the ratio to t9k-em is the median of the per-round ratios of the
    amortised means (pairs measured close in time, so a slow phase of the machine cancels)."""
    ours = results.get('t9k-em Run.log')
    print(f'\n{NUM_METRICS} scalars per call; python {sys.version.split()[0]}; '
          f'{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; medians of {rounds} '
          'rounds\n')
    print('| logger | calls | median µs | p99 µs | mean µs (amortised) | mean, min–max '
          '| CPU µs (amortised) | mean / t9k-em |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|')
    for label, runs in results.items():
        median, p99, mean, cpu = (statistics.median(r[i] for r in runs) for i in range(4))
        means = [r[2] for r in runs]
        ratio = (f'{statistics.median(r[2] / o[2] for r, o in zip(runs, ours)):.2f}×'
                 if ours else '-')
        print(f'| {label} | {calls_of[label]:,} | {median:.2f} | {p99:.2f} | {mean:.2f} '
              f'| {min(means):.2f}–{max(means):.2f} | {cpu:.2f} | {ratio} |')


if __name__ == '__main__':
    main()
