"""Editing from the web UI's JSON API and the API: labels and descriptions, moving Runs between
Folders one may write, deleting into the trash, restoring, and ``em server gc`` freeing the
trash's blobs; on SQLite and PostgreSQL (the ``team`` fixture)."""
from __future__ import annotations

import re
import subprocess
import sys
import uuid

import requests

from support.team_world import World, seed_tree
from support.ui_seed import Seeder


def _browser(world: World, role: str) -> tuple[requests.Session, str]:
    """A signed-in session of ``role`` and the CSRF token its pages carry."""
    base, key = world.server.base_url, world.api(role).key
    http = requests.Session()
    token = re.search(r'name="csrf" value="([^"]+)"', http.get(f"{base}/ui/signin", timeout=30).text).group(1)
    assert http.post(f"{base}/ui/signin", data={"apikey": key, "csrf": token, "next": ""},
                     headers={"Origin": base}, allow_redirects=False, timeout=30).status_code == 303
    page = http.get(f"{base}/ui/keys", timeout=30).text
    return http, re.search(r'data-csrf="([0-9a-f]+)"', page).group(1)


def _fresh_tree(world: World) -> str:
    folder = f"{world.shared.folder}/e{uuid.uuid4().hex[:8]}"
    seed_tree(Seeder(world.server.base_url, world.api("owner").key), folder)
    return folder


def test_editor_edits_labels_and_description_from_the_ui(team: World) -> None:
    folder = _fresh_tree(team)
    run_id = team.api("owner").request("GET", "/apis/v1/nodes/info", params={"node": f"{folder}/mnist"}).json()["id"]
    http, csrf = _browser(team, "editor")
    base = team.server.base_url
    body = {"node": run_id, "description": "tuned lr", "labels": ["best", "v2"]}
    assert http.put(f"{base}/api/ui/v1/nodes", json=body, timeout=30).status_code == 403  # no CSRF header
    reply = http.put(f"{base}/api/ui/v1/nodes", json=body, headers={"X-EM-CSRF": csrf}, timeout=30)
    assert reply.status_code == 200, reply.text
    run = team.api("viewer").request("GET", f"/api/ui/v1/runs/{run_id}").json()
    assert (run["description"], run["labels"]) == ("tuned lr", ["best", "v2"])
    found = team.api("viewer").request("GET", "/apis/v1/search/runs", params={
        "folder": folder, "filter": 'labels = "best" and description ~ "tuned"'}).json()["runs"]
    assert [r["id"] for r in found] == [run_id]
    viewer, viewer_csrf = _browser(team, "viewer")
    denied = viewer.put(f"{base}/api/ui/v1/nodes", json={"node": run_id, "description": "x"},
                        headers={"X-EM-CSRF": viewer_csrf}, timeout=30)
    assert (denied.status_code, denied.text) == (403, "permission denied")


def test_runs_move_between_folders_the_user_may_write(team: World) -> None:
    bob, alice, vic = team.api("editor"), team.api("owner"), team.api("viewer")
    folder = _fresh_tree(team)
    run = f"{folder}/mnist"
    mine = bob.folder()
    # a Folder the mover cannot write: not found when invisible, denied when only viewable
    assert bob.request("POST", "/apis/v1/nodes/move", json={"node": run, "to": team.private.folder}).status_code == 404
    assert vic.request("POST", "/apis/v1/nodes/move", json={"node": run, "to": team.shared.folder}).status_code == 403
    assert bob.request("POST", "/apis/v1/nodes/move", json={"node": folder, "to": f"{folder}/ds"}).status_code == 400
    moved = bob.request("POST", "/apis/v1/nodes/move", json={"node": run, "to": team.shared.folder})
    assert moved.status_code == 400 and "Invalid conflicting node Name" in moved.text  # mnist is there
    moved = bob.request("POST", "/apis/v1/nodes/move", json={"node": run, "to": mine})
    assert moved.status_code == 200 and moved.json()["path"] == f"{mine}/mnist"
    # it is in bob's tree now, objects, series and search included; alice no longer sees it
    assert bob.get(f"{mine}/mnist/stdout.log").content == b"epoch 1\n"
    for query in ("", "hparams.lr = 0.01 and train.loss.min < 1"):  # the run index follows the Run
        runs = bob.request("GET", "/apis/v1/search/runs", params={"folder": mine, "filter": query}).json()["runs"]
        assert [r["path"] for r in runs] == [f"{mine}/mnist"], query
    fields = bob.request("GET", "/apis/v1/search/fields", params={"folder": mine}).json()
    assert "lr" in str(fields["hparams"]) and "loss" in str(fields["metrics"])
    assert alice.request("GET", "/apis/v1/nodes/info", params={"node": moved.json()["id"]}).status_code == 404
    assert bob.request("GET", "/apis/v1/nodes/info", params={"node": run}).status_code == 404


def test_delete_goes_to_the_trash_and_gc_frees_it_after(team: World) -> None:
    bob, vic, sam, alice = (team.api(r) for r in ("editor", "viewer", "stranger", "owner"))
    folder = _fresh_tree(team)
    run = f"{folder}/mnist"
    run_id = bob.request("GET", "/apis/v1/nodes/info", params={"node": run}).json()["id"]
    assert vic.request("DELETE", "/apis/v1/nodes", json={"node": run}).status_code == 403
    http, csrf = _browser(team, "editor")
    gone = http.delete(f"{team.server.base_url}/api/ui/v1/nodes", json={"node": run_id},
                       headers={"X-EM-CSRF": csrf}, timeout=30)
    assert gone.status_code == 200 and gone.json()["trash"] is True
    # gone everywhere, by path and by id
    for ref in (run, run_id):
        assert bob.request("GET", "/apis/v1/nodes/info", params={"node": ref}).status_code == 404
    assert bob.get(f"{run}/stdout.log").status_code == 404
    assert "mnist" not in [c["name"] for c in bob.request("GET", "/api/ui/v1/folders", params={"path": folder}).json()["children"]]
    # restorable by whoever may edit its Folder, for EM_SERVER_TRASH_DAYS
    items = {i["id"]: i for i in bob.request("GET", "/apis/v1/trash").json()["items"]}
    assert items[run_id]["path"] == run and items[run_id]["deleted_by"] == "bob"
    assert run_id in {i["id"] for i in alice.request("GET", "/api/ui/v1/trash").json()["items"]}
    for api, status in ((vic, 403), (sam, 404)):  # sam cannot see where it was: as if never trashed
        assert run_id not in {i["id"] for i in api.request("GET", "/apis/v1/trash").json()["items"]}
        assert api.request("POST", "/apis/v1/trash/restore", json={"id": run_id}).status_code == status
    restored = bob.request("POST", "/apis/v1/trash/restore", json={"id": run_id})
    assert restored.status_code == 200 and restored.json()["path"] == run
    assert vic.get(f"{run}/stdout.log").content == b"epoch 1\n"

    # deleted again, then freed by em server gc: rows and blobs
    assert bob.request("DELETE", "/apis/v1/nodes", json={"node": folder}).status_code == 200
    blobs = _blob_files(team)
    store = ["--data-dir", str(team.server.data_dir)] + (["--db", team.server.db] if team.server.db else [])
    kept = _gc(store + ["--trash-days", "1"])
    assert "deleted 0 trashed node(s)" in kept
    out = _gc(store + ["--trash-days", "0"])
    assert re.search(r"deleted [1-9]\d* trashed node\(s\) for good: ([1-9]\d*) blob", out), out
    assert len(_blob_files(team)) < len(blobs)
    assert bob.request("POST", "/apis/v1/trash/restore", json={"id": run_id}).status_code == 404
    assert run_id not in {i["id"] for i in alice.request("GET", "/apis/v1/trash").json()["items"]}


def _gc(args: list[str]) -> str:
    done = subprocess.run([sys.executable, "-m", "t9k_em_server", "gc", *args], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _blob_files(world: World) -> list:
    return [p for p in (world.server.data_dir / "blobs").rglob("*") if p.is_file()]
