"""``metadata.yaml`` of Run and Artifact directories: its keys, new documents, and the
read-modify-writes that keep the ``remote`` history (upload/download records) whole when several
threads of this process write it.

A resumed Run has two more keys, which t9k 0.6.0b0 ignores (docs/resume.md, "On disk"):
:data:`RESUME_KEY` (the key :func:`t9k_em_core.run.create_run` finds the Run by) and
:data:`SEGMENTS` (one record per rewind, built by :func:`new_segment`).
"""

from __future__ import annotations

import datetime
import os
import threading
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Sequence

from t9k_em_core.fileio import read_yaml, write_yaml, yaml_error_types

METADATA_FILE = 'metadata.yaml'
RUN_METADATA_KEYS = ('name', 'labels', 'description', 'startTimestamp', 'endTimestamp', 'status',
                     'alternativeName', 'associations', 'remote')
RESUME_KEY = 'resumeKey'
"""Key of a Run's resume key (a string; absent when the Run was not created with ``resume``)."""
SEGMENTS = 'segments'
"""Key of a Run's rewinds: a list of :func:`new_segment` records, oldest first (absent when none)."""
RUN_EXTRA_KEYS = (RESUME_KEY, SEGMENTS)
"""Keys of a Run's ``metadata.yaml`` beyond 0.6.0b0's, written only when set."""
SEGMENT_CUTTING = 'cutting'
"""Key present (``true``) in the last segment only while the metric files are being cut: the
record is the rewind's journal, and whoever opens the Run next completes the cut."""
ARTIFACT_METADATA_KEYS = ('name', 'labels', 'description', 'createdTimestamp', 'alternativeName',
                          'remote')


def check_metadata_dict(data: Any, kind: str, keys: Sequence[str]) -> None:
    """Checks the argument of ``parse_from_dict``: a dict of the metadata keys of ``kind``
    (``to_dict``'s shape) with ``kind`` itself, if present, equal to ``kind``."""
    if not isinstance(data, Mapping):
        raise TypeError(f'{kind} data must be a dict, got {type(data).__name__}')
    if data.get('kind', kind) != kind:
        raise ValueError(f"kind must be {kind!r}, got {data['kind']!r}")
    unknown = [key for key in data if key not in ('kind', *keys)]
    if unknown:
        raise ValueError(f'Unknown key(s) in {kind} data: {", ".join(map(repr, unknown))} '
                         f'(expected the flat dict of to_dict(): kind, {", ".join(keys)})')


def now_iso() -> str:
    """Current local time, ISO 8601 with microseconds and the local UTC offset."""
    return datetime.datetime.now().astimezone().isoformat()


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


def new_segment(step: int, reason: str, previous_status: str,
                metric_bytes: Dict[str, int]) -> Dict[str, Any]:
    """The record of one rewind, as it is journaled (with :data:`SEGMENT_CUTTING`) before the
    metric files are cut.

    ``resumedAt``: the step the Run was rewound to (every entry with a higher step was dropped);
    ``timestamp``: when; ``reason``: why (free text); ``previousStatus``: the status the Run had
    before (that of the segment that ended); ``metricBytes``: the length of each metric file
    right after the cut (what an incremental upload truncates the server's copy to).
    """
    return {
        'resumedAt': int(step),
        'timestamp': now_iso(),
        'reason': str(reason),
        'previousStatus': previous_status,
        'metricBytes': {str(k): int(v) for k, v in metric_bytes.items()},
        SEGMENT_CUTTING: True,
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


def write_metadata(node_dir: str, metadata: Dict[str, Any], durable: bool = False) -> List[Dict[str, Any]]:
    """Writes ``metadata.yaml``, keeping the ``remote`` history already on disk when longer.

    ``remote`` records are appended by uploads/downloads (:func:`append_remote`), possibly on
    another thread, so the file on disk is the authority for them. Returns the ``remote`` list
    that was written. ``durable``: on disk before returning (a rewind's journal).
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
        write_yaml(path, data, durable)
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


def node_kind(node_dir: str) -> Optional[str]:
    """``kind`` from a directory's ``metadata.yaml`` (``Run``/``Artifact``), None if unreadable."""
    try:
        return read_metadata(node_dir).get('kind')
    except (OSError, AttributeError, *yaml_error_types()):
        return None
