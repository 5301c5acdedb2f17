"""The search endpoints over HTTP on a real server: Runs uploaded through the object API are
found, paged, grouped and charted, with the API key (``/apis/v1/search``) and with the web UI's
session cookie (``/api/ui/v1/search``); bad queries get a 400 naming the position."""
from __future__ import annotations

import pytest
import requests
from support.run_seed import metric_file
from test_abuse_csrf import signed_in

from t9k_em_core import fileio, metadata_file, run_files

pytestmark = pytest.mark.timeout(240)


def upload_run(api, folder: str, name: str, lr: float, opt: str, acc: list[float], status: str = "Complete"):
    api.node(folder, name, "Run")
    run = f"{folder}/{name}"
    meta = {"name": name, "status": status, "startTimestamp": "2026-11-26T10:00:00+00:00",
            "endTimestamp": "2026-11-26T10:30:00+00:00", "labels": ["sweep"]}
    for key, data in ((metadata_file.METADATA_FILE, fileio.dump_yaml(meta).encode()),
                      (run_files.HPARAMS_FILE, fileio.dump_yaml({"lr": lr, "opt": {"name": opt}}).encode()),
                      (run_files.metric_index_path("val"), metric_file({"acc": acc}))):
        reply = api.put(f"{run}/{key}", data)
        assert reply.status_code == 200, reply.text
    return run


def upload_sweep(api, folder: str) -> None:
    """The 12 Runs both servers hold: 3 learning rates x 2 optimizers, one Failed, one with
    3,000 points."""
    for i in range(12):
        upload_run(api, folder, f"run{i:02d}", [0.1, 0.01, 0.001][i % 3], ["Adam", "SGD"][i % 2],
                   [0.1 * j + i / 100 for j in range(10)] if i != 11 else [0.5] * 3000,
                   "Failed" if i == 7 else "Complete")


@pytest.fixture(scope="module")
def swept(em_server, em_add_user):
    from support.server_api import Api
    name, key = em_add_user()
    api = Api(em_server.base_url, key, name)
    folder = api.folder()
    upload_sweep(api, folder)
    return api, folder


def test_search_pages_with_api_key_and_cookie(swept, em_server):
    api, folder = swept
    params = {"folder": folder, "filter": "hparams.lr <= 0.01 and status = 'Complete'",
              "order_by": ["val.acc.max desc"], "page_size": 3}
    first = api.request("GET", "/apis/v1/search/runs", params=params)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["total"] == 7 and len(body["runs"]) == 3
    top = body["runs"][0]
    assert top["name"] == "run10" and top["hparams"] == {"lr": 0.01, "opt": {"name": "Adam"}}
    assert top["summaries"]["val"]["acc"]["max"] == pytest.approx(1.0)
    assert top["status"] == "Complete" and top["duration"] == 1800 and top["labels"] == ["sweep"]
    names = [r["name"] for r in body["runs"]]
    token = body["next_page_token"]
    while token:
        page = api.request("GET", "/apis/v1/search/runs", params={**params, "page_token": token}).json()
        names += [r["name"] for r in page["runs"]]
        token = page["next_page_token"]
    assert names == ["run10", "run08", "run05", "run04", "run02", "run01", "run11"]

    browser = signed_in(em_server.base_url, api.key)
    ui = browser.get(em_server.base_url + "/api/ui/v1/search/runs", params=params)
    assert ui.status_code == 200 and ui.json()["runs"] == body["runs"]
    assert requests.get(em_server.base_url + "/api/ui/v1/search/runs", params=params).status_code == 401


def test_bad_query_is_400_with_position(swept):
    api, folder = swept
    reply = api.request("GET", "/apis/v1/search/runs", params={"folder": folder, "filter": "hparams.lr <= and"})
    assert reply.status_code == 400
    assert reply.text.startswith("position 15: unexpected 'and'") and reply.headers["X-Query-Position"] == "15"
    reply = api.request("GET", "/apis/v1/search/runs", params={"folder": folder, "order_by": "nope"})
    assert reply.status_code == 400 and "unknown field 'nope'" in reply.text


def test_other_users_folder_is_not_found(swept, em_server):
    api, folder = swept
    from support.server_api import Api
    bob = Api(em_server.base_url, em_server.keys["bob"], "bob")
    for path in ("runs", "groups", "fields"):
        reply = bob.request("GET", f"/apis/v1/search/{path}", params={"folder": folder, "by": "status"})
        assert reply.status_code == 404 and reply.text == f"node not found [{folder}]", (path, reply.text)
    node_id = api.request("GET", "/apis/v1/nodes/info", params={"node": folder})
    if node_id.status_code == 200:
        reply = bob.request("GET", "/apis/v1/search/runs", params={"folder": node_id.json()["id"]})
        assert reply.status_code == 404


def test_groups_fields_and_series(swept):
    api, folder = swept
    grouped = api.request("GET", "/apis/v1/search/groups", params={
        "folder": folder, "by": "hparams.opt.name", "aggregate": ["val.acc.max", "val.acc.last"]}).json()
    groups = {g["value"]: g for g in grouped["groups"]}
    assert groups["Adam"]["count"] == 6 and groups["SGD"]["count"] == 6
    assert groups["Adam"]["aggregates"]["val.acc.max"]["max"] == pytest.approx(1.0)
    assert groups["Adam"]["filter"] == "hparams.opt.name = 'Adam'"

    fields = api.request("GET", "/apis/v1/search/fields", params={"folder": folder}).json()
    assert [h["key"] for h in fields["hparams"]] == ["lr", "opt.name"]
    assert fields["metrics"] == [{"type": "val", "name": "acc"}]

    runs = api.request("GET", "/apis/v1/search/runs", params={"folder": folder, "page_size": 100}).json()["runs"]
    ids = [r["id"] for r in runs]
    series = api.request("GET", "/apis/v1/search/series", params={
        "run": ids, "type": "val", "metric": "acc", "max_points": 100}).json()["series"]
    assert len(series) == 12
    long = next(s for s in series if s["name"] == "run11")
    assert long["total"] == 3000 and long["returned"] <= 100
    bands = api.request("GET", "/apis/v1/search/series", params={
        "folder": folder, "by": "hparams.lr", "type": "val", "metric": "acc", "max_points": 10,
        "filter": "name != 'run11'"}).json()
    assert len(bands["groups"]) == 3
    for band in bands["groups"]:
        assert band["runs"] == band["runs_used"] and len(band["x"]) == 10
        assert all(lo <= m <= hi for lo, m, hi in zip(band["min"], band["mean"], band["max"]))
    lr01 = next(b for b in bands["groups"] if b["value"] == 0.1)  # runs 0, 3, 6, 9
    assert lr01["max"][-1] == pytest.approx(0.9 + 0.09) and lr01["min"][0] == pytest.approx(0.0)
    too_many = api.request("GET", "/apis/v1/search/series", params={
        "run": [f"x{i}" for i in range(101)], "type": "val", "metric": "acc"})
    assert too_many.status_code == 400


def test_lean_rows_with_fields(swept):
    """``fields=`` gives only the asked values (what the parallel-coordinates plot reads), in
    pages up to 10,000; without it pages stop at 1,000."""
    api, folder = swept
    params = {"folder": folder, "order_by": ["name"], "page_size": 5000,
              "fields": ["hparams.lr", "hparams.opt.name", "val.acc.max", "status", "hparams.nope"]}
    body = api.request("GET", "/apis/v1/search/runs", params=params).json()
    assert body["total"] == 12 and len(body["runs"]) == 12 and body["next_page_token"] is None
    full = api.request("GET", "/apis/v1/search/runs", params={"folder": folder, "order_by": ["name"],
                                                             "page_size": 100}).json()["runs"]
    for lean, record in zip(body["runs"], full):
        assert lean["id"] == record["id"] and set(lean) == {"id", "name", "values"}
        assert lean["values"] == {"hparams.lr": record["hparams"]["lr"],
                                  "hparams.opt.name": record["hparams"]["opt"]["name"],
                                  "val.acc.max": record["summaries"]["val"]["acc"]["max"],
                                  "status": record["status"], "hparams.nope": None}
    assert api.request("GET", "/apis/v1/search/runs", params={"folder": folder, "page_size": 5000}).status_code == 400
    bad = api.request("GET", "/apis/v1/search/runs", params={"folder": folder, "fields": ["val.acc"]})
    assert bad.status_code == 400 and "unknown field 'val.acc'" in bad.text


@pytest.fixture(scope="module")
def pg_swept(tmp_path_factory):
    """The same 12 Runs uploaded to a server on a fresh PostgreSQL database."""
    from support.em_server_process import ServerProcess
    from support.server_api import Api
    from support.team_services import fresh_pg_database, pg_available
    if not pg_available():
        pytest.skip("PostgreSQL not reachable")
    with fresh_pg_database() as url:
        server = ServerProcess(tmp_path_factory.mktemp("em-server-pg"), db=url)
        name, key = server.add_user("alice")
        server.start()
        try:
            api = Api(server.base_url, key, name)
            folder = api.folder()
            upload_sweep(api, folder)
            yield api, folder
        finally:
            server.stop()


@pytest.mark.parametrize("params", [
    {"filter": "hparams.lr <= 0.01 and status = 'Complete'", "order_by": ["val.acc.max desc"]},
    {"filter": "hparams.opt.name in ('SGD') or val.acc.last >= 0.9", "order_by": ["hparams.lr", "name desc"]},
    {"filter": "not labels contains 'sweep' or val.acc.count > 10", "order_by": ["val.acc.min_step"]},
    {"filter": "", "order_by": ["val.acc.mean desc"], "page_size": 5},
])
def test_postgresql_answers_as_sqlite_over_http(swept, pg_swept, params):
    """The same uploads give the same pages, totals and groups on both databases, and a bad
    query the same 400 with its position."""
    def pages(api, folder):
        out, token = [], None
        while True:
            reply = api.request("GET", "/apis/v1/search/runs", params={
                "folder": folder, "page_size": 4, **params, **({"page_token": token} if token else {})})
            assert reply.status_code == 200, reply.text
            body = reply.json()
            out.append(([r["name"] for r in body["runs"]], body["total"]))
            token = body["next_page_token"]
            if token is None:
                return out
    assert pages(*pg_swept) == pages(*swept)

    def groups(api, folder):
        reply = api.request("GET", "/apis/v1/search/groups", params={
            "folder": folder, "filter": params["filter"], "by": "hparams.opt.name", "aggregate": "val.acc.max"})
        assert reply.status_code == 200, reply.text
        return [(g["value"], g["count"], round(g["aggregates"]["val.acc.max"]["mean"], 9))
                for g in reply.json()["groups"]]
    assert groups(*pg_swept) == groups(*swept)
    api, folder = pg_swept
    reply = api.request("GET", "/apis/v1/search/runs", params={"folder": folder, "filter": "hparams.lr <= and"})
    assert reply.status_code == 400 and reply.headers["X-Query-Position"] == "15"
    assert reply.text.startswith("position 15: unexpected 'and'")
