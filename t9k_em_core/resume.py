"""Resuming a Run: the resume key of a job, finding the Run that has it, and the rewind's cut of
the metric files with its journal (docs/resume.md).

The record of a rewind (a *segment*) is :func:`t9k_em_core.metadata_file.new_segment`'s; where
each metric file is cut is :func:`t9k_em_core.metric_file.cut_offset`'s. This module orders the
steps so that a process killed at any point leaves a Run that the next opener completes.
"""

from __future__ import annotations

import os
import re
import socket
from typing import Any, Dict, List, Mapping, Optional

from t9k_em_core import fileio, metadata_file, metric_file, naming, run_files

UNCUT_TYPES = frozenset(('system',))
"""Metric types a rewind leaves alone: the steps of system metrics count samples, not training
steps (docs/system-metrics.md)."""

_K8S_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace'
_POD_SUFFIX = re.compile(r'-[a-z0-9]{5}$')  # the random suffix of a Job's or ReplicaSet's pod


def key_from_environment(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The resume key of this job, from the environment (None outside any known job):

    1. ``EM_RESUME_KEY``, as given;
    2. torchelastic (``torchrun``): ``TORCHELASTIC_RUN_ID``; when it is ``none`` (no
       ``--rdzv-id``), the host and the elastic agent's process id, which stay the same over
       the agent's ``--max-restarts``;
    3. Kubernetes: namespace and the pod's owner (the pod name without the random suffix of a
       Job's or ReplicaSet's pod; a StatefulSet's pod name as it is);
    4. Slurm: ``SLURM_JOB_ID`` (kept by a requeued job), with the array task.
    """
    env = os.environ if environ is None else environ
    explicit = env.get('EM_RESUME_KEY')
    if explicit:
        return explicit
    run_id = env.get('TORCHELASTIC_RUN_ID')
    if run_id:
        if run_id != 'none':
            return f'torchelastic-{run_id}'
        return f'torchelastic-{socket.gethostname()}-{os.getppid()}'
    if env.get('KUBERNETES_SERVICE_HOST'):
        pod = env.get('HOSTNAME') or socket.gethostname()
        return f'k8s-{_k8s_namespace(env)}-{_POD_SUFFIX.sub("", pod)}'
    job = env.get('SLURM_ARRAY_JOB_ID') or env.get('SLURM_JOB_ID')
    if job:
        task = env.get('SLURM_ARRAY_TASK_ID')
        return f'slurm-{job}' + (f'-{task}' if env.get('SLURM_ARRAY_JOB_ID') and task else '')
    return None


def _k8s_namespace(env: Mapping[str, str]) -> str:
    try:
        with open(_K8S_NAMESPACE_FILE, encoding='utf-8') as f:
            return f.read().strip() or 'default'
    except OSError:
        return env.get('POD_NAMESPACE') or 'default'


def resolve_key(resume: Any) -> Optional[str]:
    """The key of ``create_run(resume=...)``: ``'auto'`` → :func:`key_from_environment`; any
    other non-empty string is the key itself."""
    if not isinstance(resume, str) or not resume:
        raise TypeError(f"resume must be 'auto' or a non-empty str key, got {resume!r}")
    return key_from_environment() if resume == 'auto' else resume


def find_run_dir(parent: str, key: str, name: str) -> Optional[str]:
    """The Run directory under ``parent`` with resume key ``key`` and name ``name`` (the latest
    started, if several), or None."""
    found: List[tuple] = []
    try:
        names = os.listdir(parent)
    except FileNotFoundError:
        return None
    needle = key.encode()
    for entry in names:
        run_dir = os.path.join(parent, entry)
        path = os.path.join(run_dir, metadata_file.METADATA_FILE)
        if not naming.is_node_dir(run_dir):
            continue
        try:
            with open(path, 'rb') as f:
                if needle not in f.read():  # most Runs: no YAML parse
                    continue
            metadata = metadata_file.read_metadata(run_dir)
        except (OSError, *fileio.yaml_error_types()):
            continue
        if (isinstance(metadata, dict) and metadata.get('kind') == 'Run'
                and metadata.get(metadata_file.RESUME_KEY) == key and metadata.get('name') == name):
            found.append((str(metadata.get('startTimestamp') or ''), run_dir))
    return max(found)[1] if found else None


def plan_cut(run_dir: str, step: int) -> Dict[str, int]:
    """Length each metric file of ``run_dir`` will have after a rewind to ``step``, for the
    files that get shorter (every type but :data:`UNCUT_TYPES`)."""
    lengths = {}
    for metric_type in run_files.list_metric_types(run_dir):
        if metric_type in UNCUT_TYPES:
            continue
        path = run_files.metric_path(run_dir, metric_type)
        length = metric_file.cut_offset(path, step)
        if length < os.path.getsize(path):
            lengths[metric_type] = length
    return lengths


def cut_files(run_dir: str, lengths: Dict[str, int]) -> None:
    """Truncates each metric file to its length in ``lengths`` (again, harmlessly, when a killed
    rewind had done it already: nothing is appended before the cut is complete)."""
    for metric_type, length in lengths.items():
        path = run_files.metric_path(run_dir, metric_type)
        if os.path.exists(path):
            fileio.truncate_file(path, length)


def complete_pending_cut(run_dir: str) -> None:
    """Completes a rewind a killed process left journaled in ``metadata.yaml`` (a last segment
    with ``cutting``): cuts the files, then clears the flag. Called before a Run is reopened."""
    with metadata_file.metadata_lock(run_dir):
        metadata = metadata_file.read_metadata(run_dir)
        segments = metadata.get(metadata_file.SEGMENTS) if isinstance(metadata, dict) else None
        if not segments or not isinstance(segments[-1], dict) \
                or not segments[-1].get(metadata_file.SEGMENT_CUTTING):
            return
        cut_files(run_dir, dict(segments[-1].get('metricBytes') or {}))
        del segments[-1][metadata_file.SEGMENT_CUTTING]
        metadata_file.write_metadata(run_dir, metadata, durable=True)


def run_identity(run_dir: str, alternative_name: str) -> Dict[str, str]:
    """What a checkpoint keeps to find its Run again (:func:`locate_run_dir`): the directory
    (absolute) and its name."""
    return {'local': os.path.abspath(run_dir), 'alternativeName': alternative_name}


def locate_run_dir(identity: Any) -> Optional[str]:
    """The Run directory of a :func:`run_identity` record: where it was, else the directory of
    that name under ``$EM_RUN_PARENT_DIR`` (the job moved); None when neither holds it."""
    if not isinstance(identity, dict) or not isinstance(identity.get('alternativeName'), str):
        return None
    name = identity['alternativeName']
    for run_dir in (identity.get('local'), os.path.join(naming.run_parent_dir(), name)):
        if (isinstance(run_dir, str) and os.path.basename(os.path.normpath(run_dir)) == name
                and os.path.isfile(os.path.join(run_dir, metadata_file.METADATA_FILE))):
            return run_dir
    return None
