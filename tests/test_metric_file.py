"""The metric file format (``t9k_em_core.metric_file``): what the writer spells is byte for byte
what PyYAML writes, at every magnitude and across a daylight-saving switch; every reader (dicts,
the fast canonical path, summaries, NumPy columns) reads back exactly what was logged; a last
entry cut short by a killed writer is dropped (or left unconsumed) by every reader alike."""

from __future__ import annotations

import datetime
import math
import random
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from support import legacy_dirs
from t9k_em_core import fileio, metadata_file, metric_file, run_files
from t9k_em_core.metrics import MetricWriter

T0_US = 1_764_000_000_000_000


def canonical_entries(start: int, stop: int, keys=('loss', 'accuracy'), step_us=1_000_000) -> bytes:
    """Entries ``start..stop-1`` spelled by :func:`metric_file.format_entries`: value ``1/(i+1)``
    per key, an epoch every third entry, step ``i``, one entry per ``step_us`` microseconds."""
    rows = range(start, stop)
    return metric_file.format_entries(
        metric_file.entry_pieces(keys), metric_file.TimestampFormatter(),
        [[1.0 / (i + 1) for i in rows] for _ in keys],
        [metric_file.NO_EPOCH if i % 3 else i // 10 for i in rows], list(rows),
        [T0_US + i * step_us for i in rows])


def write_entries(tmp_path, logged, metric_type='val'):
    """Logs ``(values, step, epoch)`` triples through the real writer; returns the file path."""
    storage = run_files.RunStorage(str(tmp_path))
    storage.create()
    writer = MetricWriter(storage)
    for values, step, epoch in logged:
        writer.log(metric_type, values, step=step, epoch=epoch)
    writer.close()
    return run_files.metric_path(str(tmp_path), metric_type)


# --- writing ----------------------------------------------------------------------------------

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
    if formatter == 'repr':  # the path taken where the optional orjson is not installed
        monkeypatch.setattr(metric_file, '_orjson_dumps', None)
    else:
        pytest.importorskip('orjson')
    if interleave == 'python':  # the path taken where the C extension could not be built
        monkeypatch.setattr(metric_file, '_interleave', metric_file._interleave_py)
    else:  # the development install builds it (test_c_accelerator_is_built)
        assert metric_file._interleave is not metric_file._interleave_py
    storage = run_files.RunStorage(str(tmp_path))
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
    join = metric_file._interleave_py if interleave == 'python' else metric_file._interleave
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
    assert metric_file._interleave is not metric_file._interleave_py  # built by the development install
    rng = random.Random(7)
    for _ in range(2000):
        n, count = rng.randint(0, 4), rng.randint(1, 6)
        pieces = tuple(bytes(rng.choices(b'ab: \n', k=rng.randint(0, 3))) for _ in range(n + 1))
        columns = tuple(b','.join(bytes(rng.choices(b'0123456789.-', k=rng.randint(0, 4)))
                                  for _ in range(max(1, count + rng.choice([-1, 0, 0, 0, 1]))))
                        for _ in range(n))
        outcomes = []
        for join in (metric_file._interleave, metric_file._interleave_py):
            try:
                outcomes.append(join(pieces, columns, count))
            except ValueError:
                outcomes.append(ValueError)
        assert outcomes[0] == outcomes[1], (pieces, columns, count)


def test_timestamps_are_local_iso_with_offset():
    stamp = metadata_file.now_iso()
    parsed = datetime.datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == datetime.datetime.now().astimezone().utcoffset()
    formatter = metric_file.TimestampFormatter()
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
    micros = [start + i * step_us for i in range(count)]
    expected = [datetime.datetime.fromtimestamp(us // 10 ** 6).replace(microsecond=us % 10 ** 6)
                .astimezone().isoformat(timespec='microseconds').encode() for us in micros]
    assert metric_file.spell_times(metric_file.TimestampFormatter(), micros) == b','.join(expected)


# --- reading ----------------------------------------------------------------------------------

def test_truncated_last_metric_entry_is_dropped(tmp_path):
    path = tmp_path / 'train.yaml'
    path.write_text(legacy_dirs.TRAIN_METRICS + "- value:\n    loss: 0.5\n  sequence:\n    epoch: nu")
    entries = metric_file.read_entries(str(path))
    assert [e['sequence']['step'] for e in entries] == [10, 20]


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
    storage = run_files.RunStorage(str(tmp_path))
    storage.create()
    writer = MetricWriter(storage)
    writer.log('train', values, step=0, epoch=3)
    writer.log('train', values, step=12)
    writer.close()
    path = run_files.metric_path(str(tmp_path), 'train')
    text = open(path, encoding='utf-8').read()
    expected = yaml.safe_load(text)
    fast = metric_file.parse_canonical(text)
    assert (fast is not None) == canonical
    if canonical:
        assert _same(fast, expected)
    assert _same(metric_file.read_entries(path), expected)


def test_fast_metric_reader_reads_060b0_output_and_defers_odd_files():
    assert metric_file.parse_canonical(legacy_dirs.TRAIN_METRICS) == \
        yaml.safe_load(legacy_dirs.TRAIN_METRICS)
    odd = legacy_dirs.TRAIN_METRICS.replace('step: 20', "step: '20'")  # 0.6.0b0 kept a str step
    assert metric_file.parse_canonical(odd) is None
    assert metric_file.parse_canonical(legacy_dirs.TRAIN_METRICS.replace('step: 20', 'step: 020')) is None


# --- round trips ------------------------------------------------------------------------------

def test_every_magnitude_reads_back_exactly_through_every_reader(tmp_path):
    logged = [({f'm{k}': v for k, v in enumerate(floats)}, i, i // 7 if i % 2 else None)
              for i, floats in enumerate(_random_entries())]
    path = write_entries(tmp_path, logged)
    entries = metric_file.read_entries(path)
    assert [e['value'] for e in entries] == [values for values, _, _ in logged]
    assert [(e['sequence']['step'], e['sequence']['epoch']) for e in entries] == \
        [(step, epoch) for _, step, epoch in logged]
    with open(path, 'rb') as f:
        columns, used = metric_file.read_columns([f.read()])
    assert used == len(open(path, 'rb').read()) and columns.count == len(logged)
    for k in range(10):
        assert columns.values[f'm{k}'].tolist() == [values[f'm{k}'] for values, _, _ in logged]
    assert columns.step.tolist() == [step for _, step, _ in logged]
    assert np.array_equal(columns.epoch, [math.nan if e is None else e for _, _, e in logged],
                          equal_nan=True)
    assert columns.time.tolist() == [datetime.datetime.fromisoformat(e['sequence']['timestamp'])
                                     .timestamp() for e in entries]
    assert metric_file.count_entries(path) == len(logged)
    assert metric_file.last_entry(path) == entries[-1]


def test_columns_agree_with_yaml():
    text = canonical_entries(0, 3000)
    columns, used = metric_file.read_columns([text])
    ref = fileio.load_yaml_text(text.decode())
    assert used == len(text) and columns.count == len(ref) == 3000
    assert np.array_equal(columns.step, [e['sequence']['step'] for e in ref])
    assert np.allclose(columns.values['loss'], [e['value']['loss'] for e in ref])
    epochs = [np.nan if e['sequence']['epoch'] is None else e['sequence']['epoch'] for e in ref]
    assert np.allclose(columns.epoch, epochs, equal_nan=True)
    times = [datetime.datetime.fromisoformat(e['sequence']['timestamp']).timestamp() for e in ref]
    assert np.allclose(columns.time, times, rtol=0, atol=1e-6)


def test_columns_of_other_shapes_fall_back_to_yaml():
    text = (b"- value:\n    'odd: name': 1.5\n    loss: .nan\n  sequence:\n    step: '3'\n    epoch: 2.5\n"
            b"    timestamp: '2026-01-01T00:00:00+00:00'\n"
            b"- value: {loss: 0.25}\n  sequence: {epoch: null, step: 4, timestamp: '2026-01-01T00:00:01Z'}\n"
            + canonical_entries(5, 7))
    columns, used = metric_file.read_columns([text])
    assert used == len(text) and columns.count == 4
    assert columns.values['odd: name'][0] == 1.5 and np.isnan(columns.values['loss'][0])
    assert list(columns.step) == [3, 4, 5, 6] and columns.epoch[0] == 2.5
    assert columns.values['loss'][1] == 0.25
    assert columns.time[0] == datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc).timestamp()


def test_columns_are_read_piece_by_piece(monkeypatch):
    """A file bigger than a piece, handed over in small chunks, reads as one."""
    monkeypatch.setattr(metric_file, 'PIECE', 4096)
    text = canonical_entries(0, 2000)
    chunks = [text[i:i + 1000] for i in range(0, len(text), 1000)]
    columns, used = metric_file.read_columns(chunks)
    assert used == len(text) and columns.step.tolist() == list(range(2000))


def test_column_times_across_a_daylight_saving_switch(berlin_time):
    """The vectorised timestamp reader honours each entry's own UTC offset."""
    start = 1_774_746_000_000_000 - 30 * 10 ** 6  # 2026-03-29 01:00 UTC: Berlin DST starts
    rows = range(60)
    text = metric_file.format_entries(
        metric_file.entry_pieces(('x',)), metric_file.TimestampFormatter(), [[0.5] * 60],
        [metric_file.NO_EPOCH] * 60, list(rows), [start + i * 997_000 for i in rows])
    assert b'+01:00' in text and b'+02:00' in text
    columns, _ = metric_file.read_columns([text])
    assert np.allclose(columns.time, [(start + i * 997_000) / 1e6 for i in rows], rtol=0, atol=1e-6)


# --- truncated tails --------------------------------------------------------------------------

def test_truncated_tail_is_dropped_or_left_by_every_reader(tmp_path):
    """A writer killed anywhere inside its last entry: the dict readers drop that entry, the
    columnar reader stops before it (also when only the final newline is missing: it indexes a
    file that may still grow), the counter counts it once its ``- `` is written."""
    full = canonical_entries(0, 10)
    last = full.rindex(metric_file.ENTRY_START) + 1
    path = tmp_path / 'train.yaml'
    for cut in range(last + 1, len(full)):
        path.write_bytes(full[:cut])
        whole = 10 if cut == len(full) - 1 else 9  # only the newline missing: a whole entry
        entries = metric_file.read_entries(str(path))
        assert [e['sequence']['step'] for e in entries] == list(range(whole)), full[last:cut]
        assert metric_file.last_entry(str(path))['sequence']['step'] == whole - 1
        assert metric_file.count_entries(str(path)) == (10 if cut >= last + 2 else 9)
        columns, used = metric_file.read_columns([full[:cut]])
        assert columns.count == 9 and used == last, full[last:cut]


def test_the_core_reads_metric_files_without_numpy(tmp_path):
    """``numpy`` is the server's dependency: only the columnar reader imports it."""
    path = tmp_path / 'train.yaml'
    path.write_bytes(canonical_entries(0, 5))
    code = (f'import sys\nfrom t9k_em_core import metric_file\n'
            f'assert len(metric_file.read_entries({str(path)!r})) == 5\n'
            f'assert metric_file.last_entry({str(path)!r}) is not None\n'
            f'print("numpy" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'False'
