"""A Run directory: its file names, ``RunStorage`` (the writes of one Run) and the readers.

Everything written is loadable by t9k 0.6.0b0 (``shared/spec/local-layout.md``), and the readers
accept what both SDKs write. The metric files' own format is :mod:`t9k_em_core.metric_file`'s.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List

from t9k_em_core import metadata_file, metric_file
from t9k_em_core.fileio import append_bytes, read_yaml, write_yaml, yaml_error_types

INDEX_FILE = 'index.yaml'
HPARAMS_FILE = 'hyperparameters.yaml'
METRICS_DIR = 'metrics'
PLATFORM_FILE = 'platform.yaml'
GIT_FILE = 'git.yaml'
STDOUT_FILE = 'stdout.log'

RUN_FILES = (metadata_file.METADATA_FILE, INDEX_FILE, HPARAMS_FILE, PLATFORM_FILE, GIT_FILE, STDOUT_FILE)


def metric_path(run_dir: str, metric_type: str) -> str:
    """Path of the metric file of ``metric_type`` inside ``run_dir``."""
    return os.path.join(run_dir, METRICS_DIR, metric_type + '.yaml')


def metric_index_path(metric_type: str) -> str:
    """Relative path of a metric file as listed in ``index.yaml``."""
    return f'{METRICS_DIR}/{metric_type}.yaml'


def grows_by_appends(rel: str) -> bool:
    """Whether the file ``rel`` (relative, ``/``-separated) of a Run only ever grows at its end
    while the Run is open: the metric files and ``stdout.log`` (a rewind replaces a metric file
    with a shorter one)."""
    if rel == STDOUT_FILE:
        return True
    folder, _, name = rel.partition('/')
    return folder == METRICS_DIR and name.endswith('.yaml') and '/' not in name


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

    def write_metadata(self, metadata: Dict[str, Any], durable: bool = False) -> List[Dict[str, Any]]:
        """See :func:`t9k_em_core.metadata_file.write_metadata`."""
        return metadata_file.write_metadata(self.run_dir, metadata, durable)

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
            metric_file.write_entries(metric_path(self.run_dir, metric_type), entries)

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

    def write_metadata(self, metadata: Dict[str, Any], durable: bool = False) -> List[Dict[str, Any]]:
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
    metadata = metadata_file.read_metadata(run_dir)
    for key in metadata_file.RUN_METADATA_KEYS:
        if key not in metadata:
            raise KeyError(f'Missing key {key!r} in {os.path.join(run_dir, metadata_file.METADATA_FILE)!r}')
    metadata['alternativeName'] = os.path.basename(os.path.normpath(run_dir))
    return {
        'metadata': metadata,
        'hparams': read_yaml(os.path.join(run_dir, HPARAMS_FILE), {}),
        'metrics': read_metrics(run_dir) if with_metrics else {},
        'platform': read_yaml(os.path.join(run_dir, PLATFORM_FILE), {}),
        'git': read_yaml(os.path.join(run_dir, GIT_FILE), {}),
    }
