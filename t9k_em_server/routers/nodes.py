"""``/apis/v1/nodes``: list, create, inspect, update and delete Folders, Runs and Artifacts."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from .. import audit
from ..access import Role, canonical_ref, node_for, parent_for
from ..errors import ApiError, conflict, node_not_found
from ..metadata_store import Conflict, NotAFolder, NotFound, UserView
from ..paths import check_name
from ..stores import Stores, get_stores
from .auth import current_user
from .common import (body_schema, node_json, page_args, pagination, parse_body,
                     parse_json, read_json)

NODE_TYPES = {"Folder": 0, "Run": 2, "Artifact": 2, "Model": 3, "Dataset": 3}  #: default storageType
STORAGE_TYPES = (0, 1, 2, 3)  #: what AIStore clients send (spec server-api §5.3)

router = APIRouter(prefix="/apis/v1", tags=["nodes"])


class NodeCreate(BaseModel):
    """Body of ``POST /apis/v1/nodes`` (spec §5.3)."""

    parent: str = Field(description="absolute path of the parent Folder, e.g. /alice/proj")
    name: str
    type: str = Field(description="Folder, Run, Artifact, Model or Dataset")
    storageType: int | None = None
    labels: list[str] = []
    description: str = ""
    extra: str = Field("", description="stored verbatim; Run/Artifact: JSON with alternativeName")


class NodeUpdate(BaseModel):
    """Body of ``PUT /apis/v1/nodes`` (spec §5.6): ``node`` plus the fields to change."""

    node: str
    name: str | None = None
    labels: list[str] | None = None
    description: str | None = None
    extra: str | None = None


class NodeRef(BaseModel):
    """Body of ``DELETE /apis/v1/nodes`` (spec §5.5)."""

    node: str


def alt_name_of(extra: str) -> str | None:
    """``alternativeName`` from an ``extra`` JSON string, if it has one. ``extra`` is stored
    verbatim and need not be JSON, but JSON in it is held to the body's rules (depth, Unicode)."""
    try:
        data = parse_json(extra, "extra") if extra else None
    except ApiError as exc:
        if exc.text.endswith("is not valid JSON"):
            return None
        raise
    value = data.get("alternativeName") if isinstance(data, dict) else None
    return value if isinstance(value, str) and len(value) <= 128 else None


def _check_fields(stores: Stores, labels: list[str] | None, description: str | None,
                  extra: str | None) -> None:
    limits = stores.limits
    if labels is not None and (len(labels) > limits.max_labels
                               or any(len(x) > limits.max_label_chars for x in labels)):
        raise ApiError(400, f"too many or too long labels (at most {limits.max_labels} "
                            f"of {limits.max_label_chars} characters)")
    if description is not None and len(description) > limits.max_description_chars:
        raise ApiError(400, f"description longer than {limits.max_description_chars} characters")
    if extra is not None and len(extra) > limits.max_extra_chars:
        raise ApiError(400, f"extra longer than {limits.max_extra_chars} characters")


@router.get("/nodes", summary="List the children of a Folder (spec §5.2)")
def list_nodes(parent: str = Query(..., description="path or id of the parent"),
               type: str | None = Query(None, description="only children of this type"),
               page: int = 1, size: int = 20,
               user: UserView = Depends(current_user),
               stores: Stores = Depends(get_stores)) -> dict:
    node = node_for(stores.meta, user, parent)
    page, size, offset = page_args(page, size, stores.limits.max_page_size)
    children, total = stores.meta.list_children(node.id, type or None, offset, size)
    return {"data": [node_json(c) for c in children], "pagination": pagination(page, size, total)}


@router.post("/nodes", summary="Create a node (spec §5.3)", openapi_extra=body_schema(NodeCreate))
async def create_node(request: Request, user: UserView = Depends(current_user),
                      stores: Stores = Depends(get_stores)) -> dict:
    body: NodeCreate = parse_body(NodeCreate, await read_json(request, stores.limits.max_json_bytes))
    parent = canonical_ref(body.parent)
    if not parent.startswith("/"):
        raise ApiError(400, f"invalid node path {body.parent[:200]!r}: must be absolute")
    await run_in_threadpool(node_for, stores.meta, user, parent, Role.EDITOR)
    check_name(body.name)
    if body.type not in NODE_TYPES:
        raise ApiError(400, f"invalid node type {body.type!r}: use one of {', '.join(NODE_TYPES)}")
    _check_fields(stores, body.labels, body.description, body.extra)
    storage_type = NODE_TYPES[body.type] if body.storageType is None else body.storageType
    if storage_type not in STORAGE_TYPES:
        raise ApiError(400, f"invalid storageType {storage_type}: use one of "
                            f"{', '.join(map(str, STORAGE_TYPES))}")
    try:
        node = await run_in_threadpool(
            stores.meta.create_node, parent, body.name, body.type, storage_type, body.labels,
            body.description, body.extra, alt_name_of(body.extra))
    except NotFound:
        raise node_not_found(parent) from None
    except NotAFolder as exc:
        raise ApiError(400, f"cannot create {body.name!r} in {parent}: it is a {exc.type}, and "
                            "nodes are created in Folders") from None
    except Conflict:
        raise conflict(body.name) from None
    return node_json(node)


@router.get("/nodes/info", summary="One node by path or id (spec §5.4)")
def node_info(node: str = Query(..., description="path or id"),
              user: UserView = Depends(current_user),
              stores: Stores = Depends(get_stores)) -> dict:
    return node_json(node_for(stores.meta, user, node))


@router.put("/nodes", summary="Rename or edit a node (spec §5.6)",
            openapi_extra=body_schema(NodeUpdate))
async def update_node(request: Request, user: UserView = Depends(current_user),
                      stores: Stores = Depends(get_stores)) -> dict:
    body: NodeUpdate = parse_body(NodeUpdate, await read_json(request, stores.limits.max_json_bytes))
    node = await run_in_threadpool(node_for, stores.meta, user, body.node, Role.EDITOR)
    if body.name is not None:
        check_name(body.name)
        if node.parent_id is None:
            raise ApiError(400, "a user's root folder cannot be renamed")
        await run_in_threadpool(parent_for, stores.meta, user, node, Role.EDITOR)
    _check_fields(stores, body.labels, body.description, body.extra)
    try:
        updated = await run_in_threadpool(
            stores.meta.update_node, node.id, body.name, body.labels, body.description,
            body.extra, alt_name_of(body.extra) if body.extra is not None else None)
    except NotFound:
        raise node_not_found(body.node) from None
    except Conflict:
        raise conflict(body.name or "") from None
    changed = {k: v for k, v in (("labels", body.labels), ("description", body.description),
                                 ("extra", body.extra)) if v is not None}
    if changed:
        await run_in_threadpool(audit.record, stores.meta, user, "edit", updated, None, changed)
    if updated.path != node.path:
        await run_in_threadpool(audit.record, stores.meta, user, "rename", node, updated.path)
    return node_json(updated)


@router.delete("/nodes", summary="Delete a node with its subtree into the trash (spec §5.5)",
               openapi_extra=body_schema(NodeRef))
async def delete_node(request: Request, user: UserView = Depends(current_user),
                      stores: Stores = Depends(get_stores)) -> dict:
    data = await read_json(request, stores.limits.max_json_bytes)
    if "node" not in data and "node" in request.query_params:
        data = {"node": request.query_params["node"]}
    body: NodeRef = parse_body(NodeRef, data)
    node = await run_in_threadpool(node_for, stores.meta, user, body.node)
    if node.parent_id is None:
        raise ApiError(400, "a user's root folder cannot be deleted")
    await run_in_threadpool(parent_for, stores.meta, user, node, Role.EDITOR)
    try:
        await run_in_threadpool(stores.meta.trash, node.id, user.id)
    except NotFound:
        raise node_not_found(body.node) from None
    await run_in_threadpool(audit.record, stores.meta, user, "delete", node)
    return {"id": node.id, "path": node.path, "deleted": True, "trash": True}


# the web UI edits and deletes through the same handlers (session cookie + CSRF header)
ui_router = APIRouter(prefix="/api/ui/v1", tags=["ui"])
ui_router.add_api_route("/nodes", update_node, methods=["PUT"], openapi_extra=body_schema(NodeUpdate),
                        summary="Edit a node's description and labels (or rename it)")
ui_router.add_api_route("/nodes", delete_node, methods=["DELETE"], openapi_extra=body_schema(NodeRef),
                        summary="Delete a node with its subtree into the trash")
