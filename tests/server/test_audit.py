"""The audit trail: who shared, edited, renamed, moved, deleted or restored what below a Folder,
shown to its owner and filterable by user and action; on SQLite and PostgreSQL (``team``)."""
from __future__ import annotations

import uuid

from support.team_world import World


def test_owner_reads_who_did_what_filtered_by_user_and_action(team: World) -> None:
    alice, bob, root = team.api("owner"), team.api("editor"), team.api("admin")
    folder = f"{team.shared.folder}/a{uuid.uuid4().hex[:8]}"
    alice.node(team.shared.folder, folder.rsplit("/", 1)[1])
    run_id = bob.node(folder, "r1", "Run")
    sub = f"{folder}/sub"
    bob.node(folder, "sub")

    def ok(reply):
        assert reply.status_code == 200, reply.text
        return reply.json()

    ok(alice.request("POST", "/apis/v1/shares", json={"folder": folder, "user": "sam", "role": "viewer"}))
    ok(bob.request("PUT", "/apis/v1/nodes", json={"node": run_id, "description": "better"}))
    ok(bob.request("PUT", "/apis/v1/nodes", json={"node": run_id, "name": "r2"}))
    ok(bob.request("POST", "/apis/v1/nodes/move", json={"node": run_id, "to": sub}))
    ok(bob.request("DELETE", "/apis/v1/nodes", json={"node": run_id}))
    ok(bob.request("POST", "/apis/v1/trash/restore", json={"id": run_id}))
    ok(alice.request("DELETE", "/apis/v1/shares", json={"folder": folder, "user": "sam"}))

    events = ok(alice.request("GET", "/apis/v1/audit", params={"folder": folder}))["events"]
    assert [(e["user"], e["action"]) for e in events] == [
        ("alice", "unshare"), ("bob", "restore"), ("bob", "delete"), ("bob", "move"), ("bob", "rename"),
        ("bob", "edit"), ("alice", "share")]
    by_action = {e["action"]: e for e in events}
    assert (by_action["move"]["path"], by_action["move"]["to"]) == (f"{folder}/r2", f"{sub}/r2")
    assert (by_action["rename"]["path"], by_action["rename"]["to"]) == (f"{folder}/r1", f"{folder}/r2")
    assert by_action["edit"]["detail"] == {"description": "better"}
    assert by_action["share"]["detail"] == {"user": "sam", "role": "viewer"}
    assert {e["node"] for e in events if e["user"] == "bob"} == {run_id}
    only_bob_moves = ok(alice.request("GET", "/api/ui/v1/audit", params={
        "folder": folder, "user": "bob", "action": "move"}))["events"]
    assert [e["action"] for e in only_bob_moves] == ["move"]
    assert ok(alice.request("GET", "/apis/v1/audit", params={"folder": folder, "user": "vic"}))["events"] == []
    page = ok(alice.request("GET", "/apis/v1/audit", params={"folder": folder, "limit": 2}))["events"]
    rest = ok(alice.request("GET", "/apis/v1/audit", params={"folder": folder, "before": page[-1]["id"]}))["events"]
    assert [e["id"] for e in page + rest] == [e["id"] for e in events]
    # below the sub-Folder: only what happened there (the move in, the deletion, the restore)
    assert [e["action"] for e in ok(alice.request("GET", "/apis/v1/audit", params={"folder": sub}))["events"]] == [
        "restore", "delete", "move"]

    # the owner's (and admins'); an editor may not, a stranger cannot tell it exists
    assert ok(root.request("GET", "/apis/v1/audit", params={"folder": folder}))["events"] == events
    assert bob.request("GET", "/apis/v1/audit", params={"folder": folder}).status_code == 403
    assert team.api("stranger").request("GET", "/apis/v1/audit", params={"folder": folder}).status_code == 404
    assert alice.request("GET", "/apis/v1/audit", params={"folder": folder, "action": "upload"}).status_code == 400
