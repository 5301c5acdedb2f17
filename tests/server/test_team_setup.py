"""Team setup: two server processes on one PostgreSQL database and one S3 bucket serve one
consistent state. PostgreSQL is the local server (127.0.0.1:5432, a database created and dropped
per run); S3 is a real S3-compatible server, ``moto_server``, started on a free loopback port.
Also: Alembic migrations (empty database → head, schema equals the models, data survives restarts).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from support.server_api import Api
from support.em_server_process import ServerProcess
from support.team_services import fresh_pg_database, needs_pg

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def team(tmp_path_factory, pg_database, s3_env):
    """Two servers (A, B) on one database and one bucket, and a user's Api for each."""
    servers = [ServerProcess(tmp_path_factory.mktemp(f"team{i}"), db=pg_database,
                             blob_store="s3://em-team/blobs", env=s3_env) for i in range(2)]
    name, key = servers[0].add_user("teamuser")
    for server in servers:
        server.start()
    yield servers, [Api(s.base_url, key, name) for s in servers]
    for server in servers:
        server.stop()


@needs_pg
def test_two_processes_share_one_state(team, s3_env):
    servers, (a, b) = team
    root = a.folder()
    assert b.request("GET", "/apis/v1/nodes/info", params={"node": root}).status_code == 200
    run = b.node(root, "r", "Run")
    assert a.request("GET", "/apis/v1/nodes/info", params={"node": f"{root}/r"}).json()["id"] == run
    assert b.create(root, "r", "Run").status_code == 400
    assert a.create(root, "r", "Run").status_code == 400
    assert a.put(f"{root}/r/x.txt", b"from A").status_code == 200
    assert b.get(f"{root}/r/x.txt").content == b"from A"
    assert b.put(f"{root}/r/x.txt", b"from B").status_code == 200
    assert a.get(f"{root}/r/x.txt").content == b"from B"
    # multipart with parts sent to alternating processes
    path = f"{root}/r/big.bin"
    chunks = [os.urandom(6 << 20), os.urandom(6 << 20), os.urandom(1000)]
    upload = a.request("POST", "/apis/v1/objects/multipart", params={"path": path}).json()["uploadId"]
    etags = []
    for n, chunk in enumerate(chunks, 1):
        api = (a, b)[n % 2]
        reply = api.request("PUT", f"/apis/v1/objects/multipart/{upload}", params={"path": path, "partNumber": n},
                            files={"content": ("content", chunk)})
        assert reply.status_code == 200, reply.text
        etags.append(reply.json()["eTag"])
    done = b.request("POST", f"/apis/v1/objects/multipart/{upload}", params={"path": path},
                     json={"parts": [{"etag": e, "partNumber": n} for n, e in enumerate(etags, 1)]})
    assert done.status_code == 200, done.text
    assert hashlib.md5(a.get(path).content).hexdigest() == hashlib.md5(b"".join(chunks)).hexdigest()
    assert sorted(i["path"] for i in b.ls(f"{root}/r")) == ["/big.bin", "/x.txt"]
    # lineage written through A is read through B
    a.request("POST", "/apis/v1/graphs", json={"graphs": [{"from": "asset:1", "to": run}]})
    assert b.request("GET", "/apis/v1/graphs", params={"current": run}).json()["in"] == [{"id": "asset:1"}]
    # the bytes live in the bucket, not on either server's disk
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="em-team", Prefix="blobs/objects/").get("Contents", [])]
    assert len(keys) >= 2
    assert not any((s.data_dir / "blobs").exists() for s in servers)
    # delete through B; A sees it gone; the blobs leave the bucket when gc frees the trash
    assert b.request("DELETE", "/apis/v1/nodes", json={"node": f"{root}/r"}).status_code == 200
    assert a.get(f"{root}/r/x.txt").status_code == 404
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "t9k_em_server", "gc", "--db", servers[0].db,
                           "--blob-store", "s3://em-team/blobs", "--trash-days", "0"],
                          env={**os.environ, **s3_env}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "deleted 1 trashed node(s)" in done.stdout, done.stderr
    left = [o["Key"] for o in s3.list_objects_v2(Bucket="em-team", Prefix="blobs/").get("Contents", [])]
    assert not set(keys) & set(left)


@needs_pg
def test_twenty_clients_on_two_processes(team):
    servers, apis = team
    root = apis[0].folder()

    def client(i):
        api = Api(apis[i % 2].base, apis[i % 2].key, apis[i % 2].user)
        codes = [api.create(root, "contested", "Run").status_code]
        api.node(root, f"run{i}", "Run")
        for j in range(3):
            codes.append(api.put(f"{root}/run{i}/m{j}.yaml", f"{i}-{j}".encode()).status_code)
        return codes

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(client, range(20)))
    contested = [r[0] for r in results]
    assert contested.count(200) == 1 and contested.count(400) == 19, contested
    assert all(code == 200 for r in results for code in r[1:])
    children = apis[1].request("GET", "/apis/v1/nodes", params={"parent": root, "size": 100}).json()
    assert children["pagination"]["total"] == 21
    for i in range(20):
        assert apis[(i + 1) % 2].get(f"{root}/run{i}/m2.yaml").content == f"{i}-2".encode()


@needs_pg
def test_state_survives_restart(team):
    """A process started afresh on the same database and bucket serves what was stored before."""
    servers, (a, b) = team
    root = a.folder()
    a.node(root, "keep", "Artifact")
    assert a.put(f"{root}/keep/w.bin", b"kept").status_code == 200
    servers[1].stop()
    servers[1].start()
    b = Api(servers[1].base_url, b.key, b.user)
    assert b.get(f"{root}/keep/w.bin").content == b"kept"
    assert [i["path"] for i in b.ls(f"{root}/keep")] == ["/w.bin"]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=needs_pg)])
def test_migrations_from_empty_database(backend, tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from t9k_em_server.metadata_store import Base, MetadataStore
    from t9k_em_server.migrations import HEAD, alembic_config, current_revision

    from t9k_em_server.config import normalise_db_url

    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / 'm.db'}"
        else:  # a database of its own, not the team fixture's
            url = normalise_db_url(stack.enter_context(fresh_pg_database()))
        assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD
        store = MetadataStore(url)
        assert current_revision(store.engine) is None
        store.upgrade()
        assert current_revision(store.engine) == HEAD
        with store.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        store.upgrade()  # idempotent
        store.close()
