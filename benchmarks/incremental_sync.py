"""auto_upload of a long, fast run: incremental sync (append extension) vs. whole-file uploads.

A training job (a child process) logs 10 metrics at 1 kHz (one ``Run.log`` of 10 metrics per
step, 1000 steps a second, paced in 10 ms batches) for ``--minutes`` with ``auto_upload=True``
against a real ``python -m t9k_em_server`` (SQLite + blob folder). The same job runs twice, each
against a fresh server:

- ``incremental``: the server as shipped (append extension on; the syncer sends new bytes every
  0.5 s);
- ``whole-file``: the server with ``EM_SERVER_APPEND=0``, so the SDK does what it did before the
  extension (changed files re-sent whole, every 3 s or 4x the last cycle's duration).

Measured, the same way for both:

- bytes sent / final size: request body bytes the job's client sent (a ``requests`` response hook
  counts every request's body), over the size of the Run directory at the end;
- live view lag: every second the parent asks the server for the run's ``train`` series (the web
  UI's endpoint) and takes the last step it serves; the lag is now minus the time that step was
  logged (the job writes its start time; step ``s`` is logged at ``start + s / 1000``). Reported:
  median, 95th percentile and max over the run, and the max over its last minute;
- server CPU: the server process's user+system CPU seconds over the run, as % of one core;
- the job's own CPU (% of one core; logging + the syncer), and how long ``finish()`` waited for the
  last sync.

Usage: ``.venv/bin/python benchmarks/incremental_sync.py [--minutes 10] [--only incremental]``.
On a contended machine use fewer minutes and say so next to the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.em_server_process import ServerProcess  # noqa: E402

RATE = 1000          # steps per second
METRICS = 10         # metrics per step
BATCH = 10           # steps per 10 ms batch


def job(url: str, key: str, seconds: float, out: str) -> None:
    """The training job: logs for ``seconds`` with auto_upload, then reports what it sent."""
    from t9k import em
    from t9k_em_core import client as em_client

    em.login(url, key)
    body_bytes = [0]

    def count(response: requests.Response, *args, **kwargs) -> None:
        body = response.request.body
        body_bytes[0] += len(body) if body is not None and hasattr(body, '__len__') else 0

    em_client.current().session.hooks['response'].append(count)
    run = em.create_run(name='fast', auto_upload=True, folder='bench', make_folder=True,
                        system_metrics=False)
    names = [f'm{i}' for i in range(METRICS)]
    start = time.time()
    with open(out + '.start', 'w') as f:
        f.write(json.dumps({'start': start, 'run': run.local}))
    cpu0 = time.process_time()
    step = 0
    while True:
        now = time.time()
        due = min(int((now - start) * RATE), int(seconds * RATE))
        while step < due:
            for s in range(step, min(step + BATCH, due)):
                run.log('train', {n: (s % 997) / 997 + i for i, n in enumerate(names)}, step=s)
            step = min(step + BATCH, due)
        if step >= seconds * RATE:
            break
        time.sleep(max(0.0, start + (step + BATCH) / RATE - time.time()))
    logged_cpu = time.process_time() - cpu0
    finish_started = time.monotonic()
    run.finish()
    finish_s = time.monotonic() - finish_started
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(run.local) for f in fs)
    with open(out, 'w') as f:
        json.dump({'body_bytes': body_bytes[0], 'final_bytes': size, 'steps': step,
                   'job_cpu_s': logged_cpu, 'finish_s': finish_s}, f)


def last_step(http: requests.Session, base: str, key: str, run_id: str | None) -> tuple[str | None, int | None]:
    """(run id, last step the server serves of the train series), None while there is none."""
    try:
        if run_id is None:
            reply = http.get(f'{base}/apis/v1/search/runs', params={'apikey': key, 'folder': '/bench/bench'},
                             timeout=10)
            runs = reply.json().get('runs') if reply.status_code == 200 else None
            if not runs:
                return None, None
            run_id = runs[0]['id']
        reply = http.get(f'{base}/api/ui/v1/runs/{run_id}/series', timeout=30,
                         params={'apikey': key, 'type': 'train', 'metric': 'm0', 'x': 'step',
                                 'max_points': 4})
        xs = reply.json().get('x') if reply.status_code == 200 else None
        return run_id, (int(xs[-1]) if xs else None)
    except (requests.RequestException, ValueError, KeyError):
        return run_id, None


def measure(mode: str, minutes: float, root: Path) -> dict:
    env = {'EM_SERVER_APPEND': '0'} if mode == 'whole-file' else {}
    server = ServerProcess(root / mode / 'server', env=env)
    _, key = server.add_user('bench')
    server.start()
    out = str(root / mode / 'job.json')
    job_env = {**os.environ, 'EM_RUN_PARENT_DIR': str(root / mode / 'runs'),
               'EM_UPLOAD_STATE_DIR': str(root / mode / 'state'),
               'T9K_CONFIG': str(root / mode / 'config.yaml')}
    process = psutil.Process(server.pid)
    cpu0 = sum(process.cpu_times()[:2])
    wall0 = time.monotonic()
    child = subprocess.Popen([sys.executable, __file__, '--job', server.base_url, key,
                              str(minutes * 60), out], env=job_env)
    lags: list[tuple[float, float]] = []  # (seconds into the run, lag)
    http, run_id = requests.Session(), None
    while child.poll() is None:
        time.sleep(1.0)
        if not os.path.exists(out + '.start'):
            continue
        start = json.loads(Path(out + '.start').read_text())['start']
        logged_until = min(time.time(), start + minutes * 60)
        if time.time() > start + minutes * 60:
            continue  # logging is over: finish() is measured separately
        run_id, step = last_step(http, server.base_url, key, run_id)
        if step is not None:
            lags.append((time.time() - start, logged_until - (start + step / RATE)))
    cpu = sum(process.cpu_times()[:2]) - cpu0
    wall = time.monotonic() - wall0
    server.stop()
    result = json.loads(Path(out).read_text())
    values = sorted(lag for _, lag in lags)
    tail = [lag for at, lag in lags if at >= minutes * 60 - 60]
    return {'mode': mode, 'minutes': minutes, **result,
            'ratio': result['body_bytes'] / result['final_bytes'],
            'lag_median': statistics.median(values) if values else None,
            'lag_p95': values[int(0.95 * (len(values) - 1))] if values else None,
            'lag_max': values[-1] if values else None,
            'lag_max_last_minute': max(tail) if tail else None,
            'lag_samples': len(values),
            'server_cpu_pct': 100 * cpu / wall,
            'job_cpu_pct': 100 * result['job_cpu_s'] / (minutes * 60)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--minutes', type=float, default=10.0)
    parser.add_argument('--only', help='incremental or whole-file')
    parser.add_argument('--job', nargs=4, metavar=('URL', 'KEY', 'SECONDS', 'OUT'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        url, key, seconds, out = args.job
        job(url, key, float(seconds), out)
        return
    modes = [m for m in ('incremental', 'whole-file') if not args.only or m == args.only]
    with tempfile.TemporaryDirectory(prefix='em-incremental-') as tmp:
        rows = [measure(mode, args.minutes, Path(tmp)) for mode in modes]
    print(json.dumps(rows, indent=1))
    print(f'\n{args.minutes:g} min, {RATE} steps/s x {METRICS} metrics')
    print('| mode | final size | bytes sent | sent/final | lag median | lag p95 | lag max | lag max, last min | '
          'server CPU | job CPU | finish() |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for r in rows:
        def s(v):
            return '-' if v is None else f'{v:.2f} s'
        print(f"| {r['mode']} | {r['final_bytes'] / 1e6:.1f} MB | {r['body_bytes'] / 1e6:.1f} MB | "
              f"{r['ratio']:.2f} | {s(r['lag_median'])} | {s(r['lag_p95'])} | {s(r['lag_max'])} | "
              f"{s(r['lag_max_last_minute'])} | {r['server_cpu_pct']:.0f} % | {r['job_cpu_pct']:.0f} % | "
              f"{r['finish_s']:.1f} s |")


if __name__ == '__main__':
    main()
