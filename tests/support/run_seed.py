"""Runs stored the way an upload stores them (object rows, blobs, then ``index_stored_object``),
for the search tests and benchmarks/many_runs.py."""
from __future__ import annotations

import hashlib
from typing import Any

from t9k_em_core import fileio, metadata_file, metric_file as metric_format, run_files
from t9k_em_server.indexing import index_stored_object, parse_document
from t9k_em_server.metadata_store import NodeView
from t9k_em_server.stores import Stores
from t9k_em_server.uploads import new_blob_key


def put(stores: Stores, node: NodeView, key: str, data: bytes) -> None:
    """Store ``data`` as object ``key`` of ``node`` and index it, as the upload route does."""
    document = parse_document(stores, node, key, len(data), lambda: data)
    blob = new_blob_key()
    writer = stores.blobs.open_writer(blob)
    writer.write(data)
    writer.commit()
    obj, old = stores.meta.put_object(node.id, key, blob, len(data), hashlib.md5(data).hexdigest())
    if old:
        stores.blobs.delete([old])
    index_stored_object(stores, node, obj, document=document)


def metric_file(values: dict[str, list[float]], first_step: int = 0, t0: float = 1_764_000_000.0) -> bytes:
    """A metrics/<type>.yaml as the SDK writes it: entry i holds ``values[name][i]`` at step
    ``first_step + i`` (every list has the same length)."""
    names = list(values)
    template, fmt = metric_format.entry_template(names), metric_format.TimestampFormatter()
    count = len(values[names[0]]) if names else 0
    return "".join(template % (*(float(values[n][i]) for n in names), "null", first_step + i,
                               *fmt.parts(t0 + first_step + i)) for i in range(count)).encode()


def add_run(stores: Stores, folder: str, name: str, *, status: str = "Complete",
            start: str = "2026-11-26T10:00:00+00:00", end: str | None = "2026-11-26T11:00:00+00:00",
            labels: list[str] | None = None, description: str = "",
            hparams: dict[str, Any] | None = None, metrics: dict[str, bytes] | None = None) -> NodeView:
    """A Run node under ``folder`` with its metadata.yaml, hyperparameters.yaml and metric files."""
    node = stores.meta.create_node(folder, name, "Run", 2, labels or [], description, "{}", None)
    meta = {"name": name, "status": status, "startTimestamp": start, "labels": labels or [],
            "description": description}
    if end:
        meta["endTimestamp"] = end
    put(stores, node, metadata_file.METADATA_FILE, fileio.dump_yaml(meta).encode())
    if hparams is not None:
        put(stores, node, run_files.HPARAMS_FILE, fileio.dump_yaml(hparams).encode())
    for metric_type, data in (metrics or {}).items():
        put(stores, node, run_files.metric_index_path(metric_type), data)
    return stores.meta.get_node(node.id)  # type: ignore[return-value]
