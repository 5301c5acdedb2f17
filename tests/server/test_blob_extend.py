"""``LocalBlobStore.extend`` (the local side of the append extension), on a real folder: the new
key is a second name of the same file; a failed extension leaves bytes past the recorded size,
which readers bounded by that size never see and the next extension cuts; ``copy_prefix`` makes a
separate file."""
from __future__ import annotations

import os

import pytest

from t9k_em_server.blob_store import LocalBlobStore, PartsChanged


class Refused(Exception):
    pass


def put(store: LocalBlobStore, key: str, data: bytes) -> None:
    store.open_writer(key).write_and_commit(data)


def test_extend_in_place_and_a_failed_extension(tmp_path) -> None:
    store = LocalBlobStore(tmp_path)
    put(store, "objects/aa/one", b"hello ")
    assert store.extend("objects/aa/one", 6, b"world", "objects/bb/two", lambda: None, lambda: "ok") == "ok"
    assert os.path.samefile(tmp_path / "objects/aa/one", tmp_path / "objects/bb/two")
    assert store.read_bytes("objects/bb/two") == b"hello world"

    def refuse() -> None:
        raise Refused()

    with pytest.raises(Refused):  # the row switch failed after the bytes went in
        store.extend("objects/bb/two", 11, b" and more", "objects/cc/three", lambda: None, refuse)
    assert not store.exists("objects/cc/three")
    assert store.read_bytes("objects/bb/two") == b"hello world and more"  # past the size ...
    assert store.read_bytes("objects/bb/two", end=11) == b"hello world"  # ... unseen by readers
    store.extend("objects/bb/two", 11, b"!", "objects/dd/four", lambda: None, lambda: None)
    assert store.read_bytes("objects/dd/four") == b"hello world!"  # the leftover was cut
    with pytest.raises(Refused):  # a check that refuses changes nothing
        store.extend("objects/dd/four", 12, b"?", "objects/ee/five", refuse, lambda: None)
    assert store.read_bytes("objects/dd/four") == b"hello world!"
    with pytest.raises(PartsChanged):  # a blob shorter than its recorded size
        store.extend("objects/dd/four", 100, b"?", "objects/ee/five", lambda: None, lambda: None)


def test_copy_prefix_is_a_separate_file(tmp_path) -> None:
    store = LocalBlobStore(tmp_path)
    put(store, "objects/aa/one", b"0123456789")
    store.copy_prefix("objects/aa/one", 4, "objects/bb/two").write_and_commit(b"")
    assert store.read_bytes("objects/bb/two") == b"0123"
    assert not os.path.samefile(tmp_path / "objects/aa/one", tmp_path / "objects/bb/two")
    assert store.read_bytes("objects/aa/one", 2, end=5) == b"234"
