"""``t9k.em.horovod``: Horovod helpers (implemented in ``t9k_em_integrations.horovod``)."""

from t9k_em_integrations.horovod import (average_metrics, describe, log_averaged, rank_zero_only,
                                         rewind_on_reset)

__all__ = ['average_metrics', 'describe', 'log_averaged', 'rank_zero_only', 'rewind_on_reset']
