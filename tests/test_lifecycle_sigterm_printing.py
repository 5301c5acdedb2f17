"""SIGTERM during a print must end the job, not hang it.

The SIGTERM handler runs on the main thread, often in the middle of ``print`` (inside the
``stdout.log`` tee). It ends the open Runs, which flushes and unwraps the tee: with a
non-re-entrant lock there, the process hung forever (3 of 4 processes in this test did).
Four real training-like processes that print continuously are signalled at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from t9k_em_core import metadata_file

PRINTING = textwrap.dedent("""
    from t9k import em
    run = em.create_run(name='printing')
    open('started', 'w').close()
    i = 0
    while True:
        print('step', i, 'x' * 100)
        i += 1
""")


@pytest.mark.timeout(90)
def test_sigterm_while_printing_ends_the_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith('EM_')}
    procs = []
    for i in range(4):
        cwd = tmp_path / f'job{i}'
        cwd.mkdir()
        procs.append((cwd, subprocess.Popen([sys.executable, '-c', PRINTING], cwd=cwd, env=env,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
    try:
        deadline = time.monotonic() + 60
        for cwd, proc in procs:
            while not (cwd / 'started').exists():
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, 'the job did not start'
                time.sleep(0.05)
        time.sleep(0.3)
        for _, proc in procs:
            proc.send_signal(signal.SIGTERM)
        outcomes = []
        for _, proc in procs:
            try:
                outcomes.append(proc.wait(timeout=15))
            except subprocess.TimeoutExpired:
                outcomes.append('hung')
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert outcomes == [-signal.SIGTERM] * 4
    for cwd, _ in procs:
        (run_dir,) = [os.path.join(cwd, '.em', 'runs', d) for d in os.listdir(cwd / '.em' / 'runs')]
        assert metadata_file.read_metadata(run_dir)['status'] == 'Error'
