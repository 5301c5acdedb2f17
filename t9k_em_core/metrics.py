"""``MetricWriter``: the buffered, durable writer behind ``Run.log``.

The caller's thread validates and packs one entry into a small ``bytes`` record (``struct``
does the float conversion and the type check in C, and a ``bytes`` object costs the garbage
collector nothing), then appends it to a list. Where the optional C extension
``t9k_em_core._speedups`` was built at install (``setup.py``; a C compiler is needed), its ``pack``
does the lookup, checks and packing of the usual call in one C call (``_pack_py`` is the same in
Python); any other call takes the slow path, which names what is wrong. One daemon flusher
thread per process formats buffered records as YAML text and appends them to
``metrics/<type>.yaml`` at least every :data:`FLUSH_INTERVAL` seconds, and sooner when a buffer
holds :data:`KICK_AT` entries; a caller that outruns the flusher up to :data:`HARD_LIMIT` entries
flushes its own buffer (back-pressure bounds memory). Files are only ever appended to, never rewritten.

The text is spelled column by column, not entry by entry: the records of one template are one
buffer of 8-byte fields, so each field (a metric, the epochs, the steps, the times) is one strided
slice of it, handed to :func:`t9k_em_core.metric_file.format_entries` (the owner of the file
format), which spells each column with one call and interleaves the tokens with the entry's
constant text.

A flush first groups its records by template (so that ``train`` and ``val`` logged in turn are
spelled as two sets of columns, not entry by entry; see :func:`_runs`), and appends each
type's text as soon as :data:`_WRITE_AT` bytes of it are spelled (while still in cache).
"""

from __future__ import annotations

import contextlib
import itertools
import operator
import os
import struct
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from t9k_em_core import lifecycle, metric_file, naming, run_files

FLUSH_INTERVAL = 0.5
"""Seconds between two flushes of every open writer."""

KICK_AT = 512
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
_time_ns = time.time_ns
_TID = struct.Struct('=q')  # records start with their template's id; native order, as memoryview reads
_tid_bytes = operator.itemgetter(slice(0, _TID.size))
_NO_EPOCH = metric_file.NO_EPOCH  # an epoch of None in a record
_HEAD = 4  # record fields before the values: template id, step, epoch, time (µs since the epoch)
_SPELL_AT_ONCE = 512  # records spelled in one go (bounds the memory a flush takes)
_WRITE_AT = 1 << 18  # bytes of one metric type's text appended at once


def canonical_metric_type(metric_type: Any) -> str:
    """Maps aliases (``'training'`` → ``'train'`` …) and checks a custom type is a valid file stem."""
    if not isinstance(metric_type, str):
        raise TypeError(f'Metric type must be a str, got {_type(metric_type).__name__}: {metric_type!r}')
    canonical = TYPE_ALIASES.get(metric_type, metric_type)
    problem = naming.metric_type_error(canonical)
    if problem:
        raise ValueError(f'Invalid metric type {metric_type!r}: {problem}')
    return canonical


def to_float(key: Any, value: Any) -> float:
    """Converts one metric value (number, NumPy scalar, one-element tensor) to ``float``."""
    if isinstance(value, (str, bytes, bytearray)) or value is None:
        raise TypeError(f'Metric {key!r} is not numeric: {value!r}')
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f'Metric {key!r} is too large for a float') from None
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
    """Packing and spelling of the entries that share a metric type and key tuple."""

    __slots__ = ('tid', 'generation', 'metric_type', 'width', 'pack', 'pieces')

    def __init__(self, tid: int, generation: int, metric_type: str, keys: Tuple[str, ...]) -> None:
        self.tid = tid
        self.generation = generation
        self.metric_type = metric_type
        self.width = len(keys)
        self.pack = struct.Struct(f'=qqqq{len(keys)}d').pack  # _HEAD, then the values; native order
        self.pieces = metric_file.entry_pieces(keys)


def _runs(chunk: List[bytes], metric_type_of: Callable[[int], str]) -> Iterable[Tuple[int, bytes]]:
    """Splits buffered records into runs of records of one template: ``(template id, joined
    records)``, each metric type's records in logged order, types in the order they were first
    logged (template ids grow), which index.yaml follows. A chunk of one template (the common
    case at high logging rates) is recognised with a few C-level comparisons; a chunk with one
    template per type (``train`` and ``val`` logged in turn every step) is split by C-level
    filters; others are first grouped by metric type (a stable sort), then split record by
    record where a type's key sets alternate."""
    first, count = chunk[0], len(chunk)
    size = len(first)
    blob = b''.join(chunk)
    if len(blob) == size * count and min(map(len, chunk)) == size and all(
            blob[i::size] == first[i:i + 1] * count for i in range(_TID.size)):
        yield _TID.unpack_from(first)[0], blob
        return
    keys = list(map(_tid_bytes, chunk))
    tids = sorted((_TID.unpack(key)[0], key) for key in set(keys))
    types = [metric_type_of(tid) for tid, _ in tids]
    if len(set(types)) == len(tids):
        for tid, key in tids:
            yield tid, b''.join(itertools.compress(chunk, map(key.__eq__, keys)))
        return
    first_of_type: Dict[str, int] = {}
    for (tid, _), metric_type in zip(tids, types):
        first_of_type.setdefault(metric_type, tid)
    rank = {key: first_of_type[metric_type] for (_, key), metric_type in zip(tids, types)}
    chunk = sorted(chunk, key=lambda record: rank[record[:_TID.size]])
    start, tid_bytes = 0, chunk[0][:_TID.size]
    for index, record in enumerate(chunk):
        if record[:_TID.size] != tid_bytes:
            yield _TID.unpack(tid_bytes)[0], b''.join(chunk[start:index])
            start, tid_bytes = index, record[:_TID.size]
    yield _TID.unpack(tid_bytes)[0], b''.join(chunk[start:])


def _pack_py(templates: Dict[Tuple[Any, Tuple[str, ...]], _Template], type: Any, metrics: Any,
             step: Any, epoch: Any) -> Optional[bytes]:
    """The record of one ``log`` call on the fast path: a known template, a plain ``int`` step
    and epoch (or no epoch), values ``struct`` converts; else ``None`` (then
    :meth:`MetricWriter._pack_slow` names what is wrong, or makes the template). ``_speedups.c``
    does the same in C."""
    try:
        template = templates[type, tuple(metrics)]
    except (KeyError, TypeError):
        return None
    if step.__class__ is not int or step < 0:
        return None
    if epoch is None:
        epoch = _NO_EPOCH
    elif epoch.__class__ is not int or epoch < 0:
        return None
    try:
        return template.pack(template.tid, step, epoch, _time_ns() // 1000, *metrics.values())
    except Exception:  # noqa: BLE001 - the slow path names what failed
        return None


try:  # optional C accelerator (built at install where a C compiler is present)
    from t9k_em_core._speedups import pack as _pack
except ImportError:  # pragma: no cover - depends on the installation
    _pack = _pack_py


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

    def __init__(self, storage: run_files.RunStorage, known_types: Iterable[str] = (),
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
        self._stamps = metric_file.TimestampFormatter()
        self._pending: Dict[str, List[bytes]] = {}
        self._warned = False
        self._kick_at = KICK_AT
        self._closed = False
        if not self._inert:
            _FLUSHER.register(self)

    # --- caller's thread ----------------------------------------------------------------------

    def log(self, type: str, metrics: Dict[str, Any], step: int,
            epoch: Optional[int] = None) -> None:
        """Logs a set of metrics: ``Run.log`` is this method of the Run's writer.

        Validation happens at once, on the caller's thread; the entry reaches
        ``metrics/<type>.yaml`` within a second (and at ``finish``/process exit), written by the
        flusher thread. NaN and infinities are kept.

        Args:
            type: ``'train'`` (or ``'training'``), ``'val'`` (or ``'validate'``,
                ``'validation'``), ``'test'`` (or ``'testing'``, ``'eval'``, ``'evaluate'``,
                ``'evaluation'``), or any other string usable as a file name (custom type).
            metrics: Metric name to value: a number, a NumPy scalar or a one-element tensor.
            step: Non-negative integer step the metrics belong to.
            epoch: Non-negative integer epoch the metrics belong to.

        Raises:
            TypeError: ``type`` is not a str, a value is not numeric (the key is named),
                ``step``/``epoch`` is not an integer (bools are refused).
            ValueError: ``type`` cannot be a file name, ``step``/``epoch`` is negative.
        """
        record = _pack(self._templates, type, metrics, step, epoch)
        if record is None:
            record = self._pack_slow(type, metrics, step, epoch)
        buf = self._buf
        buf.append(record)
        if len(buf) >= self._kick_at:
            self._kick()

    def _pack_slow(self, metric_type: Any, metrics: Any, step: Any, epoch: Any) -> bytes:
        """The record of an entry the fast path declined: a new metric type or key set, a NumPy
        step or epoch, or bad input, checked part by part so that the error names what is
        wrong."""
        try:
            template = self._templates[metric_type, tuple(metrics)]
        except (KeyError, TypeError):
            template = self._new_template(metric_type, metrics)
        step = to_index('step', step)
        epoch = _NO_EPOCH if epoch is None else to_index('epoch', epoch)
        values = [to_float(k, v) for k, v in _metric_dict(metrics).items()]
        return template.pack(template.tid, step, epoch, _time_ns() // 1000, *values)

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
        """Writes every buffered entry to disk now (thread-safe; keeps the logged order).

        Each file is appended to as soon as :data:`_WRITE_AT` bytes of its text are spelled: a
        write of text still in the CPU's cache costs less than half as much per byte as one
        large write of a whole flush (measured in ``benchmarks/log_overhead.py``'s setting)."""
        with lifecycle.signals_deferred(), self._io_lock:
            buf = self._buf
            count = len(buf)
            chunk = buf[:count]
            del buf[:count]
            self._kick_at = 1 if self._closed else KICK_AT
            pending, self._pending = self._pending, {}
            for metric_type, parts in pending.items():
                self._write(metric_type, parts)
            texts: Dict[str, List[bytes]] = {}
            sizes: Dict[str, int] = {}
            for metric_type, text in self._format(chunk):
                parts = texts.setdefault(metric_type, [])
                parts.append(text)
                sizes[metric_type] = sizes.get(metric_type, 0) + len(text)
                if sizes[metric_type] >= _WRITE_AT:
                    self._write(metric_type, parts)
                    texts[metric_type], sizes[metric_type] = [], 0
            for metric_type, parts in texts.items():
                if parts:
                    self._write(metric_type, parts)

    def _format(self, chunk: List[bytes]) -> Iterable[Tuple[str, bytes]]:
        """``(metric type, YAML text)`` of the buffered records, in logged order per type."""
        if not chunk:
            return
        by_id = self._by_id
        for tid, blob in _runs(chunk, lambda tid: by_id[tid].metric_type):
            tmpl = by_id[tid]
            for text in self._format_run(tmpl, blob):
                yield tmpl.metric_type, text
        if len(by_id) > 2 * MAX_TEMPLATES:  # forget templates two lookup tables old
            with self._template_lock:
                oldest = self._generation - 1
                self._by_id = {tid: t for tid, t in self._by_id.items() if t.generation >= oldest}

    def _format_run(self, tmpl: _Template, blob: bytes) -> Iterable[bytes]:
        """The YAML text of the records of ``blob`` (all of ``tmpl``), :data:`_SPELL_AT_ONCE`
        records at a time, spelled column by column: each column of the records is one C-level
        slice of the buffer."""
        stride = _HEAD + tmpl.width
        size = stride * 8
        for start in range(0, len(blob), _SPELL_AT_ONCE * size):  # bounded working set
            part = memoryview(blob)[start:start + _SPELL_AT_ONCE * size]
            ints, floats = part.cast('q'), part.cast('d')
            yield metric_file.format_entries(
                tmpl.pieces, self._stamps, [floats[_HEAD + j::stride].tolist() for j in range(tmpl.width)],
                ints[2::stride].tolist(), ints[1::stride].tolist(), ints[3::stride].tolist())

    def _write(self, metric_type: str, parts: List[bytes]) -> None:
        """Appends ``parts`` to the type's file; keeps them in memory (for the next flush)
        when that fails, or when earlier text of the type is still waiting."""
        waiting = self._pending.get(metric_type)
        if waiting is not None:  # an earlier write of this type failed: keep the order
            waiting.extend(parts)
            return
        try:
            self._storage.append_metrics(metric_type, b''.join(parts))
        except OSError as e:
            self._pending[metric_type] = list(parts)
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

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Flushes, then holds every write to the files until the block ends (a rewind cuts
        them meanwhile); entries logged in the block wait in the buffer."""
        with self._io_lock:
            self.flush()
            yield

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


lifecycle.on_exit(flush_all)  # metrics logged after a Run's finish() reach the disk too
