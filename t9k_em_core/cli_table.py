"""Plain-text tables and the value formats of the ``em`` command's output (local and remote)."""

from __future__ import annotations

import datetime
from typing import Any, Iterable, Optional, Sequence


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain table: columns left-aligned and separated by two spaces, no trailing blanks."""
    cells = [[str(h) for h in headers]] + [['-' if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return '\n'.join('  '.join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def format_duration(seconds: Optional[float]) -> str:
    """``0.03s``, ``12.3s``, ``4m 05s`` or ``2h 03m``; ``-`` when unknown."""
    if seconds is None:
        return '-'
    if seconds < 10:
        return f'{seconds:.2f}s'
    if seconds < 60:
        return f'{seconds:.1f}s'
    whole = int(seconds)
    if whole < 3600:
        return f'{whole // 60}m {whole % 60:02d}s'
    return f'{whole // 3600}h {whole % 3600 // 60:02d}m'


def format_time(value: Optional[datetime.datetime]) -> str:
    """``YYYY-mm-dd HH:MM:SS`` in the offset the timestamp was written with; ``-`` when unknown."""
    return value.strftime('%Y-%m-%d %H:%M:%S') if value is not None else '-'


def format_size(size: int) -> str:
    """A byte count in binary units (``512 B``, ``1.5 KiB``)."""
    if size < 1024:
        return f'{size} B'
    value = size / 1024
    for unit in ('KiB', 'MiB', 'GiB'):
        if value < 1024:
            return f'{value:.1f} {unit}'
        value /= 1024
    return f'{value:.1f} TiB'
