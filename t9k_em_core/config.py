"""``t9k.CONFIG`` and the config file ``~/.t9k/t9k-config.yaml`` (t9k 0.6.0b0 format).

The file is found at ``$T9K_CONFIG`` (``~`` expanded) or ``~/.t9k/t9k-config.yaml`` and read once,
when this module is imported. The context is ``$T9K_CONFIG_CONTEXT`` when set and non-empty, else
``current-context``. Items: ``aistore_host = server + prefixes.aistore``,
``asset_hub_host = server + prefixes['asset-hub']``, ``api_key = auth.apikey``.

Unlike 0.6.0b0, a broken file never makes ``import t9k`` fail: the problem is kept in
``CONFIG.error`` and reported by :func:`t9k_em_core.client.login` when it needs a value from the
file. The SDK writes the file only when asked (``em login --save``, ``em logout --save``).
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from typing import Any, Iterator, Optional
from urllib.parse import urlsplit

import yaml

from . import bounded_yaml

try:  # the C implementation is much faster; fall back to pure Python where absent
    from yaml import CSafeDumper as _Dumper
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeDumper as _Dumper  # type: ignore[assignment]

ITEMS = ('aistore_host', 'asset_hub_host', 'api_key')
DEFAULT_CONTEXT = 'default'
_API_KEY_RE = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')


def config_path() -> str:
    """Path of the config file: ``$T9K_CONFIG`` (``~`` expanded) or ``~/.t9k/t9k-config.yaml``."""
    return os.path.expanduser(os.environ.get('T9K_CONFIG') or '~/.t9k/t9k-config.yaml')


class Config(MutableMapping):
    """Dict-like view of the config items ``aistore_host``, ``asset_hub_host``, ``api_key``.

    Every item is ``None`` when the file is missing. ``path`` is the file that was read and
    ``error`` says what is wrong with it (``None`` when it is fine or absent).
    Items may be set by the user (``t9k.CONFIG['api_key'] = ...``); ``em.login`` reads them.
    """

    def __init__(self, items: Optional[dict] = None, path: Optional[str] = None,
                 error: Optional[str] = None) -> None:
        self._items: dict[str, Any] = dict.fromkeys(ITEMS)
        self._items.update(items or {})
        self.path = path
        self.error = error

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._items[key] = value

    def __delitem__(self, key: str) -> None:
        self._items[key] = None

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        shown = dict(self._items)
        if shown.get('api_key'):
            shown['api_key'] = mask_api_key(shown['api_key'])
        return f'Config({shown!r})'

    def reload(self) -> None:
        """Re-reads the config file (after ``T9K_CONFIG``/``T9K_CONFIG_CONTEXT`` changed)."""
        fresh = load_config()
        self._items, self.path, self.error = fresh._items, fresh.path, fresh.error


def mask_api_key(key: Optional[str]) -> str:
    """A form of an API key that is safe to print or log (last 4 characters only)."""
    if not key:
        return repr(key)
    return '****' + str(key)[-4:]


def check_host(host: Any) -> str:
    """Returns ``host`` without trailing ``/``; ``ValueError`` unless it is ``scheme://host[...]``."""
    if not isinstance(host, str) or not host:
        raise ValueError(f'AIStore host must be a URL such as http://127.0.0.1:8080, got {host!r}')
    parts = urlsplit(host)
    if parts.scheme not in ('http', 'https') or not parts.netloc:
        raise ValueError(f'AIStore host must be an http(s) URL with a host name, got {host!r}')
    return host.rstrip('/')


def check_api_key(key: Any) -> str:
    """Returns ``key``; ``ValueError`` unless it is a lowercase UUID (the 0.6.0b0 rule)."""
    if not isinstance(key, str) or not _API_KEY_RE.fullmatch(key):
        raise ValueError('Invalid API Key format: expected a lowercase UUID such as '
                         f'11111111-2222-3333-4444-555555555555, got {mask_api_key(key)}')
    return key


def _read_file(path: str) -> Optional[dict]:
    """Parsed YAML mapping of the config file, ``None`` when the file does not exist."""
    try:
        with open(path, encoding='utf-8') as f:
            data = bounded_yaml.load(f.read())
    except FileNotFoundError:
        return None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError('the top level is not a mapping')
    return data


def _selected_context(data: dict) -> tuple[Optional[str], Optional[dict]]:
    """Name and mapping of the selected context (``None`` mapping when no such context)."""
    name = os.environ.get('T9K_CONFIG_CONTEXT') or data.get('current-context')
    for context in data.get('contexts') or []:
        if isinstance(context, dict) and context.get('name') == name:
            return name, context
    return name, None


def _items_of(context: dict) -> dict:
    """Config items of one context; ``ValueError`` naming the missing or bad key."""
    try:
        server, prefixes, auth = context['server'], context['prefixes'], context['auth']
        aistore, asset_hub = prefixes['aistore'], prefixes['asset-hub']
    except (KeyError, TypeError) as e:
        raise ValueError(f'context {context.get("name")!r} lacks the key {e}') from None
    if not isinstance(auth, dict):
        raise ValueError(f'context {context.get("name")!r}: auth must be a mapping')
    return {
        'aistore_host': f'{server or ""}{aistore or ""}',
        'asset_hub_host': f'{server or ""}{asset_hub or ""}',
        'api_key': auth.get('apikey'),
    }


def load_config() -> Config:
    """Reads the config file into a :class:`Config`; never raises (see ``Config.error``)."""
    path = config_path()
    try:
        data = _read_file(path)
    except (OSError, ValueError, yaml.YAMLError) as e:
        return Config(path=path, error=f'cannot read config file {path}: {e}')
    if data is None:
        return Config(path=None)
    name, context = _selected_context(data)
    if context is None:
        return Config(path=path, error=f'config file {path} has no context named {name!r}')
    try:
        return Config(_items_of(context), path=path)
    except ValueError as e:
        return Config(path=path, error=f'config file {path}: {e}')


def save_credentials(aistore_host: str, api_key: str, context_name: Optional[str] = None) -> str:
    """Writes host and key into the selected context of the config file (0.6.0b0 format).

    ``aistore_host`` is split into ``server`` (scheme://netloc) and ``prefixes.aistore`` (its
    path). Other contexts and keys are kept. The file is written with mode 0600. Returns its path.
    """
    path = config_path()
    data = _read_file(path) or {}
    name = context_name or os.environ.get('T9K_CONFIG_CONTEXT') or data.get(
        'current-context') or DEFAULT_CONTEXT
    contexts = data.setdefault('contexts', [])
    context = next((c for c in contexts if isinstance(c, dict) and c.get('name') == name), None)
    if context is None:
        context = {'name': name}
        contexts.append(context)
    parts = urlsplit(check_host(aistore_host))
    context['server'] = f'{parts.scheme}://{parts.netloc}'
    prefixes = context.setdefault('prefixes', {})
    prefixes['aistore'] = parts.path
    prefixes.setdefault('asset-hub', '')
    auth = context.setdefault('auth', {})
    auth['apikey'] = check_api_key(api_key)
    data.setdefault('current-context', name)
    _write_file(path, data)
    return path


def forget_api_key() -> Optional[str]:
    """Removes ``auth.apikey`` from the selected context of the config file (``em logout``).

    Returns the file's path, or None when there was no key to remove.
    """
    path = config_path()
    data = _read_file(path)
    if not data:
        return None
    _, context = _selected_context(data)
    auth = (context or {}).get('auth')
    if not isinstance(auth, dict) or 'apikey' not in auth:
        return None
    del auth['apikey']
    _write_file(path, data)
    return path


def _write_file(path: str, data: dict) -> None:
    """Writes the config file atomically, readable by its owner only."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        yaml.dump(data, f, Dumper=_Dumper, sort_keys=False)
    os.replace(tmp, path)


CONFIG = load_config()
