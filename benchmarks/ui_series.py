"""Run page with a 1,000,000-point series: time until its chart is drawn, in headless Chromium.

A Run with one metric file of N entries (``train``: ``loss``; ~110 MB of YAML for N = 1M) is
uploaded to a local ``em server``. Then:

  (1) cold: the first series request, which indexes the metric object into the series cache;
  (2) the run page, opened REPEATS times in Chromium: navigation start -> the chart's
      ``data-points`` attribute is set (series fetched, downsampled server-side to <= 1,500
      points, drawn by uPlot); median reported;
  (3) the series endpoint alone (warm), median;
  (4) the peer path without server-side downsampling: downloading the raw ``metrics/train.yaml``
      object (what a UI reading the 0.6.0b0 files directly would have to fetch before parsing),
      median; the ratio (4)/(2) is printed.

Usage: .venv/bin/python benchmarks/ui_series.py [--points 1000000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support.em_server_process import ServerProcess  # noqa: E402
from support.browser import chromium, sign_in  # noqa: E402
from support.ui_seed import Seeder, metric_text  # noqa: E402


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    server = ServerProcess(tempfile.mkdtemp(prefix="em-bench-ui-"))
    user, key = server.add_user("bench")
    server.start()
    try:
        seeder = Seeder(server.base_url, key)
        t0 = time.time() - args.points
        start = time.perf_counter()
        text = metric_text((k, k // 1000, {"loss": math.exp(-k / args.points * 4) + 0.1 * math.sin(k / 50)}, t0 + k / 100)
                           for k in range(1, args.points + 1))
        print(f"generated {args.points:,} entries ({len(text) / 2**20:.0f} MiB) in {time.perf_counter() - start:.1f}s")
        start = time.perf_counter()
        run_id, path = seeder.run(f"/{user}/bench", "million", start=t0, end=time.time(), metrics={"train": text})
        print(f"uploaded in {time.perf_counter() - start:.1f}s")
        del text

        series_url = f"{server.base_url}/api/ui/v1/runs/{run_id}/series"
        params = {"type": "train", "metric": "loss", "x": "step", "max_points": 1500, "apikey": key}
        cold = timed(lambda: requests.get(series_url, params=params, timeout=600).raise_for_status())
        print(f"(1) cold series request (indexes the metric object): {cold:.2f}s")

        with chromium(args.chromium) as browser:
            page = sign_in(browser, server.base_url, key)
            page_times, points = [], None
            for _ in range(args.repeats):
                start = time.perf_counter()
                page.goto(f"/ui/runs/{run_id}")
                page.wait_for_selector('.chart[data-metric="loss"][data-points]', timeout=60_000)
                page_times.append(time.perf_counter() - start)
                points = page.get_attribute('.chart[data-metric="loss"]', "data-points")
            breakdown = page.evaluate("""() => performance.getEntriesByType('resource')
                .filter((e) => e.name.includes('/api/ui/') || e.name.includes('/static/'))
                .map((e) => [new URL(e.name).pathname.split('/').slice(-2).join('/'), e.startTime, e.duration])""")

        warm = [timed(lambda: requests.get(series_url, params=params, timeout=600).raise_for_status())
                for _ in range(args.repeats)]
        raw = [timed(lambda: requests.get(f"{server.base_url}/apis/v1/objects",
                                          params={"path": f"{path}/metrics/train.yaml", "apikey": key},
                                          timeout=600).content)
               for _ in range(args.repeats)]
        page_med, warm_med, raw_med = (statistics.median(v) for v in (page_times, warm, raw))
        print(f"(2) run page, navigation -> chart drawn: median {page_med:.3f}s "
              f"(runs: {', '.join(f'{t:.3f}' for t in page_times)}); points drawn {points}")
        print("    last page load, resource timings (start -> duration, ms):")
        for name, begin, duration in breakdown:
            print(f"      {name:40s} {begin:7.0f} -> {duration:6.0f}")
        print(f"(3) series endpoint, warm: median {warm_med * 1000:.0f} ms")
        print(f"(4) raw metric object download: median {raw_med:.3f}s; "
              f"ratio raw download / whole page = {raw_med / page_med:.1f}x")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
