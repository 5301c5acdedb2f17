"""The audit trail: who shared, edited, moved, deleted or restored what, and when.

Every endpoint that changes sharing or a node's place or fields calls ``record`` after the change
succeeded; the events live in the metadata store (``audit_events``) with the names and paths as
they were then. A Folder's owner (or an admin) reads the events on it and below it with
``GET /apis/v1/audit?folder=…&user=…&action=…`` (``routers/edits.py``).
"""
from __future__ import annotations

from typing import Any

from .metadata_store import MetadataStore, NodeView, UserView

#: what is recorded
ACTIONS = ("share", "unshare", "edit", "rename", "move", "delete", "restore")


def record(meta: MetadataStore, actor: UserView, action: str, node: NodeView,
           path_to: str | None = None, detail: dict[str, Any] | None = None) -> None:
    """Record that ``actor`` did ``action`` to ``node`` (at ``node.path``; a move or rename also
    where it went, ``path_to``), with ``detail`` (e.g. the grantee and role of a share)."""
    assert action in ACTIONS, action
    meta.add_event(actor.name, action, node.id, node.path, path_to, detail or {})
