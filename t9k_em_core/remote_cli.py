"""The ``em`` subcommands that talk to a server: ``login``, ``logout``, ``upload``, ``download``,
``export``, and ``ls`` of a server path (``search_remote`` when it has ``--filter``, ``--sort`` or
``--columns``). :mod:`t9k_em_core.cli` adds :data:`COMMANDS` to its own and calls
:func:`list_remote` for an ``em ls`` PATH that is not a local directory.

Credentials: ``em login`` checks a host and key and, only with ``--save``, writes them to the
config file (``$T9K_CONFIG`` or ``~/.t9k/t9k-config.yaml``, 0.6.0b0 format, mode 0600). The other
commands log in from ``--host``/``--api-key`` when given, else from the config file.
``em logout`` removes the stored key. Keys are never printed (only their last 4 characters).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import TYPE_CHECKING, Callable, Optional

from t9k_em_core import config, conflicts, run_files
from t9k_em_core.cli_table import format_duration, format_table

if TYPE_CHECKING:
    from t9k_em_core.client import AISClient

# client and transfer are imported where used: requests alone costs ~0.3 s of start-up, which
# `em ls`/`em describe` of local directories never need.


def _add_login_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--host', help='AIStore host URL (default: aistore_host of the config file)')
    parser.add_argument('--api-key', help='API key (default: api_key of the config file; '
                                          'prefer the config file: a flag shows in `ps`)')
    parser.add_argument('--timeout', type=float, default=None,
                        help='seconds to wait for the server to send data')


def add_login(subparsers: argparse._SubParsersAction) -> None:
    """``em login [--host H] [--api-key K] [--timeout S] [--save]``."""
    p = subparsers.add_parser('login', help='check a host and API key; --save stores them')
    _add_login_flags(p)
    p.add_argument('--save', action='store_true',
                   help='write host and key to the config file ($T9K_CONFIG or '
                        '~/.t9k/t9k-config.yaml) for later commands and em.login()')
    p.set_defaults(handler=cmd_login)


def add_logout(subparsers: argparse._SubParsersAction) -> None:
    """``em logout``."""
    p = subparsers.add_parser('logout', help='remove the API key stored in the config file')
    p.set_defaults(handler=cmd_logout)


def add_upload(subparsers: argparse._SubParsersAction) -> None:
    """``em upload PATH [-f FOLDER] [-m] [-c STRATEGY]``."""
    p = subparsers.add_parser('upload', help='upload a Run/Artifact directory, or all under a '
                                             'parent directory')
    p.add_argument('path', metavar='PATH')
    p.add_argument('-f', '--folder', default='default',
                   help='Folder to upload to; relative paths go under /<user>/ (default: default)')
    p.add_argument('-m', '--make-folder', action='store_true',
                   help='create the Folder and its parents when missing')
    p.add_argument('-c', '--conflict-strategy', default='new', choices=conflicts.CONFLICT_STRATEGIES,
                   help='what to do when the Folder holds another node with that name '
                        '(default: new, i.e. upload under the alternative name)')
    _add_login_flags(p)
    p.set_defaults(handler=cmd_upload)


def add_download(subparsers: argparse._SubParsersAction) -> None:
    """``em download PATH``."""
    p = subparsers.add_parser('download', help='download a Run/Artifact from the server')
    p.add_argument('path', metavar='PATH', help='server path; relative paths go under /<user>/')
    _add_login_flags(p)
    p.set_defaults(handler=cmd_download)


def add_export(subparsers: argparse._SubParsersAction) -> None:
    """``em export FOLDER [--filter Q] [--sort F] [--format csv|parquet] [--history] -o FILE``."""
    p = subparsers.add_parser('export', help='write the Runs of a server Folder that match a '
                                             'query to a CSV or Parquet file',
                              description='One row per Run (id, path, name, status, times, '
                                          'labels, hparams.<key>, <type>.<metric>.<summary>), or '
                                          'with --history one row per metric point. Needs '
                                          "pandas (and pyarrow for Parquet): pip install 't9k-em[export]'.")
    p.add_argument('folder', metavar='FOLDER', help='server Folder; relative paths go under /<user>/')
    add_search_flags(p)
    p.add_argument('--format', choices=('csv', 'parquet'), default=None,
                   help='file format (default: from the file name, else csv)')
    p.add_argument('--history', action='store_true',
                   help='every metric point in long format: run_id, run, type, metric, step, '
                        'epoch, time, value')
    p.add_argument('-o', '--output', required=True, help='the file to write')
    _add_login_flags(p)
    p.set_defaults(handler=cmd_export)


def add_search_flags(parser: argparse.ArgumentParser) -> None:
    """``--filter``, ``--sort``, ``--max``, ``--no-recursive`` (shared by ``ls`` and ``export``)."""
    parser.add_argument('--filter', default='', metavar='QUERY',
                        help="query language, e.g. \"hparams.lr <= 0.01 and val.accuracy.max > 0.9\"")
    parser.add_argument('--sort', action='append', default=[], metavar='FIELD',
                        help="'FIELD [asc|desc]', repeatable (default: start desc)")
    parser.add_argument('--max', type=int, default=None, metavar='N',
                        help='at most N Runs (ls: 100, export: all)')
    parser.add_argument('--no-recursive', dest='recursive', action='store_false',
                        help='only the Runs directly in the Folder, not in the Folders below it')


COMMANDS = [add_login, add_logout, add_upload, add_download, add_export]


def _login_from(args: argparse.Namespace) -> AISClient:
    from t9k_em_core import client as _client
    _client.login(args.host, args.api_key, args.timeout)
    return _client.current()


def _guarded(action: Callable[[], int]) -> int:
    """Runs a command; known errors become one line on stderr and exit status 1."""
    from t9k_em_core import client as _client
    try:
        return action()
    except (_client.AIStoreError, ValueError, RuntimeError, OSError) as e:
        print(f'em: error: {e}', file=sys.stderr)
        return 1


def cmd_login(args: argparse.Namespace) -> int:
    """``em login``: log in (prompting for a key on a terminal when none is known)."""
    def run() -> int:
        if args.api_key is None and config.CONFIG.get('api_key') is None and sys.stdin.isatty():
            args.api_key = getpass.getpass('API key: ')
        client = _login_from(args)
        print(f'Logged in to {client.host} as {client.user}')
        if args.save:
            path = config.save_credentials(client.host, client.api_key)
            print(f'Saved host and API key {config.mask_api_key(client.api_key)} to {path}')
        return 0
    return _guarded(run)


def cmd_logout(args: argparse.Namespace) -> int:
    """``em logout``: forget the stored API key."""
    def run() -> int:
        from t9k_em_core import client as _client
        _client.logout()
        path = config.forget_api_key()
        print(f'Removed the API key from {path}' if path else 'No API key stored: nothing to do')
        return 0
    return _guarded(run)


def cmd_upload(args: argparse.Namespace) -> int:
    """``em upload PATH [-f FOLDER] [-m] [-c STRATEGY]``."""
    def run() -> int:
        from t9k_em_core import transfer
        dirs = transfer.node_dirs(args.path)
        if not dirs:
            raise RuntimeError(f'No Run/Artifact is to be uploaded: {args.path!r} neither is one '
                               'nor holds one')
        client = _login_from(args)
        nodes = transfer.upload(args.path, args.folder, args.make_folder, args.conflict_strategy,
                                client=client, progress=True)
        for local_dir, node in zip(dirs, nodes):
            print(f'{local_dir} -> {node.path}' if node else
                  f'{local_dir}: skipped (a node with that name exists)')
        return 0
    return _guarded(run)


def cmd_download(args: argparse.Namespace) -> int:
    """``em download PATH``: a Run or Artifact, into EM_RUN_PARENT_DIR/EM_ARTIFACT_PARENT_DIR."""
    def run() -> int:
        from t9k_em_core import transfer
        client = _login_from(args)
        path = transfer.server_path(args.path, client.user)
        kind = client.node_info(path).get('type')
        if kind not in ('Run', 'Artifact'):
            raise RuntimeError(f'{path} is a {kind}: only a Run or an Artifact can be downloaded')
        print(transfer.download(path, kind, client=client, progress=True))
        return 0
    return _guarded(run)


def search_remote(args: argparse.Namespace) -> int:
    """``em ls FOLDER --filter/--sort/--columns``: a table of the matching Runs."""

    def run() -> int:
        from t9k_em_core import client as _client, search
        _client.login(getattr(args, 'host', None), getattr(args, 'api_key', None))
        records = search.search_runs(args.paths[0] if args.paths else '', args.filter, args.sort,
                                     args.max if args.max is not None else 100, args.recursive)
        columns = ['name', 'status', 'start', 'duration']
        columns += [f.split()[0] for f in args.sort if f.split()[0] not in columns]
        columns += [c.strip() for c in (args.columns or '').split(',') if c.strip() and c.strip() not in columns]
        rows = [[_cell(c, search.record_value(r, c)) for c in columns] for r in records]
        print(format_table([c.upper() if '.' not in c else c for c in columns], rows))
        return 0

    def _cell(column: str, value: object) -> str:
        if value is None:
            return ''
        if column == 'duration':
            return format_duration(value)  # type: ignore[arg-type]
        if isinstance(value, list):
            return ','.join(map(str, value))
        if isinstance(value, float):
            return f'{value:.6g}'
        return str(value)

    return _guarded(run)


def cmd_export(args: argparse.Namespace) -> int:
    """``em export``: the matching Runs (or their metric points) to CSV or Parquet."""
    def run() -> int:
        from t9k_em_core import client as _client, search
        try:
            import pandas as pd  # noqa: F401 - checked before any request
        except ImportError:
            raise RuntimeError("em export needs pandas: pip install 't9k-em[export]'") from None
        fmt = args.format or ('parquet' if args.output.endswith('.parquet') else 'csv')
        client = _login_from(args)
        records = search.search_runs(args.folder, args.filter, args.sort,
                                     args.max if args.max is not None else 10 ** 9, args.recursive)
        frame = _history(client, records) if args.history else search.to_frame(records)
        if fmt == 'parquet':
            frame.to_parquet(args.output, index=False)  # pyarrow
        else:
            frame.to_csv(args.output, index=False)
        print(f'{len(frame)} rows of {len(records)} Runs -> {args.output}')
        return 0
    return _guarded(run)


def _history(client: AISClient, records: list) -> object:
    """Every metric point of ``records`` in long format (metric files read by ``metric_file``)."""
    import os
    import tempfile

    import pandas as pd

    from t9k_em_core import metric_file
    columns: dict = {k: [] for k in ('run_id', 'run', 'type', 'metric', 'step', 'epoch', 'time', 'value')}
    with tempfile.TemporaryDirectory() as tmp:
        for record in records:
            for metric_type in sorted(record.summaries):
                local = os.path.join(tmp, 'metric.yaml')
                client.download_object(f'{record.path}/{run_files.metric_index_path(metric_type)}', local)
                for entry in metric_file.read_entries(local):
                    sequence = entry.get('sequence') or {}
                    for name, value in (entry.get('value') or {}).items():
                        for key, item in (('run_id', record.id), ('run', record.name),
                                          ('type', metric_type), ('metric', name),
                                          ('step', sequence.get('step')), ('epoch', sequence.get('epoch')),
                                          ('time', sequence.get('timestamp')), ('value', value)):
                            columns[key].append(item)
    frame = pd.DataFrame(columns)
    frame['time'] = pd.to_datetime(frame['time'], utc=True, errors='coerce', format='ISO8601')
    return frame


def list_remote(path: str, detail: bool = False, host: Optional[str] = None,
                api_key: Optional[str] = None) -> int:
    """``em ls`` of a server path: the children of a Folder, or the files of a Run/Artifact.

    Logs in from the config file unless ``host``/``api_key`` are given.
    """

    def run() -> int:
        from t9k_em_core import client as _client, transfer
        _client.login(host, api_key)
        client = _client.current()
        node_path = transfer.server_path(path, client.user)
        info = client.node_info(node_path)
        if info.get('type') in ('Run', 'Artifact'):
            rows = [(rel, str(size)) for rel, size in sorted(client.list_objects(node_path).items())]
            print(format_table(('PATH', 'SIZE'), rows))
            return 0
        rows = []
        for node in client.iter_nodes(node_path):
            row = [node.get('name', ''), node.get('type', '')]
            if detail:
                try:
                    alt = json.loads(node.get('extra') or '{}').get('alternativeName', '')
                except (ValueError, AttributeError):
                    alt = ''
                row += [alt or '', ','.join(node.get('labels') or []), node.get('id', '')]
            rows.append(row)
        header = ('NAME', 'TYPE') + (('ALTERNATIVE_NAME', 'LABELS', 'ID') if detail else ())
        print(format_table(header, rows))
        return 0
    return _guarded(run)

