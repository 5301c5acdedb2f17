"""Alembic migrations of the metadata store, run at server start (``upgrade``).

The Alembic CLI works too: ``alembic -c t9k_em_server/alembic.ini -x db=URL upgrade head``.
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

HERE = Path(__file__).resolve().parent


def alembic_config() -> Config:
    """An Alembic config pointing at this package's scripts (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision``.

    On PostgreSQL an advisory lock serialises processes that start at the same moment.
    """
    config = alembic_config()
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SELECT pg_advisory_lock(7242610)")
            connection.commit()
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("SELECT pg_advisory_unlock(7242610)")
                connection.commit()
