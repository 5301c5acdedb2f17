"""Server settings: where metadata and blobs live, and the limits on requests."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from t9k_em_core.bounded_yaml import YamlLimits

DEFAULT_DATA_DIR = Path(os.environ.get("EM_SERVER_DATA_DIR", "~/.t9k/em-server")).expanduser()

MiB = 1 << 20
GiB = 1 << 30

#: YAML the server parses (metadata, hyperparameters, platform, git, references; metric entries
#: the fast parser does not recognise): characters, nodes after alias expansion, nesting depth.
YAML_LIMITS = YamlLimits(max_bytes=16 * MiB, max_nodes=500_000, max_depth=64)


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may carry."""

    max_json_bytes: int = 1 * MiB          #: JSON request bodies
    max_object_bytes: int = 5 * GiB        #: one single-request object upload (S3's PUT limit)
    max_part_bytes: int = 5 * GiB          #: one multipart part
    max_append_bytes: int = 16 * MiB       #: the body of one append (held in memory)
    max_parts: int = 10_000                #: parts of one multipart upload
    max_page_size: int = 1000              #: items per page of a listing
    max_labels: int = 100
    max_label_chars: int = 256
    max_description_chars: int = 64 * 1024
    max_extra_chars: int = 64 * 1024
    yaml: YamlLimits = YAML_LIMITS         #: YAML documents the server parses


def trash_days() -> float:
    """How long deleted Runs, Artifacts and Folders stay restorable (``EM_SERVER_TRASH_DAYS``,
    default 30); ``em server gc`` frees them after that."""
    return float(os.environ.get("EM_SERVER_TRASH_DAYS", "30"))


@dataclass(frozen=True)
class ServerConfig:
    """Where the server keeps its state. ``db_url``/``blob_url`` default to the data dir."""

    data_dir: Path = DEFAULT_DATA_DIR
    db_url: str | None = None
    blob_url: str | None = None
    limits: Limits = field(default_factory=Limits)

    @property
    def resolved_db_url(self) -> str:
        """The SQLAlchemy URL: the given one, or SQLite ``<data_dir>/em.db``."""
        return normalise_db_url(self.db_url) if self.db_url else f"sqlite:///{self.data_dir / 'em.db'}"

    @property
    def resolved_blob_url(self) -> str:
        """The blob store URL: the given one, or the folder ``<data_dir>/blobs``."""
        return self.blob_url or str(self.data_dir / "blobs")


def normalise_db_url(url: str) -> str:
    """Use the psycopg (v3) driver for ``postgresql://`` URLs (SQLAlchemy would pick psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url
