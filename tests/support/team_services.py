"""The services of a team setup for tests: a fresh database on the machine's PostgreSQL and a real
S3-compatible server (``moto_server``) on a free loopback port. The fixtures ``pg_database`` and
``s3_env`` (tests/conftest.py) are built on these."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Dict, Iterator

import pytest
import requests

from support.em_server_process import free_port

PG_ADMIN_URL = os.environ.get('EM_TEST_PG_URL', 'postgresql://postgres@127.0.0.1:5432/test')
"""A database of the test PostgreSQL that new databases are created from (trust auth)."""


def pg_available() -> bool:
    """Whether the test PostgreSQL answers."""
    try:
        import psycopg

        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
        return True
    except Exception:  # noqa: BLE001 - any failure means: not here
        return False


needs_pg = pytest.mark.skipif(not pg_available(), reason=f'PostgreSQL at {PG_ADMIN_URL} not reachable')


@contextlib.contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A new, empty database on the test PostgreSQL (dropped afterwards); yields its URL."""
    import psycopg

    name = 'em_test_' + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit('/', 1)[0] + '/' + name
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def moto_s3(log_dir: Path, bucket: str) -> Iterator[Dict[str, str]]:
    """A ``moto_server`` with ``bucket``; yields the ``AWS_*`` environment pointing at it."""
    port = free_port()
    with open(log_dir / 'moto.log', 'wb') as log:
        moto = subprocess.Popen([str(Path(sys.executable).parent / 'moto_server'), '-H',
                                 '127.0.0.1', '-p', str(port)], stdout=log, stderr=subprocess.STDOUT)
        try:
            env = {'AWS_ACCESS_KEY_ID': 'testing', 'AWS_SECRET_ACCESS_KEY': 'testing',
                   'AWS_DEFAULT_REGION': 'us-east-1', 'AWS_ENDPOINT_URL': f'http://127.0.0.1:{port}'}
            deadline = time.monotonic() + 60
            while True:
                try:
                    requests.get(env['AWS_ENDPOINT_URL'], timeout=2)
                    break
                except requests.RequestException:
                    if time.monotonic() > deadline or moto.poll() is not None:
                        raise RuntimeError('moto_server did not start') from None
                    time.sleep(0.2)
            import boto3

            boto3.client('s3', endpoint_url=env['AWS_ENDPOINT_URL'], region_name='us-east-1',
                         aws_access_key_id='testing',
                         aws_secret_access_key='testing').create_bucket(Bucket=bucket)
            yield env
        finally:
            moto.terminate()
            moto.wait(10)
