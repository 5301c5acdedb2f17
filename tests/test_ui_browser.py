"""The web UI in a real browser: headless Chromium (Debian's ``/usr/bin/chromium``) driven by
Playwright, against the real server subprocess of ``tests/conftest.py`` on loopback. Data goes in
through the HTTP API, shaped as the 0.6.0b0 client sends it (``tests/support/ui_seed.py``). Each module
run uses two fresh users, so other tests' data on the shared server does not matter.

Skipped when Chromium or Playwright is missing (``scripts/setup.sh`` installs both).
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from urllib.parse import quote

import pytest
import requests

from support.browser import CHROMIUM, chromium, sign_in
from support.ui_seed import Seeder, metric_text

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, expect  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.timeout(180),
]

TRAIN_POINTS, VAL_POINTS, BIG_POINTS = 240, 24, 20_000
MODEL_BYTES = os.urandom(200_000)


def curve(n: int, every: int, scale: float, t0: float, phase: float = 0.0) -> str:
    """A metric file with ``n`` entries of loss/accuracy, step = k*every, epoch = step // 100."""
    return metric_text(
        (k * every, k * every // 100, {"loss": scale * math.exp(-k / n * 3) + 0.05 * math.sin(k + phase),
                                       "accuracy": 1 - math.exp(-k / n * 3) * 0.9}, t0 + k * 0.05)
        for k in range(1, n + 1))


@pytest.fixture(scope="module")
def seeded(em_server, em_add_user):
    """Two fresh users: "alice" has a folder with 3 runs, 2 artifacts and lineage; "bob" one run."""
    (a_name, a_key), (b_name, b_key) = em_add_user(), em_add_user()
    base = em_server.url
    alice, bob = Seeder(base, a_key), Seeder(base, b_key)
    t0 = time.time() - 7200
    folder = f"/{a_name}/cifar10"
    data_id, _ = alice.artifact(folder, "cifar10-data", files={"train.bin": b"x" * 1000},
                                labels=["dataset"], description="CIFAR-10 training set")
    model_id, model_path = alice.artifact(
        folder, "model-a", files={"weights/model.pt": MODEL_BYTES, "config.json": b'{"depth": 50}'},
        references={"paper.pdf": "https://arxiv.org/abs/1512.03385",
                    "dataset.tar.gz": "s3://datasets/cifar10.tar.gz"}, labels=["ckpt"])
    run_a, _ = alice.run(
        folder, "resnet-a", start=t0, end=t0 + 1800, status="Complete", labels=["resnet", "baseline"],
        description="ResNet baseline", hparams={"lr": 0.001, "batch_size": 32, "optimizer": {"name": "Adam", "betas": [0.9, 0.999]}},
        metrics={"train": curve(TRAIN_POINTS, 10, 2.0, t0), "val": curve(VAL_POINTS, 100, 2.2, t0)},
        stdout="epoch 1 loss 2.0\nepoch 2 loss 1.1\nTRAINING DONE\n", inputs=[data_id], outputs=[model_id])
    run_b, _ = alice.run(
        folder, "resnet-b", start=t0 + 100, end=t0 + 2000, status="Complete", labels=["resnet"],
        hparams={"lr": 0.01, "batch_size": 32, "optimizer": {"name": "SGD", "betas": [0.9, 0.999]}},
        metrics={"train": curve(TRAIN_POINTS, 10, 2.5, t0, 1.0), "val": curve(VAL_POINTS, 100, 2.6, t0, 1.0)})
    big, _ = alice.run(
        folder, "big-run", start=t0 + 200, end=t0 + 300, status="Error", hparams={"lr": 0.1, "batch_size": 256},
        metrics={"train": curve(BIG_POINTS, 1, 1.0, t0)})
    bob_run, _ = bob.run(f"/{b_name}/secret", "bob-private", start=t0, end=t0 + 10, hparams={"lr": 7},
                         metrics={"train": curve(10, 1, 1.0, t0)})
    return {"base": base, "keys": {"alice": a_key, "bob": b_key}, "user": a_name, "alice": alice, "run_a": run_a, "run_b": run_b, "big": big,
            "model": model_id, "model_path": model_path, "data": data_id, "bob_run": bob_run, "t0": t0}


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def alice_context(browser, seeded):
    """One signed-in context for alice's tests (each test opens its own page in it)."""
    page = sign_in(browser, seeded["base"], seeded["keys"]["alice"])
    yield page.context
    page.context.close()


@pytest.fixture
def alice_page(alice_context):
    """A page of alice's; the test fails on any uncaught JavaScript error in it."""
    page = alice_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.close()
    assert errors == []


def chart_points(page: Page, metric: str) -> dict[str, int]:
    node = page.locator(f'#charts .chart[data-metric="{metric}"]')
    expect(node).to_have_attribute("data-points", re.compile(r"\{.+\}"))
    return eval(node.get_attribute("data-points"))  # noqa: S307 - a JSON object of ints from our page


def test_sign_in_and_out(browser, seeded):
    context = browser.new_context(base_url=seeded["base"])
    page = context.new_page()
    page.goto("/ui/")
    expect(page).to_have_url(re.compile(r".*/ui/signin"))
    page.fill("#apikey", "00000000-0000-0000-0000-000000000000")
    page.click("#signin")
    expect(page.locator("#signin-error")).to_contain_text("not valid")
    page.fill("#apikey", seeded["keys"]["alice"])
    page.click("#signin")
    expect(page).to_have_url(re.compile(rf".*/ui/folders/{seeded['user']}$"))
    expect(page.locator("#whoami")).to_have_text(seeded["user"])
    expect(page.locator(".folder-chip", has_text="cifar10")).to_be_visible()
    cookie = next(c for c in context.cookies() if c["name"] == "em_session")
    assert cookie["httpOnly"] and cookie["value"] != seeded["keys"]["alice"]
    page.click("#signout")
    expect(page).to_have_url(re.compile(r".*/ui/signin"))
    page.goto(f"/ui/folders/{seeded['user']}")
    expect(page).to_have_url(re.compile(r".*/ui/signin\?next=.*"))
    # The old session token is dead server-side, not only forgotten by the browser.
    r = requests.get(f"{seeded['base']}/oauth2/userinfo", cookies={"em_session": cookie["value"]}, timeout=10)
    assert r.status_code == 401
    context.close()


def test_folder_table_sorts_filters_and_shows_columns(alice_page, seeded):
    page = alice_page
    page.goto(f"/ui/folders/{seeded['user']}/cifar10")
    rows = page.locator("#runs tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#artifacts tbody tr")).to_have_count(2)
    expect(page.locator("#artifacts")).to_contain_text("model-a")
    header = page.locator("#runs thead th.sortable")
    expect(header.filter(has_text="lr")).to_be_visible()
    expect(header.filter(has_text="val.loss.last")).to_be_visible()
    row_a = page.locator("tr", has=page.locator("a", has_text="resnet-a"))
    expect(row_a).to_contain_text("Complete")
    expect(row_a).to_contain_text("30m 0s")
    expect(row_a).to_contain_text("baseline")
    expect(row_a).to_contain_text("0.001")
    last_val_loss = 2.2 * math.exp(-3) + 0.05 * math.sin(VAL_POINTS)  # curve()'s last val entry
    expect(row_a).to_contain_text(f"{last_val_loss:.5g}")
    header.filter(has_text=re.compile(r"^lr")).click()  # numbers sort descending first
    expect(page.locator("#runs th[data-field='hparams.lr'] .arrow")).to_have_text("▼")
    names = page.locator("#runs tbody tr a.name").all_inner_texts()
    assert names[:3] == ["big-run", "resnet-b", "resnet-a"]
    page.fill("#filter", "status = 'Error'")
    page.press("#filter", "Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("big-run")
    page.fill("#filter", "labels contains 'baseline'")
    page.press("#filter", "Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("resnet-a")
    page.fill("#filter", "")
    page.press("#filter", "Enter")
    expect(rows).to_have_count(3)
    # The column picker: choose which hparams/metrics are columns; the choice survives a reload.
    page.click("#columns > summary")
    page.locator("label.pick", has_text="optimizer.betas").locator("input").check()
    page.locator("label.pick", has_text=re.compile(r"^lr$")).locator("input").uncheck()
    page.locator("input[aria-label='train.loss.min']").check()
    expect(header.filter(has_text="optimizer.betas")).to_be_visible()
    expect(header.filter(has_text="train.loss.min")).to_be_visible()
    expect(header.filter(has_text=re.compile(r"^lr"))).to_have_count(0)
    page.reload()
    expect(page.locator("#runs thead th.sortable").filter(has_text="optimizer.betas")).to_be_visible()
    expect(page.locator("#runs thead th.sortable").filter(has_text="train.loss.min")).to_be_visible()


SYSTEM_SAMPLES = 40


def system_samples(t0: float, gpus: int) -> str:
    """A ``metrics/system.yaml`` as the SDK's sampler writes it (docs/system-metrics.md): one
    sample a second; GPU k is 80 + k % busy and uses (k + 1) GiB; the first sample has no rates."""
    def sample(i: int) -> dict:
        values = {}
        for k in range(gpus):
            values[f"gpu{k}_util_percent"] = 80.0 + k
            values[f"gpu{k}_memory_used_bytes"] = float((k + 1) << 30)
        values.update(memory_used_bytes=8e9, memory_percent=25.0, process_rss_bytes=2e9 + i * 1e6)
        if i:
            values.update(cpu_percent=50.0, process_cpu_percent=120.0, disk_read_bytes_per_s=1e6,
                          disk_write_bytes_per_s=2e6, net_recv_bytes_per_s=3e6, net_sent_bytes_per_s=4e6)
        return values
    return metric_text((i, None, sample(i), t0 + i) for i in range(SYSTEM_SAMPLES))


def test_system_section_and_gpu_columns(alice_page, seeded):
    page = alice_page
    folder = f"/{seeded['user']}/gpus"
    t0 = seeded["t0"]
    gpu_run, _ = seeded["alice"].run(folder, "gpu-run", start=t0, end=t0 + 60, metrics={
        "train": curve(10, 1, 1.0, t0), "system": system_samples(t0, gpus=2)})
    seeded["alice"].run(folder, "cpu-run", start=t0, end=t0 + 60, metrics={"system": system_samples(t0, gpus=0)})
    page.goto(f"/ui/folders{folder}")
    gpu_row = page.locator("tr", has=page.locator("a", has_text="gpu-run"))
    expect(gpu_row).to_contain_text("80.5%")  # the mean of 80 and 81
    expect(gpu_row).to_contain_text("2.00 GiB")  # GPU 1's memory
    expect(page.locator("#runs thead th", has_text="Mean GPU util")).to_be_visible()
    expect(page.locator("#runs thead th", has_text="Peak GPU memory")).to_be_visible()
    expect(page.locator("#runs thead th", has_text="system/")).to_have_count(0)
    page.goto(f"/ui/runs/{gpu_run}")
    system = page.locator("#system")
    expect(system).to_be_visible()
    expect(system.locator('.segmented button[data-x="time"]')).to_have_class("on")
    titles = system.locator(".chart-title > span:first-child").all_inner_texts()
    assert titles == ["GPU utilisation (%)", "GPU memory used (GiB)", "CPU (%)", "Memory (GiB)",
                      "Disk (MiB/s)", "Network (MiB/s)"]
    gpu_chart = system.locator('.chart[data-metric="GPU utilisation (%)"]')
    expect(gpu_chart).to_have_attribute("data-points", re.compile(r"\{.+\}"))
    assert eval(gpu_chart.get_attribute("data-points")) == {  # noqa: S307 - our page's JSON of ints
        "gpu0_util_percent": SYSTEM_SAMPLES, "gpu1_util_percent": SYSTEM_SAMPLES}
    expect(gpu_chart.locator(".u-legend")).to_contain_text("GPU 1")
    expect(gpu_chart.locator("canvas")).to_have_count(1)
    cpu_chart = system.locator('.chart[data-metric="CPU (%)"]')
    expect(cpu_chart).to_have_attribute("data-points", re.compile(r"\{.+\}"))
    assert eval(cpu_chart.get_attribute("data-points")) == {  # noqa: S307
        "cpu_percent": SYSTEM_SAMPLES - 1, "process_cpu_percent": SYSTEM_SAMPLES - 1}
    # The Charts section and the last-metrics table show the logged metrics only.
    assert chart_points(page, "loss") == {"train": 10}
    expect(page.locator('#charts .chart[data-metric="cpu_percent"]')).to_have_count(0)
    expect(page.locator("#summary")).not_to_contain_text("gpu0_util_percent")


def test_run_page_charts_hold_every_point(alice_page, seeded):
    page = alice_page
    page.goto(f"/ui/runs/{seeded['run_a']}")
    expect(page.locator("h1")).to_have_text("resnet-a")
    expect(page.locator("#git-commit")).to_contain_text("4f9c2e1b7d3a")
    expect(page.locator("#environment")).to_contain_text("gpu-node-3")
    expect(page.locator("#overview")).to_contain_text("ResNet baseline")
    assert chart_points(page, "loss") == {"train": TRAIN_POINTS, "val": VAL_POINTS}
    assert chart_points(page, "accuracy") == {"train": TRAIN_POINTS, "val": VAL_POINTS}
    # Each chart's uPlot canvas is drawn.
    expect(page.locator('#charts .chart[data-metric="loss"] canvas')).to_have_count(1)
    page.click('.segmented button[data-x="epoch"]')
    expect(page.locator("#charts .charts")).to_have_attribute("data-ready", "1")
    expect(page.locator("#charts .charts")).not_to_have_attribute("data-loading", "1")
    assert chart_points(page, "loss") == {"train": TRAIN_POINTS, "val": VAL_POINTS}
    page.click('.segmented button[data-x="time"]')
    expect(page.locator("#charts .charts")).not_to_have_attribute("data-loading", "1")
    assert chart_points(page, "loss") == {"train": TRAIN_POINTS, "val": VAL_POINTS}
    # Smoothing adds a smoothed curve per series (raw ones stay, faded, out of the legend); log scale redraws.
    page.click('.segmented button[data-x="step"]')
    expect(page.locator("#charts .charts")).not_to_have_attribute("data-loading", "1")
    page.locator('input[aria-label="smoothing"]').fill("0.9")
    legend = page.locator('#charts .chart[data-metric="loss"] .u-legend .u-series')
    expect(legend).to_have_count(1 + 2 * 2)
    expect(legend.filter(has_text="raw")).to_have_count(2)
    expect(legend.filter(has_text="raw").first).to_be_hidden()
    page.check('input[aria-label="log scale"]')
    expect(page.locator('#charts .chart[data-metric="loss"] canvas')).to_have_count(1)
    assert chart_points(page, "loss") == {"train": TRAIN_POINTS, "val": VAL_POINTS}
    # Nested, searchable hparams.
    expect(page.locator("#hparams li[data-key='betas']")).to_contain_text("0.999")
    page.fill("#hparams input[type=search]", "optim")
    expect(page.locator("#hparams li[data-key='lr']")).to_have_count(0)
    expect(page.locator("#hparams li[data-key='name']")).to_contain_text("Adam")
    # Log, inputs, outputs.
    expect(page.locator("#stdout")).to_contain_text("TRAINING DONE")
    last_val_loss = 2.2 * math.exp(-3) + 0.05 * math.sin(VAL_POINTS)  # curve()'s last val entry
    expect(page.locator("#summary tr", has_text="loss")).to_contain_text(f"{last_val_loss:.5g}")
    expect(page.locator("#inputs a")).to_have_text("cifar10-data")
    expect(page.locator("#outputs a")).to_have_text("model-a")


def test_big_series_is_downsampled_and_opens_fast(alice_page, seeded):
    page = alice_page
    start = time.monotonic()
    page.goto(f"/ui/runs/{seeded['big']}")
    points = chart_points(page, "loss")
    elapsed = time.monotonic() - start
    totals = eval(page.locator('#charts .chart[data-metric="loss"]').get_attribute("data-totals"))  # noqa: S307
    assert totals == {"train": BIG_POINTS}
    assert 100 < points["train"] <= 2000
    assert elapsed < 5, f"run page with a {BIG_POINTS}-point series took {elapsed:.2f}s"


def test_compare_two_runs(alice_page, seeded):
    page = alice_page
    page.goto(f"/ui/folders/{seeded['user']}/cifar10")
    page.check('tr:has(a:text-is("resnet-a")) input[type=checkbox]')
    page.check('tr:has(a:text-is("resnet-b")) input[type=checkbox]')
    page.click("#compare")
    expect(page).to_have_url(re.compile(r".*/ui/compare\?runs=.*"))
    expect(page.locator("h1")).to_have_text("Compare 2 runs")
    points = chart_points(page, "loss")
    assert sorted(points.values()) == sorted([TRAIN_POINTS, VAL_POINTS] * 2)
    assert {k.split(":")[0] for k in points} == {seeded["run_a"], seeded["run_b"]}
    table = page.locator("#compare-hparams")
    expect(table.locator("tr.diff")).to_have_count(2)  # lr and optimizer.name differ
    expect(table.locator('tr[data-key="lr"]')).to_have_class(re.compile("diff"))
    expect(table.locator('tr[data-key="optimizer.name"]')).to_have_class(re.compile("diff"))
    expect(table.locator('tr[data-key="batch_size"]')).not_to_have_class(re.compile("diff"))
    page.check("#only-diff")
    expect(table.locator("tbody tr")).to_have_count(2)


def test_artifact_download_and_references(alice_page, seeded):
    page = alice_page
    page.goto(f"/ui/artifacts/{seeded['model']}")
    expect(page.locator("#objects")).to_contain_text("195.3 KiB")
    expect(page.locator("#produced-by a")).to_have_text("resnet-a")
    with page.expect_download() as info:
        page.click('#objects a:text-is("weights/model.pt")')
    download = info.value
    assert download.suggested_filename == "model.pt"
    with open(download.path(), "rb") as f:
        assert f.read() == MODEL_BYTES
    link = page.locator('#references a:text-is("https://arxiv.org/abs/1512.03385")')
    expect(link).to_have_attribute("href", "https://arxiv.org/abs/1512.03385")
    expect(page.locator("#references")).to_contain_text("s3://datasets/cifar10.tar.gz")


def test_lineage_graph_nodes_are_clickable(alice_page, seeded):
    page = alice_page
    page.goto(f"/ui/lineage/{seeded['run_a']}")
    svg = page.locator("#lineage svg")
    for node_id in (seeded["data"], seeded["run_a"], seeded["model"]):
        expect(svg.locator(f'a[data-id="{node_id}"]')).to_have_count(1)
    expect(svg.locator("path.edge")).to_have_count(2)
    svg.locator(f'a[data-id="{seeded["model"]}"]').click()
    expect(page).to_have_url(re.compile(rf".*/ui/artifacts/{seeded['model']}$"))
    expect(page.locator("h1")).to_have_text("model-a")


def test_other_users_runs_are_not_visible(browser, seeded):
    page = sign_in(browser, seeded["base"], seeded["keys"]["bob"])
    expect(page.locator(".folder-chip", has_text="secret")).to_be_visible()
    expect(page.locator(".folder-chip", has_text="cifar10")).to_have_count(0)
    page.goto(f"/ui/runs/{seeded['run_a']}")
    expect(page.locator(".error-box")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("resnet-a")
    page.goto(f"/ui/folders/{seeded['user']}/cifar10")
    expect(page.locator(".error-box")).to_be_visible()
    expect(page.locator("table.data")).to_have_count(0)
    # Object download with bob's cookie: alice's file stays hers. (The API-key endpoints do not
    # take the cookie at all.)
    fetch = "u => fetch(u).then(r => r.status)"
    path = quote(seeded["model_path"] + "/weights/model.pt", safe="")
    assert page.evaluate(fetch, f"/api/ui/v1/objects?path={path}") in (403, 404)
    assert page.evaluate(fetch, f"/apis/v1/objects?path={path}") == 401
    page.context.close()


def test_running_run_updates_live(alice_page, seeded):
    alice, t0 = seeded["alice"], seeded["t0"]
    run_id, path = alice.run(f"/{seeded['user']}/live", "live-run", start=t0, status="Running",
                             metrics={"train": curve(20, 1, 1.0, t0), "val": curve(3, 10, 1.0, t0)})
    page = alice_page
    page.goto(f"/ui/runs/{run_id}")
    assert chart_points(page, "loss") == {"train": 20, "val": 3}
    series_requests: list[str] = []
    page.on("request", lambda r: "/series?" in r.url and series_requests.append(r.url))
    alice.put(f"{path}/metrics/train.yaml", curve(35, 1, 1.0, t0))  # the auto_upload re-send
    expect(page.locator('#charts .chart[data-metric="loss"]')).to_have_attribute(
        "data-points", '{"train":35,"val":3}', timeout=15_000)
    # Polling refetches only the series of the metric type that grew.
    assert series_requests and all("type=train" in u for u in series_requests)
    expect(page.locator("#head-status")).to_have_text("Running")
    alice.finish(path)
    expect(page.locator("#head-status")).to_have_text("Complete", timeout=15_000)
    expect(page.locator("#run-end")).not_to_have_text("—")


def test_pages_load_nothing_from_other_origins(alice_page, seeded):
    """...and run under the server's Content-Security-Policy without one violation."""
    page = alice_page
    origins, violations = set(), []
    page.on("request", lambda r: origins.add(re.match(r"^(\w+://[^/]+)", r.url).group(1)))
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    for url in (f"/ui/folders/{seeded['user']}/cifar10", f"/ui/runs/{seeded['run_a']}",
                f"/ui/artifacts/{seeded['model']}", f"/ui/lineage/{seeded['run_a']}",
                f"/ui/compare?runs={seeded['run_a']}"):
        page.goto(url)
        page.wait_for_load_state("networkidle")
    assert origins == {seeded["base"]}
    assert violations == []
    assert page.evaluate("typeof uPlot") == "function"


def test_long_log_shows_its_end(alice_page, seeded):
    lines = [f"line {i:06d} " + "x" * 60 + "\n" for i in range(6000)]  # ~430 KiB, over the 256 KiB tail
    run_id, _ = seeded["alice"].run(f"/{seeded['user']}/logs", "chatty", start=seeded["t0"], end=seeded["t0"] + 5,
                                    stdout="".join(lines))
    page = alice_page
    page.goto(f"/ui/runs/{run_id}")
    log = page.locator("#stdout")
    expect(log).to_contain_text("line 005999")
    expect(log).not_to_contain_text("line 000000")
    assert log.inner_text().startswith("line ")  # cut at a line start
    expect(page.locator("a", has_text="download all")).to_have_attribute("download", "stdout.log")


TRAINING_JOB = """
import os, sys, time
from t9k import em
base, key, folder, go = sys.argv[1:5]
em.login(ais_host=base, api_key=key)
run = em.create_run(name="sdk-live", auto_upload=True, folder=folder, make_folder=True, hparams={"lr": 0.1})
for step in range(1, 11):
    run.log("train", {"loss": 1.0 / step}, step=step, epoch=1)
while not os.path.exists(go):
    time.sleep(0.1)
for step in range(11, 26):
    run.log("train", {"loss": 1.0 / step}, step=step, epoch=2)
run.finish()
"""


@pytest.mark.timeout(120)
def test_sdk_auto_upload_run_updates_live(alice_page, seeded, tmp_path):
    """A real SDK process with ``auto_upload=True`` trains while the page watches it."""
    folder = f"/{seeded['user']}/sdk-live"
    go = tmp_path / "go"
    env = {**os.environ, "EM_SYNC_INTERVAL": "0.5", "EM_RUN_PARENT_DIR": str(tmp_path / "runs"),
           "EM_SYSTEM_METRICS": "0.2"}
    job = subprocess.Popen([sys.executable, "-c", TRAINING_JOB, seeded["base"], seeded["keys"]["alice"], folder, str(go)],
                           cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        info = f"{seeded['base']}/apis/v1/nodes/info"
        deadline = time.monotonic() + 60
        while True:  # until the syncer has created the node and sent the first ten points
            r = requests.get(info, params={"node": f"{folder}/sdk-live", "apikey": seeded["keys"]["alice"]}, timeout=10)
            if r.ok:
                detail = requests.get(f"{seeded['base']}/api/ui/v1/runs/{r.json()['id']}",
                                      headers={"Authorization": f"Bearer {seeded['keys']['alice']}"}, timeout=10).json()
                if detail.get("metric_counts", {}).get("train") == 10:
                    break
            assert job.poll() is None and time.monotonic() < deadline, job.stdout.read() if job.poll() is not None else "timeout"
            time.sleep(0.2)
        page = alice_page
        page.goto(f"/ui/runs/{r.json()['id']}")
        expect(page.locator("#head-status")).to_have_text("Running")
        assert chart_points(page, "loss") == {"train": 10}
        # The System section grows while the job waits: its sampler goes on, the syncer uploads.
        memory = page.locator('#system .chart[data-metric="Memory (GiB)"]')
        expect(memory).to_have_attribute("data-points", re.compile(r"\{.+\}"))
        first = eval(memory.get_attribute("data-points"))["process_rss_bytes"]  # noqa: S307
        page.wait_for_function(
            "n => JSON.parse(document.querySelector('#system .chart[data-metric=\"Memory (GiB)\"]')"
            ".dataset.points).process_rss_bytes > n", arg=first, timeout=30_000)
        go.touch()
        expect(page.locator('#charts .chart[data-metric="loss"]')).to_have_attribute(
            "data-points", '{"train":25}', timeout=30_000)
        expect(page.locator("#head-status")).to_have_text("Complete", timeout=30_000)
        assert job.wait(30) == 0, job.stdout.read()
    finally:
        if job.poll() is None:
            job.kill()
            job.wait(10)


def test_console_link_of_the_0_6_client_opens_the_node(alice_page, seeded):
    """Run.upload of 0.6.0b0 prints <host>/em/web/#/folders/<node id>/ (spec server-api §1)."""
    page = alice_page
    page.goto(f"/em/web/#/folders/{seeded['run_a']}/")
    expect(page).to_have_url(re.compile(rf".*/ui/runs/{seeded['run_a']}$"))
    page.goto(f"/em/web/#/folders/{seeded['model']}/")
    expect(page).to_have_url(re.compile(rf".*/ui/artifacts/{seeded['model']}$"))
