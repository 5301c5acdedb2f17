"""File names and formats of Run and Artifact directories (the only module that knows them).

Everything written here is loadable by t9k 0.6.0b0 (see ``shared/spec/local-layout.md``):
YAML in block style with insertion-ordered keys, quoted timestamps, no custom tags, metric files
as one top-level block sequence that is only ever appended to. Files that are rewritten are
replaced atomically (temporary file + ``os.replace``), so a reader never sees half a file.

Readers accept the output of both 0.6.0b0 and this package.
"""

from __future__ import annotations

import datetime
import functools
import os
import random
import re
import string
import threading
import time
from typing import Any, Dict, Iterable, List, Optional, Tuple

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


def metric_file(run_dir: str, metric_type: str) -> str:
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


class TimestampFormatter:
    """Formats ``time.time()`` values like :func:`now_iso`, caching the work per second."""

    __slots__ = ('_sec', '_prefix', '_offset')

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = ''
        self._offset = ''

    def parts(self, t: float) -> Tuple[str, int, str]:
        """Returns ``(date-time up to seconds, microseconds, offset)`` of ``t``."""
        sec = int(t)
        if sec != self._sec:
            local = datetime.datetime.fromtimestamp(sec).astimezone()
            text = local.isoformat()  # no fraction: sec is whole
            self._prefix, self._offset = text[:19], text[19:]
            self._sec = sec
        return self._prefix, int((t - sec) * 1e6), self._offset


# --- YAML -------------------------------------------------------------------------------------

_yaml_lock = threading.RLock()
_yaml_cache: Dict[str, Any] = {}


def _yaml() -> Tuple[Any, Any]:
    """``(yaml module, Dumper)``: imported on first use, the C dumper when present. (Loading
    goes through ``bounded_yaml``.)"""
    if not _yaml_cache:
        with _yaml_lock:
            if not _yaml_cache:
                import yaml
                _yaml_cache['dumper'] = getattr(yaml, 'CSafeDumper', yaml.SafeDumper)
                _yaml_cache['yaml'] = yaml
    return _yaml_cache['yaml'], _yaml_cache['dumper']


def dump_yaml(data: Any) -> str:
    """YAML text of ``data`` the way 0.6.0b0 writes it: block style, keys in insertion order,
    non-ASCII characters escaped (so the files read the same under any locale encoding), but
    long strings not folded."""
    yaml, dumper = _yaml()
    return yaml.dump(data, Dumper=dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=False, width=1 << 30)


def load_yaml_text(text: str, limits: Any = None) -> Any:
    """Parses YAML text with the safe loader, bounded (``bounded_yaml.load``: size, nesting and
    alias expansion within ``limits``, default ``bounded_yaml.DOCUMENT``)."""
    from . import bounded_yaml
    return bounded_yaml.load(text, limits)


def yaml_error_types() -> Tuple[type, ...]:
    """Exception types a YAML parse may raise."""
    return (_yaml()[0].YAMLError,)


def read_yaml(path: str, default: Any = None) -> Any:
    """Loads a YAML file; an empty file gives ``default``."""
    with open(path, encoding='utf-8') as f:
        data = load_yaml_text(f.read())
    return default if data is None else data


_TMP_RE = re.compile(r'^\..+\.t9ktmp[0-9]+_[0-9]+$')


def is_temporary_file(name: str) -> bool:
    """Whether a file name is a temporary file of :func:`write_text_atomic` (never uploaded)."""
    return _TMP_RE.match(name) is not None


def write_text_atomic(path: str, text: str) -> None:
    """Replaces ``path`` with ``text`` atomically (temporary file in the same folder + rename)."""
    head, base = os.path.split(path)
    tmp = os.path.join(head, f'.{base}.t9ktmp{os.getpid()}_{threading.get_ident()}')
    try:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_yaml(path: str, data: Any) -> None:
    """Dumps ``data`` to ``path`` atomically."""
    write_text_atomic(path, dump_yaml(data))


def append_bytes(path: str, data: bytes) -> None:
    """Appends ``data`` (whole entries of UTF-8 text) to ``path``. If the disk fills up part way
    (the kernel writes what fits, then refuses the rest), the file is cut back to its old length
    before the error is raised, so that it never ends in part of an entry and the caller can
    append the same text again later."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        rest = memoryview(data)
        try:
            while rest:
                rest = rest[os.write(fd, rest):]
        except OSError:
            if len(rest) < len(data):
                os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


def metric_entry_template(keys: Iterable[str]) -> str:
    """A ``%``-template of one metric entry (a one-element YAML block sequence) for ``keys``.

    The template is produced by the YAML dumper itself, so keys are quoted exactly as PyYAML
    quotes them. Its arguments are: one float per key (``%r``), then the epoch text, the step,
    and the three parts of :meth:`TimestampFormatter.parts`. Templates are cached per key tuple
    (every Run of a process that logs the same metrics shares them).
    """
    return _entry_template(tuple(keys))


@functools.lru_cache(maxsize=1024)
def _entry_template(keys: Tuple[str, ...]) -> str:
    marks = [f'T9KPH{i}X' for i in range(len(keys))]
    epoch, step, stamp = 'T9KPHEPOCHX', 'T9KPHSTEPX', 'T9KPHSTAMPX'
    entry = {'value': dict(zip(keys, marks)),
             'sequence': {'epoch': epoch, 'step': step, 'timestamp': stamp}}
    text = dump_yaml([entry]).replace('%', '%%')
    for mark in marks:
        text = text.replace(f' {mark}\n', ' %r\n', 1)
    text = text.replace(f' {epoch}\n', ' %s\n', 1).replace(f' {step}\n', ' %d\n', 1)
    text = text.replace(f' {stamp}\n', " '%s.%06d%s'\n", 1)
    probe = text % (*[0.5] * len(keys), 'null', 7, '2000-01-01T00:00:00', 1, '+00:00')
    expected = [{'value': dict.fromkeys(keys, 0.5), 'sequence': {
        'epoch': None, 'step': 7, 'timestamp': '2000-01-01T00:00:00.000001+00:00'}}]
    if load_yaml_text(probe) != expected:  # pragma: no cover - a dumper that quotes differently
        raise AssertionError(f'metric entry template for keys {keys!r} could not be built')
    return text


def yaml_float(value: float) -> str:
    """A float as PyYAML's safe dumper writes it (``.nan``, ``.inf``, ``1.0e-05``, ``0.5``)."""
    if value != value:
        return '.nan'
    if value == _INF:
        return '.inf'
    if value == -_INF:
        return '-.inf'
    text = repr(value).lower()
    if '.' not in text and 'e' in text:
        text = text.replace('e', '.0e', 1)
    return text


_INF = float('inf')


def _trim_partial_entry(text: str) -> str:
    """Drops an incomplete last entry (a writer killed mid-append) from a metric file's text."""
    cut = text.rfind('\n- ')
    return text[:cut + 1] if cut >= 0 else ''


def _complete_entry(entry: Any) -> bool:
    sequence = entry.get('sequence') if isinstance(entry, dict) else None
    return isinstance(sequence, dict) and 'timestamp' in sequence and 'value' in entry


# The canonical shape of metric entries, as both SDKs' YAML dumper writes them. Keys are
# accepted only when PyYAML would read them as plain strings; anything else goes to YAML.
_PLAIN_KEY = re.compile(r'[A-Za-z_][A-Za-z0-9_./-]*\Z')
_YAML_WORDS = frozenset(('yes', 'no', 'true', 'false', 'on', 'off', 'null'))
_YAML_FLOAT = re.compile(r'-?[0-9]+\.[0-9]*(?:e[-+][0-9]+)?\Z')
_YAML_INT = re.compile(r'(?:0|-?[1-9][0-9]*)\Z')
_SPECIAL_FLOATS = {'.nan': float('nan'), '.inf': float('inf'), '-.inf': float('-inf')}


def _parse_canonical_metrics(text: str) -> Optional[List[Dict[str, Any]]]:
    """Parses a metric file written in the canonical shape without YAML (several times faster);
    None when any line differs from that shape (the caller then uses the YAML loader)."""
    lines = text.split('\n')
    if lines[-1] == '':
        lines.pop()
    entries: List[Dict[str, Any]] = []
    i, n = 0, len(lines)
    try:
        while i < n:
            line = lines[i]
            i += 1
            if line == '- value: {}':
                value: Dict[str, float] = {}
            elif line == '- value:':
                value = {}
                while lines[i].startswith('    '):
                    key, sep, raw = lines[i][4:].partition(': ')
                    if not sep or not _PLAIN_KEY.match(key) or key.lower() in _YAML_WORDS:
                        return None
                    if _YAML_FLOAT.match(raw):
                        value[key] = float(raw)
                    elif raw in _SPECIAL_FLOATS:
                        value[key] = _SPECIAL_FLOATS[raw]
                    else:
                        return None
                    i += 1
            else:
                return None
            sequence, epoch, step, stamp = lines[i:i + 4]
            i += 4
            if sequence != '  sequence:' or not (epoch.startswith('    epoch: ') and
                                                  step.startswith('    step: ') and
                                                  stamp.startswith("    timestamp: '") and
                                                  stamp.endswith("'")):
                return None
            epoch, step, stamp = epoch[11:], step[10:], stamp[16:-1]
            if (epoch != 'null' and not _YAML_INT.match(epoch)) or not _YAML_INT.match(step) \
                    or "'" in stamp or not stamp:
                return None
            entries.append({'value': value, 'sequence': {
                'epoch': None if epoch == 'null' else int(epoch), 'step': int(step),
                'timestamp': stamp}})
    except (IndexError, ValueError):
        return None
    return entries


def read_metric_file(path: str) -> List[Dict[str, Any]]:
    """Entries of a metric file; drops a last entry cut short by a writer killed mid-append."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    entries = _parse_canonical_metrics(text)
    if entries is not None:
        return entries
    errors = yaml_error_types()
    from .bounded_yaml import DOCUMENT
    while text:
        try:
            entries = list(load_yaml_text(text, DOCUMENT.scaled_to(len(text))) or [])
        except errors:
            text = _trim_partial_entry(text)
            continue
        if entries and not _complete_entry(entries[-1]):
            entries.pop()
        return entries
    return []



# Cheap summaries of a metric file for `em ls`/`em describe` (added by the CLI's author).
_ENTRY_START = b'\n- '


def count_metric_entries(path: str, chunk_size: int = 1 << 20) -> int:
    """Number of entries of a metric file, counted without parsing YAML.

    Each entry starts with ``- `` at column 0 (a top-level block sequence) and nothing else in
    the file does, so counting those lines is exact for files of either SDK (a last entry cut
    short by a killed writer is counted too).
    """
    with open(path, 'rb') as f:
        head = f.read(2)
        count = int(head == b'- ')
        tail = head[-1:]
        for chunk in iter(lambda: f.read(chunk_size), b''):
            data = tail + chunk
            count += data.count(_ENTRY_START)
            tail = data[-2:]
    return count


def last_metric_entry(path: str, tail_size: int = 1 << 13) -> Optional[Dict[str, Any]]:
    """The last complete entry of a metric file, parsed from the file's tail only."""
    size = os.path.getsize(path)
    errors = yaml_error_types()
    while True:
        start = max(size - tail_size, 0)
        with open(path, 'rb') as f:
            f.seek(start)
            data = f.read()
        cut = data.find(_ENTRY_START) + 1 if start else 0
        text = data[cut:].decode('utf-8') if cut or not start else ''
        while text:
            try:
                entries = [e for e in load_yaml_text(text) or [] if _complete_entry(e)]
            except errors:
                text = _trim_partial_entry(text)
                continue
            if entries:
                return entries[-1]
            break
        if not start:
            return None
        tail_size *= 4  # no complete entry in the tail: read more

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
        append_bytes(metric_file(self.run_dir, metric_type), text)

    def write_metric_entries(self, metric_type: str, entries: List[Dict[str, Any]]) -> None:
        """Writes ``metrics/<type>.yaml`` from entries (used only for a new Run given metrics)."""
        if entries:
            with open(metric_file(self.run_dir, metric_type), 'w', encoding='utf-8') as f:
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
    return {t: read_metric_file(metric_file(run_dir, t)) for t in list_metric_types(run_dir)}


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
