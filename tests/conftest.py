"""Shared fixtures: the real datasets, a wine project trained once per session, helpers to run things."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.s3server import s3_endpoint  # noqa: F401 (a fixture: one moto server per test module)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WINE_RED = SHARED / "wine-quality" / "winequality-red.csv"
WINE_WHITE = SHARED / "wine-quality" / "winequality-white.csv"
HOUSING = SHARED / "california-housing" / "housing.csv"
SENTIMENT = SHARED / "sentiment"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"the shared datasets are not at {SHARED} (they sit beside the project in CI; a plain clone has none)",
)


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    for item in items:
        if item.get_closest_marker("shared_data"):
            item.add_marker(needs_shared)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # outermost: pytest-timeout's clock starts once the lock is held
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Under pytest-xdist (`make test` runs two workers), a test marked `alone` runs with no other test beside it.

    Those tests time something (a bound in seconds, requests in a window): another worker's training or servers
    on the same cores must not be in the measurement. Every test holds a shared lock on a file the workers share
    (setup, call and teardown); an `alone` test holds it exclusively. The gate lock keeps it fair: a waiting
    `alone` test holds the gate, so no worker starts a new test until it has run.
    """
    workerinput = getattr(item.config, "workerinput", None)
    if workerinput is None:  # one process: one test at a time anyway
        yield
        return
    import fcntl

    basetemp = item.config.option.basetemp  # xdist gives each worker a folder in the run's base folder
    shared = Path(basetemp).parent if basetemp else Path(tempfile.gettempdir())
    name = f"alone-{workerinput['testrunuid']}"
    with (shared / f"{name}.gate").open("a") as gate, (shared / f"{name}.lock").open("a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX if item.get_closest_marker("alone") else fcntl.LOCK_SH)
        fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


WINE_TOML = """
[project]
name = "{name}"
[data]
path = "{data}"
target = "quality"
[training]
task = "classification"
model = "{model}"
params = {params}
cv_folds = {cv}
[registry]
gate_tolerance = 0.01
require_approval = []
[serving]
reload_interval_seconds = 0.5
[store]
uri = "{store}"
"""


def write_project(
    folder: Path,
    *,
    name: str = "wine",
    data: Path = WINE_RED,
    model: str = "random_forest",
    params: str = "{ n_estimators = 100 }",
    cv: int = 2,
    store: Path | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mlops.toml").write_text(
        WINE_TOML.format(name=name, data=data, model=model, params=params, cv=cv, store=store or folder / ".mlops")
    )
    return folder


def train_and_publish(folder: Path) -> tuple[Any, Any, dict[str, Any], int]:
    from mlopsctl.config import load_config
    from mlopsctl.registry.publishing import publish_run
    from mlopsctl.store import open_store
    from mlopsctl.training.train import train_project

    cfg = load_config(folder)
    store = open_store(cfg.store_uri())
    run = train_project(cfg, store)
    version = publish_run(store, run, name=cfg.model_name).version
    return cfg, store, run, version


@pytest.fixture(scope="session")
def wine_registry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store holding wine v1 (random forest, 100 trees) and v2 (logistic regression), prod → v1.

    Shared by the session: tests must not move its aliases (copy it with `wine_store_copy`).
    """
    if not WINE_RED.is_file():
        pytest.skip(f"needs {WINE_RED}")
    from mlopsctl import registry

    root = tmp_path_factory.mktemp("wine")
    store_dir = root / "store"
    _, store, run1, v1 = train_and_publish(write_project(root / "rf", store=store_dir))
    _, _, run2, v2 = train_and_publish(
        write_project(root / "lr", model="logistic_regression", params="{}", store=store_dir)
    )
    registry.promote(store, "wine", v1, "prod", reason="first")
    return {
        "store_dir": store_dir,
        "root": root,
        "v1": v1,
        "v2": v2,
        "run1": run1,
        "run2": run2,
        "project": root / "rf",
    }


@pytest.fixture
def wine_store_copy(wine_registry: dict[str, Any], tmp_path: Path) -> Path:
    """A private copy of the session's wine store, free to change."""
    import shutil

    dest = tmp_path / "store"
    shutil.copytree(wine_registry["store_dir"], dest)
    return dest


@pytest.fixture
def two_models_store(wine_store_copy: Path, tmp_path: Path) -> Path:
    """The wine store plus `wine-alcohol`, a regression (Ridge) of alcohol, and `wine-sk`, v1's bundle
    published without its ONNX export (as when a pipeline does not convert)."""
    from mlopsctl import registry
    from mlopsctl.registry.publishing import bundle_files
    from mlopsctl.training.train import get_run

    folder = write_project(tmp_path / "reg", name="wine-alcohol", model="ridge", params="{}", store=wine_store_copy)
    toml = (folder / "mlops.toml").read_text()
    toml = toml.replace('target = "quality"', 'target = "alcohol"').replace('"classification"', '"regression"')
    (folder / "mlops.toml").write_text(toml)
    assert WINE_RED.is_file()
    _, store, _, version = train_and_publish(folder)
    registry.promote(store, "wine-alcohol", version, "prod")
    run = get_run(store, registry.manifest(store, "wine", 1)["run_id"])
    files, summary = bundle_files(store, run)
    del files["model.onnx"]
    registry.publish(store, "wine-sk", files, {**summary, "runtime": "sklearn", "run_id": "no-onnx"})
    return wine_store_copy


def wine_rows(n: int = 5, path: Path = WINE_RED) -> list[dict[str, float]]:
    import pandas as pd

    df = pd.read_csv(path, sep=";").drop(columns=["quality"]).head(n)
    return [{k: float(v) for k, v in r.items()} for r in df.to_dict(orient="records")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections for as long as the block runs: bound, never listening,
    so no other process (another xdist worker's server) can take it meanwhile, as it could a free_port()."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


class ServerProcess:
    """A real `mlopsctl serve` process on 127.0.0.1."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.args, self.cwd, self.env = args, cwd, env
        self._launch()

    def _launch(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.cwd / f"server-{self.port}.log"
        cmd = [
            sys.executable,
            "-m",
            "mlopsctl.cli.main",
            *self.args,
            "--port",
            str(self.port),
            *([] if "--log-level" in self.args else ["--log-level", "warning"]),
        ]
        with self.log.open("w") as out:  # the child keeps its own descriptor of the log
            self.proc = subprocess.Popen(
                cmd, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(self.env or {})}
            )

    def wait_ready(self, timeout: float = 30) -> float:
        start = time.monotonic()
        relaunched = False
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                # the free port was taken before the server bound it (another process asked for a free port
                # in between, e.g. a server another xdist worker starts): once more on a new port
                if not relaunched and "address already in use" in self.log.read_text().lower():
                    relaunched = True
                    self._launch()
                    continue
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log.read_text()}")
            try:
                if httpx.get(self.url + "/ready", timeout=1).status_code == 200:
                    return time.monotonic() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server not ready in {timeout}s: {self.log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    servers: list[ServerProcess] = []

    def start(
        args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, *, wait: bool = True
    ) -> ServerProcess:
        """wait=False: started, not yet ready (servers started together start in parallel); call wait_ready()."""
        s = ServerProcess(args, cwd or tmp_path, env)
        servers.append(s)
        if wait:
            s.wait_ready()
        return s

    yield start
    for s in servers:
        s.stop()


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`mlopsctl ARGS` as a user runs it, in a subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "mlopsctl.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"mlopsctl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("content-length", 0))
                outer.bodies.append(json.loads(self.rfile.read(n)))
                self.send_response(outer.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
