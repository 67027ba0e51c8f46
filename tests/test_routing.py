"""Variant routing and the canary guard's judgement, without a server or data."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from mlopsctl.config import GuardSection
from mlopsctl.errors import ValidationError
from mlopsctl.experiments.deployment import parse_ramp, parse_split
from mlopsctl.experiments.guard import WindowStats, judge
from mlopsctl.serving.reload import BASIS, Route, Slot, bounds_for, route_weights


def route(weights: list[float], salt: bytes = b"exp-1") -> Route:
    slots = tuple(Slot("m", "prod", name) for name in ("control", "candidate")[: len(weights)])
    return Route(slots, bounds_for(weights), salt=salt, sticky=b"x-user-id", experiment=salt.decode())


def test_bounds_cover_the_whole_range_and_keep_hundredths() -> None:
    assert bounds_for([90, 10]) == (9000, BASIS)
    assert bounds_for([97.5, 2.5]) == (9750, BASIS)
    assert bounds_for([100, 0]) == (BASIS, BASIS)
    assert route_weights(route([70, 30])) == [("control", 70.0), ("candidate", 30.0)]


def test_random_split_lands_within_statistical_bounds() -> None:
    r = route([80, 20])
    random.seed(20)  # pick() draws from the module's generator: a fixed seed keeps the test deterministic
    n = 20_000
    got = Counter(r.pick().variant for _ in range(n))
    assert abs(got["candidate"] / n - 0.2) < 4 * math.sqrt(0.2 * 0.8 / n)


def test_sticky_keys_are_a_pure_function_of_key_and_experiment() -> None:
    a, b = route([50, 50]), route([50, 50])  # two replicas, or one before and after a restart
    keys = [f"user-{i}".encode() for i in range(5000)]
    first = [a.pick(k).variant for k in keys]
    assert first == [b.pick(k).variant for k in keys] == [a.pick(k).variant for k in keys]
    share = first.count("candidate") / len(keys)
    assert abs(share - 0.5) < 4 * math.sqrt(0.25 / len(keys))
    other = route([50, 50], salt=b"exp-2")  # a new experiment reshuffles callers
    moved = sum(x != other.pick(k).variant for x, k in zip(first, keys, strict=True)) / len(keys)
    assert 0.4 < moved < 0.6


def test_a_ramp_only_moves_callers_towards_the_candidate() -> None:
    keys = [f"user-{i}".encode() for i in range(5000)]
    previous = None
    for weight in (5, 25, 50, 100):
        now = [route([100 - weight, weight]).pick(k).variant for k in keys]
        if previous is not None:
            assert all(p == "control" or n == "candidate" for p, n in zip(previous, now, strict=True))
        previous = now
    assert previous == ["candidate"] * len(keys)


def test_split_and_ramp_parsing() -> None:
    assert parse_split("90/10") == (90, 10)
    assert parse_split("97.5/2.5") == (97.5, 2.5)
    for bad, message in [
        ("90/20", "adds up to 110"),
        ("100/0", "no traffic"),
        ("a/b", "expected CONTROL/CANDIDATE"),
        ("90", "expected CONTROL/CANDIDATE"),
        ("-10/110", "expected CONTROL/CANDIDATE"),
    ]:
        with pytest.raises(ValidationError, match=message):
            parse_split(bad)
    assert parse_ramp("5,25,50,100") == [5, 25, 50, 100]
    assert parse_ramp(None) == []
    for bad in ("50,10", "0,50", "10,10", "5,x"):
        with pytest.raises(ValidationError, match="ramp"):
            parse_ramp(bad)


CFG = GuardSection(error_rate_margin=0.02, latency_p95_ratio=1.5, latency_p95_margin_ms=5, min_requests=100)


def test_guard_waits_for_enough_requests() -> None:
    d = judge(WindowStats(1000, 0, 2.0), WindowStats(40, 40, None), CFG, 300)
    assert d.action == "wait" and "need 100" in d.reason


def test_guard_pulls_back_on_errors_only_when_clearly_worse() -> None:
    broken = judge(WindowStats(1000, 5, 2.0), WindowStats(150, 150, None), CFG, 300)
    assert broken.action == "pull_back" and broken.details["rule"] == "error_rate"
    assert "100.0 %" in broken.reason and "0.5 %" in broken.reason
    # 4 errors in 100 vs 2 % on the control: above the margin by chance, not significantly: hold
    noisy = judge(WindowStats(1000, 20, 2.0), WindowStats(100, 5, 2.0), CFG, 300)
    assert noisy.action == "hold"
    # the same rates with many requests are significant
    clear = judge(WindowStats(20000, 400, 2.0), WindowStats(20000, 1000, 2.0), CFG, 300)
    assert clear.action == "pull_back"


def test_guard_latency_needs_both_the_ratio_and_the_margin() -> None:
    # 2 ms → 4 ms is x2 but only +2 ms: within the margin
    assert judge(WindowStats(500, 0, 2.0), WindowStats(500, 0, 4.0), CFG, 60).action == "hold"
    slow = judge(WindowStats(500, 0, 20.0), WindowStats(500, 0, 40.0), CFG, 60)
    assert slow.action == "pull_back" and slow.details["rule"] == "latency_p95" and "40.0 ms" in slow.reason
    # +10 ms on 100 ms is above the margin but under x1.5
    assert judge(WindowStats(500, 0, 100.0), WindowStats(500, 0, 110.0), CFG, 60).action == "hold"


def test_the_plan_is_fixed_from_the_control_holdout_metrics() -> None:
    from mlopsctl.config import ExperimentsSection
    from mlopsctl.experiments.report import plan_from_metrics
    from mlopsctl.experiments.stats import sample_size_means, sample_size_proportions

    cfg = ExperimentsSection(min_effect=0.05)
    assert plan_from_metrics("classification", {"accuracy": 0.8}, cfg) == sample_size_proportions(0.8, 0.05)
    # absolute errors with mean MAE and second moment RMSE²: sd = sqrt(RMSE² − MAE²) = 30 for 50 / 40
    assert plan_from_metrics("regression", {"rmse": 50.0, "mae": 40.0}, cfg) == sample_size_means(30.0, 2.0)
    assert plan_from_metrics("regression", {"r2": 0.8}, cfg) is None
    assert plan_from_metrics("classification", {"accuracy": None}, cfg) is None
