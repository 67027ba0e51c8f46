"""mlops.toml: what init writes loads; every wrong key, type or value names the key and the file."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from mlopsctl.config import load_config, parse_config, render_config
from mlopsctl.errors import ConfigError

BASE = {"project": {"name": "wine"}, "data": {"path": "wine.csv", "target": "quality"}}


def test_rendered_config_loads_with_defaults(tmp_path: Path) -> None:
    text = render_config(name="wine", data_path="data/wine.csv", target="quality", task="classification")
    (tmp_path / "mlops.toml").write_text(text)
    cfg = load_config(tmp_path)
    assert cfg.model_name == "wine"
    assert cfg.training.model == "random_forest" and cfg.training.primary_metric == "f1_macro"
    assert cfg.data_path() == tmp_path / "data" / "wine.csv"
    assert cfg.store_uri() == str(tmp_path / ".mlops")


def test_regression_defaults_to_rmse() -> None:
    cfg = parse_config({**BASE, "training": {"task": "regression", "model": "ridge"}})
    assert cfg.training.primary_metric == "rmse"


@pytest.mark.parametrize(
    ("section", "problem", "key", "words"),
    [
        ({"training": {"model": "forest"}}, None, "training.model", "'forest'"),
        ({"training": {"modle": "random_forest"}}, None, "training.modle", "unknown key"),
        ({"serving": {"port": "eighty"}}, None, "serving.port", "'eighty'"),
        ({"serving": {"port": 70000}}, None, "serving.port", "65535"),
        ({"training": {"task": "regression", "model": "logistic_regression"}}, None, "training", "ridge"),
        ({"training": {"primary_metric": "rmse"}}, None, "training", "f1_macro"),
        ({"training": {"test_size": 1.5}}, None, "training.test_size", "1.5"),
        ({"project": {"name": "has space"}}, None, "project.name", "has space"),
        ({"deploy": {"cpu": 0.25, "memory": 4}}, None, "deploy", "use 0.5, 1, 2 GB"),
        ({"deploy": {"cpu": 3}}, None, "deploy", "0.25, 0.5, 1, 2, 4, 8, 16"),
        ({"deploy": {"cpu": 8, "memory": 17}}, None, "deploy", "16–60 in steps of 4"),
        ({"deploy": {"min_replicas": 5, "max_replicas": 2}}, None, "deploy", "above max_replicas 2"),
        ({"deploy": {"log_retention_days": 10}}, None, "deploy", "14, 30"),
        ({"deploy": {"region": "mars"}}, None, "deploy.region", "'mars'"),
        ({"deploy": {"name": "Has_Caps"}}, None, "deploy.name", "Has_Caps"),
    ],
)
def test_bad_values_name_the_key(section: dict, problem: None, key: str, words: str) -> None:
    raw = {**BASE, **{k: {**BASE.get(k, {}), **v} for k, v in section.items()}}
    with pytest.raises(ConfigError) as exc:
        parse_config(raw, source="proj/mlops.toml")
    assert exc.value.key == key
    assert str(exc.value).startswith(f"proj/mlops.toml: {key}:")
    assert words in str(exc.value)


def test_missing_required_section() -> None:
    with pytest.raises(ConfigError, match="data: Field required"):
        parse_config({"project": {"name": "x"}})


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path)
    (tmp_path / "mlops.toml").write_text("[project\nname=")
    with pytest.raises(ConfigError, match="syntax"):
        load_config(tmp_path)


def test_store_override_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse_config(BASE, root=tmp_path)
    assert cfg.store_uri() == str(tmp_path / ".mlops")
    monkeypatch.setenv("MLOPS_STORE", "/elsewhere")
    assert cfg.store_uri() == "/elsewhere"
    assert cfg.store_uri("s3://bucket/p") == "s3://bucket/p"


def test_render_is_valid_toml_for_every_task() -> None:
    for task in ("classification", "regression", "text-classification"):
        raw = tomllib.loads(
            render_config(
                name="p",
                data_path="d.csv",
                target="y",
                task=task,
                text_columns=["text"] if task == "text-classification" else None,
            )
        )
        assert parse_config(raw).training.task == task


@pytest.mark.parametrize(
    ("project", "deploy_name", "service"),
    [
        ("wine", "", "wine"),
        ("Wine_Quality", "", "wine-quality"),
        ("1wine", "", "wine"),
        ("2024", "", "mlops-2024"),
        ("wine", "fraud-api", "fraud-api"),
        ("a" * 40, "", "a" * 28),
    ],
)
def test_service_name_is_an_aws_name(project: str, deploy_name: str, service: str) -> None:
    raw = {**BASE, "project": {"name": project}, "deploy": {"name": deploy_name}}
    assert parse_config(raw).service_name == service


BASE = {"project": {"name": "p"}, "data": {"path": "d.csv", "target": "y"}}


@pytest.mark.parametrize(
    ("task", "alerts", "key", "words"),
    [
        (
            "regression",
            {"accuracy_min": 0.6},
            "monitoring.alerts.accuracy_min",
            "accuracy is not a metric of regression",
        ),
        (
            "regression",
            {"min": {"f1_macro": 0.5}},
            "monitoring.alerts.min.f1_macro",
            "bound one of rmse, mae, r2, bias",
        ),
        ("text-classification", {"max": {"rmse": 1}}, "monitoring.alerts.max.rmse", "bound one of accuracy, f1_macro"),
        (
            "classification",
            {"min": {"rmse": 1}},
            "monitoring.alerts.min",
            "rmse is bounded by max (max = { rmse = ... })",
        ),
        ("classification", {"max": {"log_loss": 1}}, "monitoring.alerts.max", "log_loss is not measured live"),
        ("classification", {"min": {"auc": 0.7}}, "monitoring.alerts.min", "unknown metric 'auc': use one of accuracy"),
        ("classification", {"min": {"accuracy": 1.5}}, "monitoring.alerts.min", "accuracy: got 1.5, expected a share"),
        ("regression", {"max": {"mae": -1}}, "monitoring.alerts.max", "mae: got -1, expected 0 or more"),
        (
            "classification",
            {"accuracy_min": 0.6, "min": {"accuracy": 0.7}},
            "monitoring.alerts",
            "accuracy_min (deprecated) and min.accuracy both given",
        ),
    ],
    ids=[
        "accuracy-on-regression",
        "f1-on-regression",
        "rmse-on-text",
        "floor-on-rmse",
        "log-loss",
        "unknown",
        "share",
        "negative",
        "both-names",
    ],
)
def test_a_live_metric_bound_the_task_lacks_is_refused(task: str, alerts: dict, key: str, words: str) -> None:
    model = "ridge" if task == "regression" else "logistic_regression"
    raw = BASE | {"training": {"task": task, "model": model}, "monitoring": {"alerts": alerts}}
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert err.value.key == key and words in err.value.problem


def test_live_metric_bounds_and_the_deprecated_names() -> None:
    raw = BASE | {"training": {"task": "regression", "model": "ridge"}}
    raw["monitoring"] = {"alerts": {"max": {"rmse": 0.8, "bias": 0.2}, "min": {"r2": 0.5}, "accuracy_window": "2h"}}
    alerts = parse_config(raw).monitoring.alerts
    assert alerts.bounds() == [("r2", "min", 0.5), ("rmse", "max", 0.8), ("bias", "max", 0.2)]
    assert alerts.labels_window == 7200 and alerts.accuracy_window == 7200 and alerts.accuracy_min is None
    assert alerts.rules_on()[-3:] == ["r2", "rmse", "bias"]
    for task in ("classification", "regression", "text-classification"):
        text = render_config(name="p", data_path="d.csv", target="y", task=task)
        (line,) = [x for x in text.splitlines() if x.startswith(("# min = {", "# max = {"))]
        uncommented = text.replace(line, line[2:].split("#")[0])  # the example bound, turned on, is valid
        assert parse_config(tomllib.loads(uncommented)).monitoring.alerts.bounds()
