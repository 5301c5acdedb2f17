"""On-disk compatibility with t9k 0.6.0b0 (``shared/spec/local-layout.md``).

t9k 0.6.0b0 is not installable here (not on PyPI): directories it wrote are reproduced byte for byte
from the spec's examples (``legacy_dirs``), and what this package writes is checked with a loader
that follows the spec's description of 0.6.0b0's (``legacy_loader``), including appending an entry
the way 0.6.0b0's ``Run.log`` does.
"""

from __future__ import annotations

import datetime
import math
import os
import random
import time

import pytest
import yaml

import legacy_dirs
import legacy_loader
from t9k_em_core import layout
from t9k_em_core.metrics import MetricWriter


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


def _random_entries():
    """Entries of 10 floats of one magnitude each, from 1e-30 to 1e30, with short and 17-digit
    mantissas and integral values: every spelling the float formatter can meet, with most
    entries free of exponents (the fast path) and some in each of its edge bands."""
    rng = random.Random(20261126)
    entries = []
    for exponent in range(-30, 31):
        for _ in range(5):
            entries.append([rng.choice([1, -1]) * rng.choice(
                [rng.random(), round(rng.random(), rng.randint(0, 6)), 1.0]) * 10.0 ** exponent
                for _ in range(10)])
    entries.append([1e-4, 9.999e-5, 1e15, 9999999999999998.0, 1e16, 123456789.0, 0.0, 5e-324,
                    2.0 ** 53, 0.1 + 0.2])
    return entries


@pytest.mark.parametrize('interleave', ['c', 'python'])
@pytest.mark.parametrize('formatter', ['orjson', 'repr'])
def test_metric_entries_are_byte_identical_to_pyyaml(tmp_path, monkeypatch, formatter, interleave):
    from t9k_em_core import metrics
    if formatter == 'repr':  # the path taken where the optional orjson is not installed
        monkeypatch.setattr(metrics, '_orjson_dumps', None)
    else:
        pytest.importorskip('orjson')
    if interleave == 'python':  # the path taken where the C extension could not be built
        monkeypatch.setattr(metrics, '_interleave', metrics._interleave_py)
    else:  # the development install builds it (test_c_accelerator_is_built)
        assert metrics._interleave is not metrics._interleave_py
    storage = layout.RunStorage(str(tmp_path))
    storage.create()
    writer = MetricWriter(storage)
    values = {'loss': 0.1, 'acc': 1, 'tiny': 1.5e-7, 'exp': 1e-05, 'big': 1e16, 'neg': -0.0,
              'nan': math.nan, 'inf': math.inf, 'ninf': -math.inf, 'true': 2.0, "it's": 1.0,
              '1': 3.0, 'a' * 130: 5.0, '标签': 6.0, 'é': 7.0}
    logged = [(values, 7, 2), ({'loss': 0.2}, 8, None)]
    for i, floats in enumerate(_random_entries()):
        logged.append(({f'm{k}': v for k, v in enumerate(floats)}, 9 + i, None))
    for value, step, epoch in logged:
        writer.log('val', value, step=step, epoch=epoch)
    writer.close()
    text = (tmp_path / 'metrics' / 'val.yaml').read_text()
    entries = yaml.safe_load(text)
    assert len(entries) == len(logged)
    expected = ''
    for entry, (value, step, epoch) in zip(entries, logged):
        stamp = entry['sequence']['timestamp']
        expected += yaml.dump([{'value': {k: float(v) for k, v in value.items()},
                                'sequence': {'epoch': epoch, 'step': step, 'timestamp': stamp}}],
                              sort_keys=False, width=1 << 30)
    assert text == expected


@pytest.mark.parametrize('interleave', ['c', 'python'])
def test_interleave_places_each_token_between_its_pieces(interleave):
    from t9k_em_core import metrics
    join = metrics._interleave_py if interleave == 'python' else metrics._interleave
    pieces = (b'- value:\n    a: ', b'\n    b: ', b'\n  step: ', b'\n')
    assert join(pieces, (b'0.5,1.0', b'2.0,-3.5', b'7,8'), 2) == (
        b'- value:\n    a: 0.5\n    b: 2.0\n  step: 7\n'
        b'- value:\n    a: 1.0\n    b: -3.5\n  step: 8\n')
    assert join((b'x', b'y'), (b'1',), 1) == b'x1y'
    for short_or_long in (b'1.0', b'1.0,2.0,3.0'):  # a column of 1 or 3 tokens for 2 entries
        with pytest.raises(ValueError):
            join((b'<', b'|', b'>'), (b'4,5', short_or_long), 2)
    with pytest.raises(ValueError):
        join((b'', b''), (b'',), 3)  # one (empty) token for 3 entries


def test_c_and_python_interleave_agree_on_random_columns():
    """Random pieces, token counts and token lengths (often the wrong count): the same text, or
    ValueError from both."""
    from t9k_em_core import metrics
    assert metrics._interleave is not metrics._interleave_py  # built by the development install
    rng = random.Random(7)
    for _ in range(2000):
        n, count = rng.randint(0, 4), rng.randint(1, 6)
        pieces = tuple(bytes(rng.choices(b'ab: \n', k=rng.randint(0, 3))) for _ in range(n + 1))
        columns = tuple(b','.join(bytes(rng.choices(b'0123456789.-', k=rng.randint(0, 4)))
                                  for _ in range(max(1, count + rng.choice([-1, 0, 0, 0, 1]))))
                        for _ in range(n))
        outcomes = []
        for join in (metrics._interleave, metrics._interleave_py):
            try:
                outcomes.append(join(pieces, columns, count))
            except ValueError:
                outcomes.append(ValueError)
        assert outcomes[0] == outcomes[1], (pieces, columns, count)


def test_timestamps_are_local_iso_with_offset():
    stamp = layout.now_iso()
    parsed = datetime.datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == datetime.datetime.now().astimezone().utcoffset()
    formatter = layout.TimestampFormatter()
    for t in (1_700_000_000.25, 1_700_000_000.75, 1_700_000_001.5):  # cached second, then a new one
        prefix, micro, offset = formatter.parts(t)
        assert f'{prefix}.{micro:06d}{offset}' == \
            datetime.datetime.fromtimestamp(t).astimezone().isoformat()


@pytest.fixture
def berlin_time(monkeypatch):
    """Local time with a daylight-saving switch (restored afterwards)."""
    monkeypatch.setenv('TZ', 'Europe/Berlin')
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize('start, step_us, count', [
    (1_795_711_582_000_000, 997, 5000),             # one flush: a few seconds, at once
    (1_795_711_582_999_990, 1, 30),                 # across a second boundary
    (1_795_711_582_000_000, 3_600_000_000, 20),     # hours apart: time by time
    (1_774_746_000_000_000 - 30_000_000, 997_000, 60),  # 2026-03-29 01:00 UTC, Berlin DST starts
])
def test_timestamps_are_spelled_like_isoformat(berlin_time, start, step_us, count):
    from t9k_em_core.metrics import spell_times
    micros = [start + i * step_us for i in range(count)]
    expected = [datetime.datetime.fromtimestamp(us // 10 ** 6).replace(microsecond=us % 10 ** 6)
                .astimezone().isoformat(timespec='microseconds').encode() for us in micros]
    assert spell_times(layout.TimestampFormatter(), micros) == b','.join(expected)


def test_truncated_last_metric_entry_is_dropped(tmp_path):
    path = tmp_path / 'train.yaml'
    path.write_text(legacy_dirs.TRAIN_METRICS + "- value:\n    loss: 0.5\n  sequence:\n    epoch: nu")
    entries = layout.read_metric_file(str(path))
    assert [e['sequence']['step'] for e in entries] == [10, 20]


@pytest.mark.parametrize('name', ['a', 'A_b-9', 'x' * 40])
def test_valid_names(name):
    assert layout.validate_name(name, 'Run') == name
    alt = layout.alternative_name(name)
    assert layout.NODE_DIR_RE.search(alt) and alt.startswith(name + '_')


@pytest.mark.parametrize('name', ['', '-x', 'x-', '_x', 'x y', 'a.b', 'x' * 41, None])
def test_invalid_names(name):
    with pytest.raises(ValueError, match='Invalid name of Run'):
        layout.validate_name(name, 'Run')


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    layout.write_yaml(str(tmp_path / 'metadata.yaml'), {'a': 1})
    layout.write_yaml(str(tmp_path / 'metadata.yaml'), {'a': 2})
    assert os.listdir(tmp_path) == ['metadata.yaml']
    assert layout.read_yaml(str(tmp_path / 'metadata.yaml')) == {'a': 2}


def _same(a, b):
    """Equality where NaN equals NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize('values, canonical', [
    ({'loss': 0.1, 'val/acc': 1, 'lr_x.y-z': 1.5e-7, 'big': 1e16, 'neg': -0.0, 'nan': math.nan,
      'inf': math.inf, 'ninf': -math.inf, 'inference': 3.0, 'Yesterday': 1.0}, True),
    ({}, True),
    ({'yes': 1.0}, False), ({'Null': 1.0}, False), ({'a: b': 1.0}, False), ({'1': 1.0}, False),
    ({'标签': 1.0}, False), ({'a' * 130: 1.0}, False), ({"it's": 1.0}, False),
])
def test_fast_metric_reader_agrees_with_yaml(tmp_path, values, canonical):
    storage = layout.RunStorage(str(tmp_path))
    storage.create()
    writer = MetricWriter(storage)
    writer.log('train', values, step=0, epoch=3)
    writer.log('train', values, step=12)
    writer.close()
    path = layout.metric_file(str(tmp_path), 'train')
    text = open(path, encoding='utf-8').read()
    expected = yaml.safe_load(text)
    fast = layout._parse_canonical_metrics(text)
    assert (fast is not None) == canonical
    if canonical:
        assert _same(fast, expected)
    assert _same(layout.read_metric_file(path), expected)


def test_fast_metric_reader_reads_060b0_output_and_defers_odd_files():
    assert layout._parse_canonical_metrics(legacy_dirs.TRAIN_METRICS) == \
        yaml.safe_load(legacy_dirs.TRAIN_METRICS)
    odd = legacy_dirs.TRAIN_METRICS.replace('step: 20', "step: '20'")  # 0.6.0b0 kept a str step
    assert layout._parse_canonical_metrics(odd) is None
    assert layout._parse_canonical_metrics(legacy_dirs.TRAIN_METRICS.replace('step: 20', 'step: 020')) is None
