"""The ``em`` subcommands that talk to a server: ``login``, ``logout``, ``upload``, ``download``,
and ``ls`` of a server path. :mod:`t9k_em_core.cli` adds :data:`COMMANDS` to its own and calls
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

from t9k_em_core import config, layout

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
    p.add_argument('-c', '--conflict-strategy', default='new', choices=layout.CONFLICT_STRATEGIES,
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


COMMANDS = [add_login, add_logout, add_upload, add_download]


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


def list_remote(path: str, detail: bool = False, host: Optional[str] = None,
                api_key: Optional[str] = None) -> int:
    """``em ls`` of a server path: the children of a Folder, or the files of a Run/Artifact.

    Logs in from the config file unless ``host``/``api_key`` are given.
    """
    from t9k_em_core.cli import format_table  # cli imports this module

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

