"""The permission matrix: every route of the app × {owner, editor, viewer, group member, stranger,
admin} × {alice's shared Folder, her private one} × {by path, by id}, on SQLite and PostgreSQL.

Generated from ONE table (``TABLE``): a route's rule says what it needs (``viewer``, ``editor``,
``owner`` of the node it names; ``user``: any signed-in user, names no node; ``admin``: admins
only, names no node; ``public``; ``shell``: an HTML page that holds no data) and how to call it
for a target node. The first test compares
the table with the app's routes, so a new endpoint fails it until it is given a rule.

Expected answers, from the role's rank on the target (tests/support/team_world.py):
no role: ``404`` (exactly as for a missing node); a role below the need: ``403``; else ``2xx``.
Admin routes: ``2xx`` for the admin, ``403`` for everyone else.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from support.server_api import Api, tar_of
from support.team_world import GROUP, ROLES, Tree, World


@dataclass
class Call:
    method: str
    url: str
    params: dict = field(default_factory=dict)
    json: Any = None   #: a body, or a function of the calling role that makes it
    data: bytes | None = None
    files: Any = None
    headers: dict = field(default_factory=dict)


#: (world, target tree, "path" or "id") -> the call, or None where the route takes no such ref
Builder = Callable[[World, Tree, str], "Call | None"]


@dataclass(frozen=True)
class Rule:
    need: str                      #: viewer, editor, owner, user, admin, public, shell
    build: Builder | None = None   #: for viewer/editor/owner/user


RANK = {"shared": {"owner": 3, "editor": 2, "viewer": 1, "member": 2, "stranger": 0, "admin": 4},
        "private": {"owner": 3, "editor": 0, "viewer": 0, "member": 0, "stranger": 0, "admin": 4}}
NEED = {"viewer": 1, "editor": 2, "owner": 3, "user": 0}
OBSERVERS = "observers"  #: a group with no members: shares to it change nobody's role


def ref(tree: Tree, by: str, which: str = "folder") -> str:
    return getattr(tree, which if by == "path" else f"{which}_id")


def fresh_run(world: World, tree: Tree) -> tuple[str, str]:
    """A new Run with one object ``a.txt`` in the tree's Folder, made by the owner: (path, id)."""
    owner = world.api("owner")
    name = "r" + uuid.uuid4().hex[:10]
    node_id = owner.node(tree.folder, name, "Run")
    assert owner.put(f"{tree.folder}/{name}/a.txt", b"abc").status_code == 200
    return f"{tree.folder}/{name}", node_id


def fresh_multipart(world: World, tree: Tree, with_part: bool) -> tuple[str, str, list[str]]:
    path = f"{tree.run}/mp-{uuid.uuid4().hex[:8]}.bin"
    upload, etags = world.api("owner").start_multipart(path, [b"part"] if with_part else [])
    return path, upload, etags


def by_path_only(build: Callable[[World, Tree], Call]) -> Builder:
    return lambda world, tree, by: build(world, tree) if by == "path" else None


def by_id_only(build: Callable[[World, Tree], Call]) -> Builder:
    return lambda world, tree, by: build(world, tree) if by == "id" else None


def _node_write(method: str, body: Callable[[str], dict]) -> Builder:
    def build(world: World, tree: Tree, by: str) -> Call:
        path, node_id = fresh_run(world, tree)
        return Call(method, "/apis/v1/nodes", json=body(path if by == "path" else node_id))
    return build


def _search(endpoint: str, **extra: str) -> Builder:
    def build(world: World, tree: Tree, by: str) -> Call:
        return Call("GET", endpoint, params={"folder": ref(tree, by), "recursive": "true", **extra})
    return build


def _share_call(method: str) -> Builder:
    def build(world: World, tree: Tree, by: str) -> Call:
        body = {"folder": ref(tree, by), "group": OBSERVERS}
        return Call(method, "/apis/v1/shares", json={**body, "role": "viewer"} if method == "POST" else body)
    return build


def _ui(builder: Builder) -> Builder:
    """The same call under the UI JSON API (``/apis/v1/x`` → ``/api/ui/v1/x``)."""
    def build(world: World, tree: Tree, by: str) -> Call | None:
        call = builder(world, tree, by)
        if call is not None:
            call.url = call.url.replace("/apis/v1/", "/api/ui/v1/", 1)
        return call
    return build


def _multipart_part(world: World, tree: Tree) -> Call:
    path, upload, _ = fresh_multipart(world, tree, with_part=False)
    return Call("PUT", f"/apis/v1/objects/multipart/{upload}", params={"path": path, "partNumber": 1},
                files={"content": ("content", b"part")})


def _multipart_complete(world: World, tree: Tree) -> Call:
    path, upload, etags = fresh_multipart(world, tree, with_part=True)
    return Call("POST", f"/apis/v1/objects/multipart/{upload}", params={"path": path},
                json={"parts": [{"etag": etags[0], "partNumber": 1}]})


def _truncate(world: World, tree: Tree) -> Call:
    path, _ = fresh_run(world, tree)
    return Call("POST", "/apis/v1/objects/truncate", params={"path": f"{path}/a.txt", "size": 1})


def _ui_run(suffix: str, **params: str) -> Builder:
    return by_id_only(lambda world, tree: Call("GET", f"/api/ui/v1/runs/{tree.run_id}{suffix}", params=params))


def _own_key_to_revoke(world: World) -> Callable[[str], dict]:
    """A body revoking a key the calling role makes just before (so every role's call succeeds)."""
    def body(role: str) -> dict:
        made = world.api(role).request("POST", "/apis/v1/keys", json={"name": "to-revoke"})
        return {"id": made.json()["id"]}
    return body


def _admin(method: str, path: str, body: Callable[[World], Any] = lambda w: None, **params: str) -> Rule:
    return Rule("admin", lambda w, t, by: Call(method, f"/apis/v1/admin/{path}", params=params, json=body(w))
                if by == "path" and t is w.shared else None)


def _user_key(world: World) -> dict:
    made = world.api("admin").request("POST", "/apis/v1/admin/keys", json={"user": "sam", "name": "x"})
    return {"user": "sam", "id": made.json()["id"]}


def _lonely_group(world: World) -> dict:
    """A group no share reaches, so membership changes nobody's role in the matrix."""
    name = "lonely"
    world.api("admin").request("POST", "/apis/v1/admin/groups", json={"name": name})
    return {"group": name, "user": "sam"}


def _move(world: World, tree: Tree, by: str) -> Call:
    """Move a fresh Run into a fresh Folder of the same tree (both named by path or by id)."""
    path, node_id = fresh_run(world, tree)
    name = "d" + uuid.uuid4().hex[:8]
    target_id = world.api("owner").node(tree.folder, name)
    return Call("POST", "/apis/v1/nodes/move", json={"node": path, "to": f"{tree.folder}/{name}"} if by == "path"
                else {"node": node_id, "to": target_id})


def _trashed(world: World, tree: Tree) -> Call:
    path, node_id = fresh_run(world, tree)
    assert world.api("owner").request("DELETE", "/apis/v1/nodes", json={"node": node_id}).status_code == 200
    return Call("POST", "/apis/v1/trash/restore", json={"id": node_id})


def _shell(url: str) -> Rule:
    return Rule("shell", by_id_only(lambda world, tree: Call("GET", url.format(tree=tree))))


TABLE: dict[tuple[str, str], Rule] = {
    # the AIStore API
    ("GET", "/oauth2/userinfo"): Rule("user", lambda w, t, by: Call("GET", "/oauth2/userinfo")),
    ("GET", "/apis/v1/nodes"): Rule("viewer", lambda w, t, by: Call("GET", "/apis/v1/nodes", params={"parent": ref(t, by)})),
    ("POST", "/apis/v1/nodes"): Rule("editor", by_path_only(lambda w, t: Call("POST", "/apis/v1/nodes", json={
        "parent": t.folder, "name": "n" + uuid.uuid4().hex[:8], "type": "Folder", "extra": "{}"}))),
    ("GET", "/apis/v1/nodes/info"): Rule("viewer", lambda w, t, by: Call("GET", "/apis/v1/nodes/info", params={"node": ref(t, by, "run")})),
    ("PUT", "/apis/v1/nodes"): Rule("editor", _node_write("PUT", lambda node: {"node": node, "name": "m" + uuid.uuid4().hex[:8]})),
    ("DELETE", "/apis/v1/nodes"): Rule("editor", _node_write("DELETE", lambda node: {"node": node})),
    ("POST", "/apis/v1/objects"): Rule("editor", by_path_only(lambda w, t: Call(
        "POST", "/apis/v1/objects", params={"path": f"{t.run}/up-{uuid.uuid4().hex[:6]}.txt"}, files={"content": ("f", b"x")}))),
    ("GET", "/apis/v1/objects"): Rule("viewer", by_path_only(lambda w, t: Call("GET", "/apis/v1/objects", params={"path": f"{t.run}/stdout.log"}))),
    ("DELETE", "/apis/v1/objects"): Rule("editor", by_path_only(lambda w, t: Call(
        "DELETE", "/apis/v1/objects", params={"path": f"{fresh_run(w, t)[0]}/a.txt"}))),
    ("GET", "/apis/v1/objects/ls"): Rule("viewer", by_path_only(lambda w, t: Call("GET", "/apis/v1/objects/ls", params={"path": t.run}))),
    ("POST", "/apis/v1/objects/multipart"): Rule("editor", by_path_only(lambda w, t: Call(
        "POST", "/apis/v1/objects/multipart", params={"path": f"{t.run}/big-{uuid.uuid4().hex[:6]}.bin"}))),
    ("PUT", "/apis/v1/objects/multipart/{upload_id}"): Rule("editor", by_path_only(_multipart_part)),
    ("POST", "/apis/v1/objects/multipart/{upload_id}"): Rule("editor", by_path_only(_multipart_complete)),
    ("GET", "/apis/v1/graphs"): Rule("viewer", by_id_only(lambda w, t: Call("GET", "/apis/v1/graphs", params={"current": t.run_id}))),
    # an edge names opaque ids, so anyone may draw one (it shows as access.visible_edges says:
    # test_sharing.py); drawn here between ids of no node, so the graph rows above stay as seeded
    ("POST", "/apis/v1/graphs"): Rule("user", by_id_only(lambda w, t: Call("POST", "/apis/v1/graphs", json={
        "graphs": [{"from": "x-" + uuid.uuid4().hex[:6], "to": "y-" + uuid.uuid4().hex[:6]}]}))),
    # our extensions
    ("POST", "/apis/v1/objects/batch"): Rule("editor", by_path_only(lambda w, t: Call(
        "POST", "/apis/v1/objects/batch", params={"path": t.run}, data=tar_of({f"b-{uuid.uuid4().hex[:6]}": b"b"}),
        headers={"Content-Type": "application/x-tar"}))),
    ("POST", "/apis/v1/objects/append"): Rule("editor", by_path_only(lambda w, t: Call(
        "POST", "/apis/v1/objects/append", params={"path": f"{t.run}/ap-{uuid.uuid4().hex[:6]}.log", "offset": 0},
        data=b"line\n"))),
    ("POST", "/apis/v1/objects/truncate"): Rule("editor", by_path_only(_truncate)),
    ("GET", "/apis/v1/capabilities"): Rule("public"),
    # search and sharing: the rows of both prefixes are added below the table
    ("GET", "/apis/v1/shared"): Rule("user", lambda w, t, by: Call("GET", "/apis/v1/shared")),
    ("GET", "/api/ui/v1/shared"): Rule("user", lambda w, t, by: Call("GET", "/api/ui/v1/shared")),
    # the UI JSON API
    ("GET", "/api/ui/v1/folders"): Rule("viewer", lambda w, t, by: Call(
        "GET", "/api/ui/v1/folders", params={"path" if by == "path" else "node": ref(t, by)})),
    ("GET", "/api/ui/v1/runs/{node_id}"): Rule("viewer", _ui_run("")),
    ("GET", "/api/ui/v1/runs/{node_id}/series"): Rule("viewer", _ui_run("/series", type="train", metric="loss")),
    ("GET", "/api/ui/v1/runs/{node_id}/log"): Rule("viewer", _ui_run("/log")),
    ("GET", "/api/ui/v1/artifacts/{node_id}"): Rule("viewer", by_id_only(lambda w, t: Call("GET", f"/api/ui/v1/artifacts/{t.artifact_id}"))),
    ("GET", "/api/ui/v1/lineage/{node_id}"): Rule("viewer", by_id_only(lambda w, t: Call("GET", f"/api/ui/v1/lineage/{t.run_id}"))),
    ("GET", "/api/ui/v1/objects"): Rule("viewer", by_path_only(lambda w, t: Call(
        "GET", "/api/ui/v1/objects", params={"path": f"{t.artifact}/data/w.bin"}))),
    # pages (HTML shells without data; the page's script reads the JSON API above) and public routes
    ("GET", "/ui/nodes/{node_id}"): Rule("viewer", by_id_only(lambda w, t: Call("GET", f"/ui/nodes/{t.run_id}"))),
    ("GET", "/ui/folders/{path:path}"): _shell("/ui/folders{tree.folder}"),
    ("GET", "/ui/runs/{node_id}"): _shell("/ui/runs/{tree.run_id}"),
    ("GET", "/ui/artifacts/{node_id}"): _shell("/ui/artifacts/{tree.artifact_id}"),
    ("GET", "/ui/lineage/{node_id}"): _shell("/ui/lineage/{tree.run_id}"),
    ("GET", "/ui/compare"): _shell("/ui/compare"),
    ("GET", "/ui/keys"): _shell("/ui/keys"),
    ("GET", "/ui/trash"): _shell("/ui/trash"),
    ("PUT", "/api/ui/v1/nodes"): Rule("editor", _ui(_node_write("PUT", lambda node: {
        "node": node, "description": "edited", "labels": ["x"]}))),
    ("DELETE", "/api/ui/v1/nodes"): Rule("editor", _ui(_node_write("DELETE", lambda node: {"node": node}))),
    # own keys (any user) and what admins manage
    ("GET", "/apis/v1/admin/users"): _admin("GET", "users"),
    ("POST", "/apis/v1/admin/users"): _admin("POST", "users", lambda w: {"name": "u" + uuid.uuid4().hex[:8]}),
    ("PUT", "/apis/v1/admin/users"): _admin("PUT", "users", lambda w: {"name": "sam", "admin": False}),
    ("GET", "/apis/v1/admin/keys"): _admin("GET", "keys", user="sam"),
    ("POST", "/apis/v1/admin/keys"): _admin("POST", "keys", lambda w: {"user": "sam", "name": "by-admin"}),
    ("DELETE", "/apis/v1/admin/keys"): _admin("DELETE", "keys", _user_key),
    ("GET", "/apis/v1/admin/groups"): _admin("GET", "groups"),
    ("POST", "/apis/v1/admin/groups"): _admin("POST", "groups", lambda w: {"name": "g" + uuid.uuid4().hex[:8]}),
    ("POST", "/apis/v1/admin/groups/members"): _admin("POST", "groups/members", _lonely_group),
    ("DELETE", "/apis/v1/admin/groups/members"): _admin("DELETE", "groups/members", _lonely_group),
    **{key: Rule("public") for key in (
        ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"), ("GET", "/redoc"),
        ("GET", "/healthz"), ("GET", "/"), ("GET", "/ui"), ("GET", "/ui/"), ("GET", "/ui/signin"),
        ("POST", "/ui/signin"), ("POST", "/ui/signout"), ("GET", "/em/web/"), ("*", "/ui/static"))},
}

# search and sharing answer the same under /apis/v1 (API key) and /api/ui/v1 (the UI's cookie)
for _prefix in ("/apis/v1", "/api/ui/v1"):
    for _name, _build in (("runs", _search(f"{_prefix}/search/runs")),
                          ("groups", _search(f"{_prefix}/search/groups", by="status")),
                          ("fields", _search(f"{_prefix}/search/fields")),
                          ("series", lambda w, t, by, p=_prefix: Call(
                              "GET", f"{p}/search/series", params={"run": ref(t, by, "run"), "type": "train",
                                                                   "metric": "loss"}))):
        TABLE[("GET", f"{_prefix}/search/{_name}")] = Rule("viewer", _build)
    _at = (lambda b: b) if _prefix == "/apis/v1" else _ui
    TABLE[("POST", f"{_prefix}/nodes/move")] = Rule("editor", _at(_move))
    TABLE[("GET", f"{_prefix}/audit")] = Rule("owner", _at(lambda w, t, by: Call(
        "GET", "/apis/v1/audit", params={"folder": ref(t, by), "action": "move"})))
    TABLE[("GET", f"{_prefix}/trash")] = Rule("user", lambda w, t, by, p=_prefix: Call("GET", f"{p}/trash"))
    TABLE[("POST", f"{_prefix}/trash/restore")] = Rule("editor", _at(by_id_only(_trashed)))
    TABLE[("GET", f"{_prefix}/keys")] = Rule("user", lambda w, t, by, p=_prefix: Call("GET", f"{p}/keys"))
    TABLE[("POST", f"{_prefix}/keys")] = Rule("user", lambda w, t, by, p=_prefix: Call(
        "POST", f"{p}/keys", json={"name": "matrix"}))
    TABLE[("DELETE", f"{_prefix}/keys")] = Rule("user", lambda w, t, by, p=_prefix: Call(
        "DELETE", f"{p}/keys", json=_own_key_to_revoke(w)))
    for _method in ("GET", "POST", "DELETE"):
        _build = _share_call(_method) if _method != "GET" else (
            lambda w, t, by: Call("GET", "/apis/v1/shares", params={"folder": ref(t, by)}))
        TABLE[(_method, f"{_prefix}/shares")] = Rule("owner", _build if _prefix == "/apis/v1" else _ui(_build))


def app_routes(data_dir: Path) -> set[tuple[str, str]]:
    """(method, path) of every route of a freshly made app (mounts: method ``*``)."""
    from t9k_em_server.app import create_app
    from t9k_em_server.config import ServerConfig

    app = create_app(ServerConfig(data_dir=data_dir))
    out = set()
    for route in app.routes:
        for context in (route.effective_route_contexts() if hasattr(route, "effective_route_contexts")
                        else [route]):
            methods = set(getattr(context, "methods", None) or {"*"}) - {"HEAD"}
            path = context.path or getattr(getattr(context, "original_route", None), "path", "")
            out.update((method, path) for method in methods)
    return out


def test_every_route_has_a_rule(tmp_path: Path) -> None:
    routes = app_routes(tmp_path)
    assert sorted(routes - TABLE.keys()) == [], "routes without a rule in TABLE: add one"
    assert sorted(TABLE.keys() - routes) == [], "rules of routes the app no longer has"


def _send(api: Api, role: str, call: Call, cookie: requests.Session | None = None) -> requests.Response:
    if cookie is not None:
        return cookie.request(call.method, api.base + call.url, params=call.params, allow_redirects=False,
                              timeout=60)
    body = call.json(role) if callable(call.json) else call.json
    return api.request(call.method, call.url, params=call.params, json=body, data=call.data,
                       files=call.files, headers=call.headers)


def _signed_in(api: Api) -> requests.Session:
    http = requests.Session()
    form = http.get(f"{api.base}/ui/signin", timeout=30)
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    reply = http.post(f"{api.base}/ui/signin", data={"apikey": api.key, "csrf": token, "next": ""},
                      headers={"Origin": api.base}, allow_redirects=False, timeout=30)
    assert reply.status_code == 303, reply.text
    return http


@pytest.fixture(scope="module")
def world(team: World) -> World:
    """The team, plus the group that shares go to in the matrix (no members: no role changes)."""
    team.server.add_group(OBSERVERS, [])
    return team


@pytest.fixture(scope="module")
def sessions(world: World) -> dict[str, requests.Session]:
    return {role: _signed_in(world.api(role)) for role in ROLES}


@pytest.mark.parametrize("key", sorted(k for k, r in TABLE.items() if r.need not in ("public",)),
                         ids=lambda k: f"{k[0]} {k[1]}")
def test_matrix(world: World, sessions: dict[str, requests.Session], key: tuple[str, str]) -> None:
    rule = TABLE[key]
    assert rule.build is not None, f"{key}: a rule needing {rule.need!r} must say how to call it"
    page = key[1].startswith("/ui/")
    wrong = []
    calls = 0
    for tree_name, tree in (("shared", world.shared), ("private", world.private)):
        for by in ("path", "id"):
            for role in ROLES:
                call = rule.build(world, tree, by)
                if call is None:
                    continue
                calls += 1
                reply = _send(world.api(role), role, call, sessions[role] if page else None)
                rank = RANK[tree_name][role]
                if rule.need in ("shell", "user"):
                    expected = {200}
                elif rule.need == "admin":
                    expected = {200} if role == "admin" else {403}
                elif rank == 0:
                    expected = {404}
                elif rank < NEED[rule.need]:
                    expected = {403}
                else:
                    expected = {303} if page else {200}
                if reply.status_code not in expected:
                    wrong.append(f"{role} on {tree_name} by {by}: {reply.status_code} {reply.text[:120]!r}, "
                                 f"expected {sorted(expected)}")
                elif reply.status_code == 404 and not page:
                    # exactly what a missing node gets: the text names only what was asked for
                    assert "node not found" in reply.text or reply.text.endswith("not found") or \
                        "upload not found" in reply.text, reply.text
    assert calls, f"{key}: the rule's builder made no call"
    assert wrong == [], "\n".join(wrong)
