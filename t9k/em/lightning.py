"""``t9k.em.lightning``: the Lightning logger and callback (in ``t9k_em_integrations.lightning``).

``EMLogger``/``EMCallback`` are ``lightning.pytorch`` classes. ``t9k.em.lightning.pl`` holds the
same two for the ``pytorch_lightning`` namespace (imported on first use).
"""

import importlib
from typing import Any

from t9k_em_integrations.lightning import EMCallback, EMLogger

__all__ = ['EMCallback', 'EMLogger', 'pl']


def __getattr__(name: str) -> Any:
    if name == 'pl':
        return importlib.import_module('t9k_em_integrations.lightning_pl')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
