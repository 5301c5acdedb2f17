"""Users, keys and isolation: `em server add-user/list-users/revoke-key`, the three ways a key
travels, and the error bodies the 0.6.0b0 client recognises (spec server-api §2)."""
from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time

import pytest
import requests
from support.server_api import Api

pytestmark = pytest.mark.timeout(180)

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def cli(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "t9k_em_server", *args, "--data-dir", str(server.data_dir)],
                          capture_output=True, text=True, timeout=120)


def test_add_user_prints_key_last_and_creates_root(em_server, em_add_user):
    out = cli(em_server.process, "add-user", "carol")
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip().splitlines()[-1]
    assert UUID.fullmatch(key)
    api = Api(em_server.base_url, key, "carol")
    assert api.request("GET", "/oauth2/userinfo").json()["preferred_username"] == "carol"
    assert api.request("GET", "/apis/v1/nodes/info", params={"node": "/carol"}).json()["type"] == "Folder"
    again = cli(em_server.process, "add-user", "carol")
    assert again.returncode == 1 and "already exists" in again.stderr
    listing = cli(em_server.process, "list-users")
    assert re.search(r"^carol\t.*1 active key", listing.stdout, re.M)


def test_user_names_follow_the_name_rule(tmp_path):
    from t9k_em_server.metadata_store import MetadataStore
    from t9k_em_server.users import add_user

    meta = MetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    meta.upgrade()
    for bad in ("no/slash", "-x", "", "a.b", "x" * 41):
        with pytest.raises(ValueError, match="invalid user name"):
            add_user(meta, bad)
    assert meta.list_users() == []


def test_keys_are_stored_hashed_and_never_logged(em_server):
    key = em_server.api_key
    requests.get(em_server.base_url + "/oauth2/userinfo", params={"apikey": key}, timeout=10)
    requests.get(em_server.base_url + "/apis/v1/nodes/info", params={"node": "/alice", "apikey": key}, timeout=10)
    db = em_server.process.data_dir / "em.db"
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
    assert key not in dump
    log = em_server.process.log_text()
    assert "apikey=***" in log
    assert key not in log


def test_credentials_and_error_bodies(em_server):
    base, key, user = em_server
    ok = requests.get(base + "/oauth2/userinfo", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert ok.status_code == 200 and ok.json()["preferred_username"] == user
    bearer_bad = requests.get(base + "/oauth2/userinfo",
                              headers={"Authorization": "Bearer 00000000-0000-0000-0000-000000000000"}, timeout=10)
    assert bearer_bad.status_code == 401
    query_bad = requests.get(base + "/oauth2/userinfo",
                             params={"apikey": "00000000-0000-0000-0000-000000000000"}, timeout=10)
    # the 0.6.0b0 client maps exactly this to RuntimeError('API Key not found')
    assert query_bad.status_code == 400
    assert query_bad.text.startswith("api key") and query_bad.text.endswith("not found\n")
    empty = requests.get(base + "/oauth2/userinfo", params={"apikey": ""}, timeout=10)
    assert empty.status_code == 400 and empty.text.startswith("query is needed")
    nothing = requests.get(base + "/apis/v1/nodes/info", params={"node": "/alice"}, timeout=10)
    assert nothing.status_code == 401


def test_revoke_key(em_server, em_add_user):
    name, key = em_add_user()
    api = Api(em_server.base_url, key, name)
    assert api.request("GET", "/oauth2/userinfo").status_code == 200
    out = cli(em_server.process, "revoke-key", key)
    assert out.returncode == 0, out.stderr
    # The server remembers a checked key for EM_SERVER_KEY_CACHE_SECONDS (default 5 s):
    # the revocation must take effect within that time.
    deadline = time.monotonic() + 8
    while api.request("GET", "/oauth2/userinfo").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.25)
    assert api.request("GET", "/oauth2/userinfo").status_code == 400
    assert requests.get(em_server.base_url + "/oauth2/userinfo",
                        headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code == 401
    new = cli(em_server.process, "add-key", name).stdout.strip().splitlines()[-1]
    assert Api(em_server.base_url, new, name).request("GET", "/oauth2/userinfo").status_code == 200
    assert "revoked 1 key" in cli(em_server.process, "revoke-key", "--user", name).stdout


def test_users_are_isolated(em_server, em_add_user):
    (a_name, a_key), (b_name, b_key) = em_add_user(), em_add_user()
    alice, bob = Api(em_server.base_url, a_key, a_name), Api(em_server.base_url, b_key, b_name)
    folder = alice.folder()
    run_id = alice.node(folder, "secret", "Run")
    assert alice.put(f"{folder}/secret/w.txt", b"alice's").status_code == 200
    def attempts(folder: str) -> list:
        return [
            bob.request("GET", "/apis/v1/nodes/info", params={"node": f"{folder}/secret"}),
            bob.request("GET", "/apis/v1/nodes", params={"parent": folder}),
            bob.create(folder, "intruder", "Run"),
            bob.put(f"{folder}/secret/w.txt", b"bob's"),
            bob.put(f"{folder}/secret/new.txt", b"bob's"),
            bob.get(f"{folder}/secret/w.txt"),
            bob.request("GET", "/apis/v1/objects/ls", params={"path": f"{folder}/secret"}),
            bob.request("DELETE", "/apis/v1/nodes", json={"node": f"{folder}/secret"}),
            bob.request("PUT", "/apis/v1/nodes", json={"node": f"{folder}/secret", "name": "x"}),
            bob.request("POST", "/apis/v1/objects/multipart", params={"path": f"{folder}/secret/m.bin"}),
        ]
    # alice's folder answers exactly like one that does not exist: no existence leak by path
    ghost = f"/{a_name}/ghost-folder"
    for reply, unknown in zip(attempts(folder), attempts(ghost)):
        assert reply.status_code == 404 and reply.text.startswith("node not found ["), reply.text
        assert (reply.status_code, reply.text.replace(folder, ghost)) == (unknown.status_code, unknown.text)
    by_id = [bob.request("GET", "/apis/v1/nodes/info", params={"node": run_id}),
             bob.request("DELETE", "/apis/v1/nodes", json={"node": run_id})]
    for reply in by_id:
        assert reply.status_code == 404
    # graphs: alice's id answers exactly like an id nobody has; an edge bob draws to it is his
    # own opaque id, and shows alice's node to no one
    unknown = "00000000-0000-4000-8000-000000000000"
    for ref in (run_id, unknown):
        reply = bob.request("GET", "/apis/v1/graphs", params={"current": ref})
        assert (reply.status_code, reply.text) == (404, f"node not found [{ref}]")
    assert bob.request("POST", "/apis/v1/graphs", json={"graphs": [{"from": run_id, "to": "x"}]}).status_code == 200
    assert bob.request("GET", "/apis/v1/graphs", params={"current": "x"}).json() == {"in": [{"id": run_id}], "out": []}
    # nothing was written
    assert alice.get(f"{folder}/secret/w.txt").content == b"alice's"
    assert [i["path"] for i in alice.ls(f"{folder}/secret")] == ["/w.txt"]
    assert alice.request("GET", "/apis/v1/graphs", params={"current": run_id}).json() == {"in": [], "out": []}
    assert alice.request("GET", "/apis/v1/nodes/info", params={"node": f"{folder}/intruder"}).status_code == 404
