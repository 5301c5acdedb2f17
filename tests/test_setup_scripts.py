"""The set-up of scripts/main.sh and scripts/test.sh is quiet: one line per step on the terminal,
the tools' output in the log file whose path is printed, and the log's tail when a step fails
(so a CI console shows the cause). Runs scripts/steps.sh and scripts/setup.sh with bash; the
tools they call (pip, the Horovod build) are stand-ins that print what the real ones print,
since installing torch inside a test would take minutes (the real set-up is what CI runs)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOISE = 'echo "DEPRECATION: pip noise on stdout"; echo "WARNING: build warning on stderr" >&2'


def _bash(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith('T9K_EM_')}
    full_env.update(env)
    return subprocess.run(['bash', '-c', script], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=60)


def _log_of(stdout: str) -> Path:
    match = re.match(r'Full log: (\S+)\n', stdout)
    assert match, stdout
    return Path(match[1])


def test_step_prints_one_line_and_logs_the_output(tmp_path):
    proc = _bash(f'. {ROOT}/scripts/steps.sh; start_log demo; '
                 'step "Fake step" bash -c "echo out; echo err >&2"; '
                 'step "Second step" true', tmp_path)
    assert proc.returncode == 0 and proc.stderr == ''
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    assert re.fullmatch(r'Fake step \.\.\. ok \(\d+ s\)', lines[1])
    assert re.fullmatch(r'Second step \.\.\. ok \(\d+ s\)', lines[2])
    log = _log_of(proc.stdout)
    assert log.parent == tmp_path / '.logs' and log.name.startswith('demo-')
    text = log.read_text()
    assert 'out\n' in text and 'err\n' in text and '==== Fake step: bash -c' in text


def test_a_long_step_shows_it_is_alive(tmp_path):
    proc = _bash(f'. {ROOT}/scripts/steps.sh; start_log demo; step "Slow step" sleep 2.5',
                 tmp_path, T9K_EM_HEARTBEAT='1')
    assert proc.returncode == 0
    line = proc.stdout.splitlines()[1]
    assert re.fullmatch(r'Slow step \.\.\.( \d+s)+ ok \(\d+ s\)', line), line


def test_a_failing_step_prints_the_log_tail_and_its_exit_status(tmp_path):
    log = tmp_path / 'given.log'
    proc = _bash(f'. {ROOT}/scripts/steps.sh; start_log demo; '
                 'step "Broken step" bash -c "echo the cause; exit 3"; echo not reached',
                 tmp_path, T9K_EM_LOG=str(log))
    assert proc.returncode == 3
    assert proc.stdout == 'Broken step ... FAILED (exit 3)\n'  # a given log is not announced
    assert 'the cause' in proc.stderr and f'full log: {log}' in proc.stderr
    assert 'the cause' in log.read_text()


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The files setup.sh reads, with stand-ins for .venv's python (pip) and the Horovod build."""
    copy = tmp_path / 'repo'
    for rel in ('scripts', 'pyproject.toml', 'setup.py', 't9k_em_core/_speedups.c'):
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, copy / rel)
        else:
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, copy / rel)
    noisy = f'#!/bin/bash\necho "$0 $*" >> {tmp_path}/calls\n{NOISE}\n'
    python = copy / '.venv' / 'bin' / 'python'
    python.parent.mkdir(parents=True)
    python.write_text(noisy)
    (copy / 'scripts' / 'build_horovod.sh').write_text(noisy)
    bin_dir = tmp_path / 'bin'  # Chromium is there: setup.sh must not apt-get it in a test
    bin_dir.mkdir()
    (bin_dir / 'chromium').write_text('#!/bin/sh\n')
    for path in (python, bin_dir / 'chromium'):
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return copy


def test_setup_prints_one_line_per_step_and_nothing_of_pip(repo_copy: Path, tmp_path: Path):
    path = f'{tmp_path}/bin:{os.environ["PATH"]}'
    proc = _bash('bash scripts/setup.sh', repo_copy, PATH=path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ''
    lines = proc.stdout.splitlines()
    assert [re.sub(r' \.\.\..*', '', line) for line in lines[1:]] == [
        'pip, setuptools, wheel', 'torch 2.13.0 (CPU)',
        't9k-em and its extras (keras: tensorflow-cpu 2.21.0; lightning 2.6.6; server; dev)',
        'Horovod 0.28.1 (takes minutes: built from source once, then installed from the cache)']
    assert all(line.endswith(' s)') for line in lines[1:])
    log = _log_of(proc.stdout)
    text = log.read_text()
    assert text.count('pip noise on stdout') == text.count('build warning on stderr') == 4
    assert 'install --disable-pip-version-check -q' in (tmp_path / 'calls').read_text()

    again = _bash('bash scripts/setup.sh', repo_copy, PATH=path)  # nothing to install
    assert again.stdout.splitlines()[1:] == ['Python packages in .venv: up to date']


def test_main_and_test_scripts_share_one_log_with_setup(repo_copy: Path, tmp_path: Path):
    """main.sh/test.sh announce one log; setup.sh, run by them, appends to it."""
    log = tmp_path / 'job.log'
    proc = _bash('bash scripts/setup.sh', repo_copy, PATH=f'{tmp_path}/bin:{os.environ["PATH"]}',
                 T9K_EM_LOG=str(log))
    assert proc.returncode == 0 and not proc.stdout.startswith('Full log')
    assert 'pip noise' in log.read_text()
    for script in ('main.sh', 'test.sh'):
        text = (ROOT / 'scripts' / script).read_text()
        assert text.index('start_log') < text.index('bash scripts/setup.sh')
