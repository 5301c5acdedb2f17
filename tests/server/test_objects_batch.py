"""``POST /apis/v1/objects/batch`` (our extension of the AIStore API), over raw HTTP: a tar of
small files, each verified (size by the tar framing, MD5 by the PAX header ``T9K.md5``) and the
whole batch committed at once; any bad member refuses the whole batch and nothing of it shows."""
from __future__ import annotations

import hashlib
import io
import tarfile

import pytest
from support.server_api import Api, post_batch, tar_of

pytestmark = pytest.mark.timeout(120)


def objects_of(api: Api, node: str) -> dict[str, str]:
    reply = api.request("GET", "/apis/v1/objects/ls", params={"path": node, "size": 1000})
    assert reply.status_code == 200, reply.text
    return {o["path"]: o["md5"] for o in reply.json()["data"]}


@pytest.fixture
def run(api: Api) -> str:
    folder = api.folder()
    api.node(folder, "batchrun", "Run")
    return f"{folder}/batchrun"


def test_batch_commits_every_member(api: Api, run: str) -> None:
    files = {f"d{i % 3}/f{i}.bin": bytes([i]) * (100 + i) for i in range(50)}
    files["x//y/./z.txt"] = b"normalised key"
    files["empty"] = b""
    reply = post_batch(api, run, tar_of(files))
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["objects"]) == 52
    listed = objects_of(api, run)
    assert listed["/x/y/z.txt"] == hashlib.md5(b"normalised key").hexdigest()
    assert listed["/empty"] == hashlib.md5(b"").hexdigest()
    assert len(listed) == 52
    got = api.request("GET", "/apis/v1/objects", params={"path": f"{run}/d1/f7.bin"})
    assert got.status_code == 200 and got.content == bytes([7]) * 107


@pytest.mark.parametrize("bad_name, problem", [
    ("../escape.txt", "'..' not allowed"),
    ("/abs.txt", "absolute keys not allowed"),
    ("a\\b.txt", "backslash not allowed"),
])
def test_bad_key_refuses_the_whole_batch(api: Api, run: str, bad_name: str, problem: str) -> None:
    assert post_batch(api, run, tar_of({"keep.txt": b"old"})).status_code == 200
    reply = post_batch(api, run, tar_of({"keep.txt": b"new", "good.txt": b"g", bad_name: b"x"}))
    assert reply.status_code == 400 and problem in reply.text, reply.text
    assert objects_of(api, run) == {"/keep.txt": hashlib.md5(b"old").hexdigest()}


def test_md5_mismatch_refuses_the_whole_batch(api: Api, run: str) -> None:
    body = tar_of({"a.txt": b"aaa", "b.txt": b"bbb"}, md5s={"b.txt": hashlib.md5(b"BBB").hexdigest()})
    reply = post_batch(api, run, body)
    assert reply.status_code == 400 and "'b.txt'" in reply.text and "md5 mismatch" in reply.text
    assert objects_of(api, run) == {}


def test_malformed_batches_are_refused(api: Api, run: str) -> None:
    body = tar_of({"a.txt": b"a" * 5000})
    assert post_batch(api, run, body[:2000]).status_code == 400          # truncated
    no_md5 = io.BytesIO()
    with tarfile.open(fileobj=no_md5, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("a.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"a"))
    reply = post_batch(api, run, no_md5.getvalue())
    assert reply.status_code == 400 and "T9K.md5" in reply.text
    twice = tar_of({"a.txt": b"1", "./a.txt": b"2"})
    assert post_batch(api, run, twice).status_code == 400
    assert objects_of(api, run) == {}


def test_batch_target_must_be_the_users_run_or_artifact(api: Api, fresh_api: Api, run: str) -> None:
    foreign = post_batch(fresh_api, run, tar_of({"a": b"a"}))
    assert (foreign.status_code, foreign.text) == (404, f"node not found [{run}]")  # as if missing
    folder = run.rsplit("/", 1)[0]
    assert post_batch(api, folder, tar_of({"a": b"a"})).status_code == 400
    missing = post_batch(api, f"{folder}/nope", tar_of({"a": b"a"}))
    assert missing.status_code == 404 and f"[{folder}/nope]" in missing.text
