"""The metric file format: how ``metrics/<type>.yaml`` is spelled, and how it is read back.

A metric file is one top-level YAML block sequence that is only ever appended to, one entry per
``Run.log`` call, exactly as PyYAML's safe dumper writes ``[entry]`` (t9k 0.6.0b0 and this package
alike; ``shared/spec/local-layout.md`` §5.5)::

    - value:
        loss: 0.5
        'yes': 1.0e-05
      sequence:
        epoch: null
        step: 10
        timestamp: '2026-11-26T19:01:21.662796+08:00'

This module is the one owner of that format. Writing (for ``metrics.MetricWriter``):
:func:`entry_pieces` (the constant text of an entry, from the dumper itself, so keys are quoted
as PyYAML quotes them), :func:`yaml_float` and :func:`spell_floats` (floats as PyYAML spells
them), :func:`spell_times` (local ISO 8601 times with microseconds and UTC offset) and
:func:`format_entries` (columns of values → entries). Reading: :func:`read_entries` (a whole file
as dicts, with a fast path for the canonical shape and PyYAML for anything else),
:func:`count_entries` and :func:`last_entry` (cheap summaries), and :func:`read_columns` (float64
NumPy columns, for the server's series cache; NumPy is imported only when it is called).

Speed: a column is spelled with one call (``orjson.dumps`` when the optional ``orjson`` is
installed, else one ``%r`` format) and falls back to value-by-value spelling only where the fast
spelling can differ from PyYAML's; times are spelled a second at a time; the tokens are
interleaved with the constant text in C where the optional extension ``_speedups`` was built.

Tail rule, shared by every reader: each entry starts with ``- `` at column 0 and nothing else
does; a last entry cut short by a writer killed mid-append (its ``sequence`` not written as far
as the ``timestamp``) is not an entry: the dict readers drop it, the columnar reader leaves it
unconsumed for a later read (it also waits for the final newline, as it indexes files that may
still grow).
"""

from __future__ import annotations

import datetime
import functools
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple

from t9k_em_core.fileio import dump_yaml, load_yaml_text, yaml_error_types

try:  # optional accelerator of float spelling (the ``fast`` extra)
    from orjson import dumps as _orjson_dumps
except ImportError:  # pragma: no cover - depends on the environment
    _orjson_dumps = None

ENTRY_START = b'\n- '
"""Bytes that start every entry but the file's first (which starts at offset 0 with ``- ``)."""

NO_EPOCH = -1
"""The epoch of an entry logged without one, in the integer columns given to
:func:`format_entries` (spelled ``null``)."""

_SLOT = '\x00'  # marks where an entry's variable text goes in its template
_MAX_SECONDS = 64  # seconds one batch may span and still have its timestamps spelled per second
_INF = float('inf')


# --- writing ----------------------------------------------------------------------------------

def entry_template(keys: Iterable[str]) -> str:
    """A ``%``-template of one entry (a one-element YAML block sequence) for ``keys``.

    The template is produced by the YAML dumper itself, so keys are quoted exactly as PyYAML
    quotes them. Its arguments are: one float per key (``%r``), then the epoch text, the step,
    and the three parts of :meth:`TimestampFormatter.parts`. Cached per key tuple.
    """
    return _entry_template(tuple(keys))


@functools.lru_cache(maxsize=1024)
def _entry_template(keys: Tuple[str, ...]) -> str:
    marks = [f'T9KPH{i}X' for i in range(len(keys))]
    epoch, step, stamp = 'T9KPHEPOCHX', 'T9KPHSTEPX', 'T9KPHSTAMPX'
    entry = {'value': dict(zip(keys, marks)),
             'sequence': {'epoch': epoch, 'step': step, 'timestamp': stamp}}
    text = dump_yaml([entry]).replace('%', '%%')
    for mark in marks:
        text = text.replace(f' {mark}\n', ' %r\n', 1)
    text = text.replace(f' {epoch}\n', ' %s\n', 1).replace(f' {step}\n', ' %d\n', 1)
    text = text.replace(f' {stamp}\n', " '%s.%06d%s'\n", 1)
    probe = text % (*[0.5] * len(keys), 'null', 7, '2000-01-01T00:00:00', 1, '+00:00')
    expected = [{'value': dict.fromkeys(keys, 0.5), 'sequence': {
        'epoch': None, 'step': 7, 'timestamp': '2000-01-01T00:00:00.000001+00:00'}}]
    if load_yaml_text(probe) != expected:  # pragma: no cover - a dumper that quotes differently
        raise AssertionError(f'metric entry template for keys {keys!r} could not be built')
    return text


def entry_pieces(keys: Iterable[str]) -> Tuple[bytes, ...]:
    """The constant text of an entry for ``keys``, split where its tokens go (one per key, then
    epoch, step and timestamp): ``len(keys) + 4`` pieces, for :func:`format_entries`."""
    keys = tuple(keys)
    text = entry_template(keys).replace(' %r\n', ' %s\n')
    text = text.replace(' %d\n', ' %s\n').replace("'%s.%06d%s'", "'%s'")
    return tuple(p.encode() for p in (text % ((_SLOT,) * (len(keys) + 3))).split(_SLOT))


def yaml_float(value: float) -> str:
    """A float as PyYAML's safe dumper writes it (``.nan``, ``.inf``, ``1.0e-05``, ``0.5``)."""
    if value != value:
        return '.nan'
    if value == _INF:
        return '.inf'
    if value == -_INF:
        return '-.inf'
    text = repr(value).lower()
    if '.' not in text and 'e' in text:
        text = text.replace('e', '.0e', 1)
    return text


def spell_ints(values: List[int]) -> bytes:
    """``b'1,2,3'``."""
    if _orjson_dumps is not None:
        return _orjson_dumps(values)[1:-1]
    return (b'%d,' * len(values) % tuple(values))[:-1]


def spell_floats(values: List[float]) -> bytes:
    """The floats as PyYAML spells them, comma-separated. orjson (or ``%r``) spells a whole
    column at once; a column where the spellings can differ (an exponent, nan, inf, or orjson's
    ``0.0000…`` for magnitudes in [1e-5, 1e-4), which ``repr`` writes with an exponent) is
    spelled value by value with :func:`yaml_float`."""
    if _orjson_dumps is not None:
        text = _orjson_dumps(values)[1:-1]
        if b'e' not in text and b'n' not in text and b'.0000' not in text:
            return text
    else:
        text = (b'%r,' * len(values) % tuple(values))[:-1]
        if b'e' not in text and b'n' not in text:
            return text
    return ','.join(map(yaml_float, values)).encode()


class TimestampFormatter:
    """Formats ``time.time()`` values as local ISO 8601 times with microseconds and UTC offset
    (as ``datetime.now().astimezone().isoformat()``), caching the work per second."""

    __slots__ = ('_sec', '_prefix', '_offset')

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = ''
        self._offset = ''

    def parts(self, t: float) -> Tuple[str, int, str]:
        """Returns ``(date-time up to seconds, microseconds, offset)`` of ``t``."""
        sec = int(t)
        if sec != self._sec:
            local = datetime.datetime.fromtimestamp(sec).astimezone()
            text = local.isoformat()  # no fraction: sec is whole
            self._prefix, self._offset = text[:19], text[19:]
            self._sec = sec
        return self._prefix, int((t - sec) * 1e6), self._offset


def spell_times(stamps: TimestampFormatter, micros: List[int]) -> bytes:
    """Comma-separated local ISO timestamps with offset (``2026-11-26T16:57:10.460383+08:00``)
    of times in microseconds since the epoch. The usual batch (under a minute, one UTC offset,
    seconds of one digit count) is spelled at once: the digits of all times, then each second's
    digits replaced by its date-time text; any other goes time by time."""
    first, last = min(micros) // 1_000_000, max(micros) // 1_000_000
    zone = stamps.parts(first)[2]
    if (last - first <= _MAX_SECONDS and len(str(first)) == len(str(last))
            and stamps.parts(last)[2] == zone):
        text = b',' + spell_ints(micros) + b','
        for sec in range(first, last + 1):  # ',<digits of sec><6 of µs>' → ',<date-time>.<µs>'
            text = text.replace(b',%d' % sec, b',%s.' % stamps.parts(sec)[0].encode())
        return text[1:].replace(b',', zone.encode() + b',')[:-1]
    spelled = []
    for stamp in micros:
        sec, micro = divmod(stamp, 1_000_000)
        prefix, _, zone = stamps.parts(sec)
        spelled.append(b'%s.%06d%s' % (prefix.encode(), micro, zone.encode()))
    return b','.join(spelled)


def _interleave_py(pieces: Tuple[bytes, ...], columns: Tuple[bytes, ...], count: int) -> bytes:
    """For each of ``count`` entries in turn: ``pieces[0]``, its token of ``columns[0]``,
    ``pieces[1]``, …, ``pieces[-1]`` (each column holds ``count`` comma-separated tokens).
    Interleaved by slice assignment and joined once; ``_speedups.c`` does the same in C."""
    stride = len(pieces) + len(columns)
    out: List[bytes] = [b''] * (count * stride)
    for i, piece in enumerate(pieces):
        out[2 * i::stride] = [piece] * count
    for i, column in enumerate(columns):
        out[2 * i + 1::stride] = column.split(b',')
    return b''.join(out)


try:  # optional C accelerator (built at install where a C compiler is present; setup.py)
    from t9k_em_core._speedups import interleave as _interleave
except ImportError:  # pragma: no cover - depends on the installation
    _interleave = _interleave_py


def format_entries(pieces: Tuple[bytes, ...], stamps: TimestampFormatter,
                   values: List[List[float]], epochs: List[int], steps: List[int],
                   micros: List[int]) -> bytes:
    """The text of ``len(steps)`` entries of one key tuple (``pieces`` from
    :func:`entry_pieces`), given column by column: one list per key, the epochs
    (:data:`NO_EPOCH` for none), the steps, and the times in microseconds since the epoch. Each
    column is spelled with one call, then the tokens are interleaved with the pieces."""
    columns = [spell_floats(column) for column in values]
    columns.append(spell_ints(epochs).replace(b'%d' % NO_EPOCH, b'null'))
    columns.append(spell_ints(steps))
    columns.append(spell_times(stamps, micros))
    return _interleave(pieces, tuple(columns), len(steps))


# --- reading entries as dicts -----------------------------------------------------------------

def is_entry(entry: Any) -> bool:
    """Whether a YAML-loaded item is a whole entry (a ``value`` map and a ``sequence`` that got as
    far as its ``timestamp``'s value); the last item of a file cut mid-append is not."""
    if not isinstance(entry, dict) or not isinstance(entry.get('value'), dict):
        return False
    sequence = entry.get('sequence')
    return (isinstance(sequence, dict) and 'step' in sequence
            and sequence.get('timestamp') is not None)


def _trim_partial_entry(text: str) -> str:
    """Drops the last entry (cut short, or unparsable) from a metric file's text."""
    cut = text.rfind('\n- ')
    return text[:cut + 1] if cut >= 0 else ''


def _load_whole_entries(text: str) -> List[Any]:
    """PyYAML's reading of ``text`` without a last entry cut short (bounded: a document whose
    aliases would expand it beyond its own size is dropped like a bad tail)."""
    from t9k_em_core.bounded_yaml import DOCUMENT
    errors = yaml_error_types()
    while text:
        try:
            entries = list(load_yaml_text(text, DOCUMENT.scaled_to(len(text))) or [])
        except errors:
            text = _trim_partial_entry(text)
            continue
        if entries and not is_entry(entries[-1]):
            entries.pop()
        return entries
    return []


# Keys are read without YAML only when PyYAML would read them as these plain strings.
_KEY = rb'[A-Za-z_][A-Za-z0-9_./-]*'
_PLAIN_KEY = re.compile(_KEY.decode() + r'\Z')
_YAML_WORDS = frozenset(('yes', 'no', 'true', 'false', 'on', 'off', 'null'))
_YAML_FLOAT = re.compile(r'-?[0-9]+\.[0-9]*(?:e[-+][0-9]+)?\Z')
_YAML_INT = re.compile(r'(?:0|-?[1-9][0-9]*)\Z')
_CANONICAL_SPECIALS = {'.nan': math.nan, '.inf': math.inf, '-.inf': -math.inf}


def parse_canonical(text: str) -> Optional[List[Dict[str, Any]]]:
    """Parses metric file text written in the canonical shape without YAML (several times
    faster); None when any line differs from that shape (the caller then uses PyYAML)."""
    lines = text.split('\n')
    if lines[-1] == '':
        lines.pop()
    entries: List[Dict[str, Any]] = []
    i, n = 0, len(lines)
    try:
        while i < n:
            line = lines[i]
            i += 1
            if line == '- value: {}':
                value: Dict[str, float] = {}
            elif line == '- value:':
                value = {}
                while lines[i].startswith('    '):
                    key, sep, raw = lines[i][4:].partition(': ')
                    if not sep or not _PLAIN_KEY.match(key) or key.lower() in _YAML_WORDS:
                        return None
                    if _YAML_FLOAT.match(raw):
                        value[key] = float(raw)
                    elif raw in _CANONICAL_SPECIALS:
                        value[key] = _CANONICAL_SPECIALS[raw]
                    else:
                        return None
                    i += 1
            else:
                return None
            sequence, epoch, step, stamp = lines[i:i + 4]
            i += 4
            if sequence != '  sequence:' or not (epoch.startswith('    epoch: ') and
                                                  step.startswith('    step: ') and
                                                  stamp.startswith("    timestamp: '") and
                                                  stamp.endswith("'")):
                return None
            epoch, step, stamp = epoch[11:], step[10:], stamp[16:-1]
            if (epoch != 'null' and not _YAML_INT.match(epoch)) or not _YAML_INT.match(step) \
                    or "'" in stamp or not stamp:
                return None
            entries.append({'value': value, 'sequence': {
                'epoch': None if epoch == 'null' else int(epoch), 'step': int(step),
                'timestamp': stamp}})
    except (IndexError, ValueError):
        return None
    return entries


def write_entries(path: str, entries: List[Dict[str, Any]]) -> None:
    """Writes a whole metric file from entry dicts of any shape (a Run constructed with
    ``metrics=``, as in 0.6.0b0), spelled by PyYAML (the writer's entries read the same: the
    tests keep them byte-identical)."""
    with open(path, 'w', encoding='utf-8') as f:
        f.write(dump_yaml(list(entries)))


def read_entries(path: str) -> List[Dict[str, Any]]:
    """Entries of a metric file; drops a last entry cut short by a writer killed mid-append."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    entries = parse_canonical(text)
    return entries if entries is not None else _load_whole_entries(text)


def count_entries(path: str, chunk_size: int = 1 << 20) -> int:
    """Number of entries of a metric file, counted without parsing YAML (exact for files of
    either SDK; a last entry cut short by a killed writer is counted too)."""
    with open(path, 'rb') as f:
        head = f.read(2)
        count = int(head == b'- ')
        tail = head[-1:]
        for chunk in iter(lambda: f.read(chunk_size), b''):
            data = tail + chunk
            count += data.count(ENTRY_START)
            tail = data[-2:]
    return count


def last_entry(path: str, tail_size: int = 1 << 13) -> Optional[Dict[str, Any]]:
    """The last whole entry of a metric file, parsed from the file's tail only."""
    size = os.path.getsize(path)
    while True:
        start = max(size - tail_size, 0)
        with open(path, 'rb') as f:
            f.seek(start)
            data = f.read()
        cut = data.find(ENTRY_START) + 1 if start else 0
        text = data[cut:].decode('utf-8') if cut or not start else ''
        entries = [e for e in _load_whole_entries(text) if is_entry(e)]
        if entries:
            return entries[-1]
        if not start:
            return None
        tail_size *= 4  # no whole entry in the tail: read more


# --- rewinding ---------------------------------------------------------------------------------

_SEQUENCE_STEP = re.compile(rb'\n  sequence:\n    epoch: [^\n]*\n    step: ([0-9]+)\n'
                            rb'    timestamp: [^\n]+\n')


def _entry_step(data: bytes, begin: int, end: int) -> Optional[int]:
    """Step of the entry ``data[begin:end]`` (from its ``- `` to the next), None when it is not
    a whole entry (a last entry cut mid-append). The canonical shape is matched without YAML."""
    match = _SEQUENCE_STEP.search(data, begin, end)
    if match is not None and match.end() == end:
        return int(match.group(1))
    try:
        loaded = load_yaml_text(data[begin:end].decode('utf-8', 'replace'))
    except yaml_error_types():
        return None
    if not (isinstance(loaded, list) and len(loaded) == 1 and is_entry(loaded[0])):
        return None
    step = loaded[0]['sequence']['step']
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def cut_offset(path: str, step: int, block_size: int = 1 << 16) -> int:
    """Length of a metric file without its last entries of step > ``step``: the end of the last
    entry with step ≤ ``step`` (0 when there is none), found by reading the file backward,
    ``block_size`` bytes at a time, so the cost grows with what is dropped, not with the file.

    Entries are taken to be in step order (as a training loop logs them): a block whose first
    entry has a step > ``step`` is dropped whole, and only the block where the steps cross
    ``step`` is read entry by entry. A last entry cut short mid-append is dropped as well."""
    with open(path, 'rb') as f:
        cut = f.seek(0, os.SEEK_END)
        start, data = cut, b''  # data = the file's bytes [start, start + len(data))
        checked = -1  # the start of the block whose first entry was checked
        while cut > 0:
            end = cut - start
            boundary = data.rfind(ENTRY_START, 0, end) + 1  # the last entry before the cut
            if boundary == 0 and start > 0:  # it begins before data: read the block before
                read = min(start, max(block_size, end))
                start -= read
                f.seek(start)
                data = f.read(read) + data[:end]
                continue
            first = data.find(ENTRY_START) + 1 if start else 0  # the block's first whole entry
            if checked != start and 0 < first < boundary:
                checked = start
                first_step = _entry_step(data, first, data.find(ENTRY_START, first) + 1)
                if first_step is not None and first_step > step:
                    cut = start + first  # the whole block is above step
                    continue
            entry_step = _entry_step(data, boundary, end)
            if entry_step is not None and entry_step <= step:
                return cut
            cut = start + boundary
        return 0


# --- reading entries as columns (NumPy) -------------------------------------------------------

PIECE = 4 << 20
"""Bytes :func:`read_columns` parses at a time (its memory stays bounded for huge files)."""

_ENTRY = re.compile(
    rb'- value:\n((?:    [^\n]*\n)*)  sequence:\n'
    rb'    epoch: ([^\n]*)\n    step: ([^\n]*)\n    timestamp: ([^\n]*)\n')
_VALUE_LINE = re.compile(rb'    (' + _KEY + rb'): ([^\n]*)\n')
_SPECIAL_FLOATS = {b'.nan': math.nan, b'.NaN': math.nan, b'.NAN': math.nan, b'.inf': math.inf,
                   b'.Inf': math.inf, b'-.inf': -math.inf, b'-.Inf': -math.inf,
                   b'+.inf': math.inf, b'null': math.nan, b'~': math.nan}


@functools.lru_cache(maxsize=None)
def _numpy() -> Any:
    import numpy  # the server's dependency, not the core's: only the columnar reader needs it
    return numpy


@dataclass
class Columns:
    """Entries column by column: float64 NumPy arrays of equal length, NaN where an entry lacks
    a value (and for a missing epoch); ``time`` in seconds since the epoch."""

    step: Any
    epoch: Any
    time: Any
    values: Dict[str, Any]

    @property
    def count(self) -> int:
        """Number of entries."""
        return int(self.step.shape[0])

    @classmethod
    def empty(cls) -> 'Columns':
        """No entries."""
        np = _numpy()
        return cls(np.zeros(0), np.zeros(0), np.zeros(0), {})

    @classmethod
    def concat(cls, parts: List['Columns']) -> 'Columns':
        """The entries of ``parts`` one after the other (names in first-seen order)."""
        np = _numpy()
        parts = [p for p in parts if p.count]
        if len(parts) == 1 and type(parts[0]) is cls:
            return parts[0]
        if not parts:
            return cls.empty()
        names = list(dict.fromkeys(n for p in parts for n in p.values))
        return cls(*(np.concatenate([getattr(p, a) for p in parts]) for a in ('step', 'epoch', 'time')),
                   {n: np.concatenate([p.values.get(n, np.full(p.count, np.nan)) for p in parts])
                    for n in names})


class _Rows:
    """Row-wise accumulator for entries parsed one by one (the slow path)."""

    def __init__(self) -> None:
        self.step: List[float] = []
        self.epoch: List[float] = []
        self.time: List[float] = []
        self.values: Dict[str, Tuple[List[int], List[float]]] = {}

    def add(self, step: float, epoch: float, time: float, values: Dict[str, float]) -> None:
        row = len(self.step)
        self.step.append(step)
        self.epoch.append(epoch)
        self.time.append(time)
        for name, value in values.items():
            rows, vals = self.values.setdefault(name, ([], []))
            rows.append(row)
            vals.append(value)

    def columns(self) -> Columns:
        np = _numpy()
        n = len(self.step)
        values = {}
        for name, (rows, vals) in self.values.items():
            column = np.full(n, np.nan)
            column[np.asarray(rows, dtype=np.int64)] = vals
            values[name] = column
        f8 = np.dtype('<f8')
        return Columns(np.asarray(self.step, dtype=f8), np.asarray(self.epoch, dtype=f8),
                       np.asarray(self.time, dtype=f8), values)


def _number(raw: bytes) -> float:
    special = _SPECIAL_FLOATS.get(raw)
    if special is not None:
        return special
    if raw[:1] in (b"'", b'"'):
        raw = raw[1:-1]
    return float(raw)


def _numbers(raw: Tuple[bytes, ...]) -> Any:
    """A float64 column from YAML scalars; vectorised unless special values need care."""
    np = _numpy()
    arr = np.array(raw)
    nulls = arr == b'null'
    if nulls.any():
        arr = np.where(nulls, b'nan', arr)
    try:
        return arr.astype('<f8')
    except ValueError:
        return np.array([_safe_number(v) for v in raw], dtype='<f8')


def _safe_number(raw: bytes) -> float:
    try:
        return _number(raw)
    except ValueError:
        return math.nan


def _timestamp(raw: bytes) -> float:
    if raw[:1] in (b"'", b'"'):
        raw = raw[1:-1]
    return datetime.datetime.fromisoformat(raw.decode()).timestamp()


def _timestamps(raw: Tuple[bytes, ...]) -> Any:
    """Seconds since the epoch of quoted ISO timestamps, vectorised for the fixed form this
    module writes, ``'YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM'``; anything else goes through
    ``fromisoformat``."""
    np = _numpy()
    arr = np.array(raw)
    if arr.dtype.itemsize == 34 and np.all(np.char.str_len(arr) == 34):
        m = arr.view(np.uint8).reshape(-1, 34)
        fixed = {0: 39, 5: 45, 8: 45, 11: 84, 14: 58, 17: 58, 20: 46, 30: 58, 33: 39}
        if all(np.all(m[:, i] == c) for i, c in fixed.items()) and np.all((m[:, 27] == 43) | (m[:, 27] == 45)):

            def num(a: int, b: int) -> Any:
                out = m[:, a].astype(np.int64) - 48
                for i in range(a + 1, b):
                    out = out * 10 + (m[:, i].astype(np.int64) - 48)
                return out

            year, month, day = num(1, 5), num(6, 8), num(9, 11)
            y = year - (month <= 2)
            era = y // 400
            yoe = y - era * 400
            doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
            days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
            sign = np.where(m[:, 27] == 45, -1, 1)
            offset = sign * (num(28, 30) * 3600 + num(31, 33) * 60)
            seconds = days * 86400 + num(12, 14) * 3600 + num(15, 17) * 60 + num(18, 20) - offset
            return seconds + num(21, 27) / 1e6
    return np.array([_safe_time(v) for v in raw], dtype='<f8')


def _safe_time(raw: bytes) -> float:
    try:
        return _timestamp(raw)
    except ValueError:
        return math.nan


def _any_number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _any_time(value: Any) -> float:
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    try:
        return datetime.datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return math.nan


def _add_loaded(rows: _Rows, entry: Dict[str, Any]) -> None:
    sequence = entry['sequence']
    rows.add(_any_number(sequence.get('step')), _any_number(sequence.get('epoch')),
             _any_time(sequence.get('timestamp')),
             {str(k): _any_number(v) for k, v in entry['value'].items()})


@functools.lru_cache(maxsize=64)
def _shape_of(names: Tuple[bytes, ...]) -> 're.Pattern[bytes]':
    """A regex matching one whole entry whose values are exactly ``names``, in that order."""
    values = b''.join(b'    ' + re.escape(n) + rb': ([^\n]*)\n' for n in names)
    return re.compile(rb'^- value:\n' + values + rb'  sequence:\n    epoch: ([^\n]*)\n'
                      rb'    step: ([^\n]*)\n    timestamp: ([^\n]*)\n', re.M)


def _parse_uniform(piece: bytes) -> Optional[Columns]:
    """Columnar parse of whole entries that all share the first entry's exact shape."""
    first = _ENTRY.match(piece)
    if first is None:
        return None
    pairs = _VALUE_LINE.findall(first.group(1))
    if not pairs or len(pairs) != first.group(1).count(b'\n'):
        return None
    names = tuple(k for k, _ in pairs)
    matches = _shape_of(names).findall(piece)
    if len(matches) != piece.count(ENTRY_START) + 1:
        return None
    columns = list(zip(*matches))
    k = len(names)
    return Columns(_numbers(columns[k + 1]), _numbers(columns[k]), _timestamps(columns[k + 2]),
                   {n.decode(): _numbers(columns[i]) for i, n in enumerate(names)})


def _parse_entrywise(data: bytes, final: bool, yaml_limits: Any) -> Tuple[Columns, int]:
    """Entry by entry (regex, else PyYAML within ``yaml_limits``). With ``final``, an incomplete
    last entry is left unconsumed; corrupt entries elsewhere are skipped."""
    rows = _Rows()
    names: Dict[bytes, str] = {}
    pos, end = 0, len(data)
    while pos < end:
        match = _ENTRY.match(data, pos)
        if match is not None:
            block = match.group(1)
            pairs = _VALUE_LINE.findall(block)
            if len(pairs) == block.count(b'\n'):
                try:
                    values = {names.get(k) or names.setdefault(k, k.decode()): _number(v)
                              for k, v in pairs}
                    rows.add(_number(match.group(3)), _number(match.group(2)),
                             _timestamp(match.group(4)), values)
                    pos = match.end()
                    continue
                except ValueError:
                    pass
        next_item = data.find(ENTRY_START, pos + 1)
        region_end = end if next_item < 0 else next_item + 1
        try:
            loaded = load_yaml_text(data[pos:region_end].decode('utf-8', 'replace'), yaml_limits)
        except yaml_error_types():
            loaded = None
        entries = loaded if isinstance(loaded, list) else []
        complete = bool(entries) and all(is_entry(e) for e in entries)
        if final and region_end == end and (not complete or not data.endswith(b'\n')):
            break  # the last entry is incomplete: leave it for a later read
        for entry in entries:  # a corrupt entry in the middle is skipped
            if is_entry(entry):
                _add_loaded(rows, entry)
        pos = region_end
    return rows.columns(), pos


def _parse_complete(piece: bytes, yaml_limits: Any) -> Columns:
    """Entries of a piece known to end at an entry boundary."""
    uniform = _parse_uniform(piece)
    return uniform if uniform is not None else _parse_entrywise(piece, False, yaml_limits)[0]


def read_columns(chunks: Iterable[bytes], yaml_limits: Any = None) -> Tuple[Columns, int]:
    """Parses a metric file's bytes (from an entry boundary on) into columns, :data:`PIECE`
    bytes at a time. Entries in the canonical shape are parsed by regular expressions and
    converted by NumPy a column at a time; anything else entry by entry (PyYAML where needed,
    within ``yaml_limits``, default ``bounded_yaml.DOCUMENT``).

    Returns the entries and the number of bytes consumed, which stops before a last entry cut
    short mid-write. Needs NumPy.
    """
    parts: List[Columns] = []
    consumed = 0
    pending: List[bytes] = []
    size = 0

    def drain(buffer: bytes, final: bool) -> bytes:
        nonlocal consumed
        start = 0
        while final or len(buffer) - start >= PIECE:
            cut = buffer.rfind(ENTRY_START, start, start + PIECE) if len(buffer) - start > PIECE else -1
            if cut <= start:
                cut = buffer.rfind(ENTRY_START, start)
            if cut <= start:
                break
            parts.append(_parse_complete(buffer[start:cut + 1], yaml_limits))
            consumed += cut + 1 - start
            start = cut + 1
        return buffer[start:]

    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= 2 * PIECE:
            rest = drain(b''.join(pending), final=False)
            pending, size = [rest], len(rest)
    rest = drain(b''.join(pending), final=True)
    tail, used = _parse_entrywise(rest, True, yaml_limits)
    parts.append(tail)
    return Columns.concat(parts), consumed + used
