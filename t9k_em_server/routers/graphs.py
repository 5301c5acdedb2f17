"""``/apis/v1/graphs``: lineage edges (input Artifact → Run → output Artifact).

Edge ends are opaque ids: em node ids, Asset Hub ids, or ``<asset id>:<ref>`` strings, so ids this
server does not know are accepted (spec §5.8). Which edges a user sees is
``access.visible_edges``: their own, and at a node they can see, those drawn by its editors.
Nothing tells a node the user cannot see from an unknown id: ``GET`` answers ``404 node not
found`` for an id that is neither a node the user can see nor an end of one of their edges, and
neighbours show their name, path and type only when the user can see them; ``POST`` takes any id
as the opaque id it is to this user.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..access import visible_edges, visible_nodes
from ..errors import ApiError, node_not_found
from ..metadata_store import UserView
from ..stores import Stores, get_stores
from .auth import current_user
from .common import body_schema, parse_body, read_json

router = APIRouter(prefix="/apis/v1", tags=["graphs"])

MAX_EDGES = 10_000
MAX_ID_CHARS = 255


class GraphEdge(BaseModel):
    from_: str = Field(alias="from")
    to: str


class GraphEdges(BaseModel):
    """Body of ``POST /apis/v1/graphs`` (spec §5.8)."""

    graphs: list[GraphEdge]


def _neighbours(stores: Stores, ids: list[str], user: UserView) -> list[dict]:
    visible = visible_nodes(stores.meta, user, ids)
    out = []
    for node_id in ids:
        node = visible.get(node_id)
        item: dict = {"id": node_id}
        if node is not None:
            item.update(name=node.name, path=node.path, type=node.type)
        out.append(item)
    return out


@router.get("/graphs", summary="Edges into and out of one node (spec §5.7)")
def get_graph(current: str = Query(..., description="node id"),
              user: UserView = Depends(current_user),
              stores: Stores = Depends(get_stores)) -> dict:
    edges = visible_edges(stores.meta, user, [current])
    if not edges and current not in visible_nodes(stores.meta, user, [current]):
        raise node_not_found(current)
    incoming = list(dict.fromkeys(src for src, dst in edges if dst == current))
    outgoing = list(dict.fromkeys(dst for src, dst in edges if src == current))
    return {"in": _neighbours(stores, incoming, user), "out": _neighbours(stores, outgoing, user)}


@router.post("/graphs", summary="Add lineage edges (spec §5.8)",
             openapi_extra=body_schema(GraphEdges))
async def add_edges(request: Request, user: UserView = Depends(current_user),
                    stores: Stores = Depends(get_stores)) -> dict:
    body: GraphEdges = parse_body(GraphEdges, await read_json(request, stores.limits.max_json_bytes))
    if len(body.graphs) > MAX_EDGES:
        raise ApiError(400, f"at most {MAX_EDGES} edges per request")
    edges = [(e.from_, e.to) for e in body.graphs]
    for src, dst in edges:
        for end in (src, dst):
            if not end or len(end) > MAX_ID_CHARS:
                raise ApiError(400, f"edge ids must be 1-{MAX_ID_CHARS} characters")
            if src == dst:
                raise ApiError(400, f"an edge cannot connect {src!r} to itself")
    added = await run_in_threadpool(stores.meta.add_edges, user.id, edges)
    return {"added": added, "edges": len(edges)}
