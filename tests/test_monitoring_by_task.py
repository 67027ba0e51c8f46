"""Monitoring judged by the model's task, end to end on the shared housing data: a regression project is never
judged by accuracy (the config refuses the floor, `monitor check` and `retrain --if` use RMSE), and the
server's live gauges, `monitor check` and `retrain --if` read the same figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from mlopsctl import registry
from mlopsctl.monitoring.taskmetrics import compute
from tests.conftest import HOUSING, run_cli, train_and_publish

pytestmark = pytest.mark.shared_data

HOUSING_TOML = """
[project]
name = "housing"
[data]
path = "{data}"
target = "median_house_value"
[training]
task = "regression"
model = "ridge"
params = {{}}
cv_folds = 0
[registry]
require_approval = []
[serving]
reload_interval_seconds = 0.5
[store]
uri = "{store}"
[monitoring.capture]
flush_interval_seconds = 0.2
[monitoring.alerts]
latency_p95_ms = false
error_rate = false
silence_for = false
drift_share = false
capture_for = false
min_labels = 20
{bounds}
"""


def _project(folder: Path, bounds: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "housing.csv"
    if not data.exists():
        pd.read_csv(HOUSING).sample(2000, random_state=0).to_csv(data, index=False)
    (folder / "mlops.toml").write_text(HOUSING_TOML.format(data=data, store=folder / ".mlops", bounds=bounds))
    return folder


@pytest.fixture(scope="module")
def housing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A housing project: v1 (ridge) in prod."""
    if not HOUSING.is_file():
        pytest.skip(f"needs {HOUSING}")
    folder = _project(tmp_path_factory.mktemp("housing") / "p", "max = { rmse = 1e9 }")
    _, store, _, version = train_and_publish(folder)
    registry.promote(store, "housing", version, "prod")
    return folder


def test_an_accuracy_floor_on_a_regression_project_is_refused(housing: Path, tmp_path: Path) -> None:
    """Before: `monitor check --once --model housing` fired "live accuracy 0.000" and `retrain --if accuracy`
    published a new version every time. Now the config names the key and what to bound instead."""
    project = _project(tmp_path / "p", "accuracy_min = 0.6")
    check = run_cli("monitor", "check", "--once", "--model", "housing", cwd=project, check=False)
    assert check.returncode == 1 and "live accuracy" not in check.stdout
    assert check.stderr.strip().endswith(
        "mlops.toml: monitoring.alerts.accuracy_min: accuracy is not a metric of regression models "
        "([training] task = 'regression'): bound one of rmse, mae, r2, bias"
    )
    (project / "mlops.toml").write_text((project / "mlops.toml").read_text().replace("accuracy_min", "min.accuracy"))
    retrain = run_cli("retrain", "--if", "accuracy", cwd=project, check=False)
    assert retrain.returncode == 1 and "monitoring.alerts.min.accuracy: accuracy is not a metric" in retrain.stderr

    # without any floor in the config, the trigger itself is refused: no run, no version
    project = _project(tmp_path / "q", "max = { rmse = 1e9 }")
    retrain = run_cli("retrain", "--if", "accuracy", cwd=project, check=False)
    assert retrain.returncode == 1
    assert "--if accuracy: accuracy is not a metric of regression models: use --if performance or one of" in (
        retrain.stderr
    )


@pytest.mark.slow
def test_rmse_live_on_the_server_in_monitor_check_and_as_a_retrain_trigger(
    housing: Path, start_server: Any, tmp_path: Path
) -> None:
    server = start_server(["serve"], cwd=housing)
    frame = pd.read_csv(HOUSING).sample(60, random_state=7)
    truth = frame.pop("median_house_value").tolist()
    rows = json.loads(frame.to_json(orient="records"))  # missing bedrooms as null, as a client sends them
    answer = httpx.post(server.url + "/predict", json={"instances": rows}, timeout=30).json()
    labels = [{"request_id": answer["request_id"], "row": i, "label": y} for i, y in enumerate(truth)]
    assert httpx.post(server.url + "/feedback", json=labels, timeout=30).json()["accepted"] == 60
    metrics = httpx.get(server.url + "/metrics").text
    want = compute("regression", truth, answer["predictions"])

    def gauge(name: str) -> float:
        (line,) = [x for x in metrics.splitlines() if x.startswith(f'{name}{{model="housing"}} ')]
        return float(line.split()[-1])

    assert gauge("mlops_live_labelled") == 60  # before: 0, the labels of a regression model were dropped
    assert gauge("mlops_live_rmse") == pytest.approx(want["rmse"]) and gauge("mlops_live_bias") == pytest.approx(
        want["bias"]
    )
    assert 'mlops_live_accuracy{model="housing"}' not in metrics

    def check() -> tuple[int, dict[str, Any]]:
        r = run_cli("monitor", "check", "--once", "--url", server.url, "--json", cwd=housing, check=False)
        assert r.returncode in (0, 1), r.stderr
        return r.returncode, json.loads(r.stdout)

    import time

    time.sleep(0.6)  # the capture is flushed every 0.2 s
    code, quiet = check()
    (rmse,) = [a for a in quiet["alerts"] if a["rule"] == "rmse"]
    assert code == 0 and rmse["state"] == "inactive" and rmse["value"] == pytest.approx(want["rmse"])
    assert {a["rule"] for a in quiet["alerts"] if a["model"] == "housing"} == {"rmse"}  # no accuracy rule at all

    skipped = run_cli("retrain", "--if", "rmse", "--json", cwd=housing)
    assert json.loads(skipped.stdout)["status"] == "skipped"  # under the ceiling: nothing trained or published

    bound = want["rmse"] / 2  # a ceiling the live RMSE is above
    toml = (housing / "mlops.toml").read_text().replace("max = { rmse = 1e9 }", f"max = {{ rmse = {bound} }}")
    (housing / "mlops.toml").write_text(toml)
    code, firing = check()
    (rmse,) = [a for a in firing["alerts"] if a["rule"] == "rmse"]
    assert code == 1 and rmse["state"] == "firing" and rmse["alert"] == "MlopsRmseHigh"
    assert rmse["summary"].startswith(f"live rmse {want['rmse']:.3f}")
    fired = json.loads(run_cli("retrain", "--if", "rmse", "--rollout", "direct", "--json", cwd=housing).stdout)
    trigger = fired["steps"][0]["outputs"]
    assert trigger["fired"] and trigger["labelled"] == 60 and trigger["metrics"]["rmse"] == pytest.approx(want["rmse"])
    assert fired["status"] != "skipped"


@pytest.mark.slow
def test_the_status_page_shows_the_live_metrics_of_the_task(two_models_store: Path, start_server: Any) -> None:
    """The page (in headless Chromium) shows a regression model's live RMSE, MAE, R² and bias, not accuracy."""
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the [dev] extra")
    from tests.conftest import WINE_RED

    server = start_server(["--store", str(two_models_store), "serve", "-m", "wine-alcohol@prod"])
    frame = pd.read_csv(WINE_RED, sep=";").head(30)
    truth = frame.pop("alcohol").tolist()
    answer = httpx.post(server.url + "/predict", json={"instances": frame.to_dict(orient="records")}).json()
    labels = [{"request_id": answer["request_id"], "row": i, "label": y} for i, y in enumerate(truth)]
    assert httpx.post(server.url + "/feedback", json=labels).json()["accepted"] == 30
    want = compute("regression", truth, answer["predictions"])
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/dashboard")
        page.wait_for_selector('[data-metric="rmse"]', timeout=20_000)
        shown = {m: page.inner_text(f'[data-metric="{m}"] .v') for m in ("rmse", "mae", "r2", "bias")}
        label = page.inner_text('[data-metric="rmse"] .l')
        accuracy = page.query_selector('[data-metric="accuracy"]')
        browser.close()
    assert errors == [] and accuracy is None and label.lower() == "live rmse (30 labels)"  # CSS upper-cases it
    assert {m: float(v) for m, v in shown.items()} == {m: pytest.approx(want[m], abs=5e-4) for m in shown}
