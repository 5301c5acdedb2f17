"""Metric series: ``metrics/<type>.yaml`` objects parsed into a compact columnar cache, served
downsampled.

Entries are parsed by :func:`t9k_em_core.metric_file.read_columns`, the one reader of the format
(its YAML fallback within ``config.YAML_LIMITS``).
A metric object may hold a million entries and grows by appends (our append extension) or is
re-uploaded whole after each one (a server-less client), so indexing is incremental: when the new
content starts with the bytes already indexed (same MD5 of that prefix; an append passes it as
``prefix_hint``), only the bytes past the indexed offset are parsed, into one more segment. A trailing
entry cut off mid-write is left for the next upload.

Each indexing also keeps the metric summaries of the Run (``Series.summaries``; the new tail is
folded into the stored ones with ``fold_summaries``, a full re-parse recomputes them), written
with the index in one transaction.

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
from typing import Any

import numpy as np

from t9k_em_core import metric_file

from .blob_store import BlobStore
from .config import YAML_LIMITS
from .metadata_store import MetadataStore, MetricSummary, ObjectView, SeriesIndexView

METRIC_KEY = re.compile(r"metrics/([^/]+)\.yaml")
MAX_SEGMENTS = 32
X_AXES = ("step", "epoch", "time")
_MAGIC = b"EMS1"
_F8 = np.dtype("<f8")


def metric_type_of(key: str) -> str | None:
    """The metric type of an object key ``metrics/<type>.yaml``, else None."""
    match = METRIC_KEY.fullmatch(key)
    return match.group(1) if match else None


# ------------------------------------------------------------------------------------ columns

class Series(metric_file.Columns):
    """Entries column by column (float64 arrays of equal length, NaN where a value is missing),
    as stored in the series cache."""

    def encode(self) -> bytes:
        """``EMS1`` + header length + JSON header + the float64 columns."""
        names = list(self.values)
        header = json.dumps({"count": self.count, "names": names}).encode()
        arrays = [self.step, self.epoch, self.time] + [self.values[n] for n in names]
        return b"".join([_MAGIC, struct.pack("<I", len(header)), header]
                        + [np.ascontiguousarray(a, dtype=_F8).tobytes() for a in arrays])

    def summaries(self) -> dict[str, MetricSummary]:
        """{name: summary} over each metric's finite values (names with none are left out)."""
        out = {}
        for name, column in self.values.items():
            rows = np.flatnonzero(np.isfinite(column))
            if not rows.size:
                continue
            values = column[rows]
            low, high = int(np.argmin(values)), int(np.argmax(values))
            out[name] = MetricSummary(
                last=float(values[-1]), min=float(values[low]), max=float(values[high]),
                mean=float(values.mean()), count=int(rows.size),
                last_step=_finite(self.step[rows[-1]]), min_step=_finite(self.step[rows[low]]),
                max_step=_finite(self.step[rows[high]]))
        return out

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


# ------------------------------------------------------------------------------------ indexing

def _md5_of_prefix(blobs: BlobStore, blob_key: str, length: int) -> str:
    digest, left = hashlib.md5(), length
    for chunk in blobs.iter_bytes(blob_key):
        digest.update(chunk[:left])
        left -= min(left, len(chunk))
        if not left:
            break
    return digest.hexdigest()


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def fold_summaries(old: dict[str, MetricSummary],
                   new: dict[str, MetricSummary]) -> dict[str, MetricSummary]:
    """The summaries of entries ``old`` followed by entries ``new`` (ties keep the earlier step)."""
    out = dict(old)
    for name, b in new.items():
        a = old.get(name)
        if a is None or not a.count:
            out[name] = b
            continue
        low, high = (b if b.min < a.min else a), (b if b.max > a.max else a)  # type: ignore[operator]
        count = a.count + b.count
        out[name] = MetricSummary(
            last=b.last, min=low.min, max=high.max,
            mean=(a.mean * a.count + b.mean * b.count) / count,  # type: ignore[operator]
            count=count, last_step=b.last_step, min_step=low.min_step, max_step=high.max_step)
    return out


def _json_number(value: float) -> float | int | None:
    if math.isnan(value) or math.isinf(value):
        return None
    return int(value) if value.is_integer() else value


def parse_metric_bytes(chunks: Iterable[bytes]) -> tuple[Series, int]:
    """The entries of a metric object's bytes (from an entry boundary on) and how many bytes
    they fill (a last entry cut short mid-write is left for later)."""
    columns, consumed = metric_file.read_columns(chunks, YAML_LIMITS)
    return Series(columns.step, columns.epoch, columns.time, columns.values), consumed


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
    new, consumed = parse_metric_bytes(blobs.iter_bytes(obj.blob_key, start, end=obj.size))
    indexed = start + consumed
    prefix_md5 = obj.md5 if indexed == obj.size else _md5_of_prefix(blobs, obj.blob_key, indexed)
    replace_from = None if incremental else 0
    segment = new.encode() if new.count else b""
    metric_type = metric_type_of(obj.key)
    summaries = new.summaries()
    if incremental:
        assert old is not None
        summaries = fold_summaries(meta.metric_summaries(obj.node_id, metric_type or ""), summaries)
        names = list(dict.fromkeys(old.names + list(new.values)))
        last = {**old.last_values, **new.last_values()}
        count, segments = old.count + new.count, old.segments + (1 if new.count else 0)
        if segments > MAX_SEGMENTS and segment:
            sizes = meta.series_segment_sizes(obj.id)
            merging = _newest_to_merge([n for _, n in sizes] + [len(segment)], MAX_SEGMENTS // 2) - 1
            replace_from = sizes[-merging][0] if merging else None
            if merging:
                merged = decode_segments(meta.series_segments(obj.id, replace_from) + [segment])
                segment, segments = merged.encode(), len(sizes) - merging + 1
    else:
        names, last = list(new.values), new.last_values()
        count, segments = new.count, 1 if new.count else 0
    index = SeriesIndexView(obj.id, obj.blob_key, indexed, prefix_md5, count, segments, names, last)
    if not meta.save_series(obj.id, obj.blob_key, index, segment, replace_from=replace_from,
                            metric_type=metric_type, summaries=summaries):
        return None
    # Warm the segment cache, so that the UI's first look at a freshly uploaded run needs no
    # database read (tens of MB for a million points).
    earlier = [] if replace_from == 0 else _SEGMENTS.get((obj.id, old.blob_key)) if old else None
    if earlier is not None and replace_from:
        earlier = earlier[:segments - 1] if len(earlier) == old.segments else None
    if earlier is not None:
        _SEGMENTS.put((obj.id, obj.blob_key), earlier + ([segment] if segment else []))
    return index


def _newest_to_merge(sizes: list[int], limit: int) -> int:
    """How many of the newest segments (sizes in bytes, oldest first) to merge into one: each
    older segment no larger than the merged ones joins them (so sizes stay decreasing from the
    oldest, about geometrically, and a merge costs about what was added since the last merges
    of that size), and so do as many as it takes to leave at most ``limit`` segments."""
    count, total = 1, sizes[-1]
    while count < len(sizes) and (sizes[-count - 1] <= total or len(sizes) - count >= limit):
        total += sizes[-count - 1]
        count += 1
    return count


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


def band(x: np.ndarray, y: np.ndarray, max_points: int) -> dict[str, Any]:
    """The points of many series (concatenated) in at most ``max_points`` equal-width buckets of
    ``x``: per bucket the mean x and the mean, min and max y (so extremes survive).

    Points with NaN ``x`` or ``y`` are dropped first.
    """
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if not x.shape[0]:
        return {"total": 0, "x": [], "mean": [], "min": [], "max": []}
    low, high = float(x.min()), float(x.max())
    buckets = max(1, max_points)
    scale = buckets / (high - low) if high > low else 0.0
    idx = np.minimum(((x - low) * scale).astype(np.int64), buckets - 1)
    counts = np.bincount(idx, minlength=buckets)
    mins, maxs = np.full(buckets, np.inf), np.full(buckets, -np.inf)
    np.minimum.at(mins, idx, y)
    np.maximum.at(maxs, idx, y)
    used = counts > 0
    n = counts[used]

    def column(values: np.ndarray) -> list:
        return [_json_number(v) for v in values.tolist()]

    return {"total": int(x.shape[0]),
            "x": column(np.bincount(idx, weights=x, minlength=buckets)[used] / n),
            "mean": column(np.bincount(idx, weights=y, minlength=buckets)[used] / n),
            "min": column(mins[used]), "max": column(maxs[used])}


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
