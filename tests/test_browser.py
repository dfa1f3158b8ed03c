"""A real browser on the Swagger UI: Debian's headless Chromium, driven by Playwright.

It opens /api/v1/ui on the live server (gunicorn), authorizes with a bearer token, runs
"Try it out" -> Execute on GET /api/v1/widgets and expects the 200 rendered; every request the
page makes must stay on 127.0.0.1. A screenshot goes to test-output/ (git-ignored).
Playwright never downloads a browser here: it launches /usr/bin/chromium, which the ``chromium``
fixture installs from Debian (as root) when it is missing: only a run that runs this test pays
for it.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import API, PASSWORD

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]


def _post(url: str, data: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(  # noqa: S310 (127.0.0.1 only)
        url, data=json.dumps(data).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 (127.0.0.1 only)
        return json.loads(resp.read())


def _installed() -> bool:
    return os.access(CHROMIUM, os.X_OK) or shutil.which("chromium") is not None


@pytest.fixture
def chromium():
    if not _installed() and os.geteuid() == 0:
        from widgetsvc.ops import apt

        apt.install(["chromium"])
    if not _installed():
        message = "no Chromium, and not root: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI runs as root: a missing browser is a broken bootstrap
        pytest.skip(message)
    pytest.importorskip("playwright.sync_api")
    return CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")


def test_swagger_ui_authorize_try_it_out_execute_in_chromium(chromium, live_server, users,
                                                             tmp_path):
    from playwright.sync_api import expect, sync_playwright

    users.create("browser-admin@example.com", PASSWORD, admin=True)
    token = _post(f"{live_server.url}{API}/auth/login",
                  {"email": "browser-admin@example.com", "password": PASSWORD})["access_token"]
    _post(f"{live_server.url}{API}/widgets",
          {"name": "Browser-Widget", "info_url": "https://www.example.com",
           "deadline": "2999-12-31"}, token)

    requests: list[str] = []
    sent_authorization: list[str | None] = []
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "chromium-profile"),  # a fresh profile every run
            executable_path=chromium, headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 2000},
        )
        try:
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.on("request", lambda request: requests.append(request.url))

            def on_request(request):
                if request.url.startswith(f"{live_server.url}{API}/widgets"):
                    sent_authorization.append(request.headers.get("authorization"))

            page.on("request", on_request)
            page.goto(f"{live_server.url}{API}/ui", wait_until="networkidle")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("widgetsvc")

            # Authorize: the bearer scheme's dialog.
            page.locator(".auth-wrapper button.authorize").click()
            dialog = page.locator(".dialog-ux .modal-ux")
            dialog.locator("input").first.fill(token)
            dialog.locator("button.authorize").click()
            dialog.locator("button.btn-done").click()

            # GET /api/v1/widgets: open it, Try it out, Execute.
            operation = page.locator(".opblock-get").filter(
                has=page.locator(".opblock-summary-path", has_text=f"{API}/widgets")).filter(
                has_not=page.locator(".opblock-summary-path", has_text="{name}")).first
            operation.locator(".opblock-summary-control").click()
            operation.locator("button.try-out__btn").click()
            operation.locator("button.execute").click()

            live = operation.locator(".live-responses-table .response")
            expect(live.locator(".response-col_status").first).to_have_text("200")
            expect(live.locator(".response-col_description")).to_contain_text("browser-widget")
            expect(live).to_contain_text("total-count")
            page.screenshot(path=str(OUTPUT / "swagger-ui-page.png"), full_page=True)
            operation.screenshot(path=str(OUTPUT / "swagger-ui-try-it-out.png"))
        finally:
            context.close()

    assert sent_authorization and sent_authorization[-1] == f"Bearer {token}"
    # Nothing beyond the service itself (no CDN, no validator badge, no telemetry).
    local = (f"{live_server.url}/", "data:", "blob:")
    outside = [url for url in requests if not url.startswith(local)]
    assert requests and not outside, outside
    assert f"{live_server.url}{API}/ui/assets/swagger-ui-bundle.js" in requests
    assert f"{live_server.url}{API}/openapi.json" in requests
