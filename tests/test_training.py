"""Training on the real datasets: pipelines per task, metrics, tuning, lineage, and model behaviour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlopsctl.config import load_config
from mlopsctl.errors import DataError, ValidationError
from mlopsctl.store import open_store
from mlopsctl.training.train import get_run, list_runs, train_project
from tests.conftest import HOUSING, SENTIMENT, WINE_RED, write_project

pytestmark = pytest.mark.shared_data


def _project(tmp_path: Path, toml: str) -> tuple[Any, Any]:
    (tmp_path / "mlops.toml").write_text(toml)
    cfg = load_config(tmp_path)
    return cfg, open_store(cfg.store_uri())


def test_wine_forest_reaches_a_sane_accuracy_and_records_lineage(wine_registry: dict[str, Any]) -> None:
    run = wine_registry["run1"]
    m = run["metrics"]["holdout"]
    assert m["accuracy"] > 0.6  # 6 quality classes; a majority-class guess gets ~0.43
    assert 0.25 < m["f1_macro"] < 1 and m["roc_auc"] > 0.75 and m["log_loss"] < 1.2
    assert set(run["metrics"]["cv"]) >= {"accuracy", "f1_macro", "folds"}
    assert len(run["data"]["sha256"]) == 64 and run["data"]["n_rows"] == 1599
    assert run["data"]["n_holdout"] == 320
    assert run["packages"]["scikit-learn"] and run["timings"]["fit_s"] > 0
    assert run["params"]["n_estimators"] == 100
    sig = run["signature"]
    assert [f["name"] for f in sig["inputs"]][:2] == ["fixed acidity", "volatile acidity"]
    assert sig["classes"] == [3, 4, 5, 6, 7, 8]


def test_runs_are_listed_newest_first(wine_registry: dict[str, Any]) -> None:
    store = open_store(str(wine_registry["store_dir"]))
    runs = list_runs(store)
    assert [r["run_id"] for r in runs] == [wine_registry["run2"]["run_id"], wine_registry["run1"]["run_id"]]
    assert get_run(store, wine_registry["run1"]["run_id"][:18])["model"] == "random_forest"


def test_same_data_same_seed_same_metrics(tmp_path: Path, wine_registry: dict[str, Any]) -> None:
    cfg, store = _project(tmp_path, (write_project(tmp_path) / "mlops.toml").read_text())
    run = train_project(cfg, store)
    assert run["data"]["sha256"] == wine_registry["run1"]["data"]["sha256"]
    assert run["metrics"]["holdout"] == wine_registry["run1"]["metrics"]["holdout"]


def test_sentiment_model_ranks_praise_above_complaint(tmp_path: Path) -> None:
    from mlopsctl.training.runs import run_model

    cfg, store = _project(
        tmp_path,
        f"""
[project]
name = "sentiment"
[data]
path = "{SENTIMENT / "amazon_cells_labelled.txt"}"
target = "label"
columns = ["text", "label"]
header = false
[training]
task = "text-classification"
model = "logistic_regression"
cv_folds = 3
""",
    )
    run = train_project(cfg, store)
    assert run["signature"]["inputs"][0]["kind"] == "text"
    assert run["metrics"]["holdout"]["accuracy"] > 0.75
    import pandas as pd

    model = run_model(store, run)
    p = model.predict_proba(pd.DataFrame({"text": ["great, loved it", "terrible, broke in a day"]}))[:, 1]
    assert p[0] > 0.5 > p[1]


def test_housing_regression_with_a_categorical_column(tmp_path: Path) -> None:
    cfg, store = _project(
        tmp_path,
        f"""
[project]
name = "housing"
[data]
path = "{HOUSING}"
target = "median_house_value"
[training]
task = "regression"
model = "hist_gradient_boosting"
params = {{ max_iter = 100 }}
cv_folds = 2
""",
    )
    run = train_project(cfg, store)
    kinds = {f["name"]: f["kind"] for f in run["signature"]["inputs"]}
    assert kinds["ocean_proximity"] == "categorical"
    assert next(f for f in run["signature"]["inputs"] if f["name"] == "total_bedrooms")["nullable"]
    m = run["metrics"]["holdout"]
    assert m["r2"] > 0.75 and 20_000 < m["rmse"] < 60_000 and m["mae"] < m["rmse"]
    assert run["metrics"]["cv"]["rmse"]["mean"] > 0


def test_tuning_respects_its_trial_budget(tmp_path: Path) -> None:
    toml = (write_project(tmp_path, model="logistic_regression", params="{}") / "mlops.toml").read_text()
    cfg, store = _project(
        tmp_path,
        toml + "\n[training.tune]\ntrials = 3\ntimeout_seconds = 60\n" if "[training.tune]" not in toml else toml,
    )
    run = train_project(cfg, store, tune=True)
    t = run["tuning"]
    assert len(t["trials"]) == 3 and t["stopped_by"] == "trials"
    assert run["params"]["C"] == t["best_params"]["C"]
    assert t["best_score"] == max(x["score"] for x in t["trials"])


def test_tuning_stops_on_its_time_budget(tmp_path: Path) -> None:
    # one trial of the 7-value C grid takes ~0.1 s, ten times the budget (a forest's trial sets up to 300 trees)
    toml = (write_project(tmp_path, model="logistic_regression", params="{}") / "mlops.toml").read_text()
    cfg, store = _project(tmp_path, toml + "\n[training.tune]\ntrials = 50\ntimeout_seconds = 0.01\n")
    run = train_project(cfg, store, tune=True)
    assert len(run["tuning"]["trials"]) == 1 and run["tuning"]["stopped_by"] == "time"


def test_missing_target_names_the_column(tmp_path: Path) -> None:
    toml = (write_project(tmp_path) / "mlops.toml").read_text().replace('target = "quality"', 'target = "qualty"')
    cfg, store = _project(tmp_path, toml)
    with pytest.raises(DataError) as exc:
        train_project(cfg, store)
    assert exc.value.column == "qualty" and "fixed acidity" in str(exc.value)


def test_bad_model_params_are_reported(tmp_path: Path) -> None:
    toml = (write_project(tmp_path, params="{ n_trees = 5 }") / "mlops.toml").read_text()
    cfg, store = _project(tmp_path, toml)
    with pytest.raises(ValidationError, match="n_trees"):
        train_project(cfg, store)


def test_wine_file_is_the_one_expected() -> None:
    assert WINE_RED.read_text().startswith('"fixed acidity";')


def test_metrics_of_a_model_meeting_a_class_it_never_saw() -> None:
    """A red-wine model scored on white wine meets quality 9: accuracy and F1 count it wrong, log loss
    and ROC AUC are undefined (None), nothing raises."""
    import numpy as np

    from mlopsctl.bundle.scoring import classification_metrics

    classes = [5, 6, 7]
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8]])
    m = classification_metrics([5, 6, 7, 9], [5, 6, 7, 7], proba, classes)
    assert m["accuracy"] == 0.75 and m["log_loss"] is None and m["roc_auc"] is None
    assert classification_metrics([5, 6, 7], [5, 6, 7], proba[:3], classes)["log_loss"] is not None
