"""Safety: bad names and keys refused, bytes verified before they become visible, bounded
requests, concurrent creates resolved without 500s or duplicates, a killed upload never visible."""
from __future__ import annotations

import base64
import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from support.server_api import Api
from support.em_server_process import ServerProcess

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def run_path(api) -> str:
    root = api.folder()
    api.node(root, "r", "Run")
    return f"{root}/r"


@pytest.mark.parametrize("key", ["../escape.txt", "a/../../b", "a\\b.txt", "/abs.txt", "a/\x01b"])
def test_bad_object_keys_are_refused(api, run_path, key):
    reply = api.put(f"{run_path}/{key}", b"x")
    assert reply.status_code in (400, 403), reply.text
    assert api.ls(run_path) == []


def test_object_keys_are_normalised(api, run_path):
    assert api.put(f"{run_path}/a//b/./c.txt", b"x").status_code == 200
    assert [i["path"] for i in api.ls(run_path)] == ["/a/b/c.txt"]


@pytest.mark.parametrize("name", ["", "-x", "x-", "a.b", "a b", "x" * 41, "../x", "a/b"])
def test_bad_node_names_are_refused(api, name):
    root = api.folder()
    reply = api.create(root, name, "Folder")
    assert reply.status_code in (400, 404), reply.text
    assert api.request("GET", "/apis/v1/nodes", params={"parent": root}).json()["pagination"]["total"] == 0


def test_md5_and_size_are_verified_before_visible(api, run_path):
    data = b"payload" * 1000
    good = hashlib.md5(data).hexdigest()
    assert api.put(f"{run_path}/ok.bin", data, md5=good, size=len(data)).status_code == 200
    assert api.put(f"{run_path}/a.bin", data, md5="0" * 32).status_code == 400
    assert api.put(f"{run_path}/b.bin", data, size=len(data) + 1).status_code == 400
    # raw body with Content-MD5 (RFC 1864, base64)
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    raw = api.request("POST", "/apis/v1/objects", params={"path": f"{run_path}/c.bin"}, data=data,
                      headers={"Content-Type": "application/octet-stream", "Content-MD5": wrong})
    assert raw.status_code == 400 and "md5 mismatch" in raw.text
    # overwriting with a corrupt upload keeps the old bytes
    assert api.put(f"{run_path}/ok.bin", b"new", md5="0" * 32).status_code == 400
    assert api.get(f"{run_path}/ok.bin").content == data
    assert [i["path"] for i in api.ls(run_path)] == ["/ok.bin"]


def test_bodies_are_bounded(api, run_path):
    huge = {"parent": f"/{api.user}", "name": "x", "type": "Folder", "description": "d" * (2 << 20)}
    assert api.request("POST", "/apis/v1/nodes", json=huge).status_code == 413
    long_desc = api.create(f"/{api.user}", "y", "Folder", description="d" * 100_000)
    assert long_desc.status_code == 400
    malformed = api.request("POST", "/apis/v1/objects", params={"path": f"{run_path}/m.bin"},
                            data=b"--x\r\nnot a multipart body", headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert malformed.status_code == 400
    no_content = api.request("POST", "/apis/v1/objects", params={"path": f"{run_path}/n.bin"},
                             files={"other": ("f", b"x")})
    assert no_content.status_code == 400 and "content" in no_content.text
    truncated = api.request("POST", "/apis/v1/objects", params={"path": f"{run_path}/t.bin"},
                            data=b'--x\r\nContent-Disposition: form-data; name="content"; filename="t"\r\n\r\nhalf of it',
                            headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert truncated.status_code == 400 and "incomplete" in truncated.text
    assert api.ls(run_path) == []


def test_concurrent_creates_of_one_name(api):
    root = api.folder()

    def create(_):
        return Api(api.base, api.key, api.user).create(root, "same", "Run").status_code

    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(create, range(20)))
    assert codes.count(200) == 1 and codes.count(400) == 19, codes
    assert api.request("GET", "/apis/v1/nodes", params={"parent": root}).json()["pagination"]["total"] == 1


def test_twenty_clients_create_nodes_and_objects(api):
    root = api.folder()

    def client(i):
        c = Api(api.base, api.key, api.user)
        c.node(root, f"run{i}", "Run")
        for j in range(5):
            assert c.put(f"{root}/run{i}/metrics/m{j}.yaml", f"{i}-{j}".encode()).status_code == 200
        return True

    with ThreadPoolExecutor(20) as pool:
        assert all(pool.map(client, range(20)))
    children = api.request("GET", "/apis/v1/nodes", params={"parent": root, "size": 100}).json()
    assert children["pagination"]["total"] == 20
    for i in range(20):
        items = api.ls(f"{root}/run{i}")
        assert sorted(x["path"] for x in items) == [f"/metrics/m{j}.yaml" for j in range(5)]
        assert api.get(f"{root}/run{i}/metrics/m3.yaml").content == f"{i}-3".encode()

    def overwrite(i):
        return Api(api.base, api.key, api.user).put(f"{root}/run0/shared.bin", bytes([i]) * 1000).status_code

    with ThreadPoolExecutor(20) as pool:
        assert set(pool.map(overwrite, range(20))) == {200}
    final = api.get(f"{root}/run0/shared.bin").content
    assert len(final) == 1000 and len(set(final)) == 1  # one whole upload won, no mix


@pytest.mark.timeout(300)
def test_killed_upload_is_never_visible(tmp_path):
    """SIGKILL the server while an upload streams in; after a restart the old bytes are intact."""
    server = ServerProcess(tmp_path / "srv")
    name, key = server.add_user("kim")
    server.start()
    try:
        api = Api(server.base_url, key, name)
        api.node(f"/{name}", "r", "Run")
        assert api.put(f"/{name}/r/w.bin", b"old" * 100).status_code == 200
        sent = threading.Event()

        def body():
            yield b"--b\r\nContent-Disposition: form-data; name=\"content\"; filename=\"w.bin\"\r\n\r\n"
            for _ in range(64):
                yield b"n" * (1 << 20)
            sent.set()
            time.sleep(30)  # the server dies while waiting for the rest
            yield b"\r\n--b--\r\n"

        def upload(path):
            try:
                requests.post(f"{server.base_url}/apis/v1/objects", params={"path": path, "apikey": key},
                              data=body(), headers={"Content-Type": "multipart/form-data; boundary=b"}, timeout=60)
            except requests.RequestException:
                pass

        threads = [threading.Thread(target=upload, args=(f"/{name}/r/{f}",), daemon=True)
                   for f in ("w.bin", "new.bin")]
        for t in threads:
            t.start()
        assert sent.wait(60)
        time.sleep(1)
        server.kill()
        server.start()
        api = Api(server.base_url, key, name)
        assert api.get(f"/{name}/r/w.bin").content == b"old" * 100
        assert api.get(f"/{name}/r/new.bin").status_code == 404
        assert [i["path"] for i in api.ls(f"/{name}/r")] == ["/w.bin"]
    finally:
        server.stop()
