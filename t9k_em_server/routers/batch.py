"""``POST /apis/v1/objects/batch``: many small objects of one node in one request.

Our extension of the AIStore API (t9k 0.6.0b0 and a real AIStore server do not have it; our
client falls back to one request per object when the server answers 404/405). The body is an
uncompressed tar stream (``Content-Type: application/x-tar``); each member is a regular file whose
name is the object key inside the node ``?path=`` and which carries its MD5 (hex) in the PAX header
``T9K.md5``. The batch is all or nothing: every key is checked like a single upload's
(``paths.normalise_key``), every member's size (tar framing) and MD5 verified, and only then are
all objects committed in one database transaction. Any problem refuses the whole batch (400/413
naming the member) and nothing of it becomes visible.
"""
from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from ..access import STORABLE, Role, node_for
from ..errors import ApiError, node_not_found
from ..indexing import index_stored_object, parse_document
from ..metadata_store import NodeView, NotFound, UserView
from ..paths import normalise_key
from ..stores import Stores, get_stores
from ..uploads import PendingBlob, Received
from .auth import current_user
from .common import drop_blobs, read_body
from .objects import object_json, series_prefix_at

router = APIRouter(prefix="/apis/v1", tags=["objects"])

MD5_HEADER = "T9K.md5"
MAX_BATCH_BYTES = 64 << 20   #: the largest batch body
MAX_BATCH_MEMBERS = 10_000   #: the most objects in one batch


@dataclass(frozen=True)
class Member:
    """One object of a batch: normalised key, bytes, expected MD5."""

    key: str
    data: bytes
    md5: str


def batch_node(stores: Stores, user: UserView, path: str) -> NodeView:
    """The Run/Artifact/Model/Dataset a batch goes to (404 missing or not visible, 403 without
    ``EDITOR``, 400 a Folder); only a node path, never an id."""
    if not path.startswith("/"):
        raise ApiError(400, f"invalid node path {path[:200]!r}: must be absolute")
    node = node_for(stores.meta, user, path, Role.EDITOR)
    if node.type not in STORABLE:
        raise ApiError(400, f"{node.path} is a {node.type}: objects belong to a Run, Artifact, "
                            "Model or Dataset")
    return node


def parse_members(body: bytes) -> list[Member]:
    """The members of a tar body, each key normalised; 400 naming the first bad member."""
    members: list[Member] = []
    seen: set[str] = set()
    try:
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:") as tar:
            for info in tar:
                if not info.isreg():
                    raise ApiError(400, f"batch member {info.name!r} is not a regular file")
                _check_raw_name(body, info)
                key = normalise_key(info.name)
                if key in seen:
                    raise ApiError(400, f"batch member {key!r} appears twice")
                md5 = info.pax_headers.get(MD5_HEADER, "").strip().lower()
                if len(md5) != 32:
                    raise ApiError(400, f"batch member {key!r} has no {MD5_HEADER} PAX header "
                                        "(32 hex digits)")
                if len(members) == MAX_BATCH_MEMBERS:
                    raise ApiError(413, f"more than {MAX_BATCH_MEMBERS} objects in one batch")
                seen.add(key)
                data = tar.extractfile(info).read()  # type: ignore[union-attr]
                if len(data) != info.size:
                    raise ApiError(400, f"batch member {key!r} is truncated")
                members.append(Member(key, data, md5))
    except tarfile.TarError as exc:
        raise ApiError(400, f"malformed tar body: {exc}") from None
    return members


def _check_raw_name(body: bytes, info: tarfile.TarInfo) -> None:
    """400 for a member name that ``tarfile`` would silently shorten: a NUL inside the header's
    name (or ustar prefix) field, which ``tarfile`` cuts at (``a\\x00b`` would be stored as
    ``a``), or a GNU long name (cut the same way; our client sends PAX). A PAX ``path`` keeps a
    NUL, and ``normalise_key`` refuses it like any control character."""
    if body[info.offset + 156:info.offset + 157] in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
        raise ApiError(400, f"batch member {info.name!r}: GNU long names are not supported (use PAX)")
    if "path" in info.pax_headers:
        return
    header = body[info.offset_data - tarfile.BLOCKSIZE:info.offset_data]
    fields = [header[:100]] + ([header[345:500]] if header[257:263] == b"ustar\0" else [])
    if any(b"\0" in field.rstrip(b"\0") for field in fields):
        raise ApiError(400, f"invalid object key {info.name!r}: control characters not allowed "
                            "(a NUL in the member's name)")


def store_batch(stores: Stores, user: UserView, path: str, body: bytes) -> dict:
    """Verify and store every member, then commit them all at once (see the module doc)."""
    node = batch_node(stores, user, path)
    members = parse_members(body)
    documents = [parse_document(stores, node, m.key, len(m.data), lambda m=m: m.data)
                 for m in members]
    pending: list[PendingBlob] = []
    received: list[Received] = []
    try:
        for m in members:
            blob = PendingBlob(stores.blobs, stores.limits.max_object_bytes,
                               series_prefix_at(stores, node, m.key))
            pending.append(blob)
            try:
                received.append(blob.finish(m.data, len(m.data), ((MD5_HEADER, m.md5),),
                                            commit=False))
            except ApiError as exc:
                raise ApiError(exc.status, f"batch member {m.key!r}: {exc.text}") from None
        stores.blobs.commit_all([blob.writer for blob in pending])
        stored = stores.meta.put_objects(
            node.id, [(m.key, r.blob_key, r.size, r.md5) for m, r in zip(members, received)])
    except BaseException as exc:
        for blob in pending:
            blob.abort()
        drop_blobs(stores, [r.blob_key for r in received])
        if isinstance(exc, NotFound):
            raise node_not_found(node.path) from None
        raise
    drop_blobs(stores, [old for _, old in stored if old])
    for (obj, _), r, document in zip(stored, received, documents):
        index_stored_object(stores, node, obj, r.prefix, document)
    return {"path": node.path, "node": node.id,
            "objects": [object_json(node, obj) for obj, _ in stored]}


@router.post("/objects/batch", summary="Upload many small objects of one node at once (extension)")
async def upload_batch(request: Request, path: str = Query(..., description="the node's path"),
                       user: UserView = Depends(current_user),
                       stores: Stores = Depends(get_stores)) -> dict:
    body = await read_body(request, MAX_BATCH_BYTES)
    return await run_in_threadpool(store_batch, stores, user, path, body)
