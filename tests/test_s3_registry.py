"""The registry on an S3 store, end to end, against a real S3 server on 127.0.0.1 (moto).

Writers on different machines are played by threads, each with its own store and client,
released at the same moment: publishes race for version numbers (put-if-absent) and
promotions race for an alias (compare-and-swap). Then a model trained straight into S3
loads, verifies and predicts, from Python and from the CLI.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mlopsctl import registry
from mlopsctl.errors import Conflict
from mlopsctl.store import open_store
from mlopsctl.store.s3 import S3Store
from tests.conftest import run_cli, train_and_publish, wine_rows, write_project
from tests.s3server import new_bucket, s3_env


@pytest.fixture
def s3_uri(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """``s3://<fresh bucket>/mlops``, reachable through MLOPS_S3_ENDPOINT_URL as a user would set it."""
    s3_env(monkeypatch, tmp_path, MLOPS_S3_ENDPOINT_URL=s3_endpoint)
    return f"s3://{new_bucket(s3_endpoint)}/mlops"


class CountingStore(S3Store):
    """The S3 store, counting the conditional writes it lost: proof that the writers did collide."""

    lost = 0
    _count_lock = threading.Lock()

    def _lost(self) -> None:
        with self._count_lock:
            CountingStore.lost += 1

    def put_if_absent(self, key: str, data: bytes) -> str:
        try:
            return super().put_if_absent(key, data)
        except Conflict:
            self._lost()
            raise

    def compare_and_swap(self, key: str, expected_etag: str | None, data: bytes) -> str:
        try:
            return super().compare_and_swap(key, expected_etag, data)
        except Conflict:
            self._lost()
            raise


def at_once(uri: str, jobs: list[Callable[[CountingStore], Any]]) -> list[Any]:
    """Run each job in its own thread with its own store (and HTTP client), all released together."""
    start = threading.Barrier(len(jobs))

    def run(job: Callable[[CountingStore], Any]) -> Any:
        store = CountingStore.from_uri(uri)
        assert isinstance(store, CountingStore)
        store.list("models/")  # connected before the start, so the race is in the registry calls
        start.wait(timeout=30)
        return job(store)

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(run, jobs))


def test_publishes_at_once_get_distinct_versions(s3_uri: str) -> None:
    CountingStore.lost = 0

    def publish(i: int) -> Callable[[CountingStore], int]:
        files = {"model.bin": f"model {i}".encode(), "signature.json": b"{}"}
        return lambda store: registry.publish(store, "racer", files, {"run_id": f"run-{i}"})[0]

    versions = at_once(s3_uri, [publish(i) for i in range(6)])
    assert sorted(versions) == [1, 2, 3, 4, 5, 6]
    assert CountingStore.lost > 0  # they did race for the same numbers
    store = open_store(s3_uri)
    for i, v in enumerate(versions):  # nothing overwritten: each version holds its own run's bytes
        assert registry.read_files(store, "racer", v)["model.bin"] == f"model {i}".encode()
        assert registry.manifest(store, "racer", v)["run_id"] == f"run-{i}"
    published = [e["version"] for e in registry.events(store, "racer") if e["action"] == "publish"]
    assert sorted(published) == [1, 2, 3, 4, 5, 6]


def test_promotions_at_once_both_apply_in_order(s3_uri: str) -> None:
    store = open_store(s3_uri)
    summary = {"primary_metric": "f1_macro", "metrics": {"f1_macro": 0.8}}  # equal: the gate lets both pass
    for v in (1, 2):
        registry.publish(store, "wine", {"model.bin": f"model {v}".encode()}, {**summary, "run_id": f"r{v}"})

    def promote(version: int, alias: str) -> Callable[[CountingStore], Any]:
        return lambda s: registry.promote(s, "wine", version, alias, reason=f"to v{version}")

    CountingStore.lost = 0
    for round_ in range(4):
        alias = f"race{round_}"
        results = at_once(s3_uri, [promote(1, alias), promote(2, alias)])
        # one swap wins; the other re-reads, gates again against the new target and applies after it
        assert all(r is not None for r in results)
        moves = registry.events(store, "wine", alias=alias)
        state = registry.get_alias(store, "wine", alias)
        assert len(moves) == 2 and moves[0]["from"] is None and moves[1]["from"] == moves[0]["to"]
        assert {m["to"] for m in moves} == {1, 2} and {m["reason"] for m in moves} == {"to v1", "to v2"}
        assert state is not None and state["version"] == moves[1]["to"] and state["event"] == moves[1]["id"]
        assert state["stack"] == [moves[0]["to"]]
    assert CountingStore.lost > 0  # at least one round did collide on the alias


@pytest.mark.shared_data
def test_a_model_trained_into_s3_loads_verifies_and_predicts(s3_uri: str, tmp_path: Path) -> None:
    from mlopsctl.serving.loaded import load
    from mlopsctl.serving.predict import predict_rows

    # the project's mlops.toml says `[store] uri = "s3://…"`
    project = write_project(tmp_path / "wine", model="logistic_regression", params="{}", store=s3_uri)  # type: ignore[arg-type]
    _, store, run, version = train_and_publish(project)
    assert isinstance(store, S3Store) and store.uri == s3_uri
    assert store.list_dirs("") == ["datasets", "models", "runs"]
    assert "model.onnx" in registry.verify(store, "wine", version)
    registry.promote(store, "wine", version, "prod", reason="first on S3")

    replica = open_store(s3_uri)  # a server replica elsewhere: its own client, same bucket
    model = load(replica, "wine", "prod")
    assert (model.version, model.runtime, model.manifest["run_id"]) == (version, "onnx", run["run_id"])
    predictions, _ = predict_rows(model, wine_rows(3))
    assert model.classes is not None and len(predictions) == 3 and set(predictions) <= set(model.classes)

    out = run_cli("--store", s3_uri, "models", "verify", "wine@prod", cwd=tmp_path)
    assert f"wine v{version}:" in out.stdout and "match their sha256" in out.stdout
    missing = run_cli("--store", "s3://no-such-team-bucket/mlops", "models", "list", cwd=tmp_path, check=False)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert missing.stderr.strip() == (
        "error: store s3://no-such-team-bucket/mlops: bucket 'no-such-team-bucket' does not exist "
        "(create it, or check the name)"
    )
