"""How a Run ends when its process ends: real subprocesses, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from t9k_em_core import metadata_file, metric_file, run_files

pytestmark = pytest.mark.timeout(120)

SCRIPT = textwrap.dedent('''
    import os, signal, sys, time
    mode = sys.argv[1]
    if mode == 'chained':
        def previous(signum, frame):
            open('previous-handler-ran', 'w').close()
            sys.exit(0)
        signal.signal(signal.SIGTERM, previous)
    from t9k import em
    if mode == 'slow-finish':  # keep everything buffered, so that finish() formats it all
        from t9k_em_core import metrics
        metrics.KICK_AT = metrics.HARD_LIMIT = 10 ** 9
        metrics.FLUSH_INTERVAL = 3600
    run = em.create_run(name='life')
    run.log('train', {'loss': 1.0}, step=0)
    print(run.local, flush=True)
    if mode == 'slow-finish':
        for step in range(1, 300_001):
            run.log('train', {'a': 0.5, 'b': 0.25}, step=step)
        append = run._storage.append_metrics

        announced = []

        def announced_append(metric_type, text):  # tells the test finish() is writing
            if not announced:
                announced.append(True)
                print('writing', flush=True)
                time.sleep(0.5)
            append(metric_type, text)

        run._storage.append_metrics = announced_append
        run.finish()
        time.sleep(60)
    if mode == 'exception':
        raise RuntimeError('boom')
    if mode == 'exit':
        sys.exit(3)
    if mode == 'finish':
        run.finish()
    if mode == 'stream':
        step = 0
        while True:
            step += 1
            run.log('train', {'t': time.time()}, step=step)
            time.sleep(0.002)
    if mode in ('wait', 'chained'):
        time.sleep(60)
''')


def _as_from_a_shell() -> None:
    """In the child before exec: SIGINT and SIGTERM neither blocked nor ignored, as for a
    training started from a shell. Both are inherited across exec, and the pytest process may
    hold them otherwise after earlier tests ran frameworks in it: a child that inherits an
    ignored or blocked SIGINT never sees the Ctrl-C these tests send."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _start(tmp_path, mode):
    script = tmp_path / 'train.py'
    script.write_text(SCRIPT)
    env = {**os.environ, 'EM_RUN_PARENT_DIR': str(tmp_path / 'runs'), 'PYTHONUNBUFFERED': '1'}
    proc = subprocess.Popen([sys.executable, str(script), mode], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_from_a_shell)
    run_dir = proc.stdout.readline().strip()
    assert run_dir, proc.stderr.read()
    return proc, run_dir


def _wait(proc):
    """The child's exit status, with its stdout and stderr drained meanwhile (a child blocked on
    a full pipe never exits); ``proc.err`` keeps its stderr. A child still running after 60 s
    fails the test with the end of its stderr."""
    try:
        _, proc.err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f'the child did not exit within 60 s; the end of its stderr:\n{err[-3000:]}')
    return proc.returncode


def _ended(run_dir, status):
    meta = metadata_file.read_metadata(run_dir)
    assert meta['status'] == status
    assert meta['endTimestamp'] is not None and meta['endTimestamp'] > meta['startTimestamp']
    entries = metric_file.read_entries(run_files.metric_path(run_dir, 'train'))
    assert entries[0]['value'] == {'loss': 1.0}  # flushed on the way out
    return meta


@pytest.mark.parametrize('mode, returncode', [('exception', 1), ('exit', 3), ('normal', 0)])
def test_process_ending_without_finish_marks_error(tmp_path, mode, returncode):
    proc, run_dir = _start(tmp_path, mode)
    assert _wait(proc) == returncode
    _ended(run_dir, 'Error')


def test_finish_marks_complete(tmp_path):
    proc, run_dir = _start(tmp_path, 'finish')
    assert _wait(proc) == 0
    _ended(run_dir, 'Complete')


def test_sigint_keyboard_interrupt_marks_error(tmp_path):
    proc, run_dir = _start(tmp_path, 'wait')
    proc.send_signal(signal.SIGINT)
    assert _wait(proc) != 0
    assert 'KeyboardInterrupt' in proc.err
    _ended(run_dir, 'Error')


def test_sigterm_marks_error_and_keeps_exit_status(tmp_path):
    proc, run_dir = _start(tmp_path, 'wait')
    proc.send_signal(signal.SIGTERM)
    assert _wait(proc) == -signal.SIGTERM  # killed by the signal: shell status 143
    _ended(run_dir, 'Error')


def test_sigterm_during_finish_waits_for_it(tmp_path):
    proc, run_dir = _start(tmp_path, 'slow-finish')
    assert proc.stdout.readline().strip() == 'writing'
    proc.send_signal(signal.SIGTERM)  # while finish() writes the 300k buffered entries
    assert _wait(proc) == -signal.SIGTERM
    meta = _ended(run_dir, 'Complete')  # finish() completed before the signal was handled
    assert meta['status'] == 'Complete'
    entries = metric_file.read_entries(run_files.metric_path(run_dir, 'train'))
    assert [e['sequence']['step'] for e in entries] == list(range(300_001))


def test_sigterm_chains_to_the_previous_handler(tmp_path):
    proc, run_dir = _start(tmp_path, 'chained')
    proc.send_signal(signal.SIGTERM)
    assert _wait(proc) == 0
    assert (tmp_path / 'previous-handler-ran').exists()
    _ended(run_dir, 'Error')


def test_sigkill_loses_at_most_the_last_second(tmp_path):
    proc, run_dir = _start(tmp_path, 'stream')
    time.sleep(2.0)
    killed_at = time.time()
    proc.send_signal(signal.SIGKILL)
    _wait(proc)
    entries = metric_file.read_entries(run_files.metric_path(run_dir, 'train'))
    last = max(e['value']['t'] for e in entries[1:])
    assert killed_at - last <= 1.0, f'lost {killed_at - last:.2f} s of metrics'
    steps = [e['sequence']['step'] for e in entries]
    assert steps == list(range(len(steps)))  # nothing lost before that, in order
    assert metadata_file.read_metadata(run_dir)['status'] == 'Running'  # SIGKILL cannot be caught


FORK_SCRIPT = textwrap.dedent('''
    import os, signal, sys
    from t9k import em
    from t9k_em_core import metadata_file, run_files
    run = em.create_run(name='forking')
    run.log('train', {'loss': 1.0}, step=0)
    pid = os.fork()
    if pid == 0:  # a worker process (e.g. a fork-started DataLoader worker) exiting its own way
        print('from the child')
        sys.exit(0)
    os.waitpid(pid, 0)
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGTERM)
    os.waitpid(pid, 0)
    print(run.local, flush=True)
    print('state after children:', metadata_file.read_metadata(run.local)['status'])
    run.finish()
''')


def test_forked_children_leave_the_parents_run_alone(tmp_path):
    env = {**os.environ, 'EM_RUN_PARENT_DIR': str(tmp_path / 'runs')}
    out = subprocess.run([sys.executable, '-c', FORK_SCRIPT], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    lines = out.splitlines()
    run_dir = next(line for line in lines if line.startswith(str(tmp_path)))
    assert 'state after children: Running' in lines
    _ended(run_dir, 'Complete')
    with open(os.path.join(run_dir, 'stdout.log')) as f:
        assert 'from the child' not in f.read()
