"""Uploads and downloads stream: the server process stays under 200 MB RSS while 1 GiB goes
through it (one direction per test; RSS read from /proc/<pid>/status while the bytes flow)."""
from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest
import requests
from support.em_server_process import ServerProcess

pytestmark = pytest.mark.timeout(300)

GiB = 1 << 30
CHUNK = 1 << 20
LIMIT = 200 * (1 << 20)


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    """Samples a process's RSS every 20 ms in a thread; ``peak`` is the largest seen."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def chunk_of(i: int) -> bytes:
    return bytes([i % 251]) * CHUNK


@pytest.fixture(scope="module")
def big_upload(tmp_path_factory):
    """A server that received a generated 1 GiB object; yields (server, key, path, md5, peak RSS)."""
    server = ServerProcess(tmp_path_factory.mktemp("big"))
    name, key = server.add_user("big")
    server.start()
    try:
        requests.post(f"{server.base_url}/apis/v1/nodes", params={"apikey": key}, timeout=30, json={
            "parent": f"/{name}", "name": "a", "type": "Artifact", "extra": "{}"}).raise_for_status()
        path = f"/{name}/a/big.bin"
        digest = hashlib.md5()

        def body():
            yield b'--bnd\r\nContent-Disposition: form-data; name="content"; filename="big.bin"\r\n\r\n'
            for i in range(GiB // CHUNK):
                chunk = chunk_of(i)
                digest.update(chunk)
                yield chunk
            yield b"\r\n--bnd--\r\n"

        with PeakRss(server.pid) as peak:
            reply = requests.post(f"{server.base_url}/apis/v1/objects", params={"path": path, "apikey": key},
                                  data=body(), headers={"Content-Type": "multipart/form-data; boundary=bnd"},
                                  timeout=280)
        assert reply.status_code == 200, reply.text
        assert reply.json()["size_bytes"] == GiB and reply.json()["md5"] == digest.hexdigest()
        yield server, key, path, digest.hexdigest(), peak.peak
    finally:
        server.stop()


def test_upload_of_1gib_streams(big_upload):
    *_, peak = big_upload
    print(f"server peak RSS during a 1 GiB upload: {peak / 2**20:.0f} MiB")
    assert peak < LIMIT, f"server RSS peaked at {peak / 2**20:.0f} MiB during a 1 GiB upload"


def test_download_of_1gib_streams(big_upload):
    server, key, path, md5, _ = big_upload
    digest, size = hashlib.md5(), 0
    with PeakRss(server.pid) as peak:
        with requests.get(f"{server.base_url}/apis/v1/objects", params={"path": path, "apikey": key},
                          stream=True, timeout=280) as reply:
            assert reply.status_code == 200
            for chunk in reply.iter_content(1 << 16):
                digest.update(chunk)
                size += len(chunk)
    assert size == GiB and digest.hexdigest() == md5
    print(f"server peak RSS during a 1 GiB download: {peak.peak / 2**20:.0f} MiB")
    assert peak.peak < LIMIT, f"server RSS peaked at {peak.peak / 2**20:.0f} MiB during a 1 GiB download"


def test_multipart_completion_of_1gib_streams(big_upload):
    """Completing a 1 GiB multipart upload (the parts copied into one blob and hashed through
    mmap windows) keeps the server's RSS under the limit too."""
    server, key, path, _, _ = big_upload
    path = path.rsplit("/", 1)[0] + "/parts.bin"
    url, digest = f"{server.base_url}/apis/v1/objects/multipart", hashlib.md5()
    upload = requests.post(url, params={"path": path, "apikey": key}, timeout=30).json()["uploadId"]
    per_part = 64
    parts = []
    for n in range(1, GiB // CHUNK // per_part + 1):
        def body():
            yield b'--bnd\r\nContent-Disposition: form-data; name="content"; filename="content"\r\n\r\n'
            for i in range((n - 1) * per_part, n * per_part):
                chunk = chunk_of(i)
                digest.update(chunk)
                yield chunk
            yield b"\r\n--bnd--\r\n"

        reply = requests.put(f"{url}/{upload}", params={"path": path, "partNumber": n, "apikey": key},
                             data=body(), headers={"Content-Type": "multipart/form-data; boundary=bnd"},
                             timeout=120)
        assert reply.status_code == 200, reply.text
        parts.append({"etag": reply.json()["eTag"], "partNumber": n})
    with PeakRss(server.pid) as peak:
        done = requests.post(f"{url}/{upload}", params={"path": path, "apikey": key},
                             json={"parts": parts}, timeout=280)
    assert done.status_code == 200, done.text
    assert done.json()["size_bytes"] == GiB and done.json()["md5"] == digest.hexdigest()
    print(f"server peak RSS while completing a 1 GiB multipart upload: {peak.peak / 2**20:.0f} MiB")
    assert peak.peak < LIMIT, f"server RSS peaked at {peak.peak / 2**20:.0f} MiB completing 1 GiB"
