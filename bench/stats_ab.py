"""A/B statistics, longer than the tests: false winners with 50 looks to 3× the plan (plain, a ramp whose
steps differ, 20 correlated rows per sticky user), power at the plan read once and read 50 times, the
plan rechecked against live rates, and the coverage of the RMSE interval for heavy-tailed errors.

    .venv/bin/python bench/stats_ab.py            # everything (~9 min on 2 cores)
    .venv/bin/python bench/stats_ab.py --quick    # a tenth of the runs

The simulations are the tests' own functions (tests/test_ab_sequential.py), seeded; the figures go to
bench/.work/stats_ab.json (git-ignored) and are quoted in bench/RESULTS.md and docs/experiments.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_ab_sequential import (  # noqa: E402
    ALPHA,
    EFFECT,
    LOOKS,
    P_CONTROL,
    PLAN,
    POWER,
    TAU,
    false_positives,
    plain,
    power_at,
    ramp,
    sticky,
)

from mlopsctl.experiments import stats  # noqa: E402


def power_with_looks(runs: int, seed: int) -> float:
    """0.80 → 0.85, 50 looks evenly spaced up to the plan: the share of runs with candidate_better by then."""
    rng = np.random.default_rng(seed)
    n = PLAN
    looks = np.linspace(n / LOOKS, n, LOOKS).astype(int)
    wins = 0
    for _ in range(runs):
        c = (rng.random(n) < P_CONTROL).astype(float)
        t = (rng.random(n) < P_CONTROL + EFFECT).astype(float)
        for m in looks:
            if m < 30:
                continue
            y = np.r_[c[:m], t[:m]]
            cand = np.r_[np.zeros(m, bool), np.ones(m, bool)]
            est = stats.estimate(y, cand, np.zeros(2 * m, int), np.arange(2 * m))
            if float(stats.msprt(est.diff, est.variance, TAU, ALPHA, interval=False).p_value) <= ALPHA and est.diff > 0:
                wins += 1
                break
    return wins / runs


def rmse_coverage(runs: int, seed: int) -> dict[str, Any]:
    """How often the interval holds the true RMSE, studentised (the report's) against percentile (before)."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}

    def rmse_stat(levels: Any, counts: Any) -> Any:
        return np.sqrt(counts @ levels / counts.sum(axis=1))

    cases = {
        "normal": (lambda n: rng.normal(size=n), 1.0),
        "t5": (lambda n: rng.standard_t(5, n), math.sqrt(5 / 3)),
        "t3": (lambda n: rng.standard_t(3, n), math.sqrt(3.0)),
        "lognormal(0, 1)": (lambda n: rng.lognormal(0, 1, n), math.e),
        "exponential": (lambda n: rng.exponential(1.0, n), math.sqrt(2.0)),
    }
    for name, (make, truth) in cases.items():
        for n in (100, 1000):
            ours = before = 0
            for _ in range(runs):
                e2 = make(n) ** 2
                lo, hi = stats.rmse_interval(e2)
                ours += lo <= truth <= hi
                plo, phi = stats.bootstrap_ci(rmse_stat, e2, method="percentile")
                before += plo <= truth <= phi
            out[f"{name} n={n}"] = {"studentised": ours / runs, "percentile": before / runs}
            print(f"rmse {name:16} n={n:5}  studentised {ours / runs:6.1%}  percentile {before / runs:6.1%}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the runs")
    ap.add_argument("--output", type=Path, default=ROOT / "bench" / ".work" / "stats_ab.json")
    args = ap.parse_args()
    k = 0.1 if args.quick else 1.0
    results: dict[str, Any] = {"plan_rows_per_variant": PLAN, "tau": TAU, "alpha": ALPHA, "power": POWER}
    t0 = time.perf_counter()
    for scenario, seed in ((plain, 281), (ramp, 282), (sticky, 283)):
        runs = round(2000 * k)
        ours, naive = false_positives(scenario, runs, seed)
        results[f"false winners: {scenario.__name__}"] = {"runs": runs, "always_valid": ours, "fixed_sample": naive}
        print(
            f"false winners {scenario.__name__:7} runs {runs}: always-valid {ours:.2%}, fixed-sample read 50 times "
            f"{naive:.2%}",
            flush=True,
        )
    runs = round(10_000 * k)
    once = power_at(PLAN, P_CONTROL + EFFECT, runs, 28)
    looked = power_with_looks(round(2000 * k), 29)
    results["power at the plan"] = {"runs": runs, "read once": once, "read 50 times up to the plan": looked}
    print(f"power at the plan ({PLAN} rows per variant): read once {once:.1%}, read 50 times {looked:.1%}", flush=True)
    start = stats.sample_size_proportions(0.90, EFFECT)
    unchecked = power_at(start, 0.85, round(4000 * k), 30)
    live = stats.sample_size_proportions(0.80, EFFECT)
    checked = power_at(live, 0.85, round(4000 * k), 31)
    results["plan from holdout 0.90, live 0.80"] = {
        "start_plan": start,
        "power_at_start_plan": unchecked,
        "rechecked_plan": live,
        "power_at_rechecked_plan": checked,
    }
    print(f"holdout 0.90 / live 0.80: start plan {start} → power {unchecked:.1%}; rechecked {live} → {checked:.1%}")
    results["rmse interval coverage"] = rmse_coverage(round(1000 * k), 32)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
