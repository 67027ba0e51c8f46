"""`/docs` works offline: Swagger UI is served by the server itself, checked in headless Chromium with every
host but 127.0.0.1 unreachable (FastAPI's own page loads Swagger UI from a CDN and stays blank offline)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_swagger_ui_renders_with_the_outside_network_refused(wine_store_copy: Path, start_server: Any) -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the [dev] extra")
    server = start_server(["--store", str(wine_store_copy), "serve", "-m", "wine@prod"])
    page_html = httpx.get(server.url + "/docs", timeout=10).text
    assert "cdn" not in page_html.lower() and "docs/assets/swagger-ui-bundle.js" in page_html
    requested: list[str] = []
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no network but this machine
            ],
        )
        page = browser.new_page()
        page.on("request", lambda r: requested.append(r.url))
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/docs")
        page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
        assert "mlopsctl prediction service" in page.inner_text(".swagger-ui .info .title")
        page.wait_for_selector("#operations-predict-predict_predict_post", timeout=10_000)  # the routes are listed
        browser.close()
    hosts = {urlparse(u).hostname for u in requested if u.startswith("http")}
    assert hosts == {"127.0.0.1"}, hosts
    assert errors == []
    assert httpx.get(server.url + "/docs/assets/nope.js", timeout=5).status_code == 404
