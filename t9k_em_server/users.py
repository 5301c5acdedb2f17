"""Users and API keys.

A key is a random lowercase UUID (the format the 0.6.0b0 client insists on). Only its SHA-256
is stored: random UUID keys carry 122 bits of entropy, so a slow hash adds nothing.
A server process remembers a key that checked out for ``EM_SERVER_KEY_CACHE_SECONDS`` (default 5,
``0`` turns it off; see :class:`KeyCache`), so a revoked key stops working within that time. Creating a
user also creates their root Folder ``/<name>``; what else a user sees is ``access``'s call.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import uuid
from datetime import datetime

from .metadata_store import KeyView, MetadataStore, UserView
from t9k_em_core.naming import NAME_RE


KEY_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def hash_key(key: str) -> str:
    """The stored form of an API key (or session token)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return str(uuid.uuid4())


def check_user_name(name: str, what: str = "user") -> str:
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"invalid {what} name {name!r}: use 1-40 characters [A-Za-z0-9_-], "
                         "starting and ending with a letter or digit")
    return name


def add_user(meta: MetadataStore, name: str, admin: bool = False) -> str:
    """Create a user (an ``admin`` if asked) with a root Folder; returns their new API key.
    Conflict if the name exists."""
    check_user_name(name)
    key = new_key()
    extra = json.dumps({"createdTimestamp": datetime.now().astimezone().isoformat()})
    meta.create_user(name, hash_key(key), key[:8], extra, admin)
    return key


def add_group(meta: MetadataStore, name: str) -> None:
    """Create an empty group (Conflict if the name exists); group names follow the user rule."""
    meta.create_group(check_user_name(name, "group"))


def add_key(meta: MetadataStore, name: str, key_name: str = "") -> tuple[str, KeyView]:
    """Issue another API key (named ``key_name``) for an existing user (NotFound if there is no
    such user); returns the key, which is shown once and never stored, and its record."""
    if len(key_name) > 64:
        raise ValueError("a key name is at most 64 characters")
    key = new_key()
    return key, meta.add_key(name, hash_key(key), key[:8], key_name)


def revoke_key(meta: MetadataStore, key: str) -> str:
    """Revoke one key; returns the user's name (NotFound for an unknown or revoked key)."""
    return meta.revoke_key(hash_key(key.strip()))


class KeyCache:
    """Remembers, for ``ttl`` seconds, which user an active key belongs to.

    Saves a database query per request (uploads of many small files make thousands). Only keys
    that checked out are remembered, so a new key works at once; a revocation (often done by
    another process: ``em server revoke-key``) takes effect within ``ttl`` seconds.
    """

    MAX_ENTRIES = 10_000

    def __init__(self, ttl: float | None = None):
        if ttl is None:
            ttl = float(os.environ.get("EM_SERVER_KEY_CACHE_SECONDS", "5"))
        self.ttl = ttl
        self._entries: dict[str, tuple[float, UserView]] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> UserView | None:
        """The remembered user, if still fresh."""
        entry = self._entries.get(key_hash)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key_hash: str, user: UserView) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key_hash] = (time.monotonic() + self.ttl, user)


def cached_user(cache: KeyCache, key: str) -> UserView | None:
    """The user of ``key`` if ``cache`` remembers it (no database access)."""
    return cache.get(hash_key(key)) if KEY_RE.fullmatch(key) else None


def authenticate(meta: MetadataStore, key: str, cache: KeyCache | None = None) -> UserView | None:
    """The user owning an active key, else None (malformed keys are never looked up).

    With ``cache``, a key seen active less than ``cache.ttl`` seconds ago is not looked up again.
    """
    if not KEY_RE.fullmatch(key):
        return None
    key_hash = hash_key(key)
    user = cache.get(key_hash) if cache is not None else None
    if user is None:
        user = meta.user_by_key_hash(key_hash)
        if user is not None and cache is not None:
            cache.put(key_hash, user)
    return user
