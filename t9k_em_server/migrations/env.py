"""Alembic environment: uses the connection handed over by ``upgrade`` or the ``-x db=URL`` one."""
from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from t9k_em_server.config import normalise_db_url
from t9k_em_server.metadata_store import Base

config = context.config
target_metadata = Base.metadata


def _migrate(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # SQLite batch operations rebuild a table (copy, drop, rename). With foreign keys on,
        # dropping ``users`` or ``nodes`` would cascade-delete every row that refers to them.
        # The pragma only works outside a transaction, so it goes straight to the driver.
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=sqlite)
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if sqlite:
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("db") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database URL: alembic -x db=URL upgrade head")
    engine = create_engine(normalise_db_url(url))
    with engine.connect() as conn:
        _migrate(conn)


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) mode is not supported")
run_migrations_online()
