"""The folder page with a sweep of many runs, in a real headless Chromium against the real server
subprocess: the query-language filter (row count and rows equal the search API's, completion,
errors at their position, help), sorting on the server, group rows whose aggregates equal a pandas
computation over ``em.search_runs(output='pandas')``, charts of many runs (overlay and group
bands, checked on the canvas) and parallel coordinates whose brush filters the table.
"""
from __future__ import annotations

import json
import math
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
import requests

from support.browser import CHROMIUM, chromium, sign_in
from support.ui_seed import Seeder, metric_text

pytest.importorskip("playwright.sync_api")
pd = pytest.importorskip("pandas")
from playwright.sync_api import Page, expect  # noqa: E402

from t9k import em  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.timeout(300),
]

RUNS = 120  # more than two pages of 50
OPTIMIZERS = ["Adam", "SGD", "AdamW"]
LABELS = ["resnet", "vit", "baseline"]
STATUSES = ["Complete", "Error", "Running"]


def curve(n: int, every: int, rate: float, level: float, t0: float) -> str:
    return metric_text((k * every, k, {"loss": level * math.exp(-k * rate) + 0.1,
                                       "accuracy": 1 - 0.9 * math.exp(-k * rate)}, t0 + k) for k in range(1, n + 1))


@pytest.fixture(scope="module")
def sweep(em_server, em_add_user):
    """A fresh user with RUNS runs in /<user>/sweep: 4 hparams, train/val loss and accuracy
    (runs 7, 17, … have no val metrics: missing fields), labels and the three statuses."""
    name, key = em_add_user()
    rng = random.Random(16)
    folder = f"/{name}/sweep"
    t0 = time.time() - 10 * 3600
    Seeder(em_server.url, key).folder(folder)
    runs = []
    for i in range(RUNS):
        metrics = {"train": curve(30, 10, rng.uniform(0.05, 0.3), rng.uniform(1, 3), t0)}
        if i % 10 != 7:
            metrics["val"] = curve(6, 50, rng.uniform(0.1, 0.6), rng.uniform(1, 3), t0)
        runs.append(dict(name=f"run{i:03d}", start=t0 + i * 60, end=t0 + i * 60 + rng.randint(60, 3600),
                         status=STATUSES[i % 3], labels=rng.sample(LABELS, rng.randint(1, 2)),
                         hparams={"lr": [0.1, 0.01, 0.001][i % 3], "optimizer": {"name": OPTIMIZERS[i % 4 % 3]},
                                  "depth": rng.choice([18, 50]), "use_bn": i % 2 == 0},
                         metrics=metrics))
    local = threading.local()

    def upload(run: dict) -> None:
        if not hasattr(local, "seeder"):
            local.seeder = Seeder(em_server.url, key)
        local.seeder.run(folder, run.pop("name"), **run, extras=False)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(upload, runs))
    return {"base": em_server.url, "key": key, "user": name, "folder": folder}


def api_search(sweep: dict, filter_text: str, order: str | None = None, page_size: int = 1000) -> dict:
    params = {"folder": sweep["folder"], "filter": filter_text, "page_size": page_size, "apikey": sweep["key"]}
    if order:
        params["order_by"] = order
    reply = requests.get(sweep["base"] + "/apis/v1/search/runs", params=params, timeout=30)
    return {"status": reply.status_code, "json": reply.json() if reply.ok else None, "text": reply.text,
            "position": reply.headers.get("X-Query-Position")}


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser, sweep):
    """A signed-in page at the sweep folder; fails the test on any uncaught JavaScript error."""
    page = sign_in(browser, sweep["base"], sweep["key"])
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"/ui/folders{sweep['folder']}")
    expect(page.locator("#run-count")).to_have_attribute("data-total", str(RUNS))
    yield page
    page.context.close()
    assert errors == []


def apply_filter(page: Page, text: str) -> None:
    page.fill("#filter", text)
    page.press("#filter", "Enter")


def load_every_row(page: Page) -> list[str]:
    """Scroll until the table holds every matching run; the runs' ids in table order."""
    count = page.locator("#run-count")
    while page.locator("#runs-more").is_visible():
        shown = count.get_attribute("data-shown")
        page.locator("#runs-more").scroll_into_view_if_needed()
        expect(count).not_to_have_attribute("data-shown", shown)
    return page.locator("#runs tbody tr[data-id]").evaluate_all("rows => rows.map(r => r.dataset.id)")


def test_filter_rows_equal_the_api(page, sweep):
    query = "hparams.lr <= 0.01 and val.accuracy.max > 0.5 and (labels contains 'resnet' or status = 'Error')"
    expected = api_search(sweep, query, "name")["json"]
    assert 50 < expected["total"] < RUNS  # the table needs more than one page
    apply_filter(page, query)
    count = page.locator("#run-count")
    expect(count).to_have_attribute("data-total", str(expected["total"]))
    assert page.locator("#runs tbody tr[data-id]").count() == 50  # one page, not all
    assert "q=" in page.url  # the filter is in the page's address
    page.locator("#runs th[data-field='name']").click()
    expect(page.locator("#runs th[data-field='name'] .arrow")).to_have_text("▲")
    ids = load_every_row(page)
    assert ids == [r["id"] for r in expected["runs"]]
    # Sorting happens on the server: descending val.accuracy.max, runs without it last.
    page.click("#columns > summary")
    page.locator("input[aria-label='val.accuracy.max']").check()
    page.click("#columns > summary")
    page.locator("#runs th[data-field='val.accuracy.max']").click()
    expect(page.locator("#runs th[data-field='val.accuracy.max'] .arrow")).to_have_text("▼")
    apply_filter(page, "hparams.depth = 50")
    expected = api_search(sweep, "hparams.depth = 50", "val.accuracy.max desc")["json"]
    expect(count).to_have_attribute("data-total", str(expected["total"]))
    assert load_every_row(page) == [r["id"] for r in expected["runs"]]


def test_first_requests_are_the_preloaded_ones(browser, sweep):
    """The page shell preloads the folder, its fields and the first page of runs (filter from the
    address included), so the script's own requests find them: each is asked for once."""
    page = sign_in(browser, sweep["base"], sweep["key"])
    asked: list[str] = []
    page.on("request", lambda r: "/search/" in r.url and asked.append(r.url.split("/api/ui/v1")[1]))
    page.goto(f"/ui/folders{sweep['folder']}?q={quote('hparams.lr = 0.1')}&recursive=1")
    expect(page.locator("#run-count")).to_have_attribute("data-total", str(RUNS // 3))
    assert sorted(u.split("?")[0] for u in asked) == ["/search/fields", "/search/runs"], asked
    preloads = page.locator("link[rel=preload]").evaluate_all("links => links.map(l => l.href)")
    assert {u.split("/api/ui/v1")[1] for u in preloads} >= set(asked)
    page.context.close()


def test_filter_completes_fields_and_shows_errors_inline(page, sweep):
    box = page.locator("#filter")
    box.fill("")
    box.press_sequentially("hparams.opt")
    suggestions = page.locator("#filter-suggestions li")
    expect(suggestions).to_have_text(["hparams.optimizer.name"])
    box.press("Tab")
    expect(box).to_have_value("hparams.optimizer.name ")
    box.press_sequentially("= 'SGD' and val.lo")
    expect(suggestions.first).to_have_text(re.compile(r"^val\.loss\."))
    box.press("Escape")
    box.press_sequentially("ss > 1")
    box.press("Enter")
    expected = api_search(sweep, "hparams.optimizer.name = 'SGD' and val.loss > 1")  # no summary
    assert expected["status"] == 400
    error = page.locator("#filter-error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("data-position", expected["position"])
    expect(error).to_contain_text(expected["text"].split(": ", 1)[1])
    expect(error.locator("mark.at")).to_have_text("v")  # the character where the problem is
    apply_filter(page, "hparams.lr <= and")
    bad = api_search(sweep, "hparams.lr <= and")
    expect(error).to_have_attribute("data-position", bad["position"])
    expect(error).to_contain_text("unexpected 'and'")
    apply_filter(page, "status = 'Error'")
    expect(error).to_be_hidden()
    expect(page.locator("#run-count")).to_have_attribute("data-total", str(RUNS // 3))
    # The help lists the language; its examples fill the box.
    page.click("details.query-help > summary")
    expect(page.locator("#query-help")).to_contain_text("not in")
    page.locator("#query-help code.example", has_text="status = 'Complete'").click()
    expected = api_search(sweep, "status = 'Complete' and labels contains 'resnet'")["json"]
    expect(page.locator("#run-count")).to_have_attribute("data-total", str(expected["total"]))


def test_group_aggregates_equal_pandas(page, sweep):
    em.login(ais_host=sweep["base"], api_key=sweep["key"])
    try:
        frame = em.search_runs(sweep["folder"], filter="status != 'Running'", output="pandas")
    finally:
        em.logout()
    expected = frame.groupby("hparams.optimizer.name")["val.accuracy.max"].agg(["mean", "min", "max", "count"])
    sizes = frame.groupby("hparams.optimizer.name").size()
    page.click("#columns > summary")
    page.locator("input[aria-label='val.accuracy.max']").check()
    page.click("#columns > summary")
    apply_filter(page, "status != 'Running'")
    page.select_option("#group-by", "hparams.optimizer.name")
    groups = page.locator("#runs tr.group-row")
    expect(groups).to_have_count(len(expected))
    for row in groups.all():
        value = json.loads(row.get_attribute("data-value"))
        assert int(row.get_attribute("data-count")) == sizes[value]
        cell = row.locator("td[data-field='val.accuracy.max']")
        for stat in ("mean", "min", "max"):
            assert float(cell.get_attribute(f"data-{stat}")) == pytest.approx(expected.loc[value, stat], rel=1e-9)
        assert int(cell.get_attribute("data-count")) == expected.loc[value, "count"]
    # A group expands into its runs (a page of them, then more on demand).
    first = groups.first
    value = json.loads(first.get_attribute("data-value"))
    first.locator("button.toggle").click()
    members = page.locator("#runs tr.in-group")
    expect(members).to_have_count(min(50, int(sizes[value])))
    ids = set(members.evaluate_all("rows => rows.map(r => r.dataset.id)"))
    assert ids <= set(frame[frame["hparams.optimizer.name"] == value]["id"])


def painted(page: Page, low: int, high: int) -> int:
    """How many pixels of the many-run chart's canvas have an alpha in [low, high]."""
    return page.evaluate("""([low, high]) => {
        const c = document.querySelector('#many-chart').plot.ctx.canvas;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] >= low && d[i] <= high) n++;
        return n;
    }""", [low, high])


def test_charts_overlay_runs_and_group_bands(page, sweep):
    boxes = page.locator("#runs tbody tr[data-id] input[type=checkbox]")
    for box in boxes.all()[:5]:  # run119 … run115; run117 has no val metrics
        box.check()
    page.click("#many-charts > summary")
    chart = page.locator("#many-chart")
    page.select_option("#chart-metric", label="train/loss")
    expect(chart).to_have_attribute("data-lines", "5")
    assert painted(page, 1, 255) > 1000  # lines drawn, not only axes
    page.select_option("#chart-metric", label="val/loss")
    expect(chart).to_have_attribute("data-lines", "4")
    # Every row shown, up to 100: the chart follows the selection.
    page.check("#check-all")
    checked = int(re.search(r"\d+", page.locator("#compare").inner_text()).group())
    assert checked >= 50
    page.select_option("#chart-metric", label="train/loss")
    expect(chart).to_have_attribute("data-lines", str(min(100, checked)))
    assert painted(page, 1, 255) > 3000
    # Group bands: one request for the chart, a mean line and a min–max band per group.
    seen: list[str] = []
    page.on("request", lambda r: "/search/series" in r.url and seen.append(r.url))
    page.select_option("#group-by", "hparams.lr")
    expect(chart).to_have_attribute("data-bands", "3")
    expect(chart).to_have_attribute("data-lines", "3")
    assert len(seen) == 1 and "by=hparams.lr" in seen[0]
    assert painted(page, 40, 130) > 5000  # the bands' translucent fill covers an area
    # Inside each band (between its min and max, away from the mean line) the canvas is filled.
    filled = page.evaluate("""() => {
        const node = document.querySelector('#many-chart'), u = node.plot;
        const ctx = u.ctx;
        return node.bands.map((b) => {
            const i = Math.floor(b.x.length / 2), x = Math.round(u.valToPos(b.x[i], 'x', true));
            const top = u.valToPos(b.max[i], 'y', true), bottom = u.valToPos(b.min[i], 'y', true);
            if (bottom - top < 6) return null;
            return ctx.getImageData(x, Math.round(top + 2), 1, 1).data[3];
        });
    }""")
    assert len(filled) == 3 and any(a is not None for a in filled)
    assert all(a is None or a > 0 for a in filled)


def test_parallel_coordinates_brush_filters_the_table(page, sweep):
    page.click("#columns > summary")
    for key in ("depth", "use_bn", "optimizer.name"):
        box = page.locator("label.pick", has_text=re.compile(rf"^{re.escape(key)}$")).locator("input")
        if not box.is_checked():
            box.check()
    page.click("#columns > summary")
    expect(page.locator("#brush")).to_be_hidden()
    page.click("#plots > summary")
    plot = page.locator("#parallel")
    expect(plot).to_have_attribute("data-lines", str(RUNS))
    expect(plot).to_have_attribute("data-selected", str(RUNS))
    axes = int(plot.get_attribute("data-axes"))
    assert axes >= 4
    coloured = page.evaluate("""() => {
        const c = document.querySelector('#parallel canvas'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && Math.abs(d[i] - d[i + 2]) > 60) n++;
        return n;
    }""")
    assert coloured > 3000  # lines coloured by the summary, not only axes and text
    # Brush the lr axis from its top (0.1) to below its middle (0.01): 2 of its 3 values.
    fields = json.loads(plot.get_attribute("data-fields"))
    load_every_row(page)  # so that no page of the table arrives (and moves the canvas) mid-drag
    canvas = page.locator("#parallel canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    x = box["x"] + 56 + (box["width"] - 112) * fields.index("hparams.lr") / (axes - 1)
    page.mouse.move(x, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(x, box["y"] + 170, steps=5)
    page.mouse.up()
    expect(page.locator("#brush")).to_be_visible()
    brushed = page.locator("#brush code").inner_text()
    selected = plot.get_attribute("data-selected")
    assert int(selected) == RUNS * 2 // 3
    expected = api_search(sweep, brushed)["json"]["total"]
    expect(page.locator("#run-count")).to_have_attribute("data-total", str(expected))
    assert int(selected) == expected
    # Scatter of one hparam against the summary.
    expect(page.locator("#scatter")).to_have_attribute("data-points", re.compile(r"^\d+$"))
    assert int(page.locator("#scatter").get_attribute("data-points")) > 50
    page.click("#brush-clear")
    expect(page.locator("#run-count")).to_have_attribute("data-total", str(RUNS))
    expect(page.locator("#brush")).to_be_hidden()
    expect(plot).to_have_attribute("data-selected", str(RUNS))
