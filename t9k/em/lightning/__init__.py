"""``t9k.em.lightning``: the Lightning logger and callback (in ``t9k_em_integrations.lightning``).

``EMLogger``/``EMCallback`` are ``lightning.pytorch`` classes. ``t9k.em.lightning.pl`` holds the
same two for the ``pytorch_lightning`` namespace (``from t9k.em.lightning.pl import EMLogger``).
"""

from typing import Any

from t9k_em_integrations.lightning import EMCallback, EMLogger

__all__ = ['EMCallback', 'EMLogger', 'pl']


def __getattr__(name: str) -> Any:
    if name == 'pl':  # ``t9k.em.lightning.pl`` without importing it first
        import t9k.em.lightning.pl  # the import system sets the attribute ``pl`` of this package
        return t9k.em.lightning.pl
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
