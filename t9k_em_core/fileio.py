"""YAML files and atomic writes: how every file of a Run or Artifact directory is read and written.

YAML is written the way t9k 0.6.0b0 writes it (block style, keys in insertion order, non-ASCII
escaped, no folding) and read with the safe loader; PyYAML's C implementations are used when
present, every document is loaded within bounds (``bounded_yaml``), and PyYAML is imported on
first use (``import t9k.em`` stays cheap). Files that are
rewritten are replaced atomically (temporary file + ``os.replace``), so a reader never sees half a
file; files that grow (metric files) are only appended to, in whole entries.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any, Dict, Tuple

_yaml_lock = threading.RLock()
_yaml_cache: Dict[str, Any] = {}


def _yaml() -> Tuple[Any, Any]:
    """``(yaml module, Dumper)``: imported on first use, the C dumper when present. (Loading
    goes through ``bounded_yaml``.)"""
    if not _yaml_cache:
        with _yaml_lock:
            if not _yaml_cache:
                import yaml
                _yaml_cache['dumper'] = getattr(yaml, 'CSafeDumper', yaml.SafeDumper)
                _yaml_cache['yaml'] = yaml
    return _yaml_cache['yaml'], _yaml_cache['dumper']


def dump_yaml(data: Any) -> str:
    """YAML text of ``data`` the way 0.6.0b0 writes it: block style, keys in insertion order,
    non-ASCII characters escaped (so the files read the same under any locale encoding), but
    long strings not folded."""
    yaml, dumper = _yaml()
    return yaml.dump(data, Dumper=dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=False, width=1 << 30)


def load_yaml_text(text: str, limits: Any = None) -> Any:
    """Parses YAML text with the safe loader, bounded (``bounded_yaml.load``: size, nesting and
    alias expansion within ``limits``, default ``bounded_yaml.DOCUMENT``)."""
    from t9k_em_core import bounded_yaml  # imports PyYAML: on first use only
    return bounded_yaml.load(text, limits)


def yaml_error_types() -> Tuple[type, ...]:
    """Exception types a YAML parse may raise."""
    return (_yaml()[0].YAMLError,)


def read_yaml(path: str, default: Any = None) -> Any:
    """Loads a YAML file; an empty file gives ``default``."""
    with open(path, encoding='utf-8') as f:
        data = load_yaml_text(f.read())
    return default if data is None else data


_TMP_RE = re.compile(r'^\..+\.t9ktmp[0-9]+_[0-9]+$')


def is_temporary_file(name: str) -> bool:
    """Whether a file name is a temporary file of :func:`write_text_atomic` (never uploaded)."""
    return _TMP_RE.match(name) is not None


def write_text_atomic(path: str, text: str, durable: bool = False) -> None:
    """Replaces ``path`` with ``text`` atomically (temporary file in the same folder + rename).
    With ``durable``, the text and the rename reach the disk before returning (fsync of the file
    and of its folder), as a journal needs."""
    head, base = os.path.split(path)
    tmp = os.path.join(head, f'.{base}.t9ktmp{os.getpid()}_{threading.get_ident()}')
    try:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_dir(head or '.')
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_yaml(path: str, data: Any, durable: bool = False) -> None:
    """Dumps ``data`` to ``path`` atomically (see :func:`write_text_atomic` for ``durable``)."""
    write_text_atomic(path, dump_yaml(data), durable)


def fsync_dir(path: str) -> None:
    """Makes the entries of folder ``path`` (a rename into it) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def truncate_file(path: str, length: int) -> None:
    """Cuts ``path`` to ``length`` bytes in place (one ``ftruncate``: a reader sees the old
    length or the new one) and makes the cut durable; a file already that short is left alone."""
    fd = os.open(path, os.O_WRONLY)
    try:
        if os.fstat(fd).st_size > length:
            os.ftruncate(fd, length)
            os.fsync(fd)
    finally:
        os.close(fd)


def append_bytes(path: str, data: bytes) -> None:
    """Appends ``data`` (whole entries of UTF-8 text) to ``path``. If the disk fills up part way
    (the kernel writes what fits, then refuses the rest), the file is cut back to its old length
    before the error is raised, so that it never ends in part of an entry and the caller can
    append the same text again later."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        rest = memoryview(data)
        try:
            while rest:
                rest = rest[os.write(fd, rest):]
        except OSError:
            if len(rest) < len(data):
                os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)
