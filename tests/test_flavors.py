"""Bring your own model: XGBoost, LightGBM and a pipeline that does not convert, each trained by the real
library on the shared data, then published with the Python API, promoted, served by a real server, asked
through /predict and /invocations (checked against the library's own predictions), drift-checked on what
the server captured, and put in an A/B test against a second version."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import HOUSING, SHARED, WINE_RED, needs_shared, run_cli

pytestmark = [needs_shared, pytest.mark.shared_data, pytest.mark.slow]
ADULT = SHARED / "adult" / "adult.csv"
xgboost = pytest.importorskip("xgboost", reason="the [dev] extra installs xgboost-cpu")
lightgbm = pytest.importorskip("lightgbm", reason="the [dev] extra installs lightgbm")


def _project(folder: Path, name: str, target: str, task: str, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mlops.toml").write_text(
        textwrap.dedent(
            f"""\
            [project]
            name = "{name}"
            [data]
            path = "unused.csv"
            target = "{target}"
            [training]
            task = "{task}"
            model = "{"ridge" if task == "regression" else "logistic_regression"}"
            [store]
            uri = "{folder / "store"}"
            [monitoring.capture]
            flush_interval_seconds = 0.5
            """
        )
        + extra
    )
    return folder


def _adult() -> tuple[pd.DataFrame, pd.Series]:
    df = pd.read_csv(ADULT, skipinitialspace=True, na_values="?")
    y = (df.pop("Salary") == ">50K").astype(int)
    return df, y


def _lightgbm_adult(n_estimators: int) -> Any:
    from lightgbm import LGBMClassifier
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    X, _ = _adult()
    cats = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    nums = [c for c in X.columns if c not in cats]
    pre = ColumnTransformer([("num", "passthrough", nums), ("cat", OneHotEncoder(handle_unknown="ignore"), cats)])
    return Pipeline([("pre", pre), ("model", LGBMClassifier(n_estimators=n_estimators, verbose=-1, n_jobs=1))])


def _xgboost_housing(n_estimators: int) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder
    from xgboost import XGBRegressor

    X = pd.read_csv(HOUSING).drop(columns=["median_house_value"])
    nums = [c for c in X.columns if c != "ocean_proximity"]
    pre = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median"), nums),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["ocean_proximity"]),
        ]
    )
    return Pipeline([("pre", pre), ("model", XGBRegressor(n_estimators=n_estimators, max_depth=6, n_jobs=1))])


FEATURES_PY = '''
import numpy as np


def add_ratio(X):
    """The team's own feature: free over total sulfur dioxide, added as a column."""
    X = np.asarray(X, dtype=float)
    return np.column_stack([X, X[:, 5] / np.maximum(X[:, 6], 1.0)])
'''


def _custom_wine(folder: Path, c: float) -> Any:
    import importlib
    import sys

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    (folder / "features.py").write_text(FEATURES_PY)
    sys.path.insert(0, str(folder))
    features = importlib.import_module("features")
    return Pipeline(
        [
            ("ratio", FunctionTransformer(features.add_ratio)),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(C=c, max_iter=2000)),
        ]
    )


def _case(kind: str, folder: Path) -> dict[str, Any]:
    """(project, data, two fitted models, the rows to ask about) of one flavour."""
    from sklearn.model_selection import train_test_split

    if kind == "lightgbm":
        X, y = _adult()
        X_train, X_test, y_train, y_test = train_test_split(X, y, train_size=8000, test_size=3000, random_state=0)
        models = [_lightgbm_adult(60).fit(X_train, y_train), _lightgbm_adult(120).fit(X_train, y_train)]
        project = _project(folder, "adult", "income", "classification")
    elif kind == "xgboost":
        X = pd.read_csv(HOUSING)
        y = X.pop("median_house_value")
        X_train, X_test, y_train, y_test = train_test_split(X, y, train_size=6000, test_size=2000, random_state=0)
        models = [_xgboost_housing(60).fit(X_train, y_train), _xgboost_housing(120).fit(X_train, y_train)]
        project = _project(folder, "housing", "median_house_value", "regression")
    else:
        X = pd.read_csv(WINE_RED, sep=";")
        y = X.pop("quality")
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
        project = _project(
            folder, "wine-custom", "quality", "classification", '[registry]\ntrusted_types = ["features.add_ratio"]\n'
        )
        models = [_custom_wine(project, 1.0).fit(X_train, y_train), _custom_wine(project, 0.1).fit(X_train, y_train)]
    return {"project": project, "X": X_test, "y": y_test, "models": models}


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost", "custom"])
def test_a_teams_own_model_goes_through_the_whole_loop(kind: str, tmp_path: Path, start_server: Any) -> None:
    import mlopsctl

    case = _case(kind, tmp_path / kind)
    project, X, y, (first, second) = case["project"], case["X"], case["y"], case["models"]
    regression = kind == "xgboost"

    # publish with the Python API: the holdout gives signature, baseline and metrics
    v1 = mlopsctl.publish(first, X=X, y=y, project=project)
    assert v1.number == 1 and v1.manifest["flavor"] == {"lightgbm": "lightgbm", "xgboost": "xgboost"}.get(
        kind, "sklearn"
    )
    assert v1.runtime == ("sklearn" if kind == "custom" else "onnx"), v1.manifest["export"]
    assert v1.metrics[("rmse" if regression else "accuracy")] is not None
    assert v1.signature.names == list(X.columns) and v1.data_sha256
    if kind == "custom":
        assert not v1.manifest["export"]["ok"] and "FunctionTransformer" in v1.manifest["export"]["reason"]
    shown = json.loads(run_cli("models", "show", f"{v1.name}@1", "--json", cwd=project).stdout)
    assert shown["runtime"] == v1.runtime and shown["family"] in (
        "LGBMClassifier",
        "XGBRegressor",
        "LogisticRegression",
    )

    moved = json.loads(run_cli("promote", v1.name, "1", "--alias", "prod", "--json", cwd=project).stdout)
    assert moved["to"] == 1

    # the same predictions locally, through the server's own validation and runner
    local = mlopsctl.load(f"{v1.name}@prod", project=project)
    rows = X.iloc[:40]
    if regression:
        np.testing.assert_allclose(local.predict(rows), first.predict(rows), rtol=1e-5)
    else:
        np.testing.assert_allclose(local.predict_proba(rows), first.predict_proba(rows), atol=1e-5)

    server = start_server(["serve", "--reload-interval", "0.5"], cwd=project)
    records = json.loads(rows.to_json(orient="records"))  # missing values as null, as a client sends them
    answer = httpx.post(server.url + "/predict", json={"instances": records}, timeout=30).json()
    assert answer["model_version"] == 1
    if regression:
        np.testing.assert_allclose(answer["predictions"], first.predict(rows), rtol=1e-5)
    else:
        served = np.array([[p[str(c)] for c in first.classes_] for p in answer["probabilities"]])
        np.testing.assert_allclose(served, first.predict_proba(rows), atol=1e-5)
        assert answer["predictions"] == first.predict(rows).tolist()
    split = json.loads(rows.to_json(orient="split", index=False))
    mlflow = httpx.post(server.url + "/invocations", json={"dataframe_split": split}, timeout=30)
    assert mlflow.status_code == 200, mlflow.text
    if regression:
        np.testing.assert_allclose(mlflow.json()["predictions"], first.predict(rows), rtol=1e-5)
    else:
        assert mlflow.json()["predictions"] == first.predict(rows).tolist()
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    assert f'runtime="{v1.runtime}"' in metrics

    # drift on what the server captured (200 rows of the holdout itself: nothing drifts much)
    more = json.loads(X.iloc[:200].to_json(orient="records"))
    assert httpx.post(server.url + "/predict", json={"instances": more}, timeout=30).status_code == 200

    # an A/B test: a second version, half the users each
    v2 = mlopsctl.publish(second, X=X, y=y, project=project)
    assert v2.number == 2
    run_cli("ab", "start", v1.name, "--candidate", "2", "--split", "50/50", "--sticky", "X-User-Id", cwd=project)
    seen: Counter[int] = Counter()
    deadline = 40
    for i in range(deadline * 10):
        r = httpx.post(
            server.url + "/predict", json={"features": records[i % 40]}, headers={"X-User-Id": f"u{i}"}, timeout=30
        )
        assert r.status_code == 200, r.text
        seen[r.json()["model_version"]] += 1
        if len(seen) == 2 and min(seen.values()) >= 5:
            break
    assert set(seen) == {1, 2}, seen
    report = json.loads(run_cli("ab", "report", v1.name, "--json", cwd=project).stdout)
    assert report["verdict"] and {v["name"] for v in report["variants"]} >= {"control", "candidate"}
    run_cli("ab", "stop", v1.name, cwd=project)

    server.stop()  # capture is written out on shutdown
    drift = run_cli("drift", v1.name, "--since", "1h", "--json", cwd=project, check=False)
    assert drift.returncode in (0, 1), drift.stderr
    out = json.loads(drift.stdout)
    assert out["n_features"] == len(X.columns) and out["current_rows"] >= 240


def test_publish_a_model_file_from_the_command_line(tmp_path: Path) -> None:
    """`publish --model FILE --data ROWS`: a skops file through the allowlist; a joblib file only with
    --unsafe-pickle (stored as skops); each failure one line naming the file or the flag."""
    import joblib
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    project = _project(tmp_path / "p", "wine", "quality", "classification")
    frame = pd.read_csv(WINE_RED, sep=";")
    X, y = frame.drop(columns=["quality"]), frame["quality"]
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X.iloc[:1000], y.iloc[:1000])
    holdout = tmp_path / "holdout.csv"
    frame.iloc[1000:].to_csv(holdout, index=False)
    sio.dump(model, tmp_path / "model.skops")
    joblib.dump(model, tmp_path / "model.joblib")

    out = json.loads(
        run_cli(
            "publish", "--model", str(tmp_path / "model.skops"), "--data", str(holdout), "--json", cwd=project
        ).stdout
    )
    assert out["version"] == 1 and out["runtime"] == "onnx" and out["flavor"] == "sklearn"
    assert out["metrics"]["accuracy"] == pytest.approx(
        float((model.predict(X.iloc[1000:]) == y.iloc[1000:]).mean()), abs=1e-6
    )

    refused = run_cli(
        "publish", "--model", str(tmp_path / "model.joblib"), "--data", str(holdout), cwd=project, check=False
    )
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "model.joblib" in refused.stderr and "--unsafe-pickle" in refused.stderr
    done = run_cli(
        "publish", "--model", str(tmp_path / "model.joblib"), "--data", str(holdout), "--unsafe-pickle", cwd=project
    )
    assert "published wine v2" in done.stdout
    stored = list((project / "store" / "models" / "wine" / "versions" / "2").iterdir())
    assert {p.name for p in stored} >= {"model.skops", "model.onnx", "manifest.json"}
    assert not any(p.suffix in (".joblib", ".pkl") for p in stored)

    no_rows = run_cli("publish", "--model", str(tmp_path / "model.skops"), cwd=project, check=False)
    assert no_rows.returncode == 1 and "--model needs --data ROWS" in no_rows.stderr
    wrong = tmp_path / "wrong.csv"
    frame.drop(columns=["alcohol"]).iloc[1000:].to_csv(wrong, index=False)
    lacking = run_cli(
        "publish", "--model", str(tmp_path / "model.skops"), "--data", str(wrong), cwd=project, check=False
    )
    assert lacking.returncode == 1 and "column 'alcohol'" in lacking.stderr and "lacks" in lacking.stderr
