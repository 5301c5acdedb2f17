"""t9k: the ``t9k.em`` experiment-management API (``from t9k import em``) and ``t9k.CONFIG``.

``t9k.CONFIG`` (from :mod:`t9k_em_core.config`) is loaded on first access, so that
``import t9k`` stays cheap.
"""

from typing import Any

__all__ = ['CONFIG', 'em']


def __getattr__(name: str) -> Any:
    if name == 'CONFIG':
        from t9k_em_core.config import CONFIG
        return CONFIG
    if name == 'em':
        import t9k.em  # the import system sets the attribute ``em`` of this package
        return t9k.em
    raise AttributeError(f"module 't9k' has no attribute {name!r}")
