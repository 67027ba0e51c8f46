"""A real `mlopsctl serve` process on 127.0.0.1, spoken to over HTTP."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import WINE_RED, run_cli, wine_rows

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


def test_promote_and_rollback_under_steady_traffic(wine_store_copy: Path, start_server: Any, tmp_path: Path) -> None:
    """Zero failed requests while prod moves v1 → v2 → v1, and the served version follows."""
    server = start_server(
        ["--store", str(wine_store_copy), "serve", "--model", "wine@prod", "--reload-interval", "0.25"]
    )
    row = wine_rows(1)[0]
    seen: list[tuple[float, float, int]] = []  # (request start, end, version served)
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            while not stop.is_set():
                try:
                    start = time.monotonic()
                    r = c.post("/predict", json={"features": row})
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text}")
                    else:
                        seen.append((start, time.monotonic(), r.json()["model_version"]))
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        run_cli(
            "--store",
            str(wine_store_copy),
            "promote",
            "wine",
            "2",
            "--alias",
            "prod",
            "--force",
            "--reason",
            "test",
            cwd=tmp_path,
        )
        promoted_at = time.monotonic()
        _wait_for_version(seen, 2, promoted_at)
        first_v2 = min(end for _, end, v in seen if v == 2)
        time.sleep(0.5)
        rollback_called = time.monotonic()
        run_cli("--store", str(wine_store_copy), "rollback", "wine", "--alias", "prod", cwd=tmp_path)
        _wait_for_version(seen, 1, time.monotonic())
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    versions = [v for _, _, v in seen]
    assert versions[0] == 1 and versions[-1] == 1 and 2 in versions
    assert first_v2 - promoted_at < 5  # the alias moved and the replica followed within seconds
    # no going back: a request that started after some request got v2 gets v2 (until the rollback)
    between = {v for start, end, v in seen if start > first_v2 and end < rollback_called}
    assert between == {2}
    counts = Counter(versions)
    metrics = httpx.get(server.url + "/metrics").text
    assert (
        f'mlops_requests_total{{endpoint="predict",model="wine",status="200",variant="prod",version="2"}} {counts[2]}.0'
        in metrics
    )


def _wait_for_version(seen: list[tuple[float, float, int]], version: int, since: float, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(end > since and v == version for _, end, v in seen):
            return
        time.sleep(0.05)
    raise AssertionError(f"v{version} was not served within {timeout}s")


def test_bad_input_and_predict_command_over_http(wine_store_copy: Path, start_server: Any, tmp_path: Path) -> None:
    server = start_server(["--store", str(wine_store_copy), "serve", "--model", "wine@prod"])
    with httpx.Client(base_url=server.url, timeout=10) as c:
        r = c.post(
            "/predict",
            content=b'{"features": {"alcohol": "high"}}',
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422
        assert {"field": "features.alcohol", "problem": "expected a number, got 'high'"} in r.json()["detail"]
        assert c.post("/predict", content=b"x" * 2_000_000).status_code == 413
        assert c.post("/predict", json={"features": wine_rows(1)[0]}).status_code == 200
        assert c.get("/health").status_code == 200
    rows = tmp_path / "rows.csv"
    rows.write_text("\n".join(WINE_RED.read_text().replace(";", ",").replace('"', "").splitlines()[:4]))
    out = run_cli("predict", "--url", server.url, "--input", str(rows), "--drop", "quality", "--json", cwd=tmp_path)
    assert json.loads(out.stdout)["model_version"] == 1 and len(json.loads(out.stdout)["predictions"]) == 3
    rows.write_text("alcohol,pH\nhigh,3\n")
    bad = run_cli("predict", "--url", server.url, "--input", str(rows), cwd=tmp_path, check=False)
    assert bad.returncode == 1 and "HTTP 422" in bad.stderr and "alcohol" in bad.stderr


def _requests_counted(text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mlops_requests_total{") and 'status="200"' in line
    )


def test_several_workers_answer_one_set_of_metrics(wine_store_copy: Path, start_server: Any) -> None:
    """With --workers 2 each worker answered /metrics with its own counts (scrapes read 112, 88, 88, 112 and
    Prometheus saw resets); now any worker answers with all of them, and the dashboard too."""
    server = start_server(["--store", str(wine_store_copy), "serve", "--model", "wine@prod", "--workers", "2"])
    with httpx.Client(base_url=server.url, timeout=10) as c:
        for _ in range(40):
            assert c.post("/predict", json={"features": wine_rows(1)[0]}).json()["model_version"] == 1
        scrapes = []
        for _ in range(6):  # new connections: the kernel spreads them over the workers
            with httpx.Client(base_url=server.url, timeout=10) as fresh:
                scrapes.append(_requests_counted(fresh.get("/metrics").text))
        assert scrapes == [40.0] * 6, scrapes
        metrics = c.get("/metrics").text
        assert 'mlops_model_reloads_total{model="wine",result="ok"} 0.0' in metrics  # declared before any reload
        assert "process_start_time_seconds" in metrics
        dashboard = c.get("/dashboard/data").json()
        assert sum(m["requests_total"] for m in dashboard["models"]) == 40  # over both workers


def test_serve_refuses_in_one_line_before_its_banner(wine_store_copy: Path, tmp_path: Path) -> None:
    """A busy port, an unreadable or missing store, a model or version that is not there: exit 1 with one
    line and no banner (it used to print the banner, then uvicorn's lines, then exit 3)."""
    import socket

    (tmp_path / "a-file").write_text("not a store")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        cases = {
            "busy port": (["--store", str(wine_store_copy), "serve", "-m", "wine@prod", "--port", port], "--port"),
            "no such model": (["--store", str(wine_store_copy), "serve", "-m", "nope", "--port", "0"], "nope"),
            "no such version": (["--store", str(wine_store_copy), "serve", "-m", "wine@9", "--port", "0"], "wine@9"),
            "a file": (["--store", str(tmp_path / "a-file"), "serve", "-m", "wine", "--port", "0"], "not a store"),
            "no store": (["--store", str(tmp_path / "none"), "serve", "-m", "wine", "--port", "0"], "no such folder"),
        }
        for case, (args, says) in cases.items():
            out = run_cli(*args, cwd=tmp_path, check=False)
            lines = out.stderr.strip().splitlines()
            assert out.returncode == 1 and len(lines) == 1, (case, out.returncode, out.stderr)
            assert lines[0].startswith("error: ") and says in lines[0] and "serving" not in out.stderr, (case, lines)


def test_the_server_logs_its_own_events_as_json_lines(wine_store_copy: Path, start_server: Any, tmp_path: Path) -> None:
    """Its events reach the log (they did not, at any level): the model loaded, a promotion picked up; with
    --log-format json every line is one JSON object, and --access-log adds one per request, with no body."""
    from mlopsctl import registry
    from mlopsctl.store import open_store

    server = start_server(
        ["--store", str(wine_store_copy), "serve", "-m", "wine@prod", "--reload-interval", "0.3",
         "--log-format", "json", "--access-log", "--log-level", "info"]
    )  # fmt: skip
    httpx.post(server.url + "/predict", json={"features": {**wine_rows(1)[0], "secret-looking": "x" * 40}})
    registry.promote(open_store(str(wine_store_copy)), "wine", 2, "prod", force=True, reason="log test")
    deadline = time.monotonic() + 15
    while "now serving v2" not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    server.stop()
    lines = [line for line in server.log.read_text().splitlines() if line.startswith("{")]
    events = [json.loads(line) for line in lines]  # every structured line parses
    messages = [e["message"] for e in events]
    assert any(m == "wine: serving v1 (onnx runtime) as prod" for m in messages), messages
    assert any(m == "wine: now serving v2 (was v1)" for m in messages), messages
    access = [e for e in events if e["logger"] == "uvicorn.access" and e["method"] == "POST"]
    assert access and access[0]["path"] == "/predict" and access[0]["status"] == 422
    assert "x" * 40 not in server.log.read_text()  # no body is logged


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not installed (Debian's prometheus)")
def test_a_real_prometheus_sees_one_reload(wine_store_copy: Path, start_server: Any, tmp_path: Path) -> None:
    """`increase(mlops_model_reloads_total[...])` stayed 0 after a real reload: the series was born at 1.
    Declared at 0 from the start, a real Prometheus scraping every second sees the reload as an increase of 1."""
    import subprocess

    from mlopsctl import registry
    from mlopsctl.store import open_store
    from tests.conftest import free_port

    server = start_server(["--store", str(wine_store_copy), "serve", "-m", "wine@prod", "--reload-interval", "0.3"])
    target = server.url.removeprefix("http://")
    (tmp_path / "prometheus.yml").write_text(
        f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mlops\n    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
    port = free_port()
    prom = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    api = f"http://127.0.0.1:{port}/api/v1/query"

    def query(expr: str) -> list[Any]:
        try:
            return list(httpx.get(api, params={"query": expr}, timeout=5).json()["data"]["result"])
        except (httpx.HTTPError, KeyError, ValueError):
            return []

    try:
        series = 'mlops_model_reloads_total{model="wine",result="ok"}'
        deadline = time.monotonic() + 30
        while not query(series) and time.monotonic() < deadline:  # scraped at 0 before the reload
            time.sleep(0.5)
        assert query(series) and float(query(series)[0]["value"][1]) == 0.0
        registry.promote(open_store(str(wine_store_copy)), "wine", 2, "prod", force=True, reason="reload test")
        deadline, seen = time.monotonic() + 30, 0.0
        while time.monotonic() < deadline:
            got = query(f"increase({series}[30s])")
            seen = float(got[0]["value"][1]) if got else 0.0
            if seen >= 0.9:
                break
            time.sleep(0.5)
        assert seen >= 0.9, seen  # extrapolated: about 1 (it was 0 before the series existed at 0)
    finally:
        prom.terminate()
        prom.wait(10)
