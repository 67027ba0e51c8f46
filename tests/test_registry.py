"""The registry: immutable numbered versions, aliases moved by CAS through the gate, history, integrity."""

from __future__ import annotations

import itertools
import multiprocessing as mp
from pathlib import Path
from typing import Any

import pytest

from mlopsctl import registry
from mlopsctl.errors import Conflict, GateRefused, IntegrityError, NotFound, ValidationError
from mlopsctl.serving.loaded import load
from mlopsctl.store import open_store
from mlopsctl.store.local import LocalStore


def _fake_publish(root: str, i: int) -> int:
    files = {"model.bin": f"model {i}".encode(), "signature.json": b"{}"}
    return registry.publish(LocalStore(root), "racer", files, {"run_id": f"run-{i}"})[0]


def test_concurrent_publishes_get_distinct_numbers(tmp_path: Path) -> None:
    with mp.get_context("fork").Pool(4) as pool:
        versions = pool.starmap(_fake_publish, [(str(tmp_path), i) for i in range(16)])
    assert sorted(versions) == list(range(1, 17))
    store = LocalStore(tmp_path)
    for i, v in enumerate(versions):  # nothing overwritten: each version holds its own run's bytes
        assert registry.read_files(store, "racer", v)["model.bin"] == f"model {i}".encode()
        assert registry.manifest(store, "racer", v)["run_id"] == f"run-{i}"


def _same_run(root: str, i: int) -> int:
    import time

    time.sleep(0.01 * (i % 3))  # arrive together, not in order
    files = {"model.bin": b"the run's model", "signature.json": b"{}"}
    return registry.publish(LocalStore(root), "racer", files, {"run_id": "one-run"})[0]


def test_fifty_concurrent_publishes_of_one_run_give_one_version(tmp_path: Path) -> None:
    """Docs say a run published twice keeps its version: 50 publishes at once, across 8 processes, made 8
    versions before the by-run claim; now every one returns the same version and only it exists."""
    with mp.get_context("fork").Pool(8) as pool:
        versions = pool.starmap(_same_run, [(str(tmp_path), i) for i in range(50)])
    assert set(versions) == {1}, sorted(set(versions))
    store = LocalStore(tmp_path)
    assert registry.version_numbers(store, "racer", complete_only=False) == [1]
    assert [e["action"] for e in registry.events(store, "racer")] == ["publish"]


def test_a_publish_that_fails_gives_its_run_claim_back(tmp_path: Path) -> None:
    from mlopsctl.registry import versions

    store = LocalStore(tmp_path)
    done, claim = versions.claim_run(store, "m", "r1")
    assert done is None and claim is not None
    with pytest.raises(Conflict, match="run r1 is being published"):
        versions.claim_run(store, "m", "r1", wait=0.3, poll=0.05)  # another publish waits, then says who holds it
    versions.release_run_claim(store, "m", "r1", claim)
    assert registry.publish(store, "m", {"a": b"1"}, {"run_id": "r1"}) == (1, True)


def test_publishing_a_run_twice_returns_its_version(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    assert registry.publish(store, "m", {"a": b"1"}, {"run_id": "r1"}) == (1, True)
    assert registry.publish(store, "m", {"a": b"1"}, {"run_id": "r1"}) == (1, False)
    assert registry.publish(store, "m", {"a": b"2"}, {"run_id": "r2"}) == (2, True)


def test_versions_are_immutable(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    registry.publish(store, "m", {"a": b"1"}, {"run_id": "r1"})
    with pytest.raises(Conflict):
        store.put_if_absent("models/m/versions/1/a", b"changed")


def test_incomplete_version_is_not_listed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_json("models/m/versions/1/claim.json", {})  # a publish that died before its manifest
    registry.publish(store, "m", {"a": b"1"}, {"run_id": "r1"})
    assert registry.version_numbers(store, "m") == [2]
    with pytest.raises(NotFound, match="m@1"):
        registry.manifest(store, "m", 1)


def test_tampered_bundle_is_refused_naming_the_file(wine_store_copy: Path) -> None:
    store = open_store(str(wine_store_copy))
    path = wine_store_copy / "models/wine/versions/1/model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"models/wine/versions/1/model\.onnx"):
        registry.verify(store, "wine", 1)
    with pytest.raises(IntegrityError, match=r"model\.onnx"):
        load(store, "wine", "prod")
    registry.verify(store, "wine", 2)  # the other version is untouched


def test_missing_file_is_an_integrity_error(wine_store_copy: Path) -> None:
    (wine_store_copy / "models/wine/versions/2/signature.json").unlink()
    with pytest.raises(IntegrityError, match=r"signature\.json"):
        registry.verify(open_store(str(wine_store_copy)), "wine", 2)


def test_gate_refuses_a_worse_version_with_both_numbers(wine_store_copy: Path, wine_registry: dict) -> None:
    store = open_store(str(wine_store_copy))
    m1 = wine_registry["run1"]["metrics"]["holdout"]["f1_macro"]
    m2 = wine_registry["run2"]["metrics"]["holdout"]["f1_macro"]
    assert m2 < m1 - 0.01  # logistic regression is worse than the forest on wine
    with pytest.raises(GateRefused) as exc:
        registry.promote(store, "wine", 2, "prod", tolerance=0.01)
    assert f"{m2:.4f}" in str(exc.value) and f"{m1:.4f}" in str(exc.value)
    assert registry.get_alias(store, "wine", "prod")["version"] == 1
    # a looser tolerance lets it through
    event = registry.promote(store, "wine", 2, "prod", tolerance=1.0, reason="tolerant")
    assert event is not None and event["gate"]["passed"] and not event["forced"]


def test_force_overrides_the_gate_and_is_recorded(wine_store_copy: Path) -> None:
    store = open_store(str(wine_store_copy))
    event = registry.promote(store, "wine", 2, "prod", force=True, reason="incident 42")
    assert event is not None and event["forced"] and "worse by" in event["overridden"][0]
    last = registry.events(store, "wine", alias="prod")[-1]
    assert last["forced"] and last["reason"] == "incident 42" and last["from"] == 1 and last["to"] == 2


def test_approval_rule_and_rejection(wine_store_copy: Path) -> None:
    store = open_store(str(wine_store_copy))
    with pytest.raises(GateRefused, match="requires approval"):
        registry.promote(store, "wine", 1, "staging", require_approval=["staging"])
    registry.set_approval(store, "wine", 1, "approved", "reviewed")
    assert registry.promote(store, "wine", 1, "staging", require_approval=["staging"]) is not None
    registry.set_approval(store, "wine", 2, "rejected", "overfits")
    with pytest.raises(GateRefused, match="rejected"):
        registry.promote(store, "wine", 2, "canary", tolerance=1.0)
    assert registry.approval(store, "wine", 2)["reason"] == "overfits"


def test_rollback_undoes_promotions_one_at_a_time(wine_store_copy: Path) -> None:
    store = open_store(str(wine_store_copy))
    registry.promote(store, "wine", 2, "prod", force=True)
    ev = registry.rollback(store, "wine", "prod", reason="bad latency")
    assert (ev["from"], ev["to"]) == (2, 1)
    assert registry.get_alias(store, "wine", "prod")["version"] == 1
    with pytest.raises(Conflict, match="no earlier version"):
        registry.rollback(store, "wine", "prod")
    with pytest.raises(NotFound):
        registry.rollback(store, "wine", "never-set")
    history = registry.events(store, "wine")
    moves = [(e["action"], e.get("from"), e.get("to")) for e in history if e.get("alias") == "prod"]
    assert moves == [("promote", None, 1), ("promote", 1, 2), ("rollback", 2, 1)]
    assert all(e["at"] and e["actor"] for e in history)


def test_promoting_to_the_current_version_is_a_no_op(wine_store_copy: Path) -> None:
    store = open_store(str(wine_store_copy))
    assert registry.promote(store, "wine", 1, "prod") is None


def _promote_forced(root: str, version: int) -> str:
    store = LocalStore(root)
    registry.promote(store, "wine", version, "race", force=True)
    return "ok"


def test_racing_promotions_keep_a_consistent_alias_and_history(wine_store_copy: Path) -> None:
    with mp.get_context("fork").Pool(4) as pool:
        pool.starmap(_promote_forced, [(str(wine_store_copy), 1 + i % 2) for i in range(12)])
    store = open_store(str(wine_store_copy))
    moves = registry.events(store, "wine", alias="race")
    state = registry.get_alias(store, "wine", "race")
    assert len(moves) >= 1 and moves[-1]["to"] == state["version"] and moves[-1]["id"] == state["event"]
    # each recorded move starts where the previous one ended: no update was lost
    for a, b in itertools.pairwise(moves):
        assert b["from"] == a["to"]
    assert len(state["stack"]) == len(moves) - 1


def test_resolve_refs(wine_registry: dict[str, Any]) -> None:
    store = open_store(str(wine_registry["store_dir"]))
    assert registry.resolve(store, "wine", None) == 2
    assert registry.resolve(store, "wine", "latest") == 2
    assert registry.resolve(store, "wine", "1") == 1 and registry.resolve(store, "wine", 2) == 2
    with pytest.raises(ValidationError, match=r"wine@v2 is ambiguous.*write wine@2"):
        registry.resolve(store, "wine", "v2")  # one grammar: versions are plain numbers
    assert registry.resolve(store, "wine", "prod") == 1
    with pytest.raises(NotFound, match="wine@9"):
        registry.resolve(store, "wine", "9")
    with pytest.raises(NotFound, match="wine@nope"):
        registry.resolve(store, "wine", "nope")
    with pytest.raises(NotFound):
        registry.resolve(store, "no-such-model", None)


def test_bundle_contents(wine_registry: dict[str, Any]) -> None:
    import json

    store = open_store(str(wine_registry["store_dir"]))
    man = registry.manifest(store, "wine", 1)
    assert set(man["files"]) >= {
        "model.skops",
        "model.onnx",
        "signature.json",
        "baseline.json",
        "reference.parquet",
        "metrics.json",
        "run.json",
        "export.json",
    }
    export = json.loads(registry.read_files(store, "wine", 1, ["export.json"])["export.json"])
    assert export["ok"] and export["label_agreement"] == 1.0 and export["n_rows_checked"] == 320
    assert export["max_abs_diff"] is not None and export["max_abs_diff"] < 1e-3
    baseline = json.loads(registry.read_files(store, "wine", 1, ["baseline.json"])["baseline.json"])
    assert baseline["features"]["alcohol"]["kind"] == "numeric" and baseline["predictions"]["frequencies"]
    assert man["runtime"] == "onnx" and man["data_sha256"] == wine_registry["run1"]["data"]["sha256"]


def _publish_run(store_dir: str, run_id: str) -> int:
    from mlopsctl.registry.publishing import publish_run
    from mlopsctl.training.runs import get_run

    store = LocalStore(store_dir)
    return publish_run(store, get_run(store, run_id), name="cancer").version


def test_concurrent_publishes_of_a_real_run_export_once_and_give_one_version(tmp_path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    from mlopsctl.config import parse_config
    from mlopsctl.training.train import train_project

    load_breast_cancer(as_frame=True).frame.iloc[:, [0, 1, 2, 3, -1]].to_csv(tmp_path / "c.csv", index=False)
    cfg = parse_config(
        {
            "project": {"name": "cancer"},
            "data": {"path": str(tmp_path / "c.csv"), "target": "target"},
            "training": {"model": "logistic_regression", "cv_folds": 2},
        },
        root=tmp_path,
    )
    store = LocalStore(tmp_path / "store")
    run = train_project(cfg, store)
    with mp.get_context("fork").Pool(4) as pool:
        versions = pool.starmap(_publish_run, [(str(tmp_path / "store"), run["run_id"])] * 6)
    assert set(versions) == {1}
    assert registry.version_numbers(store, "cancer", complete_only=False) == [1]
    assert registry.manifest(store, "cancer", 1)["runtime"] == "onnx"
