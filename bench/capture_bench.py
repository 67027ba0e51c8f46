"""Capture compaction at scale: a month of synthetic capture in the store's real layout, compacted.

    .venv/bin/python bench/capture_bench.py [--records 1000000] [--days 30] [--writers 3] [--flushes 12] [--work DIR]

Makes a fresh local store in bench/.work/capture/ (or ``--work``) with wine v1 (random forest, trained on
the red wine data as serve_bench does), then ``--records`` capture records spread evenly over the last
``--days`` days (ending a day ago, so every hour is closed), written as the servers write them: per writer
and hour ``--flushes``
JSON-lines objects ``capture/wine/{hour}/{writer}-{seq}.jsonl``, each record a wine row's 11 features, the
prediction, its confidence, 1 in 50 a failed request; labels for 1 in 10 answered rows in ``feedback/``.

Then, each command a real ``mlopsctl`` process with its peak RSS (``wait4``) and wall time:

1. before: ``performance wine --since 33d --window 1d --json``, the same with ``--window 1h``,
   ``drift wine --since 33d --json --no-save`` and ``capture export wine --since 33d --format parquet --out …``;
2. ``capture compact --keep-raw-hours 0 --json``: records/s, bytes of JSON lines and of Parquet;
3. after: the same commands, whose answers must equal the ones before.

Results: bench/capture_results.json (and a table on stdout, for bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
WORK = BENCH / ".work" / "capture"  # --work changes it
WINE_RED = ROOT.parent / "shared" / "data" / "wine-quality" / "winequality-red.csv"
HOUR = 3600


def build_store(work: Path) -> Path:
    from serve_bench import wine_store  # bench/, the script's own folder, is on sys.path

    return wine_store(work, "capture benchmark")[0]


def generate(store_dir: Path, records: int, days: int, writers: int, flushes: int) -> dict[str, Any]:
    """Synthetic capture in the real layout; returns counts and the time it took."""
    import orjson

    from mlopsctl.monitoring.captured import capture_key, feedback_key
    from mlopsctl.store import open_store

    store = open_store(str(store_dir))
    with WINE_RED.open(newline="") as f:
        table = list(csv.DictReader(f, delimiter=";"))
    rows = [{k: float(v) for k, v in r.items() if k != "quality"} for r in table]
    truth = [int(r["quality"]) for r in table]
    rng = random.Random(20)
    hours = days * 24
    end = (time.time() // HOUR - 24) * HOUR
    start = end - hours * HOUR
    per_object = max(1, records // (hours * writers * flushes))
    t0 = time.perf_counter()
    n = objects = size = 0
    for h in range(hours):
        labels = []
        for w in range(writers):
            writer = f"bench-{w}-{os.getpid()}-a1b2c3"
            for s in range(flushes):
                lines = []
                base_t = start + h * HOUR + s * (HOUR / flushes)
                for i in range(per_object):
                    t = base_t + i * (HOUR / flushes / per_object) + rng.random() * 0.01
                    rid = hashlib.blake2b(f"{h}-{w}-{s}-{i}".encode(), digest_size=8).hexdigest()
                    rec: dict[str, Any] = {"request_id": rid, "row": 0, "time": t, "model": "wine", "version": 1}
                    rec |= {"variant": "prod", "endpoint": "predict", "latency_ms": round(rng.uniform(0.2, 4), 3)}
                    if i % 50 == 7:
                        rec |= {"status": 422, "inputs": None, "prediction": None, "error": "alcohol: not a number"}
                    else:
                        j = rng.randrange(len(rows))
                        pred = truth[j] if rng.random() < 0.65 else rng.choice((4, 5, 6, 7))
                        rec |= {"status": 200, "inputs": rows[j], "prediction": pred, "confidence": rng.random()}
                        if i % 10 == 0:
                            labels.append({"request_id": rid, "row": 0, "label": truth[j], "time": t + 900})
                    lines.append(orjson.dumps(rec))
                data = b"\n".join(lines) + b"\n"
                store.put(capture_key("wine", base_t, writer, h * flushes + s + 1), data)
                n += per_object
                objects += 1
                size += len(data)
        if labels:
            body = b"".join(orjson.dumps({**r, "model": "wine", "source": "bench"}) + b"\n" for r in labels)
            store.put(feedback_key(labels[0]["time"], "bench-labels", h + 1), body)
    return {"records": n, "objects": objects, "jsonl_bytes": size, "seconds": round(time.perf_counter() - t0, 1)}


def measured(argv: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> dict[str, Any]:
    """One mlopsctl command as a process: wall seconds, peak RSS in MB (GNU time's %M: the process's own
    ru_maxrss, forked from time's small process, not from this big one), stdout."""
    rss_file = cwd / "rss.txt"
    cmd = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), sys.executable, "-m", "mlopsctl.cli.main", *argv]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode not in ok:
        raise SystemExit(f"mlopsctl {' '.join(argv)} failed: {proc.stderr[-2000:]}")
    kb = int(rss_file.read_text().split()[-1])
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(kb / 1024, 1), "stdout": proc.stdout}


def tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--writers", type=int, default=3)
    ap.add_argument("--flushes", type=int, default=12, help="JSON-lines objects per writer and hour")
    ap.add_argument("--output", type=Path, default=BENCH / "capture_results.json")
    ap.add_argument("--work", type=Path, default=WORK, help="the folder made afresh for the store (deleted first)")
    args = ap.parse_args()
    work = args.work.resolve()
    if not WINE_RED.is_file():
        raise SystemExit(f"needs {WINE_RED}")
    print("building the store (wine v1)…", flush=True)
    store_dir = build_store(work)
    store = ["--store", str(store_dir)]
    print(f"generating {args.records:,} records…", flush=True)
    gen = generate(store_dir, args.records, args.days, args.writers, args.flushes)
    print(f"  {gen}", flush=True)
    since = f"{args.days + 3}d"  # the whole period, whenever the command runs
    perf = [*store, "performance", "wine", "--since", since, "--window", "1d", "--json"]
    hourly = [*store, "performance", "wine", "--since", since, "--window", "1h", "--json"]
    drift = [*store, "drift", "wine", "--since", since, "--json", "--no-save"]
    out_file = work / "export.parquet"
    export = [*store, "capture", "export", "wine", "--since", since, "--format", "parquet", "--out", str(out_file)]
    results: dict[str, Any] = {
        "args": vars(args) | {"output": str(args.output), "work": str(work)},
        "generated": gen,
        "uptime_start": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    }

    def answers(tag: str) -> tuple[Any, Any, Any]:
        print(f"{tag}: performance…", flush=True)
        p = measured(perf, work)
        print(f"  {p['seconds']} s, {p['peak_rss_mb']} MB; performance --window 1h…", flush=True)
        h = measured(hourly, work)
        print(f"  {h['seconds']} s, {h['peak_rss_mb']} MB; drift --since…", flush=True)
        d = measured(drift, work, ok=(0, 1))
        print(f"  {d['seconds']} s, {d['peak_rss_mb']} MB; capture export…", flush=True)
        e = measured(export, work)
        print(f"  {e['seconds']} s, {e['peak_rss_mb']} MB", flush=True)
        import pandas as pd

        frame = pd.read_parquet(out_file)
        drift_report = json.loads(d["stdout"])
        results[tag] = {
            "performance": {k: p[k] for k in ("seconds", "peak_rss_mb")},
            "performance_1h": {k: h[k] for k in ("seconds", "peak_rss_mb")},
            "drift": {k: d[k] for k in ("seconds", "peak_rss_mb")} | {"rows": drift_report["current_rows"]},
            "export": {k: e[k] for k in ("seconds", "peak_rss_mb")} | {"rows": len(frame)},
        }
        digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values.tobytes()).hexdigest()
        # the windows follow the clock (--since): compare each version's totals over the period
        versions = json.loads(p["stdout"])["versions"]
        report = {v["version"]: (v["predictions"], v["labelled"], v["live"]) for v in versions}
        features = {f["name"]: (f["statistic"], f["p_value"]) for f in drift_report["features"]}
        return report, digest, features

    before = answers("before")
    print("capture compact…", flush=True)
    c = measured([*store, "capture", "compact", "--keep-raw-hours", "0", "--json"], work)
    summary = json.loads(c["stdout"])
    results["compact"] = {
        "seconds": c["seconds"],
        "peak_rss_mb": c["peak_rss_mb"],
        "records": summary["records"],
        "records_per_second": round(summary["records"] / c["seconds"]),
        "hours": summary["hours"],
        "jsonl_bytes": summary["bytes_before"],
        "parquet_bytes": summary["bytes_after"],
        "ratio": round(summary["bytes_before"] / max(1, summary["bytes_after"]), 1),
        "raw_objects_deleted": summary["deleted"],
        "capture_dir_bytes_after": tree_bytes(store_dir / "capture"),
        "parquet_dir_bytes_after": tree_bytes(store_dir / "capture-parquet"),
    }
    print(f"  {results['compact']}", flush=True)
    after = answers("after")
    results["same_answers"] = {
        "performance": before[0] == after[0],
        "export": before[1] == after[1],
        "drift": before[2] == after[2],
    }
    results["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results["cpus"] = os.cpu_count()
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    r = results
    print("\n| step | before compaction | after |\n| --- | --- | --- |")
    for step in ("performance", "performance_1h", "drift", "export"):
        b, a = r["before"][step], r["after"][step]
        print(f"| {step} | {b['seconds']} s, {b['peak_rss_mb']} MB | {a['seconds']} s, {a['peak_rss_mb']} MB |")
    cc = r["compact"]
    print(
        f"\ncompaction: {cc['records']:,} records in {cc['seconds']} s ({cc['records_per_second']:,}/s), "
        f"peak {cc['peak_rss_mb']} MB; JSON lines {cc['jsonl_bytes']:,} B → Parquet {cc['parquet_bytes']:,} B "
        f"({cc['ratio']}x); same answers: {r['same_answers']}; {r['uptime']}"
    )


if __name__ == "__main__":
    main()
