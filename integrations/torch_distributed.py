"""What ``Params.parse(dist_torch_model=...)`` records about ``torch.distributed`` training.

Framework event → core call: ``run.params.parse(dist_torch_model=model)`` → ``describe(model)``
(registered with the core by ``t9k_em_integrations``) → ``params['distributed']['torch']``.

``describe(model)`` takes a model wrapped with ``DistributedDataParallel`` or ``DataParallel``
(a bare module is accepted too) and returns a plain, JSON-serialisable dict: the wrapper, the
wrapped module, the process group (backend, world size, ranks) and the wrapper's own settings.
The core stores it under ``params['distributed']['torch']``.
"""

from __future__ import annotations

import os
from typing import Any

import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

API = 'torch.distributed'


def describe(model: nn.Module) -> dict[str, Any]:
    """Returns the distributed configuration of ``model`` as a plain dict.

    Raises:
        TypeError: ``model`` is not a ``torch.nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f'dist_torch_model must be a torch.nn.Module, got {type(model).__name__}')
    info: dict[str, Any] = {
        'api': API,
        'wrapper': _wrapper_name(model),
        'module': type(getattr(model, 'module', model)).__name__,
    }
    if isinstance(model, DistributedDataParallel):
        info.update(_process_group_info(model.process_group))
        info.update({
            'device_ids': _plain_list(model.device_ids),
            'output_device': model.output_device,
            'broadcast_buffers': bool(model.broadcast_buffers),
            'find_unused_parameters': bool(model.find_unused_parameters),
            'gradient_as_bucket_view': bool(model.gradient_as_bucket_view),
            'bucket_cap_mb': model.bucket_bytes_cap / (1024 * 1024),
        })
    else:
        info.update(_process_group_info(None))
        if isinstance(model, DataParallel):
            # Single process, one replica per device (no devices when there is no GPU).
            info['device_ids'] = _plain_list(model.device_ids)
            info['output_device'] = getattr(model, 'output_device', None)
            info['replicas'] = max(len(model.device_ids), 1)
    info.setdefault('replicas', info['world_size'])
    return info


def _wrapper_name(model: nn.Module) -> str | None:
    if isinstance(model, (DistributedDataParallel, DataParallel)):
        return type(model).__name__
    return None


def _process_group_info(group: Any) -> dict[str, Any]:
    """Backend, world size and ranks; a single process when no group is initialized."""
    local_rank = _env_int('LOCAL_RANK')
    if not (dist.is_available() and dist.is_initialized()):
        return {'initialized': False, 'backend': None, 'world_size': 1, 'rank': 0,
                'local_rank': local_rank if local_rank is not None else 0,
                'local_world_size': _env_int('LOCAL_WORLD_SIZE') or 1}
    return {
        'initialized': True,
        'backend': str(dist.get_backend(group)),
        'world_size': dist.get_world_size(group),
        'rank': dist.get_rank(),
        'group_rank': dist.get_rank(group),
        'local_rank': local_rank,
        'local_world_size': _env_int('LOCAL_WORLD_SIZE'),
        'master_addr': os.environ.get('MASTER_ADDR'),
        'master_port': _env_int('MASTER_PORT'),
    }


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _plain_list(values: Any) -> list[Any] | None:
    return None if values is None else [v if isinstance(v, (int, str)) else str(v) for v in values]
