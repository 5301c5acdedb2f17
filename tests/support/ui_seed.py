"""Puts Runs and Artifacts into a running server over its HTTP API, shaped exactly as the
0.6.0b0 client sends them (spec server-api §5.3, §5.10, §5.8): create the node, then upload each
file of the Run/Artifact directory as an object. Used by the browser tests, the screenshot script
and the UI benchmark. t9k 0.6.0b0 itself is not installable here, so the requests are built by hand.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

import requests

from t9k_em_core import fileio, metadata_file, metric_file, naming, run_files


def metric_text(points: Iterable[tuple[int, int | None, dict[str, float], float]]) -> str:
    """A ``metrics/<type>.yaml`` text from ``(step, epoch, values, unix time)`` tuples."""
    fmt = metric_file.TimestampFormatter()
    chunks: list[str] = []
    template = None
    keys: tuple[str, ...] = ()
    for step, epoch, values, t in points:
        if tuple(values) != keys:
            keys = tuple(values)
            template = metric_file.entry_template(keys)
        chunks.append(template % (*[float(v) for v in values.values()],
                                  "null" if epoch is None else epoch, step, *fmt.parts(t)))
    return "".join(chunks)


def iso(t: float) -> str:
    """A unix time as the SDK's ISO 8601 local time with offset."""
    return dt.datetime.fromtimestamp(t).astimezone().isoformat()


@dataclass
class Seeder:
    """Uploads nodes for one user: ``Seeder(base_url, api_key)``."""

    base: str
    key: str
    session: requests.Session = field(default_factory=requests.Session)
    run_metadata: dict[str, dict] = field(default_factory=dict)  #: node path -> metadata.yaml of runs

    def _req(self, method: str, path: str, **kw: Any) -> requests.Response:
        params = dict(kw.pop("params", {}), apikey=self.key)
        r = self.session.request(method, self.base + path, params=params, allow_redirects=False, timeout=60, **kw)
        if r.status_code >= 400:
            raise AssertionError(f"{method} {path} -> {r.status_code}: {r.text[:300]}")
        return r

    def user(self) -> str:
        return self._req("GET", "/oauth2/userinfo").json()["preferred_username"]

    def folder(self, path: str) -> str:
        """Create every missing folder of ``path`` (absolute); return the folder's node id."""
        names = path.strip("/").split("/")
        node_id = ""
        for i in range(1, len(names)):
            sub = "/" + "/".join(names[: i + 1])
            r = self.session.get(self.base + "/apis/v1/nodes/info", params={"node": sub, "apikey": self.key}, timeout=30)
            if r.status_code == 200:
                node_id = r.json()["id"]
                continue
            node_id = self._req("POST", "/apis/v1/nodes", json={
                "parent": "/" + "/".join(names[:i]), "name": names[i], "labels": [], "description": "",
                "type": "Folder", "storageType": 0,
                "extra": json.dumps({"createdTimestamp": metadata_file.now_iso()})}).json()["id"]
        return node_id

    def _node(self, folder: str, type_: str, name: str, alt: str, labels: list[str], description: str) -> str:
        return self._req("POST", "/apis/v1/nodes", json={
            "parent": folder, "name": name, "labels": labels, "description": description, "type": type_,
            "storageType": 2, "extra": json.dumps({"alternativeName": alt})}).json()["id"]

    def put(self, path: str, data: bytes | str) -> None:
        """Upload one object (``POST /apis/v1/objects``, one multipart part named ``content``)."""
        body = data.encode() if isinstance(data, str) else data
        self._req("POST", "/apis/v1/objects", params={"path": path},
                  files={"content": (path.rsplit("/", 1)[-1], body)})

    def run(self, folder: str, name: str, *, hparams: dict | None = None,
            metrics: dict[str, str] | None = None, status: str = "Complete", start: float,
            end: float | None = None, labels: list[str] | None = None, description: str = "",
            platform: dict | None = None, git: dict | None = None, stdout: str = "",
            inputs: list[str] = (), outputs: list[str] = (), extras: bool = True) -> tuple[str, str]:
        """Upload a Run; ``metrics`` maps a type to its metric file text. Returns (id, node path).
        ``extras=False`` leaves out platform, git, index and log (sweeps of many runs)."""
        self.folder(folder)
        alt = naming.alternative_name(name)
        node_id = self._node(folder, "Run", name, alt, labels or [], description)
        path = f"{folder}/{name}"
        meta = {"kind": "Run", "name": name, "labels": labels or [], "description": description,
                "startTimestamp": iso(start), "endTimestamp": iso(end) if end else None,
                "status": status, "alternativeName": alt,
                "associations": {"input": [], "output": []},
                "remote": [{"action": "upload", "timestamp": metadata_file.now_iso(), "host": self.base,
                            "path": path, "id": node_id}]}
        files = {
            "metadata.yaml": fileio.dump_yaml(meta),
            "index.yaml": fileio.dump_yaml(run_files.index_data(list(metrics or {}))),
            "hyperparameters.yaml": fileio.dump_yaml(hparams or {}),
            "platform.yaml": fileio.dump_yaml(platform or {"hostname": "gpu-node-3", "os": "Linux-6.1.0-x86_64-with-glibc2.36",
                                                           "python": "3.11.7", "pypkgs": {"t9k": "0.6.0b0", "torch": "2.13.0"},
                                                           "framework": "PyTorch"}),
            "git.yaml": fileio.dump_yaml(git or {"repo_path": "/home/alice/mnist", "remote_url": "https://github.com/alice/mnist.git",
                                                 "branch": "main", "commit": "4f9c2e1b7d3a8c6e5f0a1b2c3d4e5f6a7b8c9d0e",
                                                 "is_dirty": False, "entrypoint": "/home/alice/mnist/train.py"}),
            "stdout.log": stdout,
        }
        self.run_metadata[path] = meta
        if not extras:
            files = {k: files[k] for k in ("metadata.yaml", "hyperparameters.yaml")}
        for key, text in files.items():
            self.put(f"{path}/{key}", text)
        for mtype, text in (metrics or {}).items():
            self.put(f"{path}/metrics/{mtype}.yaml", text)
        edges = [{"from": i, "to": node_id} for i in inputs] + [{"from": node_id, "to": o} for o in outputs]
        if edges:
            self._req("POST", "/apis/v1/graphs", json={"graphs": edges})
        return node_id, path

    def finish(self, path: str, status: str = "Complete", end: float | None = None) -> None:
        """Re-upload a run's ``metadata.yaml`` with a final status, as ``Run.finish`` + sync do."""
        meta = self.run_metadata[path]
        meta.update(status=status, endTimestamp=iso(end) if end else metadata_file.now_iso())
        self.put(f"{path}/metadata.yaml", fileio.dump_yaml(meta))

    def artifact(self, folder: str, name: str, *, files: dict[str, bytes] | None = None,
                 references: dict[str, str] | None = None, labels: list[str] | None = None,
                 description: str = "") -> tuple[str, str]:
        """Upload an Artifact with its object files and ``references.yaml``. Returns (id, node path)."""
        self.folder(folder)
        alt = naming.alternative_name(name)
        node_id = self._node(folder, "Artifact", name, alt, labels or [], description)
        path = f"{folder}/{name}"
        meta = {"kind": "Artifact", "name": name, "labels": labels or [], "description": description,
                "createdTimestamp": metadata_file.now_iso(), "alternativeName": alt,
                "remote": [{"action": "upload", "timestamp": metadata_file.now_iso(), "host": self.base,
                            "id": node_id, "path": path}]}
        for key, data in (files or {}).items():
            self.put(f"{path}/{key}", data)
        if references:
            self.put(f"{path}/references.yaml", fileio.dump_yaml(references))
        self.put(f"{path}/metadata.yaml", fileio.dump_yaml(meta))
        return node_id, path
