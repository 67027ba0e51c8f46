"""Unseen rows from the training file are not drift: train on a random 70 % of a file with mlopsctl,
publish, and run `mlopsctl drift --current` on the other 30 %: no dataset drift and no prediction drift.

Before the reference was every training row and the prediction reference the model's holdout
predictions, the in-sample predictions made such rows show prediction drift (red wine: chi² 51.2,
p = 8e-10, in 10 of 10 random splits).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import HOUSING, SHARED, WINE_RED, run_cli, train_and_publish, write_project

ADULT = SHARED / "adult" / "adult.csv"

CASES = {
    # name: (file reader, target, task, model)
    "wine": (lambda: pd.read_csv(WINE_RED, sep=";"), "quality", "classification", "random_forest"),
    "housing": (lambda: pd.read_csv(HOUSING), "median_house_value", "regression", "ridge"),
    "adult": (
        lambda: pd.read_csv(ADULT, skipinitialspace=True, na_values="?"),
        "Salary",
        "classification",
        "logistic_regression",
    ),
}


def _project(folder: Path, name: str, data: Path, target: str, task: str, model: str) -> Path:
    params = "{ n_estimators = 30 }" if model == "random_forest" else "{}"
    write_project(folder, name=name, data=data, model=model, params=params, store=folder / "store")
    toml = (folder / "mlops.toml").read_text()
    toml = toml.replace('target = "quality"', f'target = "{target}"').replace('"classification"', f'"{task}"')
    (folder / "mlops.toml").write_text(toml)
    return folder


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_the_held_back_30_percent_shows_no_drift(tmp_path: Path, name: str) -> None:
    read, target, task, model = CASES[name]
    frame = read()
    order = np.random.default_rng(30).permutation(len(frame))
    cut = int(0.7 * len(frame))
    train, unseen = tmp_path / "train.csv", tmp_path / "unseen.csv"
    frame.iloc[order[:cut]].to_csv(train, index=False)
    frame.iloc[order[cut:]].to_csv(unseen, index=False)
    folder = _project(tmp_path / "project", name, train, target, task, model)
    _, _, _, version = train_and_publish(folder)

    proc = run_cli(
        "--store",
        str(folder / "store"),
        "drift",
        name,
        "--version",
        str(version),
        "--current",
        str(unseen),
        "--json",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["dataset_drift"] is False and doc["n_drifted"] == 0, doc["drifted_features"]
    prediction = doc["prediction"]
    assert prediction is not None and prediction["details"]["reference"] == "holdout"
    assert prediction["drifted"] is False, prediction["tests"]
    assert doc["reference_rows"] == cut  # every training row, not a sample
