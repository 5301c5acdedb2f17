"""``t9k.em.keras``: the Keras callbacks (implemented in ``t9k_em_integrations.keras``)."""

from t9k_em_integrations.keras import EMCallback, EMEvalCallback, EMFitCallback

__all__ = ['EMCallback', 'EMFitCallback', 'EMEvalCallback']
