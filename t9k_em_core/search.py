"""``search_runs``: find Runs on the server with the query language (docs/server.md,
"Searching runs"), as light records or as a pandas DataFrame (one row per Run, the way
``mlflow.search_runs`` returns them). pandas is imported only for ``output='pandas'``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from t9k_em_core import client as _client, transfer

PAGE_SIZE = 1000  #: the server's largest page
OUTPUTS = ('list', 'pandas')


class InvalidQueryError(ValueError):
    """The server refused the filter or order: ``position`` (1-based, 0 if none) and the problem."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


@dataclass(frozen=True)
class RunRecord:
    """One Run as search returns it (no metric points: ``summaries`` per type and metric)."""

    id: str
    path: str
    name: str
    status: Optional[str]
    start: Optional[str]          #: ISO 8601, as in ``metadata.yaml``
    end: Optional[str]
    duration: Optional[float]     #: seconds
    labels: List[str]
    description: Optional[str]
    hparams: Dict[str, Any]       #: as logged (nested)
    summaries: Dict[str, Dict[str, Dict[str, Any]]] = field(default_factory=dict)
    """``{type: {metric: {last, min, max, mean, count, last_step, min_step, max_step}}}``"""


def search_runs(folder: str = '', filter: str = '', order_by: Sequence[str] = (),
                max_results: int = 10_000, recursive: bool = True, output: str = 'list') -> Any:
    """Runs under ``folder`` (relative paths go under ``/<user>/``; default: the user's root)
    that match ``filter``, in ``order_by`` order (e.g. ``['val.accuracy.max desc']``; default
    newest first), at most ``max_results``.

    ``output='list'`` returns :class:`RunRecord` objects; ``output='pandas'`` a DataFrame with
    columns ``id, path, name, status, start, end, duration, labels, description``, one
    ``hparams.<dotted key>`` per hyperparameter and one ``<type>.<metric>.<summary>`` per
    summary. Uses the current login (``em.login``). Raises :class:`InvalidQueryError` for a bad
    filter or order.
    """
    if output not in OUTPUTS:
        raise ValueError(f'output must be one of {", ".join(OUTPUTS)}, not {output!r}')
    if max_results < 0:
        raise ValueError('max_results must be >= 0')
    client = _client.current()
    path = transfer.folder_path(folder, client.user) if folder.strip('/') else f'/{client.user}'
    runs: List[dict] = []
    token = None
    while len(runs) < max_results:
        try:
            page = client.search_runs(path, filter, list(order_by),
                                      min(PAGE_SIZE, max_results - len(runs)), token, recursive)
        except _client.RequestFailedError as e:
            if e.status == 400:
                text = e.body.strip()
                position = int(text.split(':', 1)[0][9:]) if text.startswith('position ') else 0
                raise InvalidQueryError(text, position) from None
            raise
        runs += page['runs']
        token = page.get('next_page_token')
        if not token:
            break
    records = [RunRecord(**{k: run.get(k) for k in RunRecord.__dataclass_fields__})
               for run in runs[:max_results]]
    return records if output == 'list' else to_frame(records)


def to_frame(records: Sequence[RunRecord]) -> Any:
    """A DataFrame with one row per Run (see :func:`search_runs`)."""
    import pandas as pd

    rows = []
    for record in records:
        row = asdict(record)
        summaries = row.pop('summaries') or {}
        row['hparams'] = row['hparams'] or {}
        rows.append({**row, **{f'{t}.{m}.{s}': v for t, metrics in summaries.items()
                               for m, values in metrics.items() for s, v in values.items()}})
    frame = pd.json_normalize(rows, sep='.', max_level=None) if rows else pd.DataFrame(
        columns=[f for f in RunRecord.__dataclass_fields__ if f not in ('hparams', 'summaries')])
    for column in ('start', 'end'):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True, errors='coerce', format='ISO8601')
    return frame


def record_value(record: RunRecord, field: str) -> Any:
    """The value of a query-language ``field`` in a record (None when the Run lacks it):
    ``name``, ``status``, …, ``hparams.<dotted key>``, ``<type>.<metric>.<summary>``."""
    if field in ('name', 'status', 'start', 'end', 'duration', 'labels', 'description', 'id', 'path'):
        return getattr(record, field)
    parts = field.split('.')
    if parts[0] == 'hparams':
        return _nested(record.hparams, parts[1:])
    if len(parts) >= 3:
        return ((record.summaries.get(parts[0]) or {}).get('.'.join(parts[1:-1])) or {}).get(parts[-1])
    return None


def _nested(document: Any, parts: List[str]) -> Any:
    """``document`` at a dotted key; a key may itself hold dots (the longest match wins)."""
    if not parts:
        return document
    if not isinstance(document, dict):
        return None
    for cut in range(len(parts), 0, -1):
        key = '.'.join(parts[:cut])
        if key in document:
            found = _nested(document[key], parts[cut:])
            if found is not None:
                return found
    return None
