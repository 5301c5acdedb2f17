"""Users and API keys.

A key is a random lowercase UUID (the format the 0.6.0b0 client insists on). Only its SHA-256
is stored: random UUID keys carry 122 bits of entropy, so a slow hash adds nothing. Creating a
user also creates their root Folder ``/<name>``; a user sees only ``/<name>/…``.
"""
from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime

from .metadata_store import MetadataStore, UserView
from t9k_em_core.layout import NAME_RE


KEY_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def hash_key(key: str) -> str:
    """The stored form of an API key (or session token)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return str(uuid.uuid4())


def check_user_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"invalid user name {name!r}: use 1-40 characters [A-Za-z0-9_-], "
                         "starting and ending with a letter or digit")
    return name


def add_user(meta: MetadataStore, name: str) -> str:
    """Create a user with a root Folder; returns their new API key. Conflict if the name exists."""
    check_user_name(name)
    key = new_key()
    extra = json.dumps({"createdTimestamp": datetime.now().astimezone().isoformat()})
    meta.create_user(name, hash_key(key), key[:8], extra)
    return key


def add_key(meta: MetadataStore, name: str) -> str:
    """Issue another API key for an existing user (NotFound if there is no such user)."""
    key = new_key()
    meta.add_key(name, hash_key(key), key[:8])
    return key


def revoke_key(meta: MetadataStore, key: str) -> str:
    """Revoke one key; returns the user's name (NotFound for an unknown or revoked key)."""
    return meta.revoke_key(hash_key(key.strip()))


def authenticate(meta: MetadataStore, key: str) -> UserView | None:
    """The user owning an active key, else None (malformed keys are never looked up)."""
    if not KEY_RE.fullmatch(key):
        return None
    return meta.user_by_key_hash(hash_key(key))
