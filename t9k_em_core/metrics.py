"""``MetricWriter``: the buffered, durable writer behind ``Run.log``.

The caller's thread only validates and converts (``log``), then appends one tuple to a list.
One daemon flusher thread per process formats buffered entries as YAML text and appends them to
``metrics/<type>.yaml`` at least every :data:`FLUSH_INTERVAL` seconds, and sooner when a buffer
holds :data:`KICK_AT` entries; a caller that outruns the flusher up to :data:`HARD_LIMIT`
entries flushes its own buffer (back-pressure bounds memory). Files are only ever appended to,
never rewritten.
"""

from __future__ import annotations

import operator
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from t9k_em_core import layout

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
"""Entry templates kept per writer (one per metric type and key tuple); the cache is cleared
when a Run logs more distinct key sets than this."""

_NUMERIC = {float, int}  # types converted without per-value checks; grows with float/int subclasses
_type = type
_time = time.time


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
    return number


def _convert(metrics: Dict[str, Any]) -> Tuple[float, ...]:
    """Per-value conversion (the slow path of ``log``); learns exact subclasses such as
    ``numpy.float64`` so that their next conversion takes the fast path."""
    converted = tuple([to_float(k, v) for k, v in metrics.items()])
    for value in metrics.values():
        kind = _type(value)
        if kind not in _NUMERIC and kind is not bool and issubclass(kind, (float, int)):
            _NUMERIC.add(kind)
    return converted


class _Template:
    """Formatting of entries that share a metric type and key tuple."""

    __slots__ = ('metric_type', 'fast', 'slow', 'count_e', 'count_n', 'keys')

    def __init__(self, metric_type: str, keys: Tuple[str, ...]) -> None:
        self.metric_type = metric_type
        self.keys = keys
        self.fast = layout.metric_entry_template(keys)
        self.slow = self.fast.replace(' %r\n', ' %s\n')
        # 'e' and 'n' occur in a float's repr only for exponents, nan and inf, so any extra
        # occurrence in a formatted entry means a value needs PyYAML's spelling.
        self.count_e = self.fast.count('e')
        self.count_n = self.fast.count('n')


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
        self._buf: List[tuple] = _Discard() if self._inert else []
        self._types: Dict[Any, str] = {}
        self._templates: Dict[Tuple[str, Tuple[str, ...]], _Template] = {}
        self._types_on_disk: List[str] = list(known_types)
        self._on_new_type = on_new_type
        self._on_written = on_written
        self._io_lock = threading.RLock()
        self._stamps = layout.TimestampFormatter()
        self._pending: Dict[str, List[str]] = {}
        self._warned = False
        self._kick_at = KICK_AT
        self._closed = False
        if not self._inert:
            _FLUSHER.register(self)

    # --- caller's thread ----------------------------------------------------------------------

    def log(self, type: str, metrics: Dict[str, Any], step: int, epoch: Optional[int] = None) -> None:
        """Validates one set of metrics and buffers it; see ``Run.log``."""
        try:
            metric_type = self._types[type]
        except (KeyError, TypeError):
            metric_type = self._new_type(type)
        try:
            keys = tuple(metrics)
            values = metrics.values()
        except (TypeError, AttributeError):
            raise TypeError(f'metrics must be a dict of metric name to number, got '
                            f'{_type(metrics).__name__}') from None
        if _NUMERIC.issuperset(map(_type, values)):
            converted = tuple(map(float, values))
        else:
            converted = _convert(metrics)
        if step.__class__ is not int or step < 0:
            step = to_index('step', step)
        if epoch is not None and (epoch.__class__ is not int or epoch < 0):
            epoch = to_index('epoch', epoch)
        template_key = (metric_type, keys)
        if template_key not in self._templates:
            self._new_template(template_key)
        buf = self._buf
        buf.append((template_key, converted, step, epoch, _time()))
        if len(buf) >= self._kick_at:
            self._kick()

    def _new_type(self, metric_type: Any) -> str:
        canonical = canonical_metric_type(metric_type)
        self._types[metric_type] = canonical
        return canonical

    def _new_template(self, template_key: Tuple[str, Tuple[str, ...]]) -> _Template:
        for key in template_key[1]:
            if not isinstance(key, str):
                raise TypeError(f'Metric names must be str, got {_type(key).__name__}: {key!r}')
        if len(self._templates) >= MAX_TEMPLATES:
            self._templates.clear()  # buffered entries rebuild theirs in _format
        template = self._templates[template_key] = _Template(*template_key)
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
        with self._io_lock:
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

    def _format(self, chunk: List[tuple]) -> Dict[str, List[str]]:
        texts: Dict[str, List[str]] = {}
        templates = self._templates
        parts = self._stamps.parts
        for template_key, values, step, epoch, stamp in chunk:
            tmpl = templates.get(template_key) or self._new_template(template_key)
            epoch_text = 'null' if epoch is None else epoch
            args = (*values, epoch_text, step, *parts(stamp))
            text = tmpl.fast % args
            if text.count('e') != tmpl.count_e or text.count('n') != tmpl.count_n + (epoch is None):
                text = tmpl.slow % (*map(layout.yaml_float, values), epoch_text, step,
                                    *parts(stamp))
            out = texts.get(tmpl.metric_type)
            if out is None:
                texts[tmpl.metric_type] = [text]
            else:
                out.append(text)
        return texts

    def _write(self, metric_type: str, parts: List[str]) -> None:
        try:
            self._storage.append_metrics(metric_type, ''.join(parts))
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
