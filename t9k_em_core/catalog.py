"""Finds and summarises local Run and Artifact directories (what ``em ls``/``em describe`` show).

Works on directories written by this package and by t9k 0.6.0b0 alike: discovery follows
0.6.0b0's rules (``shared/spec/local-layout.md`` §2.2) and every file is read through the
readers of :mod:`~t9k_em_core.run_files`, :mod:`~t9k_em_core.artifact_files`,
:mod:`~t9k_em_core.metadata_file` and :mod:`~t9k_em_core.metric_file`. Summaries are cheap: metric files are counted, not parsed.
"""

from __future__ import annotations

import datetime
import glob
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from t9k_em_core import artifact_files, fileio, metadata_file, metric_file, naming, run_files

# 0.6.0b0's `em ls` glob for the children of a parent directory.
CHILD_GLOB = '*_' + '[0-9]' * 6 + '_' + '[0-9]' * 6 + '_*'


def find_node_dirs(path: str) -> List[str]:
    """``[path]`` when ``path`` is a Run/Artifact directory, else its matching children, sorted."""
    if naming.is_node_dir(path):
        return [path]
    return sorted(p for p in glob.glob(os.path.join(glob.escape(path), CHILD_GLOB)) if os.path.isdir(p))


@dataclass
class RunSummary:
    """One row of ``em ls`` for a Run."""

    path: str
    name: str
    alternative_name: str
    status: str
    labels: List[str]
    start: Optional[datetime.datetime]
    end: Optional[datetime.datetime]
    metric_counts: Dict[str, int] = field(default_factory=dict)

    @property
    def duration(self) -> Optional[float]:
        """Seconds from start to end; None while the Run has no end timestamp."""
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).total_seconds()


@dataclass
class ArtifactSummary:
    """One row of ``em ls`` for an Artifact."""

    path: str
    name: str
    alternative_name: str
    labels: List[str]
    created: Optional[datetime.datetime]


Summary = Union[RunSummary, ArtifactSummary]


def summarize(node_dir: str) -> Summary:
    """Reads the summary of one Run/Artifact directory.

    Raises:
        ValueError: ``metadata.yaml`` is unreadable or its ``kind`` is neither Run nor Artifact.
        OSError: the directory cannot be read.
    """
    metadata = _metadata(node_dir)
    kind = metadata.get('kind')
    alt = os.path.basename(os.path.normpath(node_dir))
    labels = [str(label) for label in metadata.get('labels') or []]
    if kind == 'Run':
        return RunSummary(
            path=node_dir, name=str(metadata.get('name')), alternative_name=alt,
            status=str(metadata.get('status')), labels=labels,
            start=parse_timestamp(metadata.get('startTimestamp')),
            end=parse_timestamp(metadata.get('endTimestamp')),
            metric_counts={t: metric_file.count_entries(run_files.metric_path(node_dir, t))
                           for t in run_files.list_metric_types(node_dir)})
    if kind == 'Artifact':
        return ArtifactSummary(
            path=node_dir, name=str(metadata.get('name')), alternative_name=alt, labels=labels,
            created=parse_timestamp(metadata.get('createdTimestamp')))
    raise ValueError(f'{os.path.join(node_dir, metadata_file.METADATA_FILE)!r} has kind {kind!r}, '
                     "expected 'Run' or 'Artifact'")


def run_details(run_dir: str) -> Dict[str, Any]:
    """What ``em describe`` shows of a Run: metadata, hparams, per-type metric count and last
    entry, platform and git (each ``{}`` when its file is missing)."""
    return {
        'metadata': _metadata(run_dir),
        'hparams': _optional_yaml(run_dir, run_files.HPARAMS_FILE),
        'metrics': {t: {'count': metric_file.count_entries(run_files.metric_path(run_dir, t)),
                        'last': metric_file.last_entry(run_files.metric_path(run_dir, t))}
                    for t in run_files.list_metric_types(run_dir)},
        'platform': _optional_yaml(run_dir, run_files.PLATFORM_FILE),
        'git': _optional_yaml(run_dir, run_files.GIT_FILE),
    }


def artifact_details(artifact_dir: str) -> Dict[str, Any]:
    """What ``em describe`` shows of an Artifact: metadata and objects (files with size and MD5,
    then references)."""
    return {'metadata': _metadata(artifact_dir), 'objects': artifact_files.walk_objects(artifact_dir)}


def parse_timestamp(value: Any) -> Optional[datetime.datetime]:
    """A metadata timestamp (ISO 8601 string, with or without microseconds) as a datetime."""
    if isinstance(value, datetime.datetime):  # an unquoted timestamp written by another tool
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value)
    except ValueError:
        return None


def _metadata(node_dir: str) -> Dict[str, Any]:
    path = os.path.join(node_dir, metadata_file.METADATA_FILE)
    try:
        metadata = metadata_file.read_metadata(node_dir)
    except FileNotFoundError:
        raise ValueError(f'{path!r} does not exist') from None
    except fileio.yaml_error_types() as e:
        raise ValueError(f'{path!r} is not valid YAML: {e}') from None
    if not isinstance(metadata, dict):
        raise ValueError(f'{path!r} does not hold a mapping')
    return metadata


def _optional_yaml(node_dir: str, name: str) -> Any:
    try:
        return fileio.read_yaml(os.path.join(node_dir, name), {})
    except FileNotFoundError:
        return {}
