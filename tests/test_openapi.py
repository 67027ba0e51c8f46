"""The OpenAPI document is the truth: schemathesis, every operation and every check, against a real server
serving a classifier and a regressor with the management key set; no 5xx, no conformance failure."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]
CONFIG = Path(__file__).with_name("schemathesis.toml")


def _schemathesis() -> str:
    found = Path(sys.executable).with_name("schemathesis")
    if found.is_file():
        return str(found)
    which = shutil.which("schemathesis")
    if which is None:
        pytest.skip("schemathesis is not installed: the [dev] extra has it")
    return which


@pytest.mark.timeout(600)  # 275 s alone on a loaded 2-core machine: over 20 operations (3 models), 40 examples each
def test_schemathesis_finds_no_failure(two_models_store: Path, start_server: Any, tmp_path: Path) -> None:
    server = start_server(
        ["--store", str(two_models_store), "serve", "-m", "wine@prod", "-m", "wine-alcohol@prod", "-m", "wine-sk"],
        env={"MLOPS_API_KEY": "test-key"},
    )
    out = subprocess.run(
        [
            _schemathesis(),
            "--config-file",
            str(CONFIG),
            "--no-color",
            "run",
            server.url + "/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "40",
            "--seed",
            "20261207",
            "-H",
            "Authorization: Bearer test-key",
            "--report-dir",
            str(tmp_path / "report"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    summary = out.stdout[-3000:]
    assert out.returncode == 0, summary
    assert " passed" in summary and "failure" not in summary.split("SUMMARY")[-1].lower(), summary
    assert httpx.get(server.url + "/health", timeout=5).status_code == 200  # still serving


def test_an_undeclared_method_answers_405_with_allow(wine_store_copy: Path) -> None:
    from fastapi.testclient import TestClient

    from mlopsctl.serving.app import ServeSettings, create_app

    with TestClient(create_app(ServeSettings(store_uri=str(wine_store_copy), models=[("wine", "prod")]))) as c:
        for method, path in (("TRACE", "/health"), ("DELETE", "/models"), ("GET", "/predict"), ("PUT", "/feedback")):
            r = c.request(method, path)
            assert r.status_code == 405 and r.headers.get("allow"), (method, path, r.headers)
            assert r.json()["error"] == "http_error"
        doc = c.get("/openapi.json").json()
        predict = doc["paths"]["/predict"]["post"]
        assert {"200", "400", "413", "415", "422", "503"} <= set(predict["responses"])
        names = doc["paths"]["/models/{name}"]["get"]["parameters"][0]["schema"]
        assert names == {"type": "string", "enum": ["wine"]}
