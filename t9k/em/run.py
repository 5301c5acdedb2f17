"""``t9k.em.run``: the seed module path of ``Run`` (implemented in :mod:`t9k_em_core.run`)."""

from t9k_em_core.run import Run, create_run, load_run

__all__ = ['Run', 'create_run', 'load_run']
