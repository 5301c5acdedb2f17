"""Metric series: parse ``metrics/<type>.yaml`` objects into a compact columnar cache, serve them
downsampled.

A metric object is an append-only YAML sequence of entries shaped (spec local-layout §5.5)::

    - value:
        loss: 0.5
      sequence:
        epoch: 1
        step: 10
        timestamp: '2026-11-26T19:01:21.662796+08:00'

It may hold a million entries and is re-uploaded whole after each append, so indexing is
incremental: when the new content starts with the bytes already indexed (same MD5 of that prefix),
only the bytes past the indexed offset are parsed, into one more segment. Entries in the exact
shape above (what both SDKs write) are parsed with regular expressions; anything else falls back
to the bounded YAML loader (``layout.load_yaml_text`` within ``config.YAML_LIMITS``).
A trailing entry cut off mid-write is left for the next upload.

A segment is ``EMS1`` + a JSON header (count, names) + float64 columns: step, epoch, time
(seconds since the epoch), then one column per metric name (NaN where an entry lacks it).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np

from t9k_em_core import layout, system_metrics

from .blob_store import BlobStore
from .config import YAML_LIMITS
from .metadata_store import MetadataStore, ObjectView, SeriesIndexView

METRIC_KEY = re.compile(r"metrics/([^/]+)\.yaml")
MAX_SEGMENTS = 32
X_AXES = ("step", "epoch", "time")
PIECE = 4 << 20  # bytes parsed at a time (memory stays bounded for huge files)

_ENTRY = re.compile(
    rb"- value:\n((?:    [^\n]*\n)*)  sequence:\n"
    rb"    epoch: ([^\n]*)\n    step: ([^\n]*)\n    timestamp: ([^\n]*)\n")
_VALUE_LINE = re.compile(rb"    ([A-Za-z_][A-Za-z0-9_./-]*): ([^\n]*)\n")
_SPECIAL_FLOATS = {b".nan": math.nan, b".NaN": math.nan, b".NAN": math.nan, b".inf": math.inf,
                   b".Inf": math.inf, b"-.inf": -math.inf, b"-.Inf": -math.inf,
                   b"+.inf": math.inf, b"null": math.nan, b"~": math.nan}
_MAGIC = b"EMS1"
_F8 = np.dtype("<f8")


def metric_type_of(key: str) -> str | None:
    """The metric type of an object key ``metrics/<type>.yaml``, else None."""
    match = METRIC_KEY.fullmatch(key)
    return match.group(1) if match else None


# ------------------------------------------------------------------------------------ columns

@dataclass
class Series:
    """Entries column by column: float64 arrays of equal length (NaN where a value is missing)."""

    step: np.ndarray
    epoch: np.ndarray
    time: np.ndarray
    values: dict[str, np.ndarray]

    @property
    def count(self) -> int:
        return int(self.step.shape[0])

    @classmethod
    def empty(cls) -> "Series":
        return cls(np.zeros(0), np.zeros(0), np.zeros(0), {})

    @classmethod
    def concat(cls, parts: list["Series"]) -> "Series":
        parts = [p for p in parts if p.count]
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls.empty()
        names = list(dict.fromkeys(n for p in parts for n in p.values))
        return cls(*(np.concatenate([getattr(p, a) for p in parts]) for a in ("step", "epoch", "time")),
                   {n: np.concatenate([p.values.get(n, np.full(p.count, np.nan)) for p in parts])
                    for n in names})

    def encode(self) -> bytes:
        """``EMS1`` + header length + JSON header + the float64 columns."""
        names = list(self.values)
        header = json.dumps({"count": self.count, "names": names}).encode()
        arrays = [self.step, self.epoch, self.time] + [self.values[n] for n in names]
        return b"".join([_MAGIC, struct.pack("<I", len(header)), header]
                        + [np.ascontiguousarray(a, dtype=_F8).tobytes() for a in arrays])

    def last_values(self) -> dict[str, Any]:
        """{name: {value, step, epoch}} of the last entry holding each name."""
        out = {}
        for name, column in self.values.items():
            rows = np.flatnonzero(~np.isnan(column))
            if rows.size:
                row = rows[-1]
                out[name] = {"value": _json_number(float(column[row])),
                             "step": _json_number(float(self.step[row])),
                             "epoch": _json_number(float(self.epoch[row]))}
        return out


def decode_segments(segments: list[bytes], names: list[str] | None = None) -> Series:
    """Concatenate encoded segments (only ``names`` when given); zero-copy for one segment."""
    parts = []
    for blob in segments:
        if blob[:4] != _MAGIC:
            raise ValueError("not a series segment")
        (hlen,) = struct.unpack_from("<I", blob, 4)
        header = json.loads(blob[8:8 + hlen])
        n, seg_names = header["count"], header["names"]

        def column(i: int) -> np.ndarray:
            return np.frombuffer(blob, dtype=_F8, count=n, offset=8 + hlen + 8 * n * i)

        wanted = seg_names if names is None else [x for x in names if x in seg_names]
        parts.append(Series(column(0), column(1), column(2),
                            {x: column(3 + seg_names.index(x)) for x in wanted}))
    return Series.concat(parts)


class _Rows:
    """Row-wise accumulator for entries parsed one by one (the slow path)."""

    def __init__(self) -> None:
        self.step: list[float] = []
        self.epoch: list[float] = []
        self.time: list[float] = []
        self.values: dict[str, tuple[list[int], list[float]]] = {}

    def add(self, step: float, epoch: float, time: float, values: dict[str, float]) -> None:
        row = len(self.step)
        self.step.append(step)
        self.epoch.append(epoch)
        self.time.append(time)
        for name, value in values.items():
            rows, vals = self.values.setdefault(name, ([], []))
            rows.append(row)
            vals.append(value)

    def series(self) -> Series:
        n = len(self.step)
        values = {}
        for name, (rows, vals) in self.values.items():
            column = np.full(n, np.nan)
            column[np.asarray(rows, dtype=np.int64)] = vals
            values[name] = column
        return Series(np.asarray(self.step, dtype=_F8), np.asarray(self.epoch, dtype=_F8),
                      np.asarray(self.time, dtype=_F8), values)


# ------------------------------------------------------------------------------------ parsing

def _number(raw: bytes) -> float:
    special = _SPECIAL_FLOATS.get(raw)
    if special is not None:
        return special
    if raw[:1] in (b"'", b'"'):
        raw = raw[1:-1]
    return float(raw)


def _numbers(raw: tuple[bytes, ...]) -> np.ndarray:
    """A float64 column from YAML scalars; vectorised unless special values need care."""
    arr = np.array(raw)
    nulls = arr == b"null"
    if nulls.any():
        arr = np.where(nulls, b"nan", arr)
    try:
        return arr.astype(_F8)
    except ValueError:
        return np.array([_safe_number(v) for v in raw], dtype=_F8)


def _safe_number(raw: bytes) -> float:
    try:
        return _number(raw)
    except ValueError:
        return math.nan


def _timestamp(raw: bytes) -> float:
    if raw[:1] in (b"'", b'"'):
        raw = raw[1:-1]
    return datetime.fromisoformat(raw.decode()).timestamp()


def _timestamps(raw: tuple[bytes, ...]) -> np.ndarray:
    """Seconds since the epoch of quoted ISO timestamps, vectorised for the SDK's fixed form
    ``'YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM'``; anything else goes through ``fromisoformat``."""
    arr = np.array(raw)
    if arr.dtype.itemsize == 34 and np.all(np.char.str_len(arr) == 34):
        m = arr.view(np.uint8).reshape(-1, 34)
        fixed = {0: 39, 5: 45, 8: 45, 11: 84, 14: 58, 17: 58, 20: 46, 30: 58, 33: 39}
        if all(np.all(m[:, i] == c) for i, c in fixed.items()) and np.all((m[:, 27] == 43) | (m[:, 27] == 45)):

            def num(a: int, b: int) -> np.ndarray:
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
    return np.array([_safe_time(v) for v in raw], dtype=_F8)


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
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return math.nan


def _is_entry(entry: Any) -> bool:
    """Whether a PyYAML-loaded item has the entry shape (value map, sequence with step/timestamp)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("value"), dict):
        return False
    sequence = entry.get("sequence")
    return isinstance(sequence, dict) and "step" in sequence and "timestamp" in sequence


def _add_loaded(rows: _Rows, entry: dict) -> None:
    sequence = entry["sequence"]
    rows.add(_any_number(sequence.get("step")), _any_number(sequence.get("epoch")),
             _any_time(sequence.get("timestamp")),
             {str(k): _any_number(v) for k, v in entry["value"].items()})


@lru_cache(maxsize=64)
def _shape_of(names: tuple[bytes, ...]) -> re.Pattern[bytes]:
    """A regex matching one whole entry whose values are exactly ``names``, in that order."""
    values = b"".join(b"    " + re.escape(n) + rb": ([^\n]*)\n" for n in names)
    return re.compile(rb"^- value:\n" + values + rb"  sequence:\n    epoch: ([^\n]*)\n"
                      rb"    step: ([^\n]*)\n    timestamp: ([^\n]*)\n", re.M)


def _parse_uniform(piece: bytes) -> Series | None:
    """Columnar parse of complete entries that all share the first entry's exact shape."""
    first = _ENTRY.match(piece)
    if first is None:
        return None
    pairs = _VALUE_LINE.findall(first.group(1))
    if not pairs or len(pairs) != first.group(1).count(b"\n"):
        return None
    names = tuple(k for k, _ in pairs)
    matches = _shape_of(names).findall(piece)
    if len(matches) != piece.count(b"\n- ") + 1:
        return None
    columns = list(zip(*matches)) if len(names) + 3 > 1 else [tuple(m for m in matches)]
    k = len(names)
    return Series(_numbers(columns[k + 1]), _numbers(columns[k]), _timestamps(columns[k + 2]),
                  {n.decode(): _numbers(columns[i]) for i, n in enumerate(names)})


def _parse_entrywise(data: bytes, final: bool) -> tuple[Series, int]:
    """Entry by entry (regex, else PyYAML). With ``final``, an incomplete last entry is left
    unconsumed; corrupt entries elsewhere are skipped."""
    rows = _Rows()
    names: dict[bytes, str] = {}
    pos, end = 0, len(data)
    while pos < end:
        match = _ENTRY.match(data, pos)
        if match is not None:
            block = match.group(1)
            pairs = _VALUE_LINE.findall(block)
            if len(pairs) == block.count(b"\n"):
                try:
                    values = {names.get(k) or names.setdefault(k, k.decode()): _number(v)
                              for k, v in pairs}
                    rows.add(_number(match.group(3)), _number(match.group(2)),
                             _timestamp(match.group(4)), values)
                    pos = match.end()
                    continue
                except ValueError:
                    pass
        next_item = data.find(b"\n- ", pos + 1)
        region_end = end if next_item < 0 else next_item + 1
        try:
            loaded = layout.load_yaml_text(data[pos:region_end].decode("utf-8", "replace"),
                                           YAML_LIMITS)
        except layout.yaml_error_types():
            loaded = None
        entries = loaded if isinstance(loaded, list) else []
        complete = bool(entries) and all(_is_entry(e) for e in entries)
        if final and region_end == end and (not complete or not data.endswith(b"\n")):
            break  # the last entry is incomplete: leave it for the next upload
        for entry in entries:  # a corrupt entry in the middle is skipped
            if _is_entry(entry):
                _add_loaded(rows, entry)
        pos = region_end
    return rows.series(), pos


def _parse_complete(piece: bytes) -> Series:
    """Entries of a piece known to end at an entry boundary."""
    uniform = _parse_uniform(piece)
    return uniform if uniform is not None else _parse_entrywise(piece, final=False)[0]


def parse_stream(chunks: Iterable[bytes]) -> tuple[Series, int]:
    """Parse a metric file's bytes (from an entry boundary on), ``PIECE`` bytes at a time.

    Returns the entries and the number of bytes consumed, which stops before a final entry that
    is cut off mid-write.
    """
    parts: list[Series] = []
    consumed = 0
    pending: list[bytes] = []
    size = 0

    def drain(buffer: bytes, final: bool) -> bytes:
        nonlocal consumed
        start = 0
        while final or len(buffer) - start >= PIECE:
            cut = buffer.rfind(b"\n- ", start, start + PIECE) if len(buffer) - start > PIECE else -1
            if cut <= start:
                cut = buffer.rfind(b"\n- ", start)
            if cut <= start:
                break
            parts.append(_parse_complete(buffer[start:cut + 1]))
            consumed += cut + 1 - start
            start = cut + 1
        return buffer[start:]

    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= 2 * PIECE:
            rest = drain(b"".join(pending), final=False)
            pending, size = [rest], len(rest)
    rest = drain(b"".join(pending), final=True)
    tail, used = _parse_entrywise(rest, final=True)
    parts.append(tail)
    return Series.concat(parts), consumed + used


def parse_entries(data: bytes) -> tuple[Series, int]:
    """``parse_stream`` of one bytes object."""
    return parse_stream([data])


# ------------------------------------------------------------------------------------ indexing

def _md5_of_prefix(blobs: BlobStore, blob_key: str, length: int) -> str:
    digest, left = hashlib.md5(), length
    for chunk in blobs.iter_bytes(blob_key):
        digest.update(chunk[:left])
        left -= min(left, len(chunk))
        if not left:
            break
    return digest.hexdigest()


def _json_number(value: float) -> float | int | None:
    if math.isnan(value) or math.isinf(value):
        return None
    return int(value) if value.is_integer() else value


def index_metric_object(meta: MetadataStore, blobs: BlobStore, obj: ObjectView,
                        prefix_hint: tuple[int, str] | None = None) -> SeriesIndexView | None:
    """Bring the series cache of a metric object up to date with its current blob.

    ``prefix_hint`` = (offset, md5 of the new content's first ``offset`` bytes), computed while
    the upload streamed, saves re-reading the prefix. Returns the index now stored (None if a
    newer upload replaced the object meanwhile; that upload indexes itself).
    """
    old = meta.get_series_index(obj.id)
    if old is not None and old.blob_key == obj.blob_key:
        return old
    start, incremental = 0, False
    if old is not None and 0 < old.indexed_bytes <= obj.size:
        if prefix_hint is not None and prefix_hint[0] == old.indexed_bytes:
            prefix = prefix_hint[1]
        else:
            prefix = _md5_of_prefix(blobs, obj.blob_key, old.indexed_bytes)
        if prefix == old.prefix_md5:
            start, incremental = old.indexed_bytes, True
    new, consumed = parse_stream(blobs.iter_bytes(obj.blob_key, start))
    indexed = start + consumed
    prefix_md5 = obj.md5 if indexed == obj.size else _md5_of_prefix(blobs, obj.blob_key, indexed)
    replace = not incremental
    segment = new.encode() if new.count else b""
    if incremental:
        assert old is not None
        names = list(dict.fromkeys(old.names + list(new.values)))
        last = {**old.last_values, **new.last_values()}
        count, segments = old.count + new.count, old.segments + (1 if new.count else 0)
        if segments > MAX_SEGMENTS:  # compact into one segment again
            merged = decode_segments(meta.series_segments(obj.id) + [segment])
            segment, segments, replace = merged.encode(), 1, True
    else:
        names, last = list(new.values), new.last_values()
        count, segments = new.count, 1 if new.count else 0
    index = SeriesIndexView(obj.id, obj.blob_key, indexed, prefix_md5, count, segments, names, last)
    if not meta.save_series(obj.id, obj.blob_key, index, segment, replace=replace):
        return None
    # Warm the segment cache, so that the UI's first look at a freshly uploaded run needs no
    # database read (tens of MB for a million points).
    earlier = [] if replace else _SEGMENTS.get((obj.id, old.blob_key)) if old else None
    if earlier is not None:
        _SEGMENTS.put((obj.id, obj.blob_key), earlier + ([segment] if segment else []))
    return index


class _SegmentCache:
    """The encoded segments of recently served series, keyed by (object id, blob key), bounded
    in bytes. A key names one immutable state (a new upload gets a new blob key), so entries
    never go stale, whichever process indexed them. Filled when a series is indexed and when it
    is read: saves the database read when the UI first opens or polls a (live) run."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self._bytes = max_bytes, 0
        self._items: OrderedDict[tuple[int, str], list[bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, str]) -> list[bytes] | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key: tuple[int, str], segments: list[bytes]) -> None:
        size = sum(len(s) for s in segments)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = segments
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= sum(len(s) for s in dropped)


_SEGMENTS = _SegmentCache(64 << 20)


def load_series(meta: MetadataStore, blobs: BlobStore, obj: ObjectView,
                names: list[str] | None = None) -> Series:
    """The decoded series of a metric object, only ``names`` when given (indexing it first if
    the cache is stale)."""
    key = (obj.id, obj.blob_key)
    segments = _SEGMENTS.get(key)
    if segments is None:
        index = meta.get_series_index(obj.id)
        if index is None or index.blob_key != obj.blob_key:
            index = index_metric_object(meta, blobs, obj)
        segments = meta.series_segments(obj.id)
        if index is not None and index.blob_key == obj.blob_key:
            _SEGMENTS.put(key, segments)
    return decode_segments(segments, names)


def gpu_usage(meta: MetadataStore, blobs: BlobStore, obj: ObjectView,
              index: SeriesIndexView) -> dict[str, Any] | None:
    """``{"util_mean", "memory_peak"}`` of a Run's ``metrics/system.yaml`` object: the mean
    utilisation over every sample of every GPU (%), and the most memory any GPU used (bytes).
    None when its samples hold no GPU fields (then nothing is read)."""
    fields: dict[str, list[str]] = {system_metrics.GPU_UTIL: [], system_metrics.GPU_MEMORY_USED: []}
    for name in index.names:
        match = system_metrics.GPU_FIELD.fullmatch(name)
        if match and match.group(2) in fields:
            fields[match.group(2)].append(name)
    if not any(fields.values()):
        return None
    series = load_series(meta, blobs, obj, [n for names in fields.values() for n in names])

    def columns(quantity: str) -> np.ndarray:
        found = [series.values[n] for n in fields[quantity] if n in series.values]
        return np.concatenate(found) if found else np.zeros(0)

    util, memory = columns(system_metrics.GPU_UTIL), columns(system_metrics.GPU_MEMORY_USED)
    util, memory = util[~np.isnan(util)], memory[~np.isnan(memory)]
    return {"util_mean": _json_number(float(util.mean())) if util.size else None,
            "memory_peak": _json_number(float(memory.max())) if memory.size else None}


# ------------------------------------------------------------------------------------ sampling

def downsample(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points keeping each bucket's minimum and maximum, and both ends.

    Points with NaN ``x`` or ``y`` are dropped first; order is preserved.
    """
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = x.shape[0]
    if n <= max_points:
        return x, y
    buckets = max(1, (max_points - 2) // 2)
    inner = y[1:-1]
    size = -(-inner.shape[0] // buckets)
    pad = buckets * size - inner.shape[0]
    low = np.concatenate([inner, np.full(pad, np.inf)]).reshape(buckets, size)
    high = np.concatenate([inner, np.full(pad, -np.inf)]).reshape(buckets, size)
    base = np.arange(buckets) * size
    chosen = np.concatenate([low.argmin(axis=1) + base, high.argmax(axis=1) + base])
    chosen = np.unique(chosen[chosen < inner.shape[0]]) + 1
    idx = np.concatenate([[0], chosen, [n - 1]])
    return x[idx], y[idx]


def series_points(series: Series, name: str, x_axis: str, max_points: int) -> dict[str, Any]:
    """The JSON body for one metric: ``x``/``y`` lists (downsampled) and the total count."""
    if x_axis not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}")
    y = series.values[name]
    x = getattr(series, x_axis)
    total = int(np.count_nonzero(~(np.isnan(x) | np.isnan(y))))
    xs, ys = downsample(x, y, max_points)
    return {"name": name, "x_axis": x_axis, "total": total, "returned": int(xs.shape[0]),
            "x": [_json_number(v) for v in xs.tolist()], "y": [_json_number(v) for v in ys.tolist()]}
