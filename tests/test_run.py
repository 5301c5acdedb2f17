"""``create_run`` / ``load_run`` / ``Run``: files, logging rules, resume, associations."""

from __future__ import annotations

import inspect
import json
import math
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import yaml

from support import legacy_loader
from t9k import em
from t9k_em_core import fileio, metadata_file, metric_file, naming, run_files


def _entries(run, metric_type):
    return metric_file.read_entries(run_files.metric_path(run.local, metric_type))


def test_create_run_writes_every_file(em_dirs):
    run = em.create_run(name='cnn', hparams={'lr': 0.1}, labels=['a', 'b'], description='d')
    assert os.path.dirname(run.local) == str(em_dirs / 'runs')
    assert naming.NODE_DIR_RE.search(run.alternative_name)
    assert sorted(os.listdir(run.local)) == ['git.yaml', 'hyperparameters.yaml', 'index.yaml',
                                             'metadata.yaml', 'metrics', 'platform.yaml',
                                             'stdout.log']
    meta = metadata_file.read_metadata(run.local)
    assert meta['status'] == 'Running' and meta['endTimestamp'] is None
    assert (meta['name'], meta['labels'], meta['description']) == ('cnn', ['a', 'b'], 'd')
    assert run.start_timestamp == meta['startTimestamp']
    assert run.params is run.hparams and run.hparams['lr'] == 0.1
    assert run.platform['pypkgs']['t9k-em'] == __import__('t9k_em_core').__version__
    assert set(run.git) == {'repo_path', 'remote_url', 'branch', 'commit', 'is_dirty', 'entrypoint'}
    assert run.is_inert is False
    run.finish()
    assert run.status == 'Complete' and run.end_timestamp is not None
    meta = metadata_file.read_metadata(run.local)
    assert meta['status'] == 'Complete' and meta['endTimestamp'] == run.end_timestamp
    run.finish()  # harmless
    assert metadata_file.read_metadata(run.local)['endTimestamp'] == run.end_timestamp


@pytest.mark.parametrize('text, name', [
    ('mlp', 'mlp'), ('my model!', 'my_model'), ('_x.y_', 'x_y'), ('...', 'fallback'),
    ('a' * 39 + '.b', 'a' * 39), ('résumé', 'r_sum'), ('epoch=3-step=120', 'epoch_3-step_120'),
    ('a  b', 'a_b'), ('x' * 45, 'x' * 40),
])
def test_names_made_from_framework_text_follow_the_name_rule(text, name):
    """What the integrations name Runs and Artifacts after (a model, a module class, a
    checkpoint file) becomes a valid name, or the fallback when nothing valid is left."""
    assert naming.make_valid_name(text, 'fallback') == name
    assert naming.validate_name(name, 'Run') == name


def test_log_is_the_writers_documented_method(em_dirs):
    """``run.log`` is the writer's method (one call on the hot path) and says how to call it."""
    run = em.create_run(name='documented')
    assert list(inspect.signature(run.log).parameters) == ['type', 'metrics', 'step', 'epoch']
    assert 'step: Non-negative integer step' in inspect.getdoc(run.log)
    run.finish()


def test_a_run_constructed_with_metrics_writes_them_and_appends_after(em_dirs):
    """0.6.0b0's ``Run(metadata, hparams, metrics)``: the given entries become the metric files
    (any shape; YAML a 0.6.0b0 reader loads), and ``log`` appends after them."""
    given = [{'value': {'loss': 0.5, 'note': 'first'},
              'sequence': {'epoch': None, 'step': 1, 'timestamp': '2026-12-06T10:00:00.000001+01:00'}}]
    run = em.Run({'name': 'given'}, metrics={'train': given})
    path = run_files.metric_path(run.local, 'train')
    with open(path, encoding='utf-8') as f:
        assert yaml.safe_load(f) == given
    run.log('train', {'loss': 0.25}, step=2)
    entries = run.metrics['train']
    assert entries[0] == given[0] and entries[1]['value'] == {'loss': 0.25}
    run.finish()


def test_finish_with_error_status(em_dirs):
    run = em.create_run(name='failing')
    run.finish(status='Error')
    assert metadata_file.read_metadata(run.local)['status'] == 'Error'
    with pytest.raises(ValueError, match='status'):
        em.create_run(name='x').finish(status='Done')


def test_parent_dir_is_read_at_call_time(em_dirs, monkeypatch):
    monkeypatch.setenv('EM_RUN_PARENT_DIR', str(em_dirs / 'elsewhere'))
    run = em.create_run(name='moved')
    assert run.local.startswith(str(em_dirs / 'elsewhere'))
    run.finish()


@pytest.fixture(params=['c', 'python'])
def pack_path(request, monkeypatch):
    """Runs a test with ``Run.log``'s fast path in C (``_speedups.pack``, which the development
    install builds) and with its Python twin (``_pack_py``, where the extension is not built)."""
    from t9k_em_core import metrics
    if request.param == 'python':
        monkeypatch.setattr(metrics, '_pack', metrics._pack_py)
    else:
        assert metrics._pack is not metrics._pack_py
    return request.param


def test_log_aliases_and_custom_types(em_dirs, pack_path):
    run = em.create_run(name='aliases')
    for i, t in enumerate(['train', 'training', 'val', 'validate', 'validation', 'test',
                           'testing', 'eval', 'evaluate', 'evaluation', 'lr-schedule']):
        run.log(t, {'m': i}, step=i)
    run.finish()
    metrics = run.metrics
    assert [len(metrics[t]) for t in ('train', 'val', 'test', 'lr-schedule')] == [2, 3, 5, 1]
    assert list(fileio.read_yaml(os.path.join(run.local, 'index.yaml'))['metrics']) == \
        ['train', 'val', 'test', 'lr-schedule']


def test_log_values_of_every_numeric_kind(em_dirs, pack_path):
    import torch
    run = em.create_run(name='values')
    values = {'int': 3, 'float': 0.5, 'bool': True, 'np32': np.float32(0.25),
              'np64': np.float64(2.5), 'npint': np.int64(4), 'tensor': torch.tensor(1.5),
              'tensor1': torch.tensor([7.0]), 'nan': math.nan, 'inf': -math.inf, 'big': 2 ** 70}
    run.log('train', values, step=np.int64(3), epoch=np.int32(1))  # a new key set: slow path
    run.log('train', values, step=4, epoch=2)  # the same key set: fast path
    run.finish()
    entries = run.metrics['train']
    assert [(e['sequence']['step'], e['sequence']['epoch']) for e in entries] == [(3, 1), (4, 2)]
    for entry in entries:
        value = entry['value']
        assert value['int'] == 3.0 and value['bool'] == 1.0 and value['np32'] == 0.25
        assert value['npint'] == 4.0 and value['tensor'] == 1.5 and value['tensor1'] == 7.0
        assert math.isnan(value['nan']) and value['inf'] == -math.inf and value['big'] == 2.0 ** 70


def test_c_and_python_fast_paths_pack_the_same_records(tmp_path):
    """``_speedups.pack`` and ``_pack_py`` accept and refuse the same calls, and give the same
    bytes (the time field apart)."""
    from t9k_em_core import metrics
    assert metrics._pack is not metrics._pack_py  # built by the development install
    storage = run_files.RunStorage(str(tmp_path))
    storage.create()
    writer = metrics.MetricWriter(storage)
    writer.log('train', {'a': 1.0, 'b': 2.0}, step=0)
    writer.log('training', {'a': 1.0}, step=0, epoch=1)
    templates = writer._templates
    good = {'a': 0.5, 'b': np.float32(0.25)}

    class Exploding:
        def __float__(self):
            raise RuntimeError('no')

    calls = [('train', good, 3, None), ('train', good, 3, 7), ('training', {'a': 2}, 5, None),
             ('train', {'b': 1.0, 'a': 2.0}, 1, None), ('val', good, 1, None),
             ('train', good, -1, None), ('train', good, 2 ** 63, None), ('train', good, 2 ** 63 - 1, 0),
             ('train', good, True, None), ('train', good, np.int64(1), None), ('train', good, 1, -1),
             ('train', good, 1, 2.0), ('train', {'a': 'x', 'b': 1.0}, 1, None),
             ('train', {'a': None, 'b': 1.0}, 1, None), (['train'], good, 1, None),
             ('train', [('a', 1.0)], 1, None), ('train', {'a': Exploding(), 'b': 1.0}, 1, None),
             ('train', {'a': math.nan, 'b': -math.inf}, 0, None), ('train', {}, 0, None)]
    for call in calls:
        try:
            expected = metrics._pack_py(templates, *call)
        except Exception as e:  # noqa: BLE001 - both must raise alike
            with pytest.raises(type(e)):
                metrics._pack(templates, *call)
            continue
        got = metrics._pack(templates, *call)
        assert (got is None) == (expected is None), call
        if got is not None:
            assert got[:24] + got[32:] == expected[:24] + expected[32:], call
            assert abs(int.from_bytes(got[24:32], sys.byteorder) -
                       int.from_bytes(expected[24:32], sys.byteorder)) < 10 ** 6, call
    writer.close()


@pytest.mark.parametrize('kwargs, error, message', [
    ({'type': 5}, TypeError, 'Metric type must be a str'),
    ({'type': ''}, ValueError, 'empty'),
    ({'type': 'a/b'}, ValueError, 'path separator'),
    ({'type': '.hidden'}, ValueError, "starts with '.'"),
    ({'metrics': {'loss': 'high'}}, TypeError, "Metric 'loss' is not numeric"),
    ({'metrics': {'loss': None}}, TypeError, "Metric 'loss' is not numeric"),
    ({'metrics': {'loss': [1, 2]}}, TypeError, "Metric 'loss' is not numeric"),
    ({'metrics': {3: 1.0}}, TypeError, 'Metric names must be str'),
    ({'metrics': [('loss', 1.0)]}, TypeError, 'metrics must be a dict'),
    ({'step': -1}, ValueError, 'step must be a non-negative integer'),
    ({'step': 1.5}, TypeError, 'step must be a non-negative integer'),
    ({'step': True}, TypeError, 'bool'),
    ({'step': '3'}, TypeError, 'step must be'),
    ({'epoch': -2}, ValueError, 'epoch must be'),
    ({'epoch': 2.5}, TypeError, 'epoch must be'),
    ({'step': 2 ** 63}, ValueError, 'step must be below 2\\*\\*63'),
    ({'epoch': 2 ** 64}, ValueError, 'epoch must be below'),
    ({'type': ['train']}, TypeError, 'Metric type must be a str'),
    ({'metrics': {'loss': 1.0, 'acc': 'x'}}, TypeError, "Metric 'acc' is not numeric"),
    ({'metrics': {'loss': 10 ** 400}}, ValueError, "Metric 'loss' is too large for a float"),
])
def test_log_rejects_bad_input_and_keeps_what_was_logged(em_dirs, pack_path, kwargs, error, message):
    run = em.create_run(name='bad')
    run.log('train', {'loss': 1.0}, step=0)
    call = {'type': 'train', 'metrics': {'loss': 0.5}, 'step': 1, 'epoch': None}
    call.update(kwargs)
    with pytest.raises(error, match=message):
        run.log(**call)
    run.log('train', {'loss': 0.25}, step=2)
    run.finish()
    assert [e['value']['loss'] for e in run.metrics['train']] == [1.0, 0.25]
    assert os.listdir(os.path.join(run.local, 'metrics')) == ['train.yaml']


def test_logged_metrics_reach_disk_within_a_second(em_dirs):
    run = em.create_run(name='durable')
    run.log('train', {'loss': 1.0}, step=0)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and not os.path.exists(run_files.metric_path(run.local, 'train')):
        time.sleep(0.02)
    assert _entries(run, 'train')[0]['value'] == {'loss': 1.0}
    assert fileio.read_yaml(os.path.join(run.local, 'index.yaml'))['metrics'] == {
        'train': 'metrics/train.yaml'}
    run.finish()


def test_log_after_finish_is_still_written(em_dirs, capsys):
    run = em.create_run(name='late')
    run.finish()
    run.log('train', {'loss': 1.0}, step=0)
    assert 'after Run.finish()' in capsys.readouterr().err
    assert run.metrics['train'][0]['value'] == {'loss': 1.0}
    assert metadata_file.read_metadata(run.local)['status'] == 'Complete'


def test_config_file_takes_precedence(em_dirs):
    cfg = em_dirs / 'run.yaml'
    cfg.write_text('name: fromcfg\nhparams:\n  batch_size: 32\nlabels:\n- Keras\n'
                   'description: from file\n')
    run = em.create_run(config_path=str(cfg), name='ignored', description='ignored')
    assert (run.name, run.labels, run.description) == ('fromcfg', ['Keras'], 'from file')
    assert run.hparams.as_dict() == {'batch_size': 32}
    run.finish()
    cfg.write_text('name: x\nfolder_path: a\n')
    with pytest.raises(ValueError, match="Unknown arg provided by config file: 'folder_path'"):
        em.create_run(config_path=str(cfg))


def test_rejected_arguments_write_nothing(em_dirs):
    with pytest.raises(ValueError, match='Invalid name of Run'):
        em.create_run(name='bad name')
    with pytest.raises(TypeError, match="Hyperparameter 'opt' is not JSON-serialisable"):
        em.create_run(name='ok', hparams={'opt': object()})
    with pytest.raises(TypeError, match='labels must be str'):
        em.create_run(name='ok', labels=[1])
    with pytest.raises(ValueError, match='conflict_strategy'):
        em.create_run(name='ok', auto_upload=True, conflict_strategy='merge')
    assert not os.path.exists(em_dirs / 'runs')


def test_hparams_changes_rewrite_the_file(em_dirs):
    run = em.create_run(name='hp', hparams={'a': 1})
    run.hparams['b'] = (1, 2)
    run.params.c = 'x'
    run.hparams.update({'a': 5, 'd': 1}, override=False)
    del run.hparams['c']
    assert fileio.read_yaml(os.path.join(run.local, 'hyperparameters.yaml')) == \
        {'a': 1, 'b': [1, 2], 'd': 1}
    run.hparams = {'z': 0}
    assert fileio.read_yaml(os.path.join(run.local, 'hyperparameters.yaml')) == {'z': 0}
    run.finish()


def test_run_update_sets_hparams_with_one_write(em_dirs, monkeypatch):
    """The seed's Params example: ``run.update({...})``."""
    run = em.create_run(name='upd', hparams={'batch_size': 8, 'lr': 0.1})
    writes = []
    write = run._storage.write_hparams
    monkeypatch.setattr(run._storage, 'write_hparams', lambda data: (writes.append(data), write(data)))
    run.update({'batch_size': 32, 'epochs': 10})
    run.update({'lr': 1.0, 'momentum': 0.9}, override=False)
    assert writes == [{'batch_size': 32, 'lr': 0.1, 'epochs': 10},
                      {'batch_size': 32, 'lr': 0.1, 'epochs': 10, 'momentum': 0.9}]
    assert fileio.read_yaml(os.path.join(run.local, 'hyperparameters.yaml')) == writes[-1]
    assert run.params.as_dict() == writes[-1]
    run.finish()


def test_load_run_in_place_from_any_path_and_resume(em_dirs):
    run = em.create_run(name='resume', hparams={'lr': 0.1})
    run.log('train', {'loss': 1.0}, step=0)
    run.finish()
    moved = em_dirs / 'somewhere' / os.path.basename(run.local)
    os.makedirs(moved.parent)
    os.rename(run.local, moved)

    again = em.load_run(str(moved))
    assert again.local == str(moved) and again.status == 'Running'
    assert metadata_file.read_metadata(str(moved))['status'] == 'Running'
    assert metadata_file.read_metadata(str(moved))['endTimestamp'] is None
    assert again.hparams.as_dict() == {'lr': 0.1}
    again.log('train', {'loss': 0.5}, step=1)
    again.log('val', {'loss': 0.7}, step=1)
    again.finish()
    assert [e['value']['loss'] for e in again.metrics['train']] == [1.0, 0.5]
    assert list(fileio.read_yaml(str(moved / 'index.yaml'))['metrics']) == ['train', 'val']
    assert not os.listdir(em_dirs / 'runs')  # nothing re-homed into the parent dir
    legacy_loader.load_run_dir(str(moved))


def test_load_run_of_missing_path_without_server_fails(em_dirs):
    with pytest.raises((OSError, RuntimeError)):
        em.load_run(str(em_dirs / 'nope_261126_000000_abcdef'))


def test_mark_input_output(em_dirs):
    run = em.create_run(name='lineage')
    art = em.create_artifact('model')
    run.mark_output(art)
    run.mark_output(art)
    ref = em.Reference('commit', 'a1:0123abcd', '/alice/m:0123abcdef')
    run.mark_input(ref)
    run.mark_input(em.Reference('commit', 'a1:0123abcd', '/alice/m:0123abcdef'))
    with pytest.raises(TypeError, match='Instance type cannot be marked'):
        run.mark_input('/path/to/model')
    with pytest.raises(ValueError, match='kind'):
        em.Reference('Weights', 'i', 'p')
    assoc = metadata_file.read_metadata(run.local)['associations']
    assert assoc == {'input': [{'kind': 'commit', 'id': 'a1:0123abcd', 'path': '/alice/m:0123abcdef'}],
                     'output': [{'kind': 'Artifact', 'name': art.alternative_name,
                                 'localDir': art.local}]}
    run.finish()


def test_to_dict_is_0_6_0b0s_flat_metadata_and_parse_from_dict_takes_it(em_dirs):
    run = em.create_run(name='dict', hparams={'a': [1, 2]}, labels=['x'], description='d')
    art = em.create_artifact('model')
    run.mark_output(art)
    run.log('train', {'loss': 1.0}, step=1)
    data = run.to_dict()
    assert list(data) == ['kind', 'name', 'labels', 'description', 'startTimestamp',
                          'endTimestamp', 'status', 'alternativeName', 'associations', 'remote']
    assert data == metadata_file.read_metadata(run.local)  # the dict is metadata.yaml's content
    assert (data['kind'], data['name'], data['labels'], data['description'], data['status'],
            data['endTimestamp']) == ('Run', 'dict', ['x'], 'd', 'Running', None)
    assert data['associations']['output'] == [{'kind': 'Artifact', 'name': art.alternative_name,
                                               'localDir': art.local}]
    assert json.loads(json.dumps(data)) == data
    data['labels'].append('changed')  # a copy: the Run is unchanged
    assert run.labels == ['x']

    other = em.create_run(name='other', hparams={'b': 1})
    other.parse_from_dict(run.to_dict())
    assert other.to_dict() == run.to_dict()
    assert (other.name, other.labels, other.alternative_name) == ('dict', ['x'], run.alternative_name)
    assert other.hparams.as_dict() == {'b': 1}  # not metadata: untouched
    assert metadata_file.read_metadata(other.local) == run.to_dict()  # written to its metadata.yaml
    other.parse_from_dict({'description': 'only this'})
    assert (other.name, other.description) == ('dict', 'only this')
    with pytest.raises(ValueError, match="Unknown key.*'metadata', 'hparams'"):
        other.parse_from_dict({'metadata': data, 'hparams': {}})  # the nested shape of earlier t9k-em
    with pytest.raises(ValueError, match="kind must be 'Run'"):
        other.parse_from_dict(art.to_dict())
    run.finish()
    other.finish()


def test_stdout_is_copied_until_finish(em_dirs, capsys):
    run = em.create_run(name='tee')
    sys.stdout.write('epoch 1/2 ██\b\b done\n')
    print('second line')
    run.finish()
    print('after finish')
    with open(os.path.join(run.local, 'stdout.log')) as f:
        assert f.read() == 'epoch 1/2 ██ done\nsecond line\n'
    assert 'after finish' in capsys.readouterr().out


@pytest.mark.timeout(120)
@pytest.mark.parametrize('ending', ['r.finish()', 'pass'])  # finished, or ended by the exit hook
def test_git_info_describes_the_entry_script(tmp_path, ending):
    """git.yaml is captured on a thread (``git status`` takes milliseconds); ``run.git`` waits
    for it, and the file is complete once the Run has ended, however it ends."""
    repo = tmp_path / 'repo'
    repo.mkdir()
    git = ['git', '-C', str(repo), '-c', 'user.email=a@b', '-c', 'user.name=a']
    subprocess.run(['git', 'init', '-q', '-b', 'trunk', str(repo)], check=True)
    subprocess.run([*git[:3], 'remote', 'add', 'origin', 'https://example.com/r.git'], check=True)
    script = repo / 'train.py'
    script.write_text('from t9k import em\nr = em.create_run(name="g")\nprint(r.git["branch"])\n'
                      f'{ending}\nprint(r.local)\n')
    subprocess.run([*git, 'add', 'train.py'], check=True)
    subprocess.run([*git, 'commit', '-q', '-m', 'init'], check=True)
    (repo / 'train.py').write_text(script.read_text() + '# edited\n')
    work = tmp_path / 'work'  # run from elsewhere: the script's repo counts, not the cwd
    work.mkdir()
    out = subprocess.run([sys.executable, str(script)], cwd=work, capture_output=True, text=True,
                         check=True, env={**os.environ, 'EM_RUN_PARENT_DIR': str(work)})
    branch, local = out.stdout.strip().splitlines()[-2:]
    assert branch == 'trunk'
    info = fileio.read_yaml(os.path.join(local, 'git.yaml'))
    head = subprocess.run([*git[:3], 'rev-parse', 'HEAD'], capture_output=True, text=True).stdout
    assert info == {'repo_path': str(repo), 'remote_url': 'https://example.com/r.git',
                    'branch': 'trunk', 'commit': head.strip(), 'is_dirty': True,
                    'entrypoint': str(script)}


@pytest.mark.timeout(120)
def test_git_info_of_a_worktree_with_a_detached_head_and_of_no_repository(tmp_path):
    from t9k_em_core import environment
    repo, tree = tmp_path / 'repo', tmp_path / 'tree'
    git = ['git', '-C', str(repo), '-c', 'user.email=a@b', '-c', 'user.name=a']
    subprocess.run(['git', 'init', '-q', '-b', 'main', str(repo)], check=True)
    subprocess.run([*git[:3], 'remote', 'add', 'up', 'git@example.com:t/r.git'], check=True)
    (repo / 'train.py').write_text('pass\n')
    subprocess.run([*git, 'add', 'train.py'], check=True)
    subprocess.run([*git, 'commit', '-q', '-m', 'init'], check=True)
    head = subprocess.run([*git[:3], 'rev-parse', 'HEAD'], capture_output=True, text=True,
                          check=True).stdout.strip()
    subprocess.run([*git[:3], 'worktree', 'add', '-q', '--detach', str(tree)], check=True)
    (tree / 'sub').mkdir()
    info = environment.capture_git(str(tree / 'sub' / 'x.py'))  # a .git file, not a directory
    assert info == {'repo_path': str(tree), 'remote_url': 'git@example.com:t/r.git',
                    'branch': None, 'commit': head, 'is_dirty': False,
                    'entrypoint': str(tree / 'sub' / 'x.py')}
    outside = tmp_path / 'plain'
    outside.mkdir()
    assert environment.capture_git(str(outside / 'x.py'))['repo_path'] is None


def test_platform_lists_loaded_frameworks(em_dirs):
    import torch
    run = em.create_run(name='plat')
    platform = fileio.read_yaml(os.path.join(run.local, 'platform.yaml'))
    assert platform['pypkgs']['torch'] == torch.__version__
    assert 'PyTorch' in platform['framework']
    assert platform['python'] == '.'.join(map(str, sys.version_info[:3]))
    run.finish()


@pytest.mark.timeout(120)
def test_memory_does_not_grow_with_logged_points(tmp_path):
    code = textwrap.dedent('''
        import gc, resource, sys
        from t9k import em

        def rss_mb():
            with open('/proc/self/statm') as f:
                return int(f.read().split()[1]) * resource.getpagesize() / 2**20

        run = em.create_run(name='rss')
        metrics = {f'm{i}': 0.1 * i for i in range(5)}
        for step in range(20_000):  # warm-up: templates, buffers, allocator arenas
            run.log('train', metrics, step)
        run._writer.flush()
        gc.collect()
        before = rss_mb()
        for step in range(20_000, 220_000):
            run.log('train', metrics, step)
        run.finish()
        gc.collect()
        print(rss_mb() - before)
    ''')
    out = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, 'EM_RUN_PARENT_DIR': str(tmp_path)}, check=True)
    growth_mb = float(out.stdout.strip().splitlines()[-1])
    assert growth_mb < 10, f'RSS grew by {growth_mb:.1f} MB over 200k log calls'


def test_many_distinct_key_sets_are_all_written(em_dirs, pack_path, monkeypatch):
    from t9k_em_core import metrics
    monkeypatch.setattr(metrics, 'MAX_TEMPLATES', 3)  # force the template cache to be cleared
    run = em.create_run(name='keys')
    for i in range(10):
        run.log('train', {f'k{i}': float(i), 'loss': 1.0}, step=i)
    run.finish()
    assert [list(e['value']) for e in run.metrics['train']] == [[f'k{i}', 'loss'] for i in range(10)]


def test_logging_from_several_threads_loses_nothing(em_dirs, pack_path):
    import threading
    run = em.create_run(name='threads')

    def work(worker):
        for step in range(1000):
            run.log('train', {'worker': worker, 'step': step}, step=step)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.finish()
    entries = run.metrics['train']
    assert len(entries) == 4000
    for worker in range(4):  # each thread's entries are complete and in its own order
        steps = [e['value']['step'] for e in entries if e['value']['worker'] == worker]
        assert steps == [float(s) for s in range(1000)]


def test_a_failing_disk_keeps_entries_in_memory_and_in_order(em_dirs, monkeypatch, capsys):
    """Writes fail for a while (a full disk) in the middle of a flush: what could not be written
    is kept, retried by the next flush, and every file ends up whole and in logged order."""
    from t9k_em_core import metrics
    monkeypatch.setattr(metrics, 'FLUSH_INTERVAL', 3600)  # only the explicit flushes below
    monkeypatch.setattr(metrics, 'KICK_AT', 10 ** 9)
    monkeypatch.setattr(metrics, '_WRITE_AT', 1)  # a write per spelled piece of 512 entries
    run = em.create_run(name='full-disk')
    append, calls = run._storage.append_metrics, []

    def flaky_append(metric_type, data):
        calls.append(metric_type)
        if 2 <= len(calls) <= 4:  # the second to fourth writes find the disk full
            raise OSError(28, 'No space left on device')
        append(metric_type, data)

    run._storage.append_metrics = flaky_append
    for step in range(3 * metrics._SPELL_AT_ONCE):  # several writes per flush
        run.log('train', {'loss': step / 10}, step=step)
        if step % 100 == 0:
            run.log('val', {'loss': step / 5}, step=step)
    run._writer.flush()  # train: written, failed, kept (behind the failed one); val: failed
    assert 'cannot write metrics' in capsys.readouterr().err
    assert len(calls) == 3
    run._writer.flush()  # train: failed again; val: written
    assert len(calls) == 5
    run.finish()  # train: written
    assert len(calls) == 6
    train, val = run.metrics['train'], run.metrics['val']
    assert [e['sequence']['step'] for e in train] == list(range(3 * metrics._SPELL_AT_ONCE))
    assert [e['value']['loss'] for e in train] == [s / 10 for s in range(3 * metrics._SPELL_AT_ONCE)]
    assert [e['sequence']['step'] for e in val] == list(range(0, 3 * metrics._SPELL_AT_ONCE, 100))


@pytest.mark.timeout(120)
def test_a_disk_that_fills_up_mid_write_never_leaves_part_of_an_entry(tmp_path):
    """A real short write: the kernel's file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored) lets
    a flush write part of its text, then refuses the rest, as a full disk does. The file is cut
    back to whole entries (0.6.0b0's reader loads it at that moment) and the text is kept; once
    there is room, every entry is in the file exactly once, in order."""
    code = textwrap.dedent(f"""
        import os, resource, signal, sys
        sys.path.insert(0, {str(os.path.dirname(__file__))!r})
        from support import legacy_loader
        from t9k import em
        from t9k_em_core import metrics
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        metrics.FLUSH_INTERVAL, metrics.KICK_AT = 3600, 10 ** 9  # only the explicit flushes
        run = em.create_run(name='fills-up')
        for step in range(100):
            run.log('train', {{'loss': step / 7}}, step=step)
        run._writer.flush()
        path = os.path.join(run.local, 'metrics', 'train.yaml')
        size = os.path.getsize(path)
        for step in range(100, 1100):
            run.log('train', {{'loss': step / 7}}, step=step)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 1000, resource.RLIM_INFINITY))
        run._writer.flush()  # 1000 bytes fit, then the kernel refuses the rest
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
        print(os.path.getsize(path) - size, len(legacy_loader.load_run_dir(run.local)['metrics']['train']))
        run.finish()
        print([e['sequence']['step'] for e in run.metrics['train']] == list(range(1100)))
    """)
    out = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, 'EM_RUN_PARENT_DIR': str(tmp_path)}, timeout=100)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['0', '100', 'True'], out.stdout
    assert 'cannot write metrics' in out.stderr


@pytest.mark.parametrize('train_key_sets', [1, 2])
def test_types_and_key_sets_logged_in_turn_keep_their_order(em_dirs, monkeypatch, train_key_sets):
    """One flush holds train, val and lr entries logged in turn (and, in the second case, train
    entries of two key sets in turn): each file gets its entries in logged order, and index.yaml
    lists the types in first-logged order."""
    from t9k_em_core import metrics
    monkeypatch.setattr(metrics, 'FLUSH_INTERVAL', 3600)
    monkeypatch.setattr(metrics, 'KICK_AT', 10 ** 9)
    run = em.create_run(name='in-turn')
    for step in range(1000):
        if train_key_sets == 2 and step % 3:
            run.log('train', {'loss': float(step)}, step=step)
        else:
            run.log('train', {'loss': float(step), 'acc': 0.5}, step=step)
        run.log('val', {'loss': float(step)}, step=step)
        run.log('lr', {'lr': step / 1000}, step=step)
    run.finish()
    found = run.metrics
    assert [e['sequence']['step'] for e in found['train']] == list(range(1000))
    assert [list(e['value']) for e in found['train'][:3]] == (
        [['loss', 'acc'], ['loss'], ['loss']] if train_key_sets == 2 else [['loss', 'acc']] * 3)
    assert [e['value']['loss'] for e in found['val']] == [float(s) for s in range(1000)]
    assert [e['value']['lr'] for e in found['lr']] == [s / 1000 for s in range(1000)]
    index = yaml.safe_load(open(os.path.join(run.local, 'index.yaml')))
    assert list(index['metrics']) == ['train', 'val', 'lr']


def test_a_failing_git_capture_is_reported_and_leaves_git_unknown(em_dirs, monkeypatch, capsys):
    from t9k_em_core import environment

    def broken(entrypoint=None):
        raise PermissionError(13, 'Permission denied', '.git/config')

    monkeypatch.setattr(environment, 'capture_git', broken)
    run = em.create_run(name='no-git')
    run.log('train', {'loss': 1.0}, step=1)
    run.finish()
    assert run.status == 'Complete'
    assert run.git == environment.unknown_git()
    assert fileio.read_yaml(os.path.join(run.local, 'git.yaml')) == environment.unknown_git()
    assert 'cannot record git.yaml' in capsys.readouterr().err
