"""Framework integrations of t9k-em (``t9k_em_integrations``): one module per framework.

Importing this package (``import t9k.em`` does) registers, with the core, the hooks the core calls
for frameworks it does not import itself: the describers of ``Params.parse`` and Horovod's own
rank. Each hook imports its integration module, and so its framework, only when it is called.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from t9k_em_core import distributed, params


def _describe_tf_strategy(strategy: Any) -> Dict[str, Any]:
    from t9k_em_integrations import tf_distribute
    return tf_distribute.describe(strategy)


def _describe_torch_model(model: Any) -> Dict[str, Any]:
    from t9k_em_integrations import torch_distributed
    return torch_distributed.describe(model)


def _describe_hvd(hvd: Any) -> Dict[str, Any]:
    from t9k_em_integrations import horovod
    return horovod.describe(hvd)


def _horovod_rank() -> Optional[int]:
    from t9k_em_integrations import horovod  # no framework import: it reads sys.modules
    rank = horovod.initialized_rank()
    if rank is not None:  # a Run is being opened in a Horovod job: follow its elastic resets
        horovod.follow_elastic_resets()
    return rank


params.register_describer('dist_tf_strategy', 'tensorflow', _describe_tf_strategy)
params.register_describer('dist_torch_model', 'torch', _describe_torch_model)
params.register_describer('dist_hvd', 'horovod', _describe_hvd)
distributed.register_rank_source('horovod', _horovod_rank)
