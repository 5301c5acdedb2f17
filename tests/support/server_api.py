"""Raw HTTP against a test server, shaped exactly as the 0.6.0b0 client sends it (spec
server-api §1: ``apikey`` query parameter, JSON bodies, multipart part ``content``), and metric
entries exactly as the SDK writes them. t9k 0.6.0b0 itself is not installable here, so these
requests are built by hand. (A module of its own, not ``conftest``, so imports are unambiguous.)"""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
import uuid
from typing import Any

import requests

from t9k_em_core import metric_file

T0 = 1_764_000_000.0


def metric_entries(start: int, stop: int, keys: tuple[str, ...] = ("loss", "accuracy")) -> bytes:
    """Entries ``start..stop-1`` of a metrics/<type>.yaml as the SDK writes them (metric_file's
    template): value ``1/(i+1)`` per key, epoch every third entry, step ``i``, time ``T0 + i``."""
    template, fmt = metric_file.entry_template(keys), metric_file.TimestampFormatter()
    return "".join(template % (*(1.0 / (i + 1) for _ in keys), "null" if i % 3 else i // 10, i,
                               *fmt.parts(T0 + i)) for i in range(start, stop)).encode()


class Api:
    """Raw requests against one server as one user."""

    def __init__(self, base: str, key: str, user: str):
        self.base, self.key, self.user = base, key, user
        self.http = requests.Session()

    def request(self, method: str, path: str, params: dict | None = None, **kw: Any) -> requests.Response:
        params = {**(params or {}), "apikey": self.key}
        return self.http.request(method, self.base + path, params=params, allow_redirects=False,
                                 timeout=kw.pop("timeout", 120), **kw)

    def create(self, parent: str, name: str, type_: str = "Folder", **fields: Any) -> requests.Response:
        body = {"parent": parent, "name": name, "labels": fields.get("labels", []),
                "description": fields.get("description", ""), "type": type_,
                "storageType": 0 if type_ == "Folder" else 2,
                "extra": fields.get("extra", json.dumps(
                    {"createdTimestamp": "2026-11-26T11:01:31.138307+00:00"} if type_ == "Folder"
                    else {"alternativeName": f"{name}_261126_110257_abc123"}))}
        return self.request("POST", "/apis/v1/nodes", json=body)

    def node(self, parent: str, name: str, type_: str = "Folder", **fields: Any) -> str:
        reply = self.create(parent, name, type_, **fields)
        assert reply.status_code == 200, reply.text
        return reply.json()["id"]

    def folder(self) -> str:
        """A fresh Folder under the user's root; returns its path."""
        name = "f" + uuid.uuid4().hex[:12]
        self.node(f"/{self.user}", name)
        return f"/{self.user}/{name}"

    def put(self, path: str, data: bytes, filename: str = "f", **params: Any) -> requests.Response:
        return self.request("POST", "/apis/v1/objects", params={"path": path, **params},
                            files={"content": (filename, data)})

    def start_multipart(self, path: str, parts: list[bytes]) -> tuple[str, list[str]]:
        """Starts a multipart upload (spec §5.12) and sends ``parts``; returns the upload id and
        the parts' eTags."""
        reply = self.request("POST", "/apis/v1/objects/multipart", params={"path": path})
        assert reply.status_code == 200, reply.text
        upload = reply.json()["uploadId"]
        etags = []
        for n, part in enumerate(parts, 1):
            reply = self.request("PUT", f"/apis/v1/objects/multipart/{upload}",
                                 params={"path": path, "partNumber": n},
                                 files={"content": ("content", part)})
            assert reply.status_code == 200, reply.text
            etags.append(reply.json()["eTag"])
        return upload, etags

    def get(self, path: str) -> requests.Response:
        return self.request("GET", "/apis/v1/objects", params={"path": path})

    def ls(self, path: str, size: int = 1000) -> list[dict]:
        """Every page of ``objects/ls``, followed exactly like the 0.6.0b0 client (spec §4)."""
        items, page = [], 1
        while True:
            reply = self.request("GET", "/apis/v1/objects/ls",
                                 params={"path": path, "size": size, "page": page})
            assert reply.status_code == 200, reply.text
            body = reply.json()
            if body["data"] is None:
                return items
            items += body["data"]
            if page * body["pagination"]["size"] >= body["pagination"]["total"]:
                return items
            page += 1


def tar_of(members: dict[str, bytes], md5s: dict[str, str] | None = None) -> bytes:
    """A PAX tar as our client sends it to the batch upload; ``md5s`` overrides a member's
    announced MD5."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.pax_headers = {"T9K.md5": (md5s or {}).get(name, hashlib.md5(data).hexdigest())}
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def post_batch(api: Api, node: str, body: bytes) -> requests.Response:
    """``POST /apis/v1/objects/batch`` of a tar body."""
    return api.request("POST", "/apis/v1/objects/batch", params={"path": node}, data=body,
                       headers={"Content-Type": "application/x-tar"})
