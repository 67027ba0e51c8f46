"""Drift benchmark: mlopsctl's drift engine beside a plain per-column scipy loop, in one run.

Data: 1,000,000 current rows × 13 columns (11 numeric, 2 categorical) against a 100,000-row reference,
generated from the real red wine data (rows drawn with replacement, each value jittered by 5 % of its
column's standard deviation, so nearly every value is distinct: the worst case for sorting). The current
rows shift three numeric columns and one categorical column, and bring one category the reference never had.

Timed, alternating, median of ``--repeats``:

- ``mlopsctl``: ``mlopsctl.monitoring.drift.detect`` — input checks, then per numeric column KS (with
  scipy's p-value), PSI, Wasserstein and chart data; per categorical column chi-square, PSI and chart data;
  the verdicts and the report;
- ``scipy loop``: what one writes by hand: per numeric column ``scipy.stats.ks_2samp`` and
  ``scipy.stats.wasserstein_distance``; per categorical column ``value_counts`` of both samples and
  ``scipy.stats.chi2_contingency`` on the table. No PSI, no charts.

The two must agree: every KS statistic and p-value, Wasserstein distance and chi-square p-value is
checked against the loop's before any timing counts. With ``--evidently-python`` (a Python with the
Evidently library installed, e.g. a throwaway venv), the same data is written to Parquet and
``bench/drift_evidently.py`` times Evidently's DataDriftPreset in that interpreter.

    .venv/bin/python bench/drift_bench.py                      # about a minute
    .venv/bin/python bench/drift_bench.py --evidently-python /tmp/evvenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import harness
import numpy as np
import pandas as pd
import scipy
from scipy import stats

HERE = Path(__file__).resolve().parent
WINE = HERE.parent.parent / "shared" / "data" / "wine-quality" / "winequality-red.csv"
WORK = HERE / ".work"
NUMERIC = [
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
]
REGIONS = ["north", "south", "east", "west", "coast", "valley", "hills", "island"]
VINTAGES = [str(y) for y in range(1995, 2020)]


def make_data(n_ref: int, n_cur: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    wine = pd.read_csv(WINE, sep=";")[NUMERIC]
    std = wine.std().to_numpy()

    def draw(n: int) -> pd.DataFrame:
        rows = wine.to_numpy()[rng.integers(0, len(wine), n)]
        return pd.DataFrame(rows + rng.normal(0, 1, rows.shape) * std * 0.05, columns=NUMERIC)

    ref, cur = draw(n_ref), draw(n_cur)
    cur["alcohol"] += 0.25 * wine["alcohol"].std()
    cur["residual sugar"] *= 1.3
    cur["sulphates"] += 0.1 * wine["sulphates"].std()
    p_region = np.linspace(2, 1, len(REGIONS))
    p_region /= p_region.sum()
    p_shift = p_region.copy()
    p_shift[0] -= 0.05
    p_shift[-1] += 0.05
    ref["region"] = rng.choice(REGIONS, n_ref, p=p_region)
    cur["region"] = rng.choice(REGIONS, n_cur, p=p_shift)
    ref["vintage"] = rng.choice(VINTAGES, n_ref)
    cur["vintage"] = rng.choice([*VINTAGES, "2020"], n_cur, p=[0.99 / len(VINTAGES)] * len(VINTAGES) + [0.01])
    return ref, cur


def engine(ref: pd.DataFrame, cur: pd.DataFrame) -> Any:
    from mlopsctl.monitoring.drift import Reference, detect

    features = [{"name": c, "kind": "numeric"} for c in NUMERIC]
    features += [{"name": c, "kind": "categorical"} for c in ("region", "vintage")]
    return detect(Reference(features, ref, "classification", {}, "bench", 1), cur)


def scipy_loop(ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, tuple[float, ...]]:
    out: dict[str, tuple[float, ...]] = {}
    from mlopsctl.monitoring.sketch import f32

    for c in NUMERIC:
        a, b = f32(ref[c].to_numpy()), f32(cur[c].to_numpy())
        ks = stats.ks_2samp(a, b)
        out[c] = (float(ks.statistic), float(ks.pvalue), float(stats.wasserstein_distance(a, b)))
    for c in ("region", "vintage"):
        table = pd.concat([ref[c].value_counts(), cur[c].value_counts()], axis=1).fillna(0).to_numpy().T
        chi = stats.chi2_contingency(table)
        out[c] = (float(chi.statistic), float(chi.pvalue))
    return out


def check_agreement(report: Any, loop: dict[str, tuple[float, ...]], spans: dict[str, float]) -> None:
    """The engine against the loop: KS within the reference sketch's stated error (the engine compares a
    sketch of the reference, not every row), its p-value no smaller than the exact one, Wasserstein within
    1 %; chi-square exactly when no rare category was pooled."""
    by_name = {f.name: f for f in report.features}
    for c in NUMERIC:
        f, (d, p, w) = by_name[c], loop[c]
        assert abs(f.statistic - d) <= f.details["sketch_error"] + 1e-12, (c, f.statistic, d)
        assert f.p_value >= p * (1 - 1e-9), (c, f.p_value, p)
        assert abs(f.distance - w) <= f.details["sketch_error"] * spans[c] + 1e-9 * w, (c, f.distance, w)
    for c in ("region", "vintage"):
        f, (chi, p) = by_name[c], loop[c]
        assert f.details["n_pooled"] == 0, (c, f.details["n_pooled"])
        assert np.isclose(f.statistic, chi, rtol=1e-12) and np.isclose(f.p_value, p, rtol=1e-12, atol=0), c


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def run_evidently(python: str, ref: pd.DataFrame, cur: pd.DataFrame, repeats: int) -> dict[str, Any]:
    WORK.mkdir(exist_ok=True)
    ref_path, cur_path = WORK / "drift_reference.parquet", WORK / "drift_current.parquet"
    ref.to_parquet(ref_path, index=False)
    cur.to_parquet(cur_path, index=False)
    cmd = [python, str(HERE / "drift_evidently.py"), str(ref_path), str(cur_path), "--repeats", str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        return {"ok": False, "python": python, "error": "\n".join(tail)}
    return {"ok": True, "python": python, **json.loads(proc.stdout.strip().splitlines()[-1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="current rows")
    ap.add_argument("--reference-rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--evidently-python", help="a Python interpreter with evidently installed")
    ap.add_argument("--evidently-repeats", type=int, default=3)
    ap.add_argument("--output", type=Path, default=HERE / "drift_results.json")
    args = ap.parse_args()

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    ref, cur = make_data(args.reference_rows, args.rows)
    print(
        f"data: {len(cur):,} current × {len(ref):,} reference rows, {cur.shape[1]} columns "
        f"({time.perf_counter() - t0:.1f} s to generate)",
        file=sys.stderr,
    )

    # warm-up (imports, first-call costs) and the agreement check
    report = engine(ref, cur)
    loop = scipy_loop(ref, cur)
    both = pd.concat([ref[NUMERIC], cur[NUMERIC]])
    check_agreement(report, loop, {c: float(both[c].max() - both[c].min()) for c in NUMERIC})

    ours: list[float] = []
    plain: list[float] = []
    for i in range(args.repeats):
        t_ours, _ = timed(engine, ref, cur)
        t_plain, _ = timed(scipy_loop, ref, cur)
        ours.append(t_ours)
        plain.append(t_plain)
        print(f"repeat {i + 1}: mlopsctl {t_ours:.3f} s, scipy loop {t_plain:.3f} s", file=sys.stderr)
    m_ours, m_plain = statistics.median(ours), statistics.median(plain)
    results: dict[str, Any] = {
        "rows_current": len(cur),
        "rows_reference": len(ref),
        "columns": {"numeric": len(NUMERIC), "categorical": 2},
        "repeats": args.repeats,
        "mlopsctl_s": ours,
        "scipy_loop_s": plain,
        "median_mlopsctl_s": m_ours,
        "median_scipy_loop_s": m_plain,
        "ratio_mlopsctl_to_scipy": m_ours / m_plain,
        "target": "mlopsctl no slower than 2x the scipy loop",
        "target_met": m_ours <= 2 * m_plain,
        "verdict": {
            "dataset_drift": report.dataset_drift,
            "drifted": report.drifted_features,
            "not_drifted": [f.name for f in report.features if not f.drifted],
        },
        "git": _git(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "cpu": harness.cpu_model(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "pandas": pd.__version__,
        },
    }
    results["load_average"] = {"before": load_before, "after_engines": os.getloadavg()}
    if args.evidently_python:
        print("evidently…", file=sys.stderr)
        results["evidently"] = run_evidently(args.evidently_python, ref, cur, args.evidently_repeats)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n| engine | median of {args.repeats} | ratio to the scipy loop |\n| --- | --- | --- |")
    label = "mlopsctl drift engine (KS, PSI, Wasserstein, chi-square, charts)"
    print(f"| {label} | {m_ours:.3f} s | {m_ours / m_plain:.2f} |")
    print(f"| plain scipy loop (ks_2samp, wasserstein_distance, chi2_contingency) | {m_plain:.3f} s | 1.00 |")
    ev = results.get("evidently")
    if ev and ev.get("ok"):
        for key, label in (
            ("default", "Evidently DataDriftPreset, default tests"),
            ("ks_chi2", "Evidently, KS and chi-square"),
        ):
            if key in ev:
                m = statistics.median(ev[key])
                print(f"| {label} ({ev['version']}) | {m:.3f} s | {m / m_plain:.2f} |")
    elif ev:
        print(f"\nEvidently did not run: {ev['error']}")
    print(f"\nresults: {args.output}", file=sys.stderr)


def _git() -> dict[str, Any]:
    commit, changed = harness.git_changes(HERE.parent, "src/mlopsctl/monitoring")
    return {"commit": commit, "uncommitted_monitoring_files": changed}


if __name__ == "__main__":
    main()
