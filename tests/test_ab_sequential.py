"""A/B verdicts that hold their α however they are read: simulations, seeded and bounded.

Each simulation runs the report's own statistics (``stats.estimate`` then ``stats.msprt``, what
``analysis.analyze`` runs) on simulated labelled rows, at 50 looks spread up to three times the planned
size, and counts the runs in which any look declared a winner that is not there. ``bench/stats_ab.py``
runs the same simulations longer (``RUNS``), and ``bench/RESULTS.md`` has its figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from mlopsctl.experiments import stats
from mlopsctl.experiments.analysis import analyze

ALPHA, POWER, EFFECT, P_CONTROL = 0.05, 0.8, 0.05, 0.8
LOOKS, HORIZON = 50, 3.0  # 50 looks, evenly spaced up to 3× the plan
PLAN = stats.sample_size_proportions(P_CONTROL, EFFECT, ALPHA, POWER)  # rows per variant
TAU = stats.mixing_sd(EFFECT, ALPHA, POWER)


@dataclass(frozen=True)
class Rows:
    """One simulated experiment's labelled rows, in arrival order."""

    correct: Any  # 0/1
    candidate: Any  # bool
    stratum: Any  # ramp step
    unit: Any  # sticky user (or row)


Scenario = Callable[[np.random.Generator, int], Rows]


def plain(rng: np.random.Generator, n: int) -> Rows:
    """50/50, independent rows, the same accuracy: the null."""
    cand = rng.random(2 * n) < 0.5
    return Rows((rng.random(2 * n) < P_CONTROL).astype(float), cand, np.zeros(2 * n, dtype=int), np.arange(2 * n))


def ramp(rng: np.random.Generator, n: int) -> Rows:
    """Two identical versions; a 10 % → 50 % ramp at half time while accuracy moves 0.82 → 0.78 (the issue's)."""
    total = 2 * n
    step = (np.arange(total) >= total // 2).astype(int)
    cand = rng.random(total) < np.where(step == 0, 0.10, 0.50)
    acc = np.where(step == 0, 0.82, 0.78)
    return Rows((rng.random(total) < acc).astype(float), cand, step, np.arange(total))


def sticky(rng: np.random.Generator, n: int, rows_per_user: int = 20, icc: float = 0.2) -> Rows:
    """Sticky users with 20 rows each whose accuracy varies by user (intra-user correlation 0.2), 50/50."""
    users = math.ceil(2 * n / rows_per_user)
    a = P_CONTROL * (1 - icc) / icc  # Beta(a, b) with mean 0.8 and 1/(a + b + 1) = icc
    user_acc = rng.beta(a, a * (1 - P_CONTROL) / P_CONTROL, users)
    user_cand = rng.random(users) < 0.5
    unit = rng.permutation(np.repeat(np.arange(users), rows_per_user))[: 2 * n]  # rows arrive interleaved
    return Rows((rng.random(unit.size) < user_acc[unit]).astype(float), user_cand[unit], np.zeros(unit.size, int), unit)


def false_positives(scenario: Scenario, runs: int, seed: int) -> tuple[float, float]:
    """(always-valid test, rows-as-independent single-stratum test read the same way at α): the share of
    runs in which any of the looks declared a winner."""
    rng = np.random.default_rng(seed)
    n = math.ceil(HORIZON * PLAN)
    looks = np.linspace(2 * n / LOOKS, 2 * n, LOOKS).astype(int)
    ours = naive = 0
    for _ in range(runs):
        r = scenario(rng, n)
        hit = hit_naive = False
        for m in looks:
            y, c = r.correct[:m], r.candidate[:m]
            if min(c.sum(), (~c).sum()) < 30:
                continue
            est = stats.estimate(y, c, r.stratum[:m], r.unit[:m])
            hit = hit or float(stats.msprt(est.diff, est.variance, TAU, ALPHA, interval=False).p_value) <= ALPHA
            # a fixed-sample z-test read at every look, steps pooled, rows independent
            yt, yc = y[c], y[~c]
            z = (yt.mean() - yc.mean()) / math.sqrt(yt.var() / yt.size + yc.var() / yc.size)
            hit_naive = hit_naive or abs(z) > 1.959963984540054
        ours += hit
        naive += hit_naive
    return ours / runs, naive / runs


@pytest.mark.slow
@pytest.mark.parametrize(
    ("scenario", "naive_at_least", "seed"),
    [(plain, 0.15, 181), (ramp, 0.5, 182), (sticky, 0.4, 183)],
    ids=["50 looks to 3x the plan", "ramp 10->50 % while accuracy moves", "20 correlated rows per sticky user"],
)
def test_false_winners_stay_under_alpha_however_often_the_report_is_read(
    scenario: Scenario, naive_at_least: float, seed: int
) -> None:
    """≤ 6 % false winners over 300 runs of 50 looks each (a fixed-sample test read the same way: far more)."""
    ours, naive = false_positives(scenario, runs=300, seed=seed)
    assert ours <= 0.06, ours
    assert naive >= naive_at_least, naive  # what the always-valid, stratified, clustered test is for


def power_at(n: int, p_candidate: float, runs: int, seed: int, p_control: float = P_CONTROL) -> float:
    """The share of runs whose verdict, read once at ``n`` labelled rows per variant, is candidate_better."""
    rng = np.random.default_rng(seed)
    wins = 0
    cand = np.r_[np.zeros(n, bool), np.ones(n, bool)]
    for _ in range(runs):
        y = np.r_[rng.random(n) < p_control, rng.random(n) < p_candidate].astype(float)
        est = stats.estimate(y, cand, np.zeros(2 * n, int), np.arange(2 * n))
        p = float(stats.msprt(est.diff, est.variance, TAU, ALPHA, interval=False).p_value)
        wins += int(stats.decide(p, est.diff, ALPHA)) == 1
    return wins / runs


def test_power_at_the_planned_size_is_the_planned_power() -> None:
    """0.80 → 0.85 read once at the plan: 80 % ± 3 points over 1,000 runs (more looks only add power)."""
    got = power_at(PLAN, P_CONTROL + EFFECT, runs=1000, seed=18)
    assert abs(got - POWER) <= 0.03, got


def test_the_plan_is_rechecked_against_live_rates() -> None:
    """A plan made from a holdout accuracy of 0.90 while live accuracy is 0.80 has too few rows; the report
    recomputes it from the live labels, and at that size the verdict has its planned power again."""
    start = stats.sample_size_proportions(0.90, EFFECT)
    rng = np.random.default_rng(7)
    pilot = [
        {"request_id": f"r{i}", "variant": v, "prediction": 1, "label": int(rng.random() < 0.8)}
        for i, v in enumerate(["control", "candidate"] * 300)
    ]
    report = analyze(pilot, task="classification", min_effect=EFFECT, planned_per_variant=start)
    ss = report["sample_size"]
    assert ss["planned_at_start"] == start and ss["required_per_variant"] > 1.4 * start
    assert ss["power_of_start_plan"] < 0.65  # what the unchecked plan would have given
    p_live = report["variants"][0]["accuracy"]["value"]
    assert abs(power_at(ss["required_per_variant"], p_live + EFFECT, 2000, 19, p_live) - POWER) <= 0.03


def _records(r: Rows, times: Any, sticky_key: bool) -> list[dict[str, Any]]:
    return [
        {
            "request_id": f"q{i}",
            "time": float(times[i]),
            "variant": "candidate" if r.candidate[i] else "control",
            "status": 200,
            "prediction": "a",
            "label": "a" if r.correct[i] else "b",
            **({"unit": f"user-{r.unit[i]}"} if sticky_key else {}),
        }
        for i in range(r.correct.size)
    ]


def test_analyze_compares_ramp_steps_and_clusters_by_the_sticky_key() -> None:
    """Through ``analyze``: the ramp's split changes are strata (a pooled test says control_better here),
    and rows of one user are one unit (the design effect is reported)."""
    rng = np.random.default_rng(3)
    r = ramp(rng, 6000)
    times = 1.7e9 + np.arange(r.correct.size)
    change = float(times[r.correct.size // 2])
    pooled = analyze(_records(r, times, False), task="classification", min_effect=EFFECT)
    stratified = analyze(_records(r, times, False), task="classification", min_effect=EFFECT, strata=[change])
    assert pooled["verdict"] == "control_better" and pooled["test"]["strata"] == 1
    assert stratified["verdict"] == "no_difference_yet" and stratified["test"]["strata"] == 2
    assert stratified["test"]["ci_low"] < 0 < stratified["test"]["ci_high"]
    s = sticky(rng, 3000)
    report = analyze(_records(s, 1.7e9 + np.arange(s.correct.size), True), task="classification")
    assert report["test"]["cluster_by"] == "sticky key" and report["test"]["clusters"] == len(set(s.unit.tolist()))
    assert report["test"]["design_effect"] > 3  # 1 + (20 − 1)·0.2 = 4.8 in expectation
