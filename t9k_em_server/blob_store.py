"""The blob store: bytes by key, in a local folder or an S3 bucket, chosen by URL.

Writers stream: ``open_writer`` gives an object with ``write``/``commit``/``abort``. Bytes become
readable under the key only at ``commit`` (local: a temp file renamed into place; S3: a multipart
upload completed, or one PUT, after the last byte), so an interrupted upload never shows up.
Keys are never reused for other content by the server (each object version gets a fresh key).

``assemble`` concatenates blobs (the parts of a multipart upload) into a new pending blob while
feeding every byte, in order, to a hash: the local store copies in the kernel
(``os.copy_file_range``) and fsyncs in one thread while another hashes the parts through ``mmap``
windows; the S3 store copies server-side (UploadPartCopy) while it reads the parts for the hash.
Either way the server reads the bytes once, for the hash, and writes none of them itself.

``list_blobs`` lists every committed blob with its size and modification time (for the garbage
collector, ``gc.py``).

``extend`` and ``copy_prefix`` serve our append/truncate extension (``routers/appends.py``). A
local blob is extended in place: the new key is a second name (hard link) of the same file,
bytes are written past the old size under an exclusive ``flock`` of the file (which serialises
every extension of that content, across processes), and the database row is switched while the
lock is held. So a local blob may hold bytes past the size its object row records (a concurrent
or failed extension): object readers pass ``end`` (the recorded size). S3 has no append: an
extension is a new object made by a multipart upload whose first parts are copied inside S3
(``UploadPartCopy`` of the old object's byte ranges) and whose last part is the new bytes;
an old object under 5 MiB (S3's smallest non-last part) is read and re-sent instead.
"""
from __future__ import annotations

import errno
import fcntl
import io
import mmap
import os
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

CHUNK = 1 << 20                 # read size for downloads
S3_PART = 8 << 20               # buffered S3 multipart part size (>= S3's 5 MiB minimum)
STALE_TEMP_SECONDS = 24 * 3600  # temp files older than this are leftovers of killed processes
FSYNC_THREADS = 16              # concurrent fsyncs when committing a batch of local blobs
HASH_WINDOW = 8 << 20           # mmap window when hashing a local blob (bounds the RSS it adds)
S3_MIN_COPY_PART = 5 << 20      # S3's minimum size of a multipart part but the last
S3_MAX_COPY_PART = 5 << 30      # S3's maximum size of one UploadPartCopy
S3_COPY_THREADS = 8             # concurrent UploadPartCopy requests
#: errors of ``os.copy_file_range`` that mean "not here": copy through user space instead
NO_KERNEL_COPY = {errno.ENOSYS, errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}

T = TypeVar("T")
Feed = Callable[[bytes | memoryview], None]
"""Receives a blob's bytes in order (e.g. a hash's ``update``); may raise to stop."""


@dataclass(frozen=True)
class BlobInfo:
    """A committed blob as listed by ``BlobStore.list_blobs``."""

    key: str
    size: int
    modified: datetime  #: last modification, timezone-aware (UTC)


class PartsChanged(Exception):
    """The blobs being assembled do not hold the sizes they were recorded with."""


class BlobWriter(ABC):
    """A pending blob: write bytes, then commit (visible) or abort (gone)."""

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    def commit(self) -> None:
        """Make the bytes durable, then visible under the key."""
        self.make_durable()
        self.publish()

    def write_and_commit(self, data: bytes) -> None:
        """Write the last bytes and commit; on an error abort (and raise it)."""
        try:
            self.write(data)
            self.commit()
        except BaseException:
            self.abort()
            raise

    @abstractmethod
    def make_durable(self) -> None:
        """Get the bytes onto stable storage (not yet visible)."""

    @abstractmethod
    def publish(self) -> None:
        """Make durable bytes visible under the key (atomically)."""

    @abstractmethod
    def abort(self) -> None: ...


class BlobStore(ABC):
    """Bytes by key. Implementations: LocalBlobStore, S3BlobStore."""

    @abstractmethod
    def open_writer(self, key: str) -> BlobWriter: ...

    def commit_all(self, writers: list[BlobWriter]) -> None:
        """Commit many blobs (a batch upload); stores may overlap their durability waits."""
        for writer in writers:
            writer.commit()

    @abstractmethod
    def iter_bytes(self, key: str, offset: int = 0, chunk_size: int = CHUNK,
                   end: int | None = None) -> Iterator[bytes]:
        """The blob's bytes from ``offset`` to ``end`` (default: its end), in chunks (streamed,
        never all in memory). Readers of an object pass its recorded size as ``end``."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Delete blobs; missing ones are ignored."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every committed blob (pending uploads excluded), in no particular order."""

    def check(self) -> None:
        """Raise if the store cannot be used (called once at server start)."""

    def assemble(self, key: str, parts: list[tuple[str, int]], feed: Feed) -> BlobWriter:
        """A pending blob ``key`` holding the blobs ``parts`` (``(key, recorded size)``) one after
        the other; every byte goes to ``feed`` first, in order. The caller commits or aborts it;
        on an error it is aborted here. This version streams the bytes through the server."""
        writer = self.open_writer(key)
        try:
            for part, _ in parts:
                for chunk in self.iter_bytes(part):
                    feed(chunk)
                    writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        return writer

    def read_bytes(self, key: str, offset: int = 0, end: int | None = None) -> bytes:
        """The blob from ``offset`` to ``end`` (for small blobs only)."""
        return b"".join(self.iter_bytes(key, offset, end=end))

    @abstractmethod
    def copy_prefix(self, key: str, size: int, new_key: str) -> BlobWriter:
        """A pending blob ``new_key`` holding the first ``size`` bytes of blob ``key`` (copied
        inside the store where it can); the caller may write more, then commits or aborts it."""

    def extend(self, key: str, size: int, data: bytes, new_key: str,
               check: Callable[[], None], commit: Callable[[], T]) -> T:
        """Make ``new_key`` hold the first ``size`` bytes of ``key`` followed by ``data``, and
        return ``commit()``'s answer. ``check()`` runs first (it raises to refuse), ``commit()``
        once the new blob is durable (it switches the object's row; if it raises, the new blob
        is dropped). ``key`` stays readable up to ``size``. This version copies (S3)."""
        check()
        self.copy_prefix(key, size, new_key).write_and_commit(data)
        try:
            return commit()
        except BaseException:
            self.delete([new_key])
            raise

    def describe(self) -> str:
        return type(self).__name__


def _copy_while_hashing(writer: BlobWriter, copy: Callable[[], None],
                        hash_parts: Callable[[], None]) -> BlobWriter:
    """Run ``copy`` (fills ``writer``) in a worker thread while ``hash_parts`` runs here; abort
    ``writer`` if either fails."""
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="blob-assemble") as pool:
            copied = pool.submit(copy)
            hash_parts()  # on an error, leaving the pool waits for the copy before the abort
            copied.result()
    except BaseException:
        writer.abort()
        raise
    return writer


def _feed_file(path: Path, feed: Feed) -> None:
    """Feed a file's bytes through read-only ``mmap`` windows (no copy into Python objects)."""
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        for offset in range(0, size, HASH_WINDOW):
            with mmap.mmap(f.fileno(), min(HASH_WINDOW, size - offset), offset=offset,
                           access=mmap.ACCESS_READ) as window, memoryview(window) as view:
                feed(view)


class _LocalWriter(BlobWriter):
    def __init__(self, final: Path, tmp_dir: Path):
        self._final = final
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
        self._tmp = Path(name)
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._synced = False

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._synced = False

    def append_files(self, paths: list[Path], expected_bytes: int) -> None:
        """Append the files' bytes, copied in the kernel where it can, then fsync; raises
        PartsChanged unless that made ``expected_bytes``."""
        start = self._file.tell()
        for path in paths:
            with open(path, "rb", buffering=0) as src:
                self._append(src)
        if self._file.tell() - start != expected_bytes:
            raise PartsChanged(f"assembled {self._file.tell() - start} bytes, not {expected_bytes}")
        os.fsync(self._file.fileno())
        self._synced = True

    def _append(self, src: io.FileIO, length: int | None = None) -> None:
        """Copy ``length`` bytes (default: up to its end) of ``src`` from its position (both
        file positions advance)."""
        left = os.fstat(src.fileno()).st_size - src.tell() if length is None else length
        copy_file_range = getattr(os, "copy_file_range", None)  # Linux only
        if copy_file_range is not None:
            try:
                while left > 0 and (n := copy_file_range(src.fileno(), self._file.fileno(), left)):
                    left -= n
            except OSError as exc:
                if exc.errno not in NO_KERNEL_COPY:
                    raise
        while left > 0 and (chunk := src.read(min(CHUNK, left))):  # what the kernel did not copy
            self._file.write(chunk)
            left -= len(chunk)
        if left > 0:
            raise PartsChanged(f"{src.name} ended {left} bytes short")

    def append_prefix(self, path: Path, size: int) -> None:
        """Append the first ``size`` bytes of the file ``path``."""
        with open(path, "rb", buffering=0) as src:
            self._append(src, size)
        self._synced = False

    def make_durable(self) -> None:
        if not self._synced:
            os.fsync(self._file.fileno())
        self._file.close()

    def publish(self) -> None:
        try:
            os.replace(self._tmp, self._final)
        except FileNotFoundError:  # the first blob of its 2-hex-digit folder
            self._final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._tmp, self._final)

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._tmp.unlink(missing_ok=True)


class LocalBlobStore(BlobStore):
    """Blobs as files under a folder; pending uploads live in ``<root>/.tmp``."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.tmp = self.root / ".tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._drop_stale_temp_files()

    def _drop_stale_temp_files(self) -> None:
        cutoff = time.time() - STALE_TEMP_SECONDS
        for path in self.tmp.iterdir():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                pass

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"blob key escapes the store: {key!r}")
        return self.root.joinpath(*parts)

    def open_writer(self, key: str) -> BlobWriter:
        return _LocalWriter(self._path(key), self.tmp)

    def assemble(self, key: str, parts: list[tuple[str, int]], feed: Feed) -> BlobWriter:
        """Copy in the kernel and fsync (worker thread) while the parts are hashed here."""
        writer = _LocalWriter(self._path(key), self.tmp)
        paths = [self._path(part) for part, _ in parts]

        def hash_parts() -> None:
            for path in paths:
                _feed_file(path, feed)

        try:
            return _copy_while_hashing(
                writer, lambda: writer.append_files(paths, sum(size for _, size in parts)), hash_parts)
        except FileNotFoundError as exc:  # replaced by a new upload of that part meanwhile
            raise PartsChanged(f"part blob gone: {exc.filename}") from None

    def commit_all(self, writers: list[BlobWriter]) -> None:
        """fsync the blobs from several threads at once (the file system then groups their
        journal commits), then rename them into place."""
        if len(writers) < 2:
            return super().commit_all(writers)
        with ThreadPoolExecutor(min(FSYNC_THREADS, len(writers))) as pool:
            list(pool.map(BlobWriter.make_durable, writers))
        for writer in writers:
            writer.publish()

    def iter_bytes(self, key: str, offset: int = 0, chunk_size: int = CHUNK,
                   end: int | None = None) -> Iterator[bytes]:
        with open(self._path(key), "rb") as f:
            f.seek(offset)
            left = float("inf") if end is None else end - offset
            while left > 0 and (chunk := f.read(int(min(chunk_size, left)))):
                left -= len(chunk)
                yield chunk

    def copy_prefix(self, key: str, size: int, new_key: str) -> BlobWriter:
        writer = _LocalWriter(self._path(new_key), self.tmp)
        try:
            writer.append_prefix(self._path(key), size)
        except BaseException:
            writer.abort()
            raise
        return writer

    def extend(self, key: str, size: int, data: bytes, new_key: str,
               check: Callable[[], None], commit: Callable[[], T]) -> T:
        """In place, under an exclusive ``flock`` of the file held until ``commit()`` returned:
        the bytes past ``size`` (those of a failed extension) are cut, ``data`` written and
        fsynced, and ``new_key`` linked to the same file. A blob whose file is shorter than
        ``size`` raises ``PartsChanged``."""
        path, new_path = self._path(key), self._path(new_key)
        with open(path, "r+b", buffering=0) as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # released when the file closes
            check()
            length = os.fstat(f.fileno()).st_size
            if length < size:
                raise PartsChanged(f"blob {key} holds {length} bytes, not {size}")
            if length > size:
                os.ftruncate(f.fileno(), size)  # no committed version reaches past ``size``
            os.pwrite(f.fileno(), data, size)
            os.fsync(f.fileno())
            try:
                os.link(path, new_path)
            except FileNotFoundError:  # the first blob of its 2-hex-digit folder
                new_path.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, new_path)
            try:
                return commit()
            except BaseException:
                new_path.unlink(missing_ok=True)
                raise

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_blobs(self) -> Iterator[BlobInfo]:
        """Walk the folder, skipping the pending uploads in ``.tmp``."""
        for folder, dirs, files in os.walk(self.root):
            if folder == str(self.root):
                dirs[:] = [d for d in dirs if d != self.tmp.name]
            for name in files:
                path = os.path.join(folder, name)
                try:
                    stat = os.stat(path)
                except FileNotFoundError:  # deleted meanwhile
                    continue
                yield BlobInfo(Path(path).relative_to(self.root).as_posix(), stat.st_size,
                               datetime.fromtimestamp(stat.st_mtime, timezone.utc))

    def describe(self) -> str:
        return f"folder {self.root}"


class _S3Writer(BlobWriter):
    def __init__(self, client, bucket: str, key: str):  # type: ignore[no-untyped-def]
        self._s3, self._bucket, self._key = client, bucket, key
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict] = []

    def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= S3_PART:
            self._flush_part()

    def _start(self) -> str:
        if self._upload_id is None:
            self._upload_id = self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=self._key)["UploadId"]
        return self._upload_id

    def copy_parts(self, sources: list[tuple[str, str | None]]) -> None:
        """Make the objects ``sources`` (full key, byte range like ``bytes=0-99`` or None for
        all) the blob's parts, copied inside S3 (UploadPartCopy, several at once); each but the
        last must hold at least 5 MiB."""
        upload_id = self._start()

        def copy(numbered: tuple[int, tuple[str, str | None]]) -> dict:
            number, (source, byte_range) = numbered
            extra = {"CopySourceRange": byte_range} if byte_range else {}
            reply = self._s3.upload_part_copy(Bucket=self._bucket, Key=self._key,
                                              UploadId=upload_id, PartNumber=number,
                                              CopySource={"Bucket": self._bucket, "Key": source},
                                              **extra)
            return {"ETag": reply["CopyPartResult"]["ETag"], "PartNumber": number}

        with ThreadPoolExecutor(min(S3_COPY_THREADS, len(sources))) as pool:
            self._parts = list(pool.map(copy, enumerate(sources, 1)))

    def _flush_part(self) -> None:
        self._start()
        number = len(self._parts) + 1
        reply = self._s3.upload_part(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                                     PartNumber=number, Body=self._buffer)
        self._parts.append({"ETag": reply["ETag"], "PartNumber": number})
        self._buffer = bytearray()

    def make_durable(self) -> None:
        """S3 makes an object durable and visible in the same call: see ``publish``."""

    def publish(self) -> None:
        if self._upload_id is None:
            self._s3.put_object(Bucket=self._bucket, Key=self._key, Body=self._buffer)
            return
        if self._buffer:
            self._flush_part()
        self._s3.complete_multipart_upload(Bucket=self._bucket, Key=self._key,
                                           UploadId=self._upload_id,
                                           MultipartUpload={"Parts": self._parts})

    def abort(self) -> None:
        self._buffer.clear()
        if self._upload_id is not None:
            try:
                self._s3.abort_multipart_upload(Bucket=self._bucket, Key=self._key,
                                                UploadId=self._upload_id)
            except Exception:  # noqa: BLE001 - best effort; S3 lifecycle rules clean up the rest
                pass


class S3BlobStore(BlobStore):
    """Blobs in ``s3://bucket/prefix``. Endpoint and credentials come from the standard AWS
    environment (``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, …)."""

    def __init__(self, url: str):
        import boto3
        from botocore.config import Config

        rest = url[len("s3://"):]
        self.bucket, _, prefix = rest.partition("/")
        if not self.bucket:
            raise ValueError(f"no bucket in blob store URL {url!r}")
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        self.s3 = boto3.client("s3", endpoint_url=endpoint or None,
                               config=Config(retries={"max_attempts": 5, "mode": "standard"},
                                             max_pool_connections=50))
        self.url = url

    def _key(self, key: str) -> str:
        return self.prefix + key

    def open_writer(self, key: str) -> BlobWriter:
        return _S3Writer(self.s3, self.bucket, self._key(key))

    def assemble(self, key: str, parts: list[tuple[str, int]], feed: Feed) -> BlobWriter:
        """Copy inside S3 (UploadPartCopy) while the parts are read here for the hash; parts
        S3 cannot take as they are (under 5 MiB but the last, empty, over 5 GiB) go through here."""
        *sizes, last = [size for _, size in parts]
        if not (all(S3_MIN_COPY_PART <= size <= S3_MAX_COPY_PART for size in sizes)
                and 0 < last <= S3_MAX_COPY_PART):
            return super().assemble(key, parts, feed)
        writer = _S3Writer(self.s3, self.bucket, self._key(key))

        def hash_parts() -> None:
            for part, _ in parts:
                for chunk in self.iter_bytes(part):
                    feed(chunk)

        return _copy_while_hashing(
            writer, lambda: writer.copy_parts([(self._key(part), None) for part, _ in parts]),
            hash_parts)

    def copy_prefix(self, key: str, size: int, new_key: str) -> BlobWriter:
        """Byte ranges of ``key`` copied inside S3 as the first parts (in as few pieces of equal
        size as S3's 5 GiB part limit allows); under 5 MiB read and written through here."""
        writer = _S3Writer(self.s3, self.bucket, self._key(new_key))
        try:
            if size < S3_MIN_COPY_PART:
                for chunk in self.iter_bytes(key, end=size):
                    writer.write(chunk)
            else:
                pieces = -(-size // S3_MAX_COPY_PART)
                bounds = [size * i // pieces for i in range(pieces + 1)]
                writer.copy_parts([(self._key(key), f"bytes={a}-{b - 1}")
                                   for a, b in zip(bounds, bounds[1:])])
        except BaseException:
            writer.abort()
            raise
        return writer

    def iter_bytes(self, key: str, offset: int = 0, chunk_size: int = CHUNK,
                   end: int | None = None) -> Iterator[bytes]:
        if end is not None and end <= offset:
            return
        args = {"Bucket": self.bucket, "Key": self._key(key)}
        if offset or end is not None:
            args["Range"] = f"bytes={offset}-{'' if end is None else end - 1}"
        try:
            body = self.s3.get_object(**args)["Body"]
        except self.s3.exceptions.ClientError as exc:
            if offset and exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return  # offset == size: nothing past it
            raise
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def delete(self, keys: Iterable[str]) -> None:
        keys = [self._key(k) for k in keys]
        for i in range(0, len(keys), 1000):
            self.s3.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except self.s3.exceptions.ClientError:
            return False

    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every object under the prefix (``list_objects_v2``, page by page)."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                  Prefix=self.prefix)
        for page in pages:
            for item in page.get("Contents", []):
                yield BlobInfo(item["Key"][len(self.prefix):], item["Size"], item["LastModified"])

    def check(self) -> None:
        self.s3.head_bucket(Bucket=self.bucket)

    def describe(self) -> str:
        return self.url


def open_blob_store(url: str) -> BlobStore:
    """``s3://bucket/prefix`` → S3BlobStore; a path or ``file://`` URL → LocalBlobStore."""
    if url.startswith("s3://"):
        return S3BlobStore(url)
    if url.startswith("file://"):
        url = url[len("file://"):]
    if "://" in url:
        raise ValueError(f"unsupported blob store URL {url!r} (use a folder path or s3://bucket/prefix)")
    return LocalBlobStore(url)
