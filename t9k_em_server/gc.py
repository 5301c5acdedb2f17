"""Garbage collection of the blob store (``em server gc``).

Blobs can outlive every row that refers to them: a process killed between writing a blob and
committing its row, multipart uploads never completed (the 0.6.0b0 protocol has no abort call),
part or replaced blobs whose deletion failed. They are never visible, only wasted space.
``collect_garbage`` deletes

1. what was deleted into the trash more than ``trash_for`` ago (default ``config.trash_days``):
   the nodes, their objects and those objects' blobs;
2. multipart uploads started more than ``older_than`` ago, their part rows and part blobs;
3. blobs no row refers to (``MetadataStore.blob_keys``) last modified more than ``older_than``
   ago, and only keys of the form the server writes (``uploads.new_blob_key``), so nothing else
   that shares the folder or bucket prefix is ever touched.

It is safe while servers serve, as long as no upload takes longer than ``older_than``: an
upload's blob is written (fresh) before its row is committed, and keys are never reused, so a
blob that is both old and unreferenced stays unreferenced.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from .config import trash_days
from .metadata_store import utcnow
from .stores import Stores

#: the blob keys the server writes: ``<kind>/<2 hex>/<32 hex>`` (``uploads.new_blob_key``)
SERVER_BLOB_KEY = re.compile(r"[a-z]+/([0-9a-f]{2})/\1[0-9a-f]{30}")


@dataclass(frozen=True)
class GcReport:
    """What a collection deleted (or, in a dry run, would delete)."""

    trashed: int        #: trash entries purged (each a node with its subtree)
    trashed_blobs: int  #: their blobs
    uploads: int        #: abandoned multipart uploads
    part_blobs: int     #: their part blobs
    part_bytes: int
    orphans: int        #: blobs no row refers to
    orphan_bytes: int


def collect_garbage(stores: Stores, older_than: timedelta, dry_run: bool = False,
                    now: datetime | None = None, trash_for: timedelta | None = None) -> GcReport:
    """Purge the trash older than ``trash_for``, delete abandoned multipart uploads and
    unreferenced blobs older than ``older_than`` (relative to ``now``, default the current
    time); ``dry_run`` only counts them."""
    now = now or utcnow()
    trash_for = timedelta(days=trash_days()) if trash_for is None else trash_for
    trashed, trashed_blobs = stores.meta.purge_trash(now - trash_for, dry_run)
    if not dry_run:
        stores.blobs.delete(trashed_blobs)
    cutoff = now - older_than
    uploads, parts = stores.meta.stale_multiparts(cutoff, forget=not dry_run)
    if not dry_run:
        stores.blobs.delete(key for key, _ in parts)
    referenced = stores.meta.blob_keys()  # rows of blobs older than cutoff exist by now
    orphans = [blob for blob in stores.blobs.list_blobs()
               if blob.modified < cutoff and blob.key not in referenced
               and SERVER_BLOB_KEY.fullmatch(blob.key)]
    if not dry_run:
        stores.blobs.delete(blob.key for blob in orphans)
    return GcReport(trashed, len(trashed_blobs), uploads, len(parts), sum(size for _, size in parts),
                    len(orphans), sum(blob.size for blob in orphans))
