"""Background upload of a live Run (``auto_upload=True``).

A :class:`Syncer` owns one daemon thread. It creates the Run's node once (conflict strategy,
``remote`` record; a reopened or resumed Run finds its node again), then uploads the files that
changed since they were last sent (metadata, hyperparameters, metric files, ...) and the lineage
of new associations. On a server with our append extension the metric files and ``stdout.log``
send only their new bytes (:mod:`~t9k_em_core.incremental`; a rewound file is cut back on the
server), every ``EM_SYNC_INTERVAL`` seconds (default 0.5), so the server is at most ~1 s behind
the metric files (which ``Run.log`` writes within 0.5 s). Against a server without it (0.6.0b0's,
a real AIStore) changed files are re-sent whole, every 3 s by default, and a cycle that took
``d`` seconds is followed by a pause of at least ``4 d``, so re-sending a growing file uses at
most ~20 % of the time (appends need no such spacing: a cycle costs what was appended since the
last one).

The training thread only ever calls :meth:`Syncer.notify` (sets a flag) and, at ``finish``,
:meth:`Syncer.close`, which waits a bounded time (``EM_SYNC_TIMEOUT``, default 30 s) for the
final sync. Network trouble never raises into training: it is logged, retried with backoff, and
the data stays on disk; ``close`` says how to complete the upload with ``em upload``. Errors are
told apart by type: a :class:`~t9k_em_core.transfer.TransferError` (a name conflict under
``conflict_strategy='error'``, a missing Folder, ...) stops the syncing for good, anything else
(network, server, not logged in yet) is retried.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Optional

from t9k_em_core import client as _client
from t9k_em_core import conflicts, incremental, metadata_file, transfer

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 3.0         # whole-file uploads
APPEND_INTERVAL_S = 0.5          # with the append extension
DEFAULT_TIMEOUT_S = 30.0
MAX_BACKOFF_S = 60.0
DUTY_FACTOR = 4.0


class NotLoggedInError(Exception):
    """auto_upload has no server to talk to yet (retried: the user may log in later)."""


def _env_seconds(name: str, default: float) -> float:
    try:
        return max(0.0, float(os.environ.get(name, default)))
    except ValueError:
        return default


class Syncer:
    """Keeps the server copy of a Run directory up to date, from a background thread.

    Args:
        run_dir: The Run's directory.
        folder: Folder to upload to (relative: under ``/<user>/``).
        make_folder: Create the Folder and its parents when missing.
        conflict_strategy: ``skip``, ``error``, ``new`` or ``replace`` (``ValueError`` at once).
        interval: Seconds between syncs (default ``$EM_SYNC_INTERVAL``, else 0.5 on a server
            with the append extension and 3 on one without).
    """

    def __init__(self, run_dir: str, folder: str = 'default', make_folder: bool = False,
                 conflict_strategy: str = 'new', interval: Optional[float] = None) -> None:
        conflicts.check_conflict_strategy(conflict_strategy)
        self.run_dir = run_dir
        self.folder = folder
        self.make_folder = make_folder
        self.conflict_strategy = conflict_strategy
        if interval is None and os.environ.get('EM_SYNC_INTERVAL'):
            interval = _env_seconds('EM_SYNC_INTERVAL', DEFAULT_INTERVAL_S)
        self._fixed_interval = interval is not None
        self.interval = DEFAULT_INTERVAL_S if interval is None else interval
        self.node: Optional[transfer.Node] = None
        self._appender: Optional[incremental.Appender] = None
        self.last_error: Optional[BaseException] = None
        self._state: Optional[transfer.UploadState] = None
        self._linked: Optional[dict] = None
        self._stopped_reason: Optional[str] = None  # permanent: skipped, conflict error, ...
        self._changed = True
        self._closing = False
        self._synced_after_close = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f'em-sync-{os.path.basename(run_dir)}',
                                        daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Tells the syncer that the Run changed. O(1), never blocks, never raises."""
        self._changed = True

    def close(self, timeout: Optional[float] = None) -> bool:
        """Runs a last sync and waits for it at most ``timeout`` seconds (``$EM_SYNC_TIMEOUT``).

        Returns whether everything reached the server. When not, prints to stderr how to
        complete the upload with ``em upload``. Never raises.
        """
        if timeout is None:
            timeout = _env_seconds('EM_SYNC_TIMEOUT', DEFAULT_TIMEOUT_S)
        self._changed = True
        self._closing = True
        self._wake.set()
        done = self._synced_after_close.wait(timeout)
        complete = done and self.last_error is None and self._stopped_reason is None
        if not complete and self._stopped_reason != 'skipped':
            why = (self._stopped_reason or (f'{type(self.last_error).__name__}: {self.last_error}'
                                            if self.last_error else f'not done after {timeout:g} s'))
            folder_arg = f' -f {self.folder}' if self.folder != 'default' else ''
            print(f'EM: the Run at {self.run_dir} was not fully uploaded ({why}). Its data is safe '
                  f'on disk; complete the upload with:\n  em upload {self.run_dir}{folder_arg}'
                  f'{" -m" if self.make_folder else ""} -c {self.conflict_strategy}',
                  file=sys.stderr)
        return complete

    # --- the background thread --------------------------------------------------------------

    def _loop(self) -> None:
        backoff = self.interval
        while True:
            closing = self._closing
            started = time.monotonic()
            if self._stopped_reason is None and (self._changed or closing):
                try:
                    self._sync_once(final=closing)
                    self.last_error = None
                    backoff = self.interval
                except transfer.TransferError as e:  # conflict 'error', missing Folder, ...: for good
                    self._stopped_reason = str(e)
                    logger.warning('auto_upload of %s stopped: %s', self.run_dir, e)
                except Exception as e:  # network trouble, no login yet: keep data local, retry
                    self._changed = True
                    if self.last_error is None or type(e) is not type(self.last_error):
                        logger.warning('auto_upload of %s failed, will retry: %s', self.run_dir, e)
                    self.last_error = e
                    backoff = min(MAX_BACKOFF_S, max(self.interval, backoff * 2))
            if closing and (self.last_error is None or self._stopped_reason is not None
                            or isinstance(self.last_error, NotLoggedInError)):
                self._synced_after_close.set()  # done, or nothing to wait for
                return
            if self.last_error is not None:
                pause = min(backoff, 1.0) if closing else backoff
            elif self._appender is not None:  # a cycle costs what was appended: no need to space them
                pause = self.interval
            else:
                pause = max(self.interval, DUTY_FACTOR * (time.monotonic() - started))
            self._wake.wait(pause)
            self._wake.clear()

    def _connection(self) -> _client.AISClient:
        if not _client.is_logged_in():
            try:
                _client.login()  # from t9k.CONFIG / the config file
            except ValueError as e:
                raise NotLoggedInError(f'not logged in (call em.login()), and the configuration '
                                       f'cannot log in: {e}') from e
        return _client.current()

    def _sync_once(self, final: bool) -> None:
        self._changed = False
        client = self._connection()
        if self.node is None:
            folder = transfer.folder_path(self.folder, client.user)
            node = transfer.start_upload(client, self.run_dir, 'Run', folder, self.make_folder,
                                         self.conflict_strategy)
            if node is None:
                self._stopped_reason = 'skipped'
                logger.info('auto_upload of %s skipped: a Run with that name exists', self.run_dir)
                return
            self.node = node
            self._state = transfer.UploadState(client.host, node.path, self.run_dir)
            if client.can_append():
                self._appender = incremental.Appender(client, node.path, self._state)
                if not self._fixed_interval:
                    self.interval = APPEND_INTERVAL_S
        transfer.send_files(client, self.run_dir, self.node.path, self._state, progress=False,
                            check_server=final, appender=self._appender)
        associations = metadata_file.read_metadata(self.run_dir).get('associations') or {}
        if associations != self._linked:
            transfer.link_lineage(client, self.node.id, associations,
                                  transfer.folder_path(self.folder, client.user),
                                  self.make_folder, self.conflict_strategy, progress=False)
            self._linked = associations
