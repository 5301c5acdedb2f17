"""Resume and rewind of a Run (docs/resume.md): the keys on disk, ``run.rewind``, ``resume=``."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from support import legacy_loader
from t9k import em
from t9k_em_core import fileio, metadata_file, metric_file, naming, resume, run_files


def test_resume_keys_survive_load_run_and_finish(em_dirs):
    run = em.create_run(name='keys')
    run.finish()
    meta = metadata_file.read_metadata(run.local)
    segment = metadata_file.new_segment(5, 'test', 'Error', {'train': 10})
    del segment[metadata_file.SEGMENT_CUTTING]
    meta.update({metadata_file.RESUME_KEY: 'k1', metadata_file.SEGMENTS: [segment]})
    metadata_file.write_metadata(run.local, meta)

    again = em.load_run(run.local)
    assert again.resume_key == 'k1' and again.segments == [segment]
    again.finish()
    meta = metadata_file.read_metadata(run.local)
    assert meta[metadata_file.RESUME_KEY] == 'k1' and meta[metadata_file.SEGMENTS] == [segment]
    assert meta['status'] == 'Complete'
    assert legacy_loader.load_run_dir(run.local)['metadata']['segments'] == [segment]


# --- the cut of one metric file ------------------------------------------------------------------

def _write_steps(path, steps, **extra):
    writer_text = fileio.dump_yaml([{'value': {'loss': s / 10, **extra}, 'sequence': {
        'epoch': None, 'step': s, 'timestamp': '2026-12-06T23:00:00.000001+00:00'}} for s in steps])
    with open(path, 'w', encoding='utf-8') as f:
        f.write(writer_text)
    return writer_text


@pytest.mark.parametrize('block_size', [7, 64, 1 << 16])
def test_cut_offset_ends_at_last_entry_not_above_step(tmp_path, block_size):
    path = str(tmp_path / 'train.yaml')
    _write_steps(path, range(1, 301))
    head = fileio.dump_yaml(metric_file.read_entries(path)[:120])
    assert metric_file.cut_offset(path, 120, block_size) == len(head.encode())
    assert metric_file.cut_offset(path, 300, block_size) == os.path.getsize(path)
    assert metric_file.cut_offset(path, 0, block_size) == 0


def test_cut_offset_drops_a_torn_last_entry_and_reads_other_shapes(tmp_path):
    path = str(tmp_path / 'train.yaml')
    text = _write_steps(path, range(1, 11), **{'yes': 1.0, 'a b': 2.0})  # quoted keys: YAML path
    with open(path, 'a', encoding='utf-8') as f:
        f.write('- value:\n    loss: 0.5\n  sequence:\n    epoch: null\n    st')
    assert metric_file.cut_offset(path, 10) == len(text.encode())
    fileio.truncate_file(path, metric_file.cut_offset(path, 4))
    assert [e['sequence']['step'] for e in metric_file.read_entries(path)] == [1, 2, 3, 4]


# --- run.rewind ----------------------------------------------------------------------------------

def _steps(run_dir, metric_type):
    return [e['sequence']['step'] for e in
            metric_file.read_entries(run_files.metric_path(run_dir, metric_type))]


def test_rewind_drops_later_entries_of_every_type_and_records_a_segment(em_dirs):
    run = em.create_run(name='rw')
    for step in range(1, 21):
        run.log('train', {'loss': 1.0 / step}, step=step)
        if step % 5 == 0:
            run.log('val', {'acc': step / 20}, step=step)
    run.log('system', {'cpu': 1.0}, step=0)  # sample counters are not training steps
    run.log('system', {'cpu': 1.0}, step=99)
    run.rewind(12, reason='preempted')
    assert _steps(run.local, 'train') == list(range(1, 13))
    assert _steps(run.local, 'val') == [5, 10]
    assert _steps(run.local, 'system') == [0, 99]
    for step in range(13, 16):
        run.log('train', {'loss': -float(step)}, step=step)
    run.finish()
    entries = run.metrics['train']
    assert [e['sequence']['step'] for e in entries] == list(range(1, 16))
    assert [e['value']['loss'] for e in entries[12:]] == [-13.0, -14.0, -15.0]
    (segment,) = run.segments
    assert segment['resumedAt'] == 12 and segment['reason'] == 'preempted'
    assert segment['previousStatus'] == 'Running'
    assert 'cutting' not in segment
    assert set(segment['metricBytes']) == {'train', 'val'}
    legacy = legacy_loader.load_run_dir(run.local)
    assert legacy['metadata']['status'] == 'Complete'
    assert [e['sequence']['step'] for e in legacy['metrics']['train']] == list(range(1, 16))


def test_rewind_of_a_new_run_with_nothing_to_drop_records_nothing(em_dirs):
    run = em.create_run(name='fresh', resume='k-fresh')
    run.rewind(0, reason='first attempt')
    run.log('train', {'loss': 1.0}, step=1)
    run.rewind(1)
    assert run.segments == []
    run.finish()
    again = em.create_run(name='fresh', resume='k-fresh')
    again.rewind(1, reason='reopened')  # nothing to drop, but a resume: recorded
    assert [s['reason'] for s in again.segments] == ['reopened']
    again.finish()


def test_rewind_refuses_bad_steps_and_finished_runs(em_dirs):
    run = em.create_run(name='rw')
    with pytest.raises(ValueError, match='non-negative'):
        run.rewind(-1)
    with pytest.raises(TypeError, match='integer'):
        run.rewind(1.5)
    run.finish()
    with pytest.raises(RuntimeError, match='load_run'):
        run.rewind(0)


# --- resume= -------------------------------------------------------------------------------------

def test_resume_key_reopens_the_run_of_that_name(em_dirs):
    first = em.create_run(name='job', resume='k-1', hparams={'lr': 0.1})
    first.log('train', {'loss': 1.0}, step=1)
    first.finish(status='Error')
    other = em.create_run(name='other', resume='k-1')  # same key, another name: its own Run
    other.finish()
    again = em.create_run(name='job', resume='k-1', hparams={'batch': 8})
    assert again.local == first.local and again.status == 'Running'
    assert again.resume_key == 'k-1' and dict(again.params) == {'lr': 0.1, 'batch': 8}
    again.rewind(0, reason='restart')
    assert again.segments[0]['previousStatus'] == 'Error'
    again.finish()
    assert em.create_run(name='job', resume='k-2').local != first.local


@pytest.mark.parametrize('env, key', [
    ({'EM_RESUME_KEY': 'mine', 'SLURM_JOB_ID': '7'}, 'mine'),
    ({'TORCHELASTIC_RUN_ID': 'abc', 'SLURM_JOB_ID': '7'}, 'torchelastic-abc'),
    ({'KUBERNETES_SERVICE_HOST': '10.0.0.1', 'HOSTNAME': 'train-job-0-x7k2q',
      'POD_NAMESPACE': 'team'}, 'k8s-team-train-job-0'),
    ({'KUBERNETES_SERVICE_HOST': '10.0.0.1', 'HOSTNAME': 'trainer-3', 'POD_NAMESPACE': 'team'},
     'k8s-team-trainer-3'),
    ({'SLURM_JOB_ID': '7'}, 'slurm-7'),
    ({'SLURM_JOB_ID': '9', 'SLURM_ARRAY_JOB_ID': '7', 'SLURM_ARRAY_TASK_ID': '2'}, 'slurm-7-2'),
    ({}, None),
])
def test_key_from_environment(env, key):
    if not os.path.exists(resume._K8S_NAMESPACE_FILE):
        assert resume.key_from_environment(env) == key


def test_auto_key_of_torchrun_without_rdzv_id_is_the_agent():
    key = resume.key_from_environment({'TORCHELASTIC_RUN_ID': 'none'})
    assert key == f'torchelastic-{socket.gethostname()}-{os.getppid()}'


def test_resume_auto_outside_a_job_creates_a_run_without_key(em_dirs, monkeypatch):
    for name in ('EM_RESUME_KEY', 'TORCHELASTIC_RUN_ID', 'KUBERNETES_SERVICE_HOST', 'SLURM_JOB_ID',
                 'SLURM_ARRAY_JOB_ID'):
        monkeypatch.delenv(name, raising=False)
    run = em.create_run(name='plain', resume='auto')
    assert run.resume_key is None
    assert metadata_file.RESUME_KEY not in metadata_file.read_metadata(run.local)
    with pytest.raises(TypeError, match="'auto'"):
        em.create_run(name='plain', resume='')


# --- a rewind killed midway ----------------------------------------------------------------------

_REWINDER = textwrap.dedent('''
    import os, signal, sys
    from t9k import em
    from t9k_em_core import fileio
    run_dir, kill_at = sys.argv[1], sys.argv[2]
    run = em.load_run(run_dir)
    if kill_at in ('before-cut', 'between-files'):  # SIGKILL at one exact point of the rewind
        calls = []
        real = fileio.truncate_file
        def truncate_then_maybe_die(path, length):
            if kill_at == 'before-cut' or calls:
                os.kill(os.getpid(), signal.SIGKILL)
            calls.append(path)
            real(path, length)
        fileio.truncate_file = truncate_then_maybe_die
    events = 0
    def profile(frame, event, arg):  # SIGKILL at the k-th call or return of the rewind
        global events
        events += 1
        if events == limit:
            os.kill(os.getpid(), signal.SIGKILL)
    limit = int(kill_at[5:]) if kill_at.startswith('call:') else -1
    journal = []
    real_write = fileio.write_text_atomic
    def write_noting_the_journal(path, text, durable=False):
        if durable and not journal:
            journal.append(events)
        real_write(path, text, durable)
    fileio.write_text_atomic = write_noting_the_journal
    sys.setprofile(profile)
    run.rewind(1000, reason='killed')
    sys.setprofile(None)
    print(journal[0], events, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no exit hook either
''')


_TYPES = ('train', 'val', 'test')


@pytest.fixture(scope='module')
def long_run(tmp_path_factory):
    """A Run of 3,000 steps in three metric types (the rewind drops 2,000 of each)."""
    root = tmp_path_factory.mktemp('long')
    run = em.Run(metadata_file.new_run_metadata('long', [], '', naming.alternative_name('long')),
                 local_dir=str(root / 'long'), system_metrics=False)
    for step in range(1, 3001):
        for metric_type in _TYPES:
            run.log(metric_type, {'loss': step / 7, 'acc': 1 / step}, step=step)
    run.finish()
    return run.local


def _rewind_killed(run_dir, kill_at):
    """Runs a rewind in a process that is SIGKILLed at ``kill_at``; returns what it printed
    (the number of profile events of the whole rewind, when it got that far)."""
    child = subprocess.run([sys.executable, '-c', _REWINDER, run_dir, kill_at],
                           stdout=subprocess.PIPE, text=True, timeout=120,
                           env={**os.environ, 'EM_SYSTEM_METRICS': '0'})
    assert child.returncode == -signal.SIGKILL
    return child.stdout


def _check_old_or_new(run_dir):
    """Each metric file is whole entries only (the strict canonical parser accepts no torn
    entry), old (3,000 steps) or new (1,000); the journal says which. Returns whether the rewind
    had begun (a segment)."""
    segments = metadata_file.read_metadata(run_dir).get('segments') or []
    for metric_type in _TYPES:
        with open(run_files.metric_path(run_dir, metric_type), encoding='utf-8') as f:
            entries = metric_file.parse_canonical(f.read())
        assert entries is not None, metric_type
        steps = [e['sequence']['step'] for e in entries]
        assert steps in (list(range(1, 3001)), list(range(1, 1001))), (metric_type, len(steps))
        if not segments:
            assert len(steps) == 3000
        elif 'cutting' not in segments[-1]:
            assert len(steps) == 1000
    return bool(segments)


def _check_legacy(run_dir, steps):
    legacy = legacy_loader.load_run_dir(run_dir)
    for metric_type in _TYPES:
        assert [e['sequence']['step'] for e in legacy['metrics'][metric_type]] == steps


@pytest.mark.parametrize('kill_at', ['before-cut', 'between-files'])
def test_rewind_killed_at_a_point_is_completed_by_the_next_opener(long_run, tmp_path, kill_at):
    run_dir = shutil.copytree(long_run, tmp_path / os.path.basename(long_run))
    _rewind_killed(str(run_dir), kill_at)
    assert _check_old_or_new(str(run_dir))
    assert metadata_file.read_metadata(str(run_dir))['segments'][-1]['cutting'] is True
    legacy_loader.load_run_dir(str(run_dir))  # 0.6.0b0 reads it meanwhile
    run = em.load_run(str(run_dir))
    assert 'cutting' not in run.segments[-1]
    run.finish()
    _check_legacy(str(run_dir), list(range(1, 1001)))


def test_rewind_killed_at_random_points_leaves_old_or_new(long_run, tmp_path):
    """SIGKILL at random calls/returns of Python functions along the whole rewind (a profile
    hook counts them; the machine's speed does not matter)."""
    journal, total = map(int, _rewind_killed(str(shutil.copytree(long_run, tmp_path / 'c' / 'r')),
                                             'count').split())
    rng = random.Random(17)
    points = rng.sample(range(1, journal), 3) + rng.sample(range(journal, total + 1), 6)
    outcomes = []
    for i, point in enumerate(sorted(points)):
        run_dir = str(shutil.copytree(long_run, tmp_path / str(i) / 'r'))
        assert _rewind_killed(run_dir, f'call:{point}') == ''
        begun = _check_old_or_new(run_dir)
        if i == 4:
            legacy_loader.load_run_dir(run_dir)
        run = em.load_run(run_dir)
        run.finish()
        expected = list(range(1, 1001)) if run.segments else list(range(1, 3001))
        for metric_type in _TYPES:
            assert _steps(run_dir, metric_type) == expected
        outcomes.append((point, begun))
    _check_legacy(run_dir, expected)
    print(f'killed at calls {outcomes} of {total} (journal at {journal})')
    assert sum(begun for _, begun in outcomes) >= 3


@pytest.mark.parametrize('block_size', [7, 300, 1 << 16])
def test_cut_offset_of_many_blocks_matches_a_forward_scan(tmp_path, block_size):
    path = str(tmp_path / 'train.yaml')
    _write_steps(path, range(0, 3000, 3))
    entries = metric_file.read_entries(path)
    for step in (0, 1, 2, 3, 1500, 2995, 2997, 5000):
        kept = [e for e in entries if e['sequence']['step'] <= step]
        assert metric_file.cut_offset(path, step, block_size) == len(fileio.dump_yaml(kept).encode()
                                                                     if kept else b'')
