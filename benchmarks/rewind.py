"""How long ``Run.rewind`` takes on a long Run, next to the obvious way (read, filter, rewrite).

Data: one Run with ``--entries`` ``train`` entries (2 metrics, logged by ``Run.log``) and
``--entries``/100 ``val`` entries, copied afresh before each timed call (page cache warm).

Timed (median of ``--rounds``, one round for the rewrite; wall and CPU time of this process,
which differ on a busy machine; bytes read from ``/proc/self/io``'s ``rchar``):

- ``rewind``: ``load_run`` is done before the clock starts, then ``run.rewind(last - DROP)``:
  the journaled, in-place cut (t9k_em_core/resume.py), for DROP = 234 (a restart after a
  checkpoint a few minutes back), 10% and 50% of the entries;
- ``read+filter+rewrite``: ``metric_file.read_entries`` of each file, the entries with
  step ≤ N dumped again and written atomically (what a script that rewinds by hand does).

Usage: ``python benchmarks/rewind.py [--entries 1000000] [--rounds 3] [--no-baseline]
[--json out.json]`` (the rewrite holds every entry in memory: ~3.5 GB at 1M entries).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from typing import Callable, Dict, Tuple

os.environ.setdefault('EM_SYSTEM_METRICS', '0')

from t9k_em_core import fileio, metadata_file, metric_file, naming, run_files  # noqa: E402
from t9k_em_core.run import Run, load_run  # noqa: E402


def _rchar() -> int:
    with open('/proc/self/io') as f:
        return int(next(line for line in f if line.startswith('rchar:')).split()[1])


def make_run(parent: str, entries: int) -> str:
    """A finished Run with ``entries`` train entries and ``entries // 100`` val entries."""
    name = 'bench'
    run = Run(metadata_file.new_run_metadata(name, [], '', naming.alternative_name(name)),
              local_dir=os.path.join(parent, 'source'), system_metrics=False)
    for step in range(1, entries + 1):
        run.log('train', {'loss': 1.0 / step, 'acc': step / entries}, step=step)
        if step % 100 == 0:
            run.log('val', {'loss': 2.0 / step}, step=step)
    run.finish()
    return run.local


Work = Tuple[Callable[[], None], Callable[[], None]]  # (the timed call, what ends it)


def rewind_in_place(run_dir: str, step: int) -> Work:
    run = load_run(run_dir, system_metrics=False)
    return lambda: run.rewind(step, reason='benchmark'), run.finish


def rewrite_by_hand(run_dir: str, step: int) -> Work:
    def work() -> None:
        for metric_type in run_files.list_metric_types(run_dir):
            path = run_files.metric_path(run_dir, metric_type)
            kept = [e for e in metric_file.read_entries(path) if e['sequence']['step'] <= step]
            fileio.write_yaml(path, kept)
    return work, lambda: None


def time_one(source: str, scratch: str, prepare: Callable[[str, int], Work],
             step: int) -> Dict[str, float]:
    target = os.path.join(scratch, 'copy')
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    work, done = prepare(target, step)
    read0 = _rchar()
    t0, cpu0 = time.perf_counter(), time.process_time()
    work()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    read = _rchar() - read0
    done()
    kept = metric_file.count_entries(run_files.metric_path(target, 'train'))
    assert kept == step, (kept, step)
    return {'seconds': seconds, 'cpu': cpu, 'bytes_read': read}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--entries', type=int, default=1_000_000)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--no-baseline', action='store_true', help='skip read+filter+rewrite')
    parser.add_argument('--json')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        t0 = time.perf_counter()
        source = make_run(scratch, args.entries)
        size = os.path.getsize(run_files.metric_path(source, 'train'))
        print(f'{args.entries} train entries ({size / 1e6:.0f} MB) logged in '
              f'{time.perf_counter() - t0:.1f} s')
        results = {}
        for drop in (234, args.entries // 10, args.entries // 2):
            for label, prepare in (('rewind', rewind_in_place),
                                   ('read+filter+rewrite', rewrite_by_hand)):
                if label != 'rewind' and (drop != 234 or args.no_baseline):
                    continue  # the rewrite reads everything whatever is dropped
                rounds = [time_one(source, scratch, prepare, args.entries - drop)
                          for _ in range(args.rounds if label == 'rewind' else 1)]
                row = {'seconds': statistics.median(r['seconds'] for r in rounds),
                       'min': min(r['seconds'] for r in rounds),
                       'max': max(r['seconds'] for r in rounds),
                       'cpu': statistics.median(r['cpu'] for r in rounds),
                       'MB_read': statistics.median(r['bytes_read'] for r in rounds) / 1e6}
                results[f'{label}, drop {drop}'] = row
                print(f'{label:>20}, drop {drop:>7} entries: median {row["seconds"]:.4f} s '
                      f'({row["min"]:.4f}-{row["max"]:.4f}), CPU {row["cpu"]:.4f} s, '
                      f'{row["MB_read"]:.2f} MB read')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'entries': args.entries, 'train_bytes': size, 'results': results}, f,
                      indent=1)


if __name__ == '__main__':
    main()
