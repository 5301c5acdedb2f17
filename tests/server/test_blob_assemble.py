"""``BlobStore.assemble`` (multipart completion): the parts' bytes land in one new blob, every byte
is fed to the hash in order, and nothing is visible before ``commit``. The local store copies in
the kernel (``os.copy_file_range``, with a user-space fallback); the S3 store copies inside S3
(UploadPartCopy, against a real ``moto_server``) when S3 accepts the parts' sizes."""
from __future__ import annotations

import errno
import hashlib
import os
import time
import uuid

import pytest

from t9k_em_server.blob_store import LocalBlobStore, PartsChanged, S3BlobStore
from t9k_em_server.uploads import Digest

pytestmark = pytest.mark.timeout(120)

MiB = 1 << 20


def put_parts(store, sizes: list[int]) -> tuple[list[tuple[str, int]], bytes]:
    """Blobs of random bytes of these sizes; returns ((key, size) of each, their concatenation)."""
    parts, data = [], []
    for n, size in enumerate(sizes):
        content = os.urandom(size)
        writer = store.open_writer(f"parts/00/p{n}")
        writer.write(content)
        writer.commit()
        parts.append((f"parts/00/p{n}", size))
        data.append(content)
    return parts, b"".join(data)


def assemble_and_check(store, parts: list[tuple[str, int]], expected: bytes) -> None:
    fed = hashlib.md5()
    writer = store.assemble("objects/00/whole", parts, fed.update)
    assert not store.exists("objects/00/whole")  # nothing visible before the commit
    writer.commit()
    assert fed.hexdigest() == hashlib.md5(expected).hexdigest()
    assert store.read_bytes("objects/00/whole") == expected


def test_local_assemble_copies_in_the_kernel(tmp_path, monkeypatch):
    store = LocalBlobStore(tmp_path)
    parts, expected = put_parts(store, [3 * MiB + 1, 0, 9 * MiB + 7, 100])
    calls = []
    real = os.copy_file_range

    def spy(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(os, "copy_file_range", spy)
    assemble_and_check(store, parts, expected)
    assert calls, "the parts were not copied with os.copy_file_range"
    assert not list(store.tmp.iterdir())


def test_local_assemble_feeds_the_prefix_md5_of_a_series(tmp_path):
    """The MD5 up to a series cache's indexed offset is taken from the mmap windows too."""
    store = LocalBlobStore(tmp_path)
    parts, expected = put_parts(store, [9 * MiB, 4 * MiB + 1])
    prefix_at = 8 * MiB + 3  # inside the second window of the first part
    digest = Digest(len(expected), prefix_at)
    store.assemble("objects/00/whole", parts, digest.update).commit()
    assert digest.prefix_md5 == hashlib.md5(expected[:prefix_at]).hexdigest()
    assert (digest.size, digest.md5.hexdigest()) == (len(expected), hashlib.md5(expected).hexdigest())


@pytest.mark.parametrize("how", ["missing", "refused"])
def test_local_assemble_copies_in_user_space_without_kernel_copy(tmp_path, monkeypatch, how):
    store = LocalBlobStore(tmp_path)
    parts, expected = put_parts(store, [2 * MiB + 3, 5])
    if how == "missing":  # not Linux
        monkeypatch.delattr(os, "copy_file_range")
    else:  # e.g. a kernel or file system without it
        def refuse(*args):
            raise OSError(errno.EXDEV, "cross-device")
        monkeypatch.setattr(os, "copy_file_range", refuse)
    assemble_and_check(store, parts, expected)


def test_local_assemble_refuses_parts_of_another_size(tmp_path):
    store = LocalBlobStore(tmp_path)
    parts, _ = put_parts(store, [MiB, 10])
    with pytest.raises(PartsChanged):
        store.assemble("objects/00/whole", [parts[0], (parts[1][0], 11)], hashlib.md5().update)
    assert not store.exists("objects/00/whole") and not list(store.tmp.iterdir())


def test_local_assemble_refuses_a_part_that_is_gone(tmp_path):
    store = LocalBlobStore(tmp_path)
    parts, _ = put_parts(store, [MiB, 10])
    store.delete([parts[1][0]])
    with pytest.raises(PartsChanged):
        store.assemble("objects/00/whole", parts, hashlib.md5().update)
    assert not store.exists("objects/00/whole") and not list(store.tmp.iterdir())


def test_local_assemble_stops_when_the_hash_refuses(tmp_path):
    store = LocalBlobStore(tmp_path)
    parts, _ = put_parts(store, [MiB, MiB])

    def refuse(data) -> None:
        raise ValueError("too many bytes")

    with pytest.raises(ValueError):
        store.assemble("objects/00/whole", parts, refuse)
    assert not store.exists("objects/00/whole") and not list(store.tmp.iterdir())


@pytest.fixture
def s3_store(s3_env, monkeypatch):  # noqa: F811 - the fixture imported above
    for name, value in s3_env.items():
        monkeypatch.setenv(name, value)
    store = S3BlobStore(f"s3://em-team/assemble-{uuid.uuid4().hex}")
    copies = []
    store.s3.meta.events.register("before-call.s3.UploadPartCopy",
                                  lambda **kwargs: copies.append(kwargs))
    return store, copies


@pytest.mark.parametrize("sizes, copied", [
    ([5 * MiB, 6 * MiB + 1, 10], True),   # S3 takes these parts as they are: copied inside S3
    ([7 * MiB], True),
    ([MiB, MiB, 10], False),              # parts under 5 MiB but the last: through the server
    ([6 * MiB, 0], False),                # an empty last part: through the server
])
def test_s3_assemble(s3_store, sizes, copied):
    store, copies = s3_store
    parts, expected = put_parts(store, sizes)
    assemble_and_check(store, parts, expected)
    assert len(copies) == (len(parts) if copied else 0)


def test_completion_over_http_assembles_and_then_drops_the_parts(api, em_server):
    """Through a real server (local store): the object is the parts' bytes with their MD5, and
    the part blobs go away once the reply is sent."""
    root = api.folder()
    api.node(root, "a", "Artifact")
    path = f"{root}/a/w.bin"
    chunks = [os.urandom(3 * MiB), os.urandom(3 * MiB), os.urandom(777)]
    parts_dir = em_server.process.data_dir / "blobs" / "parts"

    def part_files() -> set:
        return {p for p in parts_dir.rglob("*") if p.is_file()}

    before = part_files()
    upload = api.request("POST", "/apis/v1/objects/multipart", params={"path": path}).json()["uploadId"]
    etags = [api.request("PUT", f"/apis/v1/objects/multipart/{upload}", params={"path": path, "partNumber": n},
                         files={"content": ("content", chunk)}).json()["eTag"]
             for n, chunk in enumerate(chunks, 1)]
    ours = part_files() - before
    assert len(ours) == 3
    done = api.request("POST", f"/apis/v1/objects/multipart/{upload}", params={"path": path},
                       json={"parts": [{"etag": e, "partNumber": n} for n, e in enumerate(etags, 1)]})
    assert done.status_code == 200, done.text
    assert done.json()["md5"] == hashlib.md5(b"".join(chunks)).hexdigest()
    assert api.get(path).content == b"".join(chunks)
    deadline = time.monotonic() + 10
    while ours & part_files() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ours & part_files()
