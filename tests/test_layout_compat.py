"""On-disk compatibility with t9k 0.6.0b0 (``shared/spec/local-layout.md``).

t9k 0.6.0b0 is not installable here (not on PyPI): directories it wrote are reproduced byte for byte
from the spec's examples (``legacy_dirs``), and what this package writes is checked with a loader
that follows the spec's description of 0.6.0b0's (``legacy_loader``), including appending an entry
the way 0.6.0b0's ``Run.log`` does.
"""

from __future__ import annotations

import math
import os

import pytest

from support import legacy_dirs
from support import legacy_loader
from t9k_em_core import fileio, naming


def test_run_written_by_060b0_loads_and_resumes(em_dirs):
    from t9k import em
    paths = legacy_dirs.write_legacy_dirs(str(em_dirs / 'runs'), str(em_dirs / 'artifacts'))
    run = em.load_run(paths['run'])
    assert run.local == paths['run']
    assert run.name == 'mnist_cnn' and run.labels == ['Keras', 'demo']
    assert run.alternative_name == legacy_dirs.RUN_ALT
    assert run.status == 'Running' and run.end_timestamp is None
    assert run.hparams['opt'] == {'name': 'Adam', 'betas': [0.9, 0.999]}
    assert run.metrics['train'][1] == {
        'value': {'loss': 0.8, 'accuracy': 0.6},
        'sequence': {'epoch': None, 'step': 20, 'timestamp': '2026-11-26T19:01:21.663486+08:00'}}
    assert run.remote[0]['id'] == 'ecf684f4-e32d-4d12-a5f7-3e17377bbfbf'
    assert run.associations['output'][0]['name'] == legacy_dirs.MODEL_ALT

    run.log('train', {'loss': 0.7, 'accuracy': 0.7}, step=30, epoch=2)
    run.finish()
    loaded = legacy_loader.load_run_dir(paths['run'])
    assert [e['sequence']['step'] for e in loaded['metrics']['train']] == [10, 20, 30]
    assert loaded['metadata']['status'] == 'Complete'
    assert loaded['metadata']['remote'] == run.remote  # history kept
    assert loaded['index']['metrics'] == {'train': 'metrics/train.yaml', 'val': 'metrics/val.yaml'}


def test_artifact_written_by_060b0_loads(em_dirs):
    from t9k import em
    paths = legacy_dirs.write_legacy_dirs(str(em_dirs / 'runs'), str(em_dirs / 'artifacts'))
    artifact = em.load_artifact(paths['model'])
    assert artifact.alternative_name == legacy_dirs.MODEL_ALT
    assert artifact.objects == {
        'a/w.pt': {'path': 'a/w.pt', 'size_bytes': 3, 'checksum': '900150983cd24fb0d6963f7d28e17f72'},
        'file.tar.gz': {'path': 'file.tar.gz', 'uri': 's3://bucket/path/file.tar.gz'},
        'refs/e.zip': {'path': 'refs/e.zip', 'uri': 'https://example.com/d/e.zip'},
        'refs/named': {'path': 'refs/named', 'uri': 'https://example.com/z'},
    }
    assert artifact.created_timestamp == '2026-11-26T19:01:21.665878+08:00'


def test_what_we_write_loads_in_060b0(em_dirs):
    from t9k import em
    run = em.create_run(name='compat', labels=['标签', 'yes', '123'],
                        description='no ' * 60 + 'é',
                        hparams={'shape': (1, 2), 'flag': 'on', 'none': None, 'nested': {'a': [1.5]}})
    dataset = em.create_artifact('data', labels=['raw'])
    src = em_dirs / 'x.bin'
    src.write_bytes(b'\x00\x01')
    dataset.add_file(str(src), obj_path='d/')
    dataset.add_reference('s3://b/k.tar')
    run.mark_input(dataset)
    run.mark_output(em.Reference('Model', 'mid', '/alice/m'))
    run.log('train', {'loss': 1, 'tiny': 1e-5, 'big': 1e17, 'nan': math.nan, 'inf': math.inf,
                      'ninf': -math.inf, 'yes': 2.0, 'a: b': 3.0, 'x%y': 4.0}, step=0, epoch=0)
    run.log('my-custom.type', {'m': 0.25}, step=1)
    run.finish()

    loaded = legacy_loader.load_run_dir(run.local)
    meta = loaded['metadata']
    assert meta['labels'] == ['标签', 'yes', '123'] and meta['description'] == run.description
    assert meta['alternativeName'] == os.path.basename(run.local)
    assert loaded['hparams'] == {'shape': [1, 2], 'flag': 'on', 'none': None, 'nested': {'a': [1.5]}}
    value = loaded['metrics']['train'][0]['value']
    assert value['tiny'] == 1e-5 and value['big'] == 1e17 and math.isnan(value['nan'])
    assert value['inf'] == math.inf and value['ninf'] == -math.inf
    assert value['yes'] == 2.0 and value['a: b'] == 3.0 and value['x%y'] == 4.0
    assert loaded['metrics']['my-custom.type'][0]['sequence']['epoch'] is None
    assert set(loaded['index']['metrics']) == {'train', 'my-custom.type'}
    assert set(loaded['platform']) == {'hostname', 'os', 'python', 'pypkgs', 'framework'}
    assert set(loaded['git']) == {'repo_path', 'remote_url', 'branch', 'commit', 'is_dirty',
                                  'entrypoint'}

    # 0.6.0b0 appending to our file, then both readers see every entry
    legacy_loader.append_like_060b0(run.local, 'train', {'loss': 0.5}, step=1)
    assert len(legacy_loader.load_run_dir(run.local)['metrics']['train']) == 2
    assert len(em.load_run(run.local).metrics['train']) == 2

    art = legacy_loader.load_artifact_dir(dataset.local)
    assert art['files'] == ['d/x.bin'] and art['references'] == {'k.tar': 's3://b/k.tar'}


@pytest.mark.parametrize('name', ['a', 'A_b-9', 'x' * 40])
def test_valid_names(name):
    assert naming.validate_name(name, 'Run') == name
    alt = naming.alternative_name(name)
    assert naming.NODE_DIR_RE.search(alt) and alt.startswith(name + '_')


@pytest.mark.parametrize('name', ['', '-x', 'x-', '_x', 'x y', 'a.b', 'x' * 41, None])
def test_invalid_names(name):
    with pytest.raises(ValueError, match='Invalid name of Run'):
        naming.validate_name(name, 'Run')


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    fileio.write_yaml(str(tmp_path / 'metadata.yaml'), {'a': 1})
    fileio.write_yaml(str(tmp_path / 'metadata.yaml'), {'a': 2})
    assert os.listdir(tmp_path) == ['metadata.yaml']
    assert fileio.read_yaml(str(tmp_path / 'metadata.yaml')) == {'a': 2}
