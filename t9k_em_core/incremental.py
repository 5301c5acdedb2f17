"""Incremental upload of the files of a Run that grow by appends (``run_files.grows_by_appends``:
the metric files and ``stdout.log``), over our server's append/truncate extension
(``POST /apis/v1/objects/append|truncate``, docs/server.md).

An :class:`Appender` follows each such file of one Run directory → server node:

- The file grew and is the same file (inode) as last time: only the new bytes are sent, each
  request naming the offset it expects the object to have. The server answers with the MD5 of
  the whole object, which must equal the MD5 this side carried forward over the bytes it sent,
  so every append is checked end to end at no cost.
- A rewind (docs/resume.md, *On disk*) cuts metric files in place and records, in a new
  segment of ``metadata.yaml``, each file's length after the cut; appends may follow before this
  side looks. So each cycle first reads the segments (:meth:`Appender.begin`): for a new one,
  the object is cut back to ``min(sent, metricBytes[type])`` (the MD5 at the cut is carried
  forward from the nearest checkpoint before it, reading only the bytes in between, and checked
  against the MD5 the server answers) and continued from there. While a segment says
  ``cutting: true`` the metric files wait.
- Anything else (a first look at the file in this process, a file that shrank or was replaced,
  a lost reply: ``409``, an MD5 that does not match) is a *resync*: the file is read once and hashed, and
  at every *checkpoint* (a size the server acknowledged, with the MD5 of that prefix; kept in
  :class:`~t9k_em_core.transfer.UploadState`, so a restarted job has them) and at the server's
  current size the prefix hashes are compared. The object is cut back (truncate) to the longest
  prefix still equal, checked by the MD5 the server answers, and continued from there. So a
  rewind re-sends only the bytes after the cut, give or take the distance to the checkpoint
  before it; checkpoints are thinned to at most ``MAX_CHECKPOINTS``, denser near the end.

Errors other than a conflict propagate (the syncer retries); state is only advanced by what the
server acknowledged. The caller falls back to whole-file uploads where the server lacks the
extension (``AISClient.can_append``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any, Optional

from t9k_em_core import client as _client
from t9k_em_core import metadata_file, run_files

logger = logging.getLogger(__name__)

MAX_CHECKPOINTS = 64
READ_CHUNK = 1 << 20
EMPTY_MD5 = hashlib.md5().hexdigest()


class AppendMismatchError(_client.AIStoreError):
    """The server's MD5 after an append is not that of the bytes sent (resynced next time)."""


class _Tracked:
    """What the server holds of one file: its first ``size`` bytes (hash ``md5``) of inode
    ``ino``; the checkpoints (persisted) and, in memory, the hash at each of them."""

    def __init__(self, ino: int, size: int, md5: Any, checkpoints: list[tuple[int, str]],
                 exists: bool = True) -> None:
        self.ino, self.size, self.md5, self.checkpoints = ino, size, md5, checkpoints
        self.exists = exists  #: whether the object exists (an empty file is created empty)
        self.states = {0: hashlib.md5(), size: md5.copy()}

    def advance(self, data: bytes, md5: Any) -> None:
        self.size += len(data)
        self.md5 = md5
        self.exists = True
        self.checkpoints.append((self.size, md5.hexdigest()))
        self.states[self.size] = md5.copy()
        if len(self.checkpoints) > MAX_CHECKPOINTS:  # thin the older half: denser near the end
            half = len(self.checkpoints) // 2
            self.checkpoints[:half] = self.checkpoints[:half:2]
            kept = {n for n, _ in self.checkpoints}
            self.states = {n: h for n, h in self.states.items() if n in kept or n == 0}

    def cut(self, size: int, md5: Any) -> None:
        self.size, self.md5 = size, md5
        self.checkpoints = [(n, h) for n, h in self.checkpoints if n < size] + [(size, md5.hexdigest())]
        self.states = {n: h for n, h in self.states.items() if n < size}
        self.states[size] = md5.copy()


class Appender:
    """Keeps growing files of one local directory in step with their objects on one node.

    Args:
        client: A client whose server has the extension.
        node_path: The node the directory uploads to.
        state: The directory's upload state (sent sizes, checkpoints).
    """

    def __init__(self, client: _client.AISClient, node_path: str, state: Any) -> None:
        self.client, self.node_path, self.state = client, node_path, state
        self.max_bytes = int(client.capabilities().get('max_append_bytes') or (1 << 20))
        self._files: dict[str, _Tracked] = {}
        self._server: Optional[dict[str, tuple[int, Optional[str]]]] = None
        self._segments_seen: Optional[int] = None
        self._cuts: dict[str, int] = {}
        self._cutting = False
        #: bytes sent in request bodies (appends), for benchmarks
        self.bytes_sent = 0

    def begin(self, local_dir: str) -> None:
        """Reads the Run's rewinds (``metadata.yaml`` segments) before a cycle of sends."""
        segments = metadata_file.read_metadata(local_dir).get(metadata_file.SEGMENTS) or []
        if not isinstance(segments, list):
            return
        self._cutting = bool(segments) and isinstance(segments[-1], dict) and bool(
            segments[-1].get(metadata_file.SEGMENT_CUTTING))
        if self._segments_seen is None:  # a first look: what is on the server gets resynced
            self._segments_seen = len(segments)
        if self._cutting:
            return
        for segment in segments[self._segments_seen:]:
            lengths = segment.get('metricBytes') if isinstance(segment, dict) else None
            for metric_type, length in (lengths or {}).items():
                rel = run_files.metric_index_path(str(metric_type))
                self._cuts[rel] = min(self._cuts.get(rel, int(length)), int(length))
        self._segments_seen = len(segments)

    def send(self, rel: str, full: str) -> bool:
        """Brings object ``rel`` up to date with the file ``full`` (see the module doc). Returns
        False when the file is better sent whole (the server holds none of it, and it takes more
        than one append): the caller uploads it, and the next call resyncs from there."""
        if self._cutting and rel != run_files.STDOUT_FILE:
            return True  # a rewind is cutting the metric files: next cycle
        for attempt in range(3):
            try:
                with open(full, 'rb') as f:
                    st = os.fstat(f.fileno())
                    tracked = self._files.get(rel)
                    cut = self._cuts.pop(rel, None)
                    if (tracked is not None and cut is not None and cut < tracked.size
                            and cut <= st.st_size and tracked.ino == st.st_ino):
                        self._cut_back(rel, f, tracked, cut)
                    if tracked is None or tracked.ino != st.st_ino or st.st_size < tracked.size:
                        tracked = self._resync(rel, f, st)
                    if tracked.size == 0 and st.st_size > self.max_bytes:
                        self._files.pop(rel, None)
                        self._server = None
                        return False
                    self._append(rel, f, tracked, st.st_size)
                    self.state.mark(rel, tracked.size, st.st_mtime_ns, tracked.checkpoints)
                    return True
            except (_client.AppendConflictError, AppendMismatchError) as e:
                self._files.pop(rel, None)
                self._server = None  # listed again: the object is not what was thought
                if attempt == 2:
                    raise
                logger.info('resyncing %s: %s', rel, e)
        raise AssertionError('unreachable')

    def _object(self, rel: str) -> str:
        return f'{self.node_path}/{rel}'

    def _append(self, rel: str, f: Any, tracked: _Tracked, end: int) -> None:
        while tracked.size < end or not tracked.exists:
            data = os.pread(f.fileno(), min(self.max_bytes, end - tracked.size), tracked.size)
            if not data and tracked.size < end:
                return  # cut meanwhile: the next call resyncs
            md5 = tracked.md5.copy()
            md5.update(data)
            try:
                reply = self.client.append_object(self._object(rel), tracked.size, data)
                self.bytes_sent += len(data)
                answered = reply.get('md5') if isinstance(reply, dict) else None
            except _client.AppendConflictError as e:  # a lost reply: it is ours if it matches
                if (e.size, e.md5) != (tracked.size + len(data), md5.hexdigest()):
                    raise
                answered = e.md5
            if answered != md5.hexdigest():
                raise AppendMismatchError(f'{self._object(rel)}: the server holds MD5 {answered} '
                                          f'after the append, not {md5.hexdigest()}')
            tracked.advance(data, md5)

    def _truncate(self, rel: str, size: int, md5: Any) -> None:
        reply = self.client.truncate_object(self._object(rel), size)
        if reply.get('md5') != md5.hexdigest():
            raise AppendMismatchError(f'{self._object(rel)} cut to {size} bytes has MD5 '
                                      f'{reply.get("md5")}, not {md5.hexdigest()}')

    def _cut_back(self, rel: str, f: Any, tracked: _Tracked, cut: int) -> None:
        """Cut the object back to ``cut`` bytes (a rewind), hashing the file from the nearest
        checkpoint before the cut."""
        base = max(n for n in tracked.states if n <= cut)
        md5 = tracked.states[base].copy()
        pos = base
        while pos < cut:
            data = os.pread(f.fileno(), min(READ_CHUNK, cut - pos), pos)
            if not data:
                raise AppendMismatchError(f'{rel} is shorter than its rewind cut at {cut} bytes')
            md5.update(data)
            pos += len(data)
        self._truncate(rel, cut, md5)
        tracked.cut(cut, md5)
        logger.info('%s: the server copy was cut back to %d bytes (a rewind)', rel, cut)

    def _resync(self, rel: str, f: Any, st: os.stat_result) -> _Tracked:
        """The longest prefix of the file that the server holds (cut back to it)."""
        if self._server is None:
            self._server = self.client.list_object_digests(self.node_path)
        on_server = self._server.get(rel)
        if on_server is None:
            tracked = self._files[rel] = _Tracked(st.st_ino, 0, hashlib.md5(), [], exists=False)
            return tracked
        size, server_md5 = on_server
        candidates = {0: EMPTY_MD5}
        candidates.update((n, md5) for n, md5 in self.state.checkpoints_of(rel) if n <= size)
        if server_md5:
            candidates[size] = server_md5
        best, best_md5 = _longest_match(f, st.st_size, candidates)
        kept = [(n, md5) for n, md5 in sorted(candidates.items()) if 0 < n <= best]
        if best < size:
            self._truncate(rel, best, best_md5)
            logger.info('%s: the server copy was cut back from %d to %d bytes', rel, size, best)
        self._server[rel] = (best, best_md5.hexdigest())
        tracked = self._files[rel] = _Tracked(st.st_ino, best, best_md5, kept)
        return tracked


def _longest_match(f: Any, length: int, candidates: dict[int, str]) -> tuple[int, Any]:
    """(offset, MD5 object) of the largest candidate offset whose prefix of the file has the
    candidate's MD5 (``0`` always matches); reads the file up to the largest candidate."""
    md5, pos, best = hashlib.md5(), 0, (0, hashlib.md5())
    for offset in sorted(n for n in candidates if n <= length):
        while pos < offset:
            data = os.pread(f.fileno(), min(READ_CHUNK, offset - pos), pos)
            if not data:
                return best
            md5.update(data)
            pos += len(data)
        if md5.hexdigest() == candidates[offset]:
            best = (offset, md5.copy())
    return best
