"""Your own training code: `[training] entrypoint = "train.py:build"` goes through `mlopsctl train` with the
snapshot, split, CV, metrics, lineage and tuning mlopsctl owns, then publishes like any run."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.conftest import run_cli

lightgbm = pytest.importorskip("lightgbm", reason="the [dev] extra installs lightgbm")

TRAIN_PY = """
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.impute import SimpleImputer

from helpers import NUMERIC  # the file imports its neighbours, as in the team's repository

CALLS = []


def build(params):
    CALLS.append(dict(params))
    pre = ColumnTransformer([("num", SimpleImputer(strategy="median"), NUMERIC)])
    model = LGBMClassifier(verbose=-1, n_jobs=1, **params)
    return Pipeline([("pre", pre), ("model", model)])


def fitted():
    import pandas as pd

    frame = pd.read_csv("cancer.csv")
    return build({"n_estimators": 20}).fit(frame[NUMERIC], frame["target"])


def not_a_model():
    return {"n_estimators": 3}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.iloc[:, [0, 1, 2, 3, 4, 5, 6, 7, -1]]
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame.to_csv(tmp_path / "cancer.csv", index=False)
    (tmp_path / "helpers.py").write_text(f"NUMERIC = {list(frame.columns[:-1])!r}\n")
    (tmp_path / "train.py").write_text(TRAIN_PY)
    (tmp_path / "mlops.toml").write_text(
        textwrap.dedent(
            """\
            [project]
            name = "cancer"
            [data]
            path = "cancer.csv"
            target = "target"
            [training]
            entrypoint = "train.py:build"
            params = { n_estimators = 40, learning_rate = 0.1 }
            cv_folds = 3
            threads = 1
            [training.tune]
            trials = 3
            space = { n_estimators = [10, 30, 60], num_leaves = [7, 15] }
            """
        )
    )
    return tmp_path


def _train(project: Path, *args: str) -> dict[str, object]:
    return json.loads(run_cli("train", *args, "--json", cwd=project).stdout)  # type: ignore[no-any-return]


def test_the_entrypoint_trains_with_mlopsctls_split_cv_and_lineage(project: Path) -> None:
    import hashlib

    run = _train(project)
    assert run["model"] == "entrypoint train.py:build" and run["flavor"] == "lightgbm"
    assert run["entrypoint"] == {
        "entrypoint": "train.py:build",
        "file": str((project / "train.py").resolve()),
        "sha256": hashlib.sha256((project / "train.py").read_bytes()).hexdigest(),
    }
    assert run["fitted_by"] == "mlopsctl" and run["params"] == {"n_estimators": 40, "learning_rate": 0.1}
    metrics = run["metrics"]  # type: ignore[index]
    assert metrics["cv"]["folds"] == 3 and metrics["holdout"]["accuracy"] > 0.85  # type: ignore[index]
    assert len(run["data"]["sha256"]) == 64 and run["threads"] == 1  # type: ignore[index]
    assert "lightgbm" in run["packages"]  # type: ignore[operator]

    pub = json.loads(run_cli("publish", "--json", cwd=project).stdout)
    assert pub["version"] == 1 and pub["runtime"] == "onnx" and pub["flavor"] == "lightgbm"
    assert pub["family"] == "entrypoint train.py:build"


def test_tune_passes_each_trials_params_to_the_entrypoint(project: Path) -> None:
    run = _train(project, "--tune")
    tuning = run["tuning"]
    assert len(tuning["trials"]) == 3  # type: ignore[index]
    for trial in tuning["trials"]:  # type: ignore[index]
        assert set(trial["params"]) == {"n_estimators", "num_leaves"}
    best = tuning["best_params"]  # type: ignore[index]
    assert best["learning_rate"] == 0.1 and run["params"] == best  # the base params stay, a trial's are added

    toml = (project / "mlops.toml").read_text()
    (project / "mlops.toml").write_text(
        toml.replace("space = { n_estimators = [10, 30, 60], num_leaves = [7, 15] }", "")
    )
    out = run_cli("train", "--tune", cwd=project, check=False)
    assert out.returncode == 1 and "--tune needs a search space for your entrypoint" in out.stderr


def test_a_fitted_estimator_is_used_as_it_is(project: Path) -> None:
    toml = (project / "mlops.toml").read_text().replace("train.py:build", "train.py:fitted")
    (project / "mlops.toml").write_text(toml.replace("params = { n_estimators = 40, learning_rate = 0.1 }", ""))
    run = _train(project)
    assert run["fitted_by"] == "entrypoint" and run["metrics"]["cv"] == {}  # type: ignore[index]


@pytest.mark.parametrize(
    ("entrypoint", "says"),
    [
        ("nowhere.py:build", "nowhere.py not found"),
        ("train.py:missing", "has no function 'missing'"),
        ("train.py:not_a_model", "returned a dict, which has no fit()"),
        ("train.py build", "expected FILE.py:FUNCTION"),
    ],
)
def test_a_bad_entrypoint_is_one_line(project: Path, entrypoint: str, says: str) -> None:
    toml = (project / "mlops.toml").read_text().replace("train.py:build", entrypoint)
    (project / "mlops.toml").write_text(toml.replace("params = { n_estimators = 40, learning_rate = 0.1 }", ""))
    out = run_cli("train", cwd=project, check=False)
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert says in out.stderr and "Traceback" not in out.stderr
