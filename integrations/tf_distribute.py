"""What ``Params.parse(dist_tf_strategy=...)`` records about ``tf.distribute`` training.

Framework event → core call: ``run.params.parse(dist_tf_strategy=strategy)`` → ``describe(strategy)``
(registered with the core by ``t9k_em_integrations``) → ``params['distributed']['tensorflow']``.

``describe(strategy)`` returns a plain, JSON-serialisable dict: the strategy, the replicas and
their devices, the cross-device communication, the rank of this process, and, for multi-worker
strategies, the cluster spec with this task's type and index (from the strategy's cluster
resolver, which reads ``TF_CONFIG``). The core stores it under
``params['distributed']['tensorflow']``. The Keras integration passes the global batch size
when it knows it (``describe(strategy, global_batch_size=...)``).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from t9k_em_core import distributed

API = 'tf.distribute'


def describe(strategy: tf.distribute.Strategy, global_batch_size: int | None = None) -> dict[str, Any]:
    """Returns the distribution configuration of ``strategy`` as a plain dict.

    Args:
        strategy: the ``tf.distribute.Strategy`` the model is trained under.
        global_batch_size: the batch size summed over all replicas, when known; the
            per-replica batch size is derived from it.

    Raises:
        TypeError: ``strategy`` is not a ``tf.distribute.Strategy``.
    """
    if not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(f'dist_tf_strategy must be a tf.distribute.Strategy, got {type(strategy).__name__}')
    replicas = int(strategy.num_replicas_in_sync)
    cluster, task_type, task_index = _cluster(strategy)
    info: dict[str, Any] = {
        'api': API,
        'strategy': _public_name(strategy),
        'replicas': replicas,
        'devices': [str(d) for d in strategy.extended.worker_devices],
        'cross_device_ops': _cross_device_ops(strategy),
        'communication': _communication(strategy),
        'world_size': _num_workers(cluster),
        'rank': distributed.get_rank(),
        'cluster_spec': cluster,
        'task_type': task_type,
        'task_index': task_index,
    }
    if global_batch_size is not None:
        info.update(batch_sizes(strategy, global_batch_size))
    return info


def batch_sizes(strategy: tf.distribute.Strategy, global_batch_size: int) -> dict[str, Any]:
    """The global batch size and its share per replica (a float when it does not divide)."""
    replicas = int(strategy.num_replicas_in_sync)
    per_replica = global_batch_size / replicas
    return {
        'global_batch_size': int(global_batch_size),
        'per_replica_batch_size': int(per_replica) if per_replica.is_integer() else per_replica,
    }


def _public_name(strategy: tf.distribute.Strategy) -> str:
    """The exported name (``MultiWorkerMirroredStrategy``), not the private class name."""
    names = getattr(type(strategy), '_tf_api_names', None) or ()
    return names[0].rsplit('.', 1)[-1] if names else type(strategy).__name__


def _cross_device_ops(strategy: tf.distribute.Strategy) -> str | None:
    ops = getattr(strategy.extended, '_cross_device_ops', None)
    return type(ops).__name__ if ops is not None else None


def _communication(strategy: tf.distribute.Strategy) -> str | None:
    """The collective implementation (``AUTO``, ``RING``, ``NCCL``) where the strategy has one."""
    options = getattr(strategy.extended, '_communication_options', None)
    implementation = getattr(options, 'implementation', None)
    return getattr(implementation, 'name', None)


def _cluster(strategy: tf.distribute.Strategy) -> tuple[dict[str, Any] | None, str | None, int | None]:
    """Cluster spec, task type and task index from the strategy's cluster resolver (which reads
    ``TF_CONFIG`` by default); all None for a single-worker strategy."""
    resolver = strategy.cluster_resolver
    if resolver is None:
        return None, None, None
    spec = resolver.cluster_spec().as_dict()
    if not spec:
        return None, None, None
    task_id = resolver.task_id
    return _plain_spec(spec), resolver.task_type, int(task_id) if task_id is not None else None


def _plain_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Job name to address list; a sparse job (index to address map) keeps string keys."""
    plain: dict[str, Any] = {}
    for job, tasks in spec.items():
        if isinstance(tasks, dict):
            plain[str(job)] = {str(i): str(address) for i, address in tasks.items()}
        else:
            plain[str(job)] = [str(address) for address in tasks]
    return plain


def _num_workers(cluster: dict[str, Any] | None) -> int:
    """Training processes (chief and workers); 1 without a cluster."""
    if not cluster:
        return 1
    return len(cluster.get('chief', ())) + len(cluster.get('worker', ())) or 1
