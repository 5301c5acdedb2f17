"""Lightning integration: ``EMLogger`` (a Lightning ``Logger``) and ``EMCallback`` (0.6.0b0 form).

Framework event → core call:

============================================  ===================================================
Lightning                                     t9k-em core
============================================  ===================================================
**EMLogger**
``logger.experiment`` (first use, rank 0)     ``create_run(name=<LightningModule class>)``
``log_hyperparams(params)``                   ``run.params.update(plain_hparams(params))``
``log_graph(model)`` (multi-process only)     ``run.params.parse(dist_torch_model=strategy.model)``
``log_metrics(metrics, step)``                ``run.log(<type>, values, step, epoch)`` per type
``after_save_checkpoint`` (``log_model``)     ``create_artifact`` + ``add_file`` + ``mark_output``
``finalize('success')`` / any other status    ``run.finish()`` / ``run.finish(status='Error')``
a checkpoint is saved (rank 0)                ``checkpoint['t9k_em'] = resume.run_identity(run)``
``fit(ckpt_path=…)`` of a checkpoint with it  ``load_run(<its Run>)`` instead of ``create_run``,
                                              ``run.rewind(global_step - 1)``
**EMCallback(run)**
``on_fit_start``                              ``run.params.update(plain_hparams(module.hparams))``
``on_train_epoch_end``                        ``run.log('train', <callback_metrics>, step, epoch)``
``on_validation_end`` (not the sanity check)  ``run.log('val', <callback_metrics>, step, epoch)``
``on_test_end``                               ``run.log('test', <callback_metrics>, step, epoch)``
============================================  ===================================================

Metric types (``log_metrics``, ``EMCallback``): a name starting with ``train_`` or ``train/`` is
a ``train`` metric; ``val_``, ``val/``, ``valid_``, ``valid/``, ``validation_``,
``validation/`` make it ``val``; ``test_``, ``test/`` make it ``test``. The prefix is removed
(``val_loss`` is stored as ``loss`` in ``metrics/val.yaml``), except where two names of one call
would get the same short name: those keep their full names. Every other name (``loss``,
``early_stop_on``, ``lr-Adam``) is kept as it is and belongs to the phase Lightning logs it in:
``train`` while training, ``val`` while validating (sanity check included), ``test`` while
testing, and ``train`` when no Trainer is running (a direct ``log_metrics`` call). ``EMCallback``
reads Lightning's accumulated ``callback_metrics``, so there every unprefixed name is ``train``.
The ``epoch`` key that Lightning adds is not a metric: it becomes the entry's epoch (Lightning's
0-based count).

This module is written for ``lightning.pytorch`` and falls back to ``pytorch_lightning`` when the
``lightning`` package is not installed. For the ``pytorch_lightning`` namespace while both are
installed, :mod:`t9k_em_integrations.lightning_pl` gives the same classes on that namespace's
base classes.
"""

from __future__ import annotations

import os
import weakref
from argparse import Namespace
from collections.abc import Mapping
from types import FrameType
from typing import Any, Dict, Optional, Tuple, Union

from lightning_utilities.core.rank_zero import rank_zero_only  # shared by both namespaces

try:
    import lightning.pytorch as _lightning
except ImportError:  # only the standalone package is installed
    import pytorch_lightning as _lightning  # type: ignore[no-redef]

from t9k_em_core import naming, resume
from t9k_em_core.artifact import create_artifact
from t9k_em_core.callstack import find_on_stack
from t9k_em_core.params import plain_hparams
from t9k_em_core.run import Run, create_run, load_run

__all__ = ['EMLogger', 'EMCallback', 'metric_route', 'plain_hparams']

_TYPE_PREFIXES: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ('train', ('train_', 'train/')),
    ('val', ('val_', 'val/', 'valid_', 'valid/', 'validation_', 'validation/')),
    ('test', ('test_', 'test/')),
)
_DEFAULT_TYPE = 'train'
# Trainer stage (RunningStage value) → type of the metrics logged without a prefix.
_STAGE_TYPES = {'train': 'train', 'validate': 'val', 'sanity_check': 'val', 'test': 'test'}
_FALLBACK_RUN_NAME = 'lightning'
CHECKPOINT_KEY = 't9k_em'
"""Key of a Lightning checkpoint that holds the Run's identity (:func:`resume.run_identity`)."""

# Runs opened by loggers of this process, by directory: a logger unpickled in the same process
# (a copy of the Trainer) writes through the same Run object instead of opening a second one.
_OPEN_RUNS: 'weakref.WeakValueDictionary[str, Run]' = weakref.WeakValueDictionary()


# --- metric routing (no Lightning objects) -----------------------------------------------------

def metric_route(key: str) -> Tuple[Optional[str], str]:
    """``(type, short name)`` of a metric name under the prefix rule of the module docstring;
    the type is None for a name without a known prefix."""
    for metric_type, prefixes in _TYPE_PREFIXES:
        for prefix in prefixes:
            if key.startswith(prefix) and len(key) > len(prefix):
                return metric_type, key[len(prefix):]
    return None, key


class _MetricSplitter:
    """Splits one metrics dict into ``{type: {name: value}}``; routes are memoised per name."""

    def __init__(self) -> None:
        self._routes: Dict[str, Tuple[Optional[str], str]] = {}

    def split(self, metrics: Mapping, default_type: str = _DEFAULT_TYPE
              ) -> Tuple[Dict[str, Dict[str, Any]], Optional[int]]:
        """Returns the metrics by type (``default_type`` for names without a prefix), and the
        value of the ``epoch`` key (None if absent)."""
        by_type: Dict[str, Dict[str, Any]] = {}
        epoch = None
        routes = self._routes
        for key, value in metrics.items():
            if key == 'epoch':
                epoch = int(value)
                continue
            route = routes.get(key)
            if route is None:
                route = routes[key] = metric_route(key)
            metric_type = route[0] or default_type
            values = by_type.get(metric_type)
            if values is None:
                values = by_type[metric_type] = {}
            name = route[1]
            if name in values:  # two names of this call shorten alike: both keep full names
                earlier = next(k for k in metrics if k != key and k in routes
                               and (routes[k][0] or default_type, routes[k][1]) ==
                               (metric_type, name))
                values[earlier] = values.pop(name)
                name = key
            values[name] = value
        return by_type, epoch


def _version_of(run: Run) -> str:
    """The part of the Run's directory name after its name: ``<yymmdd>_<HHMMSS>_<random>``."""
    prefix = run.name + '_'
    alt = run.alternative_name
    return alt[len(prefix):] if alt.startswith(prefix) else alt


def _number(value: Any) -> Any:
    return value.item() if callable(getattr(value, 'item', None)) else value


# --- the logger ---------------------------------------------------------------------------------

class _EMLoggerMixin:
    """All of ``EMLogger``; each concrete class adds its namespace's ``Logger`` base."""

    _lightning: Any  # lightning.pytorch or pytorch_lightning, set by the concrete class
    _checkpoint_hook_class: Any  # its _RunInCheckpointMixin on that namespace's Callback

    def __init__(self, name: Optional[str] = None, *, run: Optional[Run] = None,
                 log_model: Union[bool, str] = False, **run_kwargs: Any) -> None:
        """The Run is created (or reopened) on first use, on rank 0 only.

        Args:
            name: Name of the Run to create; default: the LightningModule's class name.
            run: Log into this Run instead of creating one; the logger never finishes it.
            log_model: Store ``ModelCheckpoint`` checkpoints as output Artifacts of the Run:
                ``False`` none, ``True`` the best one when training ends, ``'all'`` each one
                when it is saved.
            **run_kwargs: More arguments of ``create_run`` (``labels``, ``description``,
                ``hparams``, ``auto_upload``, ``folder``, ``make_folder``, ``conflict_strategy``,
                ``config_path``, ``system_metrics``).

        Raises:
            ValueError: ``name`` is not a valid Run name, ``log_model`` is not False, True or
                'all', or ``run`` is given together with ``name`` or other Run arguments.
        """
        super().__init__()
        if run is not None and (name is not None or run_kwargs):
            raise ValueError('EMLogger: pass either run= (an existing Run) or the arguments of a '
                             'new Run (name=, labels=, ...), not both')
        if name is not None:
            naming.validate_name(name, 'Run')
        if not (log_model is False or log_model is True or log_model == 'all'):
            raise ValueError(f"EMLogger: log_model must be False, True or 'all', got {log_model!r}")
        self._run_name = name if run is None else run.name  # the Run's name once known
        self._version: Optional[str] = None if run is None else _version_of(run)
        self._run_kwargs = run_kwargs
        self._log_model = log_model
        self._experiment: Optional[Run] = run
        self._run_dir: Optional[str] = run.local if run is not None else None
        self._owns_run = run is None
        if run is not None:
            _OPEN_RUNS[run.local] = run
        self._splitter = _MetricSplitter()
        self._log_calls = 0
        self._trainer_ref: Optional[weakref.ref] = None
        self._distribution_recorded = False
        self._checkpoint_callback: Any = None
        self._stored_checkpoints: Dict[str, float] = {}

    # --- Lightning's Logger contract --------------------------------------------------------

    @property
    def name(self) -> Optional[str]:
        """Name of the Run (before the Run exists: the ``name`` given, if any)."""
        return self._run_name

    @property
    def version(self) -> Optional[str]:
        """What the Run's directory name adds to its name: ``<yymmdd>_<HHMMSS>_<random>``
        (None before the Run exists)."""
        return self._version

    @property
    def log_dir(self) -> Optional[str]:
        """Directory of the Run (rank 0; it is created here if needed); None on other ranks."""
        run = self.experiment
        return run.local if isinstance(run, Run) else None

    @property
    def save_dir(self) -> Optional[str]:
        """The Run's directory, as :attr:`log_dir` (``trainer.log_dir`` points there)."""
        return self.log_dir

    @property
    def experiment(self) -> Run:
        """The Run on rank 0, created on first use; Lightning's dummy experiment elsewhere."""
        if rank_zero_only.rank > 0:
            return self._lightning.loggers.logger.DummyExperiment()
        if self._experiment is None:
            self._experiment = self._open_run()
        return self._experiment

    @rank_zero_only
    def log_hyperparams(self, params: Union[Dict[str, Any], Namespace], *args: Any,
                        **kwargs: Any) -> None:
        """Merges ``params`` (dict or Namespace, nesting kept) into the Run's hyperparameters,
        made JSON-compatible by :func:`plain_hparams`."""
        self._writable_run().params.update(plain_hparams(params))

    @rank_zero_only
    def log_metrics(self, metrics: Mapping, step: Optional[int] = None) -> None:
        """Logs ``metrics`` into the Run, one entry per metric type (module docstring).

        ``step`` defaults to the number of earlier ``log_metrics`` calls.
        """
        run = self._writable_run()
        if step is None:
            step = self._log_calls
        self._log_calls += 1
        if not self._distribution_recorded and self._trainer_ref is not None:
            self._record_distribution(self._trainer_ref())
        by_type, epoch = self._splitter.split(metrics, self._phase_type())
        for metric_type, values in by_type.items():
            run.log(metric_type, values, step, epoch)

    @rank_zero_only
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Records the distributed setup (Lightning calls this once the model is wrapped and
        the process group exists); the graph itself is not stored."""
        trainer = getattr(model, '_trainer', None)
        if trainer is not None:
            self._trainer_ref = weakref.ref(trainer)
        if not self._distribution_recorded:
            self._record_distribution(trainer)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """``log_model='all'``: stores the new checkpoints now; ``True``: remembers the callback
        to store its best checkpoint in :meth:`finalize`."""
        if self._log_model == 'all':
            self._store_checkpoints(checkpoint_callback, best_only=False)
        elif self._log_model is True:
            self._checkpoint_callback = checkpoint_callback

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Ends the Run this logger opened: ``Complete`` for ``'success'``, ``Error`` for any
        other status (``'failed'``; ``'finished'`` when a cluster requeues the job). A Run given
        as ``run=`` is left open. A later fit/test with this logger reopens the same Run."""
        run = self._experiment
        if run is None:
            return
        if self._checkpoint_callback is not None:
            self._store_checkpoints(self._checkpoint_callback, best_only=True)
            self._checkpoint_callback = None
        if self._owns_run and run.status == 'Running':
            run.finish(status='Complete' if status == 'success' else 'Error')

    # --- pickling (ddp_spawn, copies of the Trainer) ----------------------------------------

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state['_experiment'] = None  # reopened from _run_dir on first use after unpickling
        state['_trainer_ref'] = None
        state['_checkpoint_callback'] = None  # a weak proxy; the Trainer passes it again
        return state

    # --- internals --------------------------------------------------------------------------

    def _phase_type(self) -> str:
        """Type of unprefixed metrics: from the stage of the Trainer that is running."""
        trainer = self._trainer_ref() if self._trainer_ref is not None else None
        stage = trainer.state.stage if trainer is not None else None
        return _STAGE_TYPES.get(stage.value if stage is not None else None, _DEFAULT_TYPE)

    def _writable_run(self) -> Run:
        """The Run, reopened when this logger finished it and Lightning logs again (fit, then
        test)."""
        run = self._experiment
        if run is None:
            return self.experiment
        if run.status != 'Running' and self._owns_run:
            run = self._experiment = self._open_run()
        return run

    def _open_run(self) -> Run:
        trainer = self._calling_trainer()
        if trainer is not None:
            self._trainer_ref = weakref.ref(trainer)
            self._attach_checkpoint_hook(trainer)
        if self._run_dir is None:
            self._run_dir = resume.locate_run_dir(self._identity_in_resumed_checkpoint())
        if self._run_dir is None:
            name = self._run_name or self._module_run_name(trainer)
            run = create_run(name=name, **self._run_kwargs)
            self._run_dir = run.local
        else:
            run = _OPEN_RUNS.get(self._run_dir)
            if run is None or (run.status != 'Running' and self._owns_run):
                run = load_run(self._run_dir,
                               system_metrics=self._run_kwargs.get('system_metrics'))
                self._owns_run = True
        _OPEN_RUNS[run.local] = run
        self._run_name, self._version = run.name, _version_of(run)
        return run

    def _attach_checkpoint_hook(self, trainer: Any) -> None:
        """Adds the callback that keeps the Run in checkpoints and rewinds it on a resume (a
        Logger gets no checkpoint hooks)."""
        if not any(getattr(c, 'em_logger', None) is self for c in trainer.callbacks
                   if isinstance(c, _RunInCheckpointMixin)):
            trainer.callbacks.append(self._checkpoint_hook_class(self))

    @staticmethod
    def _identity_in_resumed_checkpoint() -> Any:
        """The Run identity in the checkpoint that the calling ``fit(ckpt_path=…)`` resumes from
        (read memory-mapped: the tensors are not loaded), or None."""
        def ckpt_path_of(frame: FrameType) -> Any:
            if frame.f_code.co_name != '_run':
                return None
            return frame.f_locals.get('ckpt_path') or None
        path = find_on_stack(ckpt_path_of)
        if path is None or not os.path.isfile(path):
            return None
        import torch  # Lightning's own dependency
        try:
            checkpoint = torch.load(path, map_location='cpu', mmap=True, weights_only=False)
        except Exception:  # noqa: BLE001 - a checkpoint torch cannot map: Lightning says why
            return None
        return checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint, dict) else None

    def _calling_trainer(self) -> Any:
        """The Trainer whose fit/validate/test asks for the experiment (its ``self``, or a
        ``trainer`` local of a hook on the stack), or None outside a Trainer call."""
        trainer_cls = self._lightning.Trainer

        def trainer_of(frame: FrameType) -> Any:
            local = frame.f_locals
            return next((c for c in (local.get('trainer'), local.get('self'))
                         if isinstance(c, trainer_cls)), None)
        return find_on_stack(trainer_of)

    @staticmethod
    def _module_run_name(trainer: Any) -> str:
        module = getattr(trainer, 'lightning_module', None) if trainer is not None else None
        if module is None:
            return _FALLBACK_RUN_NAME
        return naming.make_valid_name(type(module).__name__, _FALLBACK_RUN_NAME)

    def _record_distribution(self, trainer: Any) -> None:
        """``params.parse(dist_torch_model=trainer.strategy.model)`` plus the Lightning strategy,
        once, when the job has more than one process."""
        if trainer is None:
            return
        self._distribution_recorded = True
        if trainer.world_size <= 1:
            return
        params = self._writable_run().params
        params.parse(dist_torch_model=trainer.strategy.model)
        distributed = dict(params.get('distributed') or {})
        flag = getattr(getattr(trainer, '_accelerator_connector', None), '_strategy_flag', None)
        distributed['lightning'] = {
            'strategy': flag if isinstance(flag, str) else type(trainer.strategy).__name__,
            'strategy_class': type(trainer.strategy).__name__,
            'num_nodes': trainer.num_nodes,
            'devices_per_node': trainer.num_devices,
            'world_size': trainer.world_size,
        }
        params['distributed'] = distributed

    def _store_checkpoints(self, checkpoint_callback: Any, best_only: bool) -> None:
        """Makes each checkpoint file not stored yet (or only the best one) an output Artifact."""
        found = self._lightning.loggers.utilities._scan_checkpoints(checkpoint_callback,
                                                                     self._stored_checkpoints)
        best = getattr(checkpoint_callback, 'best_model_path', None) or ''
        if best_only:
            found = [c for c in found if c[1] == best] or found[-1:]
        run = self._writable_run()
        monitor = getattr(checkpoint_callback, 'monitor', None)
        for mtime, path, score, tag in found:
            file_name = os.path.basename(path)
            score_text = '' if score is None or monitor is None else f', {monitor}={_number(score)}'
            artifact = create_artifact(
                name=naming.make_valid_name(os.path.splitext(file_name)[0], _FALLBACK_RUN_NAME),
                labels=['checkpoint', 'best' if path == best else tag],
                description=f'Lightning checkpoint {file_name} of Run {run.alternative_name}'
                            f'{score_text}')
            artifact.add_file(path)
            run.mark_output(artifact)
            self._stored_checkpoints[path] = mtime


class _RunInCheckpointMixin:
    """The callback an ``EMLogger`` adds to its Trainer: writes the Run's identity into each
    checkpoint, and rewinds the Run to the checkpoint's step when training resumes from one."""

    def __init__(self, em_logger: _EMLoggerMixin) -> None:
        self.em_logger = em_logger

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: Dict[str, Any]) -> None:
        run = self.em_logger._experiment
        if isinstance(run, Run) and not run.is_inert:
            checkpoint[CHECKPOINT_KEY] = resume.run_identity(run.local, run.alternative_name)

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: Dict[str, Any]) -> None:
        """Lightning logs a batch at step ``global_step`` before it counts it, so the entries
        the checkpoint has seen are those of steps up to ``global_step - 1``."""
        run = self.em_logger._experiment
        identity = checkpoint.get(CHECKPOINT_KEY)
        if (isinstance(run, Run) and isinstance(identity, dict)
                and identity.get('alternativeName') == run.alternative_name):
            step = max(int(checkpoint.get('global_step') or 0) - 1, 0)
            path = trainer.ckpt_path
            run.rewind(step, reason=f'Lightning resumed from {os.path.basename(str(path))}'
                       if path else 'Lightning resumed from a checkpoint')


class _EMCallbackMixin:
    """All of ``EMCallback``; each concrete class adds its namespace's ``Callback`` base."""

    def __init__(self, run: Run) -> None:
        """Logs metrics into ``run`` at epoch ends and adds the LightningModule's
        hyperparameters to it; the Run is not finished (as in t9k 0.6.0b0).

        The metrics are ``trainer.callback_metrics`` split by the prefix rule of the module
        docstring: ``train`` ones when a training epoch ends, ``val`` ones when validation ends
        (not the sanity check), ``test`` ones when testing ends. The step is
        ``trainer.global_step``, the epoch ``trainer.current_epoch``. Rank 0 only.
        """
        super().__init__()
        self.run = run
        self._splitter = _MetricSplitter()

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.is_global_zero:
            self.run.params.update(plain_hparams(pl_module.hparams))

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._log_epoch(trainer, 'train')

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self._log_epoch(trainer, 'val')

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self._log_epoch(trainer, 'test')

    def _log_epoch(self, trainer: Any, metric_type: str) -> None:
        if not trainer.is_global_zero:
            return
        by_type, _ = self._splitter.split(trainer.callback_metrics)
        values = by_type.get(metric_type)
        if values:
            self.run.log(metric_type, {k: _number(v) for k, v in values.items()},
                         step=trainer.global_step, epoch=trainer.current_epoch)


class _RunInCheckpoint(_RunInCheckpointMixin, _lightning.Callback):
    """See :class:`_RunInCheckpointMixin`."""


class EMLogger(_EMLoggerMixin, _lightning.loggers.Logger):
    """Lightning ``Logger`` that records a training job as a t9k-em Run.

    ``Trainer(logger=EMLogger())`` creates a Run named after the LightningModule class (rank 0,
    on first use) and records the hyperparameters, metrics, distributed setup, checkpoints
    (``log_model``) and final status. ``EMLogger(run=run)`` logs into an existing Run.
    Checkpoints keep the Run's identity: ``fit(ckpt_path=…)`` continues that Run, rewound to
    the checkpoint's step (docs/resume.md).
    """

    _lightning = _lightning
    _checkpoint_hook_class = _RunInCheckpoint


class EMCallback(_EMCallbackMixin, _lightning.Callback):
    """Lightning ``Callback`` that logs metrics into a given Run at epoch ends
    (``Trainer(callbacks=EMCallback(run))``, the t9k 0.6.0b0 form)."""

    _lightning = _lightning
