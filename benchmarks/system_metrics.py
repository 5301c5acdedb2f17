"""Cost of sampling system metrics: t9k-em's sampler next to MLflow's and W&B's system monitors.

For each peer, a run is opened with its system monitor at an interval (1 s and 0.1 s), and after
a warm-up the CPU time spent on sampling during a window is measured:

- t9k-em: the CPU clocks of the threads ``t9k-em-system-metrics`` (reading the probes, logging
  the sample) and ``t9k-em-flusher`` (writing it to ``metrics/system.yaml``), minus the
  flusher's clock over the same window in a Run that samples nothing (it wakes every 0.5 s
  anyway), per sample taken in the window (counted from the file). Host only (psutil), and
  host + 8 GPUs: this machine has
  no GPU, so the 8 GPUs are simulated by ``tests/support/recorded_nvml.py``, a stand-in for ``pynvml``
  that answers with written-down values: the Python side of the GPU probe is measured, the
  NVML driver calls (a few µs each on a real GPU) are not.
- MLflow (``start_run(log_system_metrics=True)``, file store): the CPU clock of its
  ``SystemMetricsMonitor`` thread, which reads psutil and logs each sample; samples counted from
  the logged history of ``system/cpu_utilization_percentage``.
- W&B (``wandb.init(mode='offline')``, ``x_stats_sampling_interval``): the CPU time of its
  ``wandb-symon`` process (sampling) and ``wandb-core`` process (writing the offline file), from
  ``/proc`` (clock ticks: 10 ms), minus the same processes' CPU over the same window with
  ``x_disable_stats=True``; samples counted as window / interval (the offline file is binary).

Neither peer samples GPUs here (no GPU, and their GPU monitors need a real NVML), so the side-by-
side comparison is on this machine's CPU metrics. The machine may be shared with other work: the
ratios, measured in the same run, mean more than the absolute numbers.

Run: ``.venv/bin/python benchmarks/system_metrics.py [--window 20] [--fast-window 5]``.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import sys
import tempfile
import threading
import time
import warnings
from typing import Callable, Dict, List, Optional, Tuple

import psutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARM_UP = 1.5  # seconds before the window: imports, NVML start, the peers' first samples


def _thread_clocks(names: Tuple[str, ...]) -> float:
    """CPU seconds so far of this process's threads of those names."""
    total = 0.0
    for thread in threading.enumerate():
        if thread.name in names and thread.ident is not None:
            try:
                total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except OSError:  # the thread ended meanwhile
                pass
    return total


def _process_cpu(names: Tuple[str, ...]) -> float:
    """CPU seconds so far of this process's descendants of those names."""
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            if child.name() in names:
                times = child.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            pass
    return total


def _window(seconds: float, clock: Callable[[], float]) -> Tuple[float, float, float]:
    """(CPU seconds of ``clock`` over the window, window start, end as epoch seconds)."""
    time.sleep(WARM_UP)
    start_cpu, start = clock(), time.time()
    time.sleep(seconds)
    return clock() - start_cpu, start, time.time()


def _in_window(stamps: List[float], start: float, end: float) -> int:
    return sum(1 for t in stamps if start <= t <= end)


def t9k_em(root: str, interval: float, seconds: float, gpus: int) -> Tuple[float, int]:
    os.environ['EM_RUN_PARENT_DIR'] = os.path.join(root, 'runs')
    from t9k import em
    if gpus:
        sys.path.insert(0, os.path.join(REPO, 'tests'))
        from support.recorded_nvml import RecordedNvml
        sys.modules['pynvml'] = RecordedNvml(count=gpus)
    else:
        sys.modules['pynvml'] = None  # import pynvml → ImportError: host only
    try:
        run = em.create_run(name='bench', system_metrics=interval)
        cpu, start, end = _window(seconds, lambda: _thread_clocks(
            ('t9k-em-system-metrics', 't9k-em-flusher')))
        run.finish()
    finally:
        del sys.modules['pynvml']
    idle = em.create_run(name='idle', system_metrics=False)  # the flusher's wake-ups alone
    idle_cpu, _, _ = _window(seconds, lambda: _thread_clocks(('t9k-em-flusher',)))
    idle.finish()
    cpu = max(0.0, cpu - idle_cpu)
    stamps = [datetime.datetime.fromisoformat(e['sequence']['timestamp']).timestamp()
              for e in run.metrics['system']]
    return cpu, _in_window(stamps, start, end)


def mlflow_monitor(root: str, interval: float, seconds: float, gpus: int) -> Tuple[float, int]:
    import mlflow
    os.environ['MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL'] = str(interval)
    mlflow.set_tracking_uri('file://' + os.path.join(root, 'mlruns'))
    mlflow.set_experiment('bench')
    run = mlflow.start_run(log_system_metrics=True)
    names = tuple(t.name for t in threading.enumerate() if 'SystemMetrics' in t.name)
    cpu, start, end = _window(seconds, lambda: _thread_clocks(names))
    mlflow.end_run()
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id,
                                                       'system/cpu_utilization_percentage')
    return cpu, _in_window([m.timestamp / 1000 for m in history], start, end)


def _wandb_window(root: str, seconds: float, **settings) -> float:
    import wandb
    run = wandb.init(mode='offline', project='bench', dir=root,
                     settings=wandb.Settings(**settings))
    cpu, _, _ = _window(seconds, lambda: _process_cpu(('wandb-symon', 'wandb-core')))
    run.finish()
    return cpu


def wandb_monitor(root: str, interval: float, seconds: float, gpus: int) -> Tuple[float, int]:
    on = _wandb_window(root, seconds, x_stats_sampling_interval=interval)
    off = _wandb_window(root, seconds, x_disable_stats=True)
    return max(0.0, on - off), round(seconds / interval)


PEERS = [  # (label, function, simulated GPUs)
    ('t9k-em, host', t9k_em, 0),
    ('t9k-em, host + 8 recorded GPUs', t9k_em, 8),
    ('MLflow SystemMetricsMonitor, host', mlflow_monitor, 0),
    ('W&B offline (wandb-symon + wandb-core), host', wandb_monitor, 0),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--window', type=float, default=20.0,
                        help='seconds measured at the 1 s interval')
    parser.add_argument('--fast-window', type=float, default=5.0,
                        help='seconds measured at the 0.1 s interval')
    parser.add_argument('--only', help='comma-separated substrings of peer labels to run')
    args = parser.parse_args()
    warnings.filterwarnings('ignore')
    logging.disable(logging.WARNING)
    os.environ.update(WANDB_SILENT='true', MLFLOW_ENABLE_ASYNC_LOGGING='false',
                      MLFLOW_ALLOW_FILE_STORE='true')
    peers = [p for p in PEERS
             if not args.only or any(s.strip() in p[0] for s in args.only.split(','))]
    rows: Dict[Tuple[str, float], Optional[Tuple[float, int]]] = {}
    start = os.getcwd()
    for interval, seconds in ((1.0, args.window), (0.1, args.fast_window)):
        for label, fn, gpus in peers:
            with tempfile.TemporaryDirectory() as root:
                os.chdir(root)
                try:
                    rows[label, interval] = fn(root, interval, seconds, gpus)
                except Exception as e:  # a peer that cannot run here is reported, not fatal
                    print(f'{label}: skipped ({type(e).__name__}: {e})', file=sys.stderr)
                    rows[label, interval] = None
                finally:
                    os.chdir(start)
            print(f'done: {label} at {interval} s', file=sys.stderr, flush=True)
    print_table(rows, args)


def print_table(rows: Dict[Tuple[str, float], Optional[Tuple[float, int]]],
                args: argparse.Namespace) -> None:
    print(f'\npython {sys.version.split()[0]}; {os.cpu_count()} CPUs; load average '
          f'{os.getloadavg()[0]:.2f}; windows of {args.window:g} s (1 s) and '
          f'{args.fast_window:g} s (0.1 s)\n')
    print('| sampler | interval | samples | CPU ms per sample | share of one core '
          '| per sample / t9k-em host |')
    print('|---|---:|---:|---:|---:|---:|')
    for (label, interval), row in rows.items():
        if row is None:
            print(f'| {label} | {interval:g} s | - | - | - | - |')
            continue
        cpu, samples = row
        window = args.window if interval == 1.0 else args.fast_window
        per_sample = cpu / samples * 1e3 if samples else float('nan')
        ours = rows.get(('t9k-em, host', interval))
        ratio = (f'{per_sample / (ours[0] / ours[1] * 1e3):.1f}×'
                 if ours and ours[1] and ours[0] else '-')
        print(f'| {label} | {interval:g} s | {samples} | {per_sample:.3f} '
              f'| {100 * cpu / window:.3f}% | {ratio} |')


if __name__ == '__main__':
    main()
