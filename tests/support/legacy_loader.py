"""A stand-in for t9k 0.6.0b0's local loaders, built from ``shared/spec/local-layout.md`` §5-§10.

t9k 0.6.0b0 is not installable here (not on PyPI), so compatibility is checked against what the
spec says its ``load_run``/``load_artifact``/``em ls`` do: pure-Python ``yaml.safe_load`` of every
file, the required files and keys, ``.yaml``-only metric files, existing Artifact ``localDir``s,
timestamps that ``datetime.fromisoformat`` accepts, and metric files that stay valid after the
0.6.0b0 writer appends an entry (``yaml.dump([entry], sort_keys=False)`` in append mode).
"""

from __future__ import annotations

import datetime
import os
from typing import Any, Dict

import yaml

RUN_FILES = ('metadata.yaml', 'index.yaml', 'hyperparameters.yaml', 'platform.yaml', 'git.yaml',
             'stdout.log')
RUN_KEYS = ('name', 'labels', 'description', 'startTimestamp', 'endTimestamp', 'status',
            'alternativeName', 'associations', 'remote')
ARTIFACT_KEYS = ('name', 'labels', 'description', 'createdTimestamp', 'remote')


def _safe_load(path: str) -> Any:
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)  # the pure-Python SafeLoader, as 0.6.0b0 uses it


def _check_timestamp(value: Any) -> None:
    assert isinstance(value, str), f'timestamp must load as str, got {value!r}'
    datetime.datetime.fromisoformat(value)


def load_run_dir(run_dir: str) -> Dict[str, Any]:
    """Loads a Run directory the way 0.6.0b0 would; fails (AssertionError/KeyError/...) if it can't."""
    for name in RUN_FILES:
        path = os.path.join(run_dir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'Missing file of Run: {path!r}')
    mdir = os.path.join(run_dir, 'metrics')
    if not os.path.isdir(mdir):
        raise FileNotFoundError(f'Missing subdirectory of Run: {mdir!r}')
    metadata = _safe_load(os.path.join(run_dir, 'metadata.yaml'))
    assert metadata.get('kind') == 'Run'
    for key in RUN_KEYS:
        metadata[key]  # KeyError like 0.6.0b0
    _check_timestamp(metadata['startTimestamp'])
    if metadata['endTimestamp'] is not None:
        _check_timestamp(metadata['endTimestamp'])
    assert metadata['status'] in ('Running', 'Complete', 'Error')
    for entry in metadata['associations']['input'] + metadata['associations']['output']:
        if entry['kind'] == 'Artifact':
            local = entry['localDir']
            if not os.path.isfile(os.path.join(local, 'metadata.yaml')):
                raise FileNotFoundError('Local directory of associated Artifact of Run does not '
                                        f'exist: {local!r}')
    metrics = {}
    for name in os.listdir(mdir):
        assert name.endswith('.yaml'), f'metric file must end in .yaml: {name}'
        entries = _safe_load(os.path.join(mdir, name))
        assert isinstance(entries, list), f'{name} must be a top-level sequence'
        for entry in entries:
            assert set(entry) == {'value', 'sequence'}
            for value in entry['value'].values():
                assert isinstance(value, float)
            _check_timestamp(entry['sequence']['timestamp'])
        metrics[name[:-5]] = entries
    return {
        'metadata': metadata,
        'index': _safe_load(os.path.join(run_dir, 'index.yaml')),
        'hparams': _safe_load(os.path.join(run_dir, 'hyperparameters.yaml')),
        'metrics': metrics,
        'platform': _safe_load(os.path.join(run_dir, 'platform.yaml')),
        'git': _safe_load(os.path.join(run_dir, 'git.yaml')),
    }


def append_like_060b0(run_dir: str, metric_type: str, value: Dict[str, float], step: int) -> None:
    """Appends one entry to a metric file exactly as 0.6.0b0's ``Run.log`` does."""
    entry = {'value': {k: float(v) for k, v in value.items()},
             'sequence': {'epoch': None, 'step': step,
                          'timestamp': datetime.datetime.now().astimezone().isoformat()}}
    with open(os.path.join(run_dir, 'metrics', f'{metric_type}.yaml'), 'a') as f:
        yaml.dump([entry], f, sort_keys=False)


def load_artifact_dir(artifact_dir: str) -> Dict[str, Any]:
    """Loads an Artifact directory the way 0.6.0b0 would."""
    metadata = _safe_load(os.path.join(artifact_dir, 'metadata.yaml'))
    assert metadata.get('kind') == 'Artifact'
    for key in ARTIFACT_KEYS:
        metadata[key]
    _check_timestamp(metadata['createdTimestamp'])
    references = {}
    if os.path.isfile(os.path.join(artifact_dir, 'references.yaml')):
        references = _safe_load(os.path.join(artifact_dir, 'references.yaml'))
    files = []
    for dirpath, _, filenames in os.walk(artifact_dir):
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), artifact_dir)
            if rel not in ('metadata.yaml', 'references.yaml'):
                files.append(rel)
    return {'metadata': metadata, 'references': references, 'files': sorted(files)}
