"""``EMLogger`` and ``EMCallback`` for the ``pytorch_lightning`` namespace.

``lightning.pytorch`` and ``pytorch_lightning`` are separate packages with separate base classes.
:mod:`t9k_em_integrations.lightning` builds on the first; this module gives the same classes
(the same code, from its mixins) on the second, for ``pytorch_lightning.Trainer``. Framework
event → core call: the table of :mod:`t9k_em_integrations.lightning` (the mixins are that code)::

    import pytorch_lightning as pl
    from t9k.em.lightning import pl as em_pl   # or: from t9k_em_integrations.lightning_pl import ...

    trainer = pl.Trainer(logger=em_pl.EMLogger())
"""

from __future__ import annotations

import pytorch_lightning

from t9k_em_integrations.lightning import _EMCallbackMixin, _EMLoggerMixin, _RunInCheckpointMixin

__all__ = ['EMLogger', 'EMCallback']


class _RunInCheckpoint(_RunInCheckpointMixin, pytorch_lightning.Callback):
    """See :class:`t9k_em_integrations.lightning._RunInCheckpointMixin`."""


class EMLogger(_EMLoggerMixin, pytorch_lightning.loggers.Logger):
    """``pytorch_lightning`` ``Logger`` that records a training job as a t9k-em Run
    (see :class:`t9k_em_integrations.lightning.EMLogger`)."""

    _lightning = pytorch_lightning
    _checkpoint_hook_class = _RunInCheckpoint


class EMCallback(_EMCallbackMixin, pytorch_lightning.Callback):
    """``pytorch_lightning`` ``Callback`` that logs metrics into a given Run at epoch ends
    (see :class:`t9k_em_integrations.lightning.EMCallback`)."""

    _lightning = pytorch_lightning
