"""Run search on SQLite and PostgreSQL: summaries kept by the indexing path (incremental and
recomputed), flattened hparams, the query language (every operator, types, missing fields,
injection attempts, syntax errors with positions), ordering with missing values last, keyset
paging while Runs are added, scopes, groups, fields, and the migration that backfills."""
from __future__ import annotations

import math

import pytest
from alembic import command
from support.run_seed import add_run, metric_file, put
from support.team_services import needs_pg

from t9k_em_core import run_files
from t9k_em_server import run_search
from t9k_em_server.blob_store import LocalBlobStore
from t9k_em_server.config import Limits
from t9k_em_server.metadata_store import MetadataStore, RunHparam, RunSummary
from t9k_em_server.migrations import alembic_config, upgrade
from t9k_em_server.query import QueryError, Selection, parse_filter
from t9k_em_server.stores import Stores
from t9k_em_server.users import add_user

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=needs_pg)])
def stores(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'm.db'}"
    else:
        url = request.getfixturevalue("pg_database").replace("postgresql://", "postgresql+psycopg://", 1)
    meta = MetadataStore(url)
    meta.upgrade()
    s = Stores(meta, LocalBlobStore(tmp_path_factory.mktemp("blobs")), Limits())
    yield s
    s.close()


@pytest.fixture(scope="module")
def sweep(stores):
    """/ann/sweep with five Runs (one in a subfolder) covering types and missing fields."""
    add_user(stores.meta, "ann")
    stores.meta.create_node("/ann", "sweep", "Folder", 0, [], "", "{}", None)
    stores.meta.create_node("/ann/sweep", "sub", "Folder", 0, [], "", "{}", None)
    f = "/ann/sweep"
    add_run(stores, f, "resnet-a", labels=["resnet", "baseline"], description="First Try",
            hparams={"optimizer": {"name": "Adam", "beta": 0.9}, "lr": 0.01, "bn": True,
                     "layers": [64, 32], "seed": 1},
            metrics={"val": metric_file({"accuracy": [0.5, 0.95, 0.9], "loss": [1.0, 0.2, 0.3]}),
                     "train": metric_file({"loss": [2.0, 1.0]})})
    add_run(stores, f, "resnet-b", status="Failed", labels=["resnet"],
            start="2026-11-26T12:00:00+00:00", end="2026-11-26T12:30:00+00:00",
            hparams={"optimizer": {"name": "SGD"}, "lr": 0.1, "bn": False, "seed": "1"},
            metrics={"val": metric_file({"accuracy": [0.3, 0.6], "loss": [2.0, 1.5]})})
    add_run(stores, f, "vgg", status="Running", end=None, start="2026-11-27T08:00:00+08:00",
            hparams={"optimizer": {"name": "Adam"}, "lr": 0.001},
            metrics={"val": metric_file({"accuracy": [0.7, 0.92, 0.91], "loss": [0.9, 0.4, 0.41]})})
    add_run(stores, f, "noparams", labels=["Resnet"], start="2026-11-25T00:00:00+00:00",
            end="2026-11-25T00:00:10+00:00")
    add_run(stores, f + "/sub", "resnet-deep", labels=["resnet"],
            hparams={"optimizer": {"name": "Adam"}, "lr": 0.01},
            metrics={"val": metric_file({"accuracy": [0.99]})})
    return run_search.Scope(stores.meta.get_node(f).id, False)


def names(stores, scope, text, recursive=False, order=None):
    scope = run_search.Scope(scope.folder_id, recursive)
    page = run_search.search(stores.meta, scope, text, order or ["name"], 100, None)
    assert page.total == len(page.nodes)
    return [n.name for n in page.nodes]


ALL = ["noparams", "resnet-a", "resnet-b", "vgg"]


@pytest.mark.parametrize("text, expected", [
    ("", ALL),
    ("name = 'vgg'", ["vgg"]),
    ("name != 'vgg'", ["noparams", "resnet-a", "resnet-b"]),
    ("name < 'resnet-b'", ["noparams", "resnet-a"]),
    ("name >= 'resnet-b'", ["resnet-b", "vgg"]),
    ("name in ('vgg', 'resnet-b', 'nope')", ["resnet-b", "vgg"]),
    ("name not in ('vgg', 'resnet-b')", ["noparams", "resnet-a"]),
    ("name contains 'NET'", ["resnet-a", "resnet-b"]),
    ("name ~ '^res.*-a$'", ["resnet-a"]),
    ("status = 'Complete'", ["noparams", "resnet-a"]),
    ("description contains 'first'", ["resnet-a"]),
    ("labels contains 'resnet'", ["resnet-a", "resnet-b"]),
    ("labels = 'Resnet'", ["noparams"]),
    ("labels != 'resnet'", ["noparams", "vgg"]),
    ("labels in ('baseline', 'Resnet')", ["noparams", "resnet-a"]),
    ("labels not in ('resnet')", ["noparams", "vgg"]),
    ("labels ~ '^R'", ["noparams"]),
    ("labels = null", ["vgg"]),
    ("hparams.optimizer.name = 'Adam'", ["resnet-a", "vgg"]),
    ("hparams.optimizer.name != 'Adam'", ["resnet-b"]),
    ("hparams.lr <= 0.01", ["resnet-a", "vgg"]),
    ("hparams.lr < 0.01", ["vgg"]),
    ("hparams.lr > 0.01", ["resnet-b"]),
    ("hparams.lr >= 0.01", ["resnet-a", "resnet-b"]),
    ("hparams.lr in (0.1, 0.001)", ["resnet-b", "vgg"]),
    ("hparams.lr not in (0.1, 0.001)", ["resnet-a"]),
    ("hparams.bn = true", ["resnet-a"]),
    ("hparams.bn = FALSE", ["resnet-b"]),
    ("hparams.bn != true", ["resnet-b"]),
    ("hparams.seed = 1", ["resnet-a"]),          # typed: the number 1 ...
    ("hparams.seed = '1'", ["resnet-b"]),        # ... and the string '1' are different values
    ("hparams.seed in (1, '1')", ["resnet-a", "resnet-b"]),
    ("hparams.layers = '[64, 32]'", ["resnet-a"]),
    ("hparams.optimizer.name contains 'ad'", ["resnet-a", "vgg"]),
    ("hparams.optimizer.name ~ '^S'", ["resnet-b"]),
    ("hparams.optimizer.beta = null", ["noparams", "resnet-b", "vgg"]),
    ("hparams.optimizer.beta != null", ["resnet-a"]),
    ("hparams.lr != 0.01", ["resnet-b", "vgg"]),          # missing is not "different"
    ("not hparams.lr = 0.01", ["noparams", "resnet-b", "vgg"]),  # but not is the complement
    ("hparams.nothing = 1", []),
    ("val.accuracy.max > 0.9", ["resnet-a", "vgg"]),
    ("val.accuracy.max >= 0.95", ["resnet-a"]),
    ("val.accuracy.last = 0.9", ["resnet-a"]),
    ("val.loss.min < 0.3", ["resnet-a"]),
    ("val.loss.min_step = 1", ["resnet-a", "resnet-b", "vgg"]),
    ("val.accuracy.count = 2", ["resnet-b"]),
    ("train.loss.mean = 1.5", ["resnet-a"]),
    ("train.loss.last != 1", []),
    ("val.accuracy.max = null", ["noparams"]),
    ("start >= '2026-11-26T12:00:00+00:00'", ["resnet-b", "vgg"]),
    ("start < '2026-11-27'", ["noparams", "resnet-a", "resnet-b"]),  # vgg: 00:00 UTC on the 27th
    ("start > '2026-11-26T12:00:00Z'", ["vgg"]),
    ("end = null", ["vgg"]),
    ("duration < 60", ["noparams"]),
    ("duration >= 1800", ["resnet-a", "resnet-b"]),
    ("hparams.optimizer.name = 'Adam' and hparams.lr <= 0.01 and val.accuracy.max > 0.9 "
     "and status = 'Complete' and labels contains 'resnet' and name ~ '^resnet'", ["resnet-a"]),
    ("status = 'Failed' or (hparams.lr < 0.01 and not labels contains 'x')", ["resnet-b", "vgg"]),
    ("NOT (status = 'Complete' OR status = 'Running')", ["resnet-b"]),
])
def test_operators(stores, sweep, text, expected):
    assert names(stores, sweep, text) == expected


def test_recursive_scope(stores, sweep):
    assert names(stores, sweep, "hparams.lr = 0.01", recursive=True) == ["resnet-a", "resnet-deep"]
    assert names(stores, sweep, "hparams.lr = 0.01") == ["resnet-a"]


@pytest.mark.parametrize("text", [
    "name = 'x'' or 1=1 --'",
    "name = \"vgg' OR '1'='1\"",
    "hparams.`lr'; DROP TABLE nodes; --` = 1",
    "hparams.`x\") or (1=1` = 'a'",
    "name ~ '(a|b)*'' or 1=1'",
    "labels contains '%'",
    "name contains '_'",
])
def test_injection_attempts_match_nothing(stores, sweep, text):
    try:
        assert names(stores, sweep, text) == []
    except QueryError:
        pass  # refused is fine too; what matters is that nothing ran
    assert names(stores, sweep, "") == ALL


@pytest.mark.parametrize("text, position, words", [
    ("hparams.lr <=", 14, "ends too early"),
    ("hparams.lr <= and x = 1", 15, "unexpected 'and'"),
    ("name = 'a' and and", 16, "unexpected 'and'"),
    ("(name = 'a'", 12, "ends too early"),
    ("name = 'a' )", 12, "unexpected ')'"),
    ("name == 'a'", 7, "unexpected"),
    ("name = 'a' & x", 12, "unexpected character '&'"),
    ("bogus = 1", 1, "unknown field 'bogus'"),
    ("val.accuracy.maximum > 1", 1, "unknown field"),
    ("status > 3", 10, "status is a string"),
    ("val.loss.min = 'low'", 16, "is a number"),
    ("name ~ '('", 8, "bad regular expression"),
    ("val.loss.min contains 'x'", 1, "works on strings"),
    ("labels < 'a'", 1, "does not apply to labels"),
    ("hparams.lr < null", 14, "null works only"),
    ("start > 'yesterday'", 9, "not a timestamp"),
    ("hparams.bn > true", 14, "does not apply to true/false"),
])
def test_bad_queries_name_position_and_problem(text, position, words):
    with pytest.raises(QueryError) as err:
        parse_filter(text)
    assert err.value.position == position, str(err.value)
    assert words in str(err.value) and str(err.value).startswith(f"position {position}:")


def test_order_by_any_field_missing_last(stores, sweep):
    order = lambda *o: names(stores, sweep, "", order=list(o))  # noqa: E731
    assert order("val.accuracy.max desc") == ["resnet-a", "vgg", "resnet-b", "noparams"]
    assert order("val.accuracy.max asc") == ["resnet-b", "vgg", "resnet-a", "noparams"]
    assert order("hparams.lr") == ["vgg", "resnet-a", "resnet-b", "noparams"]
    assert order("hparams.lr desc") == ["resnet-b", "resnet-a", "vgg", "noparams"]
    assert order("hparams.seed", "name") == ["resnet-a", "resnet-b", "noparams", "vgg"]  # number, string, missing
    assert order("end desc") == ["resnet-b", "resnet-a", "noparams", "vgg"]
    assert order("status", "name desc") == ["resnet-a", "noparams", "resnet-b", "vgg"]
    with pytest.raises(QueryError, match="labels cannot be sorted"):
        order("labels")
    with pytest.raises(QueryError, match="position 18"):
        order("val.accuracy.max sideways")


@pytest.mark.parametrize("n, order", list(enumerate([["name"], ["val.accuracy.max desc"],
                                                 ["hparams.lr", "status desc"], ["end"]])))
def test_keyset_paging_while_runs_are_added(stores, n, order):
    user = f"pager{n}"
    add_user(stores.meta, user)
    folder = stores.meta.create_node(f"/{user}", "many", "Folder", 0, [], "", "{}", None)
    for i in range(23):
        add_run(stores, folder.path, f"r{i:02d}", end=None if i % 4 == 0 else "2026-11-26T11:00:00+00:00",
                hparams={"lr": [0.1, 0.01, 0.001][i % 3]} if i % 5 else {"lr": "auto"},
                metrics={"val": metric_file({"accuracy": [i % 7 / 10]})} if i % 6 else None)
    scope = run_search.Scope(folder.id, False)
    seen, token, added = [], None, 0
    while True:
        page = run_search.search(stores.meta, scope, "", order, 5, token)
        seen += [n.name for n in page.nodes]
        if page.next_page_token is None:
            break
        token = page.next_page_token
        for _ in range(2):  # new Runs arrive between pages
            add_run(stores, folder.path, f"new{added:02d}", hparams={"lr": 0.05},
                    metrics={"val": metric_file({"accuracy": [0.55]})})
            added += 1
    originals = [n for n in seen if n.startswith("r")]
    assert sorted(originals) == [f"r{i:02d}" for i in range(23)]  # each exactly once
    assert len(seen) == len(set(seen))
    whole = run_search.search(stores.meta, scope, "", order, 1000, None)
    expected = [n.name for n in whole.nodes]
    assert [n for n in expected if n in set(seen)] == seen  # pages follow the global order
    with pytest.raises(QueryError, match="page token"):
        run_search.search(stores.meta, scope, "name = 'x'", order, 5, token)
    with pytest.raises(QueryError, match="page token"):
        run_search.search(stores.meta, scope, "", order, 5, token[:-3] + "abc")


def summaries_of(stores, node_id, metric_type="val"):
    return {n: s.as_dict() for n, s in stores.meta.metric_summaries(node_id, metric_type).items()}


def test_summaries_incremental_equal_full_recompute(stores, sweep):
    run = add_run(stores, "/ann/sweep/sub", "growing")
    values = {"acc": [0.1 * (i % 13) for i in range(300)], "loss": [float("nan") if i == 5 else 1.0 / (i + 1)
                                                                      for i in range(300)]}
    full = metric_file(values)
    key = run_files.metric_index_path("val")
    cuts = [0, full.index(b"\n- ", 5000) + 1, full.index(b"\n- ", 12000) + 1, len(full) - 7, len(full)]
    for cut in cuts[1:]:  # auto_upload re-sends the grown file; the last cut ends mid-entry
        put(stores, run, key, full[:cut])
    incremental = summaries_of(stores, run.id)
    index = stores.meta.get_series_index(stores.meta.get_object(run.id, key).id)
    assert index.segments == 4 and index.count == 300

    other = add_run(stores, "/ann/sweep/sub", "whole")
    put(stores, other, key, full)
    whole = summaries_of(stores, other.id)
    assert whole.keys() == incremental.keys()
    for name in whole:
        assert whole[name] == pytest.approx(incremental[name])
    acc = incremental["acc"]
    assert acc["count"] == 300 and acc["max"] == pytest.approx(1.2) and acc["max_step"] == 12
    assert acc["min"] == 0 and acc["min_step"] == 0 and acc["last_step"] == 299
    assert acc["mean"] == pytest.approx(sum(values["acc"]) / 300)
    assert incremental["loss"]["count"] == 299  # NaN is not a value

    # A rewritten (rewound) shorter file is recomputed, not folded.
    put(stores, run, key, metric_file({"acc": [5.0, 4.0]}))
    assert summaries_of(stores, run.id) == {"acc": {
        "last": 4.0, "min": 4.0, "max": 5.0, "mean": 4.5, "count": 2, "last_step": 1,
        "min_step": 1, "max_step": 0}}
    stores.meta.delete_object(run.id, key)
    assert summaries_of(stores, run.id) == {}


def test_groups_and_fields(stores, sweep):
    grouped = run_search.groups(stores.meta, sweep, "", "hparams.optimizer.name",
                                ["val.accuracy.max", "hparams.lr"], 100)
    by_value = {g["value"]: g for g in grouped["groups"]}
    assert grouped["total"] == 4 and set(by_value) == {"Adam", "SGD", None}
    adam = by_value["Adam"]
    assert adam["count"] == 2 and adam["filter"] == "hparams.optimizer.name = 'Adam'"
    assert adam["aggregates"]["val.accuracy.max"] == {"mean": pytest.approx(0.935), "min": 0.92,
                                                      "max": 0.95, "count": 2}
    assert adam["aggregates"]["hparams.lr"]["max"] == 0.01
    # each group's filter selects exactly its Runs
    for g in grouped["groups"]:
        assert len(names(stores, sweep, g["filter"])) == g["count"]
    labels = run_search.groups(stores.meta, sweep, "status != 'Running'", "labels", [], 100)
    assert {g["value"]: g["count"] for g in labels["groups"]} == {"resnet": 2, "baseline": 1, "Resnet": 1}
    status = run_search.groups(stores.meta, sweep, "", "status", ["duration"], 1)
    assert status["truncated"] and status["groups"][0]["value"] == "Complete"
    bools = run_search.groups(stores.meta, sweep, "", "hparams.bn", [], 10)
    assert {g["value"] for g in bools["groups"]} == {True, False, None}
    assert "hparams.bn = true" in [g["filter"] for g in bools["groups"]]

    fields = run_search.fields(stores.meta, sweep)
    assert {"key": "seed", "field": "hparams.seed", "types": ["number", "string"]} in fields["hparams"]
    assert {"type": "train", "name": "loss"} in fields["metrics"]
    assert "val.accuracy.max" in fields["fields"] and "hparams.optimizer.name" in fields["fields"]
    deep = run_search.fields(stores.meta, run_search.Scope(sweep.folder_id, True))
    assert len(deep["metrics"]) >= len(fields["metrics"])


def test_migration_backfills(stores, sweep):
    """Downgrading drops the index tables; upgrading again rebuilds them from the nodes'
    parsed documents and the series segments alone."""
    def snapshot():
        with stores.meta.reading() as s:
            hp = sorted((r.node_id, r.key, r.kind, r.num, r.text) for r in s.query(RunHparam))
            sm = sorted((r.node_id, r.type, r.name, r.count, r.last, r.min, r.max, r.mean, r.max_step)
                        for r in s.query(RunSummary))
        return hp, sm, names(stores, sweep, "labels contains 'resnet' and end != null")
    before = snapshot()
    assert before[0] and before[1]
    config = alembic_config()
    with stores.meta.engine.connect() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
        connection.commit()
    upgrade(stores.meta.engine)
    after = snapshot()
    assert after[0] == before[0] and after[2] == before[2]
    assert [r[:4] for r in after[1]] == [r[:4] for r in before[1]]
    for a, b in zip(after[1], before[1]):
        assert all(math.isclose(x, y) for x, y in zip(a[4:], b[4:]))


def test_slow_search_is_a_query_error_on_postgresql(stores, sweep, monkeypatch):
    if stores.meta.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no statement timeout")
    monkeypatch.setattr(run_search, "TIMEOUT_MS", 1)
    with stores.meta.engine.connect() as c:  # make any statement take longer than 1 ms
        c.exec_driver_sql("CREATE OR REPLACE FUNCTION slow() RETURNS boolean AS "
                          "'SELECT pg_sleep(0.05) IS NOT NULL' LANGUAGE sql")
        c.commit()
    from sqlalchemy import func
    monkeypatch.setattr(Selection, "where", lambda self, run: func.slow())
    with pytest.raises(QueryError, match="longer than 0.001 s"):
        run_search.search(stores.meta, sweep, "", ["name"], 10, None)


def test_moved_run_is_found_in_its_new_folder(stores, sweep):
    """The index rows carry the Run's Folder: a move takes them along (and the column picker
    of the new Folder learns the Run's fields)."""
    add_user(stores.meta, "mover")
    for name in ("from", "to"):
        stores.meta.create_node("/mover", name, "Folder", 0, [], "", "{}", None)
    run = add_run(stores, "/mover/from", "walker", labels=["moving"], hparams={"opt": {"lr": 0.5}},
                  metrics={"val": metric_file({"acc": [0.25, 0.75]})})
    source, target = (run_search.Scope(stores.meta.get_node(f"/mover/{n}").id, False) for n in ("from", "to"))
    query = "hparams.opt.lr = 0.5 and val.acc.max > 0.5 and labels contains 'moving'"
    assert names(stores, source, query) == ["walker"] and names(stores, target, query) == []
    stores.meta.move_node(run.id, target.folder_id)
    assert names(stores, source, query) == [] and names(stores, target, query) == ["walker"]
    assert names(stores, target, "not hparams.opt.lr = 1 or labels ~ '^x'") == ["walker"]
    fields = run_search.fields(stores.meta, target)
    assert "hparams.opt.lr" in fields["fields"] and {"type": "val", "name": "acc"} in fields["metrics"]


@pytest.mark.parametrize("text, order, reads", [
    ("hparams.optimizer.name = 'Adam' and (hparams.lr < 0.05 or labels contains 'resnet')", "val.loss.min",
     set()),
    ("hparams.optimizer.name = 'Adam' and not labels contains 'resnet'", "hparams.lr", set()),
    ("hparams.optimizer.name = 'Adam' and name ~ 'vgg'", "val.loss.min", {"nodes"}),
    ("hparams.optimizer.name = 'Adam'", "start desc", {"run_fields"}),
])
def test_index_filters_read_no_node_rows(stores, sweep, text, order, reads):
    """A filter whose top level has an index condition starts from that index and joins
    ``nodes`` / ``run_fields`` only for columns it reads itself (a name, a time), never for the
    scope's CTE inside its subqueries: the join would cost a probe per candidate Run."""
    from sqlalchemy import event
    seen = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)
    event.listen(stores.meta.engine, "before_cursor_execute", capture)
    try:
        page = run_search.search(stores.meta, run_search.Scope(sweep.folder_id, True), text, [order], 10, None)
    finally:
        event.remove(stores.meta.engine, "before_cursor_execute", capture)
    assert page.total >= 1
    statement = next(s for s in seen if "OVER ()" in s)
    outer = statement[statement.index("FROM (SELECT"):]
    joined = {t for t in ("nodes", "run_fields") if f"JOIN {t} ON" in outer}
    assert joined == reads, outer
