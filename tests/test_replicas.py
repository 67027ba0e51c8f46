"""Many replicas on one S3 store, as behind a load balancer; the prod alias mirrored to SSM.

Everything is real: three `mlopsctl serve` processes on 127.0.0.1 share a bucket on a moto
server (S3 and SSM over HTTP on loopback); promotions and rollbacks are the CLI's; requests
go over HTTP. The replicas poll the alias every 2 s (the default).
"""

from __future__ import annotations

import itertools
import json
import shutil
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlopsctl.monitoring.captured import CapturedIndex, capture_key, encode_lines, load_captures, load_feedback
from mlopsctl.store import open_store
from mlopsctl.store.local import LocalStore
from tests.conftest import WINE_RED, WINE_TOML, run_cli, wine_rows
from tests.s3server import admin_client, new_bucket, s3_env

SSM_PATTERN = "/mlopsctl/{model}/{alias}"
LAG = 5  # seconds a replica may take to serve the version an alias moved to
WINDOW = LAG + 0.5  # traffic watched after a move: longer than LAG, so a replica later than LAG is seen


def _copy_store(src: Path, dest_uri: str) -> None:
    """Put every object of a local store into another store, as `aws s3 sync` would."""
    local, dest = LocalStore(str(src)), open_store(dest_uri)
    for key in local.list(""):
        dest.put(key, local.get(key))


@pytest.fixture
def s3_wine(
    wine_registry: dict[str, Any], s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, Any]:
    """The session's wine store (prod → v1 forest; v2 logistic regression) in a fresh bucket, and a
    project whose [registry] mirrors prod to SSM. S3 and SSM both point at the moto server."""
    s3_env(monkeypatch, tmp_path, MLOPS_S3_ENDPOINT_URL=s3_endpoint, MLOPS_SSM_ENDPOINT_URL=s3_endpoint)
    uri = f"s3://{new_bucket(s3_endpoint)}/team"
    _copy_store(wine_registry["store_dir"], uri)
    project = tmp_path / "project"
    project.mkdir()
    toml = WINE_TOML.format(name="wine", data=WINE_RED, model="random_forest", params="{}", cv=2, store=uri)
    toml = toml.replace("require_approval = []", f'require_approval = []\nssm_parameter = "{SSM_PATTERN}"')
    (project / "mlops.toml").write_text(toml)
    return {**wine_registry, "uri": uri, "project": project, "endpoint": s3_endpoint}


def _ssm_value(endpoint: str, name: str) -> dict[str, Any]:
    value = admin_client(endpoint, "ssm").get_parameter(Name=name)["Parameter"]["Value"]
    return dict(json.loads(value))


def _moved_at(event: dict[str, Any]) -> float:
    """When the alias moved: the history event's time, taken just before its compare-and-swap."""
    from datetime import datetime

    return datetime.fromisoformat(event["at"]).timestamp()


class Traffic:
    """Steady requests across replicas, each remembered: (start, replica, status, version, request id)."""

    def __init__(self, urls: list[str], threads: int = 6, pause: float = 0.03) -> None:
        self.urls, self.pause = urls, pause
        self.seen: list[tuple[float, int, int, int | None, str]] = []
        self._stop = threading.Event()
        self._ids = itertools.count()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]
        self.rows = wine_rows(20)

    def _run(self, worker: int) -> None:
        with httpx.Client(timeout=10) as client:
            turn = worker
            while not self._stop.is_set():
                replica = turn % len(self.urls)
                turn += 1
                rid = f"r{replica}-{next(self._ids)}"
                row = self.rows[turn % len(self.rows)]
                start = time.time()
                try:
                    r = client.post(
                        self.urls[replica] + "/predict", json={"features": row}, headers={"x-request-id": rid}
                    )
                    status, version = r.status_code, r.json().get("model_version") if r.status_code == 200 else None
                except httpx.HTTPError:
                    status, version = -1, None
                self.seen.append((start, replica, status, version, rid))
                time.sleep(self.pause)

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)

    def switch_lag(self, since: float, until: float, version: int) -> dict[int, float]:
        """Per replica: how long after ``since`` (and before ``until``) a request could still get
        another version than ``version`` (0 when none did); each replica must have answered with it."""
        lag: dict[int, float] = {}
        for replica in range(len(self.urls)):
            after = [(t, v) for t, r, s, v, _ in self.seen if r == replica and since <= t < until and s == 200]
            assert any(v == version for _, v in after), (replica, version, Counter(v for _, v in after), self.seen[-3:])
            stale = [t for t, v in after if v != version]
            lag[replica] = max(stale, default=since) - since
        return lag


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.alone  # each replica must follow a promotion within 5 s
def test_three_replicas_follow_promotion_and_rollback_with_no_failed_request(
    s3_wine: dict[str, Any], start_server: Any, tmp_path: Path
) -> None:
    uri, project, endpoint = s3_wine["uri"], s3_wine["project"], s3_wine["endpoint"]
    v1, v2 = s3_wine["v1"], s3_wine["v2"]
    param = SSM_PATTERN.format(model="wine", alias="prod")
    run_cli("models", "mirror", "wine", cwd=project)
    assert _ssm_value(endpoint, param)["version"] == v1

    serve_dir = tmp_path / "replicas"  # no project there: the store and the model come from flags
    serve_dir.mkdir()
    replicas = [
        start_server(["--store", uri, "serve", "--model", "wine@prod"], cwd=serve_dir, wait=False) for _ in range(3)
    ]
    for s in replicas:  # started together: they import and load at the same time
        s.wait_ready()
    urls = [s.url for s in replicas]

    with Traffic(urls) as traffic:
        time.sleep(2)
        out = run_cli("promote", "wine", str(v2), "--force", "--reason", "replica test", "--json", cwd=project)
        promoted = _moved_at(json.loads(out.stdout))
        assert json.loads(out.stdout)["ssm"]["version"] == v2
        mirrored = _ssm_value(endpoint, param)
        assert (mirrored["model"], mirrored["alias"], mirrored["version"], mirrored["store"]) == (
            "wine",
            "prod",
            v2,
            uri,
        )
        time.sleep(WINDOW)
        out = run_cli("rollback", "wine", "--reason", "replica test", "--json", cwd=project)
        rolled_back = _moved_at(json.loads(out.stdout))
        assert json.loads(out.stdout)["ssm"]["version"] == v1 and _ssm_value(endpoint, param)["version"] == v1
        time.sleep(WINDOW)

    seen = traffic.seen
    statuses = Counter(s for _, _, s, _, _ in seen)
    assert statuses == {200: len(seen)}, statuses  # not one request failed
    assert len(seen) > 300 and {r for _, r, _, _, _ in seen} == {0, 1, 2}
    to_v2 = traffic.switch_lag(promoted, rolled_back, v2)
    back = traffic.switch_lag(rolled_back, float("inf"), v1)
    print(f"requests {len(seen)}; seconds to serve v{v2}: {to_v2}; back to v{v1}: {back}")
    assert max(to_v2.values()) < LAG and max(back.values()) < LAG, (to_v2, back)

    # feedback for predictions answered by replica 0, sent to replicas 1 and 2 (as a load balancer would)
    ids = [rid for _, r, _, _, rid in seen if r == 0][:40]
    deadline = time.time() + 15  # replica 0 flushes its capture every 5 s
    accepted = 0
    while time.time() < deadline and accepted < len(ids):
        pending = ids[accepted:]
        half = len(pending) // 2 or 1
        for url, chunk in ((urls[1], pending[:half]), (urls[2], pending[half:])):
            if not chunk:
                continue
            r = httpx.post(url + "/feedback", json=[{"request_id": rid, "label": 5} for rid in chunk], timeout=10)
            assert r.status_code in (200, 404), r.text
            accepted += r.json().get("accepted", 0)
        if accepted < len(ids):
            time.sleep(1)
    assert accepted == len(ids)

    for s in replicas:
        s.stop()  # a graceful stop flushes the capture buffer
    store = open_store(uri)
    records = load_captures(store, "wine")
    by_id = {r["request_id"]: r for r in records}
    answered = {rid: v for _, _, _, v, rid in seen}
    assert set(answered) == set(by_id)  # every prediction of all three replicas, and nothing else
    assert all(by_id[rid]["version"] == v for rid, v in answered.items())
    writers: dict[str, set[int]] = defaultdict(set)
    for key in store.list("capture/wine/"):
        for line in store.get(key).splitlines():
            writers[key.rsplit("/", 1)[1].rsplit("-", 1)[0]].add(int(json.loads(line)["request_id"][1]))
    assert sorted(writers.values(), key=min) == [{0}, {1}, {2}]  # one writer per replica, each its own requests
    labels = load_feedback(store)
    assert sorted(r["request_id"] for r in labels) == sorted(ids)
    assert {r["version"] for r in labels} <= {v1, v2}


@pytest.mark.shared_data
def test_ssm_mirror_failure_says_the_alias_moved_and_mirror_repairs_it(
    s3_wine: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, endpoint, v2 = s3_wine["project"], s3_wine["endpoint"], s3_wine["v2"]
    param = SSM_PATTERN.format(model="wine", alias="prod")
    down = {"MLOPS_SSM_ENDPOINT_URL": "http://127.0.0.1:9"}  # nothing listens on the discard port
    out = run_cli("promote", "wine", str(v2), "--force", cwd=project, env=down, check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    line = out.stderr.strip()
    assert line.startswith("error: wine@prod moved in the store, but its SSM mirror was not written: ")
    assert line.endswith("run `mlopsctl models mirror wine --alias prod` to write it again")
    shown = run_cli("models", "show", "wine@prod", "--json", cwd=project)
    assert json.loads(shown.stdout)["version"] == v2  # the store is the truth: the promotion stands

    fixed = run_cli("models", "mirror", "wine", cwd=project)
    assert f"{param}: v{v2}" in fixed.stdout and _ssm_value(endpoint, param)["version"] == v2
    again = run_cli("promote", "wine", str(v2), "--force", "--json", cwd=project)  # idempotent
    assert json.loads(again.stdout)["unchanged"] and json.loads(again.stdout)["ssm"]["version"] == v2

    staging = run_cli("promote", "wine", "1", "--alias", "staging", "--json", cwd=project)
    assert json.loads(staging.stdout)["ssm"] is None  # only [registry] ssm_aliases are mirrored
    bad = (project / "mlops.toml").read_text().replace(SSM_PATTERN, "mlopsctl/{model}/{stage}")
    (project / "mlops.toml").write_text(bad)
    out = run_cli("models", "mirror", "wine", cwd=project, check=False)
    assert out.returncode == 1 and "only {model} and {alias} can be filled in" in out.stderr


def test_models_mirror_without_config_names_the_setting(tmp_path: Path) -> None:
    out = run_cli("--store", str(tmp_path / "s"), "models", "mirror", "wine", cwd=tmp_path, check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        'error: no SSM mirror is configured: set [registry] ssm_parameter, e.g. "/mlopsctl/{model}/{alias}"'
    )


def _capture_object(store: Any, t: float, writer: str, seq: int, records: list[dict[str, Any]]) -> None:
    store.put(capture_key("wine", t, writer, seq), encode_lines(records))


def test_captured_index_reads_each_object_once_and_only_recent_ones(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "store"))
    now = time.time()
    rec = {"model": "wine", "version": 3, "status": 200, "variant": "prod"}
    _capture_object(
        store,
        now,
        "a",
        1,
        [
            {**rec, "request_id": "batch", "row": 0, "prediction": 5},
            {**rec, "request_id": "batch", "row": 1, "prediction": 6},
            {**rec, "request_id": "batch", "row": 0, "prediction": 7, "variant": "shadow-v4", "version": 4},
            {**rec, "request_id": "failed", "row": 0, "prediction": None, "status": 500},
        ],
    )
    _capture_object(store, now - 8 * 3600, "a", 0, [{**rec, "request_id": "old", "row": 0, "prediction": 5}])
    index = CapturedIndex(store, ["wine"], lookback=6 * 3600, min_refresh=0)
    assert index.get("batch") == ("wine", 3, [5, 6])  # the caller's answer, not the shadow's
    assert index.get("failed") is None and index.get("old") is None  # an error has no label; too old
    assert index.objects_read == 1
    _capture_object(store, now, "b", 1, [{**rec, "request_id": "later", "row": 0, "prediction": 4}])
    assert index.get("later") == ("wine", 3, [4]) and index.objects_read == 2  # only the new object

    throttled = CapturedIndex(store, ["wine"], min_refresh=60)
    assert throttled.get("batch") is not None
    _capture_object(store, now, "c", 1, [{**rec, "request_id": "newest", "row": 0, "prediction": 4}])
    assert throttled.get("newest") is None  # at most one look per minute here
    shutil.rmtree(tmp_path / "store")
