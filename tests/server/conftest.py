"""Fixtures of the server tests (the server itself: ``em_server``/``em_add_user`` in
tests/conftest.py; raw HTTP helpers: ``server_api.py``)."""
from __future__ import annotations

import pytest
from support.server_api import Api


@pytest.fixture
def api(em_server) -> Api:
    base, key, user = em_server
    return Api(base, key, user)


@pytest.fixture
def fresh_api(em_server, em_add_user) -> Api:
    name, key = em_add_user()
    return Api(em_server.base_url, key, name)
