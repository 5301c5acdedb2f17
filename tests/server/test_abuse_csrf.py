"""CSRF and key leaks, against a real server: what a page on another origin (another port of the
same host is same-site, so SameSite=Lax cookies reach the server) can make a signed-in browser do,
sign-in/out forms, keys in URLs and logs, security headers, session and sign-in limits.

The browser is played with raw requests carrying the headers a browser sends (``Origin``,
``Sec-Fetch-Site``, the cookie); the pages themselves run in Chromium in tests/test_ui_browser.py.
"""
from __future__ import annotations

import os
import re
import threading
import time
import uuid

import pytest
import requests
import uvicorn
from support.abuse import page_token, signed_in, snapshot
from support.em_server_process import ServerProcess, free_port
from support.server_api import Api

pytestmark = pytest.mark.timeout(240)

CHROMIUM = os.environ.get("EM_TEST_CHROMIUM", "/usr/bin/chromium")

ENCODINGS = {
    "urlencoded": dict(data={"parent": "/x", "name": "pwned"}),
    "multipart": dict(files={"content": ("stdout.log", b"pwned")}),
    "text-plain": dict(data=b'{"parent": "/x", "name": "pwned", "type": "Folder"}',
                       headers={"Content-Type": "text/plain"}),
}


def raw_get(http: requests.Session, url: str) -> requests.Response:
    """GET ``url`` exactly as written (``requests`` would decode ``%6B`` to ``k``)."""
    prepared = http.prepare_request(requests.Request("GET", url))
    prepared.url = url
    return http.send(prepared, allow_redirects=False, timeout=30)


@pytest.fixture(scope="module")
def victim(em_server, em_add_user):
    name, key = em_add_user()
    api = Api(em_server.base_url, key, name)
    folder = api.folder()
    api.node(folder, "run", "Run")
    run = f"{folder}/run"
    assert api.put(f"{run}/stdout.log", b"the real log\n").status_code == 200
    return api, run, signed_in(em_server.base_url, key)


def browser_headers(base: str, origin: str) -> dict[str, str]:
    port = int(base.rsplit(":", 1)[1])
    return {"same-origin": {"Origin": base, "Sec-Fetch-Site": "same-origin"},
            "same-site": {"Origin": f"http://127.0.0.1:{port + 1}", "Sec-Fetch-Site": "same-site"},
            "cross-site": {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
            "old-browser": {"Origin": f"http://127.0.0.1:{port + 1}"},
            "no-headers": {}}[origin]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("origin", ["same-origin", "same-site", "cross-site", "old-browser", "no-headers"])
@pytest.mark.parametrize("target", ["create-folder", "overwrite-log"])
def test_the_session_cookie_never_writes_the_api(em_server, victim, encoding, origin, target):
    """Form posts (every encoding a form can send) with the victim's cookie, from any origin:
    refused with a 4xx naming why, nothing written."""
    api, run, browser = victim
    base = em_server.base_url
    folder = run.rsplit("/", 1)[0]
    before_log, before_nodes = snapshot(api, run), api.request("GET", "/apis/v1/nodes", params={"parent": folder}).json()
    url = (f"{base}/apis/v1/nodes" if target == "create-folder"
           else f"{base}/apis/v1/objects?path={run}/stdout.log")
    kw = {**ENCODINGS[encoding]}
    kw["headers"] = {**kw.get("headers", {}), **browser_headers(base, origin)}
    reply = browser.post(url, allow_redirects=False, timeout=30, **kw)
    if origin in ("same-site", "cross-site", "old-browser"):
        assert reply.status_code == 403 and "cross-origin request refused" in reply.text
    else:
        assert reply.status_code == 401 and "not the web UI's session cookie" in reply.text
    assert snapshot(api, run) == before_log
    assert api.request("GET", "/apis/v1/nodes", params={"parent": folder}).json() == before_nodes


@pytest.mark.parametrize("origin", ["same-origin", "same-site", "cross-site", "no-headers"])
def test_api_keys_write_only_outside_browsers_cross_origin(em_server, victim, origin):
    """A key in the URL (0.6.0b0 client) still works, unless a browser says the request comes
    from another origin."""
    api, run, _ = victim
    base = em_server.base_url
    reply = requests.post(f"{base}/apis/v1/objects", params={"path": f"{run}/k.txt", "apikey": api.key},
                          files={"content": ("k.txt", origin.encode())},
                          headers=browser_headers(base, origin), timeout=30)
    if origin in ("same-site", "cross-site"):
        assert reply.status_code == 403 and "cross-origin" in reply.text
    else:
        assert reply.status_code == 200, reply.text
        assert api.get(f"{run}/k.txt").content == origin.encode()


@pytest.fixture(scope="module")
def probe_server(tmp_path_factory):
    """The real app, served by uvicorn in a thread, plus one UI JSON API write route
    (``POST /api/ui/v1/_probe``, which the app does not have yet): what any future UI write
    route gets from ``current_user``. Yields (base URL, user name, key)."""
    from fastapi import APIRouter, Depends
    from t9k_em_server import users
    from t9k_em_server.app import create_app
    from t9k_em_server.config import ServerConfig
    from t9k_em_server.routers.auth import current_user

    app = create_app(ServerConfig(data_dir=tmp_path_factory.mktemp("probe")))
    probe = APIRouter()

    @probe.post("/api/ui/v1/_probe")
    def _probe(user=Depends(current_user)) -> dict:
        return {"user": user.name}

    app.include_router(probe)
    key = users.add_user(app.state.stores.meta, "carol")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield base, "carol", key
    server.should_exit = True
    thread.join(10)


def test_ui_api_writes_need_the_csrf_header(probe_server):
    """On the UI JSON API (the only place the cookie authenticates) a write needs X-EM-CSRF =
    the page's token, and still no cross-origin request gets through; API keys need no token."""
    base, user, key = probe_server
    browser = signed_in(base, key)
    token = page_token(browser, base, user)
    url = f"{base}/api/ui/v1/_probe"
    for headers in ({}, {"X-EM-CSRF": "0" * 64}, {"X-EM-CSRF": "é"}, {"X-EM-CSRF": token.upper()}):
        reply = browser.post(url, headers=headers, timeout=30)
        assert reply.status_code == 403 and "X-EM-CSRF" in reply.text
    assert browser.post(url, headers={"X-EM-CSRF": token}, timeout=30).json() == {"user": user}
    reply = browser.post(url, headers={"X-EM-CSRF": token, **browser_headers(base, "same-site")}, timeout=30)
    assert reply.status_code == 403 and "cross-origin" in reply.text
    assert requests.post(url, headers={"Authorization": f"Bearer {key}"}, timeout=30).json() == {"user": user}


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}")
def test_page_scripts_write_with_the_token(probe_server):
    """In Chromium: ``common.js``'s ``sendJSON`` carries the page's token; a plain ``fetch`` with
    the same cookie is refused."""
    sync_api = pytest.importorskip("playwright.sync_api")
    base, user, key = probe_server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        try:
            page = browser.new_context(base_url=base).new_page()
            page.goto("/ui/signin")
            page.fill("#apikey", key)
            page.click("#signin")
            page.wait_for_url(re.compile(r".*/ui/folders/.*"))
            sent = page.evaluate("""async () => {
                const common = await import("/ui/static/js/common.js");
                return common.sendJSON("POST", "/_probe", {});
            }""")
            assert sent == {"user": user}
            plain = page.evaluate("() => fetch('/api/ui/v1/_probe', {method: 'POST'}).then(r => r.status)")
            assert plain == 403
        finally:
            browser.close()


def test_login_csrf_is_refused(em_server, em_add_user):
    """A foreign form cannot sign the victim in as the attacker: the form's token must match the
    cookie set with the form, and another origin is refused first."""
    base = em_server.base_url
    _, attacker_key = em_add_user()
    victim = requests.Session()
    reply = victim.post(f"{base}/ui/signin", data={"apikey": attacker_key, "next": ""},
                        allow_redirects=False, timeout=30)
    assert reply.status_code == 403 and "expired" in reply.text and "em_session" not in victim.cookies
    reply = victim.post(f"{base}/ui/signin", data={"apikey": attacker_key, "csrf": "forged"},
                        headers={"Origin": "http://evil.example"}, allow_redirects=False, timeout=30)
    assert reply.status_code == 403 and "cross-origin" in reply.text
    assert "em_session" not in victim.cookies


def test_sign_out_needs_the_page_token_and_a_post(em_server, em_add_user):
    base = em_server.base_url
    name, key = em_add_user()
    browser = signed_in(base, key)
    assert browser.get(f"{base}/ui/signout", allow_redirects=False, timeout=30).status_code in (404, 405)
    reply = browser.post(f"{base}/ui/signout", data={}, allow_redirects=False, timeout=30)
    assert reply.status_code == 403 and "CSRF token" in reply.text
    assert browser.get(f"{base}/api/ui/v1/folders", timeout=30).status_code == 200  # still signed in
    token = page_token(browser, base, name)
    reply = browser.post(f"{base}/ui/signout", data={"csrf": token}, headers={"Origin": base},
                         allow_redirects=False, timeout=30)
    assert reply.status_code == 303
    assert browser.get(f"{base}/api/ui/v1/folders", timeout=30).status_code == 401


def test_keys_stay_out_of_urls_and_logs(em_server, em_add_user):
    base = em_server.base_url
    name, key = em_add_user()
    http = requests.Session()
    reply = http.get(f"{base}/ui/folders/{name}?apikey={key}&x=1", allow_redirects=False, timeout=30)
    assert reply.status_code == 303 and key not in reply.headers["location"]
    assert reply.headers["location"] == f"/ui/signin?next=%2Fui%2Ffolders%2F{name}%3Fx%3D1"
    form = http.get(f"{base}/ui/signin", params={"next": f"/ui/folders/{name}?apikey={key}"}, timeout=30)
    assert key not in form.text and f'value="/ui/folders/{name}"' in form.text
    # only the literal parameter name is a key; a percent-encoded spelling is nothing
    reply = raw_get(http, f"{base}/apis/v1/nodes?parent=/{name}&api%6Bey={key}")
    assert reply.status_code == 401
    reply = http.get(f"{base}/apis/v1/nodes?parent=/{name}&apikey={key}&apikey={key}", timeout=30)
    assert reply.status_code == 400 and "more than once" in reply.text
    http.get(f"{base}/ui/signin?next=%252Fui%253Fapikey%253D{key}", timeout=30)
    assert http.get(f"{base}/apis/v1/nodes?parent=/{name}&apikey={key}", timeout=30).status_code == 200
    log = em_server.process.log_text()
    assert f"api%6Bey=***" not in log and "apikey=***" in log
    assert key not in log and key[:8] not in log


def test_security_headers(em_server, victim):
    api, _, browser = victim
    base = em_server.base_url
    for reply in (requests.get(f"{base}/ui/signin", timeout=30), browser.get(f"{base}/ui/folders/{api.user}", timeout=30),
                  api.request("GET", "/apis/v1/nodes", params={"parent": f"/{api.user}"})):
        csp = reply.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self' 'nonce-" in csp
        assert "unsafe-eval" not in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
        assert reply.headers["X-Frame-Options"] == "DENY"
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert reply.headers["Referrer-Policy"] == "same-origin"
    page = browser.get(f"{base}/ui/folders/{api.user}", timeout=30)
    nonce = re.search(r"'nonce-([^']+)'", page.headers["Content-Security-Policy"]).group(1)
    assert f'<script type="importmap" nonce="{nonce}">' in page.text


def test_sessions_per_user_are_capped(em_server, em_add_user):
    base = em_server.base_url
    _, key = em_add_user()
    browsers = [signed_in(base, key) for _ in range(12)]
    alive = [b.get(f"{base}/api/ui/v1/folders", timeout=30).status_code == 200 for b in browsers]
    assert alive == [False, False] + [True] * 10


def test_failed_sign_ins_are_rate_limited(tmp_path):
    """On a server of its own: the limit is per client address, and this test spends it."""
    server = ServerProcess(tmp_path)
    _, key = server.add_user("alice")
    server.start()
    try:
        base = server.base_url
        http = requests.Session()
        statuses = []
        for _ in range(11):
            form = http.get(f"{base}/ui/signin", timeout=30)
            token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
            reply = http.post(f"{base}/ui/signin", data={"apikey": str(uuid.uuid4()), "csrf": token},
                              allow_redirects=False, timeout=30)
            statuses.append(reply.status_code)
        assert statuses == [401] * 10 + [429]
        assert int(reply.headers["Retry-After"]) > 0 and "Too many failed sign-ins" in reply.text
        # the right key is refused too while the address is locked (no oracle), API keys are not
        form = http.get(f"{base}/ui/signin", timeout=30)
        token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        assert http.post(f"{base}/ui/signin", data={"apikey": key, "csrf": token},
                         allow_redirects=False, timeout=30).status_code == 429
        assert requests.get(f"{base}/oauth2/userinfo", params={"apikey": key}, timeout=30).status_code == 200
    finally:
        server.stop()
