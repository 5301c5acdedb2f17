"""``t9k.em.containers``: the seed module path of ``Params`` (in :mod:`t9k_em_core.params`)."""

from t9k_em_core.params import Params

__all__ = ['Params']
