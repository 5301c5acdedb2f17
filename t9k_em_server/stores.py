"""The two stores and the limits, opened once per process and shared by the routers."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from starlette.requests import Request

from .blob_store import BlobStore, open_blob_store
from .config import Limits, ServerConfig
from .metadata_store import MetadataStore, utcnow
from .users import KeyCache

log = logging.getLogger(__name__)

MULTIPART_EXPIRY = timedelta(days=7)


@dataclass
class Stores:
    meta: MetadataStore
    blobs: BlobStore
    limits: Limits
    keys: KeyCache = field(default_factory=KeyCache)  #: recently checked API keys

    @classmethod
    def open(cls, config: ServerConfig, upgrade: bool = True) -> "Stores":
        """Open (and by default migrate) the stores named by ``config``."""
        meta = MetadataStore(config.resolved_db_url)
        if upgrade:
            meta.upgrade()
        return cls(meta, open_blob_store(config.resolved_blob_url), config.limits)

    def drop_abandoned_uploads(self) -> None:
        """Delete multipart uploads older than a week, and their parts' blobs."""
        blobs = self.meta.expire_multiparts(utcnow() - MULTIPART_EXPIRY)
        if blobs:
            try:
                self.blobs.delete(blobs)
            except Exception:  # noqa: BLE001 - leftovers are only wasted space
                log.warning("could not delete %d abandoned part blob(s)", len(blobs), exc_info=True)

    def close(self) -> None:
        self.meta.close()


def get_stores(request: Request) -> Stores:
    """FastAPI dependency: the stores of this app."""
    return request.app.state.stores
