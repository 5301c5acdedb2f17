"""Many runs: search and group 100,000 Runs over HTTP on SQLite and on PostgreSQL, side by side
with MLflow's ``search_runs`` (SQLite backend) on the same Runs, in one run, alternating.

Seeding (once; cached in ``--data-dir`` and reused by later rounds). Run ``i`` goes into
``/bench/sweep/p<i // 10000>/g<i % 10>`` (so ``/bench/sweep/p0`` holds the first 10,000 Runs,
the ones MLflow gets) with 20 nested hparams of mixed types, 2 metric types × 4 metrics of
100–1,000 points each, 1–3 of 10 labels and the three statuses. Each Run's files are written
as the SDK writes them (``metadata.yaml`` and ``hyperparameters.yaml`` by ``fileio.dump_yaml``,
``metrics/<type>.yaml`` by ``metric_file.format_entries``), then go through what an upload does
with them: ``indexing.parse_document`` (the bounded YAML loader), ``indexing.derived_of``
(fields, labels, flattened typed hparams), ``series.parse_metric_bytes`` (the server's metric
reader) and ``Series.summaries``/``encode`` (summaries, series segment). A Run's metric file is
one of 1,000 generated per metric type (identical bytes index identically, so each is parsed
once per process; 100k distinct files would be 25 GB of YAML). The rows are written by the
store's writers (``write_run_fields``, ``write_run_hparams``, ``write_run_summaries``) plus the
object, series index and segment rows, 500 Runs per transaction, into both databases from one
pass. The blobs themselves are not kept (search never reads them; the series cache lives in
the database). Then ``ANALYZE`` (SQLite) / ``VACUUM ANALYZE`` (PostgreSQL, what autovacuum
does after a load).

Measured over HTTP against a real ``python -m t9k_em_server`` per database, both running, in
rounds that alternate every measure (one warm-up round left out; median and p95):

- search: ``hparams.optimizer.name = 'Adam' and hparams.data.dataset = 'cifar10' and
  val.accuracy.max > 0.8``, ordered by ``val.loss.min``, first 50 rows + the total, over all
  Runs (``/bench/sweep``, recursive) and over the first 10,000 (``/bench/sweep/p0``);
- group: by ``hparams.bucket`` (20 values) with mean/min/max of ``val.accuracy.max`` and
  ``val.loss.min``, over all Runs;
- MLflow: the same 10,000 Runs (hparams as params with dotted names, the ``min``/``max``
  summaries as metrics), ``mlflow.search_runs`` with the equivalent filter and order,
  ``max_results=50`` (MLflow has no total);
- the same search over all Runs as ``teammate``, a user who sees ``/bench/sweep`` only through
  a share to the group ``bench-team`` (viewer): what sharing costs a search, side by side with
  the owner's in the same rounds (``access.node_for`` resolves the scope either way; a
  non-owner's adds one query of the shares of the scope's Folders);
- each server's RSS, sampled every 0.1 s from its start (migrations included) to its stop.

Run: ``.venv/bin/python benchmarks/many_runs.py [--runs 100000] [--mlflow-runs 10000]
[--rounds 20] [--data-dir /tmp/em-many-runs] [--workers 2] [--clone K] [--no-pg] [--no-mlflow]``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import requests
from sqlalchemy import insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.em_server_process import ServerProcess  # noqa: E402

from t9k_em_core import fileio, metadata_file, metric_file, run_files  # noqa: E402
from t9k_em_server.config import Limits  # noqa: E402
from t9k_em_server.indexing import derived_of, parse_document  # noqa: E402
from t9k_em_server.metadata_store import (MetadataStore, Node, NodeView, SeriesIndex,  # noqa: E402
                                          SeriesSegment, StoredObject, utcnow, write_run_fields,
                                          write_run_hparams, write_run_summaries)
from t9k_em_server.series import parse_metric_bytes  # noqa: E402
from t9k_em_server.stores import Stores  # noqa: E402
from t9k_em_server.uploads import new_blob_key  # noqa: E402

SEARCH = ("hparams.optimizer.name = 'Adam' and hparams.data.dataset = 'cifar10' "
          "and val.accuracy.max > 0.8")
ORDER = "val.loss.min"
MLFLOW_SEARCH = ("params.`optimizer.name` = 'Adam' and params.`data.dataset` = 'cifar10' "
                 "and metrics.`val.accuracy.max` > 0.8")
MLFLOW_ORDER = "metrics.`val.loss.min` ASC"
PART = 10_000      #: Runs per /bench/sweep/p<k>
LEAVES = 10        #: folders g0..g9 per part
BATCH = 500
VARIANTS = 1000   #: distinct metric files per metric type
LABELS = [f"label{i}" for i in range(10)]
STATUSES = ["Complete", "Failed", "Running"]
METRICS = {"train": ("loss", "accuracy", "lr", "grad_norm"), "val": ("loss", "accuracy", "top5", "f1")}


# ------------------------------------------------------------------------------------ runs

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


def metric_bytes(metric_type: str, variant: int) -> bytes:
    """One of ``VARIANTS`` ``metrics/<type>.yaml`` files of 100–1,000 entries, as the SDK's
    writer spells them."""
    nrng = np.random.default_rng([variant, len(metric_type)])
    names = METRICS[metric_type]
    n = int(nrng.integers(100, 1001))
    steps = np.arange(n)
    decay = np.exp(-steps / nrng.uniform(50, 400))
    columns = [((decay * nrng.uniform(0.5, 3) if "loss" in name or name == "grad_norm"
                 else 1 - decay * nrng.uniform(0.2, 0.9)) + nrng.normal(0, 0.01, n)).tolist()
               for name in names]
    micros = ((1_764_000_000 + steps * 6) * 1_000_000).tolist()
    return metric_file.format_entries(metric_file.entry_pieces(names), metric_file.TimestampFormatter(),
                                      columns, [metric_file.NO_EPOCH] * n, steps.tolist(), micros)


@lru_cache(maxsize=None)
def indexed_metric(metric_type: str, variant: int) -> tuple[Any, bytes, int, str]:
    """(Series, segment, size, md5) of a metric file variant, parsed as an upload parses it
    (identical bytes index identically, so each variant is parsed once per process)."""
    data = metric_bytes(metric_type, variant)
    values, consumed = parse_metric_bytes([data])
    assert consumed == len(data)
    return values, values.encode(), len(data), hashlib.md5(data).hexdigest()


def run_files_of(i: int) -> tuple[dict, dict[str, bytes], dict[str, int]]:
    """(metadata document, {object key: bytes} of its YAML documents as the SDK writes them,
    {metric type: variant of its metric file}) of Run ``i``."""
    rng = random.Random(i)
    start = 1_764_000_000 + i * 60
    doc = {"name": f"run{i:06d}", "status": STATUSES[i % 3],
           "startTimestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(start)),
           "labels": rng.sample(LABELS, rng.randint(1, 3)), "description": ""}
    if doc["status"] != "Running":
        doc["endTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                            time.gmtime(start + rng.randint(60, 36000)))
    files = {metadata_file.METADATA_FILE: fileio.dump_yaml(doc).encode(),
             run_files.HPARAMS_FILE: fileio.dump_yaml(hparams(rng, i)).encode()}
    return doc, files, {metric_type: rng.randrange(VARIANTS) for metric_type in METRICS}


def folder_of(i: int) -> str:
    return f"/bench/sweep/p{i // PART}/g{i % LEAVES}"


@dataclass
class IndexedRun:
    """What an upload of Run ``i`` leaves in the database."""

    node: NodeView
    objects: list[tuple[str, str, int, str]]          #: key, blob key, size, md5
    series: dict[str, tuple[Any, bytes]]               #: object key → (Series, segment)


_FOLDERS: dict[str, tuple[str, int]] = {}  # path → (id, owner id); set before the workers fork


def indexed_run(i: int) -> IndexedRun:
    """Run ``i`` through the upload's parse and indexing steps (no database)."""
    doc, files, variants = run_files_of(i)
    folder_id, owner = _FOLDERS[folder_of(i)]
    now = utcnow()
    node = NodeView(str(uuid.uuid4()), owner, folder_id, f"{folder_of(i)}/{doc['name']}", doc["name"],
                    "Run", 2, doc["labels"], "", "{}", None, None, None, now, now)
    parsing = Stores(None, None, Limits())  # type: ignore[arg-type]  # parse_document reads limits only
    documents, objects = {}, []
    for key, data in files.items():
        objects.append((key, new_blob_key(), len(data), hashlib.md5(data).hexdigest()))
        documents["meta" if key == metadata_file.METADATA_FILE else "hparams"] = parse_document(
            parsing, node, key, len(data), lambda data=data: data)
    series = {}
    for metric_type, variant in variants.items():
        values, segment, size, md5 = indexed_metric(metric_type, variant)
        key = run_files.metric_index_path(metric_type)
        objects.append((key, new_blob_key(), size, md5))
        series[key] = (values, segment)
    return IndexedRun(NodeView(**{**node.__dict__, **documents}), objects, series)


def indexed_batch(first: int, count: int) -> list[IndexedRun]:
    return [indexed_run(i) for i in range(first, first + count)]


def write_batch(meta: MetadataStore, runs: list[IndexedRun]) -> None:
    """The rows of ``runs`` in one transaction, by the store's writers."""
    with meta.writing() as s:
        s.execute(insert(Node), [dict(
            id=r.node.id, owner_id=r.node.owner_id, parent_id=r.node.parent_id, path=r.node.path,
            name=r.node.name, type="Run", storage_type=2, labels=json.dumps(r.node.labels),
            description="", extra="{}", meta=json.dumps(r.node.meta, default=str),
            hparams=json.dumps(r.node.hparams, default=str), created_at=r.node.created_at,
            updated_at=r.node.updated_at) for r in runs])
        rows = [dict(node_id=r.node.id, key=k, blob_key=b, size=n, md5=m, updated_at=r.node.updated_at)
                for r in runs for k, b, n, m in r.objects]
        ids = s.execute(insert(StoredObject).returning(StoredObject.id, sort_by_parameter_order=True),
                        rows).scalars().all()
        object_ids = {(row["node_id"], row["key"]): (oid, row) for row, oid in zip(rows, ids)}
        write_run_fields(s, [(r.node.id, r.node.parent_id, derived_of(r.node, "meta", r.node.meta))
                             for r in runs])  # type: ignore[misc]
        write_run_hparams(s, [(r.node.id, r.node.parent_id, derived_of(r.node, "hparams", r.node.hparams))
                              for r in runs])  # type: ignore[misc]
        index_rows, segment_rows = [], []
        for metric_type in METRICS:
            key = run_files.metric_index_path(metric_type)
            write_run_summaries(s, metric_type, [(r.node.id, r.node.parent_id, r.series[key][0].summaries())
                                                 for r in runs])  # type: ignore[misc]
            for r in runs:
                values, segment = r.series[key]
                oid, row = object_ids[(r.node.id, key)]
                index_rows.append(dict(object_id=oid, blob_key=row["blob_key"], indexed_bytes=row["size"],
                                       prefix_md5=row["md5"], count=values.count, segments=1,
                                       names=json.dumps(list(values.values)),
                                       last_values=json.dumps(values.last_values())))
                segment_rows.append(dict(object_id=oid, seq=0, data=segment))
        s.execute(insert(SeriesIndex), index_rows)
        s.execute(insert(SeriesSegment), segment_rows)


def make_folders(meta: MetadataStore, runs: int) -> dict[str, tuple[str, int]]:
    root = meta.get_node("/bench")
    assert root is not None
    meta.create_node("/bench", "sweep", "Folder", 0, [], "", "{}", None)
    folders = {}
    for part in range((runs + PART - 1) // PART):
        meta.create_node("/bench/sweep", f"p{part}", "Folder", 0, [], "", "{}", None)
        for leaf in range(LEAVES):
            node = meta.create_node(f"/bench/sweep/p{part}", f"g{leaf}", "Folder", 0, [], "", "{}", None)
            folders[node.path] = (node.id, root.owner_id)
    return folders


def seed(urls: list[str], runs: int, workers: int) -> float:
    """``runs`` Runs into every database of ``urls`` (each has the user ``bench`` already)."""
    metas = [MetadataStore(url) for url in urls]
    folders = [make_folders(meta, runs) for meta in metas]
    _FOLDERS.update(folders[0])
    started = time.perf_counter()
    context = multiprocessing.get_context("fork")
    batches = [(first, min(BATCH, runs - first)) for first in range(0, runs, BATCH)]
    window = 2 * workers  # batches in flight (each holds its Runs' series in memory)
    with context.Pool(workers) as pool:
        for n, batch in ((n, batch) for w in range(0, len(batches), window)
                         for n, batch in enumerate(pool.imap(_indexed_batch_star, batches[w:w + window]), w)):
            for meta, by_path in zip(metas, folders):
                for r in batch:  # the same Runs in each database, under its own folder ids
                    folder_id = by_path[folder_of(int(r.node.name[3:]))][0]
                    r.node = NodeView(**{**r.node.__dict__, "parent_id": folder_id})
                write_batch(meta, batch)
            if n % 20 == 19:
                print(f"    seeded {(n + 1) * BATCH:>7} runs ({time.perf_counter() - started:.0f} s)",
                      flush=True)
    for meta in metas:  # what PRAGMA optimize / autovacuum do after a load
        with meta.engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
                connection.exec_driver_sql("VACUUM ANALYZE")
            else:
                connection.exec_driver_sql("ANALYZE")
                connection.commit()
        meta.close()
    return time.perf_counter() - started


def clone_parts(urls: list[str], runs: int, copies: int) -> float:
    """Copy the index rows of the ``runs`` seeded Runs (all in ``/bench/sweep/p0``) into
    ``copies`` more parts ``p1…``, row for row with new ids: ``runs × (copies + 1)`` Runs with the
    seeded value distributions repeated, in minutes instead of hours (``--clone``). Only what
    search reads is copied (nodes, run fields, labels, hparams, summaries, folder fields)."""
    from sqlalchemy import String, func, literal, select

    from t9k_em_server.metadata_store import FolderField, RunFields, RunHparam, RunLabel, RunSummary

    assert runs <= PART, "--clone copies the first part only"
    started = time.perf_counter()
    for url in urls:
        meta = MetadataStore(url)
        old = [meta.get_node(f"/bench/sweep/p0/g{leaf}") for leaf in range(LEAVES)]
        for k in range(1, copies + 1):
            meta.create_node("/bench/sweep", f"p{k}", "Folder", 0, [], "", "{}", None)
            new = [meta.create_node(f"/bench/sweep/p{k}", f"g{leaf}", "Folder", 0, [], "", "{}", None)
                   for leaf in range(LEAVES)]
            suffix = literal(f"{k:06d}", String())
            with meta.engine.begin() as conn:
                for source, target in zip(old, new):
                    renamed = {"id": func.substr(Node.id, 1, 30, type_=String()) + suffix,
                               "parent_id": literal(target.id, String()),
                               "path": func.replace(Node.path, "/p0/", f"/p{k}/", type_=String())}
                    cols = list(Node.__table__.columns)
                    conn.execute(insert(Node.__table__).from_select(
                        [c.name for c in cols], select(*[renamed.get(c.name, c) for c in cols])
                        .where(Node.parent_id == source.id, Node.type == "Run")))
                    runs_of = select(Node.id).where(Node.parent_id == source.id, Node.type == "Run")
                    for table in (RunFields, RunLabel, RunHparam, RunSummary, FolderField):
                        t = table.__table__
                        moved = {}
                        if "node_id" in t.c:
                            moved["node_id"] = func.substr(t.c.node_id, 1, 30, type_=String()) + suffix
                        if "folder_id" in t.c:
                            moved["folder_id"] = literal(target.id, String())
                        where = (t.c.folder_id == source.id) if table is FolderField else t.c.node_id.in_(runs_of)
                        conn.execute(insert(t).from_select(
                            [c.name for c in t.columns], select(*[moved.get(c.name, c) for c in t.columns]).where(where)))
            print(f"    cloned part p{k} ({time.perf_counter() - started:.0f} s)", flush=True)
        with meta.engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
            else:
                connection.exec_driver_sql("ANALYZE")
                connection.commit()
        meta.close()
    return time.perf_counter() - started


def _indexed_batch_star(args: tuple[int, int]) -> list[IndexedRun]:
    return indexed_batch(*args)


# ------------------------------------------------------------------------------------ mlflow

def mlflow_seed(runs: int, path: Path) -> Any:
    """The first ``runs`` Runs in an MLflow SQLite store at ``path`` (reused when complete)."""
    import mlflow
    from mlflow.entities import Metric, Param

    from t9k_em_server.indexing import flatten_hparams

    mlflow.set_tracking_uri(f"sqlite:///{path / 'mlflow.db'}")
    client = mlflow.tracking.MlflowClient()
    done = path / "mlflow-seeded.json"
    if done.exists() and json.loads(done.read_text())["runs"] == runs:
        return json.loads(done.read_text())["experiment"]
    experiment = client.create_experiment(f"sweep-{uuid.uuid4().hex[:6]}",
                                          artifact_location=str(path / "mlruns"))
    started = time.perf_counter()
    for i in range(runs):
        doc, files, variants = run_files_of(i)
        run = client.create_run(experiment, run_name=doc["name"])
        params = [Param(h.key, str(h.num if h.text is None else h.text))
                  for h in flatten_hparams(fileio.load_yaml_text(files[run_files.HPARAMS_FILE].decode()))]
        metrics = []
        for metric_type, variant in variants.items():
            for name, summary in indexed_metric(metric_type, variant)[0].summaries().items():
                metrics += [Metric(f"{metric_type}.{name}.max", summary.max, 0, 0),
                            Metric(f"{metric_type}.{name}.min", summary.min, 0, 0)]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
    done.write_text(json.dumps({"runs": runs, "experiment": experiment,
                                "seed_s": time.perf_counter() - started}))
    return experiment


# ------------------------------------------------------------------------------------ measure

class RssSampler(threading.Thread):
    """Peak RSS of a process, sampled every 0.1 s until ``stop``."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.process, self.peak, self._stop_event = psutil.Process(pid), 0, threading.Event()
        self.start()

    def run(self) -> None:
        while not self._stop_event.wait(0.1):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return self.peak / 2**20


def percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times) * 1000, times[min(len(times) - 1, int(len(times) * 0.95))] * 1000


def http_measure(server: ServerProcess, key: str, path: str, params: dict) -> Any:
    http = requests.Session()

    def once() -> tuple[float, dict]:
        started = time.perf_counter()
        reply = http.get(server.base_url + path, params={"apikey": key, **params}, timeout=600)
        elapsed = time.perf_counter() - started
        assert reply.status_code == 200, reply.text
        return elapsed, reply.json()
    return once


def share_through_group(server: ServerProcess) -> str:
    """Create ``teammate`` in group ``bench-team`` and share ``/bench/sweep`` with the group as
    viewer, in the server's stores; returns teammate's key."""
    _, key = server.add_user("teammate")
    server.add_group("bench-team", ["teammate"])
    with server.metadata() as meta:
        sweep = meta.get_node("/bench/sweep")
        assert sweep is not None, "seed first"
        meta.share(sweep.id, "group", "bench-team", "viewer")
    return key


def scope_cost(server: ServerProcess, keys: dict[str, str], calls: int = 500) -> dict[str, float]:
    """Median µs of resolving the search scope ``/bench/sweep`` (``access.node_for``, what every
    search does first) for each user of ``keys`` ({name: key}), in this process, alternating."""
    from t9k_em_server.access import node_for
    from t9k_em_server.users import hash_key

    with server.metadata() as meta:
        users = {name: meta.user_by_key_hash(hash_key(key)) for name, key in keys.items()}
        times: dict[str, list[float]] = {name: [] for name in users}
        for _ in range(calls):
            for name, user in users.items():
                started = time.perf_counter()
                node_for(meta, user, "/bench/sweep")
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) * 1e6 for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--mlflow-runs", type=int, default=PART)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/em-many-runs"))
    parser.add_argument("--workers", type=int, default=2, help="processes that index while seeding")
    parser.add_argument("--clone", type=int, default=0, metavar="K",
                        help="then copy the seeded Runs K times (row copies with new ids): "
                             "runs × (K + 1) Runs quickly, values repeating")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args()
    data = args.data_dir / f"runs-{args.runs}{f'x{args.clone + 1}' if args.clone else ''}{'-nopg' if args.no_pg else ''}"
    data.mkdir(parents=True, exist_ok=True)
    marker = data / "seeded.json"
    total = args.runs * (args.clone + 1)
    db_name = f"em_bench_{args.runs}" + (f"x{args.clone + 1}" if args.clone else "")
    pg_url = f"postgresql://postgres@127.0.0.1:5432/{db_name}"
    backends = {"sqlite": ServerProcess(data / "sqlite")}
    if not args.no_pg:
        backends["postgresql"] = ServerProcess(data / "pg", db=pg_url)
    if not marker.exists():
        if not args.no_pg:
            import psycopg
            with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
                admin.execute(f'CREATE DATABASE "{db_name}"')
        keys = {label: server.add_user("bench")[1] for label, server in backends.items()}
        urls = [f"sqlite:///{backends['sqlite'].data_dir / 'em.db'}"]
        if not args.no_pg:
            urls.append(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
        print(f"seeding {args.runs} runs into {', '.join(backends)}", flush=True)
        seconds = seed(urls, args.runs, args.workers)
        if args.clone:
            seconds += clone_parts(urls, args.runs, args.clone)
        marker.write_text(json.dumps({"runs": args.runs, "keys": keys, "seed_s": seconds}))
    seeded = json.loads(marker.read_text())
    print(f"seeded {seeded['runs']} runs (x{args.clone + 1}) in {seeded['seed_s']:.0f} s (cached in {data})", flush=True)
    experiment = None
    if not args.no_mlflow:
        experiment = mlflow_seed(args.mlflow_runs, data)
        print(f"mlflow: {args.mlflow_runs} runs ({json.loads((data / 'mlflow-seeded.json').read_text())['seed_s']:.0f} s to seed)",
              flush=True)

    team = data / "team.json"
    if not team.exists():  # older caches: add the teammate once
        team.write_text(json.dumps({label: share_through_group(server) for label, server in backends.items()}))
    teammates = json.loads(team.read_text())

    load_before = os.getloadavg()
    psutil.cpu_percent()
    samplers, measures = {}, {}
    try:
        for label, server in backends.items():
            server.start(timeout=1800)  # a migration of the seeded database runs at start
            samplers[label] = RssSampler(server.pid)
            key = seeded["keys"][label]
            search = {"filter": SEARCH, "order_by": ORDER, "page_size": 50, "recursive": "true"}
            measures[f"{label} search {total}"] = http_measure(
                server, key, "/apis/v1/search/runs", {**search, "folder": "/bench/sweep"})
            measures[f"{label} search {total} shared"] = http_measure(
                server, teammates[label], "/apis/v1/search/runs", {**search, "folder": "/bench/sweep"})
            measures[f"{label} search {PART}"] = http_measure(
                server, key, "/apis/v1/search/runs", {**search, "folder": "/bench/sweep/p0"})
            measures[f"{label} group {total}"] = http_measure(
                server, key, "/apis/v1/search/groups",
                {"folder": "/bench/sweep", "recursive": "true", "by": "hparams.bucket",
                 "aggregate": ["val.accuracy.max", "val.loss.min"]})
        if experiment is not None:
            import mlflow

            def mlflow_once() -> tuple[float, dict]:
                started = time.perf_counter()
                frame = mlflow.search_runs([experiment], filter_string=MLFLOW_SEARCH,
                                           order_by=[MLFLOW_ORDER], max_results=50)
                return time.perf_counter() - started, {"rows": len(frame)}
            measures[f"mlflow search {args.mlflow_runs}"] = mlflow_once
        times: dict[str, list[float]] = {name: [] for name in measures}
        answers: dict[str, Any] = {}
        for round_ in range(args.rounds + 1):
            for name, once in measures.items():  # alternating: every measure once per round
                elapsed, answers[name] = once()
                if round_:
                    times[name].append(elapsed)
    finally:
        rss = {label: sampler.stop() for label, sampler in samplers.items()}
        for server in backends.values():
            if server.proc is not None:
                server.stop()
    load_after, busy = os.getloadavg(), psutil.cpu_percent()
    scope_us = {label: scope_cost(server, {"owner": seeded["keys"][label], "group viewer": teammates[label]})
                for label, server in backends.items()}

    print(f"\n{'measure':<34} {'median ms':>10} {'p95 ms':>8} {'rows/total':>11}")
    for name, values in times.items():
        answer = answers[name]
        rows = len(answer["groups"]) if "groups" in answer else answer.get("total", answer.get("rows"))
        median, p95 = percentiles(values)
        print(f"{name:<34} {median:>10.1f} {p95:>8.1f} {rows:>11}")
    for label, peak in rss.items():
        print(f"{label} server peak RSS: {peak:.0f} MB")
    ml = f"mlflow search {args.mlflow_runs}"
    for label in backends:
        own, shared = times[f"{label} search {total}"], times[f"{label} search {total} shared"]
        assert answers[f"{label} search {total}"] == answers[f"{label} search {total} shared"]
        ratios = [b / a for a, b in zip(own, shared)]
        print(f"ratio shared (group viewer) / owner, {label} search {total} (median of per-round "
              f"ratios): {statistics.median(ratios):.2f}x; resolving the scope in-process: "
              + ", ".join(f"{who} {us:.0f} µs" for who, us in scope_us[label].items()))
        ours = f"{label} search {PART}"
        if ml in times and ours in times and args.mlflow_runs == PART:
            print(f"ratio mlflow / {label} at {PART} runs (search median): "
                  f"{statistics.median(times[ml]) / statistics.median(times[ours]):.1f}x")
    print(f"machine: {os.cpu_count()} CPUs; load average before {load_before[0]:.1f}, after "
          f"{load_after[0]:.1f}; CPU busy during the rounds {busy:.0f}% (other jobs included)")


if __name__ == "__main__":
    main()
