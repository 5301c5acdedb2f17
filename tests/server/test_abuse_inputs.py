"""Malformed input to every endpoint of a real server: each case gets a 4xx whose text names the
problem, never a 500; no traceback is logged; the data already there stays byte-equal; other
clients are served meanwhile and the server's peak RSS stays bounded. A property-based part
(Hypothesis) throws generated JSON bodies and query values at the write endpoints."""
from __future__ import annotations

import io
import json
import socket
import tarfile
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.abuse import (RSS_BOUND_MB, page_token, peak_rss_mb, routes_reading_json, served_meanwhile,
                           signed_in, snapshot)
from support.em_server_process import ServerProcess
from support.server_api import Api, post_batch, tar_of
from t9k_em_server.app import create_app
from t9k_em_server.config import ServerConfig
from t9k_em_server.routers.auth import COOKIE_PREFIX, CSRF_HEADER
from t9k_em_server.routers.common import reads_json_body

pytestmark = pytest.mark.timeout(300)

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture(scope="module")
def world(em_server, em_add_user):
    """A user (an admin, so that the admin endpoints read its bodies too) with a folder, a Run
    holding an object, and an Artifact; their bytes are checked after every case."""
    name, key = em_add_user(admin=True)
    api = Api(em_server.base_url, key, name)
    folder = api.folder()
    run_id = api.node(folder, "run", "Run")
    run = f"{folder}/run"
    assert api.put(f"{run}/keep.txt", b"keep me\n").status_code == 200
    return api, folder, run, run_id


@pytest.fixture
def unchanged(em_server, world):
    """Asserts after the test: the world's objects and listing are byte-equal, no traceback was
    logged, peak RSS under the bound."""
    api, folder, run, _ = world
    log_before = len(em_server.process.log_text())
    before = (snapshot(api, run), api.request("GET", "/apis/v1/nodes", params={"parent": folder}).content)
    yield
    after = (snapshot(api, run), api.request("GET", "/apis/v1/nodes", params={"parent": folder}).content)
    assert after == before
    new_log = em_server.process.log_text()[log_before:]
    assert "Traceback" not in new_log and " 500 " not in new_log, new_log[-3000:]
    assert peak_rss_mb(em_server.process.pid) < RSS_BOUND_MB


def expect_4xx(reply: requests.Response, *words: str, status: int | None = None) -> None:
    assert 400 <= reply.status_code < 500, (reply.status_code, reply.text[:500])
    if status is not None:
        assert reply.status_code == status, reply.text[:500]
    for word in words:
        assert word in reply.text, (word, reply.text[:500])


WRITE_METHODS = ("post", "put", "patch", "delete")
#: the endpoints this suite listed by hand before it derived them: they must stay in the derived set
LISTED_BEFORE = {("POST", "/apis/v1/nodes"), ("PUT", "/apis/v1/nodes"), ("DELETE", "/apis/v1/nodes"),
                 ("POST", "/apis/v1/graphs"), ("POST", "/apis/v1/objects/multipart/{upload_id}")}


@pytest.fixture(scope="module")
def json_routes(em_server) -> dict[tuple[str, str], dict]:
    """(method, path template) → OpenAPI operation of every write endpoint that the running server
    declares to take a JSON body (``routers.common.body_schema``, asked via ``reads_json_body``)."""
    spec = requests.get(f"{em_server.base_url}/openapi.json", timeout=30).json()
    return {(method.upper(), path): operation for path, operations in spec["paths"].items()
            for method, operation in operations.items()
            if method in WRITE_METHODS and reads_json_body(operation)}


@pytest.fixture(scope="module")
def browser(em_server, world) -> tuple[requests.Session, str]:
    """The world's user signed in to the web UI: the session and its page token (``X-EM-CSRF``)."""
    api = world[0]
    http = signed_in(em_server.base_url, api.key)
    return http, page_token(http, em_server.base_url, api.user)


def test_json_endpoints_are_all_derived(json_routes, tmp_path):
    """Every route whose handler calls ``read_json`` (found in the handlers' code) declares its
    JSON body, so the derived set misses none; the endpoints once listed by hand are among them."""
    assert LISTED_BEFORE <= set(json_routes)
    app = create_app(ServerConfig(data_dir=tmp_path))
    try:
        readers = routes_reading_json(app)
    finally:
        app.state.stores.close()
    assert LISTED_BEFORE <= readers  # the code scan finds readers at all
    assert readers <= set(json_routes), f"reads JSON without body_schema: {sorted(readers - set(json_routes))}"


def json_endpoints(world, json_routes: dict[tuple[str, str], dict]) -> list[tuple[str, str, dict[str, str]]]:
    """(method, path, query) of every endpoint in ``json_routes``, its path parameters and
    required query parameters filled with the world's ids (a new one fails here until it has one)."""
    api, folder, run, _ = world
    upload, _ = api.start_multipart(f"{run}/mp.bin", [b"x"])
    values = {"upload_id": upload, "path": f"{run}/mp.bin"}  # by parameter name
    endpoints = []
    for (method, path), operation in sorted(json_routes.items()):
        wanted = [p for p in operation.get("parameters", []) if p["in"] == "path" or p.get("required")]
        missing = [f"{p['in']} {p['name']}" for p in wanted
                   if p["in"] not in ("path", "query") or p["name"] not in values]
        assert not missing, f"{method} {path}: json_endpoints has no value for {missing}"
        filled = {p["name"]: values[p["name"]] for p in wanted if p["in"] == "path"}
        endpoints.append((method, path.format(**filled),
                          {p["name"]: values[p["name"]] for p in wanted if p["in"] == "query"}))
    return endpoints


@pytest.mark.parametrize("body, words, status", [
    (DEEP, ["nested deeper than 64"], 400),
    (b'{"a":' * 65 + b"1" + b"}" * 65, ["nested deeper than 64"], 400),
    (b'{"node": "\\ud800", "parent": "\\udfff"}', ["lone surrogate"], 400),
    (b"\xff\xfe{}", ["not valid JSON"], 400),
    (b"[1, 2]", ["must be a JSON object"], 400),
    (b"{" * 10, ["not valid JSON"], 400),
    (b"{\"x\": \"" + b"a" * (1 << 20) + b"\"}", ["larger than"], 413),
], ids=["deep-100k", "deep-65", "surrogate", "bad-utf8", "array", "truncated", "over-1MiB"])
def test_every_json_endpoint_refuses_bad_bodies(em_server, world, json_routes, browser, unchanged,
                                                body, words, status):
    """Each case to every JSON endpoint: the API-key ones with the world user's key (an admin, so
    no role check answers first), the web UI's (``/api/ui/``) as the signed-in browser with its
    ``X-EM-CSRF`` token."""
    api, (http, token) = world[0], browser
    base, headers = em_server.base_url, {"Content-Type": "application/json"}
    for method, path, params in json_endpoints(world, json_routes):
        if path.startswith(COOKIE_PREFIX):
            def send() -> requests.Response:
                return http.request(method, base + path, params=params, data=body, timeout=120,
                                    headers={**headers, CSRF_HEADER: token, "Origin": base})
        else:
            def send() -> requests.Response:
                return api.request(method, path, params=params, data=body, headers=headers)
        reply = served_meanwhile(em_server.url, send)
        assert 400 <= reply.status_code < 500, (method, path, reply.status_code, reply.text[:300])
        expect_4xx(reply, *words, status=status)


def node_body(world, **fields):
    api, folder, _, _ = world
    body = {"parent": folder, "name": "n" + str(time.monotonic_ns())[-9:], "type": "Folder",
            "storageType": 0, "labels": [], "description": "", "extra": "{}"}
    return {**body, **fields}


@pytest.mark.parametrize("fields, words", [
    ({"description": "\ud800"}, ["lone surrogate"]),
    ({"labels": ["ok", "\udfff"]}, ["lone surrogate"]),
    ({"storageType": 2 ** 70}, ["invalid storageType"]),
    ({"storageType": -5}, ["invalid storageType"]),
    ({"storageType": "zero"}, ["storageType"]),
    ({"extra": "[" * 30_000 + "]" * 30_000}, ["extra nested deeper than 64"]),
    ({"extra": json.dumps({"a": "\ud800"})}, ["extra holds a lone surrogate"]),
    ({"type": "Pipeline"}, ["invalid node type"]),
    ({"name": "a" * 41}, ["invalid node name"]),
    ({"name": "\u202eexe.jpg"}, ["invalid node name"]),
    ({"labels": "notalist"}, ["labels"]),
    ({"parent": "relative"}, ["invalid node path"]),
    ({"description": "x" * (64 * 1024 + 1)}, ["description longer than"]),
], ids=lambda v: str(v)[:40])
def test_node_fields_are_checked(world, unchanged, fields, words):
    api = world[0]
    body = json.dumps(node_body(world, **fields), ensure_ascii=True)
    reply = api.request("POST", "/apis/v1/nodes", data=body, headers={"Content-Type": "application/json"})
    expect_4xx(reply, *words, status=400)


def test_nodes_go_into_folders_only(world, unchanged):
    api, _, run, _ = world
    reply = api.create(run, "child", "Run")
    expect_4xx(reply, "it is a Run", "Folders", status=400)


@pytest.mark.parametrize("method, path, params, words", [
    ("GET", "/apis/v1/nodes", {"parent": "{folder}", "page": 10 ** 17}, ["page must be between"]),
    ("GET", "/apis/v1/nodes", {"parent": "{folder}", "page": 0}, ["page must be between"]),
    ("GET", "/apis/v1/nodes", {"parent": "{folder}", "size": "x"}, ["size"]),
    ("GET", "/apis/v1/objects/ls", {"path": "{run}", "page": 10 ** 17}, ["page must be between"]),
    ("GET", "/apis/v1/objects/ls", {"path": "{run}", "size": -1}, ["size must be"]),
    ("PUT", "/apis/v1/objects/multipart/x", {"path": "{run}/a", "partNumber": 10 ** 30}, ["partNumber"]),
    ("GET", "/api/ui/v1/runs/{run_id}/series", {"type": "train", "metric": "loss", "max_points": 10 ** 20}, ["max_points"]),
    ("GET", "/api/ui/v1/runs/{run_id}/log", {"tail_bytes": -1}, ["tail_bytes"]),
    ("GET", "/api/ui/v1/lineage/{run_id}", {"depth": 10 ** 9}, ["depth"]),
    ("GET", "/apis/v1/graphs", {"current": "no-such-id"}, ["node not found"]),
], ids=lambda v: str(v)[:30])
def test_query_values_are_checked(world, unchanged, method, path, params, words):
    api, folder, run, run_id = world
    fill = {"folder": folder, "run": run, "run_id": run_id}
    params = {k: v.format(**fill) if isinstance(v, str) else v for k, v in params.items()}
    reply = api.request(method, path.format(**fill), params=params)
    expect_4xx(reply, *words)


def raw_request(api: Api, method: str, target: str, body: bytes = b"") -> requests.Response:
    """A request whose target is sent exactly as written (``requests`` would re-encode it)."""
    http = requests.Session()
    prepared = http.prepare_request(requests.Request(method, api.base + target, data=body or None))
    prepared.url = api.base + target
    return http.send(prepared, timeout=60)


@pytest.mark.parametrize("target", [
    "/apis/v1/objects?path={run}/%ff&apikey={key}",
    "/apis/v1/objects?path={run}/a%c3&apikey={key}",
    "/apis/v1/nodes?parent={folder}%ed%a0%80&apikey={key}",
    "/apis/v1/objects/ls?path={run}&%ff=1&apikey={key}",
    "/api/ui/v1/runs/%ff?apikey={key}",
    "/ui/folders/%ff",
])
def test_undecodable_urls_are_refused(world, unchanged, target):
    api, folder, run, _ = world
    reply = raw_request(api, "GET", target.format(run=run, folder=folder, key=api.key))
    expect_4xx(reply, "not valid UTF-8", status=400)
    reply = raw_request(api, "POST", target.format(run=run, folder=folder, key=api.key), b"x")
    expect_4xx(reply, "not valid UTF-8", status=400)


@pytest.mark.parametrize("key, words", [
    ("a\u202egpj.exe", ["bidirectional"]),
    ("a\u2066b", ["bidirectional"]),
    ("   ", ["only spaces"]),
    ("dir/ /f", ["only spaces"]),
    ("a\x00b", ["control characters"]),
    ("../x", ["'..' not allowed"]),
])
def test_bad_object_keys_single_and_batch(world, unchanged, key, words):
    """One validator for single uploads and batch members: the same refusal either way."""
    api, _, run, _ = world
    expect_4xx(api.put(f"{run}/{key}", b"x"), *words, status=400)
    expect_4xx(post_batch(api, run, tar_of({key: b"x", "fine.txt": b"y"})), *words, status=400)


def test_batch_member_names_that_tar_would_mangle(world, unchanged):
    api, _, run, _ = world
    invalid_utf8 = io.BytesIO()
    with tarfile.open(fileobj=invalid_utf8, mode="w", format=tarfile.PAX_FORMAT,
                      encoding="utf-8", errors="surrogateescape") as tar:
        info = tarfile.TarInfo("bad\udcffname.txt")
        info.size, info.pax_headers = 1, {"T9K.md5": "9dd4e461268c8034f5c8564e155c67a6"}
        tar.addfile(info, io.BytesIO(b"x"))
    expect_4xx(post_batch(api, run, invalid_utf8.getvalue()), "not valid UTF-8", status=400)
    gnu = io.BytesIO()
    with tarfile.open(fileobj=gnu, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("d/" * 60 + "f.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    expect_4xx(post_batch(api, run, gnu.getvalue()), "GNU long names", status=400)


def test_oversized_and_truncated_uploads(world, unchanged):
    api, _, run, _ = world
    expect_4xx(api.put(f"{run}/s.bin", b"abc", size=2 ** 70), "size", status=400)
    expect_4xx(api.put(f"{run}/s.bin", b"abc", md5="zz"), status=400)
    expect_4xx(post_batch(api, run, b"\0" * 100 + b"garbage"), "tar", status=400)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(fields=st.dictionaries(st.sampled_from(["parent", "name", "type", "storageType", "labels",
                                               "description", "extra", "node"]), JSON_VALUES))
def test_generated_node_bodies_never_crash(world, fields):
    api, folder, _, _ = world
    for method in ("POST", "PUT"):
        reply = api.request(method, "/apis/v1/nodes", json={"parent": folder, **fields})
        assert reply.status_code < 500, reply.text
        if reply.status_code >= 400:
            assert reply.text.strip()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.text(max_size=60), page=st.integers(), size=st.integers())
def test_generated_queries_never_crash(world, path, page, size):
    api, _, run, _ = world
    for endpoint, params in (("/apis/v1/objects/ls", {"path": run + "/" + path, "page": page, "size": size}),
                             ("/apis/v1/objects", {"path": run + "/" + path}),
                             ("/apis/v1/nodes", {"parent": path, "page": page, "size": size})):
        reply = api.request("GET", endpoint, params=params)
        assert reply.status_code < 500, reply.text


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(query=st.text(max_size=80), order=st.text(max_size=20), token=st.text(max_size=40))
def test_generated_searches_never_crash(world, query, order, token):
    api, folder, _, _ = world
    for endpoint, params in (("/apis/v1/search/runs", {"folder": folder, "filter": query,
                                                       "order_by": order, "page_token": token}),
                             ("/apis/v1/search/groups", {"folder": folder, "filter": query, "by": order})):
        reply = api.request("GET", endpoint, params=params)
        assert reply.status_code < 500, reply.text


@pytest.fixture(scope="module")
def quick_timeouts(tmp_path_factory):
    """A server of its own whose header and body timeouts are 1 s."""
    server = ServerProcess(tmp_path_factory.mktemp("timeouts"),
                           env={"EM_SERVER_HEADER_TIMEOUT": "1", "EM_SERVER_BODY_TIMEOUT": "1"})
    name, key = server.add_user("alice")
    server.start()
    yield server, Api(server.base_url, key, name)
    server.stop()


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def closed_within(sock: socket.socket, seconds: float) -> bytes:
    """What the server sends before closing ``sock``; fails if it stays open ``seconds``."""
    sock.settimeout(seconds)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_slow_headers_idle_connections_and_slow_bodies_time_out(quick_timeouts):
    server, api = quick_timeouts
    idle = connect(server)                       # connects, says nothing
    trickle = connect(server)                    # sends a head byte by byte, never finishes it
    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n":
        trickle.send(bytes([byte]))
    start = time.monotonic()
    assert closed_within(idle, 5) == b"" and closed_within(trickle, 5) == b""
    assert time.monotonic() - start < 4
    slow_body = connect(server)
    slow_body.send(f"POST /apis/v1/nodes?apikey={api.key} HTTP/1.1\r\nHost: x\r\n"
                   "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode())
    reply = closed_within(slow_body, 5)
    assert reply.startswith(b"HTTP/1.1 408") and b"request body stalled" in reply
    assert requests.get(server.base_url + "/healthz", timeout=5).status_code == 200
    assert "Traceback" not in server.log_text()


def test_form_bodies_are_small(em_server, unchanged):
    """The sign-in/out forms take a few fields: a big body is refused before it is parsed (and
    Starlette would spool file parts of any size to disk)."""
    base = em_server.base_url
    big = {"apikey": ("key.bin", b"x" * (1 << 20))}
    reply = requests.post(f"{base}/ui/signin", files=big, timeout=60)
    expect_4xx(reply, "request body larger than 65536 bytes", status=413)
    chunked = requests.post(f"{base}/ui/signin", data=(b"next=" + b"a" * 4096 for _ in range(64)),
                            headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=60)
    expect_4xx(chunked)
