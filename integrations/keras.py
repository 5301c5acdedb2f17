"""Keras callback that records ``fit`` and ``evaluate`` into a t9k.em Run.

=================================  ===============================================================
Keras event                        core call
=================================  ===============================================================
``on_train_begin``                 ``create_run`` (when the callback owns the run),
                                   ``run.params.update(_training_setup(...))``,
                                   ``run.params.parse(dist_tf_strategy=...)`` under tf.distribute
``on_epoch_end``                   ``run.log('train', ...)`` and ``run.log('val', ...)``
``on_train_batch_end`` (opt-in)    ``run.log('train', ...)`` every ``log_every_n_batches`` steps
``on_test_end`` (``evaluate``)     ``run.log('test', ...)``, then ``run.finish()`` (when owned)
``on_train_end``                   ``create_artifact`` + ``run.mark_output`` (model saving), then
                                   ``run.finish()`` (when the callback owns the run)
=================================  ===============================================================

Resuming (docs/resume.md): an owned Run writes its identity (``resume.run_identity``) as
``t9k-em-run.json`` into the backup directory of a ``BackupAndRestore`` and the directory of a
``ModelCheckpoint`` of the same ``fit``. A later ``fit`` whose ``BackupAndRestore`` has a backup to
restore, or whose model starts from trained state (the optimizer's ``iterations``, or
``initial_epoch``) with such a ``ModelCheckpoint``, reopens that Run (``load_run``) instead of
creating one, and at its first epoch, once the backup is restored, rewinds it to the restored
step.

Steps are the optimizer's ``iterations`` (read when the epoch's validation begins, else at the
epoch's end); epochs are 1-based. A fit that raises never reaches
``on_train_end``: the core's exit hooks end the run as ``Error`` when the process ends, and a later
``fit`` with the same callback ends it as ``Error`` first.

Keras 3 gives callbacks only ``epochs`` and ``steps``; the batch size and ``validation_split`` are
read from the local variables of the ``fit`` call on the stack (the data adapter of its epoch
iterator knows the effective batch size, also for datasets and ``DataLoader``s).
"""

from __future__ import annotations

import json
import math
import operator
import os
import shutil
import tempfile
from typing import Any, Dict, Optional

import keras

from t9k_em_core import naming, resume
from t9k_em_core.artifact import create_artifact
from t9k_em_core.callstack import find_on_stack
from t9k_em_core.params import plain_hparams
from t9k_em_core.run import Run, create_run, load_run

RUN_FILE = 't9k-em-run.json'
"""File of a checkpoint directory that names the Run the checkpoints belong to."""


class EMCallback(keras.callbacks.Callback):
    """Records a Keras ``fit`` (and ``evaluate``) into a t9k.em Run.

    Examples:
        model.fit(x, y, epochs=5, callbacks=[EMCallback()])
        model.evaluate(x_test, y_test, callbacks=[EMCallback(run)])

    Args:
        run: the Run to log into; its owner finishes it. When ``None``, each ``fit`` (or an
            ``evaluate`` outside a fit) creates a Run named after the model, labelled ``keras``,
            and finishes it at the end (``Complete``).
        log_every_n_batches: also log the train metrics every N optimizer steps. Off by default,
            which lets Keras dispatch its batch hooks asynchronously.
        save_model: ``'final'`` or ``'best'`` saves the model (``model.keras``) as an output
            Artifact of the run at the end of training; ``'best'`` keeps the epoch with the best
            ``monitor`` value (the final model when ``monitor`` is never in the epoch logs).
        monitor: the epoch metric that ``save_model='best'`` compares.
        mode: ``'min'`` or ``'max'``: whether a lower or a higher ``monitor`` value is better.
        **create_run_kwargs: arguments of ``create_run`` (``auto_upload``, ``folder``,
            ``make_folder``, ``conflict_strategy``, ``name``, ``labels``, ``system_metrics``, ...)
            for an owned run.
    """

    async_safe = True
    """Keras 3.15+ may run the batch hooks in a background thread: ``Run.log`` is thread-safe."""

    def __init__(self,
                 run: Optional[Run] = None,
                 *,
                 log_every_n_batches: Optional[int] = None,
                 save_model: Optional[str] = None,
                 monitor: str = 'val_loss',
                 mode: str = 'min',
                 **create_run_kwargs: Any) -> None:
        super().__init__()
        if run is not None and create_run_kwargs:
            raise ValueError('EMCallback got both a run and create_run arguments: '
                             f'{sorted(create_run_kwargs)}')
        if log_every_n_batches is not None and (not isinstance(log_every_n_batches, int)
                                                or log_every_n_batches < 1):
            raise ValueError('log_every_n_batches must be a positive int, got '
                             f'{log_every_n_batches!r}')
        if save_model not in (None, 'final', 'best'):
            raise ValueError(f"save_model must be None, 'final' or 'best', got {save_model!r}")
        if mode not in ('min', 'max'):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.run = run
        self._owns_run = run is None
        self._create_run_kwargs = create_run_kwargs
        self._every_n = log_every_n_batches
        self._save_model = save_model
        self._monitor = monitor
        self._better = operator.lt if mode == 'min' else operator.gt
        self._fitting = False
        self._logs_lr = False
        self._epoch = 0
        self._epoch_start_step = 0
        self._step_at_validation: Optional[int] = None
        self._best: Optional[float] = None
        self._model_dir: Optional[str] = None
        self._rewind_reason: Optional[str] = None  # set when a fit resumes the Run
        if log_every_n_batches is not None:
            # Defined only when asked for: Keras versions without ``async_safe`` run batch hooks in
            # a background thread only as long as no callback overrides them.
            self.on_train_batch_end = self._log_train_batch

    # -- Keras events ---------------------------------------------------------------------------

    def on_train_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._fitting = True
        self._step_at_validation = None
        setup = _training_setup(self.model, self.params)
        self._logs_lr = isinstance(setup['optimizer'].get('learning_rate'), dict)
        self._start_run(setup)
        self.run.params.update(setup, override=False)  # a given run (an owned one has them)
        _record_distribution(self.run, self.model, setup.get('batch_size'))
        self._best = None
        if self._save_model:
            self._model_dir = tempfile.mkdtemp(prefix='t9k-em-keras-')

    def on_epoch_begin(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._epoch = epoch + 1
        if self._rewind_reason is not None:  # every on_train_begin (restores) has run
            step = _step(self.model) or epoch * int(self.params.get('steps') or 0)
            self.run.rewind(step, reason=self._rewind_reason)
            self._rewind_reason = None
        if self._every_n is not None:
            self._epoch_start_step = _step(self.model)

    def _log_train_batch(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        step = self._epoch_start_step + batch + 1
        if logs and step % self._every_n == 0:
            self.run.log('train', logs, step=step, epoch=self._epoch)

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        logs = logs or {}
        step = self._step_at_validation if self._step_at_validation is not None else _step(
            self.model)
        self._step_at_validation = None
        train = {k: v for k, v in logs.items() if not k.startswith('val_')}
        val = {k[len('val_'):]: v for k, v in logs.items() if k.startswith('val_')}
        if self._logs_lr:
            train['learning_rate'] = _number(self.model.optimizer.learning_rate)
        if train:
            self.run.log('train', train, step=step, epoch=epoch + 1)
        if val:
            self.run.log('val', val, step=step, epoch=epoch + 1)
        if self._save_model == 'best' and self._improved(logs.get(self._monitor)):
            self._save(self.model)

    def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._fitting = False
        if self._model_dir is not None:
            if self._save_model == 'final' or self._best is None:
                self._save(self.model)
            self._mark_model_output()
        if self._owns_run:
            self.run.finish()

    def on_test_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        if self._fitting:  # the epoch's validation, logged by on_epoch_end as ``val``
            # Validation does not train, so the epoch's step can be read now, while TensorFlow's
            # threads are still busy from training: 0.1 ms, where the first op after validation
            # waits 0.3-0.7 ms for them.
            self._step_at_validation = _step(self.model)
        else:
            self._start_run()

    def on_test_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        if self._fitting:
            return
        if logs:
            self.run.log('test', logs, step=_step(self.model))
        if self._owns_run:
            self.run.finish()

    # -- helpers --------------------------------------------------------------------------------

    def _start_run(self, setup: Optional[Dict[str, Any]] = None) -> None:
        """Creates the owned run, with the training ``setup`` among its hyperparameters (those
        given by the user win); ends one left open by a fit that raised as ``Error``."""
        if not self._owns_run:
            return
        if self.run is not None and self.run.status == 'Running':
            self.run.finish(status='Error')
        kwargs = dict(self._create_run_kwargs)
        if setup:
            hparams = dict(kwargs.get('hparams') or {})
            hparams.update({k: v for k, v in setup.items() if k not in hparams})
            kwargs['hparams'] = hparams
        kwargs.setdefault('name', naming.make_valid_name(self.model.name, 'keras'))
        labels = list(kwargs.get('labels') or [])
        kwargs['labels'] = labels if 'keras' in labels else labels + ['keras']
        self.run = None
        checkpoint_dirs = _checkpoint_dirs(self.model) if setup is not None else {}
        for directory, resuming in checkpoint_dirs.items():
            run_dir = resume.locate_run_dir(_read_run_file(directory)) if resuming else None
            if run_dir is not None:
                self.run = load_run(run_dir, system_metrics=kwargs.get('system_metrics'))
                self._rewind_reason = f'Keras resumed from {directory}'
                if setup:
                    self.run.params.update(setup, override=False)
                break
        if self.run is None:
            self.run = create_run(**kwargs)
        if not self.run.is_inert:
            identity = resume.run_identity(self.run.local, self.run.alternative_name)
            for directory in checkpoint_dirs:
                os.makedirs(directory, exist_ok=True)
                with open(os.path.join(directory, RUN_FILE), 'w', encoding='utf-8') as f:
                    json.dump(identity, f)

    def _improved(self, value: Any) -> bool:
        if value is None or math.isnan(float(value)):
            return False
        if self._best is not None and not self._better(float(value), self._best):
            return False
        self._best = float(value)
        return True

    def _save(self, model: keras.Model) -> None:
        model.save(os.path.join(self._model_dir, 'model.keras'))

    def _mark_model_output(self) -> None:
        try:
            if not getattr(self.run, 'is_inert', False):
                artifact = create_artifact(
                    name=naming.make_valid_name(f'{self.run.name[:34]}_model', 'keras'),
                    labels=['keras', 'model'],
                    description=f'{self._save_model} model of run {self.run.name}')
                artifact.add_file(os.path.join(self._model_dir, 'model.keras'))
                self.run.mark_output(artifact)
        finally:
            shutil.rmtree(self._model_dir, ignore_errors=True)
            self._model_dir = None


class EMFitCallback(EMCallback):
    """The t9k 0.6.0b0 name: logs ``fit`` into ``run``, which its owner finishes."""

    def __init__(self, run: Run) -> None:
        super().__init__(run)


class EMEvalCallback(EMCallback):
    """The t9k 0.6.0b0 name: logs ``evaluate`` into ``run`` as ``test`` metrics."""

    def __init__(self, run: Run) -> None:
        super().__init__(run)


def _training_setup(model: keras.Model, params: Dict[str, Any]) -> Dict[str, Any]:
    """What ``fit`` trains with, as JSON-serialisable hyperparameters."""
    optimizer = model.optimizer
    optimizer_config = {'class': type(optimizer).__name__, **plain_hparams(optimizer.get_config())}
    if not isinstance(optimizer_config.get('learning_rate'), (dict, float)):  # a schedule stays
        optimizer_config['learning_rate'] = _number(optimizer.learning_rate)  # a config
    compile_config = model.get_compile_config() or {}
    metrics = _flatten(_names([compile_config.get('metrics'),
                               compile_config.get('weighted_metrics')]))
    fit_args = _fit_arguments(model)
    setup = {
        'optimizer': optimizer_config,
        'lossType': plain_hparams(_names(model.loss)),
        'metricTypes': metrics,
        'batch_size': fit_args.get('batch_size'),
        'epochs': params.get('epochs'),
        'steps_per_epoch': params.get('steps'),
        'validation_split': fit_args.get('validation_split'),
        'trainable_params': sum(math.prod(w.shape) for w in model.trainable_weights),
        'total_params': model.count_params(),
        'keras': {'version': keras.__version__, 'backend': keras.backend.backend()},
    }
    return {k: v for k, v in setup.items() if v is not None}


def _fit_arguments(model: keras.Model) -> Dict[str, Any]:
    """``batch_size`` and ``validation_split`` of the running ``model.fit`` call, when found.

    Keras 3 does not pass them to callbacks, so they are read from the locals of the ``fit``
    frame on the stack (:func:`~t9k_em_core.callstack.find_on_stack`): the effective batch size
    from its epoch iterator's data adapter (which also knows the batch of a ``tf.data.Dataset``
    or a ``DataLoader``), else the ``batch_size`` argument.
    """
    local = find_on_stack(lambda frame: frame.f_locals if frame.f_code.co_name == 'fit'
                          and frame.f_locals.get('self') is model else None)
    if local is None:
        return {}
    adapter = getattr(local.get('epoch_iterator'), 'data_adapter', None)
    batch_size = _adapter_batch_size(adapter) or local.get('batch_size')
    split = local.get('validation_split')
    return {'batch_size': int(batch_size) if batch_size else None,
            'validation_split': float(split) if split is not None else None}


def _checkpoint_dirs(model: keras.Model) -> Dict[str, bool]:
    """Directories of the ``BackupAndRestore`` and ``ModelCheckpoint`` callbacks of the running
    ``fit``, each with whether this fit resumes from it: a backup waits to be restored, or (for a
    ``ModelCheckpoint``) the model starts from trained state."""
    local = find_on_stack(lambda frame: frame.f_locals if frame.f_code.co_name == 'fit'
                          and frame.f_locals.get('self') is model else None)
    callbacks = getattr((local or {}).get('callbacks'), 'callbacks', None) or []
    trained = _step(model) > 0 or int((local or {}).get('initial_epoch') or 0) > 0
    dirs: Dict[str, bool] = {}
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.BackupAndRestore):
            dirs[callback.backup_dir] = os.path.exists(callback._training_metadata_path)
        elif isinstance(callback, keras.callbacks.ModelCheckpoint):
            dirs[os.path.dirname(os.path.abspath(callback.filepath))] = trained
    return dirs


def _read_run_file(directory: str) -> Any:
    try:
        with open(os.path.join(directory, RUN_FILE), encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _adapter_batch_size(adapter: Any) -> Optional[int]:
    try:
        return adapter.batch_size if adapter is not None else None
    except (NotImplementedError, AttributeError, TypeError):  # adapters that cannot tell
        return None


def _record_distribution(run: Run, model: keras.Model, batch_size: Optional[int]) -> None:
    """Records the tf.distribute strategy of a model trained over several replicas or workers.

    Keras splits the ``fit`` batch over the replicas, so it is the global batch size.
    """
    strategy = getattr(model, 'distribute_strategy', None)  # TensorFlow backend only
    if strategy is None or (strategy.num_replicas_in_sync <= 1
                            and strategy.cluster_resolver is None):
        return
    from t9k_em_integrations.tf_distribute import batch_sizes
    run.params.parse(dist_tf_strategy=strategy)
    if batch_size:
        distributed = dict(run.params['distributed'])
        distributed['tensorflow'] = {**distributed['tensorflow'],
                                     **batch_sizes(strategy, batch_size)}
        run.params.update({'distributed': distributed})


def _step(model: keras.Model) -> int:
    """The optimizer's ``iterations``: the number of training steps taken so far.

    ``int`` of the backend's tensor is the fast read (tens of µs, where ``convert_to_numpy``
    costs a hundred and more); a distributed variable (``MirroredVariable``) has no ``int`` and
    goes through ``convert_to_numpy``.
    """
    optimizer = model.optimizer
    if optimizer is None:
        return 0
    value = optimizer.iterations.value
    try:
        return int(value)
    except TypeError:
        return int(keras.ops.convert_to_numpy(value))


def _number(value: Any) -> float:
    return float(keras.ops.convert_to_numpy(value))


def _names(spec: Any) -> Any:
    """Names of losses or metrics given to ``compile``, in the structure they were given."""
    if spec is None or isinstance(spec, str):
        return spec
    if isinstance(spec, dict):
        if 'class_name' in spec:  # a serialized Keras object
            return (spec.get('config') or {}).get('name') or spec['class_name']
        return {str(k): _names(v) for k, v in spec.items()}
    if isinstance(spec, (list, tuple)):
        return [_names(item) for item in spec]
    return getattr(spec, 'name', None) or getattr(spec, '__name__', None) or type(spec).__name__


def _flatten(names: Any) -> list:
    """The names in a nested structure of names, in order, without ``None``."""
    if isinstance(names, dict):
        names = list(names.values())
    if isinstance(names, list):
        return [n for item in names for n in _flatten(item)]
    return [] if names is None else [names]
