"""Upload and download of Run and Artifact **directories** to and from an AIStore server.

Works on directories and their readers (``run_files``, ``artifact_files``, ``metadata_file``)
only, never on a live ``Run``.
The request sequences follow t9k 0.6.0b0 (``shared/spec/server-api.md`` §6.2–6.6): node creation
with the conflict strategies, the 404-parent rule, ``remote`` records written before the files,
lineage of a Run's Artifacts. What differs is how files travel:

- concurrently over one keep-alive session (:class:`~t9k_em_core.client.AISClient`);
- files over 100 MiB as multipart uploads (part size ``floor(sqrt(S / 2**20))`` MiB), parts
  concurrently (:class:`_Multipart`);
- files under 1 MiB in batches of up to 4 MiB / 500 files, one request each
  (``POST /apis/v1/objects/batch``, our server's extension), batches concurrently; against a server
  without it (0.6.0b0's, a real AIStore: 404/405) they go one request per file;
- resumable: an upload-state file OUTSIDE the directory (:class:`UploadState`) remembers which
  ``(path, size, mtime)`` reached which server node; a new upload of the same directory to the same
  node skips files that are unchanged locally and still listed on the server with that size, and
  resumes an interrupted multipart upload of an unchanged file: only its missing parts are sent;
- a rich progress bar on interactive terminals (``progress=None``), quiet otherwise.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import sys
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, NamedTuple, Optional

from t9k_em_core import client as _client
from t9k_em_core import (artifact_files, conflicts, fileio, incremental, metadata_file, naming,
                         run_files)

logger = logging.getLogger(__name__)

MiB = 1 << 20
MULTIPART_THRESHOLD = 100 * MiB
PART_UNIT = MiB  # part size of a multipart upload of S bytes: floor(sqrt(S / PART_UNIT)) units
BATCH_FILE_LIMIT = 1 * MiB  # smaller files travel in batches (when the server has them)
BATCH_BYTES = 4 * MiB       # at most this many file bytes per batch
BATCH_FILES = 500           # at most this many files per batch
MAX_OBJECT_SIZE = 25_000_000 * MiB
_STORAGE_TYPE = {'Folder': 0, 'Run': 2, 'Artifact': 2}
_DEFAULT_FOLDER_RE = re.compile(r'^/[^/]+/default$')


class TransferError(Exception):
    """Base class of the errors of an upload or download that cannot succeed as asked: trying
    again unchanged gives the same error (``sync`` stops for good on one). Network and server
    trouble are :class:`~t9k_em_core.client.AIStoreError` instead, which may pass.

    Each subclass is also the built-in type this module raised before the hierarchy existed,
    so handlers of ``ValueError``/``RuntimeError`` keep working.
    """


class InvalidFolderError(TransferError, ValueError):
    """The Folder argument is not a Folder path."""


class FolderNotFoundError(TransferError, ValueError):
    """The Folder does not exist and ``make_folder`` was not given."""


class ConflictError(TransferError, RuntimeError):
    """The name is taken in the Folder and the conflict strategy (``error``, or ``replace`` that
    could not replace) does not resolve it."""


class KindMismatchError(TransferError, RuntimeError):
    """A directory or node is not of the kind asked for (a Run where an Artifact was meant, a
    Folder where a Run was meant, a directory of neither kind)."""


class NothingToUploadError(TransferError, RuntimeError):
    """The path neither is a Run/Artifact directory nor holds one."""


class FileTooLargeError(TransferError, RuntimeError):
    """A file is larger than the server's object limit."""


class UnsafeObjectPathError(TransferError, RuntimeError):
    """A downloaded object's path would leave the target directory."""


class IncompleteNodeError(TransferError, RuntimeError):
    """The node on the server has no ``metadata.yaml``: its upload did not finish."""


class Node(NamedTuple):
    """A node on the server: its path and ID."""

    path: str
    id: str


def folder_path(folder: str, user: Optional[str]) -> str:
    """Absolute Folder path: a relative ``folder`` goes under ``/<user>/``; no trailing ``/``."""
    if not isinstance(folder, str) or not folder.strip('/'):
        raise InvalidFolderError(f'Invalid folder {folder!r}: give a Folder path such as "default" or '
                         '"/<user>/proj"')
    if not folder.startswith('/'):
        folder = f'/{user}/{folder}'
    return folder.rstrip('/')


def server_path(path: str, user: Optional[str]) -> str:
    """Absolute node path of a Run/Artifact: a relative ``path`` goes under ``/<user>/``."""
    return folder_path(path, user)


# --- upload state (resume) --------------------------------------------------------------------

def _state_dir() -> str:
    explicit = os.environ.get('EM_UPLOAD_STATE_DIR')
    if explicit:
        return os.path.expanduser(explicit)
    cache = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
    return os.path.join(cache, 't9k-em', 'uploads')


class UploadState:
    """What of a local directory reached which server node.

    For each file sent whole, its ``(size, mtime_ns)``; for each file whose multipart upload is
    under way, that upload: its ``uploadId``, object path, the file's size and mtime, the part size
    and the eTag of every part that arrived. Stored as JSON in ``$EM_UPLOAD_STATE_DIR`` (default
    ``~/.cache/t9k-em/uploads``), one file per (host, node path, local directory), never inside the
    Run/Artifact directory (0.6.0b0 would take it for a run file or an Artifact object). Saved
    atomically every ``SAVE_EVERY_S`` seconds or ``SAVE_EVERY_PARTS`` parts, and by ``save()``.
    Losing it only means re-sending files.
    """

    SAVE_EVERY_S = 1.0
    SAVE_EVERY_PARTS = 4

    def __init__(self, host: str, node_path: str, local_dir: str) -> None:
        key = '\n'.join((host, node_path, os.path.realpath(local_dir)))
        self.path = os.path.join(_state_dir(), hashlib.sha1(key.encode()).hexdigest() + '.json')
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._sent: dict[str, tuple[int, int]] = {}
        self._multipart: dict[str, dict[str, Any]] = {}
        self._checkpoints: dict[str, list[tuple[int, str]]] = {}
        self._saved_at = 0.0
        self._unsaved_parts = 0
        self._dirty = False
        try:
            with open(self.path, encoding='utf-8') as f:
                data = json.load(f)
            self._sent = {k: (int(v[0]), int(v[1])) for k, v in data['files'].items()}
            self._multipart = {rel: _multipart_record(m)
                               for rel, m in (data.get('multipart') or {}).items()}
            self._checkpoints = {rel: [(int(n), str(md5)) for n, md5 in points]
                                 for rel, points in (data.get('checkpoints') or {}).items()}
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
            pass  # what did load is kept; the rest is sent again

    def __bool__(self) -> bool:
        return bool(self._sent)

    def sent_as(self, rel: str) -> Optional[tuple[int, int]]:
        """``(size, mtime_ns)`` with which ``rel`` was last sent, or None."""
        return self._sent.get(rel)

    def mark(self, rel: str, size: int, mtime_ns: int,
             checkpoints: Optional[list[tuple[int, str]]] = None) -> None:
        """Records that ``rel`` with this size and mtime reached the server; ``checkpoints``
        (appended files, :mod:`~t9k_em_core.incremental`): ``(size, MD5 of the first size
        bytes)`` of states the server acknowledged."""
        with self._lock:
            self._sent[rel] = (size, mtime_ns)
            self._multipart.pop(rel, None)
            if checkpoints is None:
                self._checkpoints.pop(rel, None)
            else:
                self._checkpoints[rel] = list(checkpoints)
            due = self._changed()
        if due:
            self.save()

    def checkpoints_of(self, rel: str) -> list[tuple[int, str]]:
        """The checkpoints recorded with the last append of ``rel`` (oldest first)."""
        with self._lock:
            return list(self._checkpoints.get(rel, ()))

    def multipart_of(self, rel: str, object_path: str, size: int, mtime_ns: int,
                     part_bytes: int) -> Optional[tuple[str, dict[int, str]]]:
        """``(uploadId, {part number: eTag})`` of the recorded multipart upload of ``rel`` to
        ``object_path``, if it was of the file as it is now (size, mtime) in parts of
        ``part_bytes``; else None."""
        with self._lock:
            m = self._multipart.get(rel)
            if m is None or (m['object'], m['size'], m['mtime'], m['partSize']) != (
                    object_path, size, mtime_ns, part_bytes):
                return None
            return m['uploadId'], dict(m['parts'])

    def start_multipart(self, rel: str, object_path: str, upload_id: str, size: int,
                        mtime_ns: int, part_bytes: int) -> None:
        """Records a new multipart upload of ``rel`` (no part yet), replacing an older one."""
        with self._lock:
            self._multipart[rel] = {'uploadId': upload_id, 'object': object_path, 'size': size,
                                    'mtime': mtime_ns, 'partSize': part_bytes, 'parts': {}}
            self._dirty = True

    def mark_part(self, rel: str, upload_id: str, number: int, etag: str) -> None:
        """Records that part ``number`` of upload ``upload_id`` of ``rel`` arrived as ``etag``."""
        with self._lock:
            m = self._multipart.get(rel)
            if m is None or m['uploadId'] != upload_id:
                return  # replaced by a newer upload meanwhile
            m['parts'][number] = etag
            self._unsaved_parts += 1
            due = self._changed()
        if due:
            self.save()

    def _changed(self) -> bool:
        """Marks the state dirty (holding ``_lock``); returns whether a save is due."""
        self._dirty = True
        return (self._unsaved_parts >= self.SAVE_EVERY_PARTS
                or time.monotonic() - self._saved_at >= self.SAVE_EVERY_S)

    def save(self) -> None:
        """Writes the state file atomically; a failure is logged, never raised."""
        with self._save_lock:  # one writer at a time, so the newest snapshot lands last
            with self._lock:
                if not self._dirty:
                    return
                snapshot = {'files': {k: list(v) for k, v in self._sent.items()},
                            'checkpoints': {k: [list(p) for p in v]
                                            for k, v in self._checkpoints.items()},
                            'multipart': {rel: {**m, 'parts': {str(n): tag for n, tag
                                                               in m['parts'].items()}}
                                          for rel, m in self._multipart.items()}}
                self._dirty = False
                self._unsaved_parts = 0
                self._saved_at = time.monotonic()
            try:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                tmp = f'{self.path}.{os.getpid()}.tmp'
                with open(tmp, 'w', encoding='utf-8') as f:
                    json.dump(snapshot, f)
                os.replace(tmp, self.path)
            except (OSError, ValueError, TypeError) as e:
                logger.debug('cannot save upload state %s: %s', self.path, e)


def _multipart_record(raw: dict) -> dict[str, Any]:
    """A multipart upload of the state file, typed (``ValueError``/``KeyError``… if malformed)."""
    return {'uploadId': str(raw['uploadId']), 'object': str(raw['object']),
            'size': int(raw['size']), 'mtime': int(raw['mtime']),
            'partSize': int(raw['partSize']),
            'parts': {int(n): str(tag) for n, tag in raw['parts'].items()}}


# --- progress ---------------------------------------------------------------------------------

class _Progress:
    """A rich progress bar over bytes, or nothing when not wanted / rich is not installed."""

    def __init__(self, enabled: Optional[bool], description: str) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self._bar = None
        if enabled:
            try:
                from rich.console import Console
                from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                           TimeRemainingColumn, TransferSpeedColumn)
            except ImportError:
                return
            self._bar = Progress(TextColumn('{task.description}'), BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=False)
            self._task = self._bar.add_task(description, total=0)
        self._lock = threading.Lock()

    def __enter__(self) -> '_Progress':
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()

    def add_total(self, nbytes: int) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.update(self._task, total=(self._bar.tasks[0].total or 0) + nbytes)

    def advance(self, nbytes: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=nbytes)


# --- nodes ------------------------------------------------------------------------------------

def make_folder(client: _client.AISClient, folder: str) -> None:
    """Creates Folder ``folder`` and missing parents (spec §6.2); an existing one is fine."""
    try:
        client.node_info(folder)
        return
    except _client.NodeNotFoundError:
        pass
    parent, name = folder.rsplit('/', 1)
    if folder.count('/') >= 3:
        make_folder(client, parent)
    extra = json.dumps({'createdTimestamp': metadata_file.now_iso()})
    try:
        client.create_node(parent, name, 'Folder', _STORAGE_TYPE['Folder'], extra)
    except _client.NameConflictError:
        pass  # made by a concurrent client meanwhile


def _alternative_name_of(info: dict) -> Optional[str]:
    try:
        extra = json.loads(info.get('extra') or '{}')
    except (TypeError, ValueError):
        return None
    return extra.get('alternativeName') if isinstance(extra, dict) else None


def create_node(client: _client.AISClient, kind: str, folder: str, metadata: dict,
                alt_name: str, make_folder_: bool, conflict_strategy: str) -> Optional[Node]:
    """Creates (or finds, on re-upload) the node of a Run/Artifact in ``folder`` (spec §6.3 step 1).

    Returns None when skipped by ``conflict_strategy='skip'``. Raises :class:`ConflictError`
    for ``'error'`` on a conflict and :class:`FolderNotFoundError` for a missing Folder without
    ``make_folder``.
    """
    conflicts.check_conflict_strategy(conflict_strategy)
    name = metadata['name']
    extra = json.dumps({'alternativeName': alt_name})
    folder_made = deleted = False
    while True:
        path = f'{folder}/{name}'
        try:
            node_id = client.create_node(folder, name, kind, _STORAGE_TYPE[kind], extra,
                                         labels=metadata.get('labels'),
                                         description=metadata.get('description') or '')
            return Node(path, node_id)
        except _client.NodeNotFoundError:
            if folder_made or not (make_folder_ or _DEFAULT_FOLDER_RE.match(folder)):
                raise FolderNotFoundError(f"Folder does not exist: '{folder}' (pass make_folder=True, "
                                 'or -m on the command line, to create it)') from None
            make_folder(client, folder)
            folder_made = True
            continue
        except _client.NameConflictError:
            pass
        try:
            info = client.node_info(path)
        except _client.NodeNotFoundError:
            continue  # deleted meanwhile: try again
        if _alternative_name_of(info) == alt_name and info.get('type') == kind:
            return Node(path, info['id'])  # this very Run/Artifact: re-upload into it
        if conflict_strategy == 'skip':
            return None
        if conflict_strategy == 'error':
            raise ConflictError(f"{kind} already exists in Folder {folder}: '{name}'")
        if conflict_strategy == 'new' and name != alt_name:
            name = alt_name
        elif conflict_strategy == 'replace' and not deleted:
            client.delete_node(path)
            deleted = True
        else:
            raise ConflictError(f"{kind} {path} exists and is not {alt_name} (conflict strategy "
                               f"{conflict_strategy!r} could not resolve it)")


def _record(client: _client.AISClient, action: str, node: Node, kind: str) -> dict:
    """A ``remote`` history entry, keys in the order 0.6.0b0 writes them."""
    stamp = metadata_file.now_iso()
    if kind == 'Artifact' and action == 'upload':
        return {'action': action, 'timestamp': stamp, 'host': client.host, 'id': node.id,
                'path': node.path}
    return {'action': action, 'timestamp': stamp, 'host': client.host, 'path': node.path,
            'id': node.id}


# --- files ------------------------------------------------------------------------------------

def part_size(size: int) -> int:
    """Part size of a multipart upload of ``size`` bytes: ``floor(sqrt(size / 2**20))`` MiB
    (``PART_UNIT`` instead of MiB where a test lowers it)."""
    return math.isqrt(size // PART_UNIT) * PART_UNIT  # floor(sqrt(floor(x))) == floor(sqrt(x))


def _local_files(local_dir: str) -> list[str]:
    """Relative paths of the files to upload (temporary files of atomic writes left out)."""
    return [rel for rel in artifact_files.walk_files(local_dir)
            if not fileio.is_temporary_file(rel.rsplit('/', 1)[-1])]


def send_files(client: _client.AISClient, local_dir: str, node_path: str, state: UploadState,
               progress: Optional[bool] = None, check_server: bool = True,
               appender: Optional[incremental.Appender] = None) -> int:
    """Uploads the files of ``local_dir`` that the server does not have yet; returns their count.

    A file is skipped when ``state`` says it was sent with its current size and mtime and (with
    ``check_server``) the server lists it with that size. With an ``appender`` (a Run, on a server
    with the append extension) the files that grow by appends send only their new bytes.
    Other files over 100 MiB go as multipart, resuming an interrupted one (:class:`_Multipart`).
    On failure the state of what did arrive is saved and the error is raised.
    """
    server_sizes: dict[str, int] = {}
    if state and check_server:
        server_sizes = client.list_objects(node_path)
    todo: list[tuple[str, str, int, int]] = []
    appended = 0
    if appender is not None:
        appender.begin(local_dir)
    for rel in _local_files(local_dir):
        full = os.path.join(local_dir, *rel.split('/'))
        try:
            st = os.stat(full)
        except FileNotFoundError:
            continue
        if st.st_size > MAX_OBJECT_SIZE:
            raise FileTooLargeError(f'File {full} ({st.st_size} bytes) exceeds the limit of ~23.842TiB')
        sent = state.sent_as(rel)
        if sent == (st.st_size, st.st_mtime_ns) and (
                not check_server or server_sizes.get(rel) == st.st_size):
            continue
        if appender is not None and run_files.grows_by_appends(rel) and appender.send(rel, full):
            appended += 1
            continue
        todo.append((rel, full, st.st_size, st.st_mtime_ns))
    if not todo:
        return appended
    try:
        with _Progress(progress, os.path.basename(os.path.normpath(local_dir))) as bar, \
                ThreadPoolExecutor(client.concurrency, thread_name_prefix='em-upload') as pool:
            bar.add_total(sum(t[2] for t in todo))
            _run_uploads(client, pool, todo, node_path, state, bar)
    finally:
        state.save()  # after the pool: parts still in flight at a failure are recorded too
    return len(todo) + appended


def _batches(todo: list[tuple[str, str, int, int]]) -> list[list[tuple[str, str, int, int]]]:
    """The files under ``BATCH_FILE_LIMIT``, grouped into batches of ``BATCH_BYTES``/``BATCH_FILES``."""
    batches: list[list[tuple[str, str, int, int]]] = []
    current: list[tuple[str, str, int, int]] = []
    nbytes = 0
    for item in todo:
        if item[2] >= BATCH_FILE_LIMIT:
            continue
        if current and (nbytes + item[2] > BATCH_BYTES or len(current) == BATCH_FILES):
            batches.append(current)
            current, nbytes = [], 0
        current.append(item)
        nbytes += item[2]
    if current:
        batches.append(current)
    return batches


def _upload_gone(error: _client.AIStoreError) -> bool:
    """Whether the server's answer to a part or a completion means it no longer has that upload
    (any 4xx but a rejected key: unknown ``uploadId``, completed already, a part missing)."""
    return isinstance(error, _client.NodeNotFoundError) or (
        isinstance(error, _client.RequestFailedError) and 400 <= error.status < 500)


def _wait_all(futures: list[Future]) -> None:
    """Waits for ``futures``; at the first error cancels those not started and raises it."""
    try:
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            future.result()
    except BaseException:
        for future in futures:
            future.cancel()
        raise


class _Multipart:
    """The multipart upload of one file (spec §5.12), parts sent concurrently on a pool.

    When ``state`` recorded an upload of the file as it is now (same object, size, mtime and part
    size), that ``uploadId`` is reused and only the parts without an eTag are sent. Each part that
    arrives is recorded in ``state``. If the server no longer knows a resumed upload (a 4xx on a
    part or on the completion), the whole file is sent again as a new upload; the server checks
    every part's eTag (MD5) and the total size at completion, so no corrupt object is made.
    """

    def __init__(self, client: _client.AISClient, state: UploadState, rel: str, full: str,
                 size: int, mtime_ns: int, object_path: str) -> None:
        self.client, self.state, self.rel, self.full = client, state, rel, full
        self.size, self.mtime_ns, self.object_path = size, mtime_ns, object_path
        self.step = part_size(size)
        self.count = -(-size // self.step)
        recorded = state.multipart_of(rel, object_path, size, mtime_ns, self.step)
        self.resumed = recorded is not None
        self.upload_id, self.etags = recorded or ('', {})
        self.gone = False  # a part of the resumed upload got a 4xx

    def _length(self, number: int) -> int:
        return min(self.step, self.size - (number - 1) * self.step)

    def submit(self, pool: ThreadPoolExecutor, bar: _Progress) -> list[Future]:
        """Starts the upload unless resumed, and submits its missing parts to ``pool``."""
        if not self.resumed:
            self.upload_id = self.client.start_multipart(self.object_path)
            self.state.start_multipart(self.rel, self.object_path, self.upload_id, self.size,
                                       self.mtime_ns, self.step)
        bar.advance(sum(self._length(n) for n in self.etags))
        return [pool.submit(self._part, n, bar) for n in range(1, self.count + 1)
                if n not in self.etags]

    def _part(self, number: int, bar: _Progress) -> None:
        length = self._length(number)
        try:
            etag = self.client.upload_part(self.upload_id, self.object_path, number, self.full,
                                           (number - 1) * self.step, length)
        except _client.AIStoreError as e:
            if self.resumed and _upload_gone(e):
                self.gone = True
                return
            raise
        self.etags[number] = etag
        self.state.mark_part(self.rel, self.upload_id, number, etag)
        bar.advance(length)

    def finish(self, pool: ThreadPoolExecutor, bar: _Progress) -> None:
        """Completes the upload once its parts are done (those of a resumed upload the server
        no longer has are sent again, as a new upload) and records the file as sent."""
        if not self.gone:
            try:
                self.client.complete_multipart(self.upload_id, self.object_path,
                                               [self.etags[n] for n in range(1, self.count + 1)])
                self.state.mark(self.rel, self.size, self.mtime_ns)
                return
            except _client.AIStoreError as e:
                if not (self.resumed and _upload_gone(e)):
                    raise
        logger.info('the server no longer has upload %s of %s: sending the file again',
                    self.upload_id, self.object_path)
        bar.add_total(sum(self._length(n) for n in self.etags))  # counted once already
        self.resumed, self.gone, self.etags = False, False, {}
        _wait_all(self.submit(pool, bar))
        self.finish(pool, bar)


def _run_uploads(client: _client.AISClient, pool: ThreadPoolExecutor,
                 todo: list[tuple[str, str, int, int]], node_path: str, state: UploadState,
                 bar: _Progress) -> None:
    def single(rel: str, full: str, size: int, mtime: int) -> None:
        sent = client.upload_object(f'{node_path}/{rel}', full)  # the file as it was sent
        state.mark(rel, sent.st_size, sent.st_mtime_ns)
        bar.advance(size)

    def batch(items: list[tuple[str, str, int, int]]) -> None:
        sent = client.upload_batch(node_path, [(rel, full) for rel, full, _, _ in items])
        for (rel, _, size, _), st in zip(items, sent):
            state.mark(rel, st.st_size, st.st_mtime_ns)
            bar.advance(size)

    futures: list[Future] = []
    multiparts: list[_Multipart] = []
    try:
        batches = _batches(todo) if client.batch_upload is not False else []
        batched = {item[0] for b in batches for item in b}
        if batches and client.batch_upload is None:  # the first one tells if the server has them
            try:
                batch(batches.pop(0))
            except _client.BatchUnsupportedError:
                batches, batched = [], set()
        futures.extend(pool.submit(batch, b) for b in batches)
        for rel, full, size, mtime in todo:
            if rel in batched:
                continue
            if size <= MULTIPART_THRESHOLD:
                futures.append(pool.submit(single, rel, full, size, mtime))
                continue
            upload = _Multipart(client, state, rel, full, size, mtime, f'{node_path}/{rel}')
            futures.extend(upload.submit(pool, bar))
            multiparts.append(upload)
        _wait_all(futures)
        for upload in multiparts:
            upload.finish(pool, bar)
    except BaseException:
        for future in futures:
            future.cancel()
        raise


# --- lineage ----------------------------------------------------------------------------------

def _artifact_id(client: _client.AISClient, artifact_dir: str, folder: str, make_folder_: bool,
                 conflict_strategy: str, progress: Optional[bool]) -> Optional[str]:
    """Server ID of a Run's Artifact: from its ``remote`` history if still there, else upload it."""
    metadata = metadata_file.read_metadata(artifact_dir)
    for record in metadata.get('remote') or []:
        if record.get('host') == client.host and record.get('id'):
            try:
                return client.node_info(record['id'])['id']
            except _client.NodeNotFoundError:
                continue
    node = upload_artifact(artifact_dir, folder, make_folder_, conflict_strategy,
                           client=client, progress=progress)
    return node.id if node else None


def link_lineage(client: _client.AISClient, run_id: str, associations: dict, folder: str,
                 make_folder_: bool, conflict_strategy: str,
                 progress: Optional[bool] = None) -> int:
    """Uploads a Run's associated Artifacts if needed and adds missing edges (spec §6.3 steps 4–6).

    Inputs point into the Run, the Run points to its outputs. An Artifact whose local directory
    is gone is left out with a warning. Returns the number of edges added.
    """
    ins, outs = client.graph(run_id)
    edges: list[tuple[str, str]] = []
    for direction, present in (('input', ins), ('output', outs)):
        for entry in (associations or {}).get(direction) or []:
            if entry.get('kind') == 'Artifact':
                local = entry.get('localDir') or ''
                if not os.path.isfile(os.path.join(local, metadata_file.METADATA_FILE)):
                    logger.warning('Artifact %s of the Run is not at %r: its lineage is not '
                                   'uploaded', entry.get('name'), local)
                    continue
                node_id = _artifact_id(client, local, folder, make_folder_, conflict_strategy,
                                       progress)
            else:
                node_id = entry.get('id')
            if not node_id or node_id in present:
                continue
            edges.append((node_id, run_id) if direction == 'input' else (run_id, node_id))
            present.append(node_id)
    if edges:
        client.add_edges(edges)
    return len(edges)


# --- public entry points ----------------------------------------------------------------------

def _resolve(client: Optional[_client.AISClient], folder: str,
             conflict_strategy: str) -> tuple[_client.AISClient, str]:
    conflicts.check_conflict_strategy(conflict_strategy)
    client = client or _client.current()
    return client, folder_path(folder, client.user)


def start_upload(client: _client.AISClient, local_dir: str, kind: str, folder: str,
                 make_folder_: bool, conflict_strategy: str) -> Optional[Node]:
    """Creates/finds the node of a directory and appends the ``upload`` record (before any file).

    ``folder`` must be absolute. Returns None when skipped.
    """
    metadata = metadata_file.read_metadata(local_dir)
    if metadata.get('kind', kind) != kind:
        raise KindMismatchError(f'{local_dir} holds a {metadata.get("kind")}, not a {kind}')
    alt_name = os.path.basename(os.path.normpath(local_dir))
    node = create_node(client, kind, folder, metadata, alt_name, make_folder_, conflict_strategy)
    if node is not None:
        metadata_file.append_remote(local_dir, _record(client, 'upload', node, kind))
    return node


def upload_run(local_dir: str, folder: str = 'default', make_folder: bool = False,
               conflict_strategy: str = 'new', *, client: Optional[_client.AISClient] = None,
               progress: Optional[bool] = None) -> Optional[Node]:
    """Uploads a Run directory with its Artifacts and lineage (spec §6.3).

    Args:
        local_dir: The Run's directory.
        folder: Folder to upload to; a relative path goes under ``/<user>/``.
        make_folder: Create the Folder and its parents when missing.
        conflict_strategy: ``skip``, ``error``, ``new`` or ``replace`` (checked before any request).
        client: Defaults to the logged-in client.
        progress: Show a progress bar (None: only on an interactive terminal).

    Returns:
        The Run's node, or None when skipped.
    """
    client, folder = _resolve(client, folder, conflict_strategy)
    run_files.check_run_dir(local_dir)
    node = start_upload(client, local_dir, 'Run', folder, make_folder, conflict_strategy)
    if node is None:
        return None
    state = UploadState(client.host, node.path, local_dir)
    send_files(client, local_dir, node.path, state, progress,
               appender=incremental.Appender(client, node.path, state) if client.can_append() else None)
    associations = metadata_file.read_metadata(local_dir).get('associations') or {}
    link_lineage(client, node.id, associations, folder, make_folder, conflict_strategy, progress)
    return node


def upload_artifact(local_dir: str, folder: str = 'default', make_folder: bool = False,
                    conflict_strategy: str = 'new', *,
                    client: Optional[_client.AISClient] = None,
                    progress: Optional[bool] = None) -> Optional[Node]:
    """Uploads an Artifact directory (spec §6.4); same arguments as :func:`upload_run`."""
    client, folder = _resolve(client, folder, conflict_strategy)
    if not os.path.isfile(os.path.join(local_dir, metadata_file.METADATA_FILE)):
        raise FileNotFoundError(f'Missing file of Artifact: '
                                f'{os.path.join(local_dir, metadata_file.METADATA_FILE)!r}')
    node = start_upload(client, local_dir, 'Artifact', folder, make_folder, conflict_strategy)
    if node is not None:
        send_files(client, local_dir, node.path,
                   UploadState(client.host, node.path, local_dir), progress)
    return node


def node_dirs(path: str) -> list[str]:
    """The Run/Artifact directories ``em.upload(path)`` means (spec §6.5 step 1)."""
    if naming.is_node_dir(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f'Not a directory: {path!r}')
    return [os.path.join(path, name) for name in os.listdir(path)
            if naming.is_node_dir(os.path.join(path, name))]


def upload(path: str, folder: str = 'default', make_folder: bool = False,
           conflict_strategy: str = 'new', *, client: Optional[_client.AISClient] = None,
           progress: Optional[bool] = None) -> list[Optional[Node]]:
    """Uploads a Run/Artifact directory, or every one directly under ``path`` (``em.upload``).

    Args:
        path: A Run/Artifact directory, or a parent directory holding several.
        folder, make_folder, conflict_strategy, client, progress: as for :func:`upload_run`.

    Returns:
        The node of each directory (None where skipped), in ``os.listdir`` order.
    """
    conflicts.check_conflict_strategy(conflict_strategy)
    dirs = node_dirs(path)
    if not dirs:
        raise NothingToUploadError(f'No Run/Artifact is to be uploaded: {path!r} neither is one nor '
                           'holds one')
    client = client or _client.current()
    nodes = []
    for local_dir in dirs:
        kind = metadata_file.node_kind(local_dir)
        if kind == 'Run':
            nodes.append(upload_run(local_dir, folder, make_folder, conflict_strategy,
                                    client=client, progress=progress))
        elif kind == 'Artifact':
            nodes.append(upload_artifact(local_dir, folder, make_folder, conflict_strategy,
                                         client=client, progress=progress))
        else:
            raise KindMismatchError(f'{os.path.join(local_dir, metadata_file.METADATA_FILE)} has kind '
                               f'{kind!r}: neither Run nor Artifact')
    return nodes


def _safe_target(root: str, rel: str) -> str:
    """``root/rel``, refusing object paths that would leave ``root``."""
    parts = [p for p in rel.split('/') if p not in ('', '.')]
    if not parts or '..' in parts or any('\\' in p or '\0' in p for p in parts):
        raise UnsafeObjectPathError(f'Refusing to download object with unsafe path {rel!r}')
    return os.path.join(root, *parts)


def download(path: str, kind: str, *, client: Optional[_client.AISClient] = None,
             progress: Optional[bool] = None) -> str:
    """Downloads a Run/Artifact from the server and returns its local directory (spec §6.6).

    The directory is ``<EM_RUN_PARENT_DIR or EM_ARTIFACT_PARENT_DIR>/<alternativeName>``; existing
    files are overwritten, extra local files kept. A ``download`` record is appended to its
    ``metadata.yaml``. ``kind`` is ``'Run'`` or ``'Artifact'``.
    """
    if kind not in ('Run', 'Artifact'):
        raise ValueError(f"kind must be 'Run' or 'Artifact', got {kind!r}")
    if client is None:
        if not _client.is_logged_in():
            raise OSError(f'Not a local directory: {path!r} (log in with em.login() to load it '
                          'from the server)')
        client = _client.current()
    node_path = server_path(path, client.user)
    try:
        info = client.node_info(node_path)
    except _client.NodeNotFoundError:
        raise OSError(f'Not a local directory or a remote path: {path!r}') from None
    if info.get('type') != kind:
        raise KindMismatchError(f"Remote path refers to type '{info.get('type')}' rather than '{kind}'")
    alt_name = _alternative_name_of(info) or node_path.rsplit('/', 1)[-1]
    parent = naming.run_parent_dir() if kind == 'Run' else naming.artifact_parent_dir()
    target = _safe_target(parent, alt_name)
    objects = client.list_objects(node_path)
    if metadata_file.METADATA_FILE not in objects:
        raise IncompleteNodeError(f'{client.host}{node_path} has no {metadata_file.METADATA_FILE}: it is not a '
                           f'complete {kind} (was its upload interrupted?)')
    targets = {rel: _safe_target(target, rel) for rel in objects}
    for dest in set(map(os.path.dirname, targets.values())) | {target}:
        os.makedirs(dest, exist_ok=True)
    with _Progress(progress, alt_name) as bar, \
            ThreadPoolExecutor(client.concurrency, thread_name_prefix='em-download') as pool:
        bar.add_total(sum(objects.values()))

        def fetch(rel: str) -> None:
            bar.advance(client.download_object(f'{node_path}/{rel}', targets[rel]))

        for future in [pool.submit(fetch, rel) for rel in objects]:
            future.result()
    if kind == 'Run':
        os.makedirs(os.path.join(target, run_files.METRICS_DIR), exist_ok=True)
    metadata_file.append_remote(target, _record(client, 'download', Node(node_path, info['id']), kind))
    return target

