"""Serving benchmark of mlopsctl: `mlopsctl serve` against baselines, side by side in one run.

Builds a store with the wine random forest (100 trees, the real red wine data), then measures, on a
2-core machine with the servers pinned to core 0 and wrk to core 1:

- throughput and latency (wrk, median of interleaved repeats) of `mlopsctl serve` (1 and 100 rows,
  concurrency 1 and 8; one row at concurrency 1 also through the Open Inference Protocol's
  `/v2/models/wine/infer`), a bare ASGI app, a FastAPI endpoint that validates the row and returns a
  constant, and a hand-written FastAPI + scikit-learn endpoint;
- cold start of `mlopsctl serve` (spawn → first 200 of POST /predict), resident memory of each server,
  and whether scikit-learn/pandas are loaded in the mlopsctl server;
- the in-process cost of one prediction (ONNX runner, the full hot path, scikit-learn).

Prints a table and writes bench/results.json. Run `make bench`, or
`.venv/bin/python bench/serve_bench.py [--quick] [--duration S] [--repeats N]`. See bench/README.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import harness
from harness import Server, Servers

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / ".work"
WINE_RED = ROOT.parent / "shared" / "data" / "wine-quality" / "winequality-red.csv"
TARGET = "quality"
WARMUP_SECONDS = 1
PROJECT_TOML = """
[project]
name = "wine"
[data]
path = "{data}"
target = "quality"
[training]
task = "classification"
model = "random_forest"
params = {{ n_estimators = 100 }}
cv_folds = 2
[store]
uri = "{store}"
"""


INFER_PATH = "/v2/models/wine/infer"


@dataclass(frozen=True)
class Case:
    server: str
    rows: int  # 1 → {"features": ...}, else {"instances": [...]}
    connections: int
    route: str = "predict"  # or "infer": the same rows as Open Inference Protocol tensors, POST INFER_PATH

    @property
    def key(self) -> str:
        via = "" if self.route == "predict" else f"/{self.route}"
        return f"{self.server}{via}/{self.rows}row/c{self.connections}"

    @property
    def path(self) -> str:
        return "/predict" if self.route == "predict" else INFER_PATH

    @property
    def label(self) -> str:
        return LABELS[self.server] if self.route == "predict" else "  same, /v2/.../infer"


# One round visits every server before any is measured again (round-robin), so slow drifts of the
# machine's state hit all of them alike.
CASES = [
    Case("mlopsctl", 1, 1),
    Case("mlopsctl", 1, 1, "infer"),
    Case("mlopsctl_nocapture", 1, 1),
    Case("fastapi_const", 1, 1),
    Case("asgi_const", 1, 1),
    Case("fastapi_sklearn", 1, 1),
    Case("mlopsctl", 1, 8),
    Case("mlopsctl_nocapture", 1, 8),
    Case("fastapi_const", 1, 8),
    Case("asgi_const", 1, 8),
    Case("fastapi_sklearn", 1, 8),
    Case("mlopsctl", 100, 1),
    Case("fastapi_sklearn", 100, 1),
    Case("mlopsctl", 100, 8),
]
LABELS = {
    "mlopsctl": "mlopsctl serve (ONNX)",
    "mlopsctl_nocapture": "  same, --no-capture",
    "asgi_const": "bare ASGI, constant",
    "fastapi_const": "FastAPI+pydantic, constant",
    "fastapi_sklearn": "FastAPI+sklearn (by hand)",
}


def say(msg: str) -> None:
    print(msg, flush=True)


# -- set-up ---------------------------------------------------------------------------------------


def check_prerequisites() -> None:
    problems = []
    if not WINE_RED.is_file():
        problems.append(f"the wine data is not at {WINE_RED} (the shared datasets sit beside the repo)")
    for tool, hint in (("wrk", "apt-get install wrk"), ("taskset", "apt-get install util-linux")):
        if shutil.which(tool) is None:
            problems.append(f"`{tool}` is not installed ({hint})")
    if len(os.sched_getaffinity(0)) < 2:
        problems.append("needs 2 CPU cores (server on core 0, wrk on core 1)")
    if problems:
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        raise SystemExit(2)


def infer_body(rows: list[dict[str, float]]) -> bytes:
    """The rows as an Open Inference Protocol request: one FP64 [N, 1] tensor per feature, in JSON."""
    names = list(rows[0])
    shape = [len(rows), 1]
    inputs = [{"name": n, "datatype": "FP64", "shape": shape, "data": [r[n] for r in rows]} for n in names]
    return json.dumps({"inputs": inputs}).encode()


def infer_script(folder: Path, body: bytes) -> Path:
    """wrk's script for the body, sent to INFER_PATH (harness.run_wrk names /predict in the URL)."""
    script = harness.write_lua(folder, "body_infer_1row", body)
    script.write_text(f'wrk.path = "{INFER_PATH}"\n' + script.read_text())
    return script


def wine_rows(n: int) -> list[dict[str, float]]:
    with WINE_RED.open(newline="") as f:
        reader = csv.DictReader(f, delimiter=";")
        rows = []
        for row in reader:
            rows.append({k: float(v) for k, v in row.items() if k != TARGET})
            if len(rows) == n:
                break
    return rows


def wine_store(work: Path, reason: str) -> tuple[Path, dict[str, Any], int]:
    """``work`` made afresh with a project and a store holding wine v1 (random forest, 100 trees) at prod:
    the store's folder, the training run and the version."""
    from mlopsctl import registry
    from mlopsctl.config import load_config
    from mlopsctl.registry.publishing import publish_run
    from mlopsctl.store import open_store
    from mlopsctl.training.train import train_project

    if work.exists():
        shutil.rmtree(work)
    project, store_dir = work / "project", work / "store"
    project.mkdir(parents=True)
    (project / "mlops.toml").write_text(PROJECT_TOML.format(data=WINE_RED, store=store_dir))
    cfg = load_config(project)
    store = open_store(cfg.store_uri())
    run = train_project(cfg, store)
    version = publish_run(store, run, name=cfg.model_name).version
    registry.promote(store, "wine", version, "prod", reason=reason)
    return store_dir, run, version


def build_store() -> tuple[Path, Path, dict[str, Any]]:
    """A fresh store with wine v1 (random forest, 100 trees) at prod; its model.skops written out."""
    from mlopsctl import registry
    from mlopsctl.store import open_store

    if WORK.exists():
        shutil.rmtree(WORK)  # before the clock starts, as it always was
    t0 = time.perf_counter()
    store_dir, run, version = wine_store(WORK, "serving benchmark")
    files = registry.read_files(open_store(str(store_dir)), "wine", version)
    skops = WORK / "model.skops"
    skops.write_bytes(files["model.skops"])
    info = {
        "version": version,
        "run_id": run["run_id"],
        "onnx": "model.onnx" in files,
        "export": json.loads(files["export.json"]),
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    return store_dir, skops, info


def server_specs(store_dir: Path, skops: Path, cwd: Path) -> dict[str, Server]:
    bindir = Path(sys.executable).parent
    mlopsctl = (
        [str(bindir / "mlopsctl")] if (bindir / "mlopsctl").exists() else [sys.executable, "-m", "mlopsctl.cli.main"]
    )
    # the same uvicorn settings as `mlopsctl serve`: defaults (loop/http "auto"), one worker, no access log
    uv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(BENCH),
        "--host",
        harness.HOST,
        "--port",
        "{port}",
    ]
    uv += ["--log-level", "warning", "--no-access-log"]
    serve_opts = ["--host", harness.HOST, "--port", "{port}", "--log-level", "warning"]
    serve = [*mlopsctl, "--store", str(store_dir), "serve", "--model", "wine@prod", *serve_opts]
    argv = {
        "mlopsctl": serve,
        # the cost of capture, side by side (the targets are measured with it on, the default)
        "mlopsctl_nocapture": [*serve, "--no-capture"],
        "asgi_const": [*uv, "asgi_const:app"],
        "fastapi_const": [*uv, "fastapi_const:app"],
        "fastapi_sklearn": [*uv, "fastapi_sklearn:app"],
    }
    env = {"fastapi_sklearn": {"BENCH_SKOPS": str(skops)}}
    return {k: Server(k, LABELS[k], a, cwd, env.get(k, {})) for k, a in argv.items()}


# -- measurements ---------------------------------------------------------------------------------


def cold_starts(spec: Server, body: bytes, n: int) -> list[float]:
    """Seconds from spawning `mlopsctl serve` to its first 200 on POST /predict (polled every 5 ms)."""
    times = []
    for i in range(n):
        with Servers() as servers:
            s = servers.add(Server(f"{spec.key}-cold{i}", spec.label, spec.argv, spec.cwd, spec.env))
            t0 = s.start()
            assert s.proc is not None
            times.append(harness.wait_for_200(s.port, body, s.proc, timeout=60, poll=0.005, since=t0))
    return times


def time_calls(fn: Callable[[], object], n: int) -> float:
    """Median microseconds of one call of ``fn`` over ``n`` calls (after a few unmeasured ones)."""
    for _ in range(min(10, n)):
        fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t = clock()
        fn()
        samples.append(clock() - t)
    return statistics.median(samples) / 1000


def in_process(store_dir: Path, rows: list[dict[str, float]], quick: bool, infer: bytes) -> dict[str, float]:
    """Microseconds per call in this process (pinned to the servers' core while no load runs)."""
    import numpy as np
    import orjson
    import pandas as pd

    from mlopsctl import registry
    from mlopsctl.bundle.safety import load_skops
    from mlopsctl.serving.loaded import load
    from mlopsctl.serving.predict import native_response, predict_rows
    from mlopsctl.serving.protocols import protocols
    from mlopsctl.store import open_store

    store = open_store(str(store_dir))
    model = load(store, "wine", "prod")
    assert model.runtime == "onnx", f"expected the ONNX runtime, got {model.runtime}"
    one, many = rows[:1], rows[:100]
    cols1, cols100 = model.spec.columns(one), model.spec.columns(many)
    pipeline = load_skops(registry.read_files(store, "wine", model.version, ["model.skops"])["model.skops"])
    frame1, frame100 = pd.DataFrame(one), pd.DataFrame(many)
    n_fast, n_slow = (500, 30) if quick else (5000, 200)
    evict = np.ones(4 * 2**20)  # 32 MB walked before each call: no cache level keeps the forest (worst case)

    def cold_cache_1row() -> float:
        samples = []
        for _ in range(n_fast // 5):
            evict.sum()
            t = time.perf_counter_ns()
            model.runner.predict(cols1)
            samples.append(time.perf_counter_ns() - t)
        return statistics.median(samples) / 1000

    def full_1row() -> bytes:
        preds, probas = predict_rows(model, one, field_prefix="features")
        return orjson.dumps(native_response(model, preds, probas, single=True), option=orjson.OPT_SERIALIZE_NUMPY)

    wire = protocols()
    native_body = json.dumps({"features": one[0]}).encode()

    def protocol_1row(endpoint: str, body: bytes) -> Callable[[], bytes]:
        """A body through one wire protocol: parsed, validated, predicted, answered as JSON."""
        protocol = wire[endpoint]

        def run() -> bytes:
            got, prefix, single = protocol.rows(model, "application/json", body, 100)
            preds, probas = predict_rows(model, got, field_prefix=prefix)
            out = protocol.answer(model, preds, probas, single, "prod", "request-id")
            return orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY)

        return run

    out = {
        "onnx_runner_1row_us": time_calls(lambda: model.runner.predict(cols1), n_fast),
        "onnx_runner_1row_caches_evicted_us": cold_cache_1row(),
        "spec_columns_1row_us": time_calls(lambda: model.spec.columns(one), n_fast),
        "predict_rows_1row_us": time_calls(lambda: predict_rows(model, one), n_fast),
        "predict_rows_response_json_1row_us": time_calls(full_1row, n_fast),
        "protocol_predict_1row_us": time_calls(protocol_1row("predict", native_body), n_fast),
        "protocol_infer_1row_us": time_calls(protocol_1row("infer", infer), n_fast),
        "onnx_runner_100rows_us": time_calls(lambda: model.runner.predict(cols100), n_fast // 10),
        "predict_rows_100rows_us": time_calls(lambda: predict_rows(model, many), n_fast // 10),
        "sklearn_predict_proba_1row_us": time_calls(lambda: pipeline.predict_proba(frame1), n_slow),
        "sklearn_predict_proba_100rows_us": time_calls(lambda: pipeline.predict_proba(frame100), n_slow),
    }
    n_jobs = pipeline.get_params().get("model__n_jobs")
    pipeline.set_params(model__n_jobs=1)
    out["sklearn_predict_proba_1row_n_jobs_1_us"] = time_calls(lambda: pipeline.predict_proba(frame1), n_slow)
    out["sklearn_model_n_jobs"] = n_jobs
    return out


def load_runs(
    servers: dict[str, Server],
    scripts: dict[tuple[int, str], Path],
    cases: list[Case],
    duration: int,
    repeats: int,
) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {c.key: [] for c in cases}
    total = len(cases) * repeats
    done = 0
    for r in range(repeats):
        for case in cases:
            port = servers[case.server].port
            script = scripts[(case.rows, case.route)]
            harness.run_wrk(port, script, case.connections, WARMUP_SECONDS)
            res = harness.run_wrk(port, script, case.connections, duration)
            res["repeat"] = r + 1
            runs[case.key].append(res)
            done += 1
            warn = f"  !! {res['errors']} errors ({res['non_2xx']} non-2xx)" if res["errors"] else ""
            say(
                f"  [{done:>2}/{total}] {case.key:<30} {res['rps']:>9.0f} req/s  "
                f"p50 {res['p50_ms']:.3f} ms  p99 {res['p99_ms']:.3f} ms{warn}"
            )
    return runs


# -- report ---------------------------------------------------------------------------------------


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p90_ms", "p99_ms", "mean_ms")}


def git_state() -> dict[str, Any]:
    """The commit checked out and the `src/` files changed since (read-only git commands)."""
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
    changed = subprocess.run([*git, "diff", "--name-only", "HEAD", "--", "src"], capture_output=True, text=True)
    return {"git_commit": commit.stdout.strip() or None, "src_changed_since_commit": changed.stdout.split()}


def environment(
    args: argparse.Namespace, servers: dict[str, Server], libs: dict[str, Any], git: dict[str, Any]
) -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
    uv_loop = {k: v.get("uvloop") for k, v in libs.items()}
    uv_http = {k: v.get("httptools") for k, v in libs.items()}
    return {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([sys.executable, *sys.argv]),
        "cpu_model": harness.cpu_model(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {
            d: version(d)
            for d in (
                "mlopsctl",
                "uvicorn",
                "fastapi",
                "starlette",
                "pydantic",
                "onnxruntime",
                "scikit-learn",
                "pandas",
                "numpy",
                "uvloop",
                "httptools",
            )
        },
        "wrk": wrk[0] if wrk else None,
        **git,  # taken when the run started: other people may commit while it runs
        "uvloop_loaded": uv_loop,
        "httptools_loaded": uv_http,
        "server_commands": {k: ["taskset", "-c", harness.SERVER_CORE, *s.argv] for k, s in servers.items()},
        "wrk_command": f"taskset -c {harness.CLIENT_CORE} wrk -t1 -c{{1|8}} -d{args.duration}s --timeout 5s "
        f"--latency -s BODY.lua http://127.0.0.1:PORT/predict (the infer case's script sets wrk.path = {INFER_PATH})",
        "duration_s": args.duration,
        "repeats": args.repeats,
        "warmup_s": WARMUP_SECONDS,
    }


def verdicts(
    summary: dict[str, dict[str, float]], runs: dict[str, list[dict[str, Any]]], cold: float, rss: float
) -> list[dict[str, Any]]:
    """The targets the cases run can judge (a --cases run judges fewer)."""
    out = []
    ours, const = summary.get("mlopsctl/1row/c1"), summary.get("fastapi_const/1row/c1")
    if ours is not None and const is not None:
        out.append(
            {
                "target": "1-row req/s at c=1 >= FastAPI constant endpoint",
                "value": f"{ours['rps']:.0f} vs {const['rps']:.0f} req/s (x{ours['rps'] / const['rps']:.2f})",
                "met": ours["rps"] >= const["rps"],
            }
        )
    infer = summary.get("mlopsctl/infer/1row/c1")
    if ours is not None and infer is not None:
        # each round runs the two back to back: the ratio within a round is less exposed to the machine's drift
        pairs = zip(runs["mlopsctl/infer/1row/c1"], runs["mlopsctl/1row/c1"], strict=True)
        paired = [i["rps"] / p["rps"] for i, p in pairs]
        out.append(
            {
                "target": "/v2/.../infer 1-row req/s at c=1 >= 0.9 x /predict's",
                "value": f"{infer['rps']:.0f} vs {ours['rps']:.0f} req/s (x{infer['rps'] / ours['rps']:.2f}; "
                f"median of the rounds' ratios x{statistics.median(paired):.2f})",
                "met": infer["rps"] >= 0.9 * ours["rps"],
            }
        )
    if "mlopsctl/1row/c8" in summary:
        p99 = summary["mlopsctl/1row/c8"]["p99_ms"]
        out.append({"target": "p99 at c=8 (1 row) < 5 ms", "value": f"{p99:.2f} ms", "met": p99 < 5.0})
    out.append({"target": "cold start < 1 s", "value": f"{cold:.3f} s (median)", "met": cold < 1.0})
    out.append({"target": "RSS < 150 MB", "value": f"{rss:.0f} MB", "met": rss < 150.0})
    return out


def print_report(results: dict[str, Any]) -> None:
    summary, runs = results["medians"], results["runs"]
    reps = results["environment"]["repeats"]
    base = {c: summary[k]["rps"] for c in (1, 8) if (k := f"fastapi_const/1row/c{c}") in summary}
    say("")
    say(f"Load (server on core 0, wrk -t1 on core 1; median of {reps} interleaved runs)")
    head = f"{'server':<27} {'rows':>4} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs FastAPI':>11}"
    say(head)
    say("-" * len(head))
    for case in (c for c in CASES if c.key in summary):
        m = summary[case.key]
        ratio = f"x{m['rps'] / base[case.connections]:.2f}" if case.rows == 1 and case.connections in base else ""
        spread = "/".join(f"{r['rps']:.0f}" for r in runs[case.key])
        say(
            f"{case.label:<27} {case.rows:>4} {case.connections:>4} {m['rps']:>8.0f} "
            f"{m['p50_ms']:>8.3f} {m['p99_ms']:>8.3f} {ratio:>11}   runs: {spread}"
        )
    say("")
    cold = results["cold_start_s"]
    say(
        f"Cold start of mlopsctl serve (spawn → first 200 of POST /predict): median {cold['median']:.3f} s"
        f"  (runs: {', '.join(f'{x:.3f}' for x in cold['runs'])})"
    )
    say("")
    say("Resident memory after the load runs (VmRSS) and native packages loaded:")
    for key, info in results["servers"].items():
        loaded = ", ".join(k for k, v in info["libraries"].items() if v) or "none"
        say(f"  {LABELS[key]:<27} {info['rss_mb']:>6.0f} MB   loaded: {loaded}")
    say("")
    say("In process, one call (median, µs):")
    for key, value in results["in_process_us"].items():
        if key.endswith("_us"):
            say(f"  {key.removesuffix('_us'):<40} {value:>10.1f}")
    say(f"  (the fitted forest has n_jobs={results['in_process_us']['sklearn_model_n_jobs']})")
    say("")
    say("Targets:")
    for v in results["verdicts"]:
        say(f"  [{'met' if v['met'] else 'NOT MET':^7}] {v['target']}: {v['value']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of each case (default 3)")
    parser.add_argument("--quick", action="store_true", help="smoke check: 2 s runs, 1 repeat, 3 cold starts")
    parser.add_argument("--cold-starts", type=int, default=5, help="cold starts to time (default 5)")
    parser.add_argument("--output", type=Path, default=BENCH / "results.json", help="where to write the JSON")
    parser.add_argument(
        "--cases", help="comma-separated case keys to run (default: all), e.g. mlopsctl/1row/c1,mlopsctl/infer/1row/c1"
    )
    args = parser.parse_args(argv)
    cases = CASES
    if args.cases:
        known = {c.key: c for c in CASES}
        unknown = [k for k in args.cases.split(",") if k not in known]
        if unknown:
            parser.error(f"unknown case {unknown[0]!r}; the cases are {', '.join(known)}")
        cases = [known[k] for k in args.cases.split(",")]
    if args.quick:
        args.duration, args.repeats, args.cold_starts = 2, 1, 3
    check_prerequisites()
    # a polite `kill` of the benchmark still stops the servers (the `with` blocks run on SystemExit)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    git = git_state()
    load_before = os.getloadavg()

    say(f"building the store: wine random forest (100 trees) on {WINE_RED.name} ...")
    store_dir, skops, model_info = build_store()
    info = model_info
    say(f"  wine v{info['version']} at prod, ONNX export: {info['onnx']} ({info['build_seconds']} s)")
    rows = wine_rows(100)
    bodies = {1: json.dumps({"features": rows[0]}).encode(), 100: json.dumps({"instances": rows}).encode()}
    infer = infer_body(rows[:1])
    logs = WORK / "servers"
    logs.mkdir()
    scripts = {(n, "predict"): harness.write_lua(WORK, f"body_{n}row", b) for n, b in bodies.items()}
    scripts[(1, "infer")] = infer_script(WORK, infer)
    needed = {"mlopsctl"} | {c.server for c in cases}  # mlopsctl serve: its cold start and memory, always
    specs = {k: s for k, s in server_specs(store_dir, skops, logs).items() if k in needed}

    os.sched_setaffinity(0, {int(harness.CLIENT_CORE)})  # this driver stays off the servers' core
    say(f"cold start of mlopsctl serve, {args.cold_starts} times ...")
    cold = cold_starts(specs["mlopsctl"], bodies[1], args.cold_starts)

    say("in-process prediction cost (this process on core 0, nothing else of ours running) ...")
    os.sched_setaffinity(0, {int(harness.SERVER_CORE)})
    try:
        inproc = in_process(store_dir, rows, args.quick, infer)
    finally:
        os.sched_setaffinity(0, {int(harness.CLIENT_CORE)})

    with Servers() as servers:
        for s in specs.values():
            servers.add(s)
            s.start()
        for s in specs.values():
            assert s.proc is not None
            try:
                harness.wait_for_200(s.port, bodies[1], s.proc, timeout=120, poll=0.05)
            except (RuntimeError, TimeoutError) as exc:
                raise SystemExit(f"error: {s.key}: {exc}\n{s.log_tail()}") from None
        for case in cases:  # every body a case sends must be answered with a 200
            body = infer if case.route == "infer" else bodies[case.rows]
            status, text = harness.post(specs[case.server].port, case.path, body)
            if status != 200:
                raise SystemExit(f"error: {case.key}: HTTP {status}: {text[:300]!r}")
        _, models = harness.get(specs["mlopsctl"].port, "/models")
        runtime = json.loads(models)["models"][0]["runtime"]
        say(
            f"load runs: {len(cases)} cases x {args.repeats} repeats x ({WARMUP_SECONDS} s warm-up + "
            f"{args.duration} s), mlopsctl runtime: {runtime} ..."
        )
        runs = load_runs(specs, scripts, cases, args.duration, args.repeats)
        server_info: dict[str, dict[str, Any]] = {
            k: {
                "pid": s.pid,
                "rss_mb": round(harness.rss_mb(s.pid), 1),
                "libraries": harness.loaded_libraries(s.pid),
            }
            for k, s in specs.items()
        }

    summary = {key: medians(r) for key, r in runs.items()}
    cold_median = statistics.median(cold)
    results: dict[str, Any] = {
        "environment": environment(args, specs, {k: v["libraries"] for k, v in server_info.items()}, git),
        "model": {**model_info, "runtime_served": runtime},
        "medians": summary,
        "runs": runs,
        "cold_start_s": {"median": cold_median, "runs": cold},
        "servers": server_info,
        "in_process_us": inproc,
        "verdicts": verdicts(summary, runs, cold_median, server_info["mlopsctl"]["rss_mb"]),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print_report(results)
    say(f"\nwrote {args.output} ({results['total_seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
