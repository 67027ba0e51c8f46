"""Drift at width: the drift engine over 300,000 current rows × 1,000 numeric columns against a 100,000-row
reference, beside the plain scipy loop, in one run.

Data (synthetic, each column from its own seed so any slice is the same data): mostly standard normals,
every 7th column log-normal, every 10th a small count (few distinct values: exact sketches and bar
charts), all float32 as a Parquet file of that width would be. The current rows shift a few columns
(``SHIFTS``): four by an effect the engine must flag, one by a negligible one it must not, and one gains
missing values.

The reference is sketched as publish sketches it (``monitoring.baseline.build_baseline`` over every row,
timed: the publish-side cost), and ``baseline.json`` is written and read back as ``load_reference`` reads
it (its size is reported). Then, timed, median of ``--repeats``, each in a fresh child process so its peak
RSS is its own: the engine (``drift.detect``: input checks, per column KS with scipy's p-value, PSI,
Wasserstein, chart data, Holm over every check, verdicts), the JSON document and the HTML page (their
sizes). The child builds the current frame before the clock starts; its RSS then is reported beside the
peak, so the engine's own memory is the difference.

Beside it, in the parent: the plain scipy loop (``scipy.stats.ks_2samp`` per column on the raw reference
and current values) over ``--scipy-columns`` columns, extrapolated to all; before that, the engine on the
same slice is checked against it (KS D within the sketch's stated error, p-value no smaller).

    .venv/bin/python bench/drift_width_bench.py              # about 5 minutes on 2 busy cores
    .venv/bin/python bench/drift_width_bench.py --rows 20000 --columns 100 --repeats 1   # a quick look
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness
import numpy as np
import pandas as pd
import scipy
from scipy import stats

HERE = Path(__file__).resolve().parent
SEED = 20
# column → (what changes in the current rows, whether the engine must flag it)
SHIFTS: dict[int, tuple[str, bool]] = {
    3: ("mean +0.3 sd", True),
    150: ("mean +0.5 sd", True),
    420: ("scale ×1.6", True),
    777: ("mean +1 sd", True),
    888: ("mean +0.03 sd (negligible: significant at 300k rows, effect far below 0.1)", False),
    999: ("20 % of the values missing", True),
}


def column_name(j: int) -> str:
    return f"x{j:04d}"


def column(j: int, n: int, current: bool) -> Any:
    """Column ``j``: ``n`` float32 values of the reference or the current rows (its own seed)."""
    rng = np.random.default_rng([SEED, j, int(current)])
    if j % 10 == 0:
        values = rng.poisson(3, n).astype(np.float32)
    elif j % 7 == 0:
        values = rng.lognormal(0, 0.5, n).astype(np.float32)
    else:
        values = rng.standard_normal(n, dtype=np.float32)
    if current and j in SHIFTS:
        sd = float(values.std())
        if j == 3:
            values += 0.3 * sd
        elif j == 150:
            values += 0.5 * sd
        elif j == 420:
            values *= 1.6
        elif j == 777:
            values += sd
        elif j == 888:
            values += 0.03 * sd
        elif j == 999:
            values[rng.random(n) < 0.2] = np.nan
    return values


def frame(n: int, columns: list[int], current: bool) -> pd.DataFrame:
    """The columns as one float32 block (Fortran order: each column contiguous, no copy into pandas)."""
    block = np.empty((n, len(columns)), dtype=np.float32, order="F")
    for k, j in enumerate(columns):
        block[:, k] = column(j, n, current)
    return pd.DataFrame(block, columns=[column_name(j) for j in columns], copy=False)


def predictions(n: int, current: bool) -> Any:
    rng = np.random.default_rng([SEED, 10**6, int(current)])
    return rng.choice(np.array(["no", "yes"], dtype=object), n, p=[0.7, 0.3])


def features(columns: list[int]) -> list[dict[str, Any]]:
    return [{"name": column_name(j), "kind": "numeric"} for j in columns]


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process, in MB (from /proc, else getrusage's peak for both)."""
    try:
        status = Path("/proc/self/status").read_text().splitlines()
        kb = {ln.split(":")[0]: int(ln.split()[1]) for ln in status if ln.startswith(("VmRSS", "VmHWM"))}
        return kb["VmRSS"] / 1024, kb["VmHWM"] / 1024
    except (OSError, KeyError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return peak, peak


# -- the child: one timed run of the engine --------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    from mlopsctl.monitoring.drift import Reference, detect
    from mlopsctl.monitoring.report import render_html

    cols = list(range(args.columns))
    t_read = 0.0
    if args.from_parquet:  # as `mlopsctl drift --current FILE` reads it: the one data reader
        from mlopsctl.data.read import read_data

        t0 = time.perf_counter()
        cur = read_data(args.from_parquet)
        t_read = time.perf_counter() - t0
    else:
        cur = frame(args.rows, cols, current=True)
        cur["__prediction__"] = predictions(args.rows, current=True)
    rss_data, _ = rss_mb()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    baseline = json.loads((args.workdir / "baseline.json").read_bytes())
    reference = Reference(features(cols), None, "classification", baseline, "wide", 1)
    _ = reference.sketches, reference.prediction
    t1 = time.perf_counter()
    seen: list[int] = []
    with_progress = "progress" in inspect.signature(detect).parameters  # an older engine, to compare: without
    kwargs: dict[str, Any] = {"progress": lambda done, total: seen.append(done)} if with_progress else {}
    report = detect(reference, cur, **kwargs)
    t2 = time.perf_counter()
    cpu_detect = time.process_time() - cpu0
    doc = report.to_dict()
    body = json.dumps(doc)
    t3 = time.perf_counter()
    page = render_html(doc)
    t4 = time.perf_counter()
    rss_end, peak = rss_mb()
    out = {
        "read_parquet_s": t_read,
        "load_baseline_s": t1 - t0,
        "detect_s": t2 - t1,
        "detect_cpu_s": cpu_detect,  # every thread's CPU time, load and baseline included
        "json_s": t3 - t2,
        "html_s": t4 - t3,
        "total_s": t4 - t0,
        "rss_after_data_mb": rss_data,
        "rss_end_mb": rss_end,
        "peak_rss_mb": peak,
        "json_bytes": len(body.encode()),
        "html_bytes": len(page.encode()),
        "html_charts": page.count("<svg"),
        "progress_calls": len(seen),
        "dataset_drift": report.dataset_drift,
        "drifted": report.drifted_features,
        "prediction_drifted": bool(report.prediction and report.prediction.drifted),
    }
    if args.html:
        Path(args.html).write_text(page, encoding="utf-8")
    print(json.dumps(out))


def run_child(args: argparse.Namespace, from_parquet: Path | None = None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "--rows", str(args.rows), "--columns", str(args.columns)]
    cmd += ["--workdir", str(args.workdir)]
    if from_parquet is not None:
        cmd += ["--from-parquet", str(from_parquet)]
    elif args.html:
        cmd += ["--html", str(args.html)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"the engine's run failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


# -- the parent ----------------------------------------------------------------------------------------


def scipy_loop(ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """What one writes by hand: ``ks_2samp`` per column (missing values dropped, float32 values as is)."""
    out = {}
    for c in ref.columns:
        a, b = ref[c].to_numpy(), cur[c].to_numpy()
        r = stats.ks_2samp(a[np.isfinite(a)], b[np.isfinite(b)])
        out[c] = (float(r.statistic), float(r.pvalue))
    return out


def check_agreement(ref: pd.DataFrame, cur: pd.DataFrame, baseline: dict[str, Any]) -> dict[str, Any]:
    """The engine on the slice against the scipy loop: D within the sketch's stated error, p no smaller."""
    from mlopsctl.monitoring.drift import Reference, detect

    cols = [int(c[1:]) for c in ref.columns]
    report = detect(Reference(features(cols), None, "classification", baseline, "wide", 1), cur)
    loop = scipy_loop(ref, cur)
    worst = 0.0
    for f in report.features:
        d, p = loop[f.name]
        assert f.statistic is not None and f.p_value is not None
        gap = abs(f.statistic - d)
        assert gap <= f.details["sketch_error"] + 1e-9, (f.name, f.statistic, d)
        assert f.p_value >= p * (1 - 1e-9), (f.name, f.p_value, p)
        worst = max(worst, gap)
    return {"columns": len(cols), "largest_ks_gap": worst}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=300_000, help="current rows")
    ap.add_argument("--reference-rows", type=int, default=100_000)
    ap.add_argument("--columns", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scipy-columns", type=int, default=100, help="columns the scipy loop runs over")
    ap.add_argument("--html", type=Path, help="keep the HTML report of the last run here")
    ap.add_argument("--output", type=Path, default=HERE / "drift_width_results.json")
    ap.add_argument(
        "--parquet", action="store_true", help="one more run reading the current rows from a Parquet file (1.2 GB)"
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--from-parquet", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    from mlopsctl.monitoring.baseline import build_baseline

    args.workdir = Path(tempfile.mkdtemp(prefix="drift-width-"))  # its own: other benches clean bench/.work
    cols = list(range(args.columns))
    load_before = os.getloadavg()
    uptime_before = _uptime()
    t0 = time.perf_counter()
    ref = frame(args.reference_rows, cols, current=False)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    baseline = build_baseline(ref, features(cols), predictions(len(ref), current=False), "classification")
    t_publish = time.perf_counter() - t0
    data = json.dumps(baseline).encode()
    (args.workdir / "baseline.json").write_bytes(data)
    sketch_bytes = sum(len(json.dumps(v["sketch"])) for v in baseline["features"].values())
    print(
        f"reference: {len(ref):,} rows × {ref.shape[1]} columns ({t_gen:.1f} s to generate); "
        f"sketched as publish does in {t_publish:.1f} s; baseline.json {len(data) / 1e6:.1f} MB",
        file=sys.stderr,
    )

    # the scipy loop and the agreement check, on a slice of the columns
    sl = cols[: args.scipy_columns]
    for j in SHIFTS:
        if j < args.columns and j not in sl:
            sl.append(j)
    ref_slice = ref[[column_name(j) for j in sl]]
    cur_slice = frame(args.rows, sl, current=True)
    agreement = check_agreement(ref_slice, cur_slice, json.loads(data))
    loop_s: list[float] = []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        scipy_loop(ref_slice, cur_slice)
        loop_s.append(time.perf_counter() - t0)
        print(f"scipy loop over {len(sl)} columns, run {i + 1}: {loop_s[-1]:.2f} s", file=sys.stderr)
    del ref, ref_slice, cur_slice
    parquet_run: dict[str, Any] | None = None
    if args.parquet:
        path = args.workdir / "current.parquet"
        cur = frame(args.rows, cols, current=True)
        cur["__prediction__"] = predictions(args.rows, current=True)
        cur.to_parquet(path, index=False)
        del cur
        parquet_run = {"file_bytes": path.stat().st_size, **run_child(args, path)}
        print(
            f"from Parquet ({parquet_run['file_bytes'] / 1e9:.2f} GB): read {parquet_run['read_parquet_s']:.1f} s, "
            f"detect {parquet_run['detect_s']:.1f} s, peak RSS {parquet_run['peak_rss_mb']:.0f} MB",
            file=sys.stderr,
        )
        path.unlink()

    runs: list[dict[str, Any]] = []
    for i in range(args.repeats):
        runs.append(run_child(args))
        r = runs[-1]
        print(
            f"engine run {i + 1}: detect {r['detect_s']:.1f} s, total {r['total_s']:.1f} s, peak RSS "
            f"{r['peak_rss_mb']:.0f} MB (data alone {r['rss_after_data_mb']:.0f} MB), HTML "
            f"{r['html_bytes'] / 1e6:.2f} MB",
            file=sys.stderr,
        )
    m_loop = statistics.median(loop_s)
    loop_all = m_loop * args.columns / len(sl)
    keys = ("load_baseline_s", "detect_s", "detect_cpu_s", "json_s", "html_s")
    median = {k: statistics.median(r[k] for r in runs) for k in keys}
    median["total_s"] = statistics.median(r["total_s"] for r in runs)
    expected = sorted(column_name(j) for j, (_, flag) in SHIFTS.items() if flag and j < args.columns)
    last = runs[-1]
    results: dict[str, Any] = {
        "rows_current": args.rows,
        "rows_reference": args.reference_rows,
        "columns": args.columns,
        "repeats": args.repeats,
        "publish_sketch_s": t_publish,
        "baseline_json_bytes": len(data),
        "baseline_sketch_bytes": sketch_bytes,
        "engine_runs": runs,
        "from_parquet_run": parquet_run,
        "engine_median": median,
        "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs),
        "rss_after_data_mb": statistics.median(r["rss_after_data_mb"] for r in runs),
        "html_bytes": last["html_bytes"],
        "json_bytes": last["json_bytes"],
        "scipy_loop": {
            "columns": len(sl),
            "runs_s": loop_s,
            "median_s": m_loop,
            "extrapolated_all_columns_s": loop_all,
        },
        "agreement": agreement,
        "verdict": {
            "dataset_drift": last["dataset_drift"],
            "drifted": last["drifted"],
            "expected_drifted": expected,
            "as_expected": sorted(last["drifted"]) == expected,
        },
        "targets": {
            "under_60_s": median["total_s"] < 60,
            "peak_rss_under_4_gb": max(r["peak_rss_mb"] for r in runs) < 4096,
            "html_under_2_mb": last["html_bytes"] < 2 * 1024 * 1024,
        },
        "evidently": "not run: not installed in any venv here (.venv, .venv-airflow, .venv-checkov, .venv-mlflow)",
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
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "uptime": {"before": uptime_before, "after": _uptime()},
    }
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(args.workdir, ignore_errors=True)
    print(f"\n| what | median of {args.repeats} |\n| --- | --- |")
    print(f"| mlopsctl: load baseline.json | {median['load_baseline_s']:.2f} s |")
    print(f"| mlopsctl: detect ({args.columns:,} columns × {args.rows:,} rows) | {median['detect_s']:.2f} s |")
    print(f"| mlopsctl: detect, CPU time of every thread | {median['detect_cpu_s']:.2f} s |")
    print(f"| mlopsctl: JSON document | {median['json_s']:.2f} s |")
    print(f"| mlopsctl: HTML page | {median['html_s']:.2f} s |")
    print(f"| **mlopsctl total** | **{median['total_s']:.2f} s** |")
    print(f"| scipy loop, {len(sl)} columns | {m_loop:.2f} s |")
    print(f"| scipy loop, extrapolated to {args.columns:,} columns | {loop_all:.1f} s |")
    print(
        f"\npeak RSS {results['peak_rss_mb_max']:.0f} MB (the current frame alone: "
        f"{results['rss_after_data_mb']:.0f} MB); HTML {last['html_bytes'] / 1e6:.2f} MB ({last['html_charts']} "
        f"charts); JSON {last['json_bytes'] / 1e6:.2f} MB; baseline.json {len(data) / 1e6:.1f} MB; "
        f"publish sketching {t_publish:.1f} s; drifted {last['drifted']} (expected {expected})"
    )
    print(f"\nresults: {args.output}", file=sys.stderr)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _git() -> dict[str, Any]:
    commit, changed = harness.git_changes(HERE.parent, "src/mlopsctl/monitoring", "src/mlopsctl/data")
    return {"commit": commit, "uncommitted_monitoring_or_data_files": changed}


if __name__ == "__main__":
    main()
