"""``t9k.em.lightning.pl``: ``EMLogger``/``EMCallback`` for the ``pytorch_lightning`` namespace
(in ``t9k_em_integrations.lightning_pl``)."""

from t9k_em_integrations.lightning_pl import EMCallback, EMLogger

__all__ = ['EMCallback', 'EMLogger']
