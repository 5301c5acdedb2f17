"""Config file (spec §9) and login errors that need no server."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from t9k_em_core import client as em_client
from t9k_em_core import config, transfer

KEY = '11111111-2222-3333-4444-555555555555'
CONFIG_0_6 = f"""current-context: prod
contexts:
- name: prod
  server: http://127.0.0.1:18080
  prefixes:
    aistore: /x
    asset-hub: /ah
  auth:
    apikey: {KEY}
- name: other
  server: https://example.com
  prefixes:
    aistore: ''
    asset-hub: ''
  auth: {{}}
"""


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / 't9k-config.yaml'
    monkeypatch.setenv('T9K_CONFIG', str(path))
    monkeypatch.delenv('T9K_CONFIG_CONTEXT', raising=False)
    return path


def test_items_of_current_context(config_file: Path) -> None:
    config_file.write_text(CONFIG_0_6)
    cfg = config.load_config()
    assert dict(cfg) == {'aistore_host': 'http://127.0.0.1:18080/x',
                         'asset_hub_host': 'http://127.0.0.1:18080/ah', 'api_key': KEY}
    assert cfg.error is None
    assert KEY not in repr(cfg)  # never shown in full


def test_context_from_environment(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_file.write_text(CONFIG_0_6)
    monkeypatch.setenv('T9K_CONFIG_CONTEXT', 'other')
    cfg = config.load_config()
    assert cfg['aistore_host'] == 'https://example.com'
    assert cfg['api_key'] is None


def test_missing_file_gives_none_items(config_file: Path) -> None:
    cfg = config.load_config()
    assert dict(cfg) == dict.fromkeys(config.ITEMS)
    assert cfg.error is None


@pytest.mark.parametrize('content, problem', [
    ('current-context: nope\ncontexts: []\n', "no context named 'nope'"),
    ('current-context: a\ncontexts:\n- name: a\n  server: http://h\n', "lacks the key 'prefixes'"),
    ('contexts: [unclosed\n', 'cannot read config file'),
])
def test_broken_file_is_reported_by_login_not_import(config_file: Path, content: str,
                                                      problem: str) -> None:
    config_file.write_text(content)
    cfg = config.load_config()
    assert problem in cfg.error
    env = dict(os.environ, T9K_CONFIG=str(config_file))
    # `import t9k` and reading t9k.CONFIG must not fail on a broken file (0.6.0b0 failed here).
    done = subprocess.run([sys.executable, '-c', 'import t9k; from t9k import em; '
                           'print(t9k.CONFIG.error)'], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert problem in done.stdout
    saved = config.CONFIG
    config.CONFIG = cfg
    try:
        with pytest.raises(ValueError, match='config file cannot be used') as info:
            em_client.login()
        assert problem in str(info.value)
    finally:
        config.CONFIG = saved


def test_login_rejects_bad_host_and_key_before_any_request() -> None:
    with pytest.raises(ValueError, match='Invalid API Key format'):
        em_client.login('http://127.0.0.1:9', 'not-a-uuid')
    with pytest.raises(ValueError, match='http'):
        em_client.login('127.0.0.1:9', KEY)
    assert not em_client.is_logged_in()


def test_unreachable_host_is_named(config_file: Path) -> None:
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    with pytest.raises(em_client.HostUnreachableError, match=f'Cannot reach AIStore host '
                                                             f'http://127.0.0.1:{port}'):
        em_client.login(f'http://127.0.0.1:{port}', KEY)


def test_upload_checks_conflict_strategy_before_any_request(tmp_path: Path) -> None:
    # The client points at a port where nothing listens: any request would fail differently.
    offline = em_client.AISClient('http://127.0.0.1:9', KEY)
    offline.user = 'alice'
    for call in (transfer.upload_run, transfer.upload_artifact, transfer.upload):
        with pytest.raises(ValueError, match="Invalid conflict_strategy 'bogus'"):
            call(str(tmp_path), conflict_strategy='bogus', client=offline)


def test_save_credentials_writes_0_6_format(config_file: Path) -> None:
    config_file.write_text(CONFIG_0_6)
    config.save_credentials('http://10.0.0.1:8080/t9k/aistore', '99999999-2222-3333-4444-555555555555')
    data = yaml.safe_load(config_file.read_text())
    prod = data['contexts'][0]
    assert prod['server'] == 'http://10.0.0.1:8080'
    assert prod['prefixes'] == {'aistore': '/t9k/aistore', 'asset-hub': '/ah'}
    assert prod['auth']['apikey'] == '99999999-2222-3333-4444-555555555555'
    assert data['contexts'][1]['name'] == 'other'  # other contexts kept
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert config.load_config()['aistore_host'] == 'http://10.0.0.1:8080/t9k/aistore'
    assert config.forget_api_key() == str(config_file)
    assert config.load_config()['api_key'] is None
    assert config.forget_api_key() is None


def test_part_size_follows_0_6_rule() -> None:
    mib = 1 << 20
    assert transfer.part_size(101 * mib) == 10 * mib  # observed: 10 parts of 10 MiB + 1 MiB
    assert transfer.part_size(1024 * mib) == 32 * mib
    assert transfer.part_size(143 * mib + 5) == 11 * mib
