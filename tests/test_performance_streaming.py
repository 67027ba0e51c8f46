"""`performance` streams the capture an hour at a time and answers exactly as the whole-period version did.

The reference below is the implementation `performance` had before it streamed (every record of the period
as a dict, each window found by a scan of them, the labels of the feedback sorted by time). It and the
streaming one read the same real store: wine (a classifier, two versions, an A/B split and a shadow) and
wine-alcohol (a regression), their predictions made by the published models on real wine rows, over eight
hours written by two servers, with failed requests, three-row requests, labels given twice (later and at
the same time), labels without a prediction, and a prediction outside the period. Compared as captured,
then compacted to Parquet; windows aligned, not aligned, and longer than the period.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import pytest

from mlopsctl import registry
from mlopsctl.monitoring.captured import capture_key, encode_lines, feedback_key, load_captures, load_feedback
from mlopsctl.monitoring.compaction import compact
from mlopsctl.monitoring.performance import FEEDBACK_LAG, labelled_records, live_metrics, performance
from mlopsctl.monitoring.taskmetrics import compute
from mlopsctl.store import open_store
from mlopsctl.store.base import Store
from tests.conftest import WINE_RED

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

HOUR = 3600.0


# -- the whole-period implementation, as it was --------------------------------------------------------------


def _old_labels(store: Store, name: str, since: float | None, until: float | None) -> tuple[dict[Any, Any], int]:
    labels: dict[tuple[str, int], Any] = {}
    n = 0
    for f in load_feedback(store, since, until):  # every label of the period, sorted by time
        if f.get("model") in (None, name):
            n += 1
            labels[(f["request_id"], int(f.get("row", 0)))] = f["label"]
    return labels, n


def _old_labelled(
    store: Store, name: str, since: float | None, until: float | None
) -> tuple[list[Any], dict[str, int]]:
    records = load_captures(store, name, since, until, ok_only=True)
    labels, n_feedback = _old_labels(store, name, since, None if until is None else until + FEEDBACK_LAG)
    seen = set()
    for r in records:
        key = (r["request_id"], int(r.get("row", 0)))
        seen.add(key)
        r["label"] = labels.get(key)
    return records, {"feedback": n_feedback, "unmatched": sum(1 for k in labels if k not in seen)}


def _old_performance(store: Store, name: str, *, since: float, window: float, until: float) -> dict[str, Any]:
    records, counts = _old_labelled(store, name, since, until)
    by_version: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        by_version.setdefault(int(r["version"]), []).append(r)
    versions = []
    for v, recs in sorted(by_version.items()):
        man = registry.manifest(store, name, v)
        task = man.get("task", "classification")
        windows = []
        start = since + math.floor((recs[0]["time"] - since) / window) * window
        while start <= recs[-1]["time"]:
            inside = [r for r in recs if start <= r["time"] < start + window]
            lab = [r for r in inside if r["label"] is not None]
            if inside:
                metrics = compute(task, [r["label"] for r in lab], [r["prediction"] for r in lab])
                windows.append(
                    {"start": start, "end": start + window, "predictions": len(inside), "labelled": len(lab)} | metrics
                )
            start += window
        lab = [r for r in recs if r["label"] is not None]
        versions.append(
            {
                "version": v,
                "task": task,
                "predictions": len(recs),
                "labelled": len(lab),
                "live": compute(task, [r["label"] for r in lab], [r["prediction"] for r in lab]),
                "training": man.get("metrics", {}),
                "windows": windows,
            }
        )
    return {
        "model": name,
        "since": since,
        "until": until,
        "window_seconds": window,
        "feedback": counts["feedback"],
        "unmatched_feedback": counts["unmatched"],
        "versions": versions,
    }


# -- a real store's capture -----------------------------------------------------------------------------------


def _predict(store: Store, name: str, version: int, rows: list[dict[str, float]]) -> list[Any]:
    from mlopsctl.serving.loaded import load

    model = load(store, name, None, version=version)
    names = [f["name"] for f in model.signature["inputs"]]
    preds, _ = model.runner.predict({k: [r[k] for r in rows] for k in names})
    return [p.item() if hasattr(p, "item") else p for p in preds]


def _write(store: Store, name: str, versions: list[int], target: str, start: float, rng: random.Random) -> None:
    import pandas as pd

    wine = pd.read_csv(WINE_RED, sep=";").head(400)
    rows = [{k: float(v) for k, v in r.items() if k != target} for r in wine.to_dict("records")]
    truth = [(int(v) if target == "quality" else float(v)) for v in wine[target]]
    preds = {v: _predict(store, name, v, rows) for v in versions}
    labels: list[dict[str, Any]] = []
    for h in range(8):
        for w in range(2):
            recs: list[dict[str, Any]] = []
            for i in range(30):
                t = start + h * HOUR + (w * 30 + i) * 55 + rng.random()
                rid = f"{name}-{h}-{w}-{i}"
                version = rng.choice(versions)
                variant = "shadow-v2" if i % 11 == 3 else ("prod" if version == versions[0] else "candidate")
                base = {"request_id": rid, "time": t, "model": name, "version": version, "variant": variant}
                if i % 17 == 4:
                    recs.append(base | {"status": 422, "row": 0, "inputs": None, "prediction": None, "error": "x"})
                    continue
                for row in range(3 if i % 7 == 0 else 1):
                    j = (h * 60 + w * 30 + i + row) % len(rows)
                    inputs = rows[j] | ({"sulphates": None} if i % 13 == 6 else {})  # a value missing
                    recs.append(base | {"status": 200, "row": row, "inputs": inputs, "prediction": preds[version][j]})
                    if rng.random() < 0.6:
                        lab = {"request_id": rid, "row": row, "label": truth[j], "time": t + rng.uniform(60, 9000)}
                        labels.append(lab | ({"model": name} if i % 2 else {}))
                        if i % 5 == 0:  # relabelled: later, or at the very same time
                            again = truth[(j + 1) % len(rows)]
                            labels.append(lab | {"label": again, "time": lab["time"] + (0 if i % 10 else 30)})
            for part, chunk in enumerate((recs[:20], recs[20:])):
                store.put(capture_key(name, chunk[0]["time"], f"host-{w}-beef", h * 2 + part + 1), encode_lines(chunk))
    labels += [{"request_id": f"{name}-nobody-{k}", "row": 0, "label": truth[k], "time": start + 99} for k in range(5)]
    early = {"request_id": f"{name}-early", "row": 0, "time": start - 5 * HOUR, "model": name, "status": 200}
    early |= {"version": versions[0], "variant": "prod", "inputs": {}, "prediction": preds[versions[0]][0]}
    store.put(capture_key(name, early["time"], "host-0-beef", 99), encode_lines([early]))
    labels.sort(key=lambda r: r["time"])
    for k in range(0, len(labels), 70):  # an object's labels in no particular order
        chunk = labels[k : k + 70]
        rng.shuffle(chunk)
        store.put(feedback_key(min(r["time"] for r in chunk), f"cli-{name}-{k}", 1), encode_lines(chunk))


@pytest.fixture(scope="module")
def real_store(tmp_path_factory: pytest.TempPathFactory, wine_registry: dict[str, Any]) -> dict[str, Any]:
    import shutil

    from tests.conftest import train_and_publish, write_project

    root = tmp_path_factory.mktemp("perfstream")
    store_dir = root / "store"
    shutil.copytree(wine_registry["store_dir"], store_dir)
    folder = write_project(root / "reg", name="wine-alcohol", model="ridge", params="{}", store=store_dir)
    toml = (folder / "mlops.toml").read_text()
    toml = toml.replace('target = "quality"', 'target = "alcohol"').replace('"classification"', '"regression"')
    (folder / "mlops.toml").write_text(toml)
    train_and_publish(folder)
    store = open_store(str(store_dir))
    start = (time.time() // HOUR - 20) * HOUR + 17.5  # not on an hour: windows do not line up with hours
    rng = random.Random(7)
    _write(store, "wine", [wine_registry["v1"], wine_registry["v2"]], "quality", start, rng)
    _write(store, "wine-alcohol", [1], "alcohol", start, rng)
    compacted = root / "compacted"
    shutil.copytree(store_dir, compacted)
    compact(open_store(str(compacted)), compact_after=900, keep_raw=0)
    return {"start": start, "captured": store_dir, "compacted": compacted}


def _canon(report: dict[str, Any]) -> str:
    return json.dumps(report, sort_keys=True)


@pytest.mark.parametrize("state", ["captured", "compacted"])
@pytest.mark.parametrize("name", ["wine", "wine-alcohol"])
@pytest.mark.parametrize("window", [HOUR, 1000.0, 86400.0], ids=["1h", "1000s", "1d"])
def test_streamed_performance_is_the_whole_period_one(
    real_store: dict[str, Any], state: str, name: str, window: float
) -> None:
    store = open_store(str(real_store[state]))
    since, until = real_store["start"] - 0.5 * HOUR, real_store["start"] + 7.5 * HOUR  # the last half hour left out
    new = performance(store, name, since=since, window=window, until=until)
    old = _old_performance(store, name, since=since, window=window, until=until)
    assert _canon(new) == _canon(old)
    labelled = sum(v["labelled"] for v in new["versions"])
    assert labelled > 100 and new["unmatched_feedback"] >= 5 and new["feedback"] > labelled
    assert {v["task"] for v in new["versions"]} == ({"regression"} if name == "wine-alcohol" else {"classification"})
    if name == "wine":
        assert len(new["versions"]) == 2


@pytest.mark.parametrize("name", ["wine", "wine-alcohol"])
def test_streamed_live_metrics_and_feedback_rows_are_the_whole_period_ones(
    real_store: dict[str, Any], name: str
) -> None:
    for state in ("captured", "compacted"):
        store = open_store(str(real_store[state]))
        now = real_store["start"] + 6 * HOUR
        records, _ = _old_labelled(store, name, now - 4 * HOUR, now)
        lab = [r for r in records if r["label"] is not None]
        task = registry.manifest(store, name, int(lab[-1]["version"]))["task"]
        expected = compute(task, [r["label"] for r in lab], [r["prediction"] for r in lab])
        assert live_metrics(store, name, 4 * HOUR, 10, now=now) == (expected, len(lab), task)
        assert live_metrics(store, name, 4 * HOUR, len(lab) + 1, now=now) == (None, len(lab), task)
        since = real_store["start"] - HOUR
        everything, _ = _old_labelled(store, name, since, None)
        assert list(labelled_records(store, name, since)) == [r for r in everything if r["label"] is not None]


def test_a_later_label_wins_and_of_two_at_once_the_one_read_last(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "store"))
    t = time.time() - 3 * HOUR
    rec = {"request_id": "r", "row": 0, "time": t, "model": "m", "version": 1, "status": 200, "prediction": 1}
    store.put(capture_key("m", t, "w", 1), encode_lines([rec]))
    # the later label (time) is in the first object; the tie is broken by the order of reading
    store.put(feedback_key(t, "a", 1), encode_lines([{"request_id": "r", "label": 3, "time": t + 50}]))
    store.put(feedback_key(t, "b", 1), encode_lines([{"request_id": "r", "label": 2, "time": t + 10}]))
    from mlopsctl.monitoring.captured import latest_labels

    assert latest_labels(store, "m", t - 1) == ({("r", 0): 3}, 2)
    store.put(feedback_key(t, "c", 1), encode_lines([{"request_id": "r", "label": 4, "time": t + 50}]))
    assert latest_labels(store, "m", t - 1) == ({("r", 0): 4}, 3)
    assert _old_labels(store, "m", t - 1, None) == latest_labels(store, "m", t - 1)


# -- drift --since: the current rows as columns, an hour at a time -------------------------------------------


def _report(reference: Any, frame: Any) -> dict[str, Any]:
    from mlopsctl.monitoring.drift import detect

    out = detect(reference, frame, source={"kind": "captured"}).to_dict()
    for volatile in ("created_at", "elapsed_s"):
        out.pop(volatile, None)
    return out


@pytest.mark.parametrize("state", ["captured", "compacted"])
@pytest.mark.parametrize("name", ["wine", "wine-alcohol"])
def test_the_streamed_current_frame_gives_the_drift_report_of_the_records_one(
    real_store: dict[str, Any], state: str, name: str
) -> None:
    from mlopsctl.monitoring.captured import captured_current, captured_frame
    from mlopsctl.monitoring.drift import load_reference

    store = open_store(str(real_store[state]))
    since = real_store["start"] - 6 * HOUR  # the early record too
    for version in registry.version_numbers(store, name):
        reference = load_reference(store, name, version)
        features = [f["name"] for f in reference.features]
        records = load_captures(store, name, since, version=version)
        frame, counts = captured_current(store, name, version, features, since)
        old = captured_frame(records)
        assert counts == {"records": len(records), "rows": len(old), "sampled": len(old)} and len(old) > 100
        assert frame.equals(old[[c for c in features if c in old.columns] + ["__prediction__"]])
        assert _report(reference, frame) == _report(reference, old)


def test_above_max_rows_the_current_frame_is_a_uniform_sample_in_time_order(real_store: dict[str, Any]) -> None:
    from mlopsctl.monitoring.captured import captured_current, captured_frame

    since = real_store["start"] - 6 * HOUR
    frames = []
    for state in ("captured", "compacted"):
        store = open_store(str(real_store[state]))
        whole = captured_frame(load_captures(store, "wine", since, version=1))
        features = [c for c in whole.columns if c in wine_features()]
        frame, counts = captured_current(store, "wine", 1, features, since, max_rows=50)
        assert counts["rows"] == len(whole) > 100 and counts["sampled"] == len(frame) == 50
        rows = whole[[*features, "__prediction__"]].reset_index(drop=True)
        captured = [tuple(r) for r in rows.astype(object).where(rows.notna(), None).itertuples(index=False)]
        sampled = [tuple(r) for r in frame.astype(object).where(frame.notna(), None).itertuples(index=False)]
        # each sampled row is a captured row, in the order captured (rows repeat: compare by position)
        position = 0
        for sample in sampled:
            while captured[position] != sample:
                position += 1
            position += 1
        frames.append(frame)
    assert frames[0].equals(frames[1])  # the same sample whether compacted or not
    other, _ = captured_current(store, "wine", 1, features, since, max_rows=50, random_state=1)
    assert not other.equals(frames[1])


def wine_features() -> list[str]:
    import pandas as pd

    return [c for c in pd.read_csv(WINE_RED, sep=";", nrows=1).columns if c != "quality"]


def test_classification_metrics_are_scikit_learns_on_the_classes_as_text() -> None:
    # compute numbers the classes before scikit-learn counts them (fast on a month of labels): same figures
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    rng = random.Random(5)
    for pool in ([3, 4, 5, 6, 7, 8], ["yes", "no"], [1, "1", 2.0, "x", True], [5]):
        y = [rng.choice(pool) for _ in range(500)]
        p = [rng.choice([*pool, 9]) for _ in range(500)]
        t, q = [str(v) for v in y], [str(v) for v in p]
        labels = sorted(set(t) | set(q))
        prec, rec, f1, support = precision_recall_fscore_support(t, q, labels=labels, zero_division=0)
        out = compute("classification", y, p)
        assert out["accuracy"] == accuracy_score(t, q) and out["f1_macro"] == f1.mean()
        assert out["precision_macro"] == prec.mean() and out["recall_macro"] == rec.mean()
        assert out["per_class"] == {
            c: {"precision": prec[i], "recall": rec[i], "support": int(support[i])} for i, c in enumerate(labels)
        }
