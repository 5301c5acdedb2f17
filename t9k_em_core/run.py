"""``Run``, ``create_run`` and ``load_run``."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Dict, List, Optional, Sequence, Union

from t9k_em_core import conflicts, distributed, environment, fileio, lifecycle, metadata_file, naming, run_files
from t9k_em_core import system_metrics as sampler
from t9k_em_core.artifact import Artifact, Reference
from t9k_em_core.metrics import MetricWriter, to_index
from t9k_em_core.params import Params
from t9k_em_core.resume import complete_pending_cut, cut_files, find_run_dir, plan_cut, resolve_key

CONFIG_FILE_KEYS = ('name', 'hparams', 'labels', 'description', 'auto_upload', 'folder',
                    'make_folder', 'conflict_strategy', 'system_metrics', 'resume')


class Run:
    """A run of a specific model for a certain ML task.

    Normally created by :func:`create_run` or :func:`load_run`. Constructing one creates (or
    reopens) its local directory, writes every file of the Run, tees ``sys.stdout`` into
    ``stdout.log`` and watches for the end of the process: a Run that is not finished when the
    process ends gets status ``Error``.

    Args:
        metadata: Metadata of the Run (the keys of ``metadata.yaml``).
        hparams: Hyperparameters of the Run.
        metrics: Metrics of the Run, written to the metric files that do not exist yet.
        platform: Ignored: platform information is captured afresh (as in 0.6.0b0).
        git: Ignored: git information is captured afresh (as in 0.6.0b0).
        local_dir: Local directory (default ``$EM_RUN_PARENT_DIR/<alternativeName>``).
        inert: Accept every call but write and upload nothing (non-zero ranks).
        auto_upload, folder, make_folder, conflict_strategy, system_metrics: see
            :func:`create_run`.

    Attributes:
        name, labels, description, start_timestamp, end_timestamp, status, alternative_name,
        associations, hparams (also ``params``), metrics, platform, git, remote, local, is_inert,
        resume_key, segments.
    """

    def __init__(self, metadata: Dict[str, Any], hparams: Optional[Dict[str, Any]] = None,
                 metrics: Optional[Dict[str, List[Dict[str, Any]]]] = None,
                 platform: Optional[Dict[str, Any]] = None, git: Optional[Dict[str, Any]] = None,
                 *, local_dir: Optional[str] = None, inert: bool = False,
                 auto_upload: bool = False, folder: str = 'default', make_folder: bool = False,
                 conflict_strategy: str = 'new', system_metrics: Any = None) -> None:
        self.name: str = metadata['name']
        self.labels: List[str] = list(metadata.get('labels') or [])
        self.description: str = metadata.get('description') or ''
        self.start_timestamp: str = metadata.get('startTimestamp') or metadata_file.now_iso()
        self.end_timestamp: Optional[str] = None
        self.status: str = 'Running'
        self._previous_status: str = metadata.get('status') or 'Running'  # before a reopen
        self._reopened = False  # set by load_run / create_run(resume=...): a rewind is a resume
        self.alternative_name: str = (metadata.get('alternativeName')
                                      or naming.alternative_name(self.name))
        associations = metadata.get('associations') or {}
        self.associations: Dict[str, List[Dict[str, Any]]] = {
            'input': list(associations.get('input') or []),
            'output': list(associations.get('output') or []),
        }
        self.remote: List[Dict[str, Any]] = list(metadata.get('remote') or [])
        self.resume_key: Optional[str] = metadata.get(metadata_file.RESUME_KEY)
        self._segments: List[Dict[str, Any]] = list(metadata.get(metadata_file.SEGMENTS) or [])
        self.local: str = local_dir or os.path.join(naming.run_parent_dir(), self.alternative_name)
        self._storage = run_files.NullRunStorage(self.local) if inert else run_files.RunStorage(self.local)
        self._params = Params(self._write_hparams, hparams)  # TypeError before anything is written
        sample_every = None if inert else sampler.interval_of(system_metrics)
        self._end_lock = threading.RLock()  # re-entrant: the SIGTERM handler may end this Run
        self._ended = False
        self._syncer: Any = None

        self._storage.create()
        self.remote = self._storage.write_metadata(self._metadata_dict())
        self._write_hparams(self._params.as_dict())
        for metric_type, entries in (metrics or {}).items():
            if metric_type not in self._storage.metric_types_on_disk():
                self._storage.write_metric_entries(metric_type, list(entries))
        known_types = self._storage.metric_types_on_disk()
        self._storage.write_index(known_types)
        self._git_capture: Optional[threading.Thread] = None
        if inert:
            self.platform: Dict[str, Any] = dict(platform or {})
            self._git: Dict[str, Any] = dict(git or {})
        else:
            self.platform = environment.capture_platform()
            # ``git status`` takes milliseconds: it runs on a thread, and git.yaml says "unknown"
            # until then (the file exists at every moment, as readers expect).
            self._git = environment.unknown_git()
            self._git_capture = threading.Thread(target=self._capture_git, name='t9k-em-git',
                                                 daemon=True)
        self._storage.write_platform(self.platform)
        self._storage.write_git(self._git)
        if self._git_capture is not None:
            self._git_capture.start()
        self._writer = MetricWriter(self._storage, known_types, self._metric_types_changed,
                                    self._changed)
        self.log = self._writer.log
        self._stdout_log = self._storage.open_stdout_log()
        lifecycle.tee_stdout(self._stdout_log)
        if not inert:
            lifecycle.register(self)
        if auto_upload and not inert:
            from t9k_em_core import sync  # the HTTP stack: only for a Run that uploads
            self._syncer = sync.Syncer(self.local, folder, make_folder, conflict_strategy)
        self._sampling = (None if sample_every is None
                          else sampler.start(self._writer.log, sample_every, self.local))

    # --- attributes -----------------------------------------------------------------------------

    @property
    def hparams(self) -> Params:
        """Hyperparameters of the Run (a :class:`Params`)."""
        return self._params

    @hparams.setter
    def hparams(self, value: Dict[str, Any]) -> None:
        params = Params(self._write_hparams, dict(value or {}))
        self._params = params
        self._write_hparams(params.as_dict())

    params = hparams

    @property
    def git(self) -> Dict[str, Any]:
        """``git.yaml``: the repository of the entry script (waits for its capture)."""
        self._await_git()
        return self._git

    @git.setter
    def git(self, value: Dict[str, Any]) -> None:
        self._await_git()
        self._git = value

    @property
    def metrics(self) -> Dict[str, List[Dict[str, Any]]]:
        """Metrics logged to this Run, by type, read from the metric files (after a flush)."""
        if self.is_inert:
            return {}
        self._writer.flush()
        return run_files.read_metrics(self.local)

    @property
    def segments(self) -> List[Dict[str, Any]]:
        """The Run's rewinds, oldest first (``metadata.yaml``'s ``segments``; docs/resume.md)."""
        return [dict(s) for s in self._segments]

    @property
    def is_inert(self) -> bool:
        """True on non-zero ranks: the Run accepts every call but writes and uploads nothing."""
        return self._storage.inert

    # --- seed API -------------------------------------------------------------------------------

    # ``Run.log`` is the writer's method: here for its signature and documentation; each Run
    # binds its own writer's ``log`` over it in ``__init__``, so the hot path makes one call.
    log = MetricWriter.log

    def finish(self, *args: Any, sync_timeout: Optional[float] = None, **kwargs: Any) -> None:
        """Ends the Run: flushes metrics, sets ``status`` (``'Complete'``, or ``status='Error'``)
        and ``end_timestamp``, stops the stdout copy and completes a running auto-upload.

        Calling it again is harmless (nothing happens). ``sync_timeout``: seconds to wait for
        the auto-upload (default ``$EM_SYNC_TIMEOUT``); the exit hook of ``lifecycle`` passes a
        short one when it ends a Run the process left open.
        """
        status = kwargs.pop('status', args[0] if args else 'Complete')
        if status not in ('Complete', 'Error'):
            raise ValueError(f"status must be 'Complete' or 'Error', got {status!r}")
        with lifecycle.signals_deferred():  # a Ctrl-C or SIGTERM now waits until the Run is ended
            with self._end_lock:
                if self._ended:
                    return
                self._ended = True
            if self._sampling is not None:
                sampler.stop(self._sampling)  # its last sample, before the writer closes
            self._writer.close()
            self._await_git()
            self.status = status
            self.end_timestamp = metadata_file.now_iso()
            self._write_metadata()
            lifecycle.untee_stdout(self._stdout_log)
            lifecycle.unregister(self)
        if self._syncer is not None:
            self._syncer.close(sync_timeout)

    def update(self, new_params: Dict[str, Any], override: bool = True) -> None:
        """Updates the hyperparameters of the Run: ``run.params.update(new_params, override)``
        (one write of ``hyperparameters.yaml``), as the seed's ``Params`` example calls it.

        Args:
            new_params: New params to be updated with.
            override: Whether to override current params; if False, existing keys are kept.
        """
        self._params.update(new_params, override)

    def rewind(self, step: int, reason: str = 'rewind') -> None:
        """Drops every metric entry with a step greater than ``step``, in every metric type but
        ``system``, and records a segment (``segments``): resumed at ``step``, now, for
        ``reason``. Call it when training goes back to a checkpoint of step ``step``, before
        logging the redone steps; the integrations do it themselves (docs/resume.md).

        A Run created by this process that has nothing to drop records nothing (the first
        attempt of a job calls ``rewind(0)`` like every other).

        Crash-safe: the rewind is journaled in ``metadata.yaml`` first, and a process killed
        midway leaves each metric file whole, cut or not; the next ``load_run`` or
        ``create_run(resume=...)`` completes the cut. Its cost grows with the entries dropped,
        not with the length of the Run.

        Raises:
            TypeError, ValueError: ``step`` is not a non-negative integer.
            RuntimeError: the Run is finished (reopen it with :func:`load_run` first).
        """
        step = to_index('step', step)
        if self.is_inert:
            return
        if self._ended:
            raise RuntimeError(f'Run {self.alternative_name} is finished: reopen it with load_run '
                               'before rewinding it')
        with lifecycle.signals_deferred(), self._writer.paused():
            lengths = plan_cut(self.local, step)
            if not lengths and not self._reopened:
                return  # a Run of this process that has nothing to drop: no resume to record
            segment = metadata_file.new_segment(step, reason, self._previous_status, lengths)
            self._segments.append(segment)
            self._write_metadata(durable=True)  # the journal: the cut is known before it starts
            cut_files(self.local, lengths)
            del segment[metadata_file.SEGMENT_CUTTING]
            self._write_metadata(durable=True)
        self._previous_status = 'Running'
        self._reopened = False

    def mark_input(self, resource: Any) -> None:
        """Marks an Artifact, or a :class:`Reference` (Model, Dataset, ...), as an input."""
        self._mark('input', resource)

    def mark_output(self, resource: Any) -> None:
        """Marks an Artifact, or a :class:`Reference` (Model, Dataset, ...), as an output."""
        self._mark('output', resource)

    def upload(self, folder: str = 'default', make_folder: bool = False,
               conflict_strategy: str = 'new') -> None:
        """Uploads this Run (and its not yet uploaded Artifacts, and the lineage) to the server.

        Args:
            folder: Folder to upload to; a relative path goes under ``/<current-user>/``.
            make_folder: Create the Folder and its parents when missing.
            conflict_strategy: ``'skip'``, ``'error'``, ``'new'`` or ``'replace'``.
        """
        if self.is_inert:
            return
        self._writer.flush()
        self._await_git()
        if self._stdout_log is not None and not self._stdout_log.closed:
            self._stdout_log.flush()
        from t9k_em_core import transfer  # the HTTP stack: imported on first use
        transfer.upload_run(self.local, folder, make_folder, conflict_strategy)
        self.remote = list(metadata_file.read_metadata(self.local).get('remote') or [])

    def to_dict(self) -> Dict[str, Any]:
        """The Run's metadata as 0.6.0b0 returns it: a flat dict of ``kind``, ``name``,
        ``labels``, ``description``, ``startTimestamp``, ``endTimestamp``, ``status``,
        ``alternativeName``, ``associations`` and ``remote`` (the keys of ``metadata.yaml``).
        Hyperparameters, metrics, platform and git are the attributes of the same names."""
        metadata = self._metadata_dict()
        return {key: metadata[key] for key in ('kind', *metadata_file.RUN_METADATA_KEYS)}

    def parse_from_dict(self, data: Dict[str, Any]) -> None:
        """Sets this Run's metadata attributes from a dict shaped like :meth:`to_dict`'s result
        (keys it lacks keep their values) and rewrites ``metadata.yaml``.

        Raises:
            TypeError: ``data`` is not a dict.
            ValueError: ``kind`` is not ``'Run'``, or a key is not one of :meth:`to_dict`'s.
        """
        metadata_file.check_metadata_dict(data, 'Run', metadata_file.RUN_METADATA_KEYS)
        self.name = data.get('name', self.name)
        self.labels = list(data.get('labels', self.labels) or [])
        self.description = data.get('description', self.description) or ''
        self.start_timestamp = data.get('startTimestamp', self.start_timestamp)
        self.end_timestamp = data.get('endTimestamp', self.end_timestamp)
        self.status = data.get('status', self.status)
        self.alternative_name = data.get('alternativeName', self.alternative_name)
        associations = data.get('associations')
        if associations is not None:
            self.associations = {'input': list(associations.get('input') or []),
                                 'output': list(associations.get('output') or [])}
        self.remote = list(data.get('remote', self.remote) or [])
        self._write_metadata()

    def __repr__(self) -> str:
        inert = ', inert' if self.is_inert else ''
        return f'<Run {self.alternative_name} {self.status} at {self.local!r}{inert}>'

    # --- internals ------------------------------------------------------------------------------

    def _metadata_dict(self) -> Dict[str, Any]:
        return {
            'kind': 'Run',
            'name': self.name,
            'labels': list(self.labels),
            'description': self.description,
            'startTimestamp': self.start_timestamp,
            'endTimestamp': self.end_timestamp,
            'status': self.status,
            'alternativeName': self.alternative_name,
            'associations': {'input': list(self.associations['input']),
                             'output': list(self.associations['output'])},
            'remote': list(self.remote),
            **({metadata_file.RESUME_KEY: self.resume_key} if self.resume_key is not None else {}),
            **({metadata_file.SEGMENTS: [dict(s) for s in self._segments]} if self._segments else {}),
        }

    def _write_metadata(self, durable: bool = False) -> None:
        self.remote = self._storage.write_metadata(self._metadata_dict(), durable)
        self._changed()

    def _write_hparams(self, data: Dict[str, Any]) -> None:
        self._storage.write_hparams(data)
        self._changed()

    def _capture_git(self) -> None:
        try:
            git = environment.capture_git()
            self._storage.write_git(git)
        except Exception as e:  # noqa: BLE001 - a thread of the training job: report, go on
            print(f'EM WARNING: cannot record git.yaml: {e!r}', file=sys.stderr)
            return
        self._git = git
        self._changed()

    def _await_git(self) -> None:
        """Waits until ``git.yaml`` holds the captured repository (``git status`` has a timeout)."""
        capture = self._git_capture
        if capture is not None:
            capture.join()
            self._git_capture = None

    def _metric_types_changed(self, metric_types: List[str]) -> None:
        self._storage.write_index(metric_types)

    def _changed(self) -> None:
        syncer = getattr(self, '_syncer', None)
        if syncer is not None:
            syncer.notify()

    def _mark(self, direction: str, resource: Any) -> None:
        if isinstance(resource, Artifact):
            entry = {'kind': 'Artifact', 'name': resource.alternative_name,
                     'localDir': resource.local}
            same = lambda e: e.get('kind') == 'Artifact' and e.get('name') == entry['name']  # noqa: E731
        elif isinstance(resource, Reference):
            entry = resource.to_association()
            same = lambda e: e.get('kind') != 'Artifact' and e.get('path') == entry['path']  # noqa: E731
        else:
            raise TypeError(f'Instance type cannot be marked: {type(resource).__name__} (mark an '
                            'em Artifact, or a Reference to a Model, Dataset, branch, tag or commit)')
        entries = self.associations[direction]
        if any(same(e) for e in entries):
            return
        entries.append(entry)
        self._write_metadata()


# --- module functions ---------------------------------------------------------------------------

def _read_config_file(config_path: str) -> Dict[str, Any]:
    data = fileio.read_yaml(config_path, {})
    if not isinstance(data, dict):
        raise ValueError(f'Run config file {config_path!r} must hold a mapping')
    for key in data:
        if key not in CONFIG_FILE_KEYS:
            raise ValueError(f'Unknown arg provided by config file: {key!r} (allowed: '
                             f'{", ".join(CONFIG_FILE_KEYS)})')
    return data


def _upload_folder(folder: str, folder_path: Optional[str]) -> str:
    """The upload Folder of ``create_run``, given as ``folder`` or as its seed alias ``folder_path``."""
    if folder_path is None:
        return folder
    if folder not in ('default', folder_path):
        raise ValueError(f'folder={folder!r} and folder_path={folder_path!r} name different '
                         'Folders: give one of them (folder_path is another name of folder)')
    return folder_path


def create_run(config_path: Optional[str] = None, name: str = 'default',
               hparams: Optional[Dict[str, Any]] = None, labels: Optional[Sequence[str]] = None,
               description: str = '', auto_upload: bool = False, folder: str = 'default',
               make_folder: bool = False, conflict_strategy: str = 'new', *,
               folder_path: Optional[str] = None,
               system_metrics: Union[bool, float, None] = None, resume: Optional[str] = None) -> Run:
    """Creates and initializes a new Run, or with ``resume`` continues the Run of a restarted job.

    Its directory is ``$EM_RUN_PARENT_DIR/<alternativeName>`` (default parent ``.em/runs``;
    the variable is read at each call). On a non-zero rank of distributed training the Run is
    inert (nothing written or uploaded) unless ``EM_ALL_RANKS=1``, which gives each rank its own
    Run named ``<name>-rank<k>``.

    Args:
        config_path: YAML file whose keys (``name``, ``hparams``, ``labels``, ``description``,
            ``auto_upload``, ``folder``, ``make_folder``, ``conflict_strategy``,
            ``system_metrics``, ``resume``) take precedence over the arguments. Any other key raises
            ``ValueError`` (``folder_path`` too, as in 0.6.0b0).
        name: Name of the Run: 1-40 characters from ``[A-Za-z0-9_-]``, alphanumeric at both ends.
        hparams: Initial hyperparameters (JSON-serialisable).
        labels: Labels of the Run.
        description: Description of the Run.
        auto_upload: Upload the Run and its changes in the background.
        folder: Folder to upload to; a relative path goes under ``/<current-user>/``.
        make_folder: Create the Folder and its parents when missing.
        conflict_strategy: ``'skip'``, ``'error'``, ``'new'`` or ``'replace'``, applied when
            the Folder holds a Run of the same name.
        folder_path: Another name of ``folder`` (the seed's own example writes
            ``folder_path=``); giving both with different values raises ``ValueError``.
        system_metrics: Sample the GPUs, CPU, memory, disk and network into the metric type
            ``system``: ``True`` every second, a number of seconds (at least 0.1), ``False``
            off. By default what ``$EM_SYSTEM_METRICS`` says (``0`` is off), else every second.
            Inert Runs (non-zero ranks) never sample. See docs/system-metrics.md.
        resume: ``'auto'`` or a resume key (str). The Run of this name whose resume key it is
            (under ``$EM_RUN_PARENT_DIR``) is reopened like :func:`load_run` (status
            ``Running``, new metrics appended; ``hparams`` are merged in); when there is none,
            a new Run is created with that key. ``'auto'`` takes the key from the job:
            ``$EM_RESUME_KEY``, else torchelastic's run id, the Kubernetes pod's owner or the
            Slurm job id; outside any job it creates a new Run. Follow it with
            :meth:`Run.rewind` to the step of the checkpoint training goes on from
            (docs/resume.md).

    Returns:
        The Run, status ``Running``.
    """
    args = {'name': name, 'hparams': hparams, 'labels': labels, 'description': description,
            'auto_upload': auto_upload, 'folder': _upload_folder(folder, folder_path),
            'make_folder': make_folder, 'conflict_strategy': conflict_strategy,
            'system_metrics': system_metrics, 'resume': resume}
    if config_path is not None:
        args.update(_read_config_file(config_path))
    if args['auto_upload']:
        conflicts.check_conflict_strategy(args['conflict_strategy'])
    rank = distributed.get_rank()
    all_ranks = distributed.all_ranks_enabled()
    run_name = naming.validate_name(args['name'], 'Run')
    if rank != 0 and all_ranks:
        run_name = distributed.rank_suffixed_name(run_name, rank)
    description = args['description']
    if description is None:
        description = ''
    if not isinstance(description, str):
        raise TypeError(f'description must be a str, got {type(description).__name__}')
    labels = naming.validate_labels(args['labels'])
    inert = rank != 0 and not all_ranks
    key = None if args['resume'] is None else resolve_key(args['resume'])
    found = None if key is None or inert else find_run_dir(naming.run_parent_dir(), key, run_name)
    if found is not None:
        run = _reopen(found, inert=False, auto_upload=bool(args['auto_upload']),
                      folder=args['folder'], make_folder=bool(args['make_folder']),
                      conflict_strategy=args['conflict_strategy'],
                      system_metrics=args['system_metrics'])
        if args['hparams']:
            run.params.update(args['hparams'])
        return run
    alt_name = naming.alternative_name(run_name)
    metadata = metadata_file.new_run_metadata(run_name, labels, description, alt_name)
    if key is not None:
        metadata[metadata_file.RESUME_KEY] = key
    return Run(metadata, args['hparams'], inert=inert,
               auto_upload=bool(args['auto_upload']) and not inert, folder=args['folder'],
               make_folder=bool(args['make_folder']), conflict_strategy=args['conflict_strategy'],
               system_metrics=args['system_metrics'])


def load_run(path: str, auto_upload: bool = False, folder: str = 'default',
             make_folder: bool = False, conflict_strategy: str = 'new', *,
             system_metrics: Union[bool, float, None] = None) -> Run:
    """Loads a Run from a local directory (in place) or from the server, and resumes it.

    A local directory is used where it is, from any path; its status becomes ``Running`` again and
    new metrics are appended to its files. Otherwise ``path`` is a server path (a relative one goes
    under ``/<current-user>/``): the Run is downloaded to ``$EM_RUN_PARENT_DIR/<alternativeName>``
    first (login needed).

    Args:
        path: Local directory of the Run, or path of the Run on the server.
        auto_upload, folder, make_folder, conflict_strategy, system_metrics: see
            :func:`create_run`; the samples' steps go on after those already recorded.

    Returns:
        The Run, status ``Running``.
    """
    if auto_upload:
        conflicts.check_conflict_strategy(conflict_strategy)
    inert = not distributed.should_write()
    if not os.path.isdir(path):
        if inert:
            metadata = metadata_file.new_run_metadata('default', [], '', os.path.basename(path))
            return Run(metadata, inert=True)
        from t9k_em_core import transfer  # the HTTP stack: imported on first use
        path = transfer.download(path, 'Run')
    return _reopen(path, inert=inert, auto_upload=auto_upload and not inert, folder=folder,
                   make_folder=make_folder, conflict_strategy=conflict_strategy,
                   system_metrics=system_metrics)


def _reopen(path: str, *, inert: bool, auto_upload: bool, folder: str, make_folder: bool,
            conflict_strategy: str, system_metrics: Union[bool, float, None]) -> Run:
    """The Run of local directory ``path``, reopened in place (status ``Running``), after
    completing a rewind a killed process left unfinished."""
    if not inert:
        complete_pending_cut(path)
    data = run_files.read_run_dir(path, with_metrics=False)
    run = Run(data['metadata'], data['hparams'], platform=data['platform'], git=data['git'],
              local_dir=path, inert=inert, auto_upload=auto_upload, folder=folder,
              make_folder=make_folder, conflict_strategy=conflict_strategy,
              system_metrics=system_metrics)
    run._reopened = True
    return run
