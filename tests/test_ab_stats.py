"""A/B statistics: known values, power and false positives by simulation, the analysis, the HTML page."""

from __future__ import annotations

import html
import json
import math
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from mlopsctl.experiments import stats
from mlopsctl.experiments.analysis import analyze
from mlopsctl.experiments.html import render_html

Z975, Z80 = 1.959963984540054, 0.8416212335729143  # standard normal quantiles: 0.975 (two-sided 5 %), 0.8 (power)


# -- known values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "n", "lo", "hi"),
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Stat Med 17:857, Table I, method 3
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_interval_matches_published_values(x: int, n: int, lo: float, hi: float) -> None:
    got = stats.wilson_interval(x, n, 0.05)
    assert got == pytest.approx((lo, hi), abs=6e-5)
    # and the formula written out: (p + z²/2n ± z·√(p(1−p)/n + z²/4n²)) / (1 + z²/n)
    p = x / n
    centre, half = p + Z975**2 / (2 * n), Z975 * math.sqrt(p * (1 - p) / n + Z975**2 / (4 * n * n))
    assert got == pytest.approx(((centre - half) / (1 + Z975**2 / n), (centre + half) / (1 + Z975**2 / n)), abs=1e-12)


def test_wilson_interval_without_rows_is_everything() -> None:
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)


def test_two_proportions_by_hand_and_newcombe_published() -> None:
    # Newcombe (1998), "Interval estimation for the difference between independent proportions", Stat Med 17:873:
    # example (a) 56/70 − 48/80, method 10 (hybrid score): 0.0524 to 0.3339; (h) 5/56 − 0/29: −0.0381 to 0.1926
    c = stats.two_proportions(48, 80, 56, 70, alpha=0.05)  # control 48/80, candidate 56/70
    pooled = (48 + 56) / (80 + 70)
    z = (56 / 70 - 48 / 80) / math.sqrt(pooled * (1 - pooled) * (1 / 80 + 1 / 70))
    assert z == pytest.approx(2.6502, abs=1e-4)
    assert c.statistic == pytest.approx(z, rel=1e-12)
    assert c.p_value == pytest.approx(2 * (1 - 0.5 * (1 + math.erf(z / math.sqrt(2)))), rel=1e-9)
    assert c.p_value == pytest.approx(0.008045, abs=1e-6)
    assert c.diff == pytest.approx(0.2)
    assert (c.ci_low, c.ci_high) == pytest.approx((0.0524, 0.3339), abs=6e-5)
    h = stats.two_proportions(0, 29, 5, 56)
    assert (h.ci_low, h.ci_high) == pytest.approx((-0.0381, 0.1926), abs=6e-5)
    assert c.to_dict()["test"] == "two-proportion z-test"


def test_two_proportions_degenerate() -> None:
    same = stats.two_proportions(10, 10, 20, 20)  # both all correct: no variance, no difference
    assert same.p_value == 1.0 and same.diff == 0.0
    empty = stats.two_proportions(0, 0, 5, 10)
    assert math.isnan(empty.p_value)
    assert empty.to_dict()["p_value"] is None and empty.to_dict()["diff"] is None


@given(
    n1=st.integers(1, 500),
    n2=st.integers(1, 500),
    s1=st.floats(0, 1),
    s2=st.floats(0, 1),
)
def test_two_proportions_swapping_the_variants_mirrors_the_result(n1: int, n2: int, s1: float, s2: float) -> None:
    x1, x2 = round(s1 * n1), round(s2 * n2)
    a, b = stats.two_proportions(x1, n1, x2, n2), stats.two_proportions(x2, n2, x1, n1)
    assert a.diff == pytest.approx(-b.diff, abs=1e-12)
    assert a.p_value == pytest.approx(b.p_value, abs=1e-12)
    assert (a.ci_low, a.ci_high) == pytest.approx((-b.ci_high, -b.ci_low), abs=1e-12)
    assert -1 <= a.ci_low <= a.diff <= a.ci_high <= 1


def test_welch_matches_scipy() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.exponential(1.0, 400), rng.exponential(0.9, 250)
    c = stats.welch(a, b, alpha=0.05)
    ref = sps.ttest_ind(b, a, equal_var=False)
    assert c.diff == pytest.approx(b.mean() - a.mean(), rel=1e-12)
    assert c.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert c.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    ci = ref.confidence_interval(0.95)
    assert (c.ci_low, c.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert math.isnan(stats.welch([1.0], [1.0, 2.0]).p_value)  # one value: no variance to test with


def test_sample_sizes_match_the_textbook_formula() -> None:
    def by_hand(p1: float, p2: float) -> int:
        return math.ceil((Z975 + Z80) ** 2 * (p1 * (1 - p1) + p2 * (1 - p2)) / (p2 - p1) ** 2)

    def fixed(p: float, effect: float) -> int:
        return stats.sample_size_proportions(p, effect, 0.05, 0.8, sequential=False)

    assert fixed(0.8, 0.02) == by_hand(0.8, 0.82) == 6036
    assert fixed(0.8, 0.05) == by_hand(0.8, 0.85) == 903
    assert fixed(0.5, 0.1) == 385  # the classic 50 % vs 60 %: 385 per group
    assert fixed(0.99, 0.02) == by_hand(0.99, 0.97)  # p + effect would pass 1
    # means: 2·(z + z)²·sd²/effect²; a standardised effect of 0.5 needs 63 per group (normal approximation)
    assert stats.sample_size_means(1.0, 0.5, sequential=False) == 63
    assert stats.sample_size_means(0.6, 0.04, sequential=False) == math.ceil(2 * (Z975 + Z80) ** 2 * 0.36 / 0.0016)


def test_the_sequential_plan_is_the_same_formula_with_the_always_valid_bound() -> None:
    """The verdict's test needs |z| ≥ b(τ²/V) rather than 1.96: at α = 5 % and 80 % power the standardised
    effect is η ≈ 3.96 (not 2.80), so a plan needs (3.96/2.80)² ≈ 2.0 times the rows."""
    eta, r = stats._design(0.05, 0.8)
    assert eta == pytest.approx(3.9644, abs=1e-3) and r == pytest.approx(8.28, abs=0.05)
    seq = stats.sample_size_proportions(0.8, 0.02)
    assert seq == math.ceil(eta**2 * (0.8 * 0.2 + 0.82 * 0.18) / 0.02**2) == 12086
    assert seq / stats.sample_size_proportions(0.8, 0.02, sequential=False) == pytest.approx(2.0, abs=0.01)
    # read once at the planned size, the test has the planned power (the normal model, exactly)
    power = stats.sequential_power(seq, 0.8 * 0.2 + 0.82 * 0.18, 0.02)
    assert power == pytest.approx(0.8, abs=1e-3)
    assert stats.mixing_sd(0.02) == pytest.approx(0.02 * math.sqrt(r) / eta)


def test_msprt_by_hand_and_its_interval_agrees_with_its_p_value() -> None:
    d, v, tau, alpha = 0.03, 0.0001, 0.015, 0.05

    def lr(x: float) -> float:  # the normal mixture's likelihood ratio at deviation x, written out
        return sum(
            w * math.sqrt(v / (v + (m * tau) ** 2)) * math.exp(x * x * (m * tau) ** 2 / (2 * v * (v + (m * tau) ** 2)))
            for m, w in stats.MIXTURE
        )

    seq = stats.msprt(d, v, tau, alpha)
    assert float(seq.p_value) == pytest.approx(min(1.0, 1 / lr(d)), rel=1e-12)
    half = float(seq.ci_high) - d
    assert float(seq.ci_low) == pytest.approx(d - half, rel=1e-12) and lr(half) == pytest.approx(1 / alpha, rel=1e-9)
    # the interval excludes 0 exactly when p ≤ alpha, over a grid of estimates
    grid = np.linspace(-0.08, 0.08, 801)
    many = stats.msprt(grid, v, tau, alpha)
    assert np.array_equal(many.p_value <= alpha, (many.ci_low > 0) | (many.ci_high < 0))
    none = stats.msprt([0.0, 0.1, 0.1], [0.0, 0.0, math.nan], tau, alpha)
    assert none.p_value[0] == 1.0 and none.p_value[1] == 0.0 and math.isnan(none.p_value[2])
    # a difference far past the minimum effect shows early: 35 points on 123 and 277 rows
    assert float(stats.msprt(-0.355, 0.0021, stats.mixing_sd(0.02)).p_value) < 1e-9


def test_verdict_is_always_valid_and_says_where_it_stands() -> None:
    v, why = stats.verdict(0.004, 0.03, 812, 3841, 0.05, interval=(0.011, 0.049))
    assert v == "candidate_better"
    assert why == (
        "always-valid p = 0.004 ≤ 0.05 (812 of 3,841 planned labelled rows per variant, "
        "difference +0.03 [+0.011, +0.049])"
    )
    v, why = stats.verdict(0.2, 0.03, 812, 3841, 0.05)
    assert v == "no_difference_yet" and "0.2 > 0.05" in why and "3,029 more" in why
    v, _ = stats.verdict(0.01, 0.03, 4000, 3841, 0.05, higher_is_better=False)  # an error went up
    assert v == "control_better"
    v, why = stats.verdict(0.3, 0.004, 4000, 3841, 0.05, effect="2 accuracy points", power=0.8)
    assert v == "no_difference_yet"
    assert why.endswith("no difference of 2 accuracy points or more was found at 80 % power")
    v, why = stats.verdict(0.0002, -0.1, 50, None, 0.05)
    assert v == "control_better" and "not known" in why
    assert stats.verdict(None, None, 0, 100)[0] == "no_difference_yet"
    assert stats.verdict(0.05001, 0.1, 10, 10, 0.05)[1].startswith("always-valid p = 0.05001 > 0.05")
    assert stats.verdict(0.0, 0.1, 10, 10)[1].startswith("always-valid p ≈ 0 ≤ 0.05")


def test_decide_is_verdict_vectorised() -> None:
    rng = np.random.default_rng(11)
    p = rng.uniform(0, 0.08, 400) ** rng.uniform(1, 3, 400)
    diff = rng.normal(size=400)
    codes = stats.decide(p, diff, 0.05, higher_is_better=False)
    names = {1: "candidate_better", -1: "control_better", 0: "no_difference_yet"}
    for i in range(400):
        v, _ = stats.verdict(float(p[i]), float(diff[i]), 100, 100, 0.05, False)
        assert names[int(codes[i])] == v


# -- power and false positives, by simulation -------------------------------------------------------


def _regression_records(rng: np.random.Generator, n: int, sd_control: float, sd_candidate: float, tag: str) -> list:
    y = rng.normal(10, 3, 2 * n)
    variant = ["control"] * n + ["candidate"] * n
    pred = (y + rng.normal(0, 1, 2 * n) * np.repeat([sd_control, sd_candidate], n)).tolist()
    y_list = y.tolist()
    return [
        {
            "request_id": f"{tag}-{i}",
            "row": 0,
            "time": 1.7e9 + i,
            "version": 1 if i < n else 2,
            "variant": variant[i],
            "status": 200,
            "latency_ms": 5.0,
            "prediction": pred[i],
            "label": y_list[i],
        }
        for i in range(2 * n)
    ]


def test_power_regression_through_analyze() -> None:
    """Errors N(0, 1) vs N(0, 0.8): the candidate's MAE is 20 % lower, the plan's min_effect."""
    rng = np.random.default_rng(99)
    half_normal_sd = math.sqrt(1 - 2 / math.pi)  # sd of |e| per unit sd of e; its mean is √(2/π)
    pooled_sd = half_normal_sd * math.sqrt((1 + 0.8**2) / 2)
    planned = stats.sample_size_means(pooled_sd, 0.2 * math.sqrt(2 / math.pi))
    # analyze re-estimates the plan from the data; a quarter more rows keeps most runs past that estimate
    n = math.ceil(planned * 1.25)
    verdicts, required = [], []
    for run in range(150):
        report = analyze(_regression_records(rng, n, 1.0, 0.8, str(run)), task="regression", min_effect=0.2)
        verdicts.append(report["verdict"])
        required.append(report["sample_size"]["required_per_variant"])
        assert report["test"]["higher_is_better"] is False
    assert verdicts.count("candidate_better") / len(verdicts) >= 0.75
    assert verdicts.count("control_better") == 0
    assert abs(np.median(required) / planned - 1) < 0.1  # the estimate of the plan is about right


# -- bootstrap ---------------------------------------------------------------------------------------


def _mean(levels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return counts @ levels / counts.sum(axis=1)


@pytest.mark.parametrize("n", [400, 60_000])  # exact resampling; a subsample with m-out-of-n scaling
def test_bootstrap_of_a_mean_agrees_with_the_t_interval(n: int) -> None:
    x = np.random.default_rng(n).exponential(2.0, n)
    lo, hi = stats.bootstrap_ci(_mean, x, alpha=0.05)
    _, t_lo, t_hi = stats.mean_interval(x, 0.05)
    assert lo < x.mean() < hi
    assert (hi - lo) == pytest.approx(t_hi - t_lo, rel=0.12)
    assert stats.bootstrap_ci(_mean, x, alpha=0.05) == (lo, hi)  # a fixed seed: reproducible


@pytest.mark.alone  # a bound in seconds
def test_bootstrap_is_fast_on_50k_rows_and_handles_the_edges() -> None:
    rng = np.random.default_rng(5)
    cells = rng.integers(0, 9, 50_000)  # e.g. the cells of a 3×3 confusion matrix: multinomial resamples
    values = rng.normal(size=50_000) ** 2
    t0 = time.perf_counter()
    stats.bootstrap_ci(_mean, cells)
    stats.bootstrap_ci(_mean, values)
    assert time.perf_counter() - t0 < 1.5
    assert all(math.isnan(v) for v in stats.bootstrap_ci(_mean, []))
    assert stats.bootstrap_ci(_mean, [3.0]) == (3.0, 3.0)


# -- analyze -------------------------------------------------------------------------------------------


def _rec(**kw: Any) -> dict[str, Any]:
    base = {"request_id": "r", "row": 0, "time": 1.7e9, "version": 1, "variant": "control", "status": 200}
    return {**base, "latency_ms": 10.0, "prediction": "a", "label": None, **kw}


HAND_MADE = [
    _rec(request_id="r1", row=0, prediction="a", label="a", latency_ms=10.0),
    _rec(request_id="r1", row=1, prediction="b", label="a", latency_ms=10.0),  # same request: one latency
    _rec(request_id="r2", prediction="a", label="zz", latency_ms=30.0, time=1.7e9 + 60),  # zz: not a class
    _rec(request_id="r3", status=500, prediction=None, latency_ms=1.0),
    _rec(request_id="r4", variant="candidate", version=2, prediction="a", label="a", latency_ms=20.0),
    _rec(request_id="r5", variant="candidate", version=2, prediction="b", label="b", latency_ms=40.0),
    _rec(request_id="r6", variant="candidate", version=2, prediction="b", latency_ms=40.0),
    _rec(request_id="r4", variant="<b>shadow</b>", version=3, prediction="b"),  # labels come by request/row
    _rec(request_id="r1", row=1, variant="<b>shadow</b>", version=3, prediction="b"),
    _rec(request_id="r9", variant="<b>shadow</b>", version=3, prediction="a"),  # no primary answer to compare
]


def test_analyze_hand_made_records() -> None:
    report = analyze(HAND_MADE, task="classification", classes=["a", "b"], model="m", experiment="e1")
    json.dumps(report, allow_nan=False)
    by = {v["name"]: v for v in report["variants"]}
    assert [v["name"] for v in report["variants"]] == ["control", "candidate", "<b>shadow</b>"]
    control, candidate, shadow = by["control"], by["candidate"], by["<b>shadow</b>"]
    assert (control["role"], candidate["role"], shadow["role"]) == ("control", "candidate", "shadow")
    assert control["requests"] == 3 and control["errors"] == 1 and control["rows"] == 3
    assert control["error_rate"]["value"] == pytest.approx(1 / 3)
    assert (control["error_rate"]["ci_low"], control["error_rate"]["ci_high"]) == pytest.approx(
        stats.wilson_interval(1, 3)
    )
    assert control["p50_ms"] == 20.0 and control["p95_ms"] == pytest.approx(29.0)  # over r1 (10) and r2 (30)
    assert control["labelled"] == 2 and control["ignored_labels"] == 1
    assert control["accuracy"]["value"] == 0.5
    assert control["f1_macro"]["value"] == pytest.approx(1 / 3)  # a: 2/3, b: 0 (sklearn gives the same)
    assert candidate["versions"] == [2] and candidate["requests"] == 3 and candidate["labelled"] == 2
    assert candidate["accuracy"]["value"] == 1.0 and candidate["p50_ms"] == 40.0
    assert shadow["agreement"]["value"] == 0.5 and shadow["compared"] == 2  # r4: b vs a; r1/1: b vs b
    assert shadow["labelled"] == 2 and shadow["accuracy"]["value"] == 0.0  # the primary's labels, joined
    assert report["test"]["n_control"] == 2 and report["test"]["n_candidate"] == 2
    assert report["test"]["diff"] == pytest.approx(0.5)
    assert report["sample_size"]["have"] == {"control": 2, "candidate": 2}
    assert report["sample_size"]["required_per_variant"] == stats.sample_size_proportions(0.5, 0.02)
    assert report["verdict"] == "no_difference_yet" and report["reason"].startswith("too few labelled predictions")
    assert report["error_rate_test"]["diff"] == pytest.approx(0 - 1 / 3)
    assert report["first_time"] == "2023-11-14T22:13:20+00:00" and report["last_time"] == "2023-11-14T22:14:20+00:00"
    assert report["records"] == len(HAND_MADE) and report["metric"] == "accuracy"


def test_analyze_macro_f1_equals_sklearn() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    t = rng.choice(["x", "y", "z", "w"], 3000, p=[0.5, 0.3, 0.15, 0.05])
    p = np.where(rng.random(3000) < 0.7, t, rng.choice(["x", "y", "z", "q"], 3000))
    records = [_rec(request_id=str(i), prediction=p[i], label=t[i]) for i in range(3000)]
    v = analyze(records, task="text-classification")["variants"][0]
    assert v["f1_macro"]["value"] == pytest.approx(f1_score(t, p, average="macro"), rel=1e-12)
    assert v["f1_macro"]["ci_low"] < v["f1_macro"]["value"] < v["f1_macro"]["ci_high"]
    assert v["accuracy"]["value"] == pytest.approx(np.mean(t == p))


def test_analyze_empty_and_unlabelled() -> None:
    for task in ("classification", "regression"):
        report = analyze([], task=task)
        assert report["verdict"] == "no_difference_yet" and report["reason"] == "no labelled predictions yet"
        assert report["variants"] == [] and report["records"] == 0
        json.dumps(report, allow_nan=False)
    only_control = [_rec(request_id="a", label="a"), _rec(request_id="b", variant="candidate")]
    report = analyze(only_control, task="classification")
    assert report["verdict"] == "no_difference_yet"
    assert report["reason"] == "no labelled predictions for candidate yet"
    assert report["variants"][1]["accuracy"] == {"value": None, "ci_low": None, "ci_high": None}
    json.dumps(report, allow_nan=False)


def test_analyze_regression_with_string_labels() -> None:
    records = [
        _rec(request_id="1", prediction=1.0, label="1.5"),
        _rec(request_id="2", prediction=2.0, label="2"),
        _rec(request_id="3", prediction=3.0, label="n/a"),  # not a number: ignored
        _rec(request_id="4", prediction=5.0, label=4),
        _rec(request_id="5", variant="candidate", prediction=1.0, label="1.25"),
        _rec(request_id="6", variant="candidate", prediction=2.0, label=2.0),
        _rec(request_id="4", variant="shadow", prediction=4.5),
    ]
    report = analyze(records, task="regression", min_effect=0.05)
    json.dumps(report, allow_nan=False)
    control, candidate, shadow = report["variants"]
    assert control["labelled"] == 3 and control["ignored_labels"] == 1
    assert control["mae"]["value"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert control["rmse"]["value"] == pytest.approx(math.sqrt((0.25 + 0 + 1) / 3))
    assert candidate["mae"]["value"] == pytest.approx(0.125)
    assert shadow["mean_abs_difference"] == pytest.approx(0.5) and shadow["compared"] == 1
    assert shadow["mae"]["value"] == pytest.approx(0.5)
    assert report["test"]["test"] == "mixture SPRT (always valid)" and report["metric"] == "mae"
    assert report["test"]["diff"] == pytest.approx(0.125 - 0.5)
    assert report["sample_size"]["required_per_variant"] is None  # fewer than 30 control labels: not known
    assert report["verdict"] == "no_difference_yet"


def test_analyze_finds_a_real_difference_both_ways() -> None:
    rng = np.random.default_rng(8)
    n = 2500
    truth = rng.choice(["a", "b", "c"], 2 * n).tolist()
    acc = np.repeat([0.80, 0.86], n)
    right = rng.random(2 * n) < acc
    wrong = {"a": "b", "b": "c", "c": "a"}
    records = [
        _rec(
            request_id=str(i),
            variant="control" if i < n else "candidate",
            prediction=truth[i] if right[i] else wrong[truth[i]],
            label=truth[i],
        )
        for i in range(2 * n)
    ]
    report = analyze(records, task="classification", classes=["a", "b", "c"], min_effect=0.05)
    assert report["verdict"] == "candidate_better", report["reason"]
    assert report["test"]["ci_low"] < 0.06 < report["test"]["ci_high"]
    for v, true_acc in zip(report["variants"], (0.80, 0.86), strict=True):
        assert v["accuracy"]["ci_low"] < true_acc < v["accuracy"]["ci_high"]
    swapped = [{**r, "variant": "candidate" if r["variant"] == "control" else "control"} for r in records]
    assert analyze(swapped, task="classification", min_effect=0.05)["verdict"] == "control_better"
    # a plan fixed at the start is rechecked against the live rates (and says how much power it has at them);
    # the verdict does not depend on it: the test is valid at any size
    fixed = analyze(records, task="classification", min_effect=0.05, planned_per_variant=100_000)
    ss = fixed["sample_size"]
    assert ss["planned_at_start"] == 100_000 and ss["power_of_start_plan"] == pytest.approx(1.0)
    live = stats.sample_size_proportions(report["variants"][0]["accuracy"]["value"], 0.05)
    assert ss["required_per_variant"] == live and "the start plan (100,000) has 100 % power" in ss["basis"]
    assert fixed["verdict"] == "candidate_better"
    # the interval of the difference is the test's: it excludes 0, as the verdict says
    assert 0 < fixed["test"]["ci_low"] < fixed["test"]["diff"] < fixed["test"]["ci_high"]


@pytest.mark.alone  # a bound in seconds
def test_analyze_is_fast() -> None:
    rng = np.random.default_rng(4)
    records = _regression_records(rng, 25_000, 1.0, 0.95, "x")
    t0 = time.perf_counter()
    report = analyze(records, task="regression", min_effect=0.05)
    assert time.perf_counter() - t0 < 2.0  # 200k records take ≈ 0.5–1 s on a laptop-class core
    assert report["sample_size"]["have"] == {"control": 25_000, "candidate": 25_000}


# -- the HTML page ---------------------------------------------------------------------------------------


def test_render_html_is_self_contained_and_escaped() -> None:
    report = analyze(HAND_MADE, task="classification", classes=["a", "b"], model="m<x>", experiment="e1")
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>") and "No difference yet" in page
    assert "verdict wait" in page and html.escape(report["reason"]) in page
    for name in ("control", "candidate", "&lt;b&gt;shadow&lt;/b&gt;", "m&lt;x&gt;"):
        assert name in page
    assert "<b>" not in page and "<x>" not in page
    assert "<script" not in page.lower() and "http://" not in page and "https://" not in page
    assert "<svg" in page and "mixture sequential probability ratio test" in page


@pytest.mark.parametrize(
    ("verdict", "title", "css"),
    [("candidate_better", "Candidate better", "better"), ("control_better", "Control better", "worse")],
)
def test_render_html_banner(verdict: str, title: str, css: str) -> None:
    report = {**analyze([], task="regression"), "verdict": verdict, "reason": "p = 0.0001 < 0.001"}
    page = render_html(report)
    assert title in page and f'class="verdict {css}"' in page and "p = 0.0001 &lt; 0.001" in page
    assert "no labelled predictions yet" in page  # the empty chart says so
