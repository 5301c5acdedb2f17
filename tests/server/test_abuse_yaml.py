"""YAML bombs in every file the server parses, over each upload route (single, batch, multipart):
a 400 naming the file and the limit, nothing stored, no expansion (peak RSS bounded), other
clients served meanwhile, data already there byte-equal afterwards; and a metric file holding a
bomb is never expanded."""
from __future__ import annotations

import pytest
from support.abuse import RSS_BOUND_MB, peak_rss_mb, served_meanwhile, snapshot
from support.server_api import Api, post_batch, tar_of

pytestmark = pytest.mark.timeout(240)

BOMB = ("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        + "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 8))).encode()
SELF = b"a: &a [*a, *a]\n"
DEEP = b"a: " + b"[" * 80 + b"]" * 80 + b"\n"

#: (node type, key) of every document the server parses
DOCUMENTS = [("Run", "metadata.yaml"), ("Run", "hyperparameters.yaml"), ("Run", "platform.yaml"),
             ("Run", "git.yaml"), ("Artifact", "metadata.yaml"), ("Artifact", "references.yaml")]


@pytest.fixture(scope="module")
def nodes(em_server, em_add_user) -> tuple[Api, dict[str, str]]:
    """A user with one Run and one Artifact holding good copies of every document."""
    name, key = em_add_user()
    api = Api(em_server.base_url, key, name)
    folder = api.folder()
    paths = {}
    for kind in ("Run", "Artifact"):
        api.node(folder, kind.lower(), kind)
        paths[kind] = f"{folder}/{kind.lower()}"
    for kind, doc in DOCUMENTS:
        good = b"kind: " + kind.encode() + b"\nname: good\n" if doc == "metadata.yaml" else b"a: 1\n"
        assert api.put(f"{paths[kind]}/{doc}", good).status_code == 200
    return api, paths


def send(api: Api, route: str, path: str, data: bytes):
    node, key = path.rsplit("/", 1)
    if route == "single":
        return api.put(path, data)
    if route == "batch":
        return post_batch(api, node, tar_of({key: data}))
    upload, etags = api.start_multipart(path, [data])
    return api.request("POST", f"/apis/v1/objects/multipart/{upload}", params={"path": path},
                       json={"parts": [{"etag": etags[0], "partNumber": 1}]})


@pytest.mark.parametrize("route", ["single", "batch", "multipart"])
@pytest.mark.parametrize("bomb, problem", [(BOMB, "expands to more than 500000 nodes"),
                                           (SELF, "refers to itself"),
                                           (DEEP, "nested deeper than 64")],
                         ids=["laughs", "recursive", "deep"])
@pytest.mark.parametrize("kind, doc", DOCUMENTS, ids=[f"{k}-{d}" for k, d in DOCUMENTS])
def test_bomb_is_refused(em_server, nodes, route, bomb, problem, kind, doc):
    api, paths = nodes
    node = paths[kind]
    before = snapshot(api, node)
    reply = served_meanwhile(em_server.url, lambda: send(api, route, f"{node}/{doc}", bomb))
    assert reply.status_code == 400, reply.text
    assert doc in reply.text and problem in reply.text
    assert snapshot(api, node) == before
    assert peak_rss_mb(em_server.process.pid) < RSS_BOUND_MB


def test_views_never_expand_a_metric_bomb(em_server, nodes):
    """A metric file is not checked at upload (the SDK appends to it and re-sends it); an entry
    the fast parser does not recognise goes through the bounded loader: a bomb there is skipped,
    never expanded, by the indexing and by the run and folder views."""
    api, paths = nodes
    run = paths["Run"]
    entry = (b"- value: {loss: 1.0}\n  sequence: {epoch: null, step: 1, timestamp: x}\n"
             b"- " + BOMB.replace(b"\nl", b"\n  l"))
    assert api.put(f"{run}/metrics/train.yaml", entry).status_code == 200
    run_id = api.request("GET", "/apis/v1/nodes/info", params={"node": run}).json()["id"]
    reply = served_meanwhile(em_server.url, lambda: api.request("GET", f"/api/ui/v1/runs/{run_id}"))
    assert reply.status_code == 200 and len(reply.content) < 20_000
    folder = run.rsplit("/", 1)[0]
    listing = api.request("GET", "/api/ui/v1/folders", params={"path": folder})
    assert listing.status_code == 200 and len(listing.content) < 20_000
    assert peak_rss_mb(em_server.process.pid) < RSS_BOUND_MB


def test_index_yaml_is_stored_as_a_blob(nodes):
    """``index.yaml`` is not parsed by the server: stored as bytes (the SDK's reader is bounded)."""
    api, paths = nodes
    path = f"{paths['Run']}/index.yaml"
    assert api.put(path, BOMB).status_code == 200
    assert api.get(path).content == BOMB
