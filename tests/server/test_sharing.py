"""Sharing Folders with users and groups (the model in t9k_em_server/access.py), over HTTP on
a real server, on SQLite and on PostgreSQL (the ``team`` fixture). Every endpoint against every
role is test_permission_matrix.py; these follow what a team does."""
from __future__ import annotations

import uuid

from support.team_world import World


def _share(world: World, folder: str, role: str, by: str = "owner", **grantee: str):
    return world.api(by).request("POST", "/apis/v1/shares",
                                 json={"folder": folder, "role": role, **grantee})


def test_viewer_reads_but_cannot_write(team: World) -> None:
    vic, shared = team.api("viewer"), team.shared
    assert vic.request("GET", "/apis/v1/nodes/info", params={"node": shared.run}).json()["id"] == shared.run_id
    names = [n["name"] for n in vic.request("GET", "/apis/v1/nodes", params={"parent": shared.folder}).json()["data"]]
    assert names == ["ds", "mnist", "sub"]
    assert vic.get(f"{shared.artifact}/data/w.bin").content == b"weights"
    assert "/metrics/train.yaml" in [o["path"] for o in vic.ls(shared.run)]
    runs = vic.request("GET", "/apis/v1/search/runs", params={"folder": shared.folder_id,
                                                              "recursive": "true"}).json()["runs"]
    assert [r["path"] for r in runs] == [shared.run]
    series = vic.request("GET", f"/api/ui/v1/runs/{shared.run_id}/series",
                         params={"type": "train", "metric": "loss"})
    assert series.status_code == 200 and series.json()["total"] == 30
    # every write is refused with the client's "permission denied", and nothing changes
    writes = [vic.create(shared.folder, "vics-run", "Run"),
              vic.put(f"{shared.run}/extra.txt", b"x"),
              vic.request("DELETE", "/apis/v1/objects", params={"path": f"{shared.run}/stdout.log"}),
              vic.request("PUT", "/apis/v1/nodes", json={"node": shared.run, "description": "mine"}),
              vic.request("DELETE", "/apis/v1/nodes", json={"node": shared.run_id}),
              vic.request("POST", "/apis/v1/objects/multipart", params={"path": f"{shared.run}/m.bin"}),
              _share(team, shared.folder, "editor", by="viewer", user="sam")]
    for reply in writes:
        assert (reply.status_code, reply.text) == (403, "permission denied"), reply.request.url
    assert [o["path"] for o in team.api("owner").ls(shared.run)].count("/extra.txt") == 0


def test_editor_writes_below_the_shared_folder_but_not_the_folder_itself(team: World) -> None:
    bob, alice, shared = team.api("editor"), team.api("owner"), team.shared
    folder = f"{shared.folder}/b{uuid.uuid4().hex[:8]}"
    assert bob.create(shared.folder, folder.rsplit("/", 1)[1]).status_code == 200
    run_id = bob.node(folder, "bobs-run", "Run")
    assert bob.put(f"{folder}/bobs-run/w.txt", b"bob's").status_code == 200
    # what bob made is in alice's tree: she sees and owns it
    info = alice.request("GET", "/apis/v1/nodes/info", params={"node": run_id}).json()
    assert info["path"] == f"{folder}/bobs-run"
    assert alice.get(f"{folder}/bobs-run/w.txt").content == b"bob's"
    renamed = bob.request("PUT", "/apis/v1/nodes", json={"node": run_id, "name": "renamed"})
    assert renamed.status_code == 200 and renamed.json()["path"] == f"{folder}/renamed"
    assert bob.request("DELETE", "/apis/v1/nodes", json={"node": folder}).json()["deleted"] is True
    # the shared Folder itself stays put: renaming or deleting it changes alice's root
    for reply in (bob.request("PUT", "/apis/v1/nodes", json={"node": shared.folder, "name": "mine"}),
                  bob.request("DELETE", "/apis/v1/nodes", json={"node": shared.folder})):
        assert (reply.status_code, reply.text) == (403, "permission denied")
    # sharing is the owner's
    assert _share(team, shared.folder, "viewer", by="editor", user="sam").status_code == 403


def test_group_member_edits_through_the_group(team: World) -> None:
    gina, shared = team.api("member"), team.shared
    name = "g" + uuid.uuid4().hex[:8]
    assert gina.create(shared.folder, name, "Run").status_code == 200
    assert gina.put(f"{shared.folder}/{name}/a.txt", b"a").status_code == 200
    assert gina.request("GET", "/apis/v1/nodes/info", params={"node": team.private.folder}).status_code == 404


def test_what_is_not_shared_reads_as_missing(team: World) -> None:
    sam, bob, private = team.api("stranger"), team.api("editor"), team.private
    ghost = "/alice/no-such-folder"
    for api in (sam, bob):
        for ref, unknown in ((private.folder, ghost), (private.run, f"{ghost}/mnist"),
                             (private.run_id, str(uuid.uuid4()))):
            seen = api.request("GET", "/apis/v1/nodes/info", params={"node": ref})
            missing = api.request("GET", "/apis/v1/nodes/info", params={"node": unknown})
            assert (seen.status_code, seen.text.replace(ref, unknown)) == (missing.status_code, missing.text)
            assert seen.status_code == 404
        for path in (f"{private.run}/stdout.log", f"{private.artifact}/data/w.bin"):
            reply = api.get(path)
            assert (reply.status_code, reply.text) == (404, f"node not found [{path.rsplit('/', 1)[0]}]")
        graph = api.request("GET", "/apis/v1/graphs", params={"current": private.run_id})
        assert (graph.status_code, graph.text) == (404, f"node not found [{private.run_id}]")
        lineage = api.request("GET", f"/api/ui/v1/lineage/{private.artifact_id}")
        assert lineage.status_code == 404
    # the shared tree's neighbours are named; the stranger sees the shared tree not at all
    graph = bob.request("GET", "/apis/v1/graphs", params={"current": team.shared.run_id}).json()
    assert graph["in"] == [{"id": team.shared.artifact_id, "name": "ds",
                            "path": team.shared.artifact, "type": "Artifact"}]
    assert graph["out"] == [{"id": "asset-9"}]
    assert sam.request("GET", "/apis/v1/graphs", params={"current": team.shared.run_id}).status_code == 404


def test_edges_drawn_by_editors_show_to_the_team_and_strangers_draw_only_for_themselves(team: World) -> None:
    alice, bob, sam, vic = (team.api(r) for r in ("owner", "editor", "stranger", "viewer"))
    run = team.shared.run_id
    for api, other in ((bob, "from-bob"), (sam, "from-sam")):
        assert api.request("POST", "/apis/v1/graphs", json={"graphs": [{"from": run, "to": other}]}).status_code == 200
    outs = {n["id"] for n in alice.request("GET", "/apis/v1/graphs", params={"current": run}).json()["out"]}
    assert "from-bob" in outs and "from-sam" not in outs
    assert "from-bob" in {n["id"] for n in vic.request("GET", "/apis/v1/graphs", params={"current": run}).json()["out"]}
    assert sam.request("GET", "/apis/v1/graphs", params={"current": "from-sam"}).json()["in"] == [{"id": run}]


def test_shared_with_me_and_revoking(team: World) -> None:
    alice, vic, sam = team.api("owner"), team.api("viewer"), team.api("stranger")
    folder = alice.folder()
    assert _share(team, folder, "viewer", user="sam").json()["role"] == "viewer"
    for prefix in ("/apis/v1", "/api/ui/v1"):
        listed = sam.request("GET", f"{prefix}/shared").json()["folders"]
        assert [(f["path"], f["role"], f["owner"]) for f in listed] == [(folder, "viewer", "alice")]
    assert {f["path"] for f in vic.request("GET", "/apis/v1/shared").json()["folders"]} == {team.shared.folder}
    assert sam.request("GET", "/api/ui/v1/folders", params={"path": folder}).json()["role"] == "viewer"
    # a second share of the same grantee changes the role
    assert _share(team, folder, "editor", user="sam").status_code == 200
    shares = alice.request("GET", "/apis/v1/shares", params={"folder": folder}).json()["shares"]
    assert [(s["kind"], s["name"], s["role"]) for s in shares] == [("user", "sam", "editor")]
    assert sam.create(folder, "sams", "Run").status_code == 200
    revoked = alice.request("DELETE", "/apis/v1/shares", json={"folder": folder, "user": "sam"})
    assert revoked.json()["revoked"] is True
    assert sam.request("GET", "/apis/v1/nodes/info", params={"node": folder}).status_code == 404
    assert sam.request("GET", "/apis/v1/shared").json()["folders"] == []
    assert alice.request("GET", "/apis/v1/shares", params={"folder": folder}).json()["shares"] == []


def test_share_requests_are_checked(team: World) -> None:
    alice, root, shared = team.api("owner"), team.api("admin"), team.shared
    bad = [(_share(team, shared.folder, "owner", user="sam"), "invalid role 'owner'"),
           (_share(team, shared.folder, "viewer", user="nobody"), "no user named 'nobody'"),
           (_share(team, shared.folder, "viewer", group="nogroup"), "no group named 'nogroup'"),
           (_share(team, shared.folder, "viewer"), "exactly one of 'user' and 'group'"),
           (_share(team, shared.run, "viewer", user="sam"), "only Folders are shared")]
    for reply, text in bad:
        assert reply.status_code == 400 and text in reply.text, reply.text
    # the stranger cannot tell the shared Folder from a missing one; the admin may share anything
    assert _share(team, shared.folder, "viewer", by="stranger", user="sam").status_code == 404
    assert root.request("GET", "/apis/v1/shares", params={"folder": shared.folder}).status_code == 200
    folder = alice.folder()
    assert _share(team, folder, "viewer", by="admin", user="vic").status_code == 200
    assert team.api("viewer").request("GET", "/apis/v1/nodes/info", params={"node": folder}).status_code == 200
