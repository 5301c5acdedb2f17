"""``/apis/v1/graphs``: lineage edges (input Artifact → Run → output Artifact).

Edge ends are opaque ids: em node ids, Asset Hub ids, or ``<asset id>:<ref>`` strings, so ids this
server does not know are accepted (spec §5.8). Edges belong to the user who added them and show
only to them. Nothing tells a node of another user from an unknown id: ``GET`` answers
``404 node not found`` for an id that is neither the user's node nor an end of one of their edges,
and ``POST`` takes another user's node id as the opaque id it is to this user (the edge names
nothing of that node to anyone: views resolve only the viewer's own nodes).
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

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


def _neighbour(stores: Stores, ids: list[str], user: UserView) -> list[dict]:
    known = stores.meta.get_nodes(ids)
    out = []
    for node_id in ids:
        node = known.get(node_id)
        item: dict = {"id": node_id}
        if node is not None and node.owner_id == user.id:
            item.update(name=node.name, path=node.path, type=node.type)
        out.append(item)
    return out


@router.get("/graphs", summary="Edges into and out of one node (spec §5.7)")
def get_graph(current: str = Query(..., description="node id"),
              user: UserView = Depends(current_user),
              stores: Stores = Depends(get_stores)) -> dict:
    node = stores.meta.get_node(current) if not current.startswith("/") else None
    edges = stores.meta.edges_of(user.id, [current])
    if not edges and (node is None or node.owner_id != user.id):
        raise node_not_found(current)
    incoming = list(dict.fromkeys(src for src, dst in edges if dst == current))
    outgoing = list(dict.fromkeys(dst for src, dst in edges if src == current))
    return {"in": _neighbour(stores, incoming, user), "out": _neighbour(stores, outgoing, user)}


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
