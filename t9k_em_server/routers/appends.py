"""Our append/truncate extension of the AIStore API, and ``GET /apis/v1/capabilities``.

A growing object (a metric file of a live Run) is kept up to date by sending only its new bytes:

- ``POST /apis/v1/objects/append?path=P&offset=N[&md5=H]``, raw body: appends the body to object
  ``P`` if the object holds exactly ``N`` bytes now (``N`` = 0 creates it). Otherwise nothing
  changes and the answer is ``409`` with the headers ``X-EM-Object-Size`` / ``X-EM-Object-MD5``
  (the object as it is), so a lost or replayed request is detected instead of duplicating bytes.
  ``md5`` (hex) is checked against the body.
- ``POST /apis/v1/objects/truncate?path=P&size=N``: cuts object ``P`` to its first ``N`` bytes
  (a rewound Run); ``409`` (same headers) when it holds fewer.

Both answer like an upload (path, size, MD5 of the whole object) and re-index the object
incrementally (``series.index_metric_object``: an append parses only the new bytes; a truncate
behind the indexed offset rebuilds the series and summaries). The documents the server parses
whole (``indexing.DOCUMENTS``: ``metadata.yaml``, …) are refused (400): upload them whole.

How each blob store appends is in ``blob_store`` (local: in place under a file lock; S3: a new
object copied inside S3). The MD5 of the whole object is carried forward from one append to the
next in memory (``_Md5States``); after a restart the first append re-reads the object once.

``GET /apis/v1/capabilities`` (no authentication) lists the extensions this server has, so a
client can tell it from 0.6.0b0's server or a real AIStore (which answer it 404).
``EM_SERVER_APPEND=0`` turns the extension off (the routes answer 404).
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from ..access import Role, object_for
from ..errors import ApiError
from ..indexing import DOCUMENTS, index_stored_object
from ..metadata_store import NodeView, ObjectView, UserView
from ..stores import Stores, get_stores
from ..uploads import new_blob_key
from .auth import current_user
from .common import drop_blobs, read_body
from .objects import object_json

router = APIRouter(prefix="/apis/v1", tags=["objects"])

SIZE_HEADER = "X-EM-Object-Size"
MD5_HEADER = "X-EM-Object-MD5"
MD5_STATES = 4096  #: objects whose running MD5 is kept (about 200 bytes each)


class _Md5States:
    """Running MD5 objects by (blob key, size): the hash of an object's content, so the next
    append hashes only its new bytes."""

    def __init__(self, limit: int):
        self.limit = limit
        self._items: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, stores: Stores, obj: ObjectView) -> Any:
        """A copy of the hash of ``obj``'s content (read from its blob when not kept)."""
        with self._lock:
            state = self._items.get((obj.blob_key, obj.size))
            if state is not None:
                return state.copy()
        state = hashlib.md5()
        for chunk in stores.blobs.iter_bytes(obj.blob_key, end=obj.size):
            state.update(chunk)
        return state

    def keep(self, obj: ObjectView, state: Any) -> None:
        with self._lock:
            self._items[(obj.blob_key, obj.size)] = state
            self._items.move_to_end((obj.blob_key, obj.size))
            while len(self._items) > self.limit:
                self._items.popitem(last=False)


_MD5 = _Md5States(MD5_STATES)


def _changed(obj: ObjectView | None, wanted: str) -> ApiError:
    size = obj.size if obj else 0
    headers = {SIZE_HEADER: str(size)}
    if obj:
        headers[MD5_HEADER] = obj.md5
    return ApiError(409, f"the object holds {size} bytes, not {wanted}", headers=headers)


def _raise_if_changed(stores: Stores, node: NodeView, key: str, current: ObjectView,
                      wanted: str) -> None:
    """409 when object ``key`` no longer holds what ``current`` says (another write won)."""
    now = stores.meta.get_object(node.id, key)
    if now is None or (now.blob_key, now.size) != (current.blob_key, current.size):
        raise _changed(now, wanted)


def _target(stores: Stores, user: UserView, path: str) -> tuple[NodeView, str]:
    node, key = object_for(stores.meta, user, path, Role.EDITOR)
    if (node.type, key) in DOCUMENTS:
        raise ApiError(400, f"{key} is parsed whole by the server: upload it whole")
    return node, key


def _series_hint(stores: Stores, current: ObjectView, kept: int) -> tuple[int, str] | None:
    """(indexed offset, MD5 of the first that many bytes) of ``current``'s series index, if it
    indexed ``current`` no further than ``kept`` bytes (those stay, so the MD5 still holds)."""
    index = stores.meta.get_series_index(current.id)
    if index is None or index.blob_key != current.blob_key or index.indexed_bytes > kept:
        return None
    return index.indexed_bytes, index.prefix_md5


def _create(stores: Stores, node: NodeView, key: str, data: bytes) -> ObjectView:
    blob_key = new_blob_key()
    stores.blobs.open_writer(blob_key).write_and_commit(data)
    state = hashlib.md5(data)
    obj = stores.meta.switch_object(node.id, key, None, blob_key, len(data), state.hexdigest())
    if obj is None:
        drop_blobs(stores, [blob_key])
        raise _changed(stores.meta.get_object(node.id, key), "0")
    _MD5.keep(obj, state)
    return obj


def _append(stores: Stores, node: NodeView, key: str, offset: int, data: bytes) -> ObjectView:
    current = stores.meta.get_object(node.id, key)
    if (current.size if current else 0) != offset:
        raise _changed(current, str(offset))
    if current is None:
        obj = _create(stores, node, key, data)
        index_stored_object(stores, node, obj)
        return obj
    if not data:
        return current
    new_key = new_blob_key()
    hint = _series_hint(stores, current, current.size)

    def check() -> None:
        _raise_if_changed(stores, node, key, current, str(offset))

    def commit() -> ObjectView:
        obj = stores.meta.switch_object(node.id, key, (current.blob_key, current.size), new_key,
                                        current.size + len(data), state.hexdigest())
        if obj is None:
            raise _changed(stores.meta.get_object(node.id, key), str(offset))
        return obj

    try:
        state = _MD5.of(stores, current)
        state.update(data)
        obj = stores.blobs.extend(current.blob_key, current.size, data, new_key, check, commit)
    except ApiError:
        raise
    except Exception:  # the old blob was deleted by a write that won the race: a 409
        check()
        raise
    _MD5.keep(obj, state)
    drop_blobs(stores, [current.blob_key])
    index_stored_object(stores, node, obj, hint)
    return obj


def _truncate(stores: Stores, node: NodeView, key: str, size: int) -> ObjectView:
    current = stores.meta.get_object(node.id, key)
    if current is None:
        raise ApiError(404, f"object not found [{node.path}/{key}]")
    if current.size < size:
        raise _changed(current, f"at least {size}")
    if current.size == size:
        return current
    new_key = new_blob_key()
    try:
        writer = stores.blobs.copy_prefix(current.blob_key, size, new_key)
    except Exception:  # the old blob was deleted by a write that won the race: a 409
        _raise_if_changed(stores, node, key, current, f"at least {size}")
        raise
    writer.write_and_commit(b"")
    state = hashlib.md5()
    for chunk in stores.blobs.iter_bytes(new_key, end=size):
        state.update(chunk)
    hint = _series_hint(stores, current, size)
    obj = stores.meta.switch_object(node.id, key, (current.blob_key, current.size), new_key,
                                    size, state.hexdigest())
    if obj is None:
        drop_blobs(stores, [new_key])
        raise _changed(stores.meta.get_object(node.id, key), str(current.size))
    _MD5.keep(obj, state)
    drop_blobs(stores, [current.blob_key])
    index_stored_object(stores, node, obj, hint)
    return obj


@router.post("/objects/append", summary="Append bytes to an object that holds `offset` bytes "
                                        "(our extension)")
async def append_object(request: Request, path: str = Query(...), offset: int = Query(..., ge=0),
                        md5: str | None = Query(None, description="MD5 (hex) of the body"),
                        user: UserView = Depends(current_user),
                        stores: Stores = Depends(get_stores)) -> dict:
    node, key = await run_in_threadpool(_target, stores, user, path)
    data = await read_body(request, stores.limits.max_append_bytes)
    if md5 is not None and hashlib.md5(data).hexdigest() != md5.strip().lower():
        raise ApiError(400, "md5 mismatch: the body is not what was sent")
    obj = await run_in_threadpool(_append, stores, node, key, offset, data)
    return object_json(node, obj)


@router.post("/objects/truncate", summary="Cut an object to its first `size` bytes (our extension)")
def truncate_object(path: str = Query(...), size: int = Query(..., ge=0),
                    user: UserView = Depends(current_user),
                    stores: Stores = Depends(get_stores)) -> dict:
    node, key = _target(stores, user, path)
    return object_json(node, _truncate(stores, node, key, size))


def capabilities_router(append: bool, batch: bool, max_append_bytes: int) -> APIRouter:
    """``GET /apis/v1/capabilities``: which of our extensions this server has."""
    capabilities = APIRouter(prefix="/apis/v1", tags=["health"])
    reply = {"append": append, "truncate": append, "batch": batch,
             "max_append_bytes": max_append_bytes if append else 0}

    @capabilities.get("/capabilities", summary="Our extensions of the AIStore API (no auth)")
    def get_capabilities() -> dict:
        return reply

    return capabilities
