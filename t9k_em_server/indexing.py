"""What the server derives from an object once it is stored, for the web UI.

- ``metadata.yaml`` of a Run/Artifact and ``hyperparameters.yaml`` of a Run are parsed and kept on
  the node (folder listings then need no blob reads);
- ``metrics/<type>.yaml`` of a Run is indexed into the series cache (``series.py``).

Indexing never fails an upload: the object is stored either way and a broken file only leaves
the derived data stale (logged). The series cache also rebuilds lazily when read.
"""
from __future__ import annotations

import logging

from t9k_em_core import layout

from .metadata_store import NodeView, ObjectView
from .series import index_metric_object, metric_type_of
from .stores import Stores

log = logging.getLogger(__name__)

DOCUMENTS = {("Run", layout.METADATA_FILE): "meta", ("Artifact", layout.METADATA_FILE): "meta",
             ("Run", layout.HPARAMS_FILE): "hparams"}


def needs_prefix_hint(node: NodeView, key: str) -> bool:
    """True for objects whose upload should record the MD5 at the indexed offset."""
    return node.type == "Run" and metric_type_of(key) is not None


def index_stored_object(stores: Stores, node: NodeView, obj: ObjectView,
                        prefix_hint: tuple[int, str] | None = None) -> None:
    """Update the derived data of ``obj`` (see module doc); logs instead of raising."""
    try:
        field = DOCUMENTS.get((node.type, obj.key))
        if field is not None:
            document = None
            if obj.size <= stores.limits.max_parse_bytes:
                try:
                    document = layout.load_yaml_text(
                        stores.blobs.read_bytes(obj.blob_key).decode("utf-8", "replace"))
                except layout.yaml_error_types():
                    log.info("%s/%s is not valid YAML; not indexed", node.path, obj.key)
            stores.meta.set_node_document(node.id, field, document if isinstance(document, dict) else None)
        elif needs_prefix_hint(node, obj.key):
            index_metric_object(stores.meta, stores.blobs, obj, prefix_hint)
    except Exception:  # noqa: BLE001 - derived data only; the object itself is stored
        log.warning("could not index %s/%s", node.path, obj.key, exc_info=True)
