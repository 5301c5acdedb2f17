"""Names of Runs and Artifacts, and of the directories that hold them.

The name rule (1-40 characters from ``[A-Za-z0-9_-]``, first and last alphanumeric) and how any
text is made to follow it, labels, the alternative name that makes a directory unique
(``<name>_<yymmdd>_<HHMMSS>_<6 random>``, as in t9k 0.6.0b0), how such a directory is
recognised, where new ones go, and which metric types can be file stems.
"""

from __future__ import annotations

import os
import random
import re
import string
import time
from typing import Any, List, Optional

DEFAULT_RUN_PARENT_DIR = os.path.join('.em', 'runs')
DEFAULT_ARTIFACT_PARENT_DIR = os.path.join('.em', 'artifacts')


def run_parent_dir() -> str:
    """Parent directory of new Runs: ``$EM_RUN_PARENT_DIR``, read at call time."""
    return os.environ.get('EM_RUN_PARENT_DIR') or DEFAULT_RUN_PARENT_DIR


def artifact_parent_dir() -> str:
    """Parent directory of new Artifacts: ``$EM_ARTIFACT_PARENT_DIR``, read at call time."""
    return os.environ.get('EM_ARTIFACT_PARENT_DIR') or DEFAULT_ARTIFACT_PARENT_DIR


MAX_NAME_LENGTH = 40
_NAME_CHARS = 'a-zA-Z0-9_-'  # the alphanumeric ones must also start and end a name
NAME_RE = re.compile(rf'^[a-zA-Z0-9][{_NAME_CHARS}]{{0,{MAX_NAME_LENGTH - 2}}}[a-zA-Z0-9]$'
                     r'|^[a-zA-Z0-9]$')
NODE_DIR_RE = re.compile(r'[0-9]{6}_[0-9]{6}_[a-z0-9]{6}$')
_NOT_NAME_CHARS = re.compile(rf'[^{_NAME_CHARS}]+')
_SUFFIX_CHARS = string.ascii_lowercase + string.digits
_STEM_FORBIDDEN = re.compile(r'[/\\\x00-\x1f\x7f]')


def validate_name(name: Any, kind: str) -> str:
    """Returns ``name`` if it is a valid Run/Artifact name, else raises ``ValueError``."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f'Invalid name of {kind}: {name!r} (1-40 characters from [A-Za-z0-9_-], '
                         'first and last alphanumeric)')
    return name


def make_valid_name(text: str, fallback: str) -> str:
    """``text`` made a valid Run/Artifact name: each run of characters outside ``[A-Za-z0-9_-]``
    becomes one ``_``, the result is cut to 40 characters and stripped of ``_``/``-`` at both
    ends; ``fallback`` (itself a valid name) when nothing is left. For names that integrations
    derive from framework objects (a model's or a checkpoint's name)."""
    return _NOT_NAME_CHARS.sub('_', text)[:MAX_NAME_LENGTH].strip('_-') or fallback


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
