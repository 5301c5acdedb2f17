"""The metric series cache (parsing is ``test_metric_file.py``'s): incremental
indexing of append-only uploads, downsampling that keeps extremes, and a 1M-point series served
over HTTP in under a second."""
from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest
from support.server_api import Api, metric_entries as entries

from t9k_em_server.blob_store import LocalBlobStore
from t9k_em_server.metadata_store import MetadataStore
from t9k_em_server.series import decode_segments, downsample, index_metric_object
from t9k_em_server.uploads import new_blob_key
from t9k_em_server.users import add_user

pytestmark = pytest.mark.timeout(240)


def test_downsampling_keeps_extremes():
    y = np.sin(np.arange(100_000) / 500.0)
    y[31_337], y[77_777] = 50.0, -50.0
    x = np.arange(100_000, dtype=float)
    xs, ys = downsample(x, y, 500)
    assert len(xs) <= 500 and xs[0] == 0 and xs[-1] == 99_999
    assert 31_337 in xs and 77_777 in xs and ys.max() == 50.0 and ys.min() == -50.0
    assert np.all(np.diff(xs) > 0)


def test_incremental_indexing(tmp_path):
    """Appending re-uploads parse only the new bytes; a rewrite re-parses everything."""
    meta, blobs = MetadataStore(f"sqlite:///{tmp_path / 'm.db'}"), LocalBlobStore(tmp_path / "b")
    meta.upgrade()
    add_user(meta, "ann")
    run = meta.create_node("/ann", "r", "Run", 2, [], "", "{}", None)

    def upload(data: bytes):
        key = new_blob_key()
        writer = blobs.open_writer(key)
        writer.write(data)
        writer.commit()
        obj, _ = meta.put_object(run.id, "metrics/train.yaml", key, len(data), hashlib.md5(data).hexdigest())
        return index_metric_object(meta, blobs, obj), obj

    first = entries(0, 1000)
    index, _ = upload(first[:-7])  # cut mid-entry
    assert index.count == 999 and index.segments == 1
    index, _ = upload(first + entries(1000, 1500))
    assert index.count == 1500 and index.segments == 2 and index.indexed_bytes == len(first) + len(entries(1000, 1500))
    index, obj = upload(entries(0, 1500) + entries(1500, 1600, keys=("loss", "lr")))
    assert index.count == 1600 and index.segments == 3 and "lr" in index.names
    series = decode_segments(meta.series_segments(obj.id))
    assert list(series.step) == list(range(1600))
    assert np.isnan(series.values["lr"][:1500]).all() and not np.isnan(series.values["lr"][1500:]).any()
    assert index.last_values["loss"]["step"] == 1599
    index, _ = upload(entries(0, 10))  # not an extension: full rebuild
    assert index.count == 10 and index.segments == 1
    for i in range(40):  # many appends compact into one segment
        index, _ = upload(entries(0, 11 + i))
    assert index.count == 50 and index.segments <= 32


def test_many_appends_merge_the_newest_segments(tmp_path):
    """Past 32 segments only the newest are merged (sizes stay decreasing from the oldest), so
    a long live run never re-merges its whole series; the series stays whole and in order."""
    meta, blobs = MetadataStore(f"sqlite:///{tmp_path / 'm.db'}"), LocalBlobStore(tmp_path / "b")
    meta.upgrade()
    add_user(meta, "ann")
    run = meta.create_node("/ann", "r", "Run", 2, [], "", "{}", None)
    for i in range(1, 201):
        data = entries(0, 10 * i)
        key = new_blob_key()
        writer = blobs.open_writer(key)
        writer.write(data)
        writer.commit()
        obj, _ = meta.put_object(run.id, "metrics/train.yaml", key, len(data), hashlib.md5(data).hexdigest())
        index = index_metric_object(meta, blobs, obj)
        sizes = [n for _, n in meta.series_segment_sizes(obj.id)]
        assert len(sizes) == index.segments <= 32
    assert sizes[0] > sizes[-1] and len(sizes) < 32
    series = decode_segments(meta.series_segments(obj.id))
    assert list(series.step) == list(range(2000)) and index.count == 2000


@pytest.mark.timeout(300)
def test_million_point_series_is_served_fast(em_server, em_add_user):
    name, key = em_add_user()
    api = Api(em_server.base_url, key, name)
    run_id = api.node(f"/{name}", "big", "Run")
    block = entries(0, 10_000)
    spike = (b"- value:\n    loss: 1000000.0\n    accuracy: -5.0\n  sequence:\n    epoch: null\n    step: 7\n"
             b"    timestamp: '2026-01-01T00:00:00.000000+00:00'\n")
    text = block * 50 + spike + block * 50
    reply = api.request("POST", "/apis/v1/objects", params={"path": f"/{name}/big/metrics/train.yaml"},
                        data=text, headers={"Content-Type": "application/octet-stream"}, timeout=280)
    assert reply.status_code == 200, reply.text
    times = []
    for _ in range(3):
        started = time.perf_counter()
        series = api.request("GET", f"/api/ui/v1/runs/{run_id}/series",
                             params={"type": "train", "metric": "loss", "x": "step", "max_points": 1000})
        times.append(time.perf_counter() - started)
        assert series.status_code == 200, series.text
    body = series.json()
    assert body["total"] == 1_000_001 and len(body["x"]) <= 1000
    assert max(body["y"]) == 1_000_000.0 and min(body["y"]) == pytest.approx(1 / 10_000)
    assert times[0] < 1.0, times  # the first request reads the segments from the database
    assert min(times) < 1.0, times  # later ones may come from the in-memory segment cache
    accuracy = api.request("GET", f"/api/ui/v1/runs/{run_id}/series",
                           params={"type": "train", "metric": "accuracy", "x": "time", "max_points": 200}).json()
    assert min(accuracy["y"]) == -5.0 and len(accuracy["x"]) <= 200
