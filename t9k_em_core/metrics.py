"""``MetricWriter``: the buffered, durable writer behind ``Run.log``.

The caller's thread validates and packs one entry into a small ``bytes`` record (``struct``
does the float conversion and the type check in C, and a ``bytes`` object costs the garbage
collector nothing), then appends it to a list. One daemon flusher thread per process formats
buffered records as YAML text and appends them to ``metrics/<type>.yaml`` at least every
:data:`FLUSH_INTERVAL` seconds, and sooner when a buffer holds :data:`KICK_AT` entries; a caller
that outruns the flusher up to :data:`HARD_LIMIT` entries flushes its own buffer (back-pressure
bounds memory). Files are only ever appended to, never rewritten.

Floats are spelled as PyYAML spells them. When ``orjson`` is installed (the ``fast`` extra) its
float formatting is used for the common case (about 10× faster than ``repr``, same shortest
digits); entries where the spellings can differ (an exponent, NaN, infinities, or orjson's
``0.0000…`` for magnitudes in [1e-5, 1e-4), which ``repr`` writes with an exponent) go through the
YAML spelling.
"""

from __future__ import annotations

import operator
import os
import struct
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from t9k_em_core import layout, lifecycle

try:  # optional accelerator, see the module docstring
    from orjson import dumps as _orjson_dumps
except ImportError:  # pragma: no cover - depends on the environment
    _orjson_dumps = None

FLUSH_INTERVAL = 0.5
"""Seconds between two flushes of every open writer."""

KICK_AT = 2048
"""Buffered entries that wake the flusher before its interval is over."""

HARD_LIMIT = 8192
"""Buffered entries at which ``log`` flushes on the caller's thread (when the flusher falls
behind), so memory stays bounded whatever the logging rate."""

TYPE_ALIASES = {
    'train': 'train', 'training': 'train',
    'val': 'val', 'validate': 'val', 'validation': 'val',
    'test': 'test', 'testing': 'test', 'eval': 'test', 'evaluate': 'test', 'evaluation': 'test',
}

MAX_TEMPLATES = 4096
"""Entry templates looked up per writer (one per metric type and key tuple); the lookup table
starts afresh when a Run logs more distinct key sets than this."""

_type = type
_time = time.time
_TID = struct.Struct('<i')  # every record starts with the id of its template
_NO_EPOCH = -1  # an epoch of None in a record


def canonical_metric_type(metric_type: Any) -> str:
    """Maps aliases (``'training'`` → ``'train'`` …) and checks a custom type is a valid file stem."""
    if not isinstance(metric_type, str):
        raise TypeError(f'Metric type must be a str, got {_type(metric_type).__name__}: {metric_type!r}')
    canonical = TYPE_ALIASES.get(metric_type, metric_type)
    problem = layout.metric_type_error(canonical)
    if problem:
        raise ValueError(f'Invalid metric type {metric_type!r}: {problem}')
    return canonical


def to_float(key: Any, value: Any) -> float:
    """Converts one metric value (number, NumPy scalar, one-element tensor) to ``float``."""
    if isinstance(value, (str, bytes, bytearray)) or value is None:
        raise TypeError(f'Metric {key!r} is not numeric: {value!r}')
    try:
        return float(value)
    except (TypeError, ValueError) as e:
        item = getattr(value, 'item', None)
        if item is not None:
            try:
                return float(item())
            except (TypeError, ValueError, RuntimeError):
                pass
        raise TypeError(f'Metric {key!r} is not numeric (a number, a NumPy scalar or a '
                        f'one-element tensor is expected): {value!r}') from e


def to_index(name: str, value: Any) -> int:
    """Validates a ``step``/``epoch``: a non-negative integer (NumPy integers accepted)."""
    if isinstance(value, bool):
        raise TypeError(f'{name} must be a non-negative integer, got a bool: {value!r}')
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f'{name} must be a non-negative integer, got '
                        f'{_type(value).__name__}: {value!r}') from None
    if number < 0:
        raise ValueError(f'{name} must be a non-negative integer, got {number}')
    if number >= 2 ** 63:
        raise ValueError(f'{name} must be below 2**63, got {number}')
    return number


def _metric_dict(metrics: Any) -> Dict[str, Any]:
    """Checks ``metrics`` is a mapping of str to anything; returns it."""
    try:
        keys = tuple(metrics)
        metrics.values()
    except (TypeError, AttributeError):
        raise TypeError(f'metrics must be a dict of metric name to number, got '
                        f'{_type(metrics).__name__}') from None
    for key in keys:
        if not isinstance(key, str):
            raise TypeError(f'Metric names must be str, got {_type(key).__name__}: {key!r}')
    return metrics


class _Template:
    """Packing and formatting of the entries that share a metric type and key tuple."""

    __slots__ = ('tid', 'generation', 'metric_type', 'width', 'pack', 'iter_unpack', 'text',
                 'text_repr', 'count_e', 'count_n')

    def __init__(self, tid: int, generation: int, metric_type: str, keys: Tuple[str, ...]) -> None:
        self.tid = tid
        self.generation = generation
        self.metric_type = metric_type
        self.width = len(keys)
        record = struct.Struct(f'<iqqd{len(keys)}d')  # tid, step, epoch, time, values
        self.pack = record.pack
        self.iter_unpack = record.iter_unpack
        text = layout.metric_entry_template(keys).encode()
        self.text_repr = text
        self.text = text.replace(b' %r\n', b' %s\n')
        # 'e' and 'n' occur in a float's repr only for exponents, nan and inf, so any extra
        # occurrence in a formatted entry means a value needs PyYAML's spelling.
        self.count_e = text.count(b'e')
        self.count_n = text.count(b'n')

    def format(self, values: List[float], epoch: bytes, step: int, stamp: Tuple[bytes, int, bytes]) -> bytes:
        """One entry as UTF-8 YAML text, with ``repr`` spelling the floats where PyYAML does."""
        text = self.text_repr % (*values, epoch, step, *stamp)
        if text.count(b'e') == self.count_e and text.count(b'n') == self.count_n + (epoch == b'null'):
            return text
        return self.text % (*[layout.yaml_float(v).encode() for v in values], epoch, step, *stamp)


def _runs(chunk: List[bytes]) -> Iterable[Tuple[int, bytes]]:
    """Splits buffered records into runs of consecutive records of one template:
    ``(template id, joined records)``. A chunk of one template (the common case at high logging
    rates) is recognised with a few C-level comparisons."""
    first, count = chunk[0], len(chunk)
    size = len(first)
    blob = b''.join(chunk)
    if len(blob) == size * count and min(map(len, chunk)) == size and all(
            blob[i::size] == first[i:i + 1] * count for i in range(_TID.size)):
        yield _TID.unpack_from(first)[0], blob
        return
    start, tid_bytes = 0, first[:_TID.size]
    for index, record in enumerate(chunk):
        if record[:_TID.size] != tid_bytes:
            yield _TID.unpack(tid_bytes)[0], b''.join(chunk[start:index])
            start, tid_bytes = index, record[:_TID.size]
    yield _TID.unpack(tid_bytes)[0], b''.join(chunk[start:])


def _pack_checked(template: _Template, metrics: Any, step: int, epoch: int) -> bytes:
    """Packs a record after checking each part, so that an error names what is wrong."""
    values = [to_float(k, v) for k, v in _metric_dict(metrics).items()]
    to_index('step', step)
    if epoch != _NO_EPOCH:
        to_index('epoch', epoch)
    return template.pack(template.tid, step, epoch, _time(), *values)


class _Discard(list):
    """The buffer of an inert writer: drops what is appended."""

    def append(self, item: Any) -> None:  # noqa: D102 - list API
        pass


class MetricWriter:
    """Buffers validated metric entries of one Run and appends them to its metric files.

    ``on_new_type(types)`` is called (on the flusher thread) after the first entry of a metric
    type reached the disk, with every type on disk in first-written order; ``on_written()``
    after each successful append.
    """

    def __init__(self, storage: layout.RunStorage, known_types: Iterable[str] = (),
                 on_new_type: Optional[Callable[[List[str]], None]] = None,
                 on_written: Optional[Callable[[], None]] = None) -> None:
        self._storage = storage
        self._inert = storage.inert
        self._buf: List[bytes] = _Discard() if self._inert else []
        self._templates: Dict[Tuple[Any, Tuple[str, ...]], _Template] = {}
        self._by_id: Dict[int, _Template] = {}
        self._next_tid = 0
        self._generation = 0
        self._types_on_disk: List[str] = list(known_types)
        self._on_new_type = on_new_type
        self._on_written = on_written
        self._io_lock = threading.RLock()
        self._template_lock = threading.Lock()
        self._stamps = layout.TimestampFormatter()
        self._pending: Dict[str, List[bytes]] = {}
        self._warned = False
        self._kick_at = KICK_AT
        self._closed = False
        if not self._inert:
            _FLUSHER.register(self)

    # --- caller's thread ----------------------------------------------------------------------

    def log(self, type: str, metrics: Dict[str, Any], step: int, epoch: Optional[int] = None) -> None:
        """Validates one set of metrics and buffers it; see ``Run.log``."""
        try:
            template = self._templates[type, tuple(metrics)]
        except (KeyError, TypeError):
            template = self._new_template(type, metrics)
        if step.__class__ is not int or step < 0:
            step = to_index('step', step)
        if epoch is None:
            epoch = _NO_EPOCH
        elif epoch.__class__ is not int or epoch < 0:
            epoch = to_index('epoch', epoch)
        try:
            record = template.pack(template.tid, step, epoch, _time(), *metrics.values())
        except Exception:  # noqa: BLE001 - the slow path names what failed
            record = _pack_checked(template, metrics, step, epoch)
        buf = self._buf
        buf.append(record)
        if len(buf) >= self._kick_at:
            self._kick()

    def _new_template(self, metric_type: Any, metrics: Any) -> _Template:
        canonical = canonical_metric_type(metric_type)
        keys = tuple(_metric_dict(metrics))
        with self._template_lock:
            if len(self._templates) >= MAX_TEMPLATES:
                self._templates = {}  # buffered records still find theirs in _by_id
                self._generation += 1
            template = _Template(self._next_tid, self._generation, canonical, keys)
            self._next_tid += 1
            self._by_id[template.tid] = template
            self._templates[metric_type, keys] = template
        return template

    def _kick(self) -> None:
        if self._closed:
            self._closed = False
            self._kick_at = KICK_AT
            _FLUSHER.register(self)
            print('EM WARNING: a metric was logged after Run.finish(); it is still written.',
                  file=sys.stderr)
        if len(self._buf) >= HARD_LIMIT:
            self.flush()  # back-pressure: the flusher thread is behind
        else:
            self._kick_at = HARD_LIMIT  # until the next flush, wake the flusher only once
            _FLUSHER.wake()

    # --- flusher (or any thread) --------------------------------------------------------------

    def flush(self) -> None:
        """Writes every buffered entry to disk now (thread-safe; keeps the logged order)."""
        with lifecycle.signals_deferred(), self._io_lock:
            buf = self._buf
            count = len(buf)
            chunk = buf[:count]
            del buf[:count]
            self._kick_at = 1 if self._closed else KICK_AT
            texts = self._format(chunk) if chunk else {}
            for metric_type, pending in self._pending.items():
                texts[metric_type] = pending + texts.get(metric_type, [])
            self._pending = {}
            for metric_type, parts in texts.items():
                self._write(metric_type, parts)

    def _format(self, chunk: List[bytes]) -> Dict[str, List[bytes]]:
        texts: Dict[str, List[bytes]] = {}
        by_id = self._by_id
        for tid, blob in _runs(chunk):
            tmpl = by_id[tid]
            self._format_run(tmpl, blob, texts.setdefault(tmpl.metric_type, []))
        if len(by_id) > 2 * MAX_TEMPLATES:  # forget templates two lookup tables old
            with self._template_lock:
                oldest = self._generation - 1
                self._by_id = {tid: t for tid, t in self._by_id.items() if t.generation >= oldest}
        return texts

    def _format_run(self, tmpl: _Template, blob: bytes, out: List[bytes]) -> None:
        """Appends to ``out`` the YAML text of each record of ``blob`` (all of ``tmpl``)."""
        dumps = _orjson_dumps if tmpl.width else None
        text, fmt, append = tmpl.text, tmpl.format, out.append
        last_sec = -1
        for _, step, epoch, stamp, *values in tmpl.iter_unpack(blob):
            sec = int(stamp)
            if sec != last_sec:  # the date-time text changes once a second
                prefix, _, zone = self._stamps.parts(stamp)
                prefix, zone = prefix.encode(), zone.encode()
                last_sec = sec
            epoch_text = b'null' if epoch == _NO_EPOCH else b'%d' % epoch
            if dumps is not None:
                numbers = dumps(values)
                if b'e' not in numbers and b'n' not in numbers and b'.0000' not in numbers:
                    append(text % (*numbers[1:-1].split(b','), epoch_text, step, prefix,
                                   int((stamp - sec) * 1e6), zone))
                    continue
            append(fmt(values, epoch_text, step, (prefix, int((stamp - sec) * 1e6), zone)))

    def _write(self, metric_type: str, parts: List[bytes]) -> None:
        try:
            self._storage.append_metrics(metric_type, b''.join(parts))
        except OSError as e:
            self._pending[metric_type] = parts
            if not self._warned:
                self._warned = True
                print(f'EM WARNING: cannot write metrics of type {metric_type!r} yet ({e}); '
                      'they are kept in memory and retried.', file=sys.stderr)
            return
        if self._on_written is not None:
            self._on_written()
        if metric_type not in self._types_on_disk:
            self._types_on_disk.append(metric_type)
            if self._on_new_type is not None:
                try:
                    self._on_new_type(list(self._types_on_disk))
                except OSError as e:
                    print(f'EM WARNING: cannot update index.yaml: {e}', file=sys.stderr)

    def close(self) -> None:
        """Flushes and stops periodic flushing. A later ``log`` reopens the writer (with a warning)."""
        self.flush()
        _FLUSHER.unregister(self)
        self._closed = True
        self._kick_at = 1


class _Flusher:
    """The one daemon thread of a process that flushes every open :class:`MetricWriter`."""

    def __init__(self) -> None:
        self._writers: set = set()
        self._lock = threading.RLock()  # re-entrant: the SIGTERM handler ends Runs
        self._event = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def register(self, writer: MetricWriter) -> None:
        with self._lock:
            self._writers.add(writer)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name='t9k-em-flusher',
                                                daemon=True)
                self._thread.start()

    def unregister(self, writer: MetricWriter) -> None:
        with self._lock:
            self._writers.discard(writer)

    def wake(self) -> None:
        self._event.set()

    def flush_all(self) -> None:
        """Flushes every open writer on the calling thread."""
        with self._lock:
            writers = list(self._writers)
        for writer in writers:
            writer.flush()

    def _loop(self) -> None:
        while True:
            self._event.wait(FLUSH_INTERVAL)
            self._event.clear()
            try:
                self.flush_all()
            except Exception as e:  # never let the thread die: the next round retries
                print(f'EM WARNING: flushing metrics failed: {e!r}', file=sys.stderr)

    def after_fork_in_child(self) -> None:
        """A forked child does not write its parent's Runs."""
        self._writers = set()
        self._lock = threading.RLock()  # re-entrant: the SIGTERM handler ends Runs
        self._event = threading.Event()
        self._thread = None


_FLUSHER = _Flusher()
if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_FLUSHER.after_fork_in_child)


def flush_all() -> None:
    """Flushes the metric buffers of every open Run of this process."""
    _FLUSHER.flush_all()
