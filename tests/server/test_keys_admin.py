"""A user's own API keys (create, name, revoke; the key shown once) and an admin managing users,
keys and groups over HTTP, on SQLite and PostgreSQL (the ``team`` fixture)."""
from __future__ import annotations

import re
import time
import uuid

import requests

from support.server_api import Api
from support.team_world import World


def _works(base: str, key: str, deadline: float = 8) -> bool:
    """Whether the key authenticates, waiting out the server's key cache (5 s) for a revoked one."""
    end = time.monotonic() + deadline
    while True:
        ok = requests.get(f"{base}/oauth2/userinfo", headers={"Authorization": f"Bearer {key}"},
                          timeout=10).status_code == 200
        if not ok or time.monotonic() > end:
            return ok
        time.sleep(0.25)


def _signed_in(base: str, key: str) -> requests.Session:
    http = requests.Session()
    token = re.search(r'name="csrf" value="([^"]+)"', http.get(f"{base}/ui/signin", timeout=30).text).group(1)
    reply = http.post(f"{base}/ui/signin", data={"apikey": key, "csrf": token, "next": ""},
                      headers={"Origin": base}, allow_redirects=False, timeout=30)
    assert reply.status_code == 303, reply.text
    return http


def test_own_keys_are_created_named_listed_and_revoked(team: World) -> None:
    root = team.api("admin")
    name = "k" + uuid.uuid4().hex[:8]
    first = root.request("POST", "/apis/v1/admin/users", json={"name": name}).json()["key"]
    me = Api(team.server.base_url, first, name)
    keys = me.request("GET", "/apis/v1/keys").json()["keys"]
    assert [(k["name"], k["prefix"]) for k in keys] == [("", first[:8])]
    made = me.request("POST", "/apis/v1/keys", json={"name": "laptop"}).json()
    assert made["prefix"] == made["key"][:8] and made["name"] == "laptop"
    assert _works(team.server.base_url, made["key"])
    listed = me.request("GET", "/apis/v1/keys").json()["keys"]
    assert [k["name"] for k in listed] == ["", "laptop"] and all("key" not in k for k in listed)
    # a key is revoked by its id, by its user only
    other = team.api("stranger")
    assert other.request("DELETE", "/apis/v1/keys", json={"id": made["id"]}).status_code == 404
    assert me.request("DELETE", "/apis/v1/keys", json={"id": made["id"]}).json()["revoked"] is True
    assert not _works(team.server.base_url, made["key"])
    assert _works(team.server.base_url, first)
    assert me.request("POST", "/apis/v1/keys", json={"name": "x" * 65}).status_code == 400


def test_revoking_a_key_ends_the_web_sessions_it_opened_only(team: World) -> None:
    root, base = team.api("admin"), team.server.base_url
    name = "s" + uuid.uuid4().hex[:8]
    first = root.request("POST", "/apis/v1/admin/users", json={"name": name}).json()["key"]
    second = Api(base, first, name).request("POST", "/apis/v1/keys", json={"name": "b"}).json()
    one, two = _signed_in(base, first), _signed_in(base, second["key"])
    # the UI page revokes through the UI JSON API: cookie plus the page's CSRF token
    page = two.get(f"{base}/ui/keys", timeout=30)
    assert page.status_code == 200 and "keys.js" in page.text
    csrf = re.search(r'data-csrf="([0-9a-f]+)"', page.text).group(1)
    assert two.delete(f"{base}/api/ui/v1/keys", json={"id": second["id"]}, timeout=30).status_code == 403
    reply = two.delete(f"{base}/api/ui/v1/keys", json={"id": second["id"]}, headers={"X-EM-CSRF": csrf},
                       timeout=30)
    assert reply.status_code == 200, reply.text
    assert two.get(f"{base}/api/ui/v1/keys", timeout=30).status_code == 401
    assert one.get(f"{base}/api/ui/v1/keys", timeout=30).status_code == 200


def test_admin_manages_users_keys_and_groups(team: World) -> None:
    root, bob, base = team.api("admin"), team.api("editor"), team.server.base_url
    name, group = "n" + uuid.uuid4().hex[:8], "g" + uuid.uuid4().hex[:8]
    admin_calls = [("GET", "/apis/v1/admin/users", {}), ("POST", "/apis/v1/admin/users", {"name": name}),
                   ("PUT", "/apis/v1/admin/users", {"name": "bob", "admin": True}),
                   ("GET", "/apis/v1/admin/groups", {}), ("POST", "/apis/v1/admin/groups", {"name": group}),
                   ("POST", "/apis/v1/admin/groups/members", {"group": "team", "user": "sam"})]
    for method, path, body in admin_calls:  # nobody but an admin, and nothing happens
        reply = bob.request(method, path, json=body or None)
        assert (reply.status_code, reply.text) == (403, "permission denied"), path
    assert name not in [u["name"] for u in root.request("GET", "/apis/v1/admin/users").json()["users"]]

    made = root.request("POST", "/apis/v1/admin/users", json={"name": name}).json()
    newbie = Api(base, made["key"], name)
    assert newbie.request("GET", "/apis/v1/nodes/info", params={"node": f"/{name}"}).status_code == 200
    assert root.request("POST", "/apis/v1/admin/users", json={"name": name}).status_code == 400
    key = root.request("POST", "/apis/v1/admin/keys", json={"user": name, "name": "ci"}).json()
    assert [k["name"] for k in root.request("GET", "/apis/v1/admin/keys", params={"user": name}).json()["keys"]] == ["", "ci"]
    assert root.request("DELETE", "/apis/v1/admin/keys", json={"user": name, "id": key["id"]}).json()["revoked"]
    assert not _works(base, key["key"])

    # a group gives its members what is shared with it, from the next request on
    assert root.request("POST", "/apis/v1/admin/groups", json={"name": group}).status_code == 200
    folder = team.api("owner").folder()
    assert team.api("owner").request("POST", "/apis/v1/shares", json={
        "folder": folder, "group": group, "role": "viewer"}).status_code == 200
    assert newbie.request("GET", "/apis/v1/nodes/info", params={"node": folder}).status_code == 404
    joined = root.request("POST", "/apis/v1/admin/groups/members", json={"group": group, "user": name})
    assert joined.json()["changed"] is True
    assert newbie.request("GET", "/apis/v1/nodes/info", params={"node": folder}).status_code == 200
    groups = {g["name"]: g["members"] for g in root.request("GET", "/apis/v1/admin/groups").json()["groups"]}
    assert groups[group] == [name]
    assert root.request("DELETE", "/apis/v1/admin/groups/members", json={"group": group, "user": name}).json()["changed"]
    assert newbie.request("GET", "/apis/v1/nodes/info", params={"node": folder}).status_code == 404
    assert root.request("POST", "/apis/v1/admin/groups/members",
                        json={"group": "no-such", "user": name}).text == "no group 'no-such'"

    # an admin made over the API sees everything
    assert root.request("PUT", "/apis/v1/admin/users", json={"name": name, "admin": True}).status_code == 200
    time.sleep(5.5)  # the server remembers a key's user (and role) for 5 s
    assert newbie.request("GET", "/apis/v1/nodes/info", params={"node": team.private.run}).status_code == 200
    assert root.request("PUT", "/apis/v1/admin/users", json={"name": name, "admin": False}).status_code == 200


def test_group_and_admin_commands(tmp_path) -> None:
    """``em server add-group / add-member / remove-member / list-groups / add-user --admin /
    set-admin`` on a data dir, and what they do to a running server's answers."""
    import subprocess
    import sys

    from support.em_server_process import ServerProcess

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "t9k_em_server", *args, "--data-dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=120)

    boss = cli("add-user", "boss", "--admin")
    assert boss.returncode == 0 and "created admin 'boss'" in boss.stdout
    for name in ("ann", "ben"):
        assert cli("add-user", name).returncode == 0
    assert cli("add-group", "ml").stdout.strip() == "created group 'ml'"
    assert "already exists" in cli("add-group", "ml").stderr
    added = cli("add-member", "ml", "ann", "ben")
    assert added.stdout.splitlines() == ["'ann' is in 'ml'", "'ben' is in 'ml'"]
    assert cli("remove-member", "ml", "ben").stdout.strip() == "'ben' is not in 'ml'"
    assert cli("list-groups").stdout.strip() == "ml\tann"
    missing = cli("add-member", "nope", "ann")
    assert missing.returncode == 1 and missing.stderr.strip() == "em server: no such group 'nope'"
    assert cli("set-admin", "ben").stdout.strip() == "'ben' is an admin"
    users = {line.split("\t")[0]: line for line in cli("list-users").stdout.splitlines()}
    assert users["boss"].endswith("admin") and users["ben"].endswith("admin") and not users["ann"].endswith("admin")
    assert cli("set-admin", "ben", "--off").returncode == 0
    server = ServerProcess(tmp_path)
    server.start()
    try:
        boss_key = boss.stdout.strip().splitlines()[-1]
        groups = Api(server.base_url, boss_key, "boss").request("GET", "/apis/v1/admin/groups").json()
        assert groups == {"groups": [{"name": "ml", "members": ["ann"]}]}
    finally:
        server.stop()
