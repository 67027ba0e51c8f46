"""Drift that means what it says: false drift on null splits and real shifts found, on the shared data.

A *null split*: a random 70 % of a file is the training data (its sketches are the reference, as a
published version's), and the current data is drawn from the other 30 %: without replacement when it
has enough rows, else with replacement (then the current data is, in effect, only as large as that 30 %
while the test takes it at its full size: the pessimistic case, which is what 1M rows from a 480-row pool
is). Seeded and bounded here; ``bench/stats_drift.py`` runs the same functions longer and
``bench/RESULTS.md`` has its figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlopsctl.monitoring.baseline import build_baseline
from mlopsctl.monitoring.drift import DriftReport, DriftSettings, Reference, detect
from tests.conftest import HOUSING, SHARED, WINE_RED, WINE_WHITE

ADULT = SHARED / "adult" / "adult.csv"
BANK = SHARED / "bank-marketing" / "bank-additional-full.csv"
DATASETS = ("wine", "housing", "adult", "bank")


@dataclass(frozen=True)
class Data:
    rows: pd.DataFrame  # the features (the target dropped)
    kinds: dict[str, str]


def _features(frame: pd.DataFrame, target: str) -> Data:
    X = frame.drop(columns=[target])
    kinds = {c: "numeric" if pd.api.types.is_numeric_dtype(X[c]) else "categorical" for c in X.columns}
    X = X.astype({c: float for c, k in kinds.items() if k == "numeric"})
    return Data(X.reset_index(drop=True), kinds)


def load(name: str) -> Data:
    """The features of a shared dataset: numeric columns as float, the others categorical."""
    if name == "wine":
        return _features(pd.read_csv(WINE_RED, sep=";"), "quality")
    if name == "white":
        return _features(pd.read_csv(WINE_WHITE, sep=";"), "quality")
    if name == "housing":
        return _features(pd.read_csv(HOUSING), "median_house_value")
    if name == "adult":
        return _features(pd.read_csv(ADULT, skipinitialspace=True, na_values="?"), "Salary")
    if name == "bank":  # duration is known only after the call: not a feature
        return _features(pd.read_csv(BANK, sep=";").drop(columns=["duration"]), "y")
    raise ValueError(name)


def reference(data: Data, rows: Any) -> Reference:
    """The reference a version trained on ``rows`` of ``data`` carries (its baseline's sketches)."""
    features = [{"name": c, "kind": k} for c, k in data.kinds.items()]
    X = data.rows.iloc[rows]
    return Reference(features, None, "regression", build_baseline(X, features, np.zeros(len(X)), "regression"), "m", 1)


def draw(rng: np.random.Generator, pool: Any, n: int) -> Any:
    return rng.choice(pool, n, replace=False) if n <= len(pool) else pool[rng.integers(0, len(pool), n)]


@dataclass(frozen=True)
class NullRate:
    runs: int
    dataset_drift: float  # share of reports with dataset drift
    any_drift: float  # share of reports with at least one drifted feature


def null_rate(
    data: Data, n: int, splits: int, draws: int, seed: int, settings: DriftSettings | None = None
) -> NullRate:
    """``splits`` random 70/30 splits, ``draws`` current samples of ``n`` rows from each 30 %."""
    rng = np.random.default_rng(seed)
    reports: list[DriftReport] = []
    for _ in range(splits):
        order = rng.permutation(len(data.rows))
        cut = int(0.7 * len(order))
        ref = reference(data, order[:cut])
        for _ in range(draws):
            reports.append(detect(ref, data.rows.iloc[draw(rng, order[cut:], n)], settings))
    k = len(reports)
    return NullRate(k, sum(r.dataset_drift for r in reports) / k, sum(r.n_drifted > 0 for r in reports) / k)


@pytest.fixture(scope="module")
def shared() -> dict[str, Data]:
    if not SHARED.is_dir():
        pytest.skip(f"the shared datasets are not at {SHARED}")
    return {name: load(name) for name in (*DATASETS, "white")}


@pytest.mark.shared_data
@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize(("n", "splits", "draws"), [(1000, 8, 8), (10_000, 6, 4)], ids=["1k", "10k"])
def test_null_splits_rarely_show_dataset_drift(
    shared: dict[str, Data], name: str, n: int, splits: int, draws: int
) -> None:
    rate = null_rate(shared[name], n, splits, draws, seed=len(name) * 1000 + n % 997)
    assert rate.dataset_drift <= 0.05, rate
    assert rate.any_drift <= 0.10, rate  # Holm over every check: P(any) ≤ 5 % in the long run


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize("name", DATASETS)
def test_null_splits_at_a_million_rows(shared: dict[str, Data], name: str) -> None:
    """1M current rows: every p-value is tiny for the smallest difference, the effect size is what holds."""
    rate = null_rate(shared[name], 1_000_000, 3, 1, seed=len(name))
    assert rate.dataset_drift <= 0.05, rate


def _shift(shared: dict[str, Data], case: str) -> tuple[Data, Any, pd.DataFrame]:
    if case == "red -> white":
        red = shared["wine"]
        return red, np.arange(len(red.rows)), shared["white"].rows
    if case == "rest -> INLAND":
        h = shared["housing"]
        inland = (h.rows.ocean_proximity == "INLAND").to_numpy()
        return h, np.flatnonzero(~inland), h.rows[inland]
    a = shared["adult"]
    male = (a.rows.sex == "Male").to_numpy()
    return a, np.flatnonzero(male), a.rows[~male]


@pytest.mark.shared_data
@pytest.mark.parametrize("case", ["red -> white", "rest -> INLAND", "adult male -> female"])
def test_real_shifts_are_found_at_300_rows(shared: dict[str, Data], case: str) -> None:
    data, ref_rows, shifted = _shift(shared, case)
    ref = reference(data, ref_rows)
    rng = np.random.default_rng(300)
    found = [detect(ref, shifted.iloc[rng.choice(len(shifted), 300, replace=False)]) for _ in range(20)]
    assert sum(r.dataset_drift for r in found) >= 19, [r.drifted_share for r in found]
