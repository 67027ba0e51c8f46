"""SST-2 publish benchmark: wall time and peak memory of `init → train → publish`, as a user runs them.

Issue 15, item 7: `mlopsctl init sst2 --data ../shared/data/sentiment/sst-2/train.tsv --target label &&
cd sst2 && mlopsctl train && mlopsctl publish` grew to 21.8 GB and was killed by the kernel's OOM killer
(the ONNX parity check scored the whole 13,470-row holdout through a 78,867-term TF-IDF model as one
dense matrix). Target: `publish` of SST-2's train split finishes with peak RSS ≤ 2 GB.

For one source tree (default: this checkout's `src`; `--src DIR` points PYTHONPATH at another
checkout's `src`, e.g. `git worktree add --detach /tmp/mlops-before 912c7b0`), in a fresh temporary
folder, each step runs as its own process, `python -m mlopsctl.cli.main ...` with PYTHONPATH=<src>:

    init sst2 --data <abs path of train.tsv> --target label --json
    train --json                       (in sst2/)
    publish --json                     (in sst2/)
    models show sst2@<version> --json  (not measured: reads the export check back)

(`--json` only changes what is printed: the progress display is off and the result is JSON to parse.)
Before the first step, the same interpreter and environment print `mlopsctl.__file__`, which must lie
under `--src`: the venv's editable install of this checkout must not shadow the tree being measured.

Per step: wall time, and peak RSS of the step's process: `ru_maxrss` from `os.wait4` on it (the
kernel's high-water mark of the process, or of the largest of its waited-for children). A watchdog
thread also samples the summed VmRSS of the process and all its descendants every 50 ms: it kills the
whole process group when that sum passes `--cap-gb` (default 8 GB), so the "before" code cannot take
the shared machine down, and records "killed at N GB after T s". The sampled curve is stored (the
largest sample in each 0.5 s) to show when memory grows. No cgroup is used: the memory controller here
is cgroup v1 and belongs to the machinery that runs the session; RLIMIT_AS would count numpy's and
onnxruntime's virtual reservations, not memory used.

Writes `bench/publish_results.json`: a list of runs (one per repeat of the chain), each labelled
("before"/"after"); running again with a label replaces that label's runs and keeps the others. Prints
the runs and a before/after table of medians over the repeats.

    .venv/bin/python bench/publish_bench.py --label after --repeats 3
    .venv/bin/python bench/publish_bench.py --label before --src /tmp/mlops-before/src
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DATA = (ROOT.parent / "shared" / "data" / "sentiment" / "sst-2" / "train.tsv").resolve()
TARGET = "label"
NAME = "sst2"
POLL_S = 0.05
CURVE_BUCKET_S = 0.5
TARGET_PUBLISH_MB = 2048.0
STEPS = ("init", "train", "publish")
PACKAGES = ("scikit-learn", "numpy", "scipy", "pandas", "skl2onnx", "onnx", "onnxruntime", "skops", "pyarrow")


def say(msg: str) -> None:
    print(msg, flush=True)


# -- process tree memory ---------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0  # gone, or a zombie (no VmRSS line)


def tree_rss_kb(pid: int) -> tuple[int, int]:
    """Summed VmRSS (kB) of `pid` and every descendant, and how many processes that is."""
    seen, todo, total = set(), [pid], 0
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss_kb(p)
        todo.extend(_children(p))
    return total, len(seen)


@dataclass
class Watch:
    """Samples the process tree every POLL_S; kills its process group above `cap_kb`."""

    pid: int
    cap_kb: int
    t0: float
    peak_kb: int = 0
    peak_at_s: float = 0.0
    max_procs: int = 1
    killed_at_kb: int | None = None
    killed_after_s: float | None = None
    curve: dict[int, int] = field(default_factory=dict)  # bucket index → max kB in that bucket
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            kb, n = tree_rss_kb(self.pid)
            t = time.perf_counter() - self.t0
            if kb > self.peak_kb:
                self.peak_kb, self.peak_at_s = kb, t
            self.max_procs = max(self.max_procs, n)
            b = int(t / CURVE_BUCKET_S)
            self.curve[b] = max(self.curve.get(b, 0), kb)
            if kb > self.cap_kb and self.killed_at_kb is None:
                self.killed_at_kb, self.killed_after_s = kb, t
                try:
                    os.killpg(self.pid, signal.SIGKILL)  # the child leads its own session/group
                except ProcessLookupError:
                    pass
                return
            self._stop.wait(POLL_S)


def run_step(name: str, argv: list[str], cwd: Path, env: dict[str, str], cap_kb: int) -> dict[str, Any]:
    """One step as a separate process: wall time, ru_maxrss, sampled tree RSS, output."""
    out_path, err_path = cwd / f".bench-{name}.out", cwd / f".bench-{name}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True)
        watch = Watch(proc.pid, cap_kb, t0)
        watch.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        wall = time.perf_counter() - t0
        watch.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
    stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    killed = watch.killed_at_kb is not None
    res: dict[str, Any] = {
        "argv": ["python", *argv[1:]],
        "exit_code": proc.returncode,
        "ok": proc.returncode == 0,
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # ru_maxrss is in kB on Linux
        "sampled_tree_peak_rss_mb": round(watch.peak_kb / 1024, 1),
        "sampled_tree_peak_at_s": round(watch.peak_at_s, 2),
        "max_processes_in_tree": watch.max_procs,
        "user_cpu_s": round(usage.ru_utime, 2),
        "system_cpu_s": round(usage.ru_stime, 2),
        "killed_by_cap": killed,
        "rss_curve_mb": [[round(b * CURVE_BUCKET_S, 1), round(kb / 1024)] for b, kb in sorted(watch.curve.items())],
    }
    if killed:
        res["killed_at_mb"] = round(watch.killed_at_kb / 1024, 1)  # type: ignore[operator]
        res["killed_after_s"] = round(watch.killed_after_s, 2)  # type: ignore[arg-type]
    if not res["ok"]:
        res["stderr_tail"] = stderr[-2000:]
    res["_stdout"] = stdout
    return res


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        start = text.find("{")
        return json.loads(text[start:]) if start >= 0 else None


# -- one chain ----------------------------------------------------------------------------------


def child_env(src: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src)
    env.pop("MLOPS_STORE", None)  # the project's own ./.mlops, as `init` writes it
    return env


def check_import(src: Path, env: dict[str, str], cwd: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", "import mlopsctl; print(mlopsctl.__file__)"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(out).resolve().is_relative_to(src.resolve()):
        raise SystemExit(f"error: mlopsctl imports from {out}, not from {src}")
    return out


def run_chain(src: Path, cap_kb: int, repeat: int, keep: bool) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="publish-bench-"))
    env = child_env(src)
    cli = [sys.executable, "-m", "mlopsctl.cli.main"]
    imported = check_import(src, env, work)
    say(f"  repeat {repeat}: {work}  (mlopsctl from {imported})")
    steps: dict[str, Any] = {}
    outcome: dict[str, Any] = {}
    plan = [
        ("init", [*cli, "init", NAME, "--data", str(DATA), "--target", TARGET, "--json"], work),
        ("train", [*cli, "train", "--json"], work / NAME),
        ("publish", [*cli, "publish", "--json"], work / NAME),
    ]
    try:
        for name, argv, cwd in plan:
            res = run_step(name, argv, cwd, env, cap_kb)
            stdout = res.pop("_stdout")
            steps[name] = res
            line = f"    {name:<8} {res['wall_s']:>8.1f} s  peak RSS {res['peak_rss_mb']:>8.0f} MB"
            line += f"  (tree, sampled: {res['sampled_tree_peak_rss_mb']:.0f} MB at {res['sampled_tree_peak_at_s']} s)"
            if res["killed_by_cap"]:
                line += f"  KILLED at {res['killed_at_mb'] / 1024:.2f} GB after {res['killed_after_s']} s"
            elif not res["ok"]:
                line += f"  FAILED (exit {res['exit_code']})"
            say(line)
            if not res["ok"]:
                break
            doc = parse_json(stdout)
            if name == "init":
                outcome["init"] = {k: doc.get(k) for k in ("task", "model", "rows", "features")}
            elif name == "train":
                outcome["run_id"] = doc["run_id"]
                outcome["holdout"] = doc["metrics"]["holdout"]
                outcome["cv"] = doc["metrics"].get("cv")
                outcome["data"] = doc.get("data")
                outcome["train_timings"] = doc.get("timings")
            elif name == "publish":
                outcome["version"] = doc.get("version")
                outcome["publish_runtime"] = doc.get("runtime")
                outcome["publish_export"] = doc.get("export")
        if steps.get("publish", {}).get("ok"):
            show = subprocess.run(
                [*cli, "models", "show", f"{NAME}@{outcome['version']}", "--json"],
                cwd=work / NAME,
                env=env,
                capture_output=True,
                text=True,
            )
            doc = parse_json(show.stdout) if show.returncode == 0 else None
            if doc:
                outcome["show_runtime"] = doc.get("runtime")
                outcome["show_export"] = doc.get("export")
                outcome["model_files_bytes"] = {k: v.get("size") for k, v in (doc.get("files") or {}).items()}
    finally:
        if keep:
            say(f"    kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return {"repeat": repeat, "steps": steps, "outcome": outcome, "imported_from": imported}


# -- environment ---------------------------------------------------------------------------------


def git_state(src: Path) -> dict[str, Any]:
    tree = src.resolve().parent
    git = ["git", "-C", str(tree)]

    def run(*a: str) -> str:
        return subprocess.run([*git, *a], capture_output=True, text=True).stdout.rstrip("\n")

    return {
        "tree": str(tree),
        "git_commit": run("rev-parse", "HEAD") or None,
        "git_subject": run("log", "-1", "--format=%s")[:200] or None,
        "src_changed_since_commit": run("status", "--porcelain", "--", "src").splitlines(),
    }


def meminfo_mb(key: str) -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def environment() -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return {
        "nproc": int(nproc) if nproc.isdigit() else None,
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "mem_total_mb": meminfo_mb("MemTotal"),
        "mem_available_mb_at_start": meminfo_mb("MemAvailable"),
        "swap_total_mb": meminfo_mb("SwapTotal"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "versions": {d: version(d) for d in PACKAGES},
        "thread_env": {k: os.environ[k] for k in os.environ if k.endswith("_NUM_THREADS")},
    }


# -- report --------------------------------------------------------------------------------------


def step_summary(runs: list[dict[str, Any]], step: str) -> dict[str, Any] | None:
    got = [r["steps"][step] for r in runs if step in r["steps"]]
    if not got:
        return None
    done = [s for s in got if s["ok"]]
    killed = [s for s in got if s["killed_by_cap"]]
    out: dict[str, Any] = {"n": len(got), "n_ok": len(done)}
    if done:
        out["wall_s"] = statistics.median(s["wall_s"] for s in done)
        out["peak_rss_mb"] = statistics.median(s["peak_rss_mb"] for s in done)
        out["wall_runs"] = [s["wall_s"] for s in done]
        out["rss_runs"] = [s["peak_rss_mb"] for s in done]
    if killed:
        out["killed_at_mb"] = statistics.median(s["killed_at_mb"] for s in killed)
        out["killed_after_s"] = statistics.median(s["killed_after_s"] for s in killed)
    return out


def cell(s: dict[str, Any] | None) -> str:
    if s is None:
        return "not run"
    if s.get("n_ok"):
        text = f"{s['wall_s']:.1f} s, {s['peak_rss_mb']:,.0f} MB"
        return text + (f" (median of {s['n_ok']})" if s["n_ok"] > 1 else "")
    if "killed_at_mb" in s:
        return f"killed at {s['killed_at_mb'] / 1024:.1f} GB after {s['killed_after_s']:.0f} s"
    return "failed"


def print_table(all_runs: list[dict[str, Any]]) -> None:
    labels = [lab for lab in ("before", "after") if any(r["label"] == lab for r in all_runs)]
    labels += sorted({r["label"] for r in all_runs} - set(labels))
    by = {lab: [r for r in all_runs if r["label"] == lab] for lab in labels}
    say("")
    say("SST-2 (67,349 rows): wall time and peak RSS of each step's process")
    head = f"{'step':<9}" + "".join(f"{lab:<38}" for lab in labels)
    say(head)
    say("-" * len(head))
    for step in STEPS:
        say(f"{step:<9}" + "".join(f"{cell(step_summary(by[lab], step)):<38}" for lab in labels))
    for lab in labels:
        r = by[lab][0]
        o = r["outcome"]
        ex = o.get("show_export") or o.get("publish_export") or {}
        commit = (r["source"]["git_commit"] or "?")[:7]
        acc = o.get("holdout", {}).get("accuracy")
        line = f"  {lab}: {commit}, holdout accuracy {acc}"
        if o.get("publish_runtime"):
            line += (
                f", runtime {o.get('show_runtime') or o['publish_runtime']}, export check "
                f"{ex.get('n_rows_checked')} rows, max |diff| {ex.get('max_abs_diff'):.2g}, ok={ex.get('ok')}"
            )
        else:
            line += ", no version published"
        say(line)
    pub = step_summary(by.get("after", []), "publish")
    if pub and pub.get("n_ok"):
        worst = max(pub["rss_runs"])
        verdict = "met" if worst <= TARGET_PUBLISH_MB else "NOT MET"
        say(f"\nTarget publish peak RSS <= 2 GB (after): [{verdict}] {worst:,.0f} MB (largest of {pub['n_ok']})")


def compact(text: str) -> str:
    """Lists of numbers (the RSS curves, load averages) on one line each."""
    return re.sub(r"\[\s*([-0-9.e,\s]+?)\s*\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the src/ to put on PYTHONPATH")
    parser.add_argument("--label", default="after", help='label of these runs ("before" or "after")')
    parser.add_argument("--repeats", type=int, default=1, help="times to run the whole chain (default 1)")
    parser.add_argument("--cap-gb", type=float, default=8.0, help="kill a step above this RSS (default 8)")
    parser.add_argument("--output", type=Path, default=BENCH / "publish_results.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project folders")
    args = parser.parse_args(argv)
    src = args.src.resolve()
    if not (src / "mlopsctl" / "__init__.py").is_file():
        raise SystemExit(f"error: {src} has no mlopsctl package")
    if not DATA.is_file():
        raise SystemExit(f"error: {DATA} not found")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cap_kb = int(args.cap_gb * 1024 * 1024)
    date = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    source = git_state(src)
    env_info = environment()
    say(
        f"{args.label}: {source['git_commit']} ({source['tree']}), {args.repeats} repeat(s), "
        f"cap {args.cap_gb:g} GB, {env_info['nproc']} CPUs, {env_info['mem_total_mb']:,.0f} MB RAM"
    )
    if source["src_changed_since_commit"]:
        say(f"  note: src/ differs from the commit: {source['src_changed_since_commit']}")
    new = []
    for i in range(1, args.repeats + 1):
        load_before = os.getloadavg()
        chain = run_chain(src, cap_kb, i, args.keep)
        after_state = git_state(src)
        new.append(
            {
                "label": args.label,
                "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "started_utc": date,
                "command": " ".join([Path(sys.executable).name, *sys.argv]),
                "source": source,
                "src_changed_during_run": after_state["git_commit"] != source["git_commit"]
                or after_state["src_changed_since_commit"] != source["src_changed_since_commit"],
                "data": str(DATA),
                "cap_gb": args.cap_gb,
                "loadavg_before": [round(x, 2) for x in load_before],
                "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                "environment": env_info,
                **chain,
            }
        )
    old: list[dict[str, Any]] = []
    if args.output.is_file():
        old = [r for r in json.loads(args.output.read_text()) if r.get("label") != args.label]
    runs = old + new
    runs.sort(key=lambda r: (r["label"] != "before", r["label"], r["repeat"]))
    args.output.write_text(compact(json.dumps(runs, indent=1)) + "\n")
    print_table(runs)
    say(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
