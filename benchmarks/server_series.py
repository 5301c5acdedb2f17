"""Metric series on the tracking server: indexing at upload, incremental re-upload, serving.

Starts a real ``python -m t9k_em_server`` (SQLite + blob folder in a temp dir) and measures, over
HTTP, with the SDK's exact entry format (``metric_file.entry_template``):

- upload + index of a metrics/<type>.yaml of N entries (the request returns after indexing);
- re-upload of the same file with 100 more entries (incremental: only the new bytes are parsed);
- ``GET /api/ui/v1/runs/<id>/series?max_points=1000``: the first request (segments read from the
  database) and the median of 7 more (segments from the server's in-memory cache);
- the peer baseline: what serving costs without a cache, i.e. PyYAML's C loader on the file
  (``yaml.load(..., CSafeLoader)``, what the 0.6.0b0 SDK's readers do). It is timed on the first
  20 000 entries (median of 3) and scaled linearly to N, because it is far too slow to run on
  a million.

Run: ``.venv/bin/python benchmarks/server_series.py [N ...]`` (default 100000 1000000).
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.em_server_process import ServerProcess  # noqa: E402

from t9k_em_core import metric_file  # noqa: E402


def metric_text(start: int, stop: int) -> bytes:
    template, fmt = metric_file.entry_template(("loss", "accuracy")), metric_file.TimestampFormatter()
    t0 = time.time()
    block = [template % (1.0 / (i + 1), 0.5 + i * 1e-7, "null" if i % 100 else i // 100, i, *fmt.parts(t0 + i))
             for i in range(start, stop)]
    return "".join(block).encode()


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main(sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "srv")
        name, key = server.add_user("bench")
        server.start()
        http = requests.Session()
        base, auth = server.base_url, {"apikey": key}
        try:
            print(f"{'entries':>9} {'MB':>6} {'upload+index s':>15} {'append 100 s':>13} "
                  f"{'serve ms first':>15} {'serve ms cached':>16} {'yaml.load s*':>12} {'ratio':>8}")
            for n in sizes:
                run = http.post(f"{base}/apis/v1/nodes", params=auth, json={
                    "parent": f"/{name}", "name": f"r{n}", "type": "Run", "extra": "{}"}).json()["id"]
                path = f"/{name}/r{n}/metrics/train.yaml"
                text = metric_text(0, n)

                def upload(data: bytes) -> None:
                    reply = http.post(f"{base}/apis/v1/objects", params={**auth, "path": path}, data=data,
                                      headers={"Content-Type": "application/octet-stream"}, timeout=600)
                    reply.raise_for_status()

                index_s, _ = timed(lambda: upload(text), 1)
                append_s, _ = timed(lambda: upload(text + metric_text(n, n + 100)), 1)

                def serve() -> dict:
                    reply = http.get(f"{base}/api/ui/v1/runs/{run}/series", params={
                        **auth, "type": "train", "metric": "loss", "x": "step", "max_points": 1000})
                    reply.raise_for_status()
                    return reply.json()

                first_s, _ = timed(serve, 1)
                serve_s, body = timed(serve, 7)
                assert body["total"] == n + 100, body["total"]
                loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
                sample = min(n, 20_000)
                head = text[:text.index(b"\n- ", len(metric_text(0, sample)) - 1) + 1] if n > sample else text
                yaml_s, _ = timed(lambda: yaml.load(head, Loader=loader), 3)
                yaml_s *= n / sample
                print(f"{n:>9} {len(text) / 1e6:>6.0f} {index_s:>15.2f} {append_s:>13.3f} "
                      f"{first_s * 1000:>15.1f} {serve_s * 1000:>16.1f} {yaml_s:>12.2f} "
                      f"{yaml_s / first_s:>7.0f}x")
            print("* PyYAML CSafeLoader on 20 000 entries, scaled linearly to the row's entry count;"
                  " ratio = yaml.load / first serve")
        finally:
            server.stop()


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100_000, 1_000_000])
