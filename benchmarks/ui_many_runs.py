"""The web UI with many runs, in headless Chromium against a real ``em server``, on SQLite and
on PostgreSQL (``--no-pg``: SQLite only); medians and p95 of REPEATS page loads after a cold one:

(1) **Folder page over N runs** (default 100,000): ``/ui/folders/bench/sweep?recursive=1`` on the
    databases ``benchmarks/many_runs.py`` seeds and caches in ``--data-dir`` (its seeding is the
    upload's parse and indexing path; run here first when the cache is missing). Navigation start
    → the first 50 rows painted (the page's ``performance.mark("em:first-rows")``), with no filter
    (newest first) and with ``many_runs.SEARCH`` in the address (``?q=``).
(2) **Overlay of R runs × P points** (default 100 × 10,000; ``train``/``loss``) on a fresh
    server per database, the runs uploaded over the HTTP API like any run (indexed into the series
    cache at upload): the folder page with the R runs selected, "Charts of many runs" opened: one
    ``/search/series`` request (each series downsampled to 1,000 points, extremes kept) and uPlot
    drawing, timed in the page (``data-ms``: request start → the frame after the chart is drawn).
    Beside it, in the same page: the same series with one request per run
    (``/api/ui/v1/runs/<id>/series``), fetch time only.
(3) Each server's peak RSS while it served the pages (and without its file-backed shared pages:
    SQLite maps its database file, whose pages count in RSS).

Run: ``.venv/bin/python benchmarks/ui_many_runs.py [--runs 100000] [--clone K] [--data-dir /tmp/em-many-runs]
[--overlay-runs 100] [--points 10000] [--repeats 10] [--no-pg]``.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]

import many_runs  # noqa: E402
from support.browser import chromium, sign_in  # noqa: E402
from support.em_server_process import ServerProcess  # noqa: E402
from support.ui_seed import Seeder, metric_text  # noqa: E402

OVERLAY = "/overlay/runs"


def stats(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return f"median {statistics.median(values):7.0f} ms   p95 {p95:7.0f} ms   (n={len(values)})"


class RssWatch:
    """Samples a process's memory every 50 ms in a thread: peak RSS, and peak RSS less its
    file-backed shared pages (SQLite maps its database file: those pages count in RSS but are
    the page cache's), in MiB."""

    def __init__(self, pid: int):
        self.process, self.peak, self.peak_private, self.stop = psutil.Process(pid), 0.0, 0.0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            info = self.process.memory_info()
            self.peak = max(self.peak, info.rss / 2**20)
            self.peak_private = max(self.peak_private, (info.rss - info.shared) / 2**20)


def seed_overlay(base: str, key: str, runs: int, points: int) -> None:
    t0 = time.time() - points
    local = threading.local()

    def upload(i: int) -> None:
        if not hasattr(local, "seeder"):
            local.seeder = Seeder(base, key)
        text = metric_text((k, k // 100, {"loss": math.exp(-k / points * (2 + i / runs)) + 0.05 * math.sin(k / 40 + i)},
                            t0 + k) for k in range(1, points + 1))
        local.seeder.run(OVERLAY, f"run{i:03d}", start=t0, end=t0 + points, hparams={"i": i},
                         metrics={"train": text}, extras=False)

    Seeder(base, key).folder(OVERLAY)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(upload, range(runs)))


def first_rows(page, url: str, repeats: int) -> tuple[float, list[float]]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats + 1):
        page.goto(url)
        page.wait_for_function("() => performance.getEntriesByName('em:first-rows').length > 0", timeout=120_000)
        times.append(page.evaluate("() => performance.getEntriesByName('em:first-rows')[0].startTime"))
        assert page.locator("#runs tbody tr[data-id]").count() == 50
    return times[0], times[1:]


def overlay(page, runs: int, repeats: int) -> tuple[list[float], list[float]]:  # type: ignore[no-untyped-def]
    drawn, per_run = [], []
    for _ in range(repeats + 1):
        page.goto(f"/ui/folders{OVERLAY}")
        page.wait_for_function("() => performance.getEntriesByName('em:first-rows').length > 0", timeout=120_000)
        while page.locator("#runs tbody tr[data-id]").count() < runs:
            shown = page.locator("#runs tbody tr[data-id]").count()
            page.click("#runs-more")
            page.wait_for_function("n => document.querySelectorAll('#runs tbody tr[data-id]').length > n", arg=shown)
        page.check("#check-all")
        page.click("#many-charts > summary")
        page.wait_for_function("n => document.querySelector('#many-chart')?.dataset.lines === String(n) && "
                               "document.querySelector('#many-chart').dataset.ms", arg=runs, timeout=120_000)
        drawn.append(float(page.locator("#many-chart").get_attribute("data-ms")))
        per_run.append(page.evaluate("""async () => {
            const ids = [...document.querySelectorAll('#runs tbody tr[data-id]')].map((r) => r.dataset.id);
            const t = performance.now();
            await Promise.all(ids.map((id) => fetch(`/api/ui/v1/runs/${id}/series?type=train&metric=loss&x=step&max_points=1000`).then((r) => r.json())));
            return performance.now() - t;
        }"""))
    return drawn[1:], per_run[1:]


def watched(server: ServerProcess, label: str, work) -> None:  # type: ignore[no-untyped-def]
    """Start ``server``, run ``work()`` while sampling its RSS, stop it, print the peak."""
    server.start(timeout=1800)  # a migration of a cached database runs at start
    watch = RssWatch(server.pid)
    try:
        work()
    finally:
        watch.stop.set()
        server.stop()
    print(f"{label}: server peak RSS {watch.peak:.0f} MiB ({watch.peak_private:.0f} MiB without "
          "file-backed shared pages)", flush=True)


def folder_page(label: str, server: ServerProcess, key: str, args: argparse.Namespace) -> None:
    def work() -> None:
        with chromium(args.chromium) as browser:
            page = sign_in(browser, server.base_url, key)
            for name, url in (("no filter", "/ui/folders/bench/sweep?recursive=1"),
                              ("filter", f"/ui/folders/bench/sweep?recursive=1&q={quote(many_runs.SEARCH)}")):
                cold, warm = first_rows(page, url, args.repeats)
                print(f"{label}: folder page, {args.runs * (args.clone + 1)} runs, {name}: first rows painted "
                      f"cold {cold:.0f} ms, warm {stats(warm)}", flush=True)
    watched(server, f"{label} (folder page)", work)


def overlay_page(label: str, server: ServerProcess, args: argparse.Namespace) -> None:
    _, key = server.add_user("overlay")

    def work() -> None:
        started = time.perf_counter()
        seed_overlay(server.base_url, key, args.overlay_runs, args.points)
        print(f"{label}: uploaded {args.overlay_runs} runs x {args.points} points in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        with chromium(args.chromium) as browser:
            drawn, per_run = overlay(sign_in(browser, server.base_url, key), args.overlay_runs, args.repeats)
        print(f"{label}: overlay {args.overlay_runs} runs x {args.points} points: one request + drawn "
              f"{stats(drawn)}", flush=True)
        print(f"{label}:   the same series, one request per run (fetch only): {stats(per_run)}", flush=True)
    watched(server, f"{label} (overlay)", work)


def cache_name(args: argparse.Namespace) -> str:
    """many_runs.py's name of its cache (folder and PostgreSQL database) for these arguments."""
    return f"{args.runs}{f'x{args.clone + 1}' if args.clone else ''}"


def seeded(args: argparse.Namespace) -> tuple[Path, dict]:
    """many_runs.py's cache of ``args.runs`` runs (× ``clone + 1``; seeded by running it when missing)."""
    data = args.data_dir / f"runs-{cache_name(args)}{'-nopg' if args.no_pg else ''}"
    if not (data / "seeded.json").exists():
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "many_runs.py"), "--runs", str(args.runs),
                        "--clone", str(args.clone), "--data-dir", str(args.data_dir), "--no-mlflow", "--rounds", "1"]
                       + (["--no-pg"] if args.no_pg else []))  # its own measures may fail: the cache is what counts
    return data, json.loads((data / "seeded.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--clone", type=int, default=0, metavar="K",
                        help="many_runs.py --clone: the seeded runs copied K times (runs x (K + 1))")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/em-many-runs"))
    parser.add_argument("--overlay-runs", type=int, default=100)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    data, seed = seeded(args)
    folder_page("sqlite", ServerProcess(data / "sqlite"), seed["keys"]["sqlite"], args)
    if not args.no_pg:
        pg_url = f"postgresql://postgres@127.0.0.1:5432/em_bench_{cache_name(args)}"  # many_runs.py's database
        folder_page("postgresql", ServerProcess(data / "pg", db=pg_url), seed["keys"]["postgresql"], args)
    with tempfile.TemporaryDirectory() as tmp:
        overlay_page("sqlite", ServerProcess(Path(tmp) / "overlay-sqlite"), args)
        if not args.no_pg:
            from support.team_services import fresh_pg_database
            with fresh_pg_database() as url:
                overlay_page("postgresql", ServerProcess(Path(tmp) / "overlay-pg", db=url), args)
    print(f"(machine: {psutil.cpu_count()} CPUs, load average {psutil.getloadavg()[0]:.1f}, shared with other jobs)")


if __name__ == "__main__":
    main()
