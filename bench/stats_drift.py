"""Drift statistics on the shared data, longer than the tests: false drift on null splits at 1k, 10k and
1M rows, real shifts by current size, and unseen 30 % of a training file through train, publish and
`mlopsctl drift`.

    .venv/bin/python bench/stats_drift.py                 # everything (~4 min on 2 cores)
    .venv/bin/python bench/stats_drift.py --quick         # a tenth of the runs
    .venv/bin/python bench/stats_drift.py --part null     # one part: null | shift | unseen | speed

The simulations are the tests' own functions (tests/test_drift_null.py, tests/test_drift_unseen.py),
seeded; the figures go to bench/.work/stats_drift.json (git-ignored) and are quoted in bench/RESULTS.md
and docs/drift.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_drift_null import DATASETS, _shift, load, null_rate, reference  # noqa: E402

from mlopsctl.monitoring.drift import detect  # noqa: E402

SIZES = {"1k": (1000, 20, 25), "10k": (10_000, 20, 10), "1M": (1_000_000, 20, 1)}  # rows, splits, draws


def null_part(scale: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    data = {name: load(name) for name in DATASETS}
    for label, (n, splits, draws) in SIZES.items():
        for name in DATASETS:
            t0 = time.perf_counter()
            s = max(2, round(splits * scale))
            rate = null_rate(data[name], n, s, draws, seed=len(name) * 7919 + n % 991)
            out[f"{name} {label}"] = {
                "runs": rate.runs,
                "dataset_drift": rate.dataset_drift,
                "any_feature": rate.any_drift,
                "seconds": round(time.perf_counter() - t0, 1),
            }
            print(
                f"null {name:8} {label:4} runs {rate.runs:4}  dataset drift {rate.dataset_drift:6.2%}  "
                f"any feature {rate.any_drift:6.2%}",
                flush=True,
            )
    return out


def shift_part(scale: float) -> dict[str, Any]:
    shared = {name: load(name) for name in (*DATASETS, "white")}
    out: dict[str, Any] = {}
    runs = max(10, round(100 * scale))
    for case in ("red -> white", "rest -> INLAND", "adult male -> female"):
        data, ref_rows, shifted = _shift(shared, case)
        ref = reference(data, ref_rows)
        rng = np.random.default_rng(300)
        for n in (30, 50, 100, 300):
            found = [detect(ref, shifted.iloc[rng.choice(len(shifted), n, replace=False)]) for _ in range(runs)]
            rate = sum(r.dataset_drift for r in found) / runs
            share = float(np.median([r.drifted_share for r in found]))
            out[f"{case} {n}"] = {"runs": runs, "found": rate, "median_drifted_share": share}
            print(f"shift {case:22} {n:4} rows  found {rate:6.1%}  median drifted share {share:.2f}", flush=True)
    return out


def unseen_part(scale: float) -> dict[str, Any]:
    from tests.conftest import run_cli, train_and_publish
    from tests.test_drift_unseen import CASES, _project

    out: dict[str, Any] = {}
    seeds = range(max(2, round(10 * scale)))
    for name, (read, target, task, model) in CASES.items():
        frame = read()
        results = []
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp)
                order = np.random.default_rng(seed).permutation(len(frame))
                cut = int(0.7 * len(frame))
                frame.iloc[order[:cut]].to_csv(root / "train.csv", index=False)
                frame.iloc[order[cut:]].to_csv(root / "unseen.csv", index=False)
                folder = _project(root / "project", name, root / "train.csv", target, task, model)
                _, _, _, version = train_and_publish(folder)
                proc = run_cli(
                    "--store",
                    str(folder / "store"),
                    "drift",
                    name,
                    "--version",
                    str(version),
                    "--current",
                    str(root / "unseen.csv"),
                    "--json",
                    cwd=root,
                    check=False,
                )
                doc = json.loads(proc.stdout)
                pred = doc["prediction"] or {}
                results.append(
                    {
                        "seed": seed,
                        "dataset_drift": doc["dataset_drift"],
                        "n_drifted": doc["n_drifted"],
                        "prediction_drift": pred.get("drifted"),
                        "prediction_p_value": pred.get("p_value"),
                        "prediction_effect": pred.get("effect"),
                    }
                )
        out[name] = {
            "splits": len(results),
            "dataset_drift": sum(r["dataset_drift"] for r in results),
            "any_feature": sum(r["n_drifted"] > 0 for r in results),
            "prediction_drift": sum(bool(r["prediction_drift"]) for r in results),
            "min_prediction_p": min(r["prediction_p_value"] or 1.0 for r in results),
            "runs": results,
        }
        o = out[name]
        print(
            f"unseen {name:8} splits {o['splits']}: dataset drift {o['dataset_drift']}, any feature "
            f"{o['any_feature']}, prediction drift {o['prediction_drift']} (smallest p {o['min_prediction_p']:.3g})",
            flush=True,
        )
    return out


def speed_part(scale: float) -> dict[str, Any]:
    """bench/drift_bench.py's data (1M current rows × 13 columns, a 100k-row training set): the time to
    sketch the training rows (publish), the size of baseline.json, and the time of ``detect``."""
    import statistics

    from bench.drift_bench import NUMERIC, make_data

    from mlopsctl.monitoring.baseline import build_baseline
    from mlopsctl.monitoring.drift import Reference

    ref, cur = make_data(100_000, 1_000_000)
    features = [{"name": c, "kind": "numeric"} for c in NUMERIC]
    features += [{"name": c, "kind": "categorical"} for c in ("region", "vintage")]
    t0 = time.perf_counter()
    baseline = build_baseline(ref, features, np.zeros(len(ref)), "regression", prediction_source="holdout")
    build = time.perf_counter() - t0
    size = len(json.dumps(baseline))
    times = []
    for _ in range(max(1, round(5 * scale))):
        reference_ = Reference(features, None, "regression", baseline, "bench", 1)
        t0 = time.perf_counter()
        report = detect(reference_, cur)
        times.append(time.perf_counter() - t0)
    out = {
        "build_baseline_s": round(build, 2),
        "baseline_json_bytes": size,
        "detect_median_s": round(statistics.median(times), 2),
        "detect_runs_s": [round(t, 2) for t in times],
        "drifted": report.drifted_features,
    }
    print(
        f"speed: sketch 100k rows {build:.2f} s, baseline.json {size / 1e3:.0f} kB, detect 1M rows "
        f"{statistics.median(times):.2f} s (median of {len(times)}); drifted {report.drifted_features}"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the runs")
    ap.add_argument("--part", choices=["null", "shift", "unseen", "speed"], action="append")
    ap.add_argument("--output", type=Path, default=ROOT / "bench" / ".work" / "stats_drift.json")
    args = ap.parse_args()
    scale = 0.1 if args.quick else 1.0
    parts = args.part or ["null", "shift", "unseen", "speed"]
    results: dict[str, Any] = {}
    if args.output.exists():
        results = json.loads(args.output.read_text())
    for part in parts:
        t0 = time.perf_counter()
        run = {"null": null_part, "shift": shift_part, "unseen": unseen_part, "speed": speed_part}[part]
        results[part] = run(scale)
        results[part + "_seconds"] = round(time.perf_counter() - t0, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
