"""The team pages in headless Chromium against a real server: alice shares a Folder with bob as
editor from its page; bob finds it under "Shared with me", edits a Run's description and labels,
deletes it into the trash and restores it from the trash page; alice reads all of it in the
Folder's Activity, filtered by action, and revokes the share."""
from __future__ import annotations

import re
import time

import pytest

from support.browser import chromium, sign_in
from support.em_server_process import ServerProcess
from support.ui_seed import Seeder

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("teams-ui"))
    keys = {name: server.add_user(name)[1] for name in ("alice", "bob")}
    server.start()
    try:
        run_id, _ = Seeder(server.base_url, keys["alice"]).run("/alice/proj", "mnist", start=time.time() - 60,
                                                              end=time.time(), description="first try")
        yield {"base": server.base_url, "keys": keys, "run": run_id}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _page(browser, world, user):
    page = sign_in(browser, world["base"], world["keys"][user])
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())
    return page, errors


def test_share_edit_trash_and_restore(browser, world):
    alice, alice_errors = _page(browser, world, "alice")
    alice.goto("/ui/folders/alice/proj")
    alice.fill("#share-name", "bob")
    alice.select_option("#share-role", "editor")
    alice.click("#share")
    alice.wait_for_selector('#shares tr[data-name="bob"]')
    assert "editor" in alice.inner_text('#shares tr[data-name="bob"]')

    bob, bob_errors = _page(browser, world, "bob")
    shared = bob.wait_for_selector('.tree.shared a[href="/ui/folders/alice/proj"]')
    assert "alice/proj (editor)" in shared.inner_text()
    shared.click()
    bob.wait_for_url(re.compile(r".*/ui/folders/alice/proj$"))
    bob.wait_for_selector("#edit")  # an editor may edit the folder's fields; sharing is alice's
    assert bob.query_selector("#sharing") is None and bob.query_selector("#activity") is None

    bob.goto(f"/ui/runs/{world['run']}")
    bob.fill("#edit-description", "tuned by bob")
    bob.fill("#edit-labels", "best, v2")
    bob.click("#edit-save")
    bob.wait_for_selector("#edit-note >> text=Saved.")
    bob.reload()
    bob.wait_for_selector("#overview >> text=tuned by bob")
    assert "best" in bob.inner_text("#overview") and "v2" in bob.inner_text("#overview")

    bob.click("#delete")  # confirmed by the dialog handler; back to the folder, the run gone
    bob.wait_for_url(re.compile(r".*/ui/folders/alice/proj$"))
    bob.goto("/ui/trash")
    row = bob.wait_for_selector(f'#trash tr[data-id="{world["run"]}"]')
    assert "/alice/proj/mnist" in row.inner_text() and "bob" in row.inner_text()
    row.query_selector(".restore").click()
    bob.wait_for_selector("#trash-note >> text=Restored")
    bob.click("#trash-note a")
    bob.wait_for_url(re.compile(rf".*/ui/runs/{world['run']}$"))
    bob.wait_for_selector("#overview >> text=tuned by bob")

    alice.reload()
    alice.wait_for_selector("#audit tbody tr")
    actions = alice.eval_on_selector_all("#audit tbody tr", "rows => rows.map(r => r.dataset.action)")
    assert actions == ["restore", "delete", "edit", "share"]
    alice.select_option("#audit-action", "delete")
    alice.wait_for_selector('#audit tr[data-action="restore"]', state="detached")
    rows = alice.eval_on_selector_all("#audit tbody tr", "rows => rows.map(r => [r.dataset.action, r.innerText])")
    assert len(rows) == 1 and rows[0][0] == "delete" and "bob" in rows[0][1]

    alice.click('#shares tr[data-name="bob"] .revoke')
    alice.wait_for_selector("#share-list >> text=Not shared.")
    bob.goto("/ui/folders/alice/proj")
    bob.wait_for_selector(".error-box")
    assert "node not found" in bob.inner_text(".error-box")
    assert alice_errors == [] and bob_errors == []
