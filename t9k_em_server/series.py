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
to PyYAML's C loader (``layout.load_yaml_text``).
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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from t9k_em_core import layout

from .blob_store import BlobStore
from .metadata_store import MetadataStore, ObjectView, SeriesIndexView

METRIC_KEY = re.compile(r"metrics/([^/]+)\.yaml")
MAX_SEGMENTS = 32
X_AXES = ("step", "epoch", "time")

_ENTRY = re.compile(
    rb"- value:\n((?:    [^\n]*\n)*)  sequence:\n"
    rb"    epoch: ([^\n]*)\n    step: ([^\n]*)\n    timestamp: ([^\n]*)\n")
_VALUE_LINE = re.compile(rb"    ([A-Za-z_][A-Za-z0-9_./-]*): ([^\n]*)\n")
_SPECIAL_FLOATS = {b".nan": math.nan, b".NaN": math.nan, b".NAN": math.nan, b".inf": math.inf,
                   b".Inf": math.inf, b"-.inf": -math.inf, b"-.Inf": -math.inf,
                   b"+.inf": math.inf, b"null": math.nan, b"~": math.nan}
_MAGIC = b"EMS1"


def metric_type_of(key: str) -> str | None:
    """The metric type of an object key ``metrics/<type>.yaml``, else None."""
    match = METRIC_KEY.fullmatch(key)
    return match.group(1) if match else None


# ------------------------------------------------------------------------------------ columns

@dataclass
class Columns:
    """Parsed entries, column by column."""

    step: list[float] = field(default_factory=list)
    epoch: list[float] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    values: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.step)

    def add(self, step: float, epoch: float, time: float, values: dict[str, float]) -> None:
        row = len(self.step)
        self.step.append(step)
        self.epoch.append(epoch)
        self.time.append(time)
        for name, value in values.items():
            rows, vals = self.values.setdefault(name, ([], []))
            rows.append(row)
            vals.append(value)

    def encode(self) -> bytes:
        n = len(self)
        names = list(self.values)
        header = json.dumps({"count": n, "names": names}).encode()
        parts = [_MAGIC, struct.pack("<I", len(header)), header]
        for column in (self.step, self.epoch, self.time):
            parts.append(np.asarray(column, dtype="<f8").tobytes())
        for name in names:
            rows, vals = self.values[name]
            column = np.full(n, np.nan, dtype="<f8")
            column[np.asarray(rows, dtype=np.int64)] = vals
            parts.append(column.tobytes())
        return b"".join(parts)


@dataclass
class Series:
    """Decoded columns of one metric object (numpy float64 arrays of equal length)."""

    step: np.ndarray
    epoch: np.ndarray
    time: np.ndarray
    values: dict[str, np.ndarray]

    @property
    def count(self) -> int:
        return int(self.step.shape[0])


def decode_segments(segments: list[bytes]) -> Series:
    """Concatenate encoded segments; a name missing from a segment reads as NaN there."""
    decoded = []
    names: dict[str, None] = {}
    for blob in segments:
        if blob[:4] != _MAGIC:
            raise ValueError("not a series segment")
        (hlen,) = struct.unpack_from("<I", blob, 4)
        header = json.loads(blob[8:8 + hlen])
        n, seg_names = header["count"], header["names"]
        cols = np.frombuffer(blob, dtype="<f8", offset=8 + hlen, count=n * (3 + len(seg_names)))
        cols = cols.reshape(3 + len(seg_names), n) if n else np.zeros((3 + len(seg_names), 0))
        decoded.append((n, seg_names, cols))
        names.update(dict.fromkeys(seg_names))
    if not decoded:
        empty = np.zeros(0)
        return Series(empty, empty, empty, {})

    def column(i: int) -> np.ndarray:
        return np.concatenate([cols[i] for _, _, cols in decoded])

    values = {}
    for name in names:
        values[name] = np.concatenate([
            cols[3 + seg_names.index(name)] if name in seg_names else np.full(n, np.nan)
            for n, seg_names, cols in decoded])
    return Series(column(0), column(1), column(2), values)


# ------------------------------------------------------------------------------------ parsing

def _number(raw: bytes) -> float:
    special = _SPECIAL_FLOATS.get(raw)
    if special is not None:
        return special
    if raw[:1] in (b"'", b'"'):
        raw = raw[1:-1]
    return float(raw)


def _timestamp(raw: bytes) -> float:
    if raw[:1] in (b"'", b'"'):
        raw = raw[1:-1]
    return datetime.fromisoformat(raw.decode()).timestamp()


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


def _add_loaded(columns: Columns, entry: Any) -> bool:
    """Add one entry loaded by PyYAML; False when it lacks the required shape."""
    if not isinstance(entry, dict) or not isinstance(entry.get("value"), dict):
        return False
    sequence = entry.get("sequence")
    if not isinstance(sequence, dict) or "step" not in sequence or "timestamp" not in sequence:
        return False
    columns.add(_any_number(sequence.get("step")), _any_number(sequence.get("epoch")),
                _any_time(sequence.get("timestamp")),
                {str(k): _any_number(v) for k, v in entry["value"].items()})
    return True


def parse_entries(data: bytes) -> tuple[Columns, int]:
    """Parse whole entries from ``data`` (which starts at an entry boundary).

    Returns the columns and the number of bytes consumed: everything up to the end of the last
    complete entry. A final entry that is cut off (mid-write) is not consumed.
    """
    columns = Columns()
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
                    columns.add(_number(match.group(3)), _number(match.group(2)),
                                _timestamp(match.group(4)), values)
                    pos = match.end()
                    continue
                except ValueError:
                    pass
        # Not the fast shape: hand this entry (up to the next top-level item) to PyYAML.
        next_item = data.find(b"\n- ", pos + 1)
        region_end = end if next_item < 0 else next_item + 1
        try:
            loaded = layout.load_yaml_text(data[pos:region_end].decode("utf-8", "replace"))
        except layout.yaml_error_types():
            loaded = None
        entries = loaded if isinstance(loaded, list) else []
        complete = all([_add_loaded(columns, e) for e in entries]) and bool(entries)
        if region_end == end and (not complete or not data.endswith(b"\n")):
            break  # the last entry is incomplete: leave it for the next upload
        pos = region_end
    return columns, pos


# ------------------------------------------------------------------------------------ indexing

def _md5_of_prefix(blobs: BlobStore, blob_key: str, length: int) -> str:
    digest, left = hashlib.md5(), length
    for chunk in blobs.iter_bytes(blob_key):
        digest.update(chunk[:left])
        left -= min(left, len(chunk))
        if not left:
            break
    return digest.hexdigest()


def _last_values(columns: Columns) -> dict[str, Any]:
    out = {}
    for name, (rows, vals) in columns.values.items():
        for row, value in zip(reversed(rows), reversed(vals)):
            if not math.isnan(value):
                out[name] = {"value": value, "step": _json_number(columns.step[row]),
                             "epoch": _json_number(columns.epoch[row])}
                break
    return out


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
    data = blobs.read_bytes(obj.blob_key, start)
    columns, consumed = parse_entries(data)
    indexed = start + consumed
    prefix_md5 = obj.md5 if indexed == obj.size else _md5_of_prefix(blobs, obj.blob_key, indexed)
    if incremental:
        assert old is not None
        names = list(dict.fromkeys(old.names + list(columns.values)))
        last = {**old.last_values, **_last_values(columns)}
        count, segments = old.count + len(columns), old.segments + (1 if len(columns) else 0)
    else:
        names, last = list(columns.values), _last_values(columns)
        count, segments = len(columns), 1 if len(columns) else 0
    replace = not incremental
    segment = columns.encode() if len(columns) else b""
    if incremental and segments > MAX_SEGMENTS:  # compact: one segment again
        merged = decode_segments(meta.series_segments(obj.id) + [segment])
        segment, segments, replace = _encode_series(merged), 1, True
    index = SeriesIndexView(obj.id, obj.blob_key, indexed, prefix_md5, count, segments, names, last)
    if not meta.save_series(obj.id, obj.blob_key, index, segment, replace=replace):
        return None
    return index


def _encode_series(series: Series) -> bytes:
    names = list(series.values)
    header = json.dumps({"count": series.count, "names": names}).encode()
    arrays = [series.step, series.epoch, series.time] + [series.values[n] for n in names]
    return b"".join([_MAGIC, struct.pack("<I", len(header)), header]
                    + [np.ascontiguousarray(a, dtype="<f8").tobytes() for a in arrays])


def load_series(meta: MetadataStore, blobs: BlobStore, obj: ObjectView) -> Series:
    """The full decoded series of a metric object (indexing it first if the cache is stale)."""
    index = meta.get_series_index(obj.id)
    if index is None or index.blob_key != obj.blob_key:
        index_metric_object(meta, blobs, obj)
    return decode_segments(meta.series_segments(obj.id))


# ------------------------------------------------------------------------------------ sampling

def downsample(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points that keep each bucket's min and max (and the ends).

    Points with NaN ``x`` or ``y`` are dropped first. Order is preserved.
    """
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = x.shape[0]
    if n <= max_points:
        return x, y
    buckets = max(1, (max_points - 2) // 2)
    inner = y[1:-1]
    edges = np.linspace(0, inner.shape[0], buckets + 1).astype(np.int64)
    sizes = np.diff(edges)
    nonempty = sizes > 0
    starts = edges[:-1][nonempty]
    # Reduce over each bucket: argmin/argmax via reduceat on values paired with positions.
    mins = np.minimum.reduceat(inner, starts)
    maxs = np.maximum.reduceat(inner, starts)
    bucket_of = np.repeat(np.arange(starts.shape[0]), sizes[nonempty])
    positions = np.arange(inner.shape[0])
    is_min = inner == mins[bucket_of]
    is_max = inner == maxs[bucket_of]
    first_min = np.full(starts.shape[0], -1)
    first_max = np.full(starts.shape[0], -1)
    # last write wins in fancy assignment, so assign reversed to keep the first occurrence
    first_min[bucket_of[is_min][::-1]] = positions[is_min][::-1]
    first_max[bucket_of[is_max][::-1]] = positions[is_max][::-1]
    chosen = np.unique(np.concatenate([first_min, first_max])) + 1
    idx = np.concatenate([[0], chosen, [n - 1]])
    return x[idx], y[idx]


def series_points(series: Series, name: str, x_axis: str,
                  max_points: int) -> dict[str, Any]:
    """The JSON body for one metric: ``x``/``y`` lists (downsampled) and the total count."""
    if x_axis not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}")
    y = series.values[name]
    x = getattr(series, x_axis)
    total = int(np.count_nonzero(~(np.isnan(x) | np.isnan(y))))
    xs, ys = downsample(x, y, max_points)
    return {"name": name, "x_axis": x_axis, "total": total, "returned": int(xs.shape[0]),
            "x": [_json_number(float(v)) for v in xs], "y": [_json_number(float(v)) for v in ys]}
