"""The run page of a resumed Run in a real browser (headless Chromium, Playwright): one curve per
metric with a marker at each resume point (tooltip: time, step, reason) and the segments listed.
The Run is made by the SDK (``create_run(resume=...)``, ``rewind``) and sent by its upload."""
from __future__ import annotations

import os
import re

import pytest

from support.browser import CHROMIUM, chromium, sign_in
from t9k import em
from t9k_em_core import client as em_client
from t9k_em_core import transfer

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.timeout(240),
]


def test_resume_points_are_marked_and_segments_listed(em_server, em_add_user, em_dirs):
    user, key = em_add_user()
    run = em.create_run(name='resumed', resume='ui-job')
    for step in range(1, 41):
        run.log('train', {'loss': 1.0 / step}, step=step)
    run.finish(status='Error')
    run = em.create_run(name='resumed', resume='ui-job')
    run.rewind(30, reason='preempted: restarted from checkpoint 30')
    for step in range(31, 61):
        run.log('train', {'loss': 2.0 / step}, step=step)
    run.finish()
    node = transfer.upload_run(run.local, f'/{user}/resumes', make_folder=True,
                               client=em_client.AISClient(em_server.url, key))

    with chromium() as browser:
        page = sign_in(browser, em_server.url, key)
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"/ui/runs/{node.id}")
        chart = page.locator('#charts .chart[data-metric="loss"]')
        expect(chart).to_have_attribute("data-points", '{"train":60}')  # one curve, 60 steps
        marker = chart.locator(".resume-marker")
        expect(marker).to_have_count(1)
        expect(marker).to_have_attribute("data-step", "30")
        title = marker.get_attribute("title")
        assert title.startswith("Resumed at step 30\n") and "preempted: restarted from checkpoint 30" in title
        assert re.search(r"\d{4}-\d\d-\d\d", title)  # the time of the resume
        marker.hover()  # the marker is where the pointer can reach it (its tooltip shows there)
        rows = page.locator("#segments tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text("first attempt")
        expect(rows.nth(0)).to_contain_text("Error")
        expect(rows.nth(1)).to_contain_text("30")
        expect(rows.nth(1)).to_contain_text("preempted")
        expect(rows.nth(1)).to_contain_text("Complete")
        page.click('.segmented button[data-x="epoch"]')  # no epochs logged: no marker there
        expect(page.locator("#charts .charts")).not_to_have_attribute("data-loading", "1")
        expect(chart.locator(".resume-marker")).to_have_count(0)
        page.click('.segmented button[data-x="time"]')
        expect(page.locator("#charts .charts")).not_to_have_attribute("data-loading", "1")
        expect(chart.locator(".resume-marker")).to_have_count(1)
        assert errors == []
