"""The ``em`` command.

Each subcommand is one ``_add_<name>(subparsers)`` function that declares its arguments and sets
``handler`` to a ``_cmd_<name>(args) -> int`` function; :data:`COMMANDS` lists them. To add a
subcommand, write that pair and append the first to :data:`COMMANDS`.

Other packages add commands through the entry-point group :data:`COMMAND_GROUP`: an entry point
``name = "module:main"`` makes ``em name ...`` call ``main(argv)`` with every argument after
``name`` (the command owns its arguments and its ``--help``). The server package provides
``em server`` this way, so the core neither imports nor needs it.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

from t9k_em_core import catalog, fileio, naming, remote_cli
from t9k_em_core.cli_table import format_duration, format_size, format_table, format_time

# --- output helpers ---------------------------------------------------------------------------

def _number(value: Any) -> str:
    """A metric value with 6 significant digits (floats only)."""
    return f'{value:.6g}' if isinstance(value, float) else str(value)


def _indented_yaml(data: Any) -> str:
    if not data:
        return '  (none)'
    return '\n'.join('  ' + line for line in fileio.dump_yaml(data).rstrip('\n').split('\n'))


def _warn(message: str) -> None:
    print(f'em: {message}', file=sys.stderr)


# --- em ls ------------------------------------------------------------------------------------


def _add_ls(subparsers: Any) -> None:
    p = subparsers.add_parser('ls', help='list local Runs and Artifacts',
                              description='List Runs and Artifacts in local parent directories '
                                          '(default: the Run and Artifact parent directories).')
    p.add_argument('paths', nargs='*', metavar='PATH',
                   help='a parent directory, or one Run/Artifact directory')
    p.add_argument('-d', '--detail', action='store_true',
                   help='also show alternative names, labels and paths')
    search = p.add_argument_group('search (a server Folder)')
    remote_cli.add_search_flags(search)  # type: ignore[arg-type]
    search.add_argument('--columns', default='', metavar='FIELDS',
                        help='comma-separated fields to show, e.g. hparams.lr,val.accuracy.max')
    p.set_defaults(handler=_cmd_ls)


def _cmd_ls(args: argparse.Namespace) -> int:
    if args.filter or args.sort or args.columns:  # a search of a server Folder
        return remote_cli.search_remote(args)
    if len(args.paths) == 1 and not os.path.isdir(args.paths[0]):  # not local: a server path
        return remote_cli.list_remote(args.paths[0], args.detail)
    paths = args.paths or [naming.run_parent_dir(), naming.artifact_parent_dir()]
    missing = [p for p in args.paths if not os.path.isdir(p)]
    for path in missing:
        _warn(f'no such directory: {path!r}')
    dirs = [d for p in paths if p not in missing for d in catalog.find_node_dirs(p)]
    summaries = _summaries(dirs)
    runs = [s for s in summaries if isinstance(s, catalog.RunSummary)]
    artifacts = [s for s in summaries if isinstance(s, catalog.ArtifactSummary)]
    if not runs and not artifacts:
        print(f'No Runs or Artifacts in {", ".join(repr(p) for p in paths)}')
    if runs:
        headers = ['NAME', 'STATUS', 'STARTED', 'DURATION', 'METRICS']
        headers += ['ALTERNATIVE_NAME', 'LABELS', 'PATH'] if args.detail else []
        rows = []
        for r in runs:
            row = [r.name, r.status, format_time(r.start), format_duration(r.duration),
                   ' '.join(f'{t}={n}' for t, n in r.metric_counts.items()) or None]
            rows.append(row + ([r.alternative_name, ','.join(r.labels) or None, r.path]
                               if args.detail else []))
        print(f'Runs ({len(runs)})')
        print(format_table(headers, rows))
    if artifacts:
        headers = ['NAME', 'CREATED'] + (['ALTERNATIVE_NAME', 'LABELS', 'PATH'] if args.detail else [])
        rows = [[a.name, format_time(a.created)]
                + ([a.alternative_name, ','.join(a.labels) or None, a.path] if args.detail else [])
                for a in artifacts]
        if runs:
            print()
        print(f'Artifacts ({len(artifacts)})')
        print(format_table(headers, rows))
    return 1 if missing else 0


def _summaries(dirs: List[str]) -> List[catalog.Summary]:
    out = []
    for d in dirs:
        try:
            out.append(catalog.summarize(d))
        except (OSError, ValueError) as e:
            _warn(f'skipped {d!r}: {e}')
    return out


# --- em describe ------------------------------------------------------------------------------


def _add_describe(subparsers: Any) -> None:
    p = subparsers.add_parser('describe', help='show one or more local Runs/Artifacts in full',
                              description='Show metadata, hyperparameters, last metrics and '
                                          'associations of Runs, and objects of Artifacts.')
    p.add_argument('path', metavar='PATH', help='a Run/Artifact directory, or a parent directory')
    p.add_argument('-d', '--detail', action='store_true',
                   help="also show a Run's platform and git information")
    p.set_defaults(handler=_cmd_describe)


def _cmd_describe(args: argparse.Namespace) -> int:
    if not os.path.isdir(args.path):
        _warn(f'no such directory: {args.path!r}')
        return 1
    dirs = catalog.find_node_dirs(args.path)
    if not dirs:
        print(f'No Runs or Artifacts in {args.path!r}')
        return 0
    failed = False
    for i, node_dir in enumerate(dirs):
        if i:
            print('---')
        try:
            summary = catalog.summarize(node_dir)
            if isinstance(summary, catalog.RunSummary):
                _print_run(summary, catalog.run_details(node_dir), args.detail)
            else:
                _print_artifact(summary, catalog.artifact_details(node_dir))
        except (OSError, ValueError) as e:
            _warn(f'cannot describe {node_dir!r}: {e}')
            failed = True
    return 1 if failed else 0


def _print_fields(title: str, fields: Dict[str, Any]) -> None:
    print(title)
    width = max(len(k) for k in fields) + 1
    for key, value in fields.items():
        print(f'  {(key + ":").ljust(width)} {"-" if value in (None, "") else value}')


def _print_section(title: str, body: str) -> None:
    print()
    print(title)
    print(body)


def _print_run(summary: catalog.RunSummary, details: Dict[str, Any], detail: bool) -> None:
    meta = details['metadata']
    _print_fields(f'Run: {summary.name}', {
        'Alternative name': summary.alternative_name,
        'Path': summary.path,
        'Status': summary.status,
        'Labels': ', '.join(summary.labels),
        'Description': meta.get('description'),
        'Started': format_time(summary.start),
        'Ended': format_time(summary.end),
        'Duration': format_duration(summary.duration),
    })
    _print_section('Hyperparameters:', _indented_yaml(details['hparams']))
    metric_rows = []
    for metric_type, info in details['metrics'].items():
        last = info['last'] or {}
        sequence = last.get('sequence') or {}
        values = ' '.join(f'{k}={_number(v)}' for k, v in (last.get('value') or {}).items())
        metric_rows.append([metric_type, info['count'], sequence.get('step'), sequence.get('epoch'),
                            values or None])
    _print_section('Metrics (last entry of each type):',
                   _indent(format_table(['TYPE', 'ENTRIES', 'STEP', 'EPOCH', 'VALUES'], metric_rows))
                   if metric_rows else '  (none)')
    associations = meta.get('associations') or {}
    assoc_rows = [[direction, a.get('kind'), a.get('name') or a.get('id'), a.get('localDir') or a.get('path')]
                  for direction in ('input', 'output') for a in associations.get(direction) or []]
    _print_section('Associations:',
                   _indent(format_table(['DIRECTION', 'KIND', 'NAME', 'LOCATION'], assoc_rows))
                   if assoc_rows else '  (none)')
    _print_remote(meta.get('remote') or [])
    if detail:
        _print_section('Platform:', _indented_yaml(details['platform']))
        _print_section('Git:', _indented_yaml(details['git']))


def _print_artifact(summary: catalog.ArtifactSummary, details: Dict[str, Any]) -> None:
    meta = details['metadata']
    _print_fields(f'Artifact: {summary.name}', {
        'Alternative name': summary.alternative_name,
        'Path': summary.path,
        'Labels': ', '.join(summary.labels),
        'Description': meta.get('description'),
        'Created': format_time(summary.created),
    })
    objects = details['objects'].values()
    files = [[o['path'], format_size(o['size_bytes']), o['checksum']] for o in objects if 'uri' not in o]
    refs = [[o['path'], o['uri']] for o in objects if 'uri' in o]
    _print_section(f'Files ({len(files)}):',
                   _indent(format_table(['PATH', 'SIZE', 'MD5'], files)) if files else '  (none)')
    _print_section(f'References ({len(refs)}):',
                   _indent(format_table(['PATH', 'URI'], refs)) if refs else '  (none)')
    _print_remote(meta.get('remote') or [])


def _print_remote(remote: List[Dict[str, Any]]) -> None:
    rows = [[r.get('action'), r.get('timestamp'), r.get('host'), r.get('path'), r.get('id')] for r in remote]
    _print_section('Remote history:',
                   _indent(format_table(['ACTION', 'TIMESTAMP', 'HOST', 'PATH', 'ID'], rows))
                   if rows else '  (none)')


def _indent(text: str) -> str:
    return '\n'.join('  ' + line for line in text.split('\n'))


# --- commands of other packages ---------------------------------------------------------------

COMMAND_GROUP = 't9k_em.commands'
"""Entry-point group of the commands other packages add to ``em`` (``server``: t9k_em_server)."""


def _package_commands() -> Dict[str, Any]:
    """The entry points of :data:`COMMAND_GROUP` by command name (read only when needed: scanning
    the installed distributions takes a noticeable part of a second)."""
    from importlib.metadata import entry_points
    return {ep.name: ep for ep in entry_points(group=COMMAND_GROUP)}


def _add_package_command(subparsers: Any, name: str, entry_point: Any) -> None:
    package = entry_point.value.split(':')[0].split('.')[0]
    p = subparsers.add_parser(name, add_help=False, help=f'from {package} (see `em {name} --help`)')
    p.set_defaults(handler=None)  # dispatched in main() before parsing: it owns its arguments


def _run_package_command(name: str, entry_point: Any, argv: List[str]) -> int:
    try:
        command = entry_point.load()
    except ImportError as e:
        _warn(f'`em {name}` cannot start: {e} (for `em server`, install the server: '
              'pip install "t9k-em[server]")')
        return 1
    return command(argv) or 0


# --- entry point ------------------------------------------------------------------------------

COMMANDS: List[Callable[[Any], None]] = [_add_ls, _add_describe, *remote_cli.COMMANDS]


def version() -> str:
    """Version of the installed t9k-em distribution."""
    from importlib import metadata as importlib_metadata  # only for --version: ~0.1 s to import

    try:
        return importlib_metadata.version('t9k-em')
    except importlib_metadata.PackageNotFoundError:
        from t9k_em_core import __version__
        return __version__


def build_parser(package_commands: Optional[Dict[str, Any]] = None) -> argparse.ArgumentParser:
    """The ``em`` argument parser with every subcommand of :data:`COMMANDS`, and those of
    ``package_commands`` (entry points of :data:`COMMAND_GROUP`) listed in its help."""
    parser = argparse.ArgumentParser(prog='em', description='t9k experiment management.')
    parser.add_argument('--version', action='version', version=f'em, version {version()}')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    for add in COMMANDS:
        add(subparsers)
    for name, entry_point in (package_commands or {}).items():
        if name not in subparsers.choices:
            _add_package_command(subparsers, name, entry_point)
    parser.set_defaults(commands=frozenset(subparsers.choices))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs ``em`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    first = argv[0] if argv else None
    if first is None or first.startswith('-') or first not in parser.get_default('commands'):
        package_commands = _package_commands()  # `em`, `em --help`, `em server …`
        if first in package_commands:
            return _run_package_command(first, package_commands[first], argv[1:])
        parser = build_parser(package_commands)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except BrokenPipeError:  # `em ls | head`: stop quietly, also at interpreter exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == '__main__':
    sys.exit(main())
