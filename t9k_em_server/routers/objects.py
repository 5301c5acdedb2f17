"""``/apis/v1/objects``: upload, download, list and delete objects; multipart uploads.

An object path is ``<node path>/<key>``; the owning node is the longest prefix that is a node
(spec §3). Uploads stream into a fresh blob, are verified (size, MD5), and only then replace the
object's row, so readers see the old bytes or the new ones, never a partial upload.
"""
from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ..access import STORABLE, Role, object_for, role_of
from ..blob_store import PartsChanged
from ..errors import ApiError, node_not_found
from ..indexing import index_stored_object, needs_prefix_hint, parse_document
from ..metadata_store import NodeView, NotFound, ObjectView, UserView
from ..stores import Stores, get_stores
from ..uploads import Digest, Received, new_blob_key, receive_upload
from .auth import current_user
from .common import body_schema, drop_blobs, page_args, pagination, parse_body, read_json

router = APIRouter(prefix="/apis/v1", tags=["objects"])



class CompletedPart(BaseModel):
    etag: str
    partNumber: int


class CompleteMultipart(BaseModel):
    """Body of the multipart completion (spec §5.12 step 3); note ``etag`` spelling."""

    parts: list[CompletedPart]


def series_prefix_at(stores: Stores, node: NodeView, key: str) -> int | None:
    """The indexed offset of the object's series cache, if it has one (an upload records the
    MD5 of its bytes up to there, so the cache can be extended instead of rebuilt)."""
    if not needs_prefix_hint(node, key):
        return None
    current = stores.meta.get_object(node.id, key)
    index = stores.meta.get_series_index(current.id) if current else None
    return index.indexed_bytes if index else None


def _upload_target(stores: Stores, user: UserView, path: str) -> tuple[NodeView, str, int | None]:
    """(owning node, key, series prefix offset) of an object about to be uploaded."""
    node, key = object_for(stores.meta, user, path, Role.EDITOR)
    return node, key, series_prefix_at(stores, node, key)


def _store(stores: Stores, node: NodeView, key: str, received: Received) -> ObjectView:
    """Check a verified blob (a YAML document the server parses must be within limits), make it
    the object's content, drop the blob it replaced, index it."""
    try:
        document = parse_document(stores, node, key, received.size,
                                  lambda: stores.blobs.read_bytes(received.blob_key))
        obj, old = stores.meta.put_object(node.id, key, received.blob_key, received.size,
                                          received.md5)
    except ApiError:
        drop_blobs(stores, [received.blob_key])
        raise
    except NotFound:
        drop_blobs(stores, [received.blob_key])
        raise node_not_found(node.path) from None
    if old:
        drop_blobs(stores, [old])
    index_stored_object(stores, node, obj, received.prefix, document)
    return obj


def object_json(node: NodeView, obj: ObjectView) -> dict:
    """An object as the upload endpoints answer it."""
    return {"path": f"{node.path}/{obj.key}", "node": node.id, "size_bytes": obj.size,
            "md5": obj.md5, "updatedAt": obj.updated_at.isoformat()}


@router.post("/objects", summary="Upload one object (spec §5.10)")
async def upload_object(request: Request, path: str = Query(...),
                        size: int | None = Query(None, description="expected size in bytes"),
                        md5: str | None = Query(None, description="expected MD5 (hex)"),
                        user: UserView = Depends(current_user),
                        stores: Stores = Depends(get_stores)) -> dict:
    node, key, prefix_at = await run_in_threadpool(_upload_target, stores, user, path)
    received = await receive_upload(request, stores.blobs, stores.limits.max_object_bytes,
                                    size, md5, prefix_at)
    obj = await run_in_threadpool(_store, stores, node, key, received)
    return object_json(node, obj)


def _stream(first: bytes | None, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _open_download(stores: Stores, user: UserView, path: str) -> tuple[ObjectView, Iterator[bytes], bytes | None]:
    """Find the object and read its first chunk (retrying once if an overwrite raced us)."""
    for attempt in range(2):
        node, key = object_for(stores.meta, user, path, Role.VIEWER)
        obj = stores.meta.get_object(node.id, key)
        if obj is None:
            raise ApiError(404, f"object not found [{path}]")
        chunks = stores.blobs.iter_bytes(obj.blob_key, end=obj.size)
        try:
            return obj, chunks, next(chunks, None)
        except Exception:  # noqa: BLE001 - the blob was replaced and deleted under us
            if attempt:
                raise
    raise AssertionError("unreachable")


@router.get("/objects", summary="Download one object, streamed (spec §5.11)",
            response_class=StreamingResponse)
async def download_object(path: str = Query(...), user: UserView = Depends(current_user),
                          stores: Stores = Depends(get_stores)) -> StreamingResponse:
    return await object_download(stores, user, path)


async def object_download(stores: Stores, user: UserView, path: str) -> StreamingResponse:
    """The streamed download of the object at ``path`` (also the web UI's download links)."""
    obj, chunks, first = await run_in_threadpool(_open_download, stores, user, path)
    name = quote(obj.key.rsplit("/", 1)[-1], safe="")
    return StreamingResponse(
        _stream(first, chunks), media_type="application/octet-stream",
        headers={"Content-Length": str(obj.size), "ETag": f'"{obj.md5}"',
                 "Content-Disposition": f"attachment; filename*=UTF-8''{name}"})


@router.delete("/objects", summary="Delete one object")
def delete_object(path: str = Query(...), user: UserView = Depends(current_user),
                  stores: Stores = Depends(get_stores)) -> dict:
    node, key = object_for(stores.meta, user, path, Role.EDITOR)
    try:
        blob = stores.meta.delete_object(node.id, key)
    except NotFound:
        raise ApiError(404, f"object not found [{path}]") from None
    drop_blobs(stores, [blob])
    return {"path": path, "deleted": True}


@router.get("/objects/ls", summary="List objects below a path, recursively, files only (spec §5.9)")
def list_objects(path: str = Query(...), page: int = 1, size: int = 20,
                 user: UserView = Depends(current_user),
                 stores: Stores = Depends(get_stores)) -> dict:
    page, size, offset = page_args(page, size, stores.limits.max_page_size)
    path = path.rstrip("/")
    node, prefix = stores.meta.get_node(path) if path.startswith("/") else None, ""
    if role_of(stores.meta, user, node) == Role.NONE:
        node, key = object_for(stores.meta, user, path, Role.VIEWER)
        prefix = key + "/"
    if node.type not in STORABLE:
        return {"data": [], "pagination": pagination(page, size, 0)}
    objects, total = stores.meta.list_objects(node.id, prefix, offset, size)
    data = [{"path": "/" + o.key[len(prefix):], "path_type": "object", "size_bytes": o.size,
             "md5": o.md5, "updatedAt": o.updated_at.isoformat()} for o in objects]
    return {"data": data, "pagination": pagination(page, size, total)}


# ------------------------------------------------------------------------------- multipart

def _upload_of(stores: Stores, user: UserView, upload_id: str, path: str) -> tuple[NodeView, str]:
    node, key = object_for(stores.meta, user, path, Role.EDITOR)
    found = stores.meta.get_multipart(upload_id)
    if found is None or found != (node.id, key):
        raise ApiError(404, f"upload not found [{upload_id}]")
    return node, key


@router.post("/objects/multipart", summary="Start a multipart upload (spec §5.12 step 1)")
def start_multipart(path: str = Query(...), user: UserView = Depends(current_user),
                    stores: Stores = Depends(get_stores)) -> dict:
    node, key = object_for(stores.meta, user, path, Role.EDITOR)
    try:
        upload_id = stores.meta.create_multipart(node.id, key)
    except NotFound:
        raise node_not_found(node.path) from None
    return {"uploadId": upload_id, "path": path}


@router.put("/objects/multipart/{upload_id}", summary="Upload one part (spec §5.12 step 2)")
async def upload_part(upload_id: str, request: Request, path: str = Query(...),
                      partNumber: int = Query(..., ge=1),
                      user: UserView = Depends(current_user),
                      stores: Stores = Depends(get_stores)) -> dict:
    if partNumber > stores.limits.max_parts:
        raise ApiError(400, f"partNumber must be between 1 and {stores.limits.max_parts}")
    await run_in_threadpool(_upload_of, stores, user, upload_id, path)
    received = await receive_upload(request, stores.blobs, stores.limits.max_part_bytes,
                                    blob_kind="parts")
    try:
        old = await run_in_threadpool(stores.meta.put_part, upload_id, partNumber,
                                      received.blob_key, received.size, received.md5)
    except NotFound:
        await run_in_threadpool(drop_blobs, stores, [received.blob_key])
        raise ApiError(404, f"upload not found [{upload_id}]") from None
    if old:
        await run_in_threadpool(drop_blobs, stores, [old])
    return {"eTag": received.md5, "partNumber": partNumber, "size": received.size}


def _parts_changed() -> ApiError:
    return ApiError(409, "stored parts changed while assembling; retry the completion")


def _assemble(stores: Stores, upload_id: str, wanted: list[CompletedPart],
              prefix_at: int | None) -> Received:
    """Check the client's etag list against the stored parts, then concatenate them into a new
    blob (``BlobStore.assemble``: copied inside the store while hashed here) and commit it once
    its size is the recorded total. Its MD5 is the object's."""
    if not wanted:
        raise ApiError(400, "no parts given")
    stored = {n: (blob, size, md5) for n, blob, size, md5 in stores.meta.list_parts(upload_id)}
    numbers = [p.partNumber for p in wanted]
    if numbers != sorted(set(numbers)):
        raise ApiError(400, "parts must be listed in strictly ascending partNumber order")
    for part in wanted:
        if part.partNumber not in stored:
            raise ApiError(400, f"part {part.partNumber} was not uploaded")
        if part.etag.strip().strip('"').lower() != stored[part.partNumber][2]:
            raise ApiError(400, f"etag mismatch for part {part.partNumber}")
    total = sum(stored[n][1] for n in numbers)
    blob_key = new_blob_key()
    digest = Digest(total, prefix_at)
    try:
        writer = stores.blobs.assemble(blob_key, [stored[n][:2] for n in numbers], digest.update)
    except PartsChanged:
        raise _parts_changed() from None
    except ApiError as exc:
        if exc.status == 413:  # more bytes than recorded: a part was replaced meanwhile
            raise _parts_changed() from None
        raise
    try:
        if digest.size != total:
            raise _parts_changed()
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return digest.received(blob_key)


@router.post("/objects/multipart/{upload_id}", summary="Complete a multipart upload (spec §5.12 step 3)",
             openapi_extra=body_schema(CompleteMultipart))
async def complete_multipart(upload_id: str, request: Request, background: BackgroundTasks,
                             path: str = Query(...), user: UserView = Depends(current_user),
                             stores: Stores = Depends(get_stores)) -> dict:
    body: CompleteMultipart = parse_body(CompleteMultipart,
                                         await read_json(request, stores.limits.max_json_bytes))
    node, key = await run_in_threadpool(_upload_of, stores, user, upload_id, path)
    prefix_at = await run_in_threadpool(series_prefix_at, stores, node, key)
    received = await run_in_threadpool(_assemble, stores, upload_id, body.parts, prefix_at)
    obj = await run_in_threadpool(_store, stores, node, key, received)
    parts = await run_in_threadpool(stores.meta.finish_multipart, upload_id)
    background.add_task(drop_blobs, stores, parts)  # after the reply: no row refers to them now
    return object_json(node, obj)
