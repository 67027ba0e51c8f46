"""The live metrics of each task: scikit-learn's definitions (``compute``), and the server's running counts
(``Tally``) agreeing with them however labels come and go."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
)

from mlopsctl.monitoring.taskmetrics import Tally, breaches, compute, metrics_of


def test_classification_matches_scikit_learn_and_has_every_class() -> None:
    rng = np.random.default_rng(0)
    t = rng.choice([3, 4, 5, 6], 300).tolist()
    p = [v if rng.random() < 0.7 else int(rng.choice([3, 4, 5, 6, 7])) for v in t]  # 7: predicted, never a label
    got = compute("classification", t, p)
    ts, ps = [str(v) for v in t], [str(v) for v in p]
    assert got["accuracy"] == pytest.approx(accuracy_score(ts, ps))
    assert got["f1_macro"] == pytest.approx(f1_score(ts, ps, average="macro", zero_division=0))
    assert got["precision_macro"] == pytest.approx(precision_score(ts, ps, average="macro", zero_division=0))
    assert got["recall_macro"] == pytest.approx(recall_score(ts, ps, average="macro", zero_division=0))
    assert set(got["per_class"]) == {"3", "4", "5", "6", "7"} and got["per_class"]["7"]["recall"] == 0.0
    per = precision_score(ts, ps, labels=["5"], average=None, zero_division=0)[0]
    assert got["per_class"]["5"]["precision"] == pytest.approx(per)
    assert "log_loss" not in got  # no probabilities given


def test_log_loss_where_probabilities_exist() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    got = compute("text-classification", ["neg", "pos", "pos"], ["neg", "pos", "neg"], proba, ["neg", "pos"])
    assert got["log_loss"] == pytest.approx(log_loss(["neg", "pos", "pos"], proba, labels=["neg", "pos"]))
    unseen = compute("classification", ["neg", "odd"], ["neg", "pos"], proba[:2], ["neg", "pos"])
    assert "log_loss" not in unseen  # a label the model has no probability for


def test_regression_matches_scikit_learn_and_bias_is_signed() -> None:
    t = [1.0, 2.0, 3.0, 4.0]
    p = [1.5, 2.5, 3.5, 3.0]  # over by 0.5 three times, under by 1 once
    got = compute("regression", t, p)
    assert got["rmse"] == pytest.approx(math.sqrt(mean_squared_error(t, p)))
    assert got["mae"] == pytest.approx(mean_absolute_error(t, p))
    assert got["r2"] == pytest.approx(r2_score(t, p))
    assert got["bias"] == pytest.approx(0.125)
    assert compute("regression", [2.0, 2.0], [1.0, 3.0])["r2"] is None  # labels that do not vary: no R²
    assert compute("regression", [], []) == {}
    assert metrics_of("regression") == ("rmse", "mae", "r2", "bias") and "accuracy" in metrics_of("classification")


@pytest.mark.parametrize(
    ("metric", "value", "bound", "fires"),
    [
        ("accuracy", 0.5, 0.6, True),
        ("accuracy", 0.7, 0.6, False),
        ("rmse", 0.9, 0.8, True),
        ("r2", 0.2, 0.5, True),
        ("bias", -0.3, 0.2, True),
        ("bias", 0.1, 0.2, False),
    ],
    ids=["floor-below", "floor-above", "ceiling-above", "r2-floor", "bias-negative", "bias-within"],
)
def test_breaches_by_the_side_of_the_bound(metric: str, value: float, bound: float, fires: bool) -> None:
    assert breaches(metric, value, bound) is fires


def _close(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert set(a) == set(b)
    for k, v in a.items():
        if k == "per_class":
            assert set(v) == set(b[k])
            for c, d in v.items():
                assert d["precision"] == pytest.approx(b[k][c]["precision"], abs=1e-9)
                assert d["recall"] == pytest.approx(b[k][c]["recall"], abs=1e-9)
                assert d["support"] == b[k][c]["support"]
        elif v is None or b[k] is None:
            assert v is None and b[k] is None, k
        else:
            assert v == pytest.approx(b[k], rel=1e-6, abs=1e-6), k


CLASSES = st.sampled_from(["a", "b", "c", "d"])
PAIRS = st.lists(st.tuples(CLASSES, CLASSES), min_size=1, max_size=60)
VALUES = st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: round(v, 3))


@settings(max_examples=150, deadline=None)
@given(pairs=PAIRS, drop=st.integers(0, 59))
def test_a_tally_is_the_metrics_of_what_it_holds_classification(pairs: list[tuple[str, str]], drop: int) -> None:
    """A window that slid (the oldest ``drop`` labels taken away) reads as if computed afresh."""
    tally = Tally("classification")
    for t, p in pairs:
        tally.add(t, p)
    drop = min(drop, len(pairs) - 1)
    for t, p in pairs[:drop]:
        tally.remove(t, p)
    kept = pairs[drop:]
    _close(tally.metrics(), compute("classification", [t for t, _ in kept], [p for _, p in kept]))


@settings(max_examples=150, deadline=None)
@given(pairs=st.lists(st.tuples(VALUES, VALUES), min_size=1, max_size=60), drop=st.integers(0, 59))
def test_a_tally_is_the_metrics_of_what_it_holds_regression(pairs: list[tuple[float, float]], drop: int) -> None:
    tally = Tally("regression")
    for t, p in pairs:
        tally.add(t, p)
    drop = min(drop, len(pairs) - 1)
    for t, p in pairs[:drop]:
        tally.remove(t, p)
    kept = pairs[drop:]
    want = compute("regression", [t for t, _ in kept], [p for _, p in kept])
    got = tally.metrics()
    if want["r2"] is None or got["r2"] is None:  # labels that (nearly) do not vary: R² is no figure to compare
        want["r2"] = got["r2"] = None
    else:
        assert got["r2"] == pytest.approx(want["r2"], rel=1e-6, abs=1e-6)
    _close(got, want)


def test_an_emptied_tally_has_no_metrics() -> None:
    tally = Tally("regression")
    tally.add(1.0, 2.0)
    tally.remove(1.0, 2.0)
    assert tally.metrics() == {} and tally.n == 0
