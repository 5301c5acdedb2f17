"""The web UI's JSON API (/api/ui/v1) over Runs and Artifacts uploaded as the 0.6.0b0 client
uploads them (objects mirroring the local layout, spec local-layout §5, §7)."""
from __future__ import annotations

import json

import pytest
import requests
from support.server_api import Api, metric_entries as entries

from t9k_em_core import fileio

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def seeded(em_server, em_add_user):
    name, key = em_add_user()
    api = Api(em_server.base_url, key, name)
    folder = api.folder()
    ds = api.node(folder, "ds", "Artifact", extra=json.dumps({"alternativeName": "ds_261126_110257_aaaaaa"}))
    for rel, data in {"metadata.yaml": fileio.dump_yaml({
            "kind": "Artifact", "name": "ds", "labels": ["data"], "description": "a dataset",
            "createdTimestamp": "2026-11-26T11:01:31.138307+00:00",
            "alternativeName": "ds_261126_110257_aaaaaa", "remote": []}),
            "references.yaml": fileio.dump_yaml({"refs/e.zip": "https://example.com/d/e.zip"}),
            "data/a.txt": "abc"}.items():
        assert api.put(f"{folder}/ds/{rel}", data.encode()).status_code == 200
    run = api.node(folder, "mnist", "Run", labels=["cnn"])
    metadata = {"kind": "Run", "name": "mnist", "labels": ["cnn"], "description": "demo",
                "startTimestamp": "2026-11-26T11:01:31.138307+00:00", "endTimestamp": None,
                "status": "Running", "alternativeName": "mnist_261126_110257_bbbbbb",
                "associations": {"input": [{"kind": "Artifact", "name": "ds_261126_110257_aaaaaa",
                                            "localDir": ".em/artifacts/ds_261126_110257_aaaaaa"}],
                                 "output": [{"kind": "Model", "id": "asset-9", "path": "/hub/m"}]},
                "remote": []}
    files = {"metadata.yaml": fileio.dump_yaml(metadata).encode(),
             "hyperparameters.yaml": fileio.dump_yaml({"lr": 0.001, "opt": {"name": "Adam"}}).encode(),
             "platform.yaml": fileio.dump_yaml({"hostname": "vm", "python": "3.11.7", "pypkgs": {"t9k": "0.6.0b0"}}).encode(),
             "git.yaml": fileio.dump_yaml({"commit": "abc123", "branch": "main", "is_dirty": False}).encode(),
             "stdout.log": b"", "metrics/train.yaml": entries(0, 500), "metrics/val.yaml": entries(0, 5, keys=("loss",))}
    for rel, data in files.items():
        assert api.put(f"{folder}/mnist/{rel}", data).status_code == 200
    api.request("POST", "/apis/v1/graphs", json={"graphs": [{"from": ds, "to": run}, {"from": run, "to": "asset-9"}]})
    return api, folder, run, ds


def ui(api: Api, endpoint: str, **params) -> requests.Response:
    """UI calls authenticate with a bearer key here (the browser uses the session cookie)."""
    return requests.get(api.base + "/api/ui/v1" + endpoint, params=params, timeout=30,
                        headers={"Authorization": f"Bearer {api.key}"})


def test_folder_lists_runs_with_summaries(seeded):
    api, folder, run, ds = seeded
    body = ui(api, "/folders", path=folder).json()
    children = {c["name"]: c for c in body["children"]}
    assert set(children) == {"ds", "mnist"} and body["folder"]["path"] == folder
    mnist = children["mnist"]
    assert mnist["id"] == run and mnist["status"] == "Running" and mnist["labels"] == ["cnn"]
    assert mnist["start"] == "2026-11-26T11:01:31.138307+00:00" and mnist["end"] is None
    assert mnist["hparams"] == {"lr": 0.001, "opt": {"name": "Adam"}}
    assert mnist["last_metrics"]["train"] == {"loss": 1 / 500, "accuracy": 1 / 500}
    assert mnist["last_metrics"]["val"] == {"loss": 1 / 5}
    assert children["ds"]["type"] == "Artifact" and children["ds"]["description"] == "a dataset"


def test_folder_without_runs_counts_them(seeded):
    api, folder, run, ds = seeded
    body = ui(api, "/folders", path=folder, runs="false").json()
    assert [c["name"] for c in body["children"]] == ["ds"] and body["runs"] == 1
    assert body["folder"]["path"] == folder and not body["truncated"]


def test_run_detail(seeded):
    api, folder, run, ds = seeded
    body = ui(api, f"/runs/{run}").json()
    assert body["metrics"] == {"train": ["loss", "accuracy"], "val": ["loss"]}
    assert body["metric_counts"] == {"train": 500, "val": 5}
    assert body["platform"]["hostname"] == "vm" and body["git"]["commit"] == "abc123"
    assert body["alternative_name"] == "mnist_261126_110257_bbbbbb" and body["description"] == "demo"
    assert [i["id"] for i in body["inputs"]] == [ds] and body["inputs"][0]["known"]
    assert [o["id"] for o in body["outputs"]] == ["asset-9"] and not body["outputs"][0]["known"]


def test_series_axes(seeded):
    api, folder, run, ds = seeded
    by_step = ui(api, f"/runs/{run}/series", type="train", metric="loss", x="step", max_points=100).json()
    assert by_step["total"] == 500 and len(by_step["x"]) <= 100 and by_step["x"][0] == 0
    full = ui(api, f"/runs/{run}/series", type="train", metric="loss", x="step", max_points=1000).json()
    assert full["x"] == list(range(500)) and full["y"][0] == 1.0
    by_epoch = ui(api, f"/runs/{run}/series", type="train", metric="loss", x="epoch", max_points=1000).json()
    assert by_epoch["total"] == 167  # epochs are logged on every third entry only
    by_time = ui(api, f"/runs/{run}/series", type="val", metric="loss", x="time").json()
    assert by_time["x"] == [1_764_000_000.0 + i for i in range(5)]
    assert ui(api, f"/runs/{run}/series", type="nope", metric="loss").status_code == 404
    assert ui(api, f"/runs/{run}/series", type="train", metric="loss", x="bad").status_code == 400


def test_artifact_detail(seeded):
    api, folder, run, ds = seeded
    body = ui(api, f"/artifacts/{ds}").json()
    assert [o["path"] for o in body["objects"]] == ["data/a.txt"]
    assert body["objects"][0]["size_bytes"] == 3 and body["objects"][0]["checksum"] == "900150983cd24fb0d6963f7d28e17f72"
    assert body["references"] == [{"path": "refs/e.zip", "uri": "https://example.com/d/e.zip"}]
    assert body["labels"] == ["data"]


def test_lineage(seeded):
    api, folder, run, ds = seeded
    body = ui(api, f"/lineage/{ds}").json()
    assert {n["id"] for n in body["nodes"]} == {ds, run, "asset-9"}
    assert {(e["from"], e["to"]) for e in body["edges"]} == {(ds, run), (run, "asset-9")}
    assert {n["id"]: n["known"] for n in body["nodes"]}["asset-9"] is False


def test_ui_api_is_per_user(seeded, em_server):
    api, folder, run, ds = seeded
    other = Api(em_server.base_url, em_server.api_key, em_server.user)
    assert ui(other, f"/runs/{run}").status_code == 404
    assert ui(other, "/folders", path=folder).status_code == 404
    assert requests.get(api.base + f"/api/ui/v1/runs/{run}", timeout=10).status_code == 401
