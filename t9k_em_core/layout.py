"""File names and formats of Run and Artifact directories (the only module that knows them).

Everything written here is loadable by t9k 0.6.0b0 (see ``shared/spec/local-layout.md``):
YAML in block style with insertion-ordered keys, quoted timestamps, no custom tags, metric files
as one top-level block sequence that is only ever appended to. Files that are rewritten are
replaced atomically (temporary file + ``os.replace``), so a reader never sees half a file.

Readers accept the output of both 0.6.0b0 and this package.
"""

from __future__ import annotations

import datetime
import os
import random
import re
import string
import threading
import time
from typing import Any, Dict, Iterable, List, Optional

from t9k_em_core import metric_file
from t9k_em_core.fileio import append_bytes, dump_yaml, is_temporary_file, read_yaml, write_yaml, yaml_error_types

# --- file names -------------------------------------------------------------------------------

METADATA_FILE = 'metadata.yaml'
INDEX_FILE = 'index.yaml'
HPARAMS_FILE = 'hyperparameters.yaml'
METRICS_DIR = 'metrics'
PLATFORM_FILE = 'platform.yaml'
GIT_FILE = 'git.yaml'
STDOUT_FILE = 'stdout.log'
REFERENCES_FILE = 'references.yaml'

RUN_FILES = (METADATA_FILE, INDEX_FILE, HPARAMS_FILE, PLATFORM_FILE, GIT_FILE, STDOUT_FILE)
ARTIFACT_CONTROL_FILES = frozenset((METADATA_FILE, REFERENCES_FILE))

RUN_METADATA_KEYS = ('name', 'labels', 'description', 'startTimestamp', 'endTimestamp', 'status',
                     'alternativeName', 'associations', 'remote')
ARTIFACT_METADATA_KEYS = ('name', 'labels', 'description', 'createdTimestamp', 'alternativeName',
                          'remote')

DEFAULT_RUN_PARENT_DIR = os.path.join('.em', 'runs')
DEFAULT_ARTIFACT_PARENT_DIR = os.path.join('.em', 'artifacts')


def run_parent_dir() -> str:
    """Parent directory of new Runs: ``$EM_RUN_PARENT_DIR``, read at call time."""
    return os.environ.get('EM_RUN_PARENT_DIR') or DEFAULT_RUN_PARENT_DIR


def artifact_parent_dir() -> str:
    """Parent directory of new Artifacts: ``$EM_ARTIFACT_PARENT_DIR``, read at call time."""
    return os.environ.get('EM_ARTIFACT_PARENT_DIR') or DEFAULT_ARTIFACT_PARENT_DIR


def metric_path(run_dir: str, metric_type: str) -> str:
    """Path of the metric file of ``metric_type`` inside ``run_dir``."""
    return os.path.join(run_dir, METRICS_DIR, metric_type + '.yaml')


def metric_index_path(metric_type: str) -> str:
    """Relative path of a metric file as listed in ``index.yaml``."""
    return f'{METRICS_DIR}/{metric_type}.yaml'


# --- names and timestamps ---------------------------------------------------------------------

NAME_RE = re.compile(r'^[a-zA-Z0-9][a-zA-Z0-9_-]{0,38}[a-zA-Z0-9]$|^[a-zA-Z0-9]$')
NODE_DIR_RE = re.compile(r'[0-9]{6}_[0-9]{6}_[a-z0-9]{6}$')
_SUFFIX_CHARS = string.ascii_lowercase + string.digits
_STEM_FORBIDDEN = re.compile(r'[/\\\x00-\x1f\x7f]')


def validate_name(name: Any, kind: str) -> str:
    """Returns ``name`` if it is a valid Run/Artifact name, else raises ``ValueError``."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f'Invalid name of {kind}: {name!r} (1-40 characters from [A-Za-z0-9_-], '
                         'first and last alphanumeric)')
    return name


def validate_labels(labels: Any) -> List[str]:
    """Labels as a list of str (None gives ``[]``, a single str one label) or ``TypeError``."""
    if labels is None:
        return []
    if isinstance(labels, str):
        return [labels]
    if not isinstance(labels, (list, tuple, set, frozenset)):
        raise TypeError(f'labels must be a sequence of str, got {type(labels).__name__}')
    out = list(labels)
    for label in out:
        if not isinstance(label, str):
            raise TypeError(f'labels must be str, got {type(label).__name__}: {label!r}')
    return out


CONFLICT_STRATEGIES = ('skip', 'error', 'new', 'replace')
"""What an upload does when its name is taken in the Folder (the seed's ``conflict_strategy``)."""


def check_conflict_strategy(strategy: Any) -> str:
    """Returns ``strategy``; ``ValueError`` unless it is skip, error, new or replace."""
    if strategy not in CONFLICT_STRATEGIES:
        raise ValueError(f'Invalid conflict_strategy {strategy!r}: must be one of '
                         f'{", ".join(CONFLICT_STRATEGIES)}')
    return strategy


def alternative_name(name: str) -> str:
    """``<name>_<yymmdd>_<HHMMSS>_<6 random [a-z0-9]>`` with the local wall-clock time."""
    suffix = ''.join(random.choices(_SUFFIX_CHARS, k=6))
    return f'{name}_{time.strftime("%y%m%d_%H%M%S")}_{suffix}'


def is_node_dir(path: str) -> bool:
    """Whether ``path`` names a Run/Artifact directory (basename ends like an alternative name)."""
    return os.path.isdir(path) and NODE_DIR_RE.search(os.path.basename(os.path.normpath(path))) is not None


def metric_type_error(metric_type: str) -> Optional[str]:
    """Why ``metric_type`` cannot be a metric file stem, or None when it can."""
    if not metric_type:
        return 'it is empty'
    if _STEM_FORBIDDEN.search(metric_type):
        return 'it contains a path separator or a control character'
    if metric_type.startswith('.'):
        return "it starts with '.'"
    if len(metric_type.encode()) > 200:
        return 'it is longer than 200 bytes'
    return None


def now_iso() -> str:
    """Current local time, ISO 8601 with microseconds and the local UTC offset."""
    return datetime.datetime.now().astimezone().isoformat()


# --- directories ------------------------------------------------------------------------------

_dir_locks: Dict[str, threading.RLock] = {}
_dir_locks_guard = threading.RLock()  # re-entrant: a SIGTERM handler may need it


def metadata_lock(node_dir: str) -> threading.RLock:
    """The in-process lock serialising read-modify-writes of ``node_dir``'s ``metadata.yaml``."""
    key = os.path.realpath(node_dir)
    with _dir_locks_guard:
        lock = _dir_locks.get(key)
        if lock is None:
            lock = _dir_locks[key] = threading.RLock()
        return lock


def read_metadata(node_dir: str) -> Dict[str, Any]:
    """``metadata.yaml`` of a Run or Artifact directory."""
    return read_yaml(os.path.join(node_dir, METADATA_FILE), {})


def write_metadata(node_dir: str, metadata: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Writes ``metadata.yaml``, keeping the ``remote`` history already on disk when longer.

    ``remote`` records are appended by uploads/downloads (:func:`append_remote`), possibly on
    another thread, so the file on disk is the authority for them. Returns the ``remote`` list
    that was written.
    """
    path = os.path.join(node_dir, METADATA_FILE)
    with metadata_lock(node_dir):
        remote = list(metadata.get('remote') or [])
        try:
            on_disk = (read_yaml(path, {}) or {}).get('remote') or []
        except (OSError, *yaml_error_types()):
            on_disk = []
        if len(on_disk) > len(remote):
            remote = list(on_disk)
        data = dict(metadata)
        data['remote'] = remote
        write_yaml(path, data)
        return remote


def append_remote(node_dir: str, record: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Appends one upload/download record to the ``remote`` list of ``metadata.yaml``.

    Returns the new ``remote`` list. Safe against concurrent :func:`write_metadata` calls in
    this process.
    """
    path = os.path.join(node_dir, METADATA_FILE)
    with metadata_lock(node_dir):
        data = read_yaml(path, {})
        remote = list(data.get('remote') or [])
        remote.append(dict(record))
        data['remote'] = remote
        write_yaml(path, data)
        return remote


def new_run_metadata(name: str, labels: List[str], description: str, alt_name: str) -> Dict[str, Any]:
    """Metadata of a Run that has just started (status ``Running``)."""
    return {
        'kind': 'Run',
        'name': name,
        'labels': labels,
        'description': description,
        'startTimestamp': now_iso(),
        'endTimestamp': None,
        'status': 'Running',
        'alternativeName': alt_name,
        'associations': {'input': [], 'output': []},
        'remote': [],
    }


def new_artifact_metadata(name: str, labels: List[str], description: str, alt_name: str) -> Dict[str, Any]:
    """Metadata of a new Artifact."""
    return {
        'kind': 'Artifact',
        'name': name,
        'labels': labels,
        'description': description,
        'createdTimestamp': now_iso(),
        'alternativeName': alt_name,
        'remote': [],
    }


def index_data(metric_types: Iterable[str]) -> Dict[str, Any]:
    """Content of ``index.yaml`` for the given metric types (in first-logged order)."""
    return {
        'hyperparameters': HPARAMS_FILE,
        'metrics': {t: metric_index_path(t) for t in metric_types},
        'platform': PLATFORM_FILE,
        'git': GIT_FILE,
        'log': STDOUT_FILE,
    }


class RunStorage:
    """Writes the files of one Run directory."""

    inert = False

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir

    def create(self) -> None:
        """Creates the directory and ``metrics/`` (no error when they exist)."""
        os.makedirs(os.path.join(self.run_dir, METRICS_DIR), exist_ok=True)

    def write_metadata(self, metadata: Dict[str, Any]) -> List[Dict[str, Any]]:
        """See :func:`write_metadata`."""
        return write_metadata(self.run_dir, metadata)

    def write_index(self, metric_types: Iterable[str]) -> None:
        """Rewrites ``index.yaml``."""
        write_yaml(os.path.join(self.run_dir, INDEX_FILE), index_data(metric_types))

    def write_hparams(self, hparams: Dict[str, Any]) -> None:
        """Rewrites ``hyperparameters.yaml``."""
        write_yaml(os.path.join(self.run_dir, HPARAMS_FILE), hparams)

    def write_platform(self, platform: Dict[str, Any]) -> None:
        """Rewrites ``platform.yaml``."""
        write_yaml(os.path.join(self.run_dir, PLATFORM_FILE), platform)

    def write_git(self, git: Dict[str, Any]) -> None:
        """Rewrites ``git.yaml``."""
        write_yaml(os.path.join(self.run_dir, GIT_FILE), git)

    def append_metrics(self, metric_type: str, text: bytes) -> None:
        """Appends formatted entries (UTF-8) to ``metrics/<type>.yaml``."""
        append_bytes(metric_path(self.run_dir, metric_type), text)

    def write_metric_entries(self, metric_type: str, entries: List[Dict[str, Any]]) -> None:
        """Writes ``metrics/<type>.yaml`` from entries (used only for a new Run given metrics)."""
        if entries:
            with open(metric_path(self.run_dir, metric_type), 'w', encoding='utf-8') as f:
                f.write(dump_yaml(list(entries)))

    def open_stdout_log(self):
        """Opens ``stdout.log`` for appending (created when missing), line buffered."""
        return open(os.path.join(self.run_dir, STDOUT_FILE), 'a', encoding='utf-8', buffering=1)

    def metric_types_on_disk(self) -> List[str]:
        """Stems of the existing metric files."""
        return list_metric_types(self.run_dir)


class NullRunStorage(RunStorage):
    """Inert storage of non-zero ranks: accepts every write and writes nothing."""

    inert = True

    def __init__(self, run_dir: str = '') -> None:
        super().__init__(run_dir)

    def create(self) -> None:
        pass

    def write_metadata(self, metadata: Dict[str, Any]) -> List[Dict[str, Any]]:
        return list(metadata.get('remote') or [])

    def write_index(self, metric_types: Iterable[str]) -> None:
        pass

    def write_hparams(self, hparams: Dict[str, Any]) -> None:
        pass

    def write_platform(self, platform: Dict[str, Any]) -> None:
        pass

    def write_git(self, git: Dict[str, Any]) -> None:
        pass

    def append_metrics(self, metric_type: str, text: bytes) -> None:
        pass

    def write_metric_entries(self, metric_type: str, entries: List[Dict[str, Any]]) -> None:
        pass

    def open_stdout_log(self):
        return None

    def metric_types_on_disk(self) -> List[str]:
        return []


# --- readers ----------------------------------------------------------------------------------

def list_metric_types(run_dir: str) -> List[str]:
    """Stems of ``metrics/*.yaml`` in ``run_dir``, in first-logged order.

    That order is ``index.yaml``'s; files it does not list follow, oldest inode change first
    (``st_ctime`` changes on every append, so it cannot order the listed ones).
    """
    mdir = os.path.join(run_dir, METRICS_DIR)
    try:
        names = [n for n in os.listdir(mdir) if n.endswith('.yaml') and not n.startswith('.')]
    except FileNotFoundError:
        return []
    names.sort(key=lambda n: (_mtime(os.path.join(mdir, n)), n))
    stems = [n[:-5] for n in names]
    try:
        indexed = read_yaml(os.path.join(run_dir, INDEX_FILE), {}).get('metrics')
    except (OSError, AttributeError, *yaml_error_types()):
        indexed = None
    if not isinstance(indexed, dict):
        return stems
    first = [t for t in indexed if t in stems]
    return first + [t for t in stems if t not in indexed]


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_ctime
    except OSError:
        return 0.0


def read_metrics(run_dir: str) -> Dict[str, List[Dict[str, Any]]]:
    """All metric entries of a Run directory, keyed by type."""
    return {t: metric_file.read_entries(metric_path(run_dir, t)) for t in list_metric_types(run_dir)}


def check_run_dir(run_dir: str) -> None:
    """Raises ``FileNotFoundError`` if ``run_dir`` lacks an entry 0.6.0b0 requires."""
    for name in RUN_FILES:
        path = os.path.join(run_dir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'Missing file of Run: {path!r}')
    mdir = os.path.join(run_dir, METRICS_DIR)
    if not os.path.isdir(mdir):
        raise FileNotFoundError(f'Missing subdirectory of Run: {mdir!r}')


def read_run_dir(run_dir: str, with_metrics: bool = True) -> Dict[str, Any]:
    """Reads a Run directory: ``{metadata, hparams, metrics, platform, git}``.

    ``metadata['alternativeName']`` is the directory's basename (as in 0.6.0b0). Raises
    ``FileNotFoundError`` for a missing file and ``KeyError`` for a missing metadata key.
    With ``with_metrics=False`` the metric files are not read (``metrics`` is ``{}``).
    """
    check_run_dir(run_dir)
    metadata = read_metadata(run_dir)
    for key in RUN_METADATA_KEYS:
        if key not in metadata:
            raise KeyError(f'Missing key {key!r} in {os.path.join(run_dir, METADATA_FILE)!r}')
    metadata['alternativeName'] = os.path.basename(os.path.normpath(run_dir))
    return {
        'metadata': metadata,
        'hparams': read_yaml(os.path.join(run_dir, HPARAMS_FILE), {}),
        'metrics': read_metrics(run_dir) if with_metrics else {},
        'platform': read_yaml(os.path.join(run_dir, PLATFORM_FILE), {}),
        'git': read_yaml(os.path.join(run_dir, GIT_FILE), {}),
    }


def read_references(artifact_dir: str) -> Dict[str, str]:
    """``references.yaml`` of an Artifact directory (``{}`` when absent)."""
    path = os.path.join(artifact_dir, REFERENCES_FILE)
    if not os.path.isfile(path):
        return {}
    return dict(read_yaml(path, {}))


def write_references(artifact_dir: str, references: Dict[str, str]) -> None:
    """Rewrites ``references.yaml``."""
    write_yaml(os.path.join(artifact_dir, REFERENCES_FILE), references)


def file_md5(path: str, chunk_size: int = 1 << 20) -> str:
    """Lowercase hex MD5 of a file's content."""
    import hashlib

    digest = hashlib.md5()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(chunk_size), b''):
            digest.update(chunk)
    return digest.hexdigest()


def file_object(root: str, obj_path: str) -> Dict[str, Any]:
    """In-memory description of a file object: ``{path, size_bytes, checksum}`` (MD5)."""
    full = os.path.join(root, *obj_path.split('/'))
    return {'path': obj_path, 'size_bytes': os.path.getsize(full), 'checksum': file_md5(full)}


def walk_files(root: str) -> List[str]:
    """Relative ``/``-separated paths of every file under ``root``, top-level files first."""
    out: List[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        prefix = '' if rel == '.' else rel.replace(os.sep, '/') + '/'
        out.extend(prefix + name for name in sorted(filenames))
    return out


def walk_objects(artifact_dir: str) -> Dict[str, Dict[str, Any]]:
    """Objects of an Artifact directory: files with size + MD5, then references."""
    objects: Dict[str, Dict[str, Any]] = {}
    for rel in walk_files(artifact_dir):
        if rel in ARTIFACT_CONTROL_FILES or is_temporary_file(rel.rsplit('/', 1)[-1]):
            continue
        objects[rel] = file_object(artifact_dir, rel)
    for obj_path, uri in read_references(artifact_dir).items():
        objects[obj_path] = {'path': obj_path, 'uri': uri}
    return objects


def read_artifact_dir(artifact_dir: str) -> Dict[str, Any]:
    """Reads an Artifact directory: ``{metadata, objects}`` (``alternativeName`` := basename)."""
    path = os.path.join(artifact_dir, METADATA_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Missing file of Artifact: {path!r}')
    metadata = read_metadata(artifact_dir)
    for key in ARTIFACT_METADATA_KEYS:
        if key not in metadata:
            raise KeyError(f'Missing key {key!r} in {path!r}')
    metadata['alternativeName'] = os.path.basename(os.path.normpath(artifact_dir))
    return {'metadata': metadata, 'objects': walk_objects(artifact_dir)}


def node_kind(node_dir: str) -> Optional[str]:
    """``kind`` from a directory's ``metadata.yaml`` (``Run``/``Artifact``), None if unreadable."""
    try:
        return read_metadata(node_dir).get('kind')
    except (OSError, AttributeError, *yaml_error_types()):
        return None
