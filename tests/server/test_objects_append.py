"""Our append/truncate extension (``POST /apis/v1/objects/append|truncate``) and
``GET /apis/v1/capabilities``, over HTTP against real server processes: local folder + SQLite,
and S3 (moto_server) + PostgreSQL. An append sequence makes the object a whole upload would make,
byte for byte; a lost or replayed append is refused with the server's size; a truncate cuts; the
series cache and the metric summaries follow both."""
from __future__ import annotations

import hashlib
import os

import pytest
from support.em_server_process import ServerProcess
from support.server_api import Api, metric_entries
from support.team_services import needs_pg

pytestmark = pytest.mark.timeout(300)

BUCKET = "em-team"


@pytest.fixture(scope="module", params=["local", pytest.param("s3", marks=needs_pg)])
def api(request, tmp_path_factory) -> Api:
    if request.param == "local":
        server = ServerProcess(tmp_path_factory.mktemp("append-local"))
    else:
        db = request.getfixturevalue("pg_database")
        server = ServerProcess(tmp_path_factory.mktemp("append-s3"), db=db,
                               blob_store=f"s3://{BUCKET}/blobs",
                               env=request.getfixturevalue("s3_env"))
    name, key = server.add_user("appender")
    server.start()
    yield Api(server.base_url, key, name)
    server.stop()


@pytest.fixture
def run(api: Api) -> str:
    folder = api.folder()
    api.node(folder, "r", "Run")
    return f"{folder}/r"


def append(api: Api, path: str, offset: int, data: bytes, **params) -> object:
    return api.request("POST", "/apis/v1/objects/append",
                       params={"path": path, "offset": offset, **params}, data=data,
                       headers={"Content-Type": "application/octet-stream"})


def summaries(api: Api, run: str) -> dict:
    folder = run.rsplit("/", 1)[0]
    reply = api.request("GET", "/apis/v1/search/runs", params={"folder": folder})
    assert reply.status_code == 200, reply.text
    (record,) = reply.json()["runs"]
    return record["summaries"]["train"]


def series(api: Api, run: str) -> dict:
    node = api.request("GET", "/apis/v1/nodes/info", params={"node": run}).json()["id"]
    reply = api.request("GET", f"/api/ui/v1/runs/{node}/series",
                        params={"type": "train", "metric": "loss", "x": "step", "max_points": 100000})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_capabilities_name_the_extension(api: Api) -> None:
    reply = api.http.get(api.base + "/apis/v1/capabilities")
    assert reply.status_code == 200
    assert reply.json()["append"] is True and reply.json()["truncate"] is True
    assert reply.json()["max_append_bytes"] > 0


def test_appends_equal_a_whole_upload_and_indexing_follows(api: Api, run: str) -> None:
    path = f"{run}/metrics/train.yaml"
    whole = metric_entries(0, 3000)
    # pieces cut anywhere, also mid-entry; the S3 store copies pieces over 5 MiB inside S3
    cuts = [0, 1, 700, 701, 20_000, 150_000, len(whole) - 5, len(whole)]
    for start, stop in zip(cuts, cuts[1:]):
        piece = whole[start:stop]
        reply = append(api, path, start, piece, md5=hashlib.md5(piece).hexdigest())
        assert reply.status_code == 200, reply.text
        assert reply.json()["size_bytes"] == stop
        assert reply.json()["md5"] == hashlib.md5(whole[:stop]).hexdigest()
    assert api.get(path).content == whole
    (listed,) = [o for o in api.ls(run) if o["path"] == "/metrics/train.yaml"]
    assert listed["md5"] == hashlib.md5(whole).hexdigest() and listed["size_bytes"] == len(whole)
    points = series(api, run)
    assert points["total"] == 3000 and points["x"][-1] == 2999
    loss = summaries(api, run)["loss"]
    assert loss["count"] == 3000 and loss["last"] == pytest.approx(1 / 3000)
    assert loss["max"] == 1.0 and loss["last_step"] == 2999


def test_big_appends_on_a_big_object(api: Api, run: str) -> None:
    """Past S3's 5 MiB part minimum the old bytes are copied inside the store."""
    path = f"{run}/blob.bin"
    first, second = os.urandom(6 << 20), os.urandom(3 << 20)
    assert append(api, path, 0, first).status_code == 200
    reply = append(api, path, len(first), second)
    assert reply.status_code == 200, reply.text
    assert api.get(path).content == first + second


def test_lost_and_replayed_appends_are_refused_with_the_size(api: Api, run: str) -> None:
    path = f"{run}/metrics/train.yaml"
    a, b = metric_entries(0, 10), metric_entries(10, 20)
    assert append(api, path, 0, a).status_code == 200
    replay = append(api, path, 0, a)  # the reply of the first was lost; the client sends it again
    assert replay.status_code == 409
    assert replay.headers["X-EM-Object-Size"] == str(len(a))
    assert replay.headers["X-EM-Object-MD5"] == hashlib.md5(a).hexdigest()
    gap = append(api, path, len(a) + len(b), metric_entries(20, 30))  # b was lost
    assert gap.status_code == 409 and gap.headers["X-EM-Object-Size"] == str(len(a))
    assert append(api, path, len(a), b).status_code == 200
    assert api.get(path).content == a + b
    assert series(api, run)["total"] == 20


def test_bad_appends_change_nothing(api: Api, run: str) -> None:
    path = f"{run}/metrics/train.yaml"
    assert append(api, path, 0, b"abc").status_code == 200
    assert append(api, path, 3, b"def", md5=hashlib.md5(b"xyz").hexdigest()).status_code == 400
    assert append(api, f"{run}/metadata.yaml", 0, b"name: r\n").status_code == 400
    too_big = append(api, path, 3, b"x" * ((16 << 20) + 1))
    assert too_big.status_code == 413
    other = Api(api.base, api.key, api.user)
    foreign = append(other, "/someoneelse/r/x.yaml", 0, b"x")
    assert (foreign.status_code, foreign.text) == (404, "node not found [/someoneelse/r]")  # as if missing
    cookie_only = api.http.post(api.base + "/apis/v1/objects/append", params={"path": path, "offset": 3},
                                data=b"def", cookies={"em_session": "x"})
    assert cookie_only.status_code == 401
    assert api.get(path).content == b"abc"


def test_truncate_after_a_rewind_and_indexing_follows(api: Api, run: str) -> None:
    path = f"{run}/metrics/train.yaml"
    kept, dropped = metric_entries(0, 1000), metric_entries(1000, 1500)
    assert append(api, path, 0, kept + dropped).status_code == 200
    assert summaries(api, run)["loss"]["count"] == 1500
    short = api.request("POST", "/apis/v1/objects/truncate", params={"path": path, "size": 10**9})
    assert short.status_code == 409 and short.headers["X-EM-Object-Size"] == str(len(kept + dropped))
    cut = api.request("POST", "/apis/v1/objects/truncate", params={"path": path, "size": len(kept)})
    assert cut.status_code == 200, cut.text
    assert cut.json()["md5"] == hashlib.md5(kept).hexdigest()
    assert summaries(api, run)["loss"]["count"] == 1000
    assert series(api, run)["total"] == 1000
    # the redone steps come back with other values: one entry per step, the last attempt's
    redone = metric_entries(1000, 1200, keys=("loss", "accuracy")).replace(b"loss: ", b"loss: 1")
    assert append(api, path, len(kept), redone).status_code == 200
    assert api.get(path).content == kept + redone
    points = series(api, run)
    assert points["total"] == 1200 and points["x"] == list(range(1200))
    loss = summaries(api, run)["loss"]
    assert loss["count"] == 1200 and loss["last_step"] == 1199 and loss["max"] > 10


def test_switched_off(tmp_path) -> None:
    server = ServerProcess(tmp_path, env={"EM_SERVER_APPEND": "0"})
    name, key = server.add_user("plain")
    server.start()
    try:
        api = Api(server.base_url, key, name)
        assert api.http.get(api.base + "/apis/v1/capabilities").json()["append"] is False
        folder = api.folder()
        api.node(folder, "r", "Run")
        assert append(api, f"{folder}/r/metrics/train.yaml", 0, b"x").status_code == 404
    finally:
        server.stop()


def test_concurrent_appends_at_one_offset_one_wins(api: Api, run: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = f"{run}/metrics/train.yaml"
    assert append(api, path, 0, b"base\n").status_code == 200
    pieces = [f"piece {i}\n".encode() * 50 for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda p: append(Api(api.base, api.key, api.user), path, 5, p), pieces))
    won = [p for p, r in zip(pieces, replies) if r.status_code == 200]
    assert len(won) == 1 and sorted(r.status_code for r in replies) == [200] + [409] * 7
    assert api.get(path).content == b"base\n" + won[0]
    (listed,) = [o for o in api.ls(run) if o["path"] == "/metrics/train.yaml"]
    assert listed["size_bytes"] == 5 + len(won[0])


def test_run_detail_lists_resume_points(api: Api, run: str) -> None:
    """The run page's resume markers come from metadata.yaml's segments; junk is left out."""
    meta = (b"kind: Run\nname: r\nstatus: Running\nsegments:\n"
            b"- {resumedAt: 1000, timestamp: '2026-12-06T23:01:02+00:00', reason: preempted, previousStatus: Error}\n"
            b"- {resumedAt: yes, reason: bool step}\n- just text\n"
            b"- {resumedAt: 1500, reason: second, cutting: true}\n")
    assert api.put(f"{run}/metadata.yaml", meta).status_code == 200
    node = api.request("GET", "/apis/v1/nodes/info", params={"node": run}).json()["id"]
    detail = api.request("GET", f"/api/ui/v1/runs/{node}").json()
    assert detail["segments"] == [
        {"step": 1000, "time": "2026-12-06T23:01:02+00:00", "reason": "preempted",
         "previous_status": "Error", "cutting": False},
        {"step": 1500, "time": "", "reason": "second", "previous_status": "", "cutting": True}]
