"""The AIStore API as the 0.6.0b0 `em` client uses it (spec server-api.md), over real HTTP.

t9k 0.6.0b0 is not installable here: every request is built by hand exactly as the spec shows
(query ``apikey``, JSON bodies, multipart part ``content``), and replies are checked against what
the client reads (status codes, error substrings, keys).
"""
from __future__ import annotations

import hashlib
import json
import os
from datetime import timedelta

import pytest

pytestmark = pytest.mark.timeout(120)


def client_missing_path(text: str) -> str:
    """What the 0.6.0b0 client extracts from a 404 on create (spec §2): after the last '[',
    minus the final character."""
    return text[text.rindex("[") + 1:][:-1]


def test_login_sequence(api):
    info = api.request("GET", "/oauth2/userinfo")
    assert info.status_code == 200 and info.json()["preferred_username"] == api.user
    listing = api.request("GET", "/apis/v1/nodes", params={"parent": f"/{api.user}", "type": "Folder"})
    assert listing.status_code == 200
    assert {"data", "pagination"} <= set(listing.json())


def test_make_folder_sequence_and_conflicts(api):
    root = api.folder()
    reply = api.create(f"{root}/proj/sub", "mnist", "Run")
    assert reply.status_code == 404 and "node not found" in reply.text
    assert client_missing_path(reply.text) == f"{root}/proj/sub"
    info = api.request("GET", "/apis/v1/nodes/info", params={"node": f"{root}/proj"})
    assert info.status_code == 404 and "node not found" in info.text
    api.node(root, "proj")
    api.node(f"{root}/proj", "sub")
    extra = json.dumps({"alternativeName": "mnist_261126_110257_uwbi29"})
    run_id = api.node(f"{root}/proj/sub", "mnist", "Run", labels=["l1"], description="desc", extra=extra)
    again = api.create(f"{root}/proj/sub", "mnist", "Run", extra=extra)
    assert again.status_code == 400 and "Invalid conflicting node Name" in again.text
    # the alternative name is a valid node name too (conflict strategy `new`)
    api.node(f"{root}/proj/sub", "mnist_261126_110257_45wr7m", "Run")
    by_path = api.request("GET", "/apis/v1/nodes/info", params={"node": f"{root}/proj/sub/mnist"}).json()
    by_id = api.request("GET", "/apis/v1/nodes/info", params={"node": run_id}).json()
    assert by_path == by_id
    assert by_path["id"] == run_id and by_path["type"] == "Run"
    assert by_path["extra"] == extra  # verbatim string
    assert json.loads(by_path["extra"])["alternativeName"] == "mnist_261126_110257_uwbi29"
    assert by_path["labels"] == ["l1"] and by_path["description"] == "desc"
    children = api.request("GET", "/apis/v1/nodes", params={"parent": f"{root}/proj/sub"}).json()
    assert sorted(c["name"] for c in children["data"]) == ["mnist", "mnist_261126_110257_45wr7m"]
    assert children["pagination"]["total"] == 2


def test_unknown_url_is_empty_404(api):
    reply = api.request("GET", "/apis/v1/nothing-here")
    assert reply.status_code == 404 and reply.text == ""
    assert api.request("GET", "/some/prefix/apis/v1/nodes").text == ""


def test_objects_upload_overwrite_download_and_ls(api):
    root = api.folder()
    api.node(root, "mnist", "Run")
    node = f"{root}/mnist"
    files = {"index.yaml": b"hyperparameters: hyperparameters.yaml\n", "stdout.log": b"",
             "metrics/train.yaml": b"- value:\n    loss: 1.0\n", "a b/c.yaml": b"spaces\n",
             "数据/ä \"q\".txt": "unicode".encode()}
    for rel, data in files.items():
        reply = api.put(f"{node}/{rel}", data, filename=os.path.basename(rel))
        assert reply.status_code == 200, reply.text
    reply = api.put(f"{node}/index.yaml", b"overwritten\n")
    assert reply.status_code == 200
    files["index.yaml"] = b"overwritten\n"
    items = api.ls(node)
    assert sorted(i["path"] for i in items) == sorted("/" + k for k in files)
    assert {i["path"]: i["size_bytes"] for i in items}["/stdout.log"] == 0
    assert all(i["path_type"] == "object" for i in items)
    for item in items:
        got = api.get(f"{node}/{item['path'].lstrip('/')}")
        assert got.status_code == 200
        assert got.content == files[item["path"].lstrip("/")]
    missing = api.get(f"{node}/nope.txt")
    assert missing.status_code == 404


def test_ls_pagination_is_truthful(api, em_server):
    root = api.folder()
    api.node(root, "art", "Artifact")
    for i in range(7):
        assert api.put(f"{root}/art/d/{i}.bin", bytes([i]) * i).status_code == 200
    assert len(api.ls(f"{root}/art", size=2)) == 7
    page = api.request("GET", "/apis/v1/objects/ls", params={"path": f"{root}/art", "size": 2, "page": 4}).json()
    assert page["pagination"] == {"page": 4, "size": 2, "total": 7} and len(page["data"]) == 1
    capped = api.request("GET", "/apis/v1/objects/ls", params={"path": f"{root}/art", "size": 5000, "page": 1}).json()
    assert capped["pagination"]["size"] == 1000 and capped["pagination"]["total"] == 7
    sub = api.ls(f"{root}/art/d")
    assert sorted(i["path"] for i in sub) == [f"/{i}.bin" for i in range(7)]


def test_delete_trashes_the_subtree_and_gc_frees_its_blobs(api, em_server):
    root = api.folder()
    api.node(root, "proj")
    api.node(f"{root}/proj", "mnist", "Run")
    assert api.put(f"{root}/proj/mnist/w.bin", b"w" * 1000).status_code == 200
    blob_dir = em_server.process.data_dir / "blobs" / "objects"
    before = sum(1 for p in blob_dir.rglob("*") if p.is_file())
    reply = api.request("DELETE", "/apis/v1/nodes", json={"node": f"{root}/proj"})
    assert reply.status_code == 200, reply.text
    assert api.request("GET", "/apis/v1/nodes/info", params={"node": f"{root}/proj/mnist"}).status_code == 404
    assert api.get(f"{root}/proj/mnist/w.bin").status_code == 404
    trashed = {i["path"]: i["id"] for i in api.request("GET", "/apis/v1/trash").json()["items"]}
    assert f"{root}/proj" in trashed
    from t9k_em_server.config import ServerConfig
    from t9k_em_server.gc import collect_garbage
    from t9k_em_server.stores import Stores
    stores = Stores.open(ServerConfig(data_dir=em_server.process.data_dir))
    try:  # frees only what was trashed before the cutoff: this test's folder and what came earlier
        report = collect_garbage(stores, timedelta(days=1), trash_for=timedelta(0))
    finally:
        stores.close()
    assert report.trashed >= 1
    assert sum(1 for p in blob_dir.rglob("*") if p.is_file()) <= before - 1
    assert api.request("POST", "/apis/v1/trash/restore", json={"id": trashed[f"{root}/proj"]}).status_code == 404
    # the name is free again (conflict strategy `replace`)
    api.node(root, "proj")
    root_delete = api.request("DELETE", "/apis/v1/nodes", json={"node": f"/{api.user}"})
    assert root_delete.status_code == 400


def test_rename_conflict(api):
    root = api.folder()
    a = api.node(root, "a")
    api.node(root, "b")
    api.node(f"{root}/a", "inner", "Run")
    conflict = api.request("PUT", "/apis/v1/nodes", json={"node": f"{root}/a", "name": "b"})
    assert conflict.status_code == 400 and "conflicting node Name" in conflict.text
    moved = api.request("PUT", "/apis/v1/nodes", json={"node": a, "name": "c", "labels": ["x"]})
    assert moved.status_code == 200 and moved.json()["path"] == f"{root}/c"
    inner = api.request("GET", "/apis/v1/nodes/info", params={"node": f"{root}/c/inner"})
    assert inner.status_code == 200


def test_graphs_accept_unknown_ids(api):
    root = api.folder()
    ds = api.node(root, "ds", "Artifact")
    run = api.node(root, "mnist", "Run")
    model = api.node(root, "model", "Artifact")
    empty = api.request("GET", "/apis/v1/graphs", params={"current": run}).json()
    assert empty == {"in": [], "out": []}
    edges = [{"from": ds, "to": run}, {"from": run, "to": model},
             {"from": "asset-123:main", "to": run}]
    assert api.request("POST", "/apis/v1/graphs", json={"graphs": edges}).status_code == 200
    assert api.request("POST", "/apis/v1/graphs", json={"graphs": edges}).status_code == 200  # idempotent
    graph = api.request("GET", "/apis/v1/graphs", params={"current": run}).json()
    assert sorted(i["id"] for i in graph["in"]) == sorted([ds, "asset-123:main"])
    assert [i["id"] for i in graph["out"]] == [model]


def test_multipart_upload(api):
    root = api.folder()
    api.node(root, "big", "Artifact")
    path = f"{root}/big/w.bin"
    parts = [os.urandom(1 << 20), os.urandom(1 << 20), os.urandom(12345)]
    upload_id, etags = api.start_multipart(path, parts)
    assert etags == [hashlib.md5(chunk).hexdigest() for chunk in parts]
    assert api.get(path).status_code == 404  # nothing visible before completion
    bad = api.request("POST", f"/apis/v1/objects/multipart/{upload_id}", params={"path": path},
                      json={"parts": [{"etag": "0" * 32, "partNumber": 1}]})
    assert bad.status_code == 400 and api.get(path).status_code == 404
    done = api.request("POST", f"/apis/v1/objects/multipart/{upload_id}", params={"path": path},
                       json={"parts": [{"etag": e, "partNumber": n} for n, e in enumerate(etags, 1)]})
    assert done.status_code == 200, done.text
    got = api.get(path)
    assert got.status_code == 200 and got.content == b"".join(parts)
    assert [i["path"] for i in api.ls(f"{root}/big")] == ["/w.bin"]


def test_openapi_schema_is_published(em_server):
    import requests

    schema = requests.get(em_server.base_url + "/openapi.json", timeout=10).json()
    for path in ("/apis/v1/nodes", "/apis/v1/nodes/info", "/apis/v1/objects", "/apis/v1/objects/ls",
                 "/apis/v1/objects/multipart", "/apis/v1/objects/multipart/{upload_id}",
                 "/apis/v1/graphs", "/oauth2/userinfo", "/api/ui/v1/runs/{node_id}/series"):
        assert path in schema["paths"], path
    assert "requestBody" in schema["paths"]["/apis/v1/nodes"]["post"]
