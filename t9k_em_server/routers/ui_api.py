"""``/api/ui/v1``: the JSON the web UI pages read (session cookie or bearer auth).

| endpoint | returns |
|---|---|
| ``GET /folders?path=`` (or ``node=<id>``) | the folder and its children; Runs with status, times, labels, hparams, ``last_metrics`` ``{type: {name: value}}`` |
| ``GET /folders?path=&runs=false`` | the folder, its sub-folders and Artifacts, and ``runs``: how many Runs it holds (the folder page pages them from ``/search/runs``) |
| ``GET /runs/{id}`` | a Run: metadata, hparams, platform, git, ``metrics`` ``{type: [names]}``, ``segments`` (resume points), ``inputs``/``outputs`` resolved to node ids |
| ``GET /runs/{id}/series?type=&metric=&x=step\\|epoch\\|time&max_points=`` | ``{x, y, total, returned}``, min/max-bucket downsampled |
| ``GET /runs/{id}/log?tail_bytes=`` | ``{text, size, truncated}``: the end of ``stdout.log`` (from a line start) |
| ``GET /artifacts/{id}`` | an Artifact: metadata, ``objects`` (path, size, md5), ``references`` (path, uri) |
| ``GET /lineage/{id}?depth=`` | ``{nodes, edges}`` around a node (unknown ids appear with ``known: false``) |
| ``GET /objects?path=`` | one object's bytes, streamed (the pages' download links) |

Everything comes from the metadata store and the series cache (``metadata.yaml`` and
``hyperparameters.yaml`` are parsed at upload), so a folder listing reads no blobs.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from t9k_em_core import artifact_files, fileio, metadata_file, run_files

from ..access import node_for, role_of, visible_edges, visible_nodes
from ..errors import ApiError
from ..metadata_store import NodeView, UserView
from ..series import (X_AXES, index_metric_object, load_series, metric_type_of,
                      series_points)
from ..stores import Stores, get_stores
from .auth import current_user
from .objects import object_download

router = APIRouter(prefix="/api/ui/v1", tags=["ui"])

MAX_CHILDREN = 5000
MAX_OBJECTS = 10_000
MAX_DOCUMENT_BYTES = 4 << 20


def _summary(node: NodeView) -> dict[str, Any]:
    """Fields every listing shows, from the node and its parsed ``metadata.yaml``."""
    meta = node.meta or {}
    out: dict[str, Any] = {
        "id": node.id, "name": node.name, "path": node.path, "type": node.type,
        "labels": meta.get("labels", node.labels), "description": meta.get("description", node.description),
        "alternative_name": meta.get("alternativeName", node.alt_name),
        "created": node.created_at.isoformat(), "updated": node.updated_at.isoformat(),
    }
    if node.type == "Run":
        out.update(status=meta.get("status"), start=meta.get("startTimestamp"),
                   end=meta.get("endTimestamp"))
    elif node.type == "Artifact":
        out.update(start=meta.get("createdTimestamp"))
    return out


MAX_RESUME_POINTS = 1000  #: resume points listed per Run


def _segments(meta: dict | None) -> list[dict[str, Any]]:
    """The Run's resume points from its ``metadata.yaml`` ``segments`` (docs/resume.md), as the
    run page draws them: ``{step, time, reason, previous_status}``; malformed records are left
    out, at most ``MAX_RESUME_POINTS``."""
    out = []
    for record in ((meta or {}).get(metadata_file.SEGMENTS) or [])[:MAX_RESUME_POINTS]:
        if not isinstance(record, dict) or isinstance(record.get("resumedAt"), bool) \
                or not isinstance(record.get("resumedAt"), int):
            continue
        out.append({"step": record["resumedAt"], "time": str(record.get("timestamp") or "")[:64],
                    "reason": str(record.get("reason") or "")[:1024],
                    "previous_status": str(record.get("previousStatus") or "")[:32],
                    "cutting": bool(record.get(metadata_file.SEGMENT_CUTTING))})
    return out


def _read_document(stores: Stores, node: NodeView, key: str) -> Any:
    """A YAML document of the node, parsed within the YAML limits (None when absent, larger
    than ``MAX_DOCUMENT_BYTES``, invalid or over the limits: never expanded into a page)."""
    obj = stores.meta.get_object(node.id, key)
    if obj is None or obj.size > MAX_DOCUMENT_BYTES:
        return None
    try:
        text = stores.blobs.read_bytes(obj.blob_key, end=obj.size).decode("utf-8", "replace")
        return fileio.load_yaml_text(text,
                                     stores.limits.yaml)
    except fileio.yaml_error_types():
        return None


def _metric_indexes(stores: Stores, node: NodeView) -> dict[str, Any]:
    """{metric type: series index} of a Run, indexing metric objects that have no index yet."""
    indexes = {metric_type_of(k): v for k, v in stores.meta.series_indexes_of([node.id]).get(node.id, {}).items()}
    objects, _ = stores.meta.list_objects(node.id, run_files.METRICS_DIR + "/", 0, 1000)
    for obj in objects:
        metric_type = metric_type_of(obj.key)
        if metric_type and (metric_type not in indexes or indexes[metric_type].blob_key != obj.blob_key):
            index = index_metric_object(stores.meta, stores.blobs, obj)
            if index is not None:
                indexes[metric_type] = index
    return {t: i for t, i in indexes.items() if t}


@router.get("/folders", summary="A folder and its children, with run summaries")
def folder(path: str | None = None, node: str | None = None,
           runs: bool = Query(True, description="list the Runs too (false: only count them)"),
           user: UserView = Depends(current_user), stores: Stores = Depends(get_stores)) -> dict:
    ref = path or node or f"/{user.name}"
    parent = node_for(stores.meta, user, ref)
    if parent.type != "Folder":
        raise ApiError(400, f"{parent.path} is a {parent.type}, not a Folder")
    role = role_of(stores.meta, user, parent).name.lower()
    if not runs:
        return {**_folder_without_runs(stores, parent), "role": role}
    children, total = stores.meta.list_children(parent.id, None, 0, MAX_CHILDREN)
    indexes = stores.meta.series_indexes_of([c.id for c in children if c.type == "Run"])
    items = []
    for child in children:
        item = _summary(child)
        if child.type == "Run":
            item["hparams"] = child.hparams or {}
            item["last_metrics"] = {
                metric_type_of(key): {name: v["value"] for name, v in index.last_values.items()}
                for key, index in sorted(indexes.get(child.id, {}).items())}
        items.append(item)
    return {"folder": _summary(parent), "children": items, "total": total,
            "truncated": total > len(children), "role": role}


def _folder_without_runs(stores: Stores, parent: NodeView) -> dict:
    """The folder, its sub-folders and Artifacts, and the number of its Runs."""
    items, total = [], 0
    for kind in ("Folder", "Artifact"):
        children, count = stores.meta.list_children(parent.id, kind, 0, MAX_CHILDREN)
        items += [_summary(c) for c in children]
        total += count
    _, run_count = stores.meta.list_children(parent.id, "Run", 0, 0)
    return {"folder": _summary(parent), "children": items, "total": total,
            "truncated": total > len(items), "runs": run_count}


def _resolve_associations(stores: Stores, user: UserView, run: NodeView) -> tuple[list, list]:
    """Inputs/outputs from ``metadata.yaml`` associations plus lineage edges, as node summaries."""
    associations = (run.meta or {}).get("associations") or {}
    edges = visible_edges(stores.meta, user, [run.id])
    ids: dict[str, list[tuple[str, dict]]] = {"input": [], "output": []}
    for direction in ("input", "output"):
        for entry in associations.get(direction) or []:
            if not isinstance(entry, dict):
                continue
            kind = entry.get("kind")
            node_id = entry.get("id")
            if kind == "Artifact" and entry.get("name"):
                found = stores.meta.find_by_alt_name(run.owner_id, "Artifact", str(entry["name"]))
                node_id = found.id if found else None
            ids[direction].append((str(node_id) if node_id else "", entry))
    ids["input"] += [(src, {}) for src, dst in edges if dst == run.id]
    ids["output"] += [(dst, {}) for src, dst in edges if src == run.id]
    known = visible_nodes(stores.meta, user, [i for d in ids.values() for i, _ in d if i])
    result: dict[str, list] = {}
    for direction, entries in ids.items():
        seen, out = set(), []
        for node_id, entry in entries:
            if node_id and node_id in seen:
                continue
            seen.add(node_id)
            node = known.get(node_id)
            if node is not None:
                out.append({**_summary(node), "known": True})
            else:
                out.append({"id": node_id or None, "type": entry.get("kind"),
                            "name": entry.get("name"), "path": entry.get("path"), "known": False})
        result[direction] = out
    return result["input"], result["output"]


@router.get("/runs/{node_id}", summary="One Run: metadata, hparams, environment, metric names, lineage")
def run_detail(node_id: str, user: UserView = Depends(current_user),
               stores: Stores = Depends(get_stores)) -> dict:
    run = node_for(stores.meta, user, node_id, type_="Run")
    inputs, outputs = _resolve_associations(stores, user, run)
    indexes = _metric_indexes(stores, run)
    return {**_summary(run), "hparams": run.hparams or {},
            "platform": _read_document(stores, run, run_files.PLATFORM_FILE) or {},
            "git": _read_document(stores, run, run_files.GIT_FILE) or {},
            "metrics": {t: i.names for t, i in sorted(indexes.items())},
            "metric_counts": {t: i.count for t, i in sorted(indexes.items())},
            "last_metrics": {t: {n: v["value"] for n, v in i.last_values.items()}
                             for t, i in sorted(indexes.items())},
            "segments": _segments(run.meta), "inputs": inputs, "outputs": outputs,
            "role": role_of(stores.meta, user, run).name.lower()}


@router.get("/runs/{node_id}/series", summary="One metric series, downsampled keeping extremes")
def run_series(node_id: str, type: str = Query(..., description="metric type, e.g. train"),
               metric: str = Query(..., description="metric name, e.g. loss"),
               x: str = Query("step", description="|".join(X_AXES)),
               max_points: int = Query(2000, ge=2, le=100_000),
               user: UserView = Depends(current_user), stores: Stores = Depends(get_stores)) -> dict:
    if x not in X_AXES:
        raise ApiError(400, f"x must be one of {', '.join(X_AXES)}")
    run = node_for(stores.meta, user, node_id, type_="Run")
    obj = stores.meta.get_object(run.id, run_files.metric_index_path(type))
    if obj is None:
        raise ApiError(404, f"no metric type {type!r} in {run.path}")
    series = load_series(stores.meta, stores.blobs, obj, [metric])
    if metric not in series.values:
        raise ApiError(404, f"no metric {metric!r} of type {type!r} in {run.path}")
    return {"type": type, **series_points(series, metric, x, max_points)}


@router.get("/runs/{node_id}/log", summary="The end of a Run's stdout.log")
def run_log(node_id: str, tail_bytes: int = Query(256 << 10, ge=1, le=16 << 20),
            user: UserView = Depends(current_user), stores: Stores = Depends(get_stores)) -> dict:
    run = node_for(stores.meta, user, node_id, type_="Run")
    obj = stores.meta.get_object(run.id, run_files.STDOUT_FILE)
    if obj is None:
        return {"text": "", "size": 0, "truncated": False}
    offset = max(0, obj.size - tail_bytes)
    data = stores.blobs.read_bytes(obj.blob_key, offset, end=obj.size)
    if offset:
        data = data.split(b"\n", 1)[-1]  # start at a whole line
    return {"text": data.decode("utf-8", "replace"), "size": obj.size, "truncated": offset > 0}


@router.get("/artifacts/{node_id}", summary="One Artifact: metadata, objects, references")
def artifact_detail(node_id: str, user: UserView = Depends(current_user),
                    stores: Stores = Depends(get_stores)) -> dict:
    artifact = node_for(stores.meta, user, node_id, type_="Artifact")
    objects, total = stores.meta.list_objects(artifact.id, "", 0, MAX_OBJECTS)
    references = _read_document(stores, artifact, artifact_files.REFERENCES_FILE)
    references = references if isinstance(references, dict) else {}
    return {**_summary(artifact), "role": role_of(stores.meta, user, artifact).name.lower(),
            "objects": [{"path": o.key, "size_bytes": o.size, "checksum": o.md5,
                         "updated": o.updated_at.isoformat()}
                        for o in objects if o.key not in artifact_files.ARTIFACT_CONTROL_FILES],
            "objects_truncated": total > len(objects),
            "references": [{"path": str(k), "uri": str(v)} for k, v in sorted(references.items())]}


@router.get("/lineage/{node_id}", summary="The lineage graph around a node")
def lineage(node_id: str, depth: int = Query(3, ge=1, le=10),
            user: UserView = Depends(current_user), stores: Stores = Depends(get_stores)) -> dict:
    start = node_for(stores.meta, user, node_id)
    seen, frontier, edges = {start.id}, [start.id], set()
    for _ in range(depth):
        found = visible_edges(stores.meta, user, frontier)
        edges.update(found)
        frontier = [end for edge in found for end in edge if end not in seen]
        seen.update(frontier)
        if not frontier:
            break
    known = visible_nodes(stores.meta, user, sorted(seen))
    nodes = []
    for nid in sorted(seen):
        node = known.get(nid)
        if node is not None:
            nodes.append({**_summary(node), "known": True})
        else:
            nodes.append({"id": nid, "type": None, "name": nid, "path": None, "known": False})
    return {"root": start.id, "nodes": nodes,
            "edges": [{"from": a, "to": b} for a, b in sorted(edges)]}



@router.get("/objects", summary="Download one object, streamed (the pages' links)",
            response_class=StreamingResponse)
async def download(path: str = Query(...), user: UserView = Depends(current_user),
                   stores: Stores = Depends(get_stores)) -> StreamingResponse:
    return await object_download(stores, user, path)
