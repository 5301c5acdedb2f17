"""Helpers shared by the routers: JSON bodies, pagination, node JSON (permissions: ``access``)."""
from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import BaseModel, ValidationError

from starlette.requests import ClientDisconnect, Request

from ..errors import ApiError
from ..metadata_store import NodeView
from ..stores import Stores

log = logging.getLogger(__name__)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole request body, refusing bodies over ``limit`` bytes (413)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body larger than {limit} bytes")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body larger than {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "client disconnected") from None
    return b"".join(chunks)


MAX_JSON_DEPTH = 64  #: nesting of a JSON body (or of a JSON string field such as ``extra``)


def parse_json(text: str | bytes, what: str = "request body") -> Any:
    """``text`` as JSON, at most ``MAX_JSON_DEPTH`` levels deep and with valid Unicode strings
    (no lone surrogates, which no database takes); 400 naming the problem otherwise. The text is
    size-bounded by the caller; Python's parser itself stops at ~1000 levels (RecursionError)."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise ApiError(400, f"{what} nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, f"{what} is not valid JSON") from None
    stack = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_unicode(item, what)
        elif isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise ApiError(400, f"{what} nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                for key in item:
                    _check_unicode(key, what)
                item = item.values()
            stack.extend((child, depth + 1) for child in item)
    return data


def _check_unicode(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        code = next(ord(c) for c in text if 0xD800 <= ord(c) <= 0xDFFF)
        raise ApiError(400, f"{what} holds a lone surrogate (U+{code:04X}), which is not valid "
                            "Unicode") from None


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object (``parse_json``), refusing bodies over ``limit`` bytes
    (413) before parsing."""
    body = await read_body(request, limit)
    if not body.strip():
        return {}
    data = parse_json(body)
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    return data


MAX_PAGE = 1_000_000_000  #: keeps offsets inside a 64-bit database integer


def page_args(page: int, size: int, max_size: int) -> tuple[int, int, int]:
    """(page, applied size, offset) with 1 <= page <= MAX_PAGE and 1 <= size <= max_size."""
    if not 1 <= page <= MAX_PAGE:
        raise ApiError(400, f"page must be between 1 and {MAX_PAGE}")
    if size < 1:
        raise ApiError(400, "size must be >= 1")
    size = min(size, max_size)
    return page, size, (page - 1) * size


def pagination(page: int, size: int, total: int) -> dict[str, int]:
    return {"page": page, "size": size, "total": total}


def node_json(node: NodeView) -> dict[str, Any]:
    """A node as the AIStore API returns it (``extra`` stays the verbatim string)."""
    parent = node.path.rsplit("/", 1)[0] or None
    return {"id": node.id, "name": node.name, "path": node.path, "parent": parent,
            "type": node.type, "storageType": node.storage_type, "labels": node.labels,
            "description": node.description, "extra": node.extra,
            "createdAt": node.created_at.isoformat(), "updatedAt": node.updated_at.isoformat()}


JSON_MEDIA_TYPE = "application/json"


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body that the handler reads itself (``read_json``).

    Every route whose handler calls ``read_json`` declares its body with this: the declaration is
    how the OpenAPI document, and the abuse suite through it (``reads_json_body``), know which
    endpoints take JSON (tests/server/test_abuse_inputs.py checks no reader lacks it)."""
    return {"requestBody": {"required": True, "content": {
        JSON_MEDIA_TYPE: {"schema": model.model_json_schema()}}}}


def reads_json_body(operation: dict[str, Any]) -> bool:
    """Whether an OpenAPI operation (``paths[path][method]``) takes a JSON body (``body_schema``)."""
    return JSON_MEDIA_TYPE in operation.get("requestBody", {}).get("content", {})


def parse_body(model: type[BaseModel], data: dict[str, Any]) -> Any:
    """Validate a JSON body against ``model``; 400 naming each bad field otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ApiError(400, f"invalid request body: {problems}") from None


def drop_blobs(stores: Stores, keys: list[str]) -> None:
    """Delete blobs no row refers to any more (best effort: leftovers are only wasted space)."""
    if not keys:
        return
    try:
        stores.blobs.delete(keys)
    except Exception:  # noqa: BLE001
        log.warning("could not delete %d blob(s); they are orphaned", len(keys), exc_info=True)
