"""What the capture write-ahead file costs a request: `CaptureWriter.offer` with and without `wal_dir`.

    .venv/bin/python bench/wal_bench.py [--requests 20000] [--repeats 7]

One wine row per request (11 features, a prediction and its confidence), the writer's thread not started
(so only the request path is timed). Runs alternate between the two settings; medians are reported.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from types import SimpleNamespace
from typing import Any

import numpy as np

from mlopsctl.serving.capture import CaptureWriter, WriteAhead
from mlopsctl.serving.metrics import ServerMetrics
from mlopsctl.store.local import LocalStore

FEATURES = [
    "fixed acidity", "volatile acidity", "citric acid", "residual sugar", "chlorides", "free sulfur dioxide",
    "total sulfur dioxide", "density", "pH", "sulphates", "alcohol",
]  # fmt: skip


def one_run(wal: bool, n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        writer = CaptureWriter(LocalStore(tmp + "/store"), ServerMetrics(), buffer_rows=n + 10, batch_rows=n + 10)
        if wal:
            writer._wal = WriteAhead(tmp + "/wal", writer.writer)  # what start() does, without the thread
        model: Any = SimpleNamespace(name="wine", version=1, alias="prod", spec=SimpleNamespace(names=FEATURES))
        cols = {f: [float(i)] for i, f in enumerate(FEATURES)}
        proba = np.array([[0.1, 0.8, 0.1]], dtype=np.float32)
        t0 = time.perf_counter()
        for i in range(n):
            writer.offer(model, f"req-{i:08d}", "predict", 200, 0.0002, cols, [5], proba, remember=False)
        return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    runs: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for wal in (False, True):
            runs[wal].append(one_run(wal, args.requests))
    off, on = statistics.median(runs[False]), statistics.median(runs[True])
    print(f"offer() per request, median of {args.repeats} x {args.requests}:")
    print(f"  without wal_dir {off:.2f} µs   (runs: {', '.join(f'{x:.2f}' for x in runs[False])})")
    print(f"  with wal_dir    {on:.2f} µs   (runs: {', '.join(f'{x:.2f}' for x in runs[True])})")
    print(f"  the write-ahead file adds {on - off:.2f} µs a request (x{on / off:.2f})")


if __name__ == "__main__":
    main()
