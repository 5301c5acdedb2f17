"""What the server parses from an object, and what it derives from it once stored, for the web UI.

- The YAML documents the server reads (``DOCUMENTS``: ``metadata.yaml`` of a Run/Artifact,
  ``hyperparameters.yaml``, ``platform.yaml`` and ``git.yaml`` of a Run, ``references.yaml`` of an
  Artifact) are parsed *before* the object is stored, with the bounded loader
  (``t9k_em_core.bounded_yaml``, ``Limits.yaml``). A document over those limits (a "billion
  laughs" alias bomb, a recursive alias, too deep, too large) is refused with a 400 naming the
  file and the limit, and nothing changes. A document that is merely not valid YAML is stored and
  left out of the derived data.
- ``metadata.yaml`` and ``hyperparameters.yaml`` are then kept on the node (folder listings read no
  blobs); ``metrics/<type>.yaml`` of a Run is indexed into the series cache (``series.py``).

Indexing never fails an upload once the checks passed: a problem only leaves the derived data
stale (logged). The series cache also rebuilds lazily when read.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from t9k_em_core import fileio, layout
from t9k_em_core.bounded_yaml import YamlLimitError

from .errors import ApiError
from .metadata_store import NodeView, ObjectView
from .series import index_metric_object, metric_type_of
from .stores import Stores

log = logging.getLogger(__name__)

#: (node type, key) of every document the server parses → the node field it is kept in, if any
DOCUMENTS = {("Run", layout.METADATA_FILE): "meta", ("Artifact", layout.METADATA_FILE): "meta",
             ("Run", layout.HPARAMS_FILE): "hparams", ("Run", layout.PLATFORM_FILE): None,
             ("Run", layout.GIT_FILE): None, ("Artifact", layout.REFERENCES_FILE): None}

NOT_PARSED = object()  #: ``parse_document``'s answer for an object that is no such document


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
            stores.meta.set_node_document(node.id, field,
                                          document if isinstance(document, dict) else None)
        elif needs_prefix_hint(node, obj.key):
            index_metric_object(stores.meta, stores.blobs, obj, prefix_hint)
    except Exception:  # noqa: BLE001 - derived data only; the object itself is stored
        log.warning("could not index %s/%s", node.path, obj.key, exc_info=True)
