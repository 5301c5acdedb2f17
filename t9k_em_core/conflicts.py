"""Conflict strategies of uploads: what an upload does when its name is taken in the Folder."""

from __future__ import annotations

from typing import Any

CONFLICT_STRATEGIES = ('skip', 'error', 'new', 'replace')
"""What an upload does when its name is taken in the Folder (the seed's ``conflict_strategy``)."""


def check_conflict_strategy(strategy: Any) -> str:
    """Returns ``strategy``; ``ValueError`` unless it is skip, error, new or replace."""
    if strategy not in CONFLICT_STRATEGIES:
        raise ValueError(f'Invalid conflict_strategy {strategy!r}: must be one of '
                         f'{", ".join(CONFLICT_STRATEGIES)}')
    return strategy
