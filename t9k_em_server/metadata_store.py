"""The metadata store: users, keys, groups, shares, nodes, objects, lineage edges, multipart
uploads, series caches.

One SQLAlchemy implementation serves SQLite (the embedded default) and PostgreSQL (several server
processes sharing one database). Uniqueness is enforced by the database (a node's ``path``, an
object's ``(node_id, key)``), so concurrent creates of one name resolve to one winner and
``Conflict`` for the others, in one process or many. Blobs are referred to by key only; the blob
store is a separate piece (``blob_store.py``).
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary,
                        PrimaryKeyConstraint, String, Text, UniqueConstraint, and_, bindparam,
                        create_engine, delete, event, false, func, literal, or_, select, text, update)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from t9k_em_core import run_files


#: SQLite reads the first this many bytes of the database through a memory map. Mapped pages a
#: query touched count in the server's RSS: at 1 GiB a search over 30,000 Runs took the server
#: from ~110 to 221 MB (and 100,000 would pass 300 MB); this bound keeps the cheaper cold reads
#: for small databases.
SQLITE_MMAP_BYTES = 128 << 20
#: where trashed subtrees live: names cannot start with ".", so no request names a path here
TRASH_PREFIX = "/.trash/"


class Conflict(Exception):
    """A node or object with that name already exists."""


class NotFound(Exception):
    """The referenced row does not exist (any more)."""


class NotAFolder(Exception):
    """A node was to be created under a node that is not a Folder (``type``: what it is)."""

    def __init__(self, type_: str):
        super().__init__(type_)
        self.type = type_


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Group(Base):
    __tablename__ = "groups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GroupMember(Base):
    __tablename__ = "group_members"
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True,
                                         index=True)


class Share(Base):
    """A Folder (and everything below it) shared with a user or a group (``grantee_kind``
    ``user``/``group``, ``grantee_id`` that user's or group's id) as ``viewer`` or ``editor``."""

    __tablename__ = "shares"
    __table_args__ = (UniqueConstraint("node_id", "grantee_kind", "grantee_id", name="uq_shares_grantee"),
                      Index("ix_shares_grantee", "grantee_kind", "grantee_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    grantee_kind: Mapped[str] = mapped_column(String(8))
    grantee_id: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TrashEntry(Base):
    """A node deleted into the trash, with its subtree: where it was, who deleted it, when. The
    subtree's paths live under ``TRASH_PREFIX`` meanwhile, which no node path can spell."""

    __tablename__ = "trash"
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024))
    parent_id: Mapped[str] = mapped_column(String(36))
    deleted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"),
                                                   nullable=True)
    deleted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class AuditEvent(Base):
    """Who shared, edited, moved, deleted or restored what, and when. Names and paths are kept
    as they were (users and nodes may be gone later)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_path", "path"), Index("ix_audit_events_path_to", "path_to"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    user_name: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    node_id: Mapped[str] = mapped_column(String(36))
    path: Mapped[str] = mapped_column(String(1024))
    path_to: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    name: Mapped[str] = mapped_column(String(64), default="", server_default="")


class UiSession(Base):
    __tablename__ = "ui_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: the key the session was opened with (revoking it ends the session); None: before 0004
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"),
                                               nullable=True, index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Node(Base):
    __tablename__ = "nodes"
    # (parent, type, id) covers "the Runs of these Folders" without reading the rows (which hold
    # the parsed documents): a search or group over a whole scope reads only this index.
    __table_args__ = (Index("ix_nodes_parent_type", "parent_id", "type", "id"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), nullable=True)
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(16))
    storage_type: Mapped[int] = mapped_column(Integer, default=0)
    labels: Mapped[str] = mapped_column(Text, default="[]")
    description: Mapped[str] = mapped_column(Text, default="")
    extra: Mapped[str] = mapped_column(Text, default="")
    alt_name: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    meta: Mapped[str | None] = mapped_column(Text, nullable=True)      # metadata.yaml as JSON
    hparams: Mapped[str | None] = mapped_column(Text, nullable=True)   # hyperparameters.yaml as JSON
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StoredObject(Base):
    __tablename__ = "objects"
    __table_args__ = (UniqueConstraint("node_id", "key", name="uq_objects_node_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(1024))
    blob_key: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    md5: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Edge(Base):
    __tablename__ = "edges"
    __table_args__ = (UniqueConstraint("owner_id", "src", "dst", name="uq_edges_owner_src_dst"),
                      Index("ix_edges_src", "src"), Index("ix_edges_dst", "dst"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    src: Mapped[str] = mapped_column(String(255))
    dst: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MultipartUpload(Base):
    __tablename__ = "multipart_uploads"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MultipartPart(Base):
    __tablename__ = "multipart_parts"
    upload_id: Mapped[str] = mapped_column(
        ForeignKey("multipart_uploads.id", ondelete="CASCADE"), primary_key=True)
    part_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    blob_key: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    md5: Mapped[str] = mapped_column(String(32))


class SeriesIndex(Base):
    """How far a ``metrics/<type>.yaml`` object has been indexed into series segments."""

    __tablename__ = "series_index"
    object_id: Mapped[int] = mapped_column(
        ForeignKey("objects.id", ondelete="CASCADE"), primary_key=True)
    blob_key: Mapped[str] = mapped_column(String(255))
    indexed_bytes: Mapped[int] = mapped_column(BigInteger)
    prefix_md5: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(BigInteger)
    segments: Mapped[int] = mapped_column(Integer)
    names: Mapped[str] = mapped_column(Text)         # JSON list of metric names
    last_values: Mapped[str] = mapped_column(Text)   # JSON {name: {"value", "step", "epoch"}}


class SeriesSegment(Base):
    __tablename__ = "series_segments"
    __table_args__ = (UniqueConstraint("object_id", "seq", name="uq_series_segments_object_seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    object_id: Mapped[int] = mapped_column(ForeignKey("objects.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class RunFields(Base):
    """The searchable fields of a Run's ``metadata.yaml`` (times in seconds since the epoch);
    keyed like the index tables below."""

    __tablename__ = "run_fields"
    __table_args__ = (PrimaryKeyConstraint("folder_id", "node_id"),
                      Index("ix_run_fields_node", "node_id"),
                      {"sqlite_with_rowid": False})
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    folder_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    start_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)


# The index tables carry the Run's Folder (``folder_id``, its parent; a move updates it) and
# lead their primary keys and search indexes with it, so a search scoped to some Folders reads
# only their entries, whatever else the database holds. The hparam and summary keys are
# ``(folder_id, field, node_id)``: the rows of one field of one Folder's Runs lie together, and a
# search that checks, sorts or groups by that field for many Runs of a Folder probes one small,
# warm range rather than a page per Run (node ids are random); labels and ``run_fields`` are
# keyed ``(folder_id, node_id, …)`` for the same reason. On SQLite the tables are clustered
# on those keys (WITHOUT ROWID, migrations 0005 and 0009); ``node_id`` is indexed for the
# per-Run reads and writes.

class RunLabel(Base):
    __tablename__ = "run_labels"
    __table_args__ = (PrimaryKeyConstraint("folder_id", "node_id", "label"),
                      Index("ix_run_labels_folder_label", "folder_id", "label", "node_id"),
                      Index("ix_run_labels_node", "node_id"),
                      {"sqlite_with_rowid": False})
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(255))
    folder_id: Mapped[str] = mapped_column(String(36))


class RunHparam(Base):
    """One flattened hyperparameter: dotted key, kind ``number``/``string``/``bool``; numbers and
    bools (1/0) in ``num``, strings in ``text`` (so ``text`` is set exactly for strings)."""

    __tablename__ = "run_hparams"
    __table_args__ = (
        PrimaryKeyConstraint("folder_id", "key", "node_id"),
        Index("ix_run_hparams_folder_num", "folder_id", "key", "kind", "num", "node_id",
              sqlite_where=text("num IS NOT NULL"), postgresql_where=text("num IS NOT NULL")),
        Index("ix_run_hparams_folder_text", "folder_id", "key", "text", "node_id",
              sqlite_where=text("text IS NOT NULL"), postgresql_where=text("text IS NOT NULL")),
        Index("ix_run_hparams_node", "node_id"),
        {"sqlite_with_rowid": False})
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(512))
    folder_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(8))
    num: Mapped[float | None] = mapped_column(Float, nullable=True)
    text: Mapped[str | None] = mapped_column(String(512), nullable=True)


class RunSummary(Base):
    """Summary of one metric of one Run: finite values only."""

    __tablename__ = "run_summaries"
    __table_args__ = (PrimaryKeyConstraint("folder_id", "type", "name", "node_id"),
                      Index("ix_run_summaries_node", "node_id"),
                      {"sqlite_with_rowid": False})
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(255))
    folder_id: Mapped[str] = mapped_column(String(36))
    last: Mapped[float | None] = mapped_column(Float, nullable=True)
    min: Mapped[float | None] = mapped_column(Float, nullable=True)
    max: Mapped[float | None] = mapped_column(Float, nullable=True)
    mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    count: Mapped[int] = mapped_column(BigInteger)
    last_step: Mapped[float | None] = mapped_column(Float, nullable=True)
    min_step: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_step: Mapped[float | None] = mapped_column(Float, nullable=True)


#: the tables holding a Run's search rows, each with ``node_id`` and ``folder_id``
RUN_INDEX_TABLES = (RunFields, RunLabel, RunHparam, RunSummary)


class FolderField(Base):
    """Which hparam keys (kind ``hparam``, detail = value kind) and metrics (kind ``metric``,
    key = type, detail = name) the Runs of a Folder have had: the UI's column picker."""

    __tablename__ = "folder_fields"
    folder_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    detail: Mapped[str] = mapped_column(String(255), primary_key=True)


# --------------------------------------------------------------------------------------- views

@dataclass(frozen=True)
class NodeView:
    """A node as the routers see it (a detached copy of the row)."""

    id: str
    owner_id: int
    parent_id: str | None
    path: str
    name: str
    type: str
    storage_type: int
    labels: list[str]
    description: str
    extra: str
    alt_name: str | None
    meta: dict | None
    hparams: dict | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Node) -> "NodeView":
        return cls(row.id, row.owner_id, row.parent_id, row.path, row.name, row.type,
                   row.storage_type, json.loads(row.labels or "[]"), row.description, row.extra,
                   row.alt_name, json.loads(row.meta) if row.meta else None,
                   json.loads(row.hparams) if row.hparams else None,
                   _aware(row.created_at), _aware(row.updated_at))


@dataclass(frozen=True)
class ObjectView:
    id: int
    node_id: str
    key: str
    blob_key: str
    size: int
    md5: str
    updated_at: datetime

    @classmethod
    def of(cls, row: StoredObject) -> "ObjectView":
        return cls(row.id, row.node_id, row.key, row.blob_key, row.size, row.md5,
                   _aware(row.updated_at))


@dataclass(frozen=True)
class SeriesIndexView:
    object_id: int
    blob_key: str
    indexed_bytes: int
    prefix_md5: str
    count: int
    segments: int
    names: list[str]
    last_values: dict[str, Any]


SUMMARY_FIELDS = ("last", "min", "max", "mean", "count", "last_step", "min_step", "max_step")


@dataclass(frozen=True)
class MetricSummary:
    """``last``/``min``/``max``/``mean``/``count`` of a metric's finite values, and the steps of
    the last, (first) minimum and (first) maximum."""

    last: float | None
    min: float | None
    max: float | None
    mean: float | None
    count: int
    last_step: float | None
    min_step: float | None
    max_step: float | None

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in SUMMARY_FIELDS}


@dataclass(frozen=True)
class HparamValue:
    key: str
    kind: str            #: number, string or bool
    num: float | None    #: numbers; bools as 1.0/0.0
    text: str | None     #: strings


@dataclass(frozen=True)
class RunFieldsView:
    status: str | None
    description: str | None
    start_time: float | None
    end_time: float | None
    labels: list[str]

    @property
    def duration(self) -> float | None:
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time


@dataclass(frozen=True)
class UserView:
    id: int
    name: str
    created_at: datetime
    active_keys: int = 0
    is_admin: bool = False

    @classmethod
    def of(cls, row: User, active_keys: int = 0) -> "UserView":
        return cls(row.id, row.name, _aware(row.created_at), active_keys, bool(row.is_admin))


@dataclass(frozen=True)
class KeyView:
    """An API key as its owner sees it: never the key, only its first 8 characters."""

    id: int
    user: str
    name: str
    prefix: str
    created_at: datetime

    @classmethod
    def of(cls, row: "ApiKey", user: str) -> "KeyView":
        return cls(row.id, user, row.name or "", row.key_prefix, _aware(row.created_at))


@dataclass(frozen=True)
class TrashView:
    """A trashed node: its id, name, type, where it was (``path``, ``parent_id``), who deleted it
    (None when that user is gone) and when."""

    node_id: str
    name: str
    type: str
    path: str
    parent_id: str
    deleted_by: str | None
    deleted_at: datetime


@dataclass(frozen=True)
class EventView:
    id: int
    at: datetime
    user: str
    action: str
    node_id: str
    path: str
    path_to: str | None
    detail: dict


@dataclass(frozen=True)
class ShareView:
    """One share of a Folder: to whom (``kind`` user/group, ``name``) and as what ``role``."""

    kind: str
    name: str
    role: str
    created_at: datetime


@dataclass(frozen=True)
class GroupView:
    name: str
    members: list[str]


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _series_view(row: SeriesIndex) -> SeriesIndexView:
    return SeriesIndexView(row.object_id, row.blob_key, row.indexed_bytes, row.prefix_md5,
                           row.count, row.segments, json.loads(row.names),
                           json.loads(row.last_values))


# ------------------------------------------------------------------------------ run index rows
# Shared by the store (every upload) and the migration that backfills them (a Connection).

def _insert_ignore(conn: Any, table: Any, rows: list[dict]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING of ``rows`` (SQLite or PostgreSQL)."""
    if not rows:
        return
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    if bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    conn.execute(insert(table).on_conflict_do_nothing(), rows)


# Each writer takes the rows of many Runs (one statement per table for all of them): an upload
# writes one Run, the benchmark's seeding writes 500 per transaction.

def _delete_of(conn: Any, table: Any, node_ids: list[str], *more: Any) -> None:
    for i in range(0, len(node_ids), 500):
        conn.execute(delete(table).where(table.c.node_id.in_(node_ids[i:i + 500]), *more))


def write_run_fields(conn: Any, runs: list[tuple[str, str, RunFieldsView | None]]) -> None:
    """Replace the ``run_fields`` row and labels of each (Run id, Folder id, fields) (None:
    remove them)."""
    _delete_of(conn, RunFields.__table__, [node_id for node_id, _, _ in runs])
    rows = [dict(node_id=node_id, folder_id=folder_id, status=f.status, description=f.description,
                 start_time=f.start_time, end_time=f.end_time, duration=f.duration)
            for node_id, folder_id, f in runs if f is not None]
    if rows:
        conn.execute(RunFields.__table__.insert(), rows)
    write_run_labels(conn, [(node_id, folder_id, f.labels if f is not None else [])
                            for node_id, folder_id, f in runs])


def write_run_labels(conn: Any, runs: list[tuple[str, str, list[str]]]) -> None:
    """Replace the labels of each (Run id, Folder id, labels)."""
    table = RunLabel.__table__
    _delete_of(conn, table, [node_id for node_id, _, _ in runs])
    rows = [{"node_id": node_id, "folder_id": folder_id, "label": label}
            for node_id, folder_id, labels in runs for label in dict.fromkeys(labels)]
    if rows:
        conn.execute(table.insert(), rows)


def write_run_hparams(conn: Any, runs: list[tuple[str, str, list[HparamValue]]]) -> None:
    """Replace the flattened hparams of each (Run id, Folder id, values); the Folders remember
    their keys."""
    table = RunHparam.__table__
    _delete_of(conn, table, [node_id for node_id, _, _ in runs])
    rows = [{"node_id": node_id, "folder_id": folder_id, "key": v.key, "kind": v.kind, "num": v.num,
             "text": v.text} for node_id, folder_id, values in runs for v in values]
    if rows:
        conn.execute(table.insert(), rows)
        _insert_ignore(conn, FolderField.__table__, list({
            (r["folder_id"], r["key"], r["kind"]): {"folder_id": r["folder_id"], "kind": "hparam",
                                                    "key": r["key"], "detail": r["kind"]}
            for r in rows}.values()))


def write_run_summaries(conn: Any, metric_type: str,
                        runs: list[tuple[str, str, dict[str, MetricSummary]]]) -> None:
    """Replace the summaries of one metric type of each (Run id, Folder id, summaries)."""
    table = RunSummary.__table__
    _delete_of(conn, table, [node_id for node_id, _, _ in runs], table.c.type == metric_type)
    rows = [{"node_id": node_id, "folder_id": folder_id, "type": metric_type, "name": name,
             **summary.as_dict()} for node_id, folder_id, summaries in runs
            for name, summary in summaries.items()]
    if rows:
        conn.execute(table.insert(), rows)
        _insert_ignore(conn, FolderField.__table__, list({
            (r["folder_id"], r["name"]): {"folder_id": r["folder_id"], "kind": "metric",
                                          "key": metric_type, "detail": r["name"]}
            for r in rows}.values()))


# --------------------------------------------------------------------------------------- engine

def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout, foreign keys and BEGIN IMMEDIATE
    for write transactions (so concurrent writers queue instead of failing)."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=30)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60},
                           pool_size=10, max_overflow=30)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")  # big series segments: no read copies
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        immediate = conn.get_execution_options().get("sqlite_immediate")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _edit_documented(s: Session, row: Node, labels: list[str] | None,
                     description: str | None) -> None:
    """Carry an edit of labels/description into what pages and search read: the parsed
    ``metadata.yaml`` on the node and a Run's search fields (the next upload of the file wins)."""
    meta = json.loads(row.meta) if row.meta else None
    if isinstance(meta, dict):
        if labels is not None:
            meta["labels"] = labels
        if description is not None:
            meta["description"] = description
        row.meta = json.dumps(meta, default=str)
    if row.type != "Run":
        return
    if description is not None:
        s.execute(update(RunFields).where(RunFields.node_id == row.id).values(description=description))
    if labels is not None:
        assert row.parent_id is not None  # a Run is always in a Folder
        write_run_labels(s, [(row.id, row.parent_id, labels)])


def _live():  # type: ignore[no-untyped-def]
    """Nodes not in the trash."""
    return func.substr(Node.path, 1, len(TRASH_PREFIX)) != TRASH_PREFIX


def _repath(s: Session, row: Node, new_path: str) -> None:
    """Move a node and its subtree to ``new_path`` (the caller checks that it is free)."""
    old = row.path
    s.execute(update(Node).where(func.substr(Node.path, 1, len(old) + 1) == old + "/")
              .values(path=literal(new_path) + func.substr(Node.path, len(old) + 1)),
              execution_options={"synchronize_session": False})
    row.path = new_path


def _place(s: Session, row: Node, folder: Node) -> None:
    """Put a node (with its subtree) into ``folder``: its path, parent and owner (the tree's
    user) follow. Conflict when the name is taken there."""
    path = f"{folder.path}/{row.name}"
    if s.scalar(select(Node.id).where(Node.path == path)) is not None:
        raise Conflict(row.name)
    _repath(s, row, path)
    if row.owner_id != folder.owner_id:
        s.execute(update(Node).where(_range_of_subtree(path)).values(owner_id=folder.owner_id),
                  execution_options={"synchronize_session": False})
        row.owner_id = folder.owner_id
    row.parent_id = folder.id
    if row.type == "Run":  # the index rows follow the Run; the new Folder's column picker learns them
        for table in RUN_INDEX_TABLES:
            s.execute(update(table).where(table.node_id == row.id).values(folder_id=folder.id))
        hparams = s.execute(select(RunHparam.key, RunHparam.kind).where(RunHparam.node_id == row.id)).all()
        metrics = s.execute(select(RunSummary.type, RunSummary.name).where(RunSummary.node_id == row.id)).all()
        _insert_ignore(s, FolderField.__table__,
                       [{"folder_id": folder.id, "kind": "hparam", "key": k, "detail": d} for k, d in hparams]
                       + [{"folder_id": folder.id, "kind": "metric", "key": t, "detail": n} for t, n in metrics])


def _range_of_subtree(path: str):  # type: ignore[no-untyped-def]
    """A byte-exact "path is ``path`` or below it" condition (LIKE is case-insensitive on SQLite)."""
    prefix = path + "/"
    return or_(Node.path == path, func.substr(Node.path, 1, len(prefix)) == prefix)


# --------------------------------------------------------------------------------------- store

class MetadataStore:
    """All metadata operations. Methods are synchronous; the routers call them from a thread."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(sqlite_immediate=True),
                                   expire_on_commit=False)

    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision (safe to call from many processes)."""
        from .migrations import upgrade
        upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        with self._write() as session, session.begin():
            yield session

    # ---- users and keys -------------------------------------------------------------------

    def create_user(self, name: str, key_hash: str, key_prefix: str, root_extra: str,
                    admin: bool = False) -> UserView:
        """Create a user, their root Folder ``/<name>`` and their first key."""
        try:
            with self.writing() as s:
                user = User(name=name, is_admin=admin)
                s.add(user)
                s.flush()
                s.add(ApiKey(user_id=user.id, key_hash=key_hash, key_prefix=key_prefix))
                s.add(Node(owner_id=user.id, parent_id=None, path=f"/{name}", name=name,
                           type="Folder", storage_type=0, labels="[]", description="",
                           extra=root_extra))
                return UserView.of(user, 1)
        except IntegrityError as exc:
            raise Conflict(name) from exc

    def add_key(self, user_name: str, key_hash: str, key_prefix: str, name: str = "") -> KeyView:
        with self.writing() as s:
            user = s.scalar(select(User).where(User.name == user_name))
            if user is None:
                raise NotFound(user_name)
            row = ApiKey(user_id=user.id, key_hash=key_hash, key_prefix=key_prefix, name=name)
            s.add(row)
            s.flush()
            return KeyView.of(row, user.name)

    def list_keys(self, user_name: str) -> list[KeyView]:
        """The active keys of a user, oldest first."""
        with self.reading() as s:
            rows = s.scalars(select(ApiKey).join(User, User.id == ApiKey.user_id)
                             .where(User.name == user_name, ApiKey.revoked_at.is_(None))
                             .order_by(ApiKey.id)).all()
            return [KeyView.of(r, user_name) for r in rows]

    def key_id_of(self, key_hash: str) -> int | None:
        """The id of an active key."""
        with self.reading() as s:
            return s.scalar(select(ApiKey.id).where(ApiKey.key_hash == key_hash,
                                                    ApiKey.revoked_at.is_(None)))

    @staticmethod
    def _end_key(s: Session, key: "ApiKey") -> None:
        """Revoke a key and end the web sessions it opened (and those of its user that predate
        sessions knowing their key)."""
        key.revoked_at = utcnow()
        s.execute(delete(UiSession).where(or_(
            UiSession.key_id == key.id,
            and_(UiSession.key_id.is_(None), UiSession.user_id == key.user_id))))

    def revoke_key_id(self, user_name: str, key_id: int) -> None:
        """Revoke one active key of the user by its id (NotFound otherwise)."""
        with self.writing() as s:
            key = s.scalar(select(ApiKey).join(User, User.id == ApiKey.user_id).where(
                ApiKey.id == key_id, User.name == user_name, ApiKey.revoked_at.is_(None)))
            if key is None:
                raise NotFound(f"key {key_id}")
            self._end_key(s, key)

    def revoke_key(self, key_hash: str) -> str:
        """Revoke one key; returns its user's name."""
        with self.writing() as s:
            key = s.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash,
                                                ApiKey.revoked_at.is_(None)))
            if key is None:
                raise NotFound("key")
            self._end_key(s, key)
            return s.get(User, key.user_id).name  # type: ignore[union-attr]

    def revoke_user_keys(self, user_name: str) -> int:
        with self.writing() as s:
            user = s.scalar(select(User).where(User.name == user_name))
            if user is None:
                raise NotFound(user_name)
            result = s.execute(update(ApiKey).where(ApiKey.user_id == user.id,
                                                    ApiKey.revoked_at.is_(None))
                               .values(revoked_at=utcnow()))
            s.execute(delete(UiSession).where(UiSession.user_id == user.id))
            return result.rowcount

    def list_users(self) -> list[UserView]:
        with self.reading() as s:
            active = (select(ApiKey.user_id, func.count().label("n"))
                      .where(ApiKey.revoked_at.is_(None)).group_by(ApiKey.user_id).subquery())
            rows = s.execute(select(User, func.coalesce(active.c.n, 0))
                             .outerjoin(active, active.c.user_id == User.id)
                             .order_by(User.name)).all()
            return [UserView.of(u, n) for u, n in rows]

    def get_users(self, ids: set[int]) -> dict[int, UserView]:
        if not ids:
            return {}
        with self.reading() as s:
            return {u.id: UserView.of(u) for u in s.scalars(select(User).where(User.id.in_(ids)))}

    def user_by_key_hash(self, key_hash: str) -> UserView | None:
        with self.reading() as s:
            user = s.scalar(select(User).join(ApiKey, ApiKey.user_id == User.id)
                            .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)))
            return UserView.of(user) if user else None

    def create_session(self, token_hash: str, user_id: int, key_id: int | None,
                       expires_at: datetime, max_per_user: int) -> None:
        """Add a session opened with key ``key_id``; the user's oldest ones beyond
        ``max_per_user`` (and expired ones) go."""
        with self.writing() as s:
            s.execute(delete(UiSession).where(UiSession.expires_at < utcnow()))
            s.add(UiSession(token_hash=token_hash, user_id=user_id, key_id=key_id,
                            expires_at=expires_at))
            s.flush()
            evicted = select(UiSession.token_hash).where(UiSession.user_id == user_id).order_by(
                UiSession.expires_at.desc()).offset(max_per_user)
            s.execute(delete(UiSession).where(UiSession.token_hash.in_(evicted.scalar_subquery())))

    def user_by_session(self, token_hash: str) -> UserView | None:
        with self.reading() as s:
            row = s.execute(select(User, UiSession.expires_at)
                            .join(UiSession, UiSession.user_id == User.id)
                            .where(UiSession.token_hash == token_hash)).first()
            if row is None or _aware(row[1]) < utcnow():
                return None
            return UserView.of(row[0])

    def delete_session(self, token_hash: str) -> None:
        with self.writing() as s:
            s.execute(delete(UiSession).where(UiSession.token_hash == token_hash))

    def set_admin(self, user_name: str, admin: bool) -> None:
        with self.writing() as s:
            if s.execute(update(User).where(User.name == user_name)
                         .values(is_admin=admin)).rowcount == 0:
                raise NotFound(f"user {user_name!r}")

    # ---- groups ---------------------------------------------------------------------------

    def create_group(self, name: str) -> None:
        try:
            with self.writing() as s:
                s.add(Group(name=name))
        except IntegrityError as exc:
            raise Conflict(name) from exc

    def set_member(self, group_name: str, user_name: str, member: bool) -> bool:
        """Add (``member``) or remove a user of a group; False when nothing changed.
        NotFound names the group or user that does not exist."""
        with self.writing() as s:
            group_id = s.scalar(select(Group.id).where(Group.name == group_name))
            if group_id is None:
                raise NotFound(f"group {group_name!r}")
            user_id = s.scalar(select(User.id).where(User.name == user_name))
            if user_id is None:
                raise NotFound(f"user {user_name!r}")
            row = s.get(GroupMember, (group_id, user_id))
            if member and row is None:
                s.add(GroupMember(group_id=group_id, user_id=user_id))
            elif not member and row is not None:
                s.delete(row)
            else:
                return False
            return True

    def list_groups(self) -> list[GroupView]:
        with self.reading() as s:
            rows = s.execute(select(Group.name, User.name)
                             .outerjoin(GroupMember, GroupMember.group_id == Group.id)
                             .outerjoin(User, User.id == GroupMember.user_id)
                             .order_by(Group.name, User.name)).all()
        groups: dict[str, list[str]] = {}
        for group, member in rows:
            groups.setdefault(group, [])
            if member is not None:
                groups[group].append(member)
        return [GroupView(name, members) for name, members in groups.items()]

    # ---- shares ---------------------------------------------------------------------------

    def _grantee_id(self, s: Session, kind: str, name: str) -> int:
        table = User if kind == "user" else Group
        grantee = s.scalar(select(table.id).where(table.name == name))
        if grantee is None:
            raise NotFound(f"{kind} {name!r}")
        return grantee

    def share(self, node_id: str, kind: str, name: str, role: str) -> ShareView:
        """Share a node with the user or group ``name`` (``kind``) as ``role``, replacing an
        earlier role of that grantee. NotFound names a missing node, user or group."""
        for attempt in range(2):
            try:
                with self.writing() as s:
                    if s.get(Node, node_id) is None:
                        raise NotFound(node_id)
                    grantee = self._grantee_id(s, kind, name)
                    row = s.scalar(select(Share).where(Share.node_id == node_id,
                                                       Share.grantee_kind == kind,
                                                       Share.grantee_id == grantee))
                    if row is None:
                        row = Share(node_id=node_id, grantee_kind=kind, grantee_id=grantee, role=role)
                        s.add(row)
                    row.role, row.created_at = role, utcnow()
                    s.flush()
                    return ShareView(kind, name, role, _aware(row.created_at))
            except IntegrityError:  # a concurrent share of the same grantee: update it instead
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def unshare(self, node_id: str, kind: str, name: str) -> bool:
        """Revoke a grantee's share of a node; False when there was none."""
        with self.writing() as s:
            grantee = self._grantee_id(s, kind, name)
            return s.execute(delete(Share).where(Share.node_id == node_id, Share.grantee_kind == kind,
                                                 Share.grantee_id == grantee)).rowcount > 0

    def shares_of(self, node_id: str) -> list[ShareView]:
        """Who a node is shared with, users first, by name."""
        out = []
        with self.reading() as s:
            for kind, table in (("user", User), ("group", Group)):
                rows = s.execute(select(table.name, Share.role, Share.created_at)
                                 .join(Share, and_(Share.grantee_id == table.id,
                                                   Share.grantee_kind == kind))
                                 .where(Share.node_id == node_id).order_by(table.name)).all()
                out += [ShareView(kind, name, role, _aware(at)) for name, role, at in rows]
        return out

    @staticmethod
    def _shares_for(user_id: int) -> Any:
        """The condition "this share reaches ``user_id``": directly, or through a group."""
        groups = select(GroupMember.group_id).where(GroupMember.user_id == user_id)
        return or_(and_(Share.grantee_kind == "user", Share.grantee_id == user_id),
                   and_(Share.grantee_kind == "group", Share.grantee_id.in_(groups)))

    def share_roles(self, user_id: int, paths: list[str]) -> list[tuple[str, str]]:
        """(path, role) of every share reaching the user on one of the nodes at ``paths``."""
        if not paths:
            return []
        with self.reading() as s:
            rows = s.execute(select(Node.path, Share.role).join(Share, Share.node_id == Node.id)
                             .where(Node.path.in_(paths), self._shares_for(user_id))).all()
            return [(path, role) for path, role in rows]

    def shared_with(self, user_id: int) -> list[tuple[NodeView, list[str]]]:
        """Every node shared with the user (directly or through a group), by path, with the
        roles it is shared as."""
        with self.reading() as s:
            rows = s.execute(select(Node, Share.role).join(Share, Share.node_id == Node.id)
                             .where(self._shares_for(user_id), _live()).order_by(Node.path)).all()
        out: dict[str, tuple[NodeView, list[str]]] = {}
        for node, role in rows:
            out.setdefault(node.id, (NodeView.of(node), []))[1].append(role)
        return list(out.values())

    # ---- audit ----------------------------------------------------------------------------

    def add_event(self, user_name: str, action: str, node_id: str, path: str,
                  path_to: str | None, detail: dict) -> None:
        with self.writing() as s:
            s.add(AuditEvent(user_name=user_name, action=action, node_id=node_id, path=path,
                             path_to=path_to, detail=json.dumps(detail, default=str), at=utcnow()))

    def events_under(self, path: str, user_name: str | None, action: str | None, limit: int,
                     before_id: int | None = None) -> list[EventView]:
        """Events on ``path`` or below it (where a node was, or where it went), newest first;
        only by ``user_name`` / of ``action`` when given; ``before_id`` pages back."""
        prefix = path + "/"
        under = [AuditEvent.path == path, func.substr(AuditEvent.path, 1, len(prefix)) == prefix,
                 AuditEvent.path_to == path, func.substr(AuditEvent.path_to, 1, len(prefix)) == prefix]
        cond = [or_(*under)]
        if user_name:
            cond.append(AuditEvent.user_name == user_name)
        if action:
            cond.append(AuditEvent.action == action)
        if before_id is not None:
            cond.append(AuditEvent.id < before_id)
        with self.reading() as s:
            rows = s.scalars(select(AuditEvent).where(*cond).order_by(AuditEvent.id.desc()).limit(limit)).all()
            return [EventView(r.id, _aware(r.at), r.user_name, r.action, r.node_id, r.path, r.path_to,
                              json.loads(r.detail or "{}")) for r in rows]

    # ---- nodes ----------------------------------------------------------------------------

    def get_node(self, ref: str) -> NodeView | None:
        """A node by path (starts with ``/``) or by id."""
        column = Node.path if ref.startswith("/") else Node.id
        with self.reading() as s:
            row = s.scalar(select(Node).where(column == ref))
            return NodeView.of(row) if row and not row.path.startswith(TRASH_PREFIX) else None

    def get_nodes(self, ids: list[str]) -> dict[str, NodeView]:
        if not ids:
            return {}
        with self.reading() as s:
            rows = s.scalars(select(Node).where(Node.id.in_(ids))).all()
            return {r.id: NodeView.of(r) for r in rows if not r.path.startswith(TRASH_PREFIX)}

    def find_by_alt_name(self, owner_id: int, type_: str, alt_name: str) -> NodeView | None:
        with self.reading() as s:
            row = s.scalar(select(Node).where(Node.owner_id == owner_id, Node.type == type_,
                                              Node.alt_name == alt_name, _live())
                           .order_by(Node.created_at.desc()).limit(1))
            return NodeView.of(row) if row else None

    def create_node(self, parent_path: str, name: str, type_: str, storage_type: int,
                    labels: list[str], description: str, extra: str,
                    alt_name: str | None) -> NodeView:
        """Create ``parent_path/name``. Raises NotFound (no parent) or Conflict (name taken)."""
        path = f"{parent_path}/{name}"
        try:
            with self.writing() as s:
                parent = s.scalar(select(Node).where(Node.path == parent_path))
                if parent is None:
                    raise NotFound(parent_path)
                if parent.type != "Folder":
                    raise NotAFolder(parent.type)
                if s.scalar(select(Node.id).where(Node.path == path)) is not None:
                    raise Conflict(name)
                row = Node(owner_id=parent.owner_id, parent_id=parent.id, path=path, name=name,
                           type=type_, storage_type=storage_type, labels=json.dumps(labels),
                           description=description, extra=extra, alt_name=alt_name)
                s.add(row)
                s.flush()
                return NodeView.of(row)
        except IntegrityError as exc:
            # A concurrent create of the same path won, or the parent vanished meanwhile.
            if self.get_node(path) is not None:
                raise Conflict(name) from exc
            raise NotFound(parent_path) from exc

    def list_children(self, parent_id: str, type_: str | None, offset: int,
                      limit: int) -> tuple[list[NodeView], int]:
        with self.reading() as s:
            cond = [Node.parent_id == parent_id]
            if type_:
                cond.append(Node.type == type_)
            total = s.scalar(select(func.count()).select_from(Node).where(*cond)) or 0
            rows = s.scalars(select(Node).where(*cond).order_by(Node.name)
                             .offset(offset).limit(limit)).all()
            return [NodeView.of(r) for r in rows], total

    def update_node(self, node_id: str, name: str | None = None, labels: list[str] | None = None,
                    description: str | None = None, extra: str | None = None,
                    alt_name: str | None = None) -> NodeView:
        """Change a node's fields; a new name moves the node and its whole subtree."""
        try:
            with self.writing() as s:
                row = s.get(Node, node_id)
                if row is None:
                    raise NotFound(node_id)
                if name is not None and name != row.name:
                    new = row.path.rsplit("/", 1)[0] + "/" + name
                    if s.scalar(select(Node.id).where(Node.path == new)) is not None:
                        raise Conflict(name)
                    _repath(s, row, new)
                    row.name = name
                if labels is not None:
                    row.labels = json.dumps(labels)
                if description is not None:
                    row.description = description
                if labels is not None or description is not None:
                    _edit_documented(s, row, labels, description)
                if extra is not None:
                    row.extra, row.alt_name = extra, alt_name
                row.updated_at = utcnow()
                s.flush()
                return NodeView.of(row)
        except IntegrityError as exc:
            raise Conflict(name or "") from exc

    def move_node(self, node_id: str, folder_id: str) -> NodeView:
        """Move a node, with its subtree, into another Folder (of any owner's tree: the subtree
        then belongs to that owner). Conflict when the name is taken there; NotFound when either
        is gone; ValueError when the Folder lies inside the node."""
        with self.writing() as s:
            row, folder = s.get(Node, node_id), s.get(Node, folder_id)
            if row is None or folder is None:
                raise NotFound(node_id if row is None else folder_id)
            if folder.path == row.path or folder.path.startswith(row.path + "/"):
                raise ValueError(f"cannot move {row.path} into itself")
            _place(s, row, folder)
            row.updated_at = utcnow()
            s.flush()
            return NodeView.of(row)

    def trash(self, node_id: str, user_id: int) -> None:
        """Move a node and its subtree into the trash (restorable until purged)."""
        with self.writing() as s:
            row = s.get(Node, node_id)
            if row is None or row.parent_id is None or row.path.startswith(TRASH_PREFIX):
                raise NotFound(node_id)
            s.add(TrashEntry(node_id=row.id, path=row.path, parent_id=row.parent_id,
                             deleted_by=user_id, deleted_at=utcnow()))
            _repath(s, row, TRASH_PREFIX + row.id)
            row.parent_id = None

    def trash_entries(self) -> list[TrashView]:
        """Everything in the trash, newest first."""
        with self.reading() as s:
            rows = s.execute(select(TrashEntry, Node.name, Node.type, User.name)
                             .join(Node, Node.id == TrashEntry.node_id)
                             .outerjoin(User, User.id == TrashEntry.deleted_by)
                             .order_by(TrashEntry.deleted_at.desc())).all()
            return [TrashView(t.node_id, name, type_, t.path, t.parent_id, by, _aware(t.deleted_at))
                    for t, name, type_, by in rows]

    def restore(self, node_id: str) -> NodeView:
        """Put a trashed node back where it was. NotFound when it is not in the trash or its
        Folder is gone (or trashed); Conflict when its name was taken meanwhile."""
        with self.writing() as s:
            entry, row = s.get(TrashEntry, node_id), s.get(Node, node_id)
            parent = s.get(Node, entry.parent_id) if entry is not None else None
            if entry is None or row is None:
                raise NotFound(node_id)
            if parent is None or parent.path.startswith(TRASH_PREFIX):
                raise NotFound(entry.path.rsplit("/", 1)[0])
            _place(s, row, parent)
            s.delete(entry)
            s.flush()
            return NodeView.of(row)

    def purge_trash(self, before: datetime, dry_run: bool = False) -> tuple[int, list[str]]:
        """Delete for good what was trashed before ``before``: how many entries, and the blob
        keys to drop (``dry_run``: only count them)."""
        with self.reading() as s:
            ids = s.scalars(select(TrashEntry.node_id).where(TrashEntry.deleted_at < before)).all()
        blobs: list[str] = []
        for node_id in ids:
            if dry_run:
                with self.reading() as s:
                    blobs += s.scalars(select(StoredObject.blob_key).join(Node, Node.id == StoredObject.node_id)
                                       .where(_range_of_subtree(TRASH_PREFIX + node_id))).all()
            else:
                blobs += self.delete_subtree(TRASH_PREFIX + node_id)
        return len(ids), blobs

    def delete_subtree(self, path: str) -> list[str]:
        """Delete a node, everything below it, their objects and edges; returns blob keys to drop."""
        with self.writing() as s:
            ids = s.scalars(select(Node.id).where(_range_of_subtree(path))).all()
            if not ids:
                raise NotFound(path)
            blobs = list(s.scalars(select(StoredObject.blob_key)
                                   .where(StoredObject.node_id.in_(ids))).all())
            blobs += s.scalars(select(MultipartPart.blob_key)
                               .join(MultipartUpload, MultipartUpload.id == MultipartPart.upload_id)
                               .where(MultipartUpload.node_id.in_(ids))).all()
            object_ids = select(StoredObject.id).where(StoredObject.node_id.in_(ids))
            s.execute(delete(SeriesSegment).where(SeriesSegment.object_id.in_(object_ids)))
            s.execute(delete(SeriesIndex).where(SeriesIndex.object_id.in_(object_ids)))
            s.execute(delete(StoredObject).where(StoredObject.node_id.in_(ids)))
            for table in RUN_INDEX_TABLES:
                s.execute(delete(table).where(table.node_id.in_(ids)))
            s.execute(delete(FolderField).where(FolderField.folder_id.in_(ids)))
            upload_ids = select(MultipartUpload.id).where(MultipartUpload.node_id.in_(ids))
            s.execute(delete(MultipartPart).where(MultipartPart.upload_id.in_(upload_ids)))
            s.execute(delete(MultipartUpload).where(MultipartUpload.node_id.in_(ids)))
            s.execute(delete(Edge).where(or_(Edge.src.in_(ids), Edge.dst.in_(ids))))
            s.execute(delete(Node).where(Node.id.in_(ids)))
            return blobs

    def set_node_document(self, node_id: str, field: str, document: Any,
                          derived: RunFieldsView | list[HparamValue] | None = None) -> None:
        """Store a parsed ``metadata.yaml`` (``meta``) or ``hyperparameters.yaml`` (``hparams``);
        for a Run also what search reads of it (``derived``: its fields, or flattened hparams)."""
        assert field in ("meta", "hparams")
        with self.writing() as s:
            row = s.get(Node, node_id)
            if row is None:
                return
            setattr(row, field, None if document is None else json.dumps(document, default=str))
            if row.type != "Run":
                return
            assert row.parent_id is not None  # a Run is always in a Folder
            if field == "meta":
                write_run_fields(s, [(node_id, row.parent_id,
                                      derived if isinstance(derived, RunFieldsView) else None)])
            else:
                write_run_hparams(s, [(node_id, row.parent_id,
                                       derived if isinstance(derived, list) else [])])

    # ---- objects --------------------------------------------------------------------------

    def nodes_at(self, paths: list[str]) -> dict[str, NodeView]:
        """{path: node} of the given paths that name nodes."""
        if not paths:
            return {}
        with self.reading() as s:
            return {r.path: NodeView.of(r) for r in s.scalars(select(Node).where(Node.path.in_(paths)))}

    def put_object(self, node_id: str, key: str, blob_key: str, size: int,
                   md5: str) -> tuple[ObjectView, str | None]:
        """Create or overwrite an object; returns it and the blob key it replaced (to delete)."""
        return self.put_objects(node_id, [(key, blob_key, size, md5)])[0]

    def put_objects(self, node_id: str, items: list[tuple[str, str, int, str]]
                    ) -> list[tuple[ObjectView, str | None]]:
        """Create or overwrite objects ``(key, blob key, size, md5)`` of one node in ONE
        transaction (all become visible together, or none); returns each object and the blob
        key it replaced (to delete), in the order given. Keys must be distinct.

        Plain SQL statements (no ORM objects): this is the hot path of every upload.
        """
        keys = [item[0] for item in items]
        table = StoredObject.__table__
        for attempt in range(3):
            try:
                with self.engine.execution_options(sqlite_immediate=True).begin() as conn:
                    if conn.execute(select(Node.id).where(Node.id == node_id)).first() is None:
                        raise NotFound(node_id)
                    now = utcnow()
                    old: dict[str, str] = {}
                    for i in range(0, len(keys), 500):
                        query = (select(table.c.key, table.c.blob_key)
                                 .where(table.c.node_id == node_id, table.c.key.in_(keys[i:i + 500])))
                        if conn.dialect.name != "sqlite":
                            query = query.with_for_update()
                        old.update(conn.execute(query).all())
                    fresh = [{"node_id": node_id, "key": k, "blob_key": b, "size": n, "md5": m,
                              "updated_at": now} for k, b, n, m in items if k not in old]
                    if fresh:
                        conn.execute(table.insert(), fresh)
                    changed = [{"k": k, "b": b, "n": n, "m": m} for k, b, n, m in items if k in old]
                    if changed:
                        conn.execute(update(table).where(table.c.node_id == node_id,
                                                         table.c.key == bindparam("k"))
                                     .values(blob_key=bindparam("b"), size=bindparam("n"),
                                             md5=bindparam("m"), updated_at=now), changed)
                    ids: dict[str, int] = {}
                    for i in range(0, len(keys), 500):
                        ids.update(conn.execute(
                            select(table.c.key, table.c.id).where(
                                table.c.node_id == node_id, table.c.key.in_(keys[i:i + 500])))
                            .all())
                return [(ObjectView(ids[k], node_id, k, b, n, m, now), old.get(k))
                        for k, b, n, m in items]
            except IntegrityError:
                if attempt == 2:
                    raise
                if self.get_node(node_id) is None:
                    raise NotFound(node_id) from None
        raise AssertionError("unreachable")

    def switch_object(self, node_id: str, key: str, expected: tuple[str, int] | None,
                      blob_key: str, size: int, md5: str) -> ObjectView | None:
        """Point object ``key`` at a new blob only if it still holds ``expected`` (blob key,
        size), or does not exist when ``expected`` is None (an append or truncate that raced
        another write loses). Returns the object, or None when it changed meanwhile."""
        table = StoredObject.__table__
        now = utcnow()
        try:
            with self.engine.execution_options(sqlite_immediate=True).begin() as conn:
                if expected is None:
                    if conn.execute(select(Node.id).where(Node.id == node_id)).first() is None:
                        raise NotFound(node_id)
                    object_id = conn.execute(table.insert().values(
                        node_id=node_id, key=key, blob_key=blob_key, size=size, md5=md5,
                        updated_at=now)).inserted_primary_key[0]
                else:
                    object_id = conn.execute(
                        update(table).where(table.c.node_id == node_id, table.c.key == key,
                                            table.c.blob_key == expected[0],
                                            table.c.size == expected[1])
                        .values(blob_key=blob_key, size=size, md5=md5, updated_at=now)
                        .returning(table.c.id)).scalar()
                    if object_id is None:
                        return None
        except IntegrityError:
            return None  # created by another upload meanwhile
        return ObjectView(object_id, node_id, key, blob_key, size, md5, now)

    def get_object(self, node_id: str, key: str) -> ObjectView | None:
        with self.reading() as s:
            row = s.scalar(select(StoredObject).where(StoredObject.node_id == node_id,
                                                      StoredObject.key == key))
            return ObjectView.of(row) if row else None

    def list_objects(self, node_id: str, prefix: str, offset: int,
                     limit: int) -> tuple[list[ObjectView], int]:
        """Objects of a node whose key starts with ``prefix`` (``''`` for all), by key."""
        cond = [StoredObject.node_id == node_id]
        if prefix:
            cond.append(func.substr(StoredObject.key, 1, len(prefix)) == prefix)
        with self.reading() as s:
            total = s.scalar(select(func.count()).select_from(StoredObject).where(*cond)) or 0
            rows = s.scalars(select(StoredObject).where(*cond).order_by(StoredObject.key)
                             .offset(offset).limit(limit)).all()
            return [ObjectView.of(r) for r in rows], total

    def delete_object(self, node_id: str, key: str) -> str:
        with self.writing() as s:
            row = s.scalar(select(StoredObject).where(StoredObject.node_id == node_id,
                                                      StoredObject.key == key))
            if row is None:
                raise NotFound(key)
            s.execute(delete(SeriesSegment).where(SeriesSegment.object_id == row.id))
            s.execute(delete(SeriesIndex).where(SeriesIndex.object_id == row.id))
            types = s.scalars(select(RunSummary.type).where(RunSummary.node_id == node_id).distinct())
            gone = [t for t in types if run_files.metric_index_path(t) == key]
            if gone:
                s.execute(delete(RunSummary).where(RunSummary.node_id == node_id,
                                                   RunSummary.type.in_(gone)))
            s.delete(row)
            return row.blob_key

    # ---- edges ----------------------------------------------------------------------------

    def add_edges(self, owner_id: int, edges: list[tuple[str, str]]) -> int:
        """Add lineage edges (ids may be unknown to this server); duplicates are ignored."""
        added = 0
        for src, dst in dict.fromkeys(edges):
            try:
                with self.writing() as s:
                    exists = s.scalar(select(Edge.id).where(Edge.owner_id == owner_id,
                                                            Edge.src == src, Edge.dst == dst))
                    if exists is None:
                        s.add(Edge(owner_id=owner_id, src=src, dst=dst))
                        added += 1
            except IntegrityError:
                pass  # a concurrent request added the same edge
        return added

    def edges_touching(self, node_ids: list[str]) -> list[tuple[int, str, str]]:
        """(owner id, src, dst) of every edge touching one of ``node_ids``, oldest first."""
        if not node_ids:
            return []
        with self.reading() as s:
            rows = s.execute(select(Edge.owner_id, Edge.src, Edge.dst).where(
                or_(Edge.src.in_(node_ids), Edge.dst.in_(node_ids))).order_by(Edge.id)).all()
            return [(o, a, b) for o, a, b in rows]

    # ---- multipart ------------------------------------------------------------------------

    def create_multipart(self, node_id: str, key: str) -> str:
        try:
            with self.writing() as s:
                row = MultipartUpload(node_id=node_id, key=key)
                s.add(row)
                s.flush()
                return row.id
        except IntegrityError as exc:  # the node was deleted meanwhile
            raise NotFound(node_id) from exc

    def get_multipart(self, upload_id: str) -> tuple[str, str] | None:
        """(node id, key) of an open multipart upload."""
        with self.reading() as s:
            row = s.get(MultipartUpload, upload_id)
            return (row.node_id, row.key) if row else None

    def put_part(self, upload_id: str, number: int, blob_key: str, size: int,
                 md5: str) -> str | None:
        """Record a part (replacing an earlier one with that number); returns the replaced blob."""
        try:
            with self.writing() as s:
                if s.get(MultipartUpload, upload_id) is None:
                    raise NotFound(upload_id)
                row = s.get(MultipartPart, (upload_id, number))
                old = None
                if row is None:
                    s.add(MultipartPart(upload_id=upload_id, part_number=number,
                                        blob_key=blob_key, size=size, md5=md5))
                else:
                    old = row.blob_key
                    row.blob_key, row.size, row.md5 = blob_key, size, md5
                return old
        except IntegrityError as exc:
            raise Conflict(f"part {number}") from exc

    def list_parts(self, upload_id: str) -> list[tuple[int, str, int, str]]:
        """(number, blob key, size, md5) of every part, by number."""
        with self.reading() as s:
            rows = s.scalars(select(MultipartPart).where(MultipartPart.upload_id == upload_id)
                             .order_by(MultipartPart.part_number)).all()
            return [(r.part_number, r.blob_key, r.size, r.md5) for r in rows]

    def finish_multipart(self, upload_id: str) -> list[str]:
        """Forget an upload; returns its part blobs (to delete)."""
        with self.writing() as s:
            blobs = list(s.scalars(select(MultipartPart.blob_key)
                                   .where(MultipartPart.upload_id == upload_id)).all())
            s.execute(delete(MultipartPart).where(MultipartPart.upload_id == upload_id))
            s.execute(delete(MultipartUpload).where(MultipartUpload.id == upload_id))
            return blobs

    def expire_multiparts(self, before: datetime) -> list[str]:
        """Forget multipart uploads started before ``before`` (abandoned: the 0.6.0b0 client
        never aborts); returns their part blobs (to delete)."""
        return [key for key, _ in self.stale_multiparts(before, forget=True)[1]]

    def stale_multiparts(self, before: datetime,
                         forget: bool) -> tuple[int, list[tuple[str, int]]]:
        """Multipart uploads started before ``before``: how many, and their parts'
        ``(blob key, size)``; ``forget`` also deletes their rows (then the caller deletes the
        blobs)."""
        with self.writing() if forget else self.reading() as s:
            stale = select(MultipartUpload.id).where(MultipartUpload.created_at < before)
            uploads = s.scalar(select(func.count()).select_from(stale.subquery())) or 0
            parts = s.execute(select(MultipartPart.blob_key, MultipartPart.size)
                              .where(MultipartPart.upload_id.in_(stale))).all()
            if forget:
                s.execute(delete(MultipartPart).where(MultipartPart.upload_id.in_(stale)))
                s.execute(delete(MultipartUpload).where(MultipartUpload.created_at < before))
            return uploads, [(key, size) for key, size in parts]

    def blob_keys(self) -> set[str]:
        """Every blob key a row refers to (objects, multipart parts, series indexes)."""
        with self.reading() as s:
            keys: set[str] = set()
            for column in (StoredObject.blob_key, MultipartPart.blob_key, SeriesIndex.blob_key):
                keys.update(s.scalars(select(column)))
            return keys

    # ---- series cache ---------------------------------------------------------------------

    def get_series_index(self, object_id: int) -> SeriesIndexView | None:
        with self.reading() as s:
            row = s.get(SeriesIndex, object_id)
            return _series_view(row) if row else None

    def series_indexes_of(self, node_ids: list[str]) -> dict[str, dict[str, SeriesIndexView]]:
        """{node id: {object key: index}} for the metric objects of these nodes."""
        if not node_ids:
            return {}
        out: dict[str, dict[str, SeriesIndexView]] = {}
        with self.reading() as s:
            rows = s.execute(select(StoredObject.node_id, StoredObject.key, SeriesIndex)
                             .join(SeriesIndex, SeriesIndex.object_id == StoredObject.id)
                             .where(StoredObject.node_id.in_(node_ids))).all()
            for node_id, key, index in rows:
                out.setdefault(node_id, {})[key] = _series_view(index)
        return out

    def series_segments(self, object_id: int, from_seq: int = 0) -> list[bytes]:
        """The encoded segments of an object's series (those from ``from_seq`` on), in order."""
        with self.reading() as s:
            return list(s.scalars(select(SeriesSegment.data)
                                  .where(SeriesSegment.object_id == object_id,
                                         SeriesSegment.seq >= from_seq)
                                  .order_by(SeriesSegment.seq)).all())

    def series_segment_sizes(self, object_id: int) -> list[tuple[int, int]]:
        """``(seq, bytes)`` of each segment of an object's series, in order (no data read)."""
        with self.reading() as s:
            return [(seq, size) for seq, size in s.execute(
                select(SeriesSegment.seq, func.length(SeriesSegment.data))
                .where(SeriesSegment.object_id == object_id).order_by(SeriesSegment.seq))]

    def metric_summaries(self, node_id: str, metric_type: str) -> dict[str, MetricSummary]:
        """{metric name: summary} of one metric type of a Run."""
        with self.reading() as s:
            rows = s.scalars(select(RunSummary).where(RunSummary.node_id == node_id,
                                                      RunSummary.type == metric_type)).all()
            return {r.name: MetricSummary(*(getattr(r, f) for f in SUMMARY_FIELDS)) for r in rows}

    def summaries_of(self, node_ids: list[str]) -> dict[str, dict[str, dict[str, MetricSummary]]]:
        """{node id: {metric type: {name: summary}}}."""
        out: dict[str, dict[str, dict[str, MetricSummary]]] = {}
        with self.reading() as s:
            for i in range(0, len(node_ids), 500):
                for r in s.scalars(select(RunSummary).where(RunSummary.node_id.in_(node_ids[i:i + 500]))):
                    out.setdefault(r.node_id, {}).setdefault(r.type, {})[r.name] = MetricSummary(
                        *(getattr(r, f) for f in SUMMARY_FIELDS))
        return out

    def save_series(self, object_id: int, blob_key: str, index: SeriesIndexView,
                    segment: bytes, replace_from: int | None, metric_type: str | None = None,
                    summaries: dict[str, MetricSummary] | None = None) -> bool:
        """Store an index and one new segment, if the object still holds ``blob_key``, and (in
        the same transaction) the ``summaries`` of its ``metric_type`` when given.

        ``replace_from``: the segment takes the place of those from that ``seq`` on (0: of all,
        a full rebuild; more: a compaction of the newest ones); None: it goes after them.
        Returns False when a newer upload replaced the object meanwhile (nothing written).
        """
        with self.writing() as s:
            obj = s.get(StoredObject, object_id)
            if obj is None or obj.blob_key != blob_key:
                return False
            if summaries is not None and metric_type is not None:
                folder_id = s.scalar(select(Node.parent_id).where(Node.id == obj.node_id))
                write_run_summaries(s, metric_type, [(obj.node_id, folder_id, summaries)])
            row = s.get(SeriesIndex, object_id)
            if replace_from is not None:
                s.execute(delete(SeriesSegment).where(SeriesSegment.object_id == object_id,
                                                      SeriesSegment.seq >= replace_from))
                seq = replace_from
            else:
                seq = (s.scalar(select(func.max(SeriesSegment.seq))
                                .where(SeriesSegment.object_id == object_id)) or 0) + 1
            if segment:
                s.add(SeriesSegment(object_id=object_id, seq=seq, data=segment))
            values = dict(blob_key=blob_key, indexed_bytes=index.indexed_bytes,
                          prefix_md5=index.prefix_md5, count=index.count,
                          segments=index.segments, names=json.dumps(index.names),
                          last_values=json.dumps(index.last_values))
            if row is None:
                s.add(SeriesIndex(object_id=object_id, **values))
            else:
                for k, v in values.items():
                    setattr(row, k, v)
            return True
