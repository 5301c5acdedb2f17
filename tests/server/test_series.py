"""The metric series cache: parsing (fast shape, YAML fallback, cut-off tail), incremental
indexing of append-only uploads, downsampling that keeps extremes, and a 1M-point series served
over HTTP in under a second."""
from __future__ import annotations

import datetime as dt
import hashlib
import time

import numpy as np
import pytest
from server_api import Api, metric_entries as entries

from t9k_em_core import layout
from t9k_em_server.blob_store import LocalBlobStore
from t9k_em_server.metadata_store import MetadataStore
from t9k_em_server.series import decode_segments, downsample, index_metric_object, parse_entries
from t9k_em_server.uploads import new_blob_key
from t9k_em_server.users import add_user

pytestmark = pytest.mark.timeout(240)

def yaml_reference(text: bytes) -> list[dict]:
    return layout.load_yaml_text(text.decode())


def test_fast_parse_matches_yaml():
    text = entries(0, 3000)
    series, used = parse_entries(text)
    ref = yaml_reference(text)
    assert used == len(text) and series.count == len(ref) == 3000
    assert np.array_equal(series.step, [e["sequence"]["step"] for e in ref])
    assert np.allclose(series.values["loss"], [e["value"]["loss"] for e in ref])
    epochs = [np.nan if e["sequence"]["epoch"] is None else e["sequence"]["epoch"] for e in ref]
    assert np.allclose(series.epoch, epochs, equal_nan=True)
    times = [dt.datetime.fromisoformat(e["sequence"]["timestamp"]).timestamp() for e in ref]
    assert np.allclose(series.time, times, rtol=0, atol=1e-6)


def test_other_shapes_fall_back_to_yaml():
    text = (b"- value:\n    'odd: name': 1.5\n    loss: .nan\n  sequence:\n    step: '3'\n    epoch: 2.5\n"
            b"    timestamp: '2026-01-01T00:00:00+00:00'\n"
            b"- value: {loss: 0.25}\n  sequence: {epoch: null, step: 4, timestamp: '2026-01-01T00:00:01Z'}\n"
            + entries(5, 7))
    series, used = parse_entries(text)
    assert used == len(text) and series.count == 4
    assert series.values["odd: name"][0] == 1.5 and np.isnan(series.values["loss"][0])
    assert list(series.step) == [3, 4, 5, 6] and series.epoch[0] == 2.5
    assert series.values["loss"][1] == 0.25
    assert series.time[0] == dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc).timestamp()


def test_cut_off_last_entry_is_left_for_later():
    full = entries(0, 10)
    last = full.rindex(b"\n- ") + 1
    for cut in (last + 5, len(full) - 10, len(full) - 1):
        series, used = parse_entries(full[:cut])
        assert series.count == 9 and used == last


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
