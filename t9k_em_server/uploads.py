"""Streaming an upload body into a blob, verifying size and MD5 on the way.

Accepts ``multipart/form-data`` with the part ``content`` (what the 0.6.0b0 client sends) or a raw
body (any other Content-Type). Bytes go to the blob writer in ~1 MiB batches from a worker thread,
so memory stays flat whatever the size. The expected size/MD5 may come from the query
(``size``, ``md5`` hex) or a ``Content-MD5`` header (base64 or hex) on the ``content`` part, or on
the request for a raw body (a request-level one on a multipart body would cover the framing, so it
is not used). A raw body's Content-Length is enforced by the HTTP layer. A mismatch aborts the blob: nothing becomes visible.
A small body costs one worker-thread hop: the blob is opened, written, verified and committed in
``PendingBlob.finish`` (which the batch upload uses too, per member).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from dataclasses import dataclass

from anyio import to_thread
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request

from .blob_store import BlobStore, BlobWriter
from .errors import ApiError

BATCH = 1 << 20
MAX_OTHER_FIELD_BYTES = 64 * 1024


def new_blob_key(kind: str = "objects") -> str:
    """A fresh, never reused blob key."""
    name = uuid.uuid4().hex
    return f"{kind}/{name[:2]}/{name}"


@dataclass(frozen=True)
class Received:
    """What was stored: blob key, size, MD5 hex, and the MD5 at ``prefix_at`` bytes (if asked)."""

    blob_key: str
    size: int
    md5: str
    prefix: tuple[int, str] | None


class Digest:
    """Hashes and counts bytes, refusing more than ``max_bytes``; with ``prefix_at`` it also
    records the MD5 of the first ``prefix_at`` bytes. Called from a worker thread."""

    def __init__(self, max_bytes: int, prefix_at: int | None):
        self.max_bytes, self.prefix_at = max_bytes, prefix_at
        self.md5 = hashlib.md5()
        self.size = 0
        self.prefix_md5 = hashlib.md5().hexdigest() if prefix_at == 0 else None

    def update(self, data: bytes | memoryview) -> None:
        if self.size + len(data) > self.max_bytes:
            raise ApiError(413, f"content larger than the limit of {self.max_bytes} bytes")
        if self.prefix_at and self.prefix_md5 is None and self.size + len(data) >= self.prefix_at:
            cut = self.prefix_at - self.size
            self.md5.update(data[:cut])
            self.prefix_md5 = self.md5.hexdigest()
            self.md5.update(data[cut:])
        else:
            self.md5.update(data)
        self.size += len(data)

    def received(self, blob_key: str) -> Received:
        """What was hashed, as stored under ``blob_key``."""
        prefix = None
        if self.prefix_at is not None and self.prefix_md5:
            prefix = (self.prefix_at, self.prefix_md5)
        return Received(blob_key, self.size, self.md5.hexdigest(), prefix)


class HashingWriter(Digest):
    """A Digest that forwards the bytes to a blob writer."""

    def __init__(self, writer: BlobWriter, max_bytes: int, prefix_at: int | None):
        super().__init__(max_bytes, prefix_at)
        self.writer = writer

    def write(self, data: bytes) -> None:
        self.update(data)
        self.writer.write(data)


def _md5_header(value: str | None) -> str | None:
    """A Content-MD5 value (base64 per RFC 1864, or 32 hex digits) as lowercase hex."""
    if not value:
        return None
    value = value.strip().strip('"')
    if len(value) == 32:
        try:
            int(value, 16)
            return value.lower()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid Content-MD5 header") from None
    if len(raw) != 16:
        raise ApiError(400, "invalid Content-MD5 header")
    return raw.hex()


class _MultipartReader:
    """Collects the bytes of the part named ``content`` while the parser runs."""

    def __init__(self, boundary: bytes):
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.content_parts = 0
        self.content_md5: str | None = None
        self.content_complete = False
        self._in_content = False
        self._other_bytes = 0
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self.parser = MultipartParser(boundary, {
            "on_part_begin": self._part_begin, "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_header_field": self._header_field, "on_header_value": self._header_value,
            "on_header_end": self._header_end, "on_headers_finished": self._headers_finished,
        })

    def _part_begin(self) -> None:
        self._headers, self._in_content = {}, False

    def _part_end(self) -> None:
        if self._in_content:
            self.content_complete = True  # its closing boundary arrived: no truncated body
        self._in_content = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if options.get(b"name") == b"content":
            self.content_parts += 1
            if self.content_parts > 1:
                raise ApiError(400, "more than one multipart field 'content'")
            self._in_content = True
            md5 = self._headers.get(b"content-md5")
            self.content_md5 = _md5_header(md5.decode("latin-1")) if md5 else None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_content:
            self.pending.append(bytes(data[start:end]))
            self.pending_bytes += end - start
        else:
            self._other_bytes += end - start
            if self._other_bytes > MAX_OTHER_FIELD_BYTES:
                raise ApiError(413, "multipart fields other than 'content' are too large")

    def take(self) -> bytes:
        data = b"".join(self.pending)
        self.pending.clear()
        self.pending_bytes = 0
        return data


class PendingBlob:
    """A blob being received: opened on the first bytes, verified and committed by ``finish``.

    Everything blocking happens in ``write``/``finish``/``abort``, which the caller runs in a
    worker thread; a small upload thus needs one thread hop (``finish`` with all its bytes).
    """

    def __init__(self, blobs: BlobStore, max_bytes: int, prefix_at: int | None = None,
                 blob_kind: str = "objects"):
        self.blobs, self.max_bytes, self.prefix_at = blobs, max_bytes, prefix_at
        self.blob_key = new_blob_key(blob_kind)
        self._writer: BlobWriter | None = None
        self._sink: HashingWriter | None = None

    def write(self, data: bytes) -> None:
        if self._sink is None:
            self._writer = self.blobs.open_writer(self.blob_key)
            self._sink = HashingWriter(self._writer, self.max_bytes, self.prefix_at)
        self._sink.write(data)

    def finish(self, data: bytes = b"", expected_size: int | None = None,
               expected_md5: tuple[tuple[str, str | None], ...] = (),
               commit: bool = True) -> Received:
        """Write the last bytes, check size and MD5 (``(label, hex or None)`` pairs), commit.

        With ``commit=False`` the verified blob is left for the caller to commit (``writer``,
        e.g. with ``BlobStore.commit_all``) or ``abort``. On any failure the blob is discarded
        and the error raised (ApiError 400 on a mismatch).
        """
        try:
            self.write(data)
            assert self._sink is not None and self._writer is not None
            md5 = self._sink.md5.hexdigest()
            for label, want in expected_md5:
                if want and want.lower() != md5:
                    raise ApiError(400, f"md5 mismatch: {label} {want.lower()} != received {md5}")
            if expected_size is not None and expected_size != self._sink.size:
                raise ApiError(400, f"size mismatch: expected {expected_size} bytes, "
                                    f"received {self._sink.size}")
            if commit:
                self._writer.commit()
        except BaseException:
            self.abort()
            raise
        return self._sink.received(self.blob_key)

    @property
    def writer(self) -> BlobWriter:
        """The blob's writer (after ``finish``)."""
        assert self._writer is not None
        return self._writer

    def abort(self) -> None:
        """Discard the blob (idempotent)."""
        if self._writer is not None:
            self._writer.abort()
            self._writer = None


async def receive_upload(request: Request, blobs: BlobStore, max_bytes: int,
                         expected_size: int | None = None, expected_md5: str | None = None,
                         prefix_at: int | None = None, blob_kind: str = "objects") -> Received:
    """Stream the request's content into a new blob and verify it; commit only if all checks pass.

    Raises ApiError (400 bad body or mismatch, 413 too large); the blob is then discarded.
    """
    content_type = request.headers.get("content-type", "")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + MAX_OTHER_FIELD_BYTES:
        raise ApiError(413, f"content larger than the limit of {max_bytes} bytes")
    blob = PendingBlob(blobs, max_bytes, prefix_at, blob_kind)
    try:
        if content_type.startswith("multipart/form-data"):
            boundary = parse_options_header(content_type)[1].get(b"boundary")
            if not boundary:
                raise ApiError(400, "multipart body without boundary")
            reader = _MultipartReader(boundary)
            async for chunk in request.stream():
                reader.parser.write(chunk)
                if reader.pending_bytes >= BATCH:
                    await to_thread.run_sync(blob.write, reader.take())
            reader.parser.finalize()
            if reader.content_parts == 0:
                raise ApiError(400, "missing multipart field 'content'")
            if not reader.content_complete:
                raise ApiError(400, "incomplete multipart body: no boundary after the 'content' part")
            rest = reader.take()
            part_md5 = reader.content_md5
        else:
            buffer: list[bytes] = []
            buffered = 0
            async for chunk in request.stream():
                buffer.append(chunk)
                buffered += len(chunk)
                if buffered >= BATCH:
                    await to_thread.run_sync(blob.write, b"".join(buffer))
                    buffer, buffered = [], 0
            rest = b"".join(buffer)
            part_md5 = _md5_header(request.headers.get("content-md5"))
        return await to_thread.run_sync(
            blob.finish, rest, expected_size, (("query md5", expected_md5), ("Content-MD5", part_md5)))
    except MultipartParseError as exc:
        await to_thread.run_sync(blob.abort)
        raise ApiError(400, f"malformed multipart body: {exc}") from None
    except ClientDisconnect:
        await to_thread.run_sync(blob.abort)
        raise ApiError(400, "client disconnected during upload") from None
    except BaseException:
        await to_thread.run_sync(blob.abort)
        raise
