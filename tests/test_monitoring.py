"""Capture, feedback, live performance and the status page, on the real wine models.

In-process tests use FastAPI's TestClient (the app's lifespan runs, so the capture thread
starts and the shutdown flush happens); the process tests start `mlopsctl serve` for real.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from mlopsctl.monitoring.captured import capture_key, hour_partition, load_captures, load_feedback
from mlopsctl.serving.app import ServeSettings, create_app
from mlopsctl.store import open_store
from tests.conftest import run_cli, wine_rows

pytestmark = pytest.mark.shared_data

FAST = {"flush_interval_seconds": 0.2, "batch_rows": 1000}


def app_for(store_dir: Path, **capture: Any) -> Any:
    return create_app(ServeSettings(store_uri=str(store_dir), models=[("wine", "prod")], capture={**FAST, **capture}))


def test_every_prediction_is_captured_with_its_inputs_outputs_and_status(wine_store_copy: Path) -> None:
    rows = wine_rows(3)
    snake = {k.replace(" ", "_"): v for k, v in rows[0].items()}
    with TestClient(app_for(wine_store_copy)) as c:
        one = c.post("/predict", json={"features": rows[0]}, headers={"x-request-id": "req-one"}).json()
        many = c.post("/predict", json={"instances": rows}).json()
        c.post("/predict", json={"features": snake})
        c.post("/invocations", json={"dataframe_records": rows[:2]})
        bad = c.post("/predict", json={"features": {**rows[0], "alcohol": "high"}})
        assert bad.status_code == 422
        c.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
    # leaving the client ran the shutdown: the buffer is flushed
    records = load_captures(open_store(str(wine_store_copy)), "wine")
    ok = [r for r in records if r["status"] == 200]
    assert len(ok) == 1 + 3 + 1 + 2
    assert sorted(r["status"] for r in records if r["status"] != 200) == [400, 422]
    first = next(r for r in records if r["request_id"] == "req-one")
    assert first["inputs"] == rows[0] and first["prediction"] == one["prediction"]
    assert first["model"] == "wine" and first["version"] == 1 and first["variant"] == "prod"
    assert first["endpoint"] == "predict" and first["latency_ms"] > 0
    assert abs(first["confidence"] - one["confidence"]) < 1e-6
    batch = [r for r in records if r["request_id"] == many["request_id"]]
    assert [r["row"] for r in batch] == [0, 1, 2] and [r["prediction"] for r in batch] == many["predictions"]
    # snake_case names arrive under the training names
    assert any(r["inputs"] == rows[0] and r["request_id"] not in ("req-one", many["request_id"]) for r in ok)
    failed = next(r for r in records if r["status"] == 422)
    assert failed["inputs"] is None and "alcohol" in failed["error"]


def test_capture_counts_written_and_dropped_in_metrics(wine_store_copy: Path) -> None:
    rows = wine_rows(60)
    with TestClient(app_for(wine_store_copy, buffer_rows=100, flush_interval_seconds=60, batch_rows=10_000)) as c:
        for _ in range(3):  # 180 rows into a buffer of 100, with no flush in between
            assert c.post("/predict", json={"instances": rows}).status_code == 200
        text = c.get("/metrics").text
    assert (
        'mlops_capture_dropped_total{model="wine"} 120.0' in text
        or 'mlops_capture_dropped_total{model="wine"} 80.0' in text
    )
    records = load_captures(open_store(str(wine_store_copy)), "wine")
    assert len(records) in (60, 100)  # whole requests are kept or dropped, never split


def test_no_record_is_dropped_under_a_steady_load_and_writers_never_share_an_object(wine_store_copy: Path) -> None:
    row = wine_rows(1)[0]
    started = time.time()
    apps = [app_for(wine_store_copy), app_for(wine_store_copy)]  # two replicas on one store
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        for i in range(400):
            assert (a if i % 2 else b).post("/predict", json={"features": row}).status_code == 200
        metrics = a.get("/metrics").text
    store = open_store(str(wine_store_copy))
    assert len(load_captures(store, "wine")) == 400
    assert 'mlops_capture_dropped_total{model="wine"}' not in metrics or 'dropped_total{model="wine"} 0.0' in metrics
    keys = store.list("capture/wine/")
    writers = {k.rsplit("/", 1)[1].rsplit("-", 1)[0] for k in keys}
    hours = {hour_partition(started), hour_partition(time.time())}  # the test may cross an hour
    assert len(writers) == 2 and all(k.split("/")[2] in hours for k in keys), (hours, keys[:3])


def test_capture_key_partitions_by_model_and_hour() -> None:
    t = 1_763_900_000.0  # 2025-11-23T12:13:20Z
    assert capture_key("wine", t, "host-1-ab", 7) == "capture/wine/2025-11-23T12/host-1-ab-000007.jsonl"
    assert capture_key("wine", t + 3600, "host-1-ab", 8).startswith("capture/wine/2025-11-23T13/")


def test_sampling_keeps_about_the_configured_share(wine_store_copy: Path) -> None:
    row = wine_rows(1)[0]
    with TestClient(app_for(wine_store_copy, sample_rate=0.25)) as c:
        for _ in range(800):
            c.post("/predict", json={"features": row})
    n = len(load_captures(open_store(str(wine_store_copy)), "wine"))
    assert 140 <= n <= 260, n  # binomial(800, 0.25): mean 200, sd 12


def test_feedback_joins_labels_and_reports_what_it_cannot_use(wine_store_copy: Path) -> None:
    import pandas as pd

    from tests.conftest import WINE_RED

    truth = pd.read_csv(WINE_RED, sep=";").head(40)
    rows = wine_rows(40)
    with TestClient(app_for(wine_store_copy)) as c:
        ids, preds = [], []
        for row in rows:
            body = c.post("/predict", json={"features": row}).json()
            ids.append(body["request_id"])
            preds.append(body["prediction"])
        batch = c.post("/predict", json={"instances": rows[:2]}).json()
        one = c.post("/feedback", json={"request_id": ids[0], "label": int(truth.quality[0])})
        assert one.status_code == 200 and one.json() == {"accepted": 1, "rejected": []}
        items = [{"request_id": i, "label": int(q)} for i, q in zip(ids[1:], truth.quality[1:], strict=True)]
        assert c.post("/feedback", json=items).json()["accepted"] == 39
        unknown = c.post("/feedback", json={"request_id": "never-seen", "label": 5})
        assert unknown.status_code == 404
        assert (
            unknown.json()["detail"][0]["field"] == "request_id"
            and "never-seen" in unknown.json()["detail"][0]["problem"]
        )
        bad_label = c.post("/feedback", json={"request_id": ids[0], "label": "excellent"})
        assert bad_label.status_code == 422 and bad_label.json()["detail"][0]["field"] == "label"
        assert "not a number like them (classes: 3, 4, 5, 6, 7, 8)" in bad_label.json()["detail"][0]["problem"]
        mixed = c.post(
            "/feedback",
            json=[{"request_id": batch["request_id"], "row": 1, "label": 5}, {"request_id": "x", "label": 5}],
        )
        assert mixed.status_code == 200
        assert mixed.json()["accepted"] == 1 and mixed.json()["rejected"][0]["index"] == 1
        out_of_range = c.post("/feedback", json={"request_id": batch["request_id"], "row": 2, "label": 5})
        assert out_of_range.status_code == 422 and out_of_range.json()["detail"][0]["field"] == "row"
        assert c.post("/feedback", content=b"[", headers={"content-type": "application/json"}).status_code == 400
        assert c.post("/feedback", json={"request_id": ids[0]}).status_code == 422
        metrics = c.get("/metrics").text
        assert c.get("/predict").status_code == 405  # still serving, nothing broken
    expected = sum(int(p) == int(q) for p, q in zip(preds, truth.quality, strict=True)) / 40
    expected41 = (expected * 40 + (int(batch["predictions"][1]) == 5)) / 41
    gauge = next(line for line in metrics.splitlines() if line.startswith('mlops_live_accuracy{model="wine"}'))
    assert abs(float(gauge.split()[-1]) - expected41) < 1e-9
    store = open_store(str(wine_store_copy))
    assert len(load_feedback(store)) == 41

    from mlopsctl.monitoring.performance import live_metrics, performance

    report = performance(store, "wine", since=time.time() - 3600, window=600)
    (v1,) = report["versions"]
    assert v1["version"] == 1 and v1["predictions"] == 42 and v1["labelled"] == 41
    assert abs(v1["live"]["accuracy"] - expected41) < 1e-9
    assert v1["training"]["accuracy"] > 0.5 and "f1_macro" in v1["live"]
    assert sum(w["predictions"] for w in v1["windows"]) == 42
    values, n, task = live_metrics(store, "wine", 3600, 10)
    assert n == 41 and task == "classification" and values is not None
    assert values["accuracy"] == v1["live"]["accuracy"] and values["f1_macro"] == v1["live"]["f1_macro"]
    assert live_metrics(store, "wine", 3600, 100) == (None, 41, "classification")


def test_feedback_accepts_a_class_the_model_never_saw_and_says_so(wine_store_copy: Path) -> None:
    with TestClient(app_for(wine_store_copy)) as c:
        rid = c.post("/predict", json={"features": wine_rows(1)[0]}).json()["request_id"]
        new_class = c.post("/feedback", json={"request_id": rid, "label": 9})  # a quality no red wine had
        assert new_class.json() == {"accepted": 1, "rejected": [], "new_classes": {"9": 1}}
        string = c.post("/feedback", json={"request_id": rid, "label": "7"})  # "7" is class 7
        assert string.json() == {"accepted": 1, "rejected": []}


def test_cli_capture_export_feedback_file_and_performance(wine_store_copy: Path, tmp_path: Path) -> None:
    import pandas as pd

    from tests.conftest import WINE_RED

    rows = wine_rows(20)
    with TestClient(app_for(wine_store_copy)) as c:
        ids = [c.post("/predict", json={"features": r}).json()["request_id"] for r in rows]
    store = ["--store", str(wine_store_copy)]
    out = run_cli(*store, "capture", "export", "wine", "--since", "1h", cwd=tmp_path).stdout
    frame = pd.read_csv(__import__("io").StringIO(out))
    assert len(frame) == 20 and {"request_id", "prediction", "alcohol", "fixed acidity"} <= set(frame.columns)
    run_cli(
        *store, "capture", "export", "wine", "--format", "parquet", "--out", str(tmp_path / "c.parquet"), cwd=tmp_path
    )
    assert len(pd.read_parquet(tmp_path / "c.parquet")) == 20
    lines = run_cli(*store, "capture", "export", "wine", "--format", "jsonl", cwd=tmp_path).stdout.splitlines()
    assert json.loads(lines[0])["inputs"]["alcohol"] == rows[0]["alcohol"]
    bad = run_cli(*store, "capture", "export", "wine", "--format", "xml", cwd=tmp_path, check=False)
    assert bad.returncode == 1 and "--format" in bad.stderr

    truth = pd.read_csv(WINE_RED, sep=";").quality.head(20).tolist()
    labels = pd.DataFrame({"request_id": [*ids, "nobody"], "label": [*truth, 5]})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    fb = run_cli(*store, "feedback", str(tmp_path / "labels.csv"), "--model", "wine", cwd=tmp_path, check=False)
    assert fb.returncode == 1, fb.stderr  # one unknown id: reported, and the exit code says so
    assert "20 label(s) stored" in fb.stdout and "line 22: request_id: unknown request id 'nobody'" in fb.stderr
    pd.DataFrame({"id": ids}).to_csv(tmp_path / "nolabel.csv", index=False)
    missing = run_cli(*store, "feedback", str(tmp_path / "nolabel.csv"), "--model", "wine", cwd=tmp_path, check=False)
    assert missing.returncode == 1 and "request_id" in missing.stderr and "label" in missing.stderr

    perf = json.loads(
        run_cli(*store, "performance", "wine", "--since", "1h", "--window", "10m", "--json", cwd=tmp_path).stdout
    )
    assert perf["versions"][0]["labelled"] == 20 and perf["unmatched_feedback"] == 0
    text = run_cli(*store, "performance", "wine", "--since", "1h", cwd=tmp_path).stdout
    assert "wine v1" in text and "training holdout" in text and "accuracy" in text
    assert all(k in text for k in ("f1_macro", "precision_macro", "recall_macro")), text  # every metric of the task


def test_dashboard_data_names_versions_rates_and_registry_events(wine_store_copy: Path) -> None:
    row = wine_rows(1)[0]
    with TestClient(app_for(wine_store_copy)) as c:
        for _ in range(10):
            c.post("/predict", json={"features": row})
        c.post("/predict", json={"features": {}})
        page = c.get("/dashboard")
        data = c.get("/dashboard/data").json()
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text  # nothing fetched from elsewhere
    (m,) = data["models"]
    assert m["version"] == 1 and m["aliases"]["prod"] == 1 and m["requests_total"] == 11
    assert abs(m["error_rate"] - 1 / 11) < 1e-9 and m["p95_ms"] is not None and m["request_rate"] > 0
    assert sum(m["predictions_by_class"].values()) == 10
    assert any(e["action"] == "promote" for e in m["events"]) and m["drift"] is None


@pytest.mark.slow
def test_a_real_server_flushes_its_capture_on_shutdown(
    wine_registry: dict[str, Any], start_server: Any, tmp_path: Path
) -> None:
    store_dir = tmp_path / "store"
    shutil.copytree(wine_registry["store_dir"], store_dir)
    server = start_server(["--store", str(store_dir), "serve", "-m", "wine@prod"])
    row = wine_rows(1)[0]
    with httpx.Client(base_url=server.url) as c:
        for _ in range(300):
            assert c.post("/predict", json={"features": row}).status_code == 200
    os.kill(server.proc.pid, signal.SIGTERM)  # the default flush interval (5 s) has not passed
    server.proc.wait(20)
    assert len(load_captures(open_store(str(store_dir)), "wine")) == 300


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_dashboard_in_headless_chromium(wine_registry: dict[str, Any], start_server: Any, tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the [dev] extra")
    store_dir = tmp_path / "store"
    shutil.copytree(wine_registry["store_dir"], store_dir)
    server = start_server(["--store", str(store_dir), "serve", "-m", "wine@prod"])
    row = wine_rows(1)[0]
    for _ in range(5):
        httpx.post(server.url + "/predict", json={"features": row})
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page()
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/dashboard")
        page.wait_for_selector("[data-model=wine] .version[data-version='1']", timeout=10_000)
        assert page.inner_text("[data-model=wine] .version") == "v1"
        text = page.inner_text("main").lower()
        assert "prod → v1" in text and "requests/s" in text and "no drift report yet" in text
        # promote v2: the page follows the server's hot reload without a page load
        from mlopsctl import registry

        registry.promote(open_store(str(store_dir)), "wine", wine_registry["v2"], "prod", force=True, reason="test")
        page.wait_for_selector("[data-model=wine] .version[data-version='2']", timeout=15_000)
        # an experiment: the page shows each variant's share
        from mlopsctl.experiments import deployment

        deployment.start(open_store(str(store_dir)), "wine", control="prod", candidate="1", split="80/20")
        page.wait_for_selector("[data-model=wine] tr[data-variant=candidate]", timeout=15_000)
        assert "20.0%" in page.inner_text("[data-model=wine] tr[data-variant=candidate]")
        browser.close()
    assert errors == []


def test_a_failing_store_loses_nothing_that_fits_and_counts_what_does_not(tmp_path: Path) -> None:
    from types import SimpleNamespace

    import numpy as np

    from mlopsctl.serving.capture import CaptureWriter
    from mlopsctl.serving.metrics import ServerMetrics
    from mlopsctl.store.local import LocalStore

    class Flaky(LocalStore):
        failures = 2

        def put(self, key: str, data: bytes) -> str:
            if key.startswith("capture/") and self.failures:
                self.failures -= 1
                raise OSError("disk unplugged")
            return super().put(key, data)

    store = Flaky(str(tmp_path / "s"))
    names = ["a", "b"]
    model = SimpleNamespace(name="m", version=3, alias=None, spec=SimpleNamespace(names=names))
    w = CaptureWriter(store, ServerMetrics(), buffer_rows=100)
    probas = np.array([[0.2, 0.8]])
    written = []
    for i in range(3):
        w.offer(model, f"r{i}", "predict", 200, 0.001, {"a": [1.0], "b": [float(i)]}, ["x"], probas)
        written.append(w.flush())
    assert written == [0, 1, 2]  # r0 failed twice (its own flush, then its retry), then went out with r2
    records = load_captures(store, "m")
    assert [r["request_id"] for r in records] == ["r0", "r1", "r2"] and w.failed_writes == 2
    assert records[2] == {**records[2], "inputs": {"a": 1.0, "b": 2.0}, "variant": "v3", "confidence": 0.8}
    assert w.status()["queued"] == 0 and w.dropped == 0


def test_remembered_predictions_are_bounded_by_requests_and_by_rows(tmp_path: Path) -> None:
    from mlopsctl.serving.capture import CaptureWriter
    from mlopsctl.serving.metrics import ServerMetrics
    from mlopsctl.store.local import LocalStore

    w = CaptureWriter(LocalStore(str(tmp_path / "s")), ServerMetrics(), recent_requests=5, recent_rows=250)
    for i in range(4):  # 4 batches of 100 rows: only the last two fit in 250 predictions
        w.remember(f"b{i}", "m", 1, list(range(100)))
    assert sorted(w.recent) == ["b2", "b3"] and w.lookup("b3") == ("m", 1, 100) and w.lookup("b1") is None
    for i in range(7):  # single rows: the request limit (5) binds first
        w.remember(f"r{i}", "m", 1, [i])
    assert sorted(w.recent) == ["r2", "r3", "r4", "r5", "r6"] and w.prediction("r6", 0) == 6
    w.remember("r6", "m", 2, [7, 8])  # the same id again: its new answer, its first place, counted once
    assert w.lookup("r6") == ("m", 2, 2) and w._recent_rows == 6
    w.remember("huge", "m", 1, list(range(1000)))  # one request over the row limit: kept alone
    assert list(w.recent) == ["huge"] and w._recent_rows == 1000
    w.remember("next", "m", 1, [1])
    assert list(w.recent) == ["next"] and w._recent_rows == 1


def test_the_writer_makes_one_object_per_model_and_hour_oldest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from mlopsctl.serving import capture as capture_mod
    from mlopsctl.serving.capture import CaptureWriter
    from mlopsctl.serving.metrics import ServerMetrics
    from mlopsctl.store.local import LocalStore

    store = LocalStore(str(tmp_path / "s"))
    w = CaptureWriter(store, ServerMetrics())
    hour = 3600 * 490_000  # 2025-11-24T16 UTC
    times = iter([hour + 10, hour + 3599, hour + 3600, hour + 20, hour + 3601])
    monkeypatch.setattr(capture_mod.time, "time", lambda: next(times))
    models = ["a", "a", "a", "b", "a"]
    for i, name in enumerate(models):
        model = SimpleNamespace(name=name, version=1, alias=None, spec=SimpleNamespace(names=["x"]))
        w.offer(model, f"r{i}", "predict", 200, 0.001, {"x": [float(i), 0.0]}, [1, 2], None)
    monkeypatch.undo()
    assert w.status()["queued"] == 10 and w.flush() == 10 and w.status()["queued"] == 0
    keys = sorted(store.list("capture/"))
    assert keys == [
        capture_key("a", hour + 10, w.writer, 1),  # a's first hour: r0, r1
        capture_key("a", hour + 3600, w.writer, 3),  # a's next hour: r2, r4 (its batch began after b's)
        capture_key("b", hour + 20, w.writer, 2),
    ]
    rows = {k: [(r["request_id"], r["row"]) for r in map(json.loads, store.get(k).splitlines())] for k in keys}
    assert list(rows.values()) == [
        [("r0", 0), ("r0", 1), ("r1", 0), ("r1", 1)],
        [("r2", 0), ("r2", 1), ("r4", 0), ("r4", 1)],
        [("r3", 0), ("r3", 1)],
    ]


@pytest.mark.shared_data
def test_a_regression_model_gets_the_live_metrics_of_its_task(two_models_store: Path) -> None:
    """Before: the server dropped the labels of a regression model (`mlops_live_labelled` stayed 0 and no
    RMSE was anywhere live). Now RMSE, MAE, R² and bias come from the same labels, as `compute` gives them;
    no accuracy is exported for it, and `mlops_drift_share` is absent (not -1) until a drift report exists."""
    import pandas as pd

    from mlopsctl.monitoring.taskmetrics import compute
    from tests.conftest import WINE_RED

    app = create_app(ServeSettings(store_uri=str(two_models_store), models=[("wine-alcohol", "prod")], capture=FAST))
    frame = pd.read_csv(WINE_RED, sep=";").sample(40, random_state=1)
    truth = frame.pop("alcohol").tolist()
    with TestClient(app) as c:
        fresh = c.get("/metrics").text
        assert 'mlops_live_labelled{model="wine-alcohol"} 0.0' in fresh
        assert "mlops_drift_share{" not in fresh and "mlops_live_rmse{" not in fresh
        answer = c.post("/predict", json={"instances": frame.to_dict(orient="records")}).json()
        rid, preds = answer["request_id"], answer["predictions"]
        labels = [{"request_id": rid, "row": i, "label": y} for i, y in enumerate(truth)]
        assert c.post("/feedback", json=labels).json()["accepted"] == 40
        metrics = c.get("/metrics").text
        live = c.get("/dashboard/data").json()["models"][0]
    gauges = {
        line.split("{")[0]: float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("mlops_live_") and 'model="wine-alcohol"' in line
    }
    want = compute("regression", truth, preds)
    assert gauges["mlops_live_labelled"] == 40
    for metric in ("rmse", "mae", "r2", "bias"):
        assert gauges[f"mlops_live_{metric}"] == pytest.approx(want[metric], rel=1e-9), metric
    assert "mlops_live_accuracy" not in gauges and "mlops_live_f1_macro" not in gauges
    assert 0 < want["rmse"] < 2 and live["task"] == "regression" and live["labelled"] == 40
    assert live["live"]["rmse"] == pytest.approx(want["rmse"]) and live["live_accuracy"] is None


def test_a_classifier_gets_precision_and_recall_per_class_live(wine_store_copy: Path) -> None:
    from mlopsctl.monitoring.taskmetrics import compute

    with TestClient(app_for(wine_store_copy)) as c:
        answer = c.post("/predict", json={"instances": wine_rows(12)}).json()
        preds = answer["predictions"]
        truth = [5, 5, 5, 6, 5, 5, 5, 7, 6, 5, 5, 5]
        items = [{"request_id": answer["request_id"], "row": i, "label": y} for i, y in enumerate(truth)]
        assert c.post("/feedback", json=items).json()["accepted"] == 12
        metrics = c.get("/metrics").text
    want = compute("classification", truth, preds)
    for cls, m in want["per_class"].items():
        for kind in ("precision", "recall"):
            line = f'mlops_live_{kind}{{class="{cls}",model="wine"}} '
            (value,) = [float(x.split()[-1]) for x in metrics.splitlines() if x.startswith(line)]
            assert value == pytest.approx(m[kind]), (cls, kind)
    for metric in ("accuracy", "f1_macro", "precision_macro", "recall_macro"):
        (value,) = [
            float(x.split()[-1]) for x in metrics.splitlines() if x.startswith(f'mlops_live_{metric}{{model="wine"}}')
        ]
        assert value == pytest.approx(want[metric]), metric
