"""Horovod integration: the rank of an initialised job, what ``Params.parse(dist_hvd=hvd)``
records, a rank-0 guard for user code, and metrics averaged over all ranks.

Framework event → core call:

=========================================  ======================================================
Horovod                                    t9k-em core
=========================================  ======================================================
``hvd.init()`` done, ``create_run``        ``distributed.get_rank()`` asks :func:`initialized_rank`
                                           (``hvd.rank()``): the Run writes (and samples system
                                           metrics, if asked) on Horovod's rank 0 only
``run.params.parse(dist_hvd=hvd)``         :func:`describe` → ``params['distributed']['horovod']``
metrics of one step or epoch, every rank   :func:`log_averaged` → ``run.log`` of the mean over
                                           all ranks (rank 0 writes)
user code for rank 0                       :func:`rank_zero_only` (``distributed.should_write``)
elastic reset (``hvd.elastic.run``), after  :func:`follow_elastic_resets`' hook (no user code,
the State is restored to its last commit   ``state.step``) or :func:`rewind_on_reset`'s callback
                                           (any attribute) → ``run.rewind(<step>)`` of open Runs
=========================================  ======================================================

Supported API modules: ``horovod.torch`` and ``horovod.tensorflow`` (custom training loops).
``horovod.keras`` / ``horovod.tensorflow.keras`` are described too, but on Keras 3 their
optimizer wrappers are broken (see docs/horovod.md). Importing this module imports neither
Horovod nor a framework; they are imported from the ``hvd`` module passed in.
"""

from __future__ import annotations

import functools
import math
import sys
import weakref
import zlib
from types import ModuleType, TracebackType
from typing import Any, Callable, Mapping, Optional, TypeVar

from t9k_em_core import distributed, lifecycle

_F = TypeVar('_F', bound=Callable[..., Any])

# API modules that share one Horovod runtime each; the TensorFlow ones share horovod.tensorflow's.
_TORCH_APIS = ('horovod.torch',)
_TENSORFLOW_APIS = ('horovod.tensorflow', 'horovod.tensorflow.keras', 'horovod.keras')
_API_MODULES = _TORCH_APIS + _TENSORFLOW_APIS
_BUILT_FEATURES = ('mpi', 'gloo', 'nccl', 'ddl', 'ccl', 'cuda', 'rocm')
_COLLECTIVE_NAME = 't9k_em.average_metrics'
_RESET_REASON = 'Horovod elastic reset'
_HOOK_MARK = '_t9k_em_rewinds_open_runs'
# States given to rewind_on_reset: the automatic hook leaves them to their explicit callback.
_explicit_states: 'weakref.WeakSet[Any]' = weakref.WeakSet()


def initialized_rank() -> Optional[int]:
    """``hvd.rank()`` of an already imported and initialised Horovod API module, else None.

    Used by ``t9k_em_core.distributed.get_rank`` before the launcher's environment variables.
    Imports nothing.
    """
    for name in _API_MODULES:
        hvd = sys.modules.get(name)
        if hvd is not None and hvd.is_initialized():
            return int(hvd.rank())
    return None


def describe(hvd: ModuleType) -> dict[str, Any]:
    """The Horovod job as a plain dict, for ``params['distributed']['horovod']``.

    Keys: ``api`` (the module, e.g. ``horovod.torch``), ``version``, ``initialized``, and once
    initialised ``size``, ``local_size``, ``cross_size``, ``rank``, ``local_rank``,
    ``cross_rank``, ``is_homogeneous``, ``controller`` (``gloo``, ``mpi`` or None) and
    ``built`` (which of mpi/gloo/nccl/ddl/ccl/cuda/rocm this Horovod build supports).

    Raises:
        TypeError: ``hvd`` is not a Horovod API module.
    """
    api = _api_name(hvd)
    info: dict[str, Any] = {
        'api': api,
        'version': getattr(sys.modules.get('horovod'), '__version__', None),
        'initialized': bool(hvd.is_initialized()),
    }
    if not info['initialized']:
        return info
    info.update({
        'size': hvd.size(),
        'local_size': hvd.local_size(),
        'cross_size': hvd.cross_size(),
        'rank': hvd.rank(),
        'local_rank': hvd.local_rank(),
        'cross_rank': hvd.cross_rank(),
        # horovod.keras and horovod.tensorflow.keras do not export is_homogeneous.
        'is_homogeneous': bool(hvd.is_homogeneous()) if hasattr(hvd, 'is_homogeneous') else None,
        'controller': 'gloo' if hvd.gloo_enabled() else 'mpi' if hvd.mpi_enabled() else None,
        'built': {feature: bool(getattr(hvd, f'{feature}_built')()) for feature in _BUILT_FEATURES},
    })
    return info


def average_metrics(hvd: ModuleType, metrics: Mapping[str, Any]) -> dict[str, float]:
    """The mean of ``metrics`` over all ranks, returned on every rank.

    Collective: every rank must call it, at the same point of training, with the same metric
    names (in any order); a rank that skips the call makes the others wait. Values may be
    Python numbers, NumPy scalars or single-element tensors. One allgather per call; the mean is
    computed in float64 on each rank, so every rank returns the same numbers. Call it eagerly
    (not inside ``tf.function``).

    Raises:
        TypeError: ``hvd`` is not ``horovod.torch`` or a TensorFlow Horovod API, or a value is
            not a number (the message names the metric).
        ValueError: Horovod is not initialised, or the ranks passed different metric names.
    """
    gather = _gatherer(hvd)
    if not hvd.is_initialized():
        raise ValueError('average_metrics: Horovod is not initialised; call hvd.init() first')
    values = {key: _to_float(key, value) for key, value in metrics.items()}
    if hvd.size() == 1:
        return values
    names = sorted(values)
    # The first column identifies the metric names, so every rank can tell that they match.
    row = [float(zlib.crc32('\0'.join(names).encode()))] + [values[name] for name in names]
    rows = gather(row)
    if any(other[0] != row[0] for other in rows):
        raise ValueError('average_metrics: ranks passed different metric names; '
                         f'this rank passed {names}')
    means = {name: math.fsum(other[i] for other in rows) / len(rows)
             for i, name in enumerate(names, start=1)}
    return {key: means[key] for key in values}


def log_averaged(run: Any, hvd: ModuleType, type: str, metrics: Mapping[str, Any], step: int,
                 epoch: Optional[int] = None) -> dict[str, float]:
    """Averages ``metrics`` over all ranks and logs the mean with ``run.log``.

    Collective, like :func:`average_metrics`: call it on every rank. Only rank 0's Run writes
    (the Runs of other ranks are inert). Returns the averaged metrics.
    """
    averaged = average_metrics(hvd, metrics)
    run.log(type, averaged, step=step, epoch=epoch)
    return averaged


def follow_elastic_resets() -> None:
    """Makes every Horovod elastic reset rewind this process's open Runs, with no user code.

    Called by the core's rank lookup (``create_run`` in a process where a Horovod API module is
    initialised), so users do not call it. It wraps ``horovod.common.elastic.State.on_reset``
    once: after ``hvd.elastic.run`` restored a State's last commit (a worker was lost) and ran the
    State's own reset callbacks, each open Run is rewound to ``state.step`` (horovod's own
    examples name their counters ``epoch``/``batch``; name the step ``step``, or use
    :func:`rewind_on_reset`). A State without an integer ``step``, or given to
    :func:`rewind_on_reset`, is left alone. Only rank 0's Run writes; other ranks' are inert.
    Does nothing when ``horovod.common.elastic`` is not imported.
    """
    elastic = sys.modules.get('horovod.common.elastic')
    if elastic is None or getattr(elastic.State.on_reset, _HOOK_MARK, False):
        return
    original = elastic.State.on_reset

    @functools.wraps(original)
    def on_reset(state: Any) -> None:
        original(state)
        step = getattr(state, 'step', None)
        if state in _explicit_states or not isinstance(step, int) or isinstance(step, bool):
            return
        for run in lifecycle.open_runs():
            run.rewind(step, reason=_RESET_REASON)

    setattr(on_reset, _HOOK_MARK, True)
    elastic.State.on_reset = on_reset


def rewind_on_reset(run: Any, state: Any, step_attribute: str = 'step') -> None:
    """The explicit form of :func:`follow_elastic_resets`, for one Run and a step under any name:
    at each reset of a Horovod elastic ``state`` (``hvd.elastic.TorchState`` or another
    ``State``), once ``hvd.elastic.run`` has restored the state's last commit (after a failed
    worker), ``run`` is rewound to ``state.<step_attribute>``, dropping the entries of the steps
    the workers will redo (docs/resume.md)::

        state = hvd.elastic.TorchState(model=model, optimizer=optimizer, batch=0)
        em.horovod.rewind_on_reset(run, state, step_attribute='batch')

    Call it on every rank (the Runs of other ranks are inert). A reset after added or removed
    hosts restores nothing: the rewind to the current step then drops nothing. The automatic
    hook then leaves ``state`` alone.
    """
    def rewind() -> None:
        run.rewind(int(getattr(state, step_attribute)), reason=_RESET_REASON)
    _explicit_states.add(state)
    state.register_reset_callbacks([rewind])


class rank_zero_only:  # noqa: N801 - used like a function: @rank_zero_only, rank_zero_only()
    """Runs user code only where Runs are written: rank 0 (every rank with ``EM_ALL_RANKS=1``).

    The rank is ``hvd.rank()`` once Horovod is initialised (see :func:`initialized_rank`).
    As a decorator (the core's ``t9k.em.rank_zero_only``), the function runs on rank 0 and
    returns None elsewhere::

        @rank_zero_only
        def save_checkpoint(model): ...

    As a context manager, the target is True on rank 0 only (Python cannot skip the body of a
    ``with`` block, so the block tests it)::

        with rank_zero_only() as is_rank_zero:
            if is_rank_zero:
                print(f'epoch {epoch}: {averaged}')
    """

    def __new__(cls, fn: Optional[_F] = None) -> Any:
        if fn is None:
            return super().__new__(cls)
        return distributed.rank_zero_only(fn)

    def __enter__(self) -> bool:
        return distributed.should_write()

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        return None


def _api_name(hvd: Any) -> str:
    name = getattr(hvd, '__name__', None)
    if not isinstance(hvd, ModuleType) or name not in _API_MODULES:
        raise TypeError('dist_hvd must be a Horovod API module (horovod.torch, horovod.tensorflow, '
                        f'horovod.tensorflow.keras or horovod.keras), got {hvd!r}')
    return name


def _gatherer(hvd: ModuleType) -> Callable[[list[float]], list[list[float]]]:
    """A function that allgathers one float64 row per rank with ``hvd``'s framework."""
    api = _api_name(hvd)
    if api in _TORCH_APIS:
        import torch

        def gather_torch(row: list[float]) -> list[list[float]]:
            tensor = torch.tensor([row], dtype=torch.float64)
            return hvd.allgather(tensor, name=_COLLECTIVE_NAME).tolist()
        return gather_torch

    import horovod.tensorflow as hvd_tf
    import tensorflow as tf

    def gather_tf(row: list[float]) -> list[list[float]]:
        tensor = tf.constant([row], dtype=tf.float64)
        return hvd_tf.allgather(tensor, name=_COLLECTIVE_NAME).numpy().tolist()
    return gather_tf


def _to_float(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f'average_metrics: metric {key!r} must be a number or a single-element '
                        f'tensor, got {type(value).__name__}') from None
