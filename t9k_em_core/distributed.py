"""The rank of this process in distributed training, and the rank-0 guard.

Only rank 0 writes and uploads a Run; other ranks get an inert Run that accepts every call.
The rank comes from the environment variables of the common launchers, read at call time:

0. a framework whose own rank is authoritative once it is initialised (Horovod: ``hvd.rank()``,
   which may differ from the launcher's variables under elastic training): when its top-level
   module is already imported, the ``initialized_rank`` that its integration registered with
   :func:`register_rank_source` is asked first;
1. ``RANK`` (torchrun, ``torch.distributed`` env init);
2. ``HOROVOD_RANK``, ``OMPI_COMM_WORLD_RANK``, ``PMI_RANK`` (horovodrun, Open MPI, MPICH);
3. ``LOCAL_RANK`` with ``NODE_RANK``/``GROUP_RANK`` (Lightning's launcher);
4. ``TF_CONFIG`` (``tf.distribute`` multi-worker): the chief, or worker 0 when there is no chief,
   is rank 0;
5. ``SLURM_PROCID`` when ``SLURM_NTASKS`` > 1;
6. an initialised ``torch.distributed`` process group, when ``torch`` is already imported.

``EM_ALL_RANKS=1`` opts out: every rank writes its own Run, named ``<name>-rank<k>`` on ranks
other than 0.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from typing import Any, Callable, List, Optional, Tuple, TypeVar

ALL_RANKS_ENV = 'EM_ALL_RANKS'

_F = TypeVar('_F', bound=Callable[..., Any])

# (framework's top-level module, its integration's ``initialized_rank() -> int | None``).
_RANK_SOURCES: List[Tuple[str, Callable[[], Optional[int]]]] = []


def register_rank_source(framework: str, initialized_rank: Callable[[], Optional[int]]) -> None:
    """Makes :func:`get_rank` ask ``initialized_rank()`` first whenever the top-level module
    ``framework`` is imported (an integration registers it; ``None`` means "not initialised")."""
    _RANK_SOURCES.append((framework, initialized_rank))


def _int_env(name: str) -> Optional[int]:
    value = os.environ.get(name, '').strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _tf_config_rank() -> Optional[int]:
    raw = os.environ.get('TF_CONFIG')
    if not raw:
        return None
    try:
        config = json.loads(raw)
        task = config.get('task') or {}
        cluster = config.get('cluster') or {}
        task_type = task.get('type')
        index = int(task.get('index', 0))
    except (ValueError, TypeError, AttributeError):
        return None
    if not task_type:
        return None
    has_chief = bool(cluster.get('chief') or cluster.get('master'))
    if task_type in ('chief', 'master'):
        return index
    if task_type == 'worker':
        return index + 1 if has_chief else index
    # parameter servers and evaluators never own the Run
    workers = len(cluster.get('worker') or []) + (1 if has_chief else 0)
    return workers + 1 + index


def _torch_rank() -> Optional[int]:
    dist = sys.modules.get('torch.distributed')
    if dist is None:
        return None
    try:
        if dist.is_available() and dist.is_initialized():
            return int(dist.get_rank())
    except Exception:  # a broken or half-initialised backend says nothing about the rank
        return None
    return None


def _framework_rank() -> Optional[int]:
    for framework, initialized_rank in _RANK_SOURCES:
        if framework not in sys.modules:
            continue
        try:
            rank = initialized_rank()
        except Exception:  # a broken framework install says nothing about the rank
            continue
        if rank is not None:
            return int(rank)
    return None


def get_rank() -> int:
    """Global rank of this process (0 when not launched for distributed training)."""
    rank = _framework_rank()
    if rank is not None:
        return rank
    for name in ('RANK', 'HOROVOD_RANK', 'OMPI_COMM_WORLD_RANK', 'PMI_RANK'):
        rank = _int_env(name)
        if rank is not None:
            return rank
    local_rank = _int_env('LOCAL_RANK')
    if local_rank is not None:
        node_rank = _int_env('NODE_RANK') or _int_env('GROUP_RANK') or 0
        if node_rank == 0:
            return local_rank
        per_node = _int_env('LOCAL_WORLD_SIZE') or max(local_rank + 1, 1)
        return node_rank * per_node + local_rank
    rank = _tf_config_rank()
    if rank is not None:
        return rank
    if (_int_env('SLURM_NTASKS') or 1) > 1:
        rank = _int_env('SLURM_PROCID')
        if rank is not None:
            return rank
    return _torch_rank() or 0


def all_ranks_enabled() -> bool:
    """Whether ``EM_ALL_RANKS=1`` asks every rank to write its own Run."""
    return os.environ.get(ALL_RANKS_ENV, '').strip().lower() in ('1', 'true', 'yes', 'on')


def should_write() -> bool:
    """Whether this process writes Runs/Artifacts: rank 0, or every rank with ``EM_ALL_RANKS=1``."""
    return all_ranks_enabled() or get_rank() == 0


def rank_zero_only(fn: _F) -> _F:
    """Decorator: ``fn`` runs only where :func:`should_write` is true, else returns None."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if should_write():
            return fn(*args, **kwargs)
        return None
    return wrapper  # type: ignore[return-value]


def rank_suffixed_name(name: str, rank: int) -> str:
    """``<name>-rank<k>``, shortened so the result still obeys the 40-character name rule."""
    suffix = f'-rank{rank}'
    base = name[:40 - len(suffix)].rstrip('_-') or 'run'
    return base + suffix
