"""The ``em`` command: ``ls``, ``describe``, ``--version`` and the ``server`` delegation.

Directories of t9k 0.6.0b0 come from :mod:`legacy_dirs` (the spec's examples, byte for byte:
0.6.0b0 itself is not installable here); directories of this package are written by a real
training script in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from support.legacy_dirs import DATASET_ALT, MODEL_ALT, RUN_ALT, write_legacy_dirs
from t9k_em_core import cli

EM = [sys.executable, '-m', 't9k_em_core.cli']


@pytest.fixture
def legacy(tmp_path, monkeypatch):
    """A cwd holding 0.6.0b0's default parents ``.em/runs`` and ``.em/artifacts``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('EM_RUN_PARENT_DIR', raising=False)
    monkeypatch.delenv('EM_ARTIFACT_PARENT_DIR', raising=False)
    return write_legacy_dirs(os.path.join('.em', 'runs'), os.path.join('.em', 'artifacts'))


def _em(capsys, *argv: str):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _rows(out: str, first_cell: str) -> list:
    return [line.split() for line in out.splitlines() if line.split()[:1] == [first_cell]]


def test_version_and_help_from_the_console_script(tmp_path):
    em = os.path.join(os.path.dirname(sys.executable), 'em')
    proc = subprocess.run([em, '--version'], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    from importlib.metadata import version
    assert proc.stdout.strip() == f'em, version {version("t9k-em")}'
    proc = subprocess.run([em], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    for command in ('ls', 'describe', 'server'):
        assert command in proc.stdout


def test_ls_default_parents_lists_legacy_runs_and_artifacts(legacy, capsys):
    code, out, err = _em(capsys, 'ls')
    assert code == 0 and err == ''
    assert _rows(out, 'NAME')[0] == ['NAME', 'STATUS', 'STARTED', 'DURATION', 'METRICS']
    # start 19:01:21.646034, end 19:01:21.671659 (the spec's example), 2 train and 1 val entries
    assert _rows(out, 'mnist_cnn') == [['mnist_cnn', 'Complete', '2026-11-26', '19:01:21', '0.03s',
                                       'train=2', 'val=1']]
    assert _rows(out, 'model') == [['model', '2026-11-26', '19:01:21']]
    assert _rows(out, 'dataset') == [['dataset', '2026-11-26', '19:01:21']]
    assert 'Runs (1)' in out and 'Artifacts (2)' in out


def test_ls_detail_and_explicit_paths(legacy, capsys):
    code, out, _ = _em(capsys, 'ls', '-d', '.em/artifacts', legacy['run'])
    assert code == 0
    run_row = _rows(out, 'mnist_cnn')[0]
    assert run_row[-3:] == [RUN_ALT, 'Keras,demo', legacy['run']]
    assert _rows(out, 'model')[0][-3:] == [MODEL_ALT, 'ckpt', legacy['model']]
    assert _rows(out, 'dataset')[0][-3:] == [DATASET_ALT, '-', legacy['dataset']]


def test_ls_follows_the_parent_dir_variables(legacy, tmp_path, monkeypatch, capsys):
    elsewhere = tmp_path / 'elsewhere'
    write_legacy_dirs(str(elsewhere / 'r'), str(elsewhere / 'a'))
    os.remove(os.path.join(elsewhere, 'r', RUN_ALT, 'metrics', 'val.yaml'))
    monkeypatch.setenv('EM_RUN_PARENT_DIR', str(elsewhere / 'r'))
    monkeypatch.setenv('EM_ARTIFACT_PARENT_DIR', str(elsewhere / 'nothing-here'))
    code, out, _ = _em(capsys, 'ls')
    assert code == 0
    assert _rows(out, 'mnist_cnn')[0][-1] == 'train=2'
    assert 'Artifacts' not in out


def test_ls_reports_missing_paths_and_skips_broken_dirs(legacy, tmp_path, capsys):
    broken = tmp_path / '.em' / 'runs' / 'broken_261126_190121_aaaaaa'
    broken.mkdir()
    (broken / 'metadata.yaml').write_text('kind: [unclosed\n')
    not_a_node = tmp_path / '.em' / 'runs' / 'notes'
    not_a_node.mkdir()
    code, out, err = _em(capsys, 'ls', '.em/runs', 'missing-dir')
    assert code == 1
    assert "no such directory: 'missing-dir'" in err
    assert 'broken_261126_190121_aaaaaa' in err and 'not valid YAML' in err
    assert _rows(out, 'mnist_cnn') and 'notes' not in out

    os.mkdir(tmp_path / 'empty')
    code, out, _ = _em(capsys, 'ls', str(tmp_path / 'empty'))
    assert code == 0 and out.startswith('No Runs or Artifacts in')


def test_describe_legacy_run(legacy, capsys):
    code, out, err = _em(capsys, 'describe', legacy['run'])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == 'Run: mnist_cnn'
    fields = dict(line.strip().split(': ', 1) for line in lines[1:9])
    assert {k: v.strip() for k, v in fields.items()} == {
        'Alternative name': RUN_ALT, 'Path': legacy['run'], 'Status': 'Complete',
        'Labels': 'Keras, demo', 'Description': 'A demo run', 'Started': '2026-11-26 19:01:21',
        'Ended': '2026-11-26 19:01:21', 'Duration': '0.03s'}
    hparams = out.split('Hyperparameters:\n', 1)[1].split('\n\n', 1)[0]
    assert hparams.splitlines() == ['  batch_size: 32', '  lr: 0.001', '  opt:', '    name: Adam',
                                    '    betas:', '    - 0.9', '    - 0.999', '  epochs: 2',
                                    '  dropout: 0.5']
    assert _rows(out, 'train') == [['train', '2', '20', '-', 'loss=0.8', 'accuracy=0.6']]
    assert _rows(out, 'val') == [['val', '1', '10', '1', 'loss=0.9']]
    assert _rows(out, 'input') == [['input', 'Artifact', DATASET_ALT, legacy['dataset']]]
    assert _rows(out, 'output') == [['output', 'Artifact', MODEL_ALT, legacy['model']]]
    assert _rows(out, 'upload')[0][2:] == ['http://127.0.0.1:18080', '/alice/proj/sub/mnist',
                                           'ecf684f4-e32d-4d12-a5f7-3e17377bbfbf']
    assert 'Platform:' not in out

    code, out, _ = _em(capsys, 'describe', '-d', legacy['run'])
    assert 'Platform:\n  hostname: vm\n' in out
    assert 'entrypoint: /usr/lib/python3.11/site-packages/t9k/em/run.py' in out


def test_describe_parent_dir_shows_artifact_objects(legacy, capsys):
    code, out, err = _em(capsys, 'describe', '.em/artifacts')
    assert code == 0, err
    entries = out.split('\n---\n')
    assert [e.splitlines()[0] for e in entries] == ['Artifact: dataset', 'Artifact: model']
    model = entries[1]
    assert _rows(model, 'a/w.pt') == [['a/w.pt', '3', 'B', '900150983cd24fb0d6963f7d28e17f72']]
    assert _rows(model, 'refs/e.zip') == [['refs/e.zip', 'https://example.com/d/e.zip']]
    assert 'References (3):' in model and 'Files (1):' in model
    assert 'Files (0):' in entries[0]


def test_describe_errors(legacy, tmp_path, capsys):
    code, _, err = _em(capsys, 'describe', 'nope')
    assert code == 1 and "no such directory: 'nope'" in err
    odd = tmp_path / 'odd_261126_190121_bbbbbb'
    odd.mkdir()
    (odd / 'metadata.yaml').write_text('kind: Model\n')
    code, _, err = _em(capsys, 'describe', str(odd))
    assert code == 1 and "has kind 'Model'" in err


TRAIN = """
    import os
    from t9k import em

    run = em.create_run(name='done', hparams={'lr': 0.1}, labels=['x'])
    for step in range(5):
        run.log('train', {'loss': 1.0 / (step + 1)}, step=step, epoch=step // 2)
    run.log('val', {'loss': 0.4}, step=4, epoch=2)
    run.log('val', {'loss': 0.3, 'acc': 0.9}, step=5, epoch=3)
    model = em.create_artifact(name='weights')
    with open('w.bin', 'wb') as f:
        f.write(b'0123456789')
    model.add_file('w.bin')
    run.mark_output(model)
    run.finish()
    alive = em.create_run(name='alive')
    alive.log('train', {'loss': 2.0}, step=1)
    alive.hparams['batch'] = 8
    assert alive.metrics['train']  # reading the metrics flushes them to disk
    os._exit(0)  # a killed process: no hooks, status stays Running
"""


def test_ls_and_describe_dirs_of_this_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script = tmp_path / 'train.py'
    script.write_text(textwrap.dedent(TRAIN))
    env = {k: v for k, v in os.environ.items() if not k.startswith('EM_')}
    env['EM_SYSTEM_METRICS'] = '0'  # the metric counts below are of what the script logs
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(EM + ['ls'], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    done = _rows(out, 'done')[0]
    assert done[1] == 'Complete' and done[5:] == ['train=5', 'val=2']
    assert done[4] != '-'
    alive = _rows(out, 'alive')[0]
    assert alive[1] == 'Running' and alive[4:] == ['-', 'train=1']
    assert _rows(out, 'weights')

    run_dir = os.path.join('.em', 'runs', [d for d in os.listdir('.em/runs') if d.startswith('done')][0])
    proc = subprocess.run(EM + ['describe', run_dir], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert _rows(proc.stdout, 'val') == [['val', '2', '5', '3', 'loss=0.3', 'acc=0.9']]
    assert _rows(proc.stdout, 'train') == [['train', '5', '4', '2', 'loss=0.2']]
    assert _rows(proc.stdout, 'output')[0][1] == 'Artifact'
    assert '  lr: 0.1' in proc.stdout


def test_server_subcommand_is_delegated(tmp_path, capsys):
    """Everything after ``server`` reaches ``t9k_em_server.cli.main`` unchanged."""
    pytest.importorskip('t9k_em_server.cli')
    data_dir = str(tmp_path / 'server-data')
    assert cli.main(['server', 'add-user', 'carol', '--data-dir', data_dir]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert len(key) >= 16
    assert cli.main(['server', 'list-users', '--data-dir', data_dir]) == 0
    assert 'carol' in capsys.readouterr().out


@pytest.mark.parametrize('seconds, text', [(None, '-'), (0.025625, '0.03s'), (12.34, '12.3s'),
                                           (245, '4m 05s'), (7380, '2h 03m')])
def test_format_duration(seconds, text):
    assert cli.format_duration(seconds) == text


@pytest.mark.parametrize('size, text', [(3, '3 B'), (1536, '1.5 KiB'), (5 * 1024 ** 2, '5.0 MiB'),
                                        (3 * 1024 ** 4, '3.0 TiB')])
def test_format_size(size, text):
    assert cli.format_size(size) == text


def test_metric_types_keep_first_logged_order(legacy, capsys):
    """index.yaml's order (train, then val) wins over file times: appending to train.yaml after
    val.yaml was written must not reorder the types (load_run rewrites index.yaml from it)."""
    train = os.path.join(legacy['run'], 'metrics', 'train.yaml')
    os.utime(os.path.join(legacy['run'], 'metrics', 'val.yaml'))
    with open(train, 'a') as f:
        f.write("- value:\n    loss: 0.7\n  sequence:\n    epoch: 2\n    step: 30\n"
                "    timestamp: '2026-11-26T19:01:22.000001+08:00'\n")
    code, out, _ = _em(capsys, 'ls', '.em/runs')
    assert code == 0
    assert _rows(out, 'mnist_cnn')[0][-2:] == ['train=3', 'val=1']
