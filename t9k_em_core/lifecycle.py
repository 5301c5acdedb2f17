"""Process exit and signal hooks for open Runs, and the ``stdout.log`` tee.

A Run registered here that is still open when the process ends (normal end of the main thread,
uncaught exception, ``sys.exit``, ``KeyboardInterrupt``, ``SIGTERM``) gets its metrics flushed
and its status set to ``Error`` with an end timestamp. ``SIGKILL`` cannot be caught: then the
metrics logged up to the last flush (≤ 0.5 s before) are on disk and the status stays ``Running``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, TextIO, Tuple

EXIT_SYNC_TIMEOUT = 5.0
"""Seconds an exiting process waits for each Run's background upload to finish."""

_lock = threading.RLock()
_open_runs: Dict[int, Any] = {}
_owner_pid = os.getpid()
_atexit_installed = False
_sigterm_installed = False
_previous_sigterm: Any = None
_exit_callbacks: List[Callable[[], None]] = []


def register(run: Any) -> None:
    """Tracks an open Run: it is ended with ``run.finish('Error', sync_timeout=...)`` if the
    process ends first."""
    global _atexit_installed
    with _lock:
        _open_runs[id(run)] = run
        if not _atexit_installed:
            atexit.register(_end_open_runs)
            _atexit_installed = True
    _install_sigterm_handler()


def unregister(run: Any) -> None:
    """Stops tracking a Run (it was finished)."""
    with _lock:
        _open_runs.pop(id(run), None)


def open_runs() -> List[Any]:
    """The Runs of this process that are not finished."""
    with _lock:
        return list(_open_runs.values())


def on_exit(callback: Callable[[], None]) -> None:
    """Calls ``callback()`` when the process ends (as for open Runs), after the open Runs were
    ended; ``metrics`` flushes there what was logged after a Run's ``finish``."""
    with _lock:
        _exit_callbacks.append(callback)


def _end_open_runs() -> None:
    if os.getpid() != _owner_pid:
        return
    for run in open_runs():
        try:
            run.finish('Error', sync_timeout=EXIT_SYNC_TIMEOUT)
        except Exception as e:  # keep ending the others
            print(f'EM WARNING: could not end Run at exit: {e!r}', file=sys.stderr)
    with _lock:
        callbacks = list(_exit_callbacks)
    for callback in callbacks:
        try:
            callback()
        except Exception as e:
            print(f'EM WARNING: {getattr(callback, "__qualname__", callback)} failed at exit: '
                  f'{e!r}', file=sys.stderr)


_DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Holds ``SIGINT`` and ``SIGTERM`` back while the block runs on the main thread; the
    handlers that were installed then run right after it (a Ctrl-C still raises
    ``KeyboardInterrupt``, a default action still kills).

    Python runs signal handlers on the main thread between two bytecodes, so without this a
    Ctrl-C or a ``SIGTERM`` could cut a metric flush or the end of a Run in half, and the entries
    it held would be lost. (Masking the signals would not do: the kernel hands a process-directed
    signal to any thread that does not mask it.) Elsewhere than the main thread the block just runs.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: List[Tuple[int, Any]] = []
    previous = {}
    try:
        for signum in _DEFERRED_SIGNALS:
            if signal.getsignal(signum) is None:  # not installed from Python: cannot be restored
                continue
            previous[signum] = signal.signal(signum, lambda num, frame: caught.append((num, frame)))
    except (ValueError, OSError):  # not the main interpreter: nothing to defer
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum, frame in caught:
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)


def _install_sigterm_handler() -> None:
    global _sigterm_installed, _previous_sigterm
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
        if previous is signal.SIG_IGN:
            _sigterm_installed = True
            return
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main interpreter, or signals unavailable
        return
    _previous_sigterm = previous
    _sigterm_installed = True


def _on_sigterm(signum: int, frame: Any) -> None:
    _end_open_runs()
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    # Die of the signal as if no handler had been installed (exit status 128 + 15).
    if sys.stdout is not None:
        try:
            sys.stdout.flush()
        except (OSError, ValueError, RuntimeError):  # RuntimeError: re-entrant buffered write
            pass
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _after_fork_in_child() -> None:
    """A forked child (e.g. a DataLoader worker) neither ends nor tees its parent's Runs."""
    global _owner_pid, _lock
    _owner_pid = os.getpid()
    _lock = threading.RLock()
    _open_runs.clear()
    tee = sys.stdout
    if isinstance(tee, StdoutTee):
        tee.detach_all()


# --- stdout tee -------------------------------------------------------------------------------

class StdoutTee:
    """Wraps ``sys.stdout``: everything written also goes (backspaces removed) to each log file."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._files: List[TextIO] = []
        # Re-entrant: the SIGTERM handler runs on the main thread, possibly inside write(), and
        # then flushes and unwraps this tee (a plain Lock deadlocked there).
        self._tee_lock = threading.RLock()

    @property
    def wrapped(self) -> TextIO:
        """The stream this tee writes through to."""
        return self._stream

    def write(self, text: str) -> int:
        n = self._stream.write(text)
        files = self._files
        if files:
            copy = text.replace('\b', '') if '\b' in text else text
            with self._tee_lock:
                for f in files:
                    try:
                        f.write(copy)
                    except (OSError, ValueError):
                        pass
        return n

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()
        with self._tee_lock:
            for f in self._files:
                try:
                    f.flush()
                except (OSError, ValueError):
                    pass

    def add(self, f: TextIO) -> None:
        with self._tee_lock:
            self._files = self._files + [f]

    def remove(self, f: TextIO) -> bool:
        """Stops copying to ``f``; returns whether no file is left."""
        with self._tee_lock:
            self._files = [x for x in self._files if x is not f]
            return not self._files

    def detach_all(self) -> None:
        with self._tee_lock:
            self._files = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def tee_stdout(log_file: Optional[TextIO]) -> None:
    """Starts copying ``sys.stdout`` into ``log_file``."""
    if log_file is None or sys.stdout is None:
        return
    with _lock:
        tee = sys.stdout
        if not isinstance(tee, StdoutTee):
            tee = StdoutTee(sys.stdout)
            sys.stdout = tee
        tee.add(log_file)


def untee_stdout(log_file: Optional[TextIO]) -> None:
    """Stops copying into ``log_file`` and closes it; unwraps ``sys.stdout`` when unused."""
    if log_file is None:
        return
    with _lock:
        tee = sys.stdout
        if isinstance(tee, StdoutTee):
            try:
                tee.flush()
            except (OSError, ValueError, RuntimeError):  # RuntimeError: re-entrant (signal)
                pass
            if tee.remove(log_file):
                sys.stdout = tee.wrapped
    try:
        log_file.close()
    except OSError:
        pass


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_after_fork_in_child)
