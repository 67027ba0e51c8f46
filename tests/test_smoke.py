"""`mlopsctl smoke URL`: against a real `mlopsctl serve` on 127.0.0.1 every check passes (one prediction per
served model, from its signature); against broken services it exits 1 with one `error:` line per failed check."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlopsctl.deploy.smoke import example_row
from tests.conftest import refusing_port, run_cli

CHECKS = ["health", "ready", "models", "bad request", "metrics"]


def smoke(url: str, *args: str, cwd: Path) -> tuple[int, list[dict[str, Any]], list[str]]:
    proc = run_cli("smoke", url, *args, "--json", cwd=cwd, check=False)
    report = json.loads(proc.stdout)
    assert report["ok"] is (proc.returncode == 0) and report["url"] == url
    return proc.returncode, report["checks"], proc.stderr.strip().splitlines()


def test_a_row_from_each_kind_of_signature() -> None:
    inputs = [
        {"name": "alcohol", "kind": "numeric", "dtype": "float", "min": 8.0, "max": 15.0},
        {"name": "rooms", "kind": "numeric", "dtype": "int64", "min": 1, "max": 8},
        {"name": "colour", "kind": "categorical", "dtype": "string", "categories": ["red", "white"]},
        {"name": "review", "kind": "text", "dtype": "string"},
        {"name": "open", "kind": "numeric", "dtype": "float", "min": None, "max": None},
    ]
    row = example_row(inputs)
    assert row == {"alcohol": 11.5, "rooms": 4, "colour": "red", "review": "a smoke test of the service", "open": 0.0}


@pytest.mark.shared_data
def test_passes_against_a_real_server_with_two_models(
    two_models_store: Path, start_server: Any, tmp_path: Path
) -> None:
    """Started without waiting: --wait holds until /ready; then a prediction for each model the server lists."""
    server = start_server(
        ["--store", str(two_models_store), "serve", "--model", "wine@prod", "--model", "wine-alcohol@prod"],
        wait=False,
    )
    code, checks, errors = smoke(server.url, "--wait", "60s", cwd=tmp_path)
    assert code == 0 and errors == [], errors
    names = [c["name"] for c in checks]
    assert names == ["health", "ready", "models", "predict wine", "predict wine-alcohol", "bad request", "metrics"]
    assert all(c["ok"] for c in checks)
    by = {c["name"]: c["detail"] for c in checks}
    assert "from v1" in by["predict wine"] and "from v1" in by["predict wine-alcohol"]
    assert by["bad request"].startswith("422 invalid_input: features.fixed acidity: expected a number")
    assert "wine v1" in by["models"]
    assert "requests of wine, wine-alcohol" in by["metrics"]
    # the text form: a line per check, nothing on stderr; --model picks one
    proc = run_cli("smoke", server.url, "--model", "wine-alcohol", cwd=tmp_path)
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["ok"] * 6 and proc.stderr == ""
    assert "predict wine-alcohol" in proc.stdout and "predict wine " not in proc.stdout


@pytest.mark.shared_data
def test_fails_against_a_server_whose_model_is_missing(
    wine_store_copy: Path, start_server: Any, tmp_path: Path
) -> None:
    """A real server following an alias nobody promoted: alive, never ready."""
    server = start_server(["--store", str(wine_store_copy), "serve", "--model", "wine@staging"], wait=False)
    code, checks, errors = smoke(server.url, "--wait", "2s", cwd=tmp_path)
    failed = {c["name"]: c["detail"] for c in checks if not c["ok"]}
    assert code == 1 and len(errors) == len(failed) >= 4
    assert [": ".join(e.split(": ")[:2]) for e in errors] == [f"error: smoke {n}" for n in failed]
    assert "GET /ready answered 503 after 2 s: not loaded: wine" in failed["ready"]
    assert failed["predict wine"].startswith("wine is not loaded")
    assert "degraded" in failed["health"] and "model wine: not_loaded" in failed["health"]


class _Broken(BaseHTTPRequestHandler):
    """Alive and ready, lists a model, but fails its predictions, accepts garbage and has no metrics."""

    def _send(self, status: int, body: Any, kind: str = "application/json") -> None:
        data = (json.dumps(body) if kind == "application/json" else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, {"status": "ok"})
        elif self.path == "/ready":
            self._send(200, {"ready": True})
        elif self.path == "/models":
            inputs = [{"name": "alcohol", "kind": "numeric", "dtype": "float", "min": 8, "max": 15}]
            self._send(200, {"models": [{"name": "wine", "version": 3, "inputs": inputs}]})
        else:
            self._send(200, "# nothing of mlopsctl here\nup 1\n", "text/plain")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = {"error": "internal"}
        self._send(500 if self.path.endswith("/predict") and self.server.calls == 0 else 200, body)  # type: ignore[attr-defined]
        self.server.calls += 1  # type: ignore[attr-defined]

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def broken() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    server.calls = 0  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fails_against_a_service_that_answers_wrongly(broken: str, tmp_path: Path) -> None:
    code, checks, errors = smoke(broken, cwd=tmp_path)
    failed = {c["name"]: c["detail"] for c in checks if not c["ok"]}
    assert code == 1 and sorted(failed) == ["bad request", "metrics", "predict wine"]
    assert failed["predict wine"] == "POST /models/wine/predict answered 500: {'error': 'internal'}"
    assert failed["bad request"].startswith("POST /predict with features of the wrong type answered 200")
    assert failed["metrics"] == "GET /metrics has no mlops_requests_total: is it an mlopsctl server?"
    assert errors == [f"error: smoke {name}: {detail}" for name, detail in failed.items()]


def test_fails_where_nothing_answers_and_refuses_bad_flags(tmp_path: Path) -> None:
    with refusing_port() as port:
        code, checks, errors = smoke(f"http://127.0.0.1:{port}", "--timeout", "2s", cwd=tmp_path)
    assert code == 1 and [c["name"] for c in checks] == CHECKS and not any(c["ok"] for c in checks)
    assert len(errors) == 5 and all("ConnectError" in e for e in errors)
    bad = run_cli("smoke", "127.0.0.1:8000", cwd=tmp_path, check=False)
    assert bad.returncode == 1 and bad.stderr.strip() == (
        "error: URL '127.0.0.1:8000': expected http://HOST:PORT or https://…"
    )
    bad = run_cli("smoke", "http://127.0.0.1:9", "--wait", "soon", cwd=tmp_path, check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("error: --wait soon:")
