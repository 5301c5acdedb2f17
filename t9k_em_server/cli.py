"""``em server``: run the tracking server, manage users and keys.

    em server [--host 127.0.0.1] [--port 8000] [--data-dir DIR] [--db URL] [--blob-store URL]
    em server add-user NAME [--admin] [--data-dir DIR | --db URL]  # prints the new key last
    em server add-key NAME    [--data-dir DIR | --db URL]
    em server list-users      [--data-dir DIR | --db URL]
    em server revoke-key (KEY | --user NAME) [--data-dir DIR | --db URL]
    em server set-admin NAME [--off]           [--data-dir DIR | --db URL]
    em server add-group GROUP                  [--data-dir DIR | --db URL]
    em server add-member GROUP USER…           [--data-dir DIR | --db URL]
    em server remove-member GROUP USER…        [--data-dir DIR | --db URL]
    em server list-groups                      [--data-dir DIR | --db URL]
    em server gc [--data-dir DIR | --db URL --blob-store URL] [--older-than HOURS] [--dry-run]

``t9k_em_core.cli`` delegates ``em server …`` here; ``python -m t9k_em_server …`` works too.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .config import DEFAULT_DATA_DIR, ServerConfig

#: user, key and group commands
COMMANDS = ("add-user", "add-key", "list-users", "revoke-key", "set-admin", "add-group",
            "add-member", "remove-member", "list-groups")


def _store_options(parser: argparse.ArgumentParser, blobs: bool = False) -> None:
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help=f"folder for the embedded SQLite db and blobs (default {DEFAULT_DATA_DIR})")
    parser.add_argument("--db", metavar="URL", default=None,
                        help="metadata database URL, e.g. postgresql://user:pw@host/db "
                             "(default: SQLite in the data dir)")
    if blobs:
        parser.add_argument("--blob-store", metavar="URL", default=None,
                            help="s3://bucket/prefix (AWS_* env vars; AWS_ENDPOINT_URL honoured) "
                                 "or a folder (default: <data-dir>/blobs)")


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="em server", description="Run the t9k-em tracking server in the foreground.",
        epilog=f"other commands: em server {{{','.join(COMMANDS)},gc}} --help")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    _store_options(parser, blobs=True)
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"])
    return parser


def _gc_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="em server gc", description="Free what was deleted into the trash more than "
        "--trash-days ago; delete multipart uploads never completed and blobs no "
        "row refers to, both older than --older-than. Safe while servers serve, as long as no "
        "upload takes longer than that.")
    _store_options(parser, blobs=True)
    parser.add_argument("--older-than", metavar="HOURS", type=float, default=24.0,
                        help="only what was started or last written this long ago (default 24)")
    parser.add_argument("--trash-days", metavar="DAYS", type=float, default=None,
                        help="free what was deleted into the trash this long ago (default "
                             "EM_SERVER_TRASH_DAYS, else 30)")
    parser.add_argument("--dry-run", action="store_true",
                        help="only report what would be deleted")
    return parser


def _command_parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"em server {command}")
    if command in ("add-user", "add-key", "set-admin"):
        parser.add_argument("name", help="user name (1-40 characters [A-Za-z0-9_-])")
    if command == "add-user":
        parser.add_argument("--admin", action="store_true",
                            help="an admin sees and manages everything, users and groups included")
    if command == "set-admin":
        parser.add_argument("--off", action="store_true", help="take the admin role away")
    if command in ("add-group", "add-member", "remove-member"):
        parser.add_argument("group", help="group name (1-40 characters [A-Za-z0-9_-])")
    if command in ("add-member", "remove-member"):
        parser.add_argument("users", nargs="+", metavar="USER")
    if command == "revoke-key":
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("key", nargs="?", help="the API key to revoke")
        which.add_argument("--user", help="revoke every key of this user")
    _store_options(parser)
    return parser


def _open_meta(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .metadata_store import MetadataStore

    meta = MetadataStore(ServerConfig(data_dir=args.data_dir, db_url=args.db).resolved_db_url)
    meta.upgrade()
    return meta


def _run_command(command: str, argv: list[str]) -> int:
    from . import users
    from .metadata_store import Conflict, NotFound

    args = _command_parser(command).parse_args(argv)
    meta = _open_meta(args)
    try:
        if command == "add-user":
            key = users.add_user(meta, args.name, admin=args.admin)
            role = "admin" if args.admin else "user"
            print(f"created {role} {args.name!r} with root folder /{args.name}; API key:")
            print(key)
        elif command == "set-admin":
            meta.set_admin(args.name, not args.off)
            print(f"{args.name!r} is {'no longer ' if args.off else ''}an admin")
        elif command == "add-group":
            users.add_group(meta, args.group)
            print(f"created group {args.group!r}")
        elif command in ("add-member", "remove-member"):
            adding = command == "add-member"
            for name in args.users:
                changed = meta.set_member(args.group, name, adding)
                state = "is in" if adding else "is not in"
                print(f"{name!r} {state} {args.group!r}{'' if changed else ' (already)'}")
        elif command == "list-groups":
            for group in meta.list_groups():
                print(f"{group.name}\t{', '.join(group.members)}")
        elif command == "add-key":
            key, _ = users.add_key(meta, args.name)
            print(f"new API key for {args.name!r}:")
            print(key)
        elif command == "list-users":
            for user in meta.list_users():
                print(f"{user.name}\tcreated {user.created_at:%Y-%m-%d %H:%M:%S}Z\t"
                      f"{user.active_keys} active key(s){chr(9) + 'admin' if user.is_admin else ''}")
        elif args.user:
            print(f"revoked {meta.revoke_user_keys(args.user)} key(s) of {args.user!r}")
        else:
            print(f"revoked a key of {users.revoke_key(meta, args.key)!r}")
        return 0
    except Conflict:
        if command == "add-group":
            print(f"em server: group {args.group!r} already exists", file=sys.stderr)
        else:
            print(f"em server: user {args.name!r} already exists (add another key: "
                  f"em server add-key {args.name})", file=sys.stderr)
    except NotFound as exc:
        missing = exc.args[0] if command in ("set-admin", "add-member", "remove-member") else \
            "user or active key"
        print(f"em server: no such {missing}", file=sys.stderr)
    except ValueError as exc:
        print(f"em server: {exc}", file=sys.stderr)
    finally:
        meta.close()
    return 1


def _safe_url(url: str) -> str:
    if "://" not in url:
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a database URL
        return url


def _open_stores(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The stores named by ``--data-dir``/``--db``/``--blob-store``, migrated and checked; None
    (after saying why on stderr) if they cannot be opened."""
    from .stores import Stores

    config = ServerConfig(data_dir=args.data_dir, db_url=args.db, blob_url=args.blob_store)
    try:
        stores = Stores.open(config)
        stores.blobs.check()
        return stores
    except Exception as exc:  # noqa: BLE001 - any backend failure: say which store and why
        print(f"em server: cannot open the stores (metadata {_safe_url(config.resolved_db_url)}, "
              f"blobs {config.resolved_blob_url}): {type(exc).__name__}: {exc}".splitlines()[0],
              file=sys.stderr)
        return None


def collect(argv: list[str]) -> int:
    """``em server gc``: delete abandoned multipart uploads and unreferenced blobs."""
    from datetime import timedelta

    from .gc import collect_garbage

    args = _gc_parser().parse_args(argv)
    if args.older_than < 0:
        print("em server gc: --older-than must be >= 0", file=sys.stderr)
        return 2
    stores = _open_stores(args)
    if stores is None:
        return 2
    try:
        report = collect_garbage(stores, timedelta(hours=args.older_than), dry_run=args.dry_run,
                                 trash_for=None if args.trash_days is None else timedelta(days=args.trash_days))
    finally:
        stores.close()
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {report.trashed} trashed node(s) for good: {report.trashed_blobs} blob(s)")
    print(f"{verb} {report.uploads} abandoned multipart upload(s): {report.part_blobs} part "
          f"blob(s), {report.part_bytes} bytes")
    print(f"{verb} {report.orphans} unreferenced blob(s): {report.orphan_bytes} bytes")
    return 0


def serve(argv: list[str]) -> int:
    """Run the server in the foreground until interrupted."""
    import uvicorn

    from . import logredact
    from .app import create_app
    from .guards import HEADER_SECONDS, TimedH11Protocol

    args = _serve_parser().parse_args(argv)
    stores = _open_stores(args)
    if stores is None:
        return 2
    stores.drop_abandoned_uploads()
    app = create_app(stores=stores)
    uv_config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                               http=TimedH11Protocol, timeout_keep_alive=HEADER_SECONDS,
                               server_header=False,
                               h11_max_incomplete_event_size=64 * 1024)
    logredact.install()  # after uvicorn configured logging
    logging.getLogger("t9k_em_server").setLevel(args.log_level.upper())
    print(f"em server: metadata {_safe_url(stores.meta.url)}, blobs "
          f"{stores.blobs.describe()}", file=sys.stderr, flush=True)
    server = uvicorn.Server(uv_config)
    server.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``em server`` (argv excludes ``em server``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "gc":
        return collect(argv[1:])
    if argv and argv[0] in COMMANDS:
        return _run_command(argv[0], argv[1:])
    if argv and argv[0] == "serve":
        argv = argv[1:]
    return serve(argv)
