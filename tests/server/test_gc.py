"""``em server gc``: abandoned multipart uploads and blobs no row refers to are deleted once older
than ``--older-than``; referenced blobs, fresh orphans, open uploads and files that are not the
server's blobs stay; ``--dry-run`` deletes nothing. On SQLite + a blob folder (the command as a
subprocess, next to a serving server, files aged with ``os.utime``) and on PostgreSQL + moto S3
(``collect_garbage`` with a ``now`` 25 hours ahead, since S3 times cannot be set)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from support.em_server_process import ServerProcess
from support.server_api import Api, metric_entries
from sqlalchemy import update
from support.team_services import needs_pg

from t9k_em_server import cli
from t9k_em_server.config import ServerConfig
from t9k_em_server.gc import SERVER_BLOB_KEY, collect_garbage
from t9k_em_server.metadata_store import MultipartUpload, utcnow
from t9k_em_server.stores import Stores
from t9k_em_server.uploads import new_blob_key

pytestmark = pytest.mark.timeout(300)

DAY = timedelta(hours=24)


def complete(api: Api, path: str, upload: str, etags: list[str]) -> int:
    return api.request("POST", f"/apis/v1/objects/multipart/{upload}", params={"path": path},
                       json={"parts": [{"etag": e, "partNumber": n} for n, e in enumerate(etags, 1)]}
                       ).status_code


def fill(api: Api) -> tuple[dict[str, bytes], tuple[str, str], tuple[str, str, list[str]]]:
    """Objects of every kind (small, overwritten, metric series, multipart), one multipart upload
    to abandon (2 parts, 1000 bytes) and one left open. Returns {path: bytes}, (abandoned upload
    id, path), (open upload id, path, etags)."""
    run = api.folder() + "/r"
    api.node(run.rsplit("/", 1)[0], "r", "Run")
    contents = {f"{run}/a.txt": b"alpha", f"{run}/b.bin": os.urandom(3000),
                f"{run}/metrics/train.yaml": metric_entries(0, 50)}
    for path, data in contents.items():
        assert api.put(path, data).status_code == 200
    contents[f"{run}/a.txt"] = b"alpha, overwritten"
    assert api.put(f"{run}/a.txt", contents[f"{run}/a.txt"]).status_code == 200
    parts = [os.urandom(1000), os.urandom(10)]
    upload, etags = api.start_multipart(f"{run}/big.bin", parts)
    assert complete(api, f"{run}/big.bin", upload, etags) == 200
    contents[f"{run}/big.bin"] = b"".join(parts)
    abandoned, _ = api.start_multipart(f"{run}/old.bin", [b"x" * 700, b"y" * 300])
    pending, pending_etags = api.start_multipart(f"{run}/new.bin", [b"fresh part"])
    return contents, (abandoned, f"{run}/old.bin"), (pending, f"{run}/new.bin", pending_etags)


def blob_keys_settled(stores: Stores) -> set[str]:
    """The store's keys once they are exactly the referenced ones (the server drops replaced
    and completed-part blobs after its reply)."""
    deadline = time.monotonic() + 15
    while True:
        listed, referenced = {b.key for b in stores.blobs.list_blobs()}, stores.meta.blob_keys()
        if listed == referenced or time.monotonic() > deadline:
            assert listed == referenced
            return listed
        time.sleep(0.05)


def plant(stores: Stores, kind: str, data: bytes) -> str:
    """A blob no row refers to, as a killed process leaves it."""
    key = new_blob_key(kind)
    writer = stores.blobs.open_writer(key)
    writer.write(data)
    writer.commit()
    return key


def check_served(api: Api, contents: dict[str, bytes]) -> None:
    for path, data in contents.items():
        reply = api.get(path)
        assert reply.status_code == 200 and reply.content == data, path


def gc_command(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "t9k_em_server", "gc", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_server_keys_match_the_collectors_pattern():
    assert SERVER_BLOB_KEY.fullmatch(new_blob_key()) and SERVER_BLOB_KEY.fullmatch(new_blob_key("parts"))
    key = new_blob_key()
    assert not SERVER_BLOB_KEY.fullmatch(key.replace("/", "/0", 1))
    assert not SERVER_BLOB_KEY.fullmatch(key + ".db")
    assert cli.main(["gc", "--older-than", "-1"]) == 2


def test_gc_command_on_sqlite_and_a_folder_while_a_server_serves(tmp_path):
    server = ServerProcess(tmp_path / "srv")
    name, key = server.add_user()
    server.start()
    stores = Stores.open(ServerConfig(data_dir=server.data_dir))
    try:
        api = Api(server.base_url, key, name)
        contents, (abandoned, abandoned_path), (pending, pending_path, pending_etags) = fill(api)
        abandoned_parts = {blob for _, blob, _, _ in stores.meta.list_parts(abandoned)}
        referenced = blob_keys_settled(stores) - abandoned_parts
        old = [plant(stores, "objects", os.urandom(1234)), plant(stores, "parts", os.urandom(100))]
        root = stores.blobs.root  # type: ignore[attr-defined]
        foreign = [root / "notes.txt", root / "objects" / "zz" / "not-a-key"]
        for path in foreign:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"not the server's")
        two_days_ago = time.time() - 2 * DAY.total_seconds()
        for blob in stores.blobs.list_blobs():  # every blob so far, referenced or not, is old
            os.utime(root / blob.key, (two_days_ago, two_days_ago))
        fresh = plant(stores, "objects", b"just written")
        with stores.meta.engine.begin() as conn:
            conn.execute(update(MultipartUpload).where(MultipartUpload.id == abandoned)
                         .values(created_at=utcnow() - 2 * DAY))
        before = {(b.key, b.size, b.modified) for b in stores.blobs.list_blobs()}

        out = gc_command("--data-dir", str(server.data_dir), "--dry-run")
        assert "would delete 1 abandoned multipart upload(s): 2 part blob(s), 1000 bytes" in out
        assert "would delete 2 unreferenced blob(s): 1334 bytes" in out
        assert {(b.key, b.size, b.modified) for b in stores.blobs.list_blobs()} == before
        assert stores.meta.get_multipart(abandoned) is not None

        run = next(iter(contents)).rsplit("/", 1)[0]
        more = {f"{run}/more/f{i}.bin": os.urandom(2000) for i in range(20)}
        with ThreadPoolExecutor(1) as pool:  # uploads while the collector runs: all untouched
            uploads = pool.submit(lambda: [api.put(p, d).status_code for p, d in more.items()])
            out = gc_command("--data-dir", str(server.data_dir))
            assert uploads.result() == [200] * len(more)
        assert "deleted 1 abandoned multipart upload(s): 2 part blob(s), 1000 bytes" in out
        assert "deleted 2 unreferenced blob(s): 1334 bytes" in out

        left = {b.key for b in stores.blobs.list_blobs()}
        assert referenced | {fresh} <= left
        assert not (set(old) | abandoned_parts) & left
        assert all(path.read_bytes() == b"not the server's" for path in foreign)
        check_served(api, {**contents, **more})
        assert stores.meta.get_multipart(abandoned) is None
        assert complete(api, abandoned_path, abandoned, ["0" * 32, "0" * 32]) == 404
        assert complete(api, pending_path, pending, pending_etags) == 200
        assert api.get(pending_path).content == b"fresh part"
        assert "deleted 0 unreferenced blob(s): 0 bytes" in gc_command("--data-dir", str(server.data_dir))
    finally:
        stores.close()
        server.stop()


@needs_pg
def test_gc_on_postgresql_and_s3(tmp_path, pg_database, s3_env, monkeypatch):  # noqa: F811
    for name, value in s3_env.items():
        monkeypatch.setenv(name, value)
    blob_url = f"s3://em-team/gc-{uuid.uuid4().hex[:8]}"
    server = ServerProcess(tmp_path, db=pg_database, blob_store=blob_url, env=s3_env)
    name, key = server.add_user()
    server.start()
    stores = Stores.open(ServerConfig(db_url=pg_database, blob_url=blob_url))
    try:
        api = Api(server.base_url, key, name)
        contents, (abandoned, abandoned_path), (pending, _, _) = fill(api)
        abandoned_parts = {blob for _, blob, _, _ in stores.meta.list_parts(abandoned)}
        open_parts = {blob for _, blob, _, _ in stores.meta.list_parts(pending)}
        referenced = blob_keys_settled(stores) - abandoned_parts - open_parts
        old = [plant(stores, "objects", os.urandom(1234)), plant(stores, "parts", os.urandom(100))]
        s3 = stores.blobs.s3  # type: ignore[attr-defined]
        foreign = stores.blobs.prefix + "notes.txt"  # type: ignore[attr-defined]
        s3.put_object(Bucket="em-team", Key=foreign, Body=b"not the server's")

        nothing = collect_garbage(stores, DAY)  # everything is fresh now
        assert (nothing.uploads, nothing.orphans) == (0, 0)
        before = {(b.key, b.modified) for b in stores.blobs.list_blobs()}
        later = utcnow() + DAY + timedelta(hours=1)  # both uploads are abandoned by then
        dry = collect_garbage(stores, DAY, dry_run=True, now=later)
        assert (dry.uploads, dry.part_blobs, dry.part_bytes) == (2, 3, 1010)
        assert (dry.orphans, dry.orphan_bytes) == (2, 1334)
        assert {(b.key, b.modified) for b in stores.blobs.list_blobs()} == before

        assert collect_garbage(stores, DAY, now=later) == dry
        assert {b.key for b in stores.blobs.list_blobs()} == referenced | {"notes.txt"}
        check_served(api, contents)
        assert complete(api, abandoned_path, abandoned, ["0" * 32]) == 404
        assert s3.get_object(Bucket="em-team", Key=foreign)["Body"].read() == b"not the server's"

        out = gc_command("--db", pg_database, "--blob-store", blob_url, "--older-than", "0",
                         env={**os.environ, **s3_env})
        assert "deleted 0 abandoned multipart upload(s)" in out and "deleted 0 unreferenced" in out
        check_served(api, contents)
    finally:
        stores.close()
        server.stop()
