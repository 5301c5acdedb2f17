"""``t9k.em``: experiment management (the public API of t9k 0.6.0b0's ``t9k.em``).

Re-exports the core (:mod:`t9k_em_core`) and imports the integrations package, which registers
the frameworks' hooks with the core; holds no logic. ``login``, ``logout``, ``upload`` and
``search_runs`` are imported on first use, so that ``import t9k.em`` does not load the HTTP stack.
"""

from typing import Any

import t9k_em_integrations  # noqa: F401 - registers the frameworks' hooks with the core
from t9k_em_core.artifact import Artifact, Reference, create_artifact, load_artifact
from t9k_em_core.distributed import rank_zero_only
from t9k_em_core.params import Params
from t9k_em_core.run import Run, create_run, load_run

__all__ = ['Artifact', 'Params', 'Reference', 'Run', 'create_artifact', 'create_run',
           'load_artifact', 'load_run', 'login', 'logout', 'rank_zero_only', 'search_runs', 'upload']

def __getattr__(name: str) -> Any:
    if name in ('login', 'logout'):
        from t9k_em_core import client
        value = getattr(client, name)
    elif name == 'upload':
        from t9k_em_core.transfer import upload as value
    elif name == 'search_runs':
        from t9k_em_core.search import search_runs as value
    else:
        raise AttributeError(f"module 't9k.em' has no attribute {name!r}")
    globals()[name] = value
    return value
