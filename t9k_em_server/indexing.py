"""What the server parses from an object, and what it derives from it once stored, for the web UI.

- The YAML documents the server reads (``DOCUMENTS``: ``metadata.yaml`` of a Run/Artifact,
  ``hyperparameters.yaml``, ``platform.yaml`` and ``git.yaml`` of a Run, ``references.yaml`` of an
  Artifact) are parsed *before* the object is stored, with the bounded loader
  (``t9k_em_core.bounded_yaml``, ``Limits.yaml``). A document over those limits (a "billion
  laughs" alias bomb, a recursive alias, too deep, too large) is refused with a 400 naming the
  file and the limit, and nothing changes. A document that is merely not valid YAML is stored and
  left out of the derived data.
- ``metadata.yaml`` and ``hyperparameters.yaml`` are then kept on the node (folder listings read no
  blobs); for a Run also what search queries (``query.py``) read: status, description, times and
  labels (``run_fields_of``), and the hyperparameters flattened to dotted keys with typed values
  (``flatten_hparams``).
- ``metrics/<type>.yaml`` of a Run is indexed into the series cache and the metric summaries
  (``series.py``).

Indexing never fails an upload once the checks passed: a problem only leaves the derived data
stale (logged). The series cache also rebuilds lazily when read.
"""
from __future__ import annotations

import json
import logging
import math
from datetime import datetime, timezone
from typing import Any, Callable

from t9k_em_core import artifact_files, fileio, metadata_file, run_files
from t9k_em_core.bounded_yaml import YamlLimitError

from .errors import ApiError
from .metadata_store import HparamValue, NodeView, ObjectView, RunFieldsView
from .series import index_metric_object, metric_type_of
from .stores import Stores

log = logging.getLogger(__name__)

MAX_HPARAMS = 1000     #: flattened keys indexed per Run (the rest are not searchable)
MAX_KEY_CHARS = 512
MAX_TEXT_CHARS = 512   #: longer string values are not indexed (index entries stay small)
MAX_DEPTH = 32

#: (node type, key) of every document the server parses → the node field it is kept in, if any
DOCUMENTS = {("Run", metadata_file.METADATA_FILE): "meta", ("Artifact", metadata_file.METADATA_FILE): "meta",
             ("Run", run_files.HPARAMS_FILE): "hparams", ("Run", run_files.PLATFORM_FILE): None,
             ("Run", run_files.GIT_FILE): None, ("Artifact", artifact_files.REFERENCES_FILE): None}

NOT_PARSED = object()  #: ``parse_document``'s answer for an object that is no such document


def flatten_hparams(document: Any) -> list[HparamValue]:
    """``hyperparameters.yaml`` as dotted keys with typed values, in document order.

    Numbers (finite), strings and bools keep their type; lists become their JSON text; ``None``
    and non-finite numbers are left out, and so are keys or strings too long to index.
    """
    out: list[HparamValue] = []

    def walk(value: Any, key: str, depth: int) -> None:
        if len(out) >= MAX_HPARAMS or len(key) > MAX_KEY_CHARS:
            return
        if isinstance(value, dict):
            if depth < MAX_DEPTH:
                for k, v in value.items():
                    walk(v, f"{key}.{k}" if key else str(k), depth + 1)
            return
        if isinstance(value, bool):
            out.append(HparamValue(key, "bool", 1.0 if value else 0.0, None))
        elif isinstance(value, (int, float)):
            try:
                number = float(value)
            except OverflowError:
                return
            if math.isfinite(number):
                out.append(HparamValue(key, "number", number, None))
        elif value is not None and key:
            text = value if isinstance(value, str) else (
                json.dumps(value, default=str) if isinstance(value, (list, tuple)) else str(value))
            if len(text) <= MAX_TEXT_CHARS:
                out.append(HparamValue(key, "string", None, text))

    if isinstance(document, dict):
        walk(document, "", 0)
    return out


def _seconds(value: Any) -> float | None:
    """Seconds since the epoch of a timestamp (naive ones are UTC), else None."""
    if not isinstance(value, datetime):
        try:
            value = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def run_fields_of(node: NodeView, meta: dict | None) -> RunFieldsView | None:
    """The searchable fields of a Run's parsed ``metadata.yaml`` (None without one)."""
    if meta is None:
        return None
    labels = meta.get("labels", node.labels)
    status, description = meta.get("status"), meta.get("description", node.description)
    return RunFieldsView(
        status=str(status)[:32] if status is not None else None,
        description=str(description) if description is not None else None,
        start_time=_seconds(meta["startTimestamp"]) if meta.get("startTimestamp") else None,
        end_time=_seconds(meta["endTimestamp"]) if meta.get("endTimestamp") else None,
        labels=[str(x)[:255] for x in labels] if isinstance(labels, list) else [])


def derived_of(node: NodeView, field: str, document: dict | None) -> RunFieldsView | list[HparamValue] | None:
    """What search reads of a Run's parsed document (``field`` ``meta`` or ``hparams``)."""
    if node.type != "Run":
        return None
    return run_fields_of(node, document) if field == "meta" else flatten_hparams(document)


def needs_prefix_hint(node: NodeView, key: str) -> bool:
    """True for objects whose upload should record the MD5 at the indexed offset."""
    return node.type == "Run" and metric_type_of(key) is not None


def parse_document(stores: Stores, node: NodeView, key: str, size: int,
                   read: Callable[[], bytes]) -> Any:
    """The parsed document ``key`` of ``node`` about to be stored (``read()`` gives its bytes):
    ``NOT_PARSED`` when the server does not parse that object, None for invalid YAML; a 400
    ``ApiError`` when it is over the YAML limits."""
    if (node.type, key) not in DOCUMENTS:
        return NOT_PARSED
    limits = stores.limits.yaml
    try:
        if size > limits.max_bytes:
            raise YamlLimitError(f"YAML document larger than {limits.max_bytes} bytes")
        return fileio.load_yaml_text(read().decode("utf-8", "replace"), limits)
    except YamlLimitError as exc:
        raise ApiError(400, f"{key} refused: {exc}") from None
    except fileio.yaml_error_types():
        log.info("%s/%s is not valid YAML; not indexed", node.path, key)
        return None


def index_stored_object(stores: Stores, node: NodeView, obj: ObjectView,
                        prefix_hint: tuple[int, str] | None = None,
                        document: Any = NOT_PARSED) -> None:
    """Update the derived data of ``obj`` (see module doc); logs instead of raising.
    ``document`` is what ``parse_document`` returned for it."""
    try:
        field = DOCUMENTS.get((node.type, obj.key))
        if field is not None and document is not NOT_PARSED:
            document = document if isinstance(document, dict) else None
            stores.meta.set_node_document(node.id, field, document, derived_of(node, field, document))
        elif needs_prefix_hint(node, obj.key):
            index_metric_object(stores.meta, stores.blobs, obj, prefix_hint)
    except Exception:  # noqa: BLE001 - derived data only; the object itself is stored
        log.warning("could not index %s/%s", node.path, obj.key, exc_info=True)
