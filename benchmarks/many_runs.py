"""Many runs: search and group N Runs over HTTP on SQLite and PostgreSQL, side by side with
MLflow's ``search_runs`` (SQLite backend) on the same Runs.

Seeding (fast, not timed as part of the measure): Runs go into one folder tree
``/bench/sweep/g00…g99`` with 20 nested hparams of mixed types, 2 metric types × 4 metrics of
100–1,000 points each, 1–3 of 10 labels, and the three statuses. Each Run's rows are derived by
the functions the upload path calls (``indexing.derived_of``: fields, labels, flattened
hparams; ``Series.summaries``: the metric summaries) and written by the store's own writers
(``write_run_fields``/``write_run_hparams``/``write_run_summaries``), 1,000 Runs per
transaction. The points are generated as columns: the YAML parse and the series segments are
left out (``server_series.py`` measures those), so 100k Runs seed in minutes, not hours.

Measured over HTTP against a real ``python -m t9k_em_server`` per database (20 rounds after one
warm-up, median and p95):

- search: ``hparams.optimizer.name = 'Adam' and hparams.data.dataset = 'cifar10' and
  val.accuracy.max > 0.8``, ordered by ``val.loss.min``, first 50 rows + the total;
- group: by ``hparams.bucket`` (20 values) with mean/min/max of ``val.accuracy.max`` and
  ``val.loss.min``;
- the server's RSS after the rounds.

MLflow: the same hparams as params (strings, dotted names) and the 8 ``max``/``min`` summaries
as metrics (one ``log_batch`` per Run), then ``mlflow.search_runs`` with the equivalent filter
and order, ``max_results=50``. MLflow has no total count (it would need every page), so its
number is for the first page only. MLflow seeding is slow (one request per Run), so it gets
``--mlflow-runs`` Runs (default 10,000); ours is also measured at that size for the ratio.

Run: ``.venv/bin/python benchmarks/many_runs.py [--runs 100000] [--mlflow-runs 10000]
[--no-pg] [--no-sqlite] [--no-mlflow]``.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
import requests
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.em_server_process import ServerProcess  # noqa: E402

from t9k_em_server.indexing import derived_of  # noqa: E402
from t9k_em_server.metadata_store import (MetadataStore, Node, NodeView, utcnow,  # noqa: E402
                                          write_run_fields, write_run_hparams, write_run_summaries)
from t9k_em_server.series import Series  # noqa: E402

SEARCH = ("hparams.optimizer.name = 'Adam' and hparams.data.dataset = 'cifar10' "
          "and val.accuracy.max > 0.8")
ORDER = "val.loss.min"
MLFLOW_SEARCH = ("params.`optimizer.name` = 'Adam' and params.`data.dataset` = 'cifar10' "
                 "and metrics.`val.accuracy.max` > 0.8")
MLFLOW_ORDER = "metrics.`val.loss.min` ASC"
GROUPS = 100
ROUNDS = 20
LABELS = [f"label{i}" for i in range(10)]
STATUSES = ["Complete", "Failed", "Running"]


def hparams(rng: random.Random, i: int) -> dict:
    return {
        "optimizer": {"name": rng.choice(["Adam", "SGD", "AdamW", "RMSprop", "Lion"]),
                      "lr": 10 ** rng.uniform(-5, -1), "momentum": rng.choice([0.0, 0.9, 0.99]),
                      "weight_decay": rng.choice([0.0, 1e-4, 5e-4])},
        "model": {"arch": rng.choice(["resnet", "vgg", "vit", "convnext", "mlp", "efficientnet",
                                      "mobilenet", "densenet", "regnet", "swin"]),
                  "depth": rng.choice([18, 34, 50, 101, 152]), "width": rng.choice([32, 64, 128]),
                  "dropout": round(rng.uniform(0, 0.5), 3), "use_bn": rng.random() < 0.5},
        "data": {"batch_size": rng.choice([32, 64, 128, 256]), "augment": rng.random() < 0.5,
                 "dataset": rng.choice(["cifar10", "cifar100", "imagenet"])},
        "train": {"epochs": rng.randint(1, 100), "seed": i, "warmup": rng.randint(0, 5),
                  "scheduler": rng.choice(["cosine", "step", "none"]),
                  "grad_clip": rng.choice([None, 1.0, 5.0]) or 0.0},
        "bucket": f"b{i % 20:02d}", "label_smoothing": rng.choice([0.0, 0.1]),
        "precision": rng.choice(["fp32", "bf16"]),
    }


def series(rng: np.random.Generator, names: tuple[str, ...]) -> Series:
    n = int(rng.integers(100, 1001))
    steps = np.arange(n, dtype=float)
    decay = np.exp(-steps / rng.uniform(50, 400))
    values = {name: (decay * rng.uniform(0.5, 3) if "loss" in name or name == "grad_norm"
                     else 1 - decay * rng.uniform(0.2, 0.9)) + rng.normal(0, 0.01, n)
              for name in names}
    return Series(steps, np.full(n, np.nan), 1.76e9 + steps, values)


def seed(url: str, runs: int, user: str = "bench") -> None:
    """``runs`` Runs under /bench/sweep/gNN (the user and root folder exist already)."""
    meta = MetadataStore(url)
    rng, nrng = random.Random(7), np.random.default_rng(7)
    root = meta.get_node(f"/{user}")
    sweep = meta.create_node(root.path, "sweep", "Folder", 0, [], "", "{}", None)
    folders = [meta.create_node(sweep.path, f"g{g:02d}", "Folder", 0, [], "", "{}", None)
               for g in range(GROUPS)]
    started = time.perf_counter()
    for first in range(0, runs, 1000):
        with meta.writing() as s:
            nodes = []
            for i in range(first, min(runs, first + 1000)):
                folder = folders[i % GROUPS]
                now = utcnow()
                start = 1_764_000_000 + i * 60
                doc = {"name": f"run{i:06d}", "status": STATUSES[i % 3],
                       "startTimestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(start)),
                       "labels": rng.sample(LABELS, rng.randint(1, 3)), "description": ""}
                if doc["status"] != "Running":
                    doc["endTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                                        time.gmtime(start + rng.randint(60, 36000)))
                hp = hparams(rng, i)
                node = NodeView(str(uuid.uuid4()), root.owner_id, folder.id, f"{folder.path}/{doc['name']}",
                                doc["name"], "Run", 2, doc["labels"], "", "{}", None, doc, hp, now, now)
                nodes.append(node)
            s.execute(insert(Node), [dict(
                id=n.id, owner_id=n.owner_id, parent_id=n.parent_id, path=n.path, name=n.name,
                type="Run", storage_type=2, labels=json.dumps(n.labels), description="", extra="{}",
                meta=json.dumps(n.meta), hparams=json.dumps(n.hparams), created_at=n.created_at,
                updated_at=n.updated_at) for n in nodes])
            for n in nodes:
                write_run_fields(s, n.id, derived_of(n, "meta", n.meta))  # type: ignore[arg-type]
                write_run_hparams(s, n.id, n.parent_id, derived_of(n, "hparams", n.hparams))  # type: ignore[arg-type]
                for metric_type, names in (("train", ("loss", "accuracy", "lr", "grad_norm")),
                                           ("val", ("loss", "accuracy", "top5", "f1"))):
                    write_run_summaries(s, n.id, n.parent_id, metric_type,
                                        series(nrng, names).summaries())
        if first % 10000 == 0:
            print(f"    seeded {first + 1000:>7} runs ({time.perf_counter() - started:.0f} s)", flush=True)
    with meta.engine.connect() as connection:  # what autovacuum / PRAGMA optimize keep up to date
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    meta.close()


def percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times) * 1000, times[min(len(times) - 1, int(len(times) * 0.95))] * 1000


def measure(server: ServerProcess, key: str, folder: str) -> dict:
    http, base = requests.Session(), server.base_url
    process = psutil.Process(server.pid)
    search = {"apikey": key, "folder": folder, "recursive": "true", "filter": SEARCH,
              "order_by": ORDER, "page_size": 50}
    group = {"apikey": key, "folder": folder, "recursive": "true", "by": "hparams.bucket",
             "aggregate": ["val.accuracy.max", "val.loss.min"]}
    out: dict = {}
    for name, path, params in (("search", "/apis/v1/search/runs", search),
                               ("group", "/apis/v1/search/groups", group)):
        times, body, peak = [], None, 0
        for round_ in range(ROUNDS + 1):
            started = time.perf_counter()
            reply = http.get(base + path, params=params, timeout=600)
            elapsed = time.perf_counter() - started
            assert reply.status_code == 200, reply.text
            body = reply.json()
            peak = max(peak, process.memory_info().rss)
            if round_:
                times.append(elapsed)
        out[name] = percentiles(times)
        out[name + "_rows"] = body["total"] if name == "search" else len(body["groups"])
        out["rss_mb"] = max(out.get("rss_mb", 0), peak / 2**20)
    return out


def ours(db_url: str | None, runs: int, tmp: Path, label: str) -> dict:
    server = ServerProcess(tmp / f"srv-{label}-{runs}", db=db_url)
    _, key = server.add_user("bench")
    url = db_url or f"sqlite:///{server.data_dir / 'em.db'}"
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    started = time.perf_counter()
    seed(url, runs)
    seeded = time.perf_counter() - started
    server.start()
    try:
        result = measure(server, key, "/bench/sweep")
    finally:
        server.stop()
    return {"seed_s": seeded, **result}


def mlflow_side(runs: int, tmp: Path) -> dict:
    import mlflow
    from mlflow.entities import Metric, Param

    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    client = mlflow.tracking.MlflowClient()
    experiment = client.create_experiment("sweep", artifact_location=str(tmp / "mlruns"))
    rng, nrng = random.Random(7), np.random.default_rng(7)
    started = time.perf_counter()
    for i in range(runs):
        hp = hparams(rng, i)
        rng.sample(LABELS, rng.randint(1, 3))
        run = client.create_run(experiment, run_name=f"run{i:06d}")
        flat = derived_of(NodeView("x", 0, None, "", "", "Run", 2, [], "", "", None, None, hp,
                                   utcnow(), utcnow()), "hparams", hp)
        metrics = []
        for metric_type, names in (("train", ("loss", "accuracy", "lr", "grad_norm")),
                                   ("val", ("loss", "accuracy", "top5", "f1"))):
            for name, summary in series(nrng, names).summaries().items():
                metrics += [Metric(f"{metric_type}.{name}.max", summary.max, 0, 0),
                            Metric(f"{metric_type}.{name}.min", summary.min, 0, 0)]
        client.log_batch(run.info.run_id, metrics=metrics,
                         params=[Param(h.key, str(h.num if h.text is None else h.text))
                                 for h in flat])  # type: ignore[union-attr]
    seeded = time.perf_counter() - started
    times = []
    for round_ in range(ROUNDS // 4 + 1):
        t = time.perf_counter()
        frame = mlflow.search_runs([experiment], filter_string=MLFLOW_SEARCH,
                                   order_by=[MLFLOW_ORDER], max_results=50)
        if round_:
            times.append(time.perf_counter() - t)
    return {"seed_s": seeded, "search": percentiles(times), "search_rows": len(frame)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--mlflow-runs", type=int, default=10_000)
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        backends: list[tuple[str, str | None]] = [] if args.no_sqlite else [("sqlite", None)]
        if not args.no_pg:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from support.team_services import fresh_pg_database
            backends.append(("postgresql", "pg"))
        sizes = sorted({args.runs, args.mlflow_runs} if not args.no_mlflow else {args.runs})
        for label, kind in backends:
            for runs in sizes:
                print(f"{label}: seeding {runs} runs", flush=True)
                if kind == "pg":
                    with fresh_pg_database() as url:
                        results[f"{label} {runs}"] = ours(url, runs, tmp, label)
                else:
                    results[f"{label} {runs}"] = ours(None, runs, tmp, label)
                print(f"  {results[f'{label} {runs}']}", flush=True)
        if not args.no_mlflow:
            print(f"mlflow: seeding {args.mlflow_runs} runs", flush=True)
            results[f"mlflow {args.mlflow_runs}"] = mlflow_side(args.mlflow_runs, tmp)
            print(f"  {results[f'mlflow {args.mlflow_runs}']}", flush=True)
    print(f"\n{'backend':<20} {'seed s':>8} {'search med ms':>14} {'p95':>8} {'rows':>6} "
          f"{'group med ms':>13} {'p95':>8} {'RSS MB':>7}")
    for name, r in results.items():
        group = r.get("group", (float("nan"), float("nan")))
        print(f"{name:<20} {r['seed_s']:>8.0f} {r['search'][0]:>14.1f} {r['search'][1]:>8.1f} "
              f"{r['search_rows']:>6} {group[0]:>13.1f} {group[1]:>8.1f} {r.get('rss_mb', float('nan')):>7.0f}")
    mlflow_key = f"mlflow {args.mlflow_runs}"
    for label in ("sqlite", "postgresql"):
        key = f"{label} {args.mlflow_runs}"
        if mlflow_key in results and key in results:
            print(f"ratio mlflow/{label} at {args.mlflow_runs} runs (search median): "
                  f"{results[mlflow_key]['search'][0] / results[key]['search'][0]:.1f}x")
    print(f"(machine: {os.cpu_count()} CPUs, shared with other jobs)")


if __name__ == "__main__":
    main()
