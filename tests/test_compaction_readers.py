"""Every reader of the capture answers the same whether a period is compacted, not, or half (one test).

A day-old period of wine capture (six hours, three writers, an A/B test's control and candidate, failed
requests, labels for half of the rows) is read in three states of the same store: as the servers wrote it,
compacted with the JSON lines deleted, and mixed (two hours compacted and cleaned up, one compacted with its
JSON lines kept, one compacted with a late object no part holds, two not compacted). `drift --since`,
`capture export` (CSV, JSON lines, Parquet) and `feedback FILE` run as the real command; the A/B report and
live performance are built by the functions `ab report` and `performance` call, over fixed times.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mlopsctl.monitoring.captured import capture_hours, capture_key, encode_lines, feedback_key
from mlopsctl.monitoring.compaction import compact, compact_hour
from mlopsctl.store import open_store
from tests.conftest import WINE_RED, run_cli, wine_rows

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

HOUR = 3600.0
STATES = ("uncompacted", "compacted", "mixed")


def _write_period(store_dir: Path, start: float) -> list[str]:
    """Six hours of capture and the labels of half the answered rows; the answered request ids."""
    import pandas as pd

    store = open_store(str(store_dir))
    rows = wine_rows(300)
    truth = [int(q) for q in pd.read_csv(WINE_RED, sep=";").quality.head(300)]
    rng = random.Random(11)
    answered: list[str] = []
    labels: list[dict[str, Any]] = []
    for h in range(6):
        for w in range(3):
            recs: list[dict[str, Any]] = []
            for i in range(40):
                t = start + h * HOUR + (w * 40 + i) * 25 + rng.random()
                rid = f"q{h}{w}{i:02d}"
                variant, version = ("control", 1) if rng.random() < 0.6 else ("candidate", 2)
                base = {"request_id": rid, "time": t, "model": "wine", "version": version, "variant": variant}
                base |= {"endpoint": "predict", "latency_ms": round(rng.uniform(0.2, 3), 3)}
                if i % 13 == 5:
                    recs.append({**base, "status": 422, "row": 0, "inputs": None, "prediction": None, "error": "x"})
                    continue
                j = (h * 120 + w * 40 + i) % len(rows)
                quality = truth[j]
                pred = quality if rng.random() < 0.7 else rng.choice([4, 5, 6, 7])
                rec = {**base, "status": 200, "row": 0, "inputs": rows[j], "prediction": pred, "confidence": 0.6}
                recs.append(rec)
                answered.append(rid)
                if i % 2 == 0:
                    labels.append({"request_id": rid, "row": 0, "label": quality, "time": t + 600, "model": "wine"})
            # two objects per writer and hour, as two flushes
            for part, chunk in enumerate((recs[:25], recs[25:])):
                store.put(
                    capture_key("wine", chunk[0]["time"], f"host-{w}-cafe", h * 2 + part + 1), encode_lines(chunk)
                )
    labels.sort(key=lambda r: r["time"])
    store.put(feedback_key(labels[0]["time"], "cli-labels", 1), encode_lines(labels))
    return answered


def _to_state(store_dir: Path, state: str) -> None:
    store = open_store(str(store_dir))
    now = time.time()
    if state == "compacted":
        compact(store, compact_after=900, keep_raw=0)
        assert not [k for k in store.list("capture/") if k.endswith(".jsonl")]
    elif state == "mixed":
        hours = capture_hours(store, "wine")
        assert len(hours) == 6
        for i, (hour, raw, parts) in enumerate(hours):
            if i in (0, 1):  # compacted, JSON lines deleted
                compact_hour(store, "wine", hour, raw, parts, now=now, keep_raw=0)
            elif i == 2:  # compacted, JSON lines kept (keep_raw_hours not passed yet)
                compact_hour(store, "wine", hour, raw, parts, now=now, keep_raw=30 * 86400)
            elif i == 3:  # compacted without its last object (it came late)
                compact_hour(store, "wine", hour, raw[:-1], parts, now=now, keep_raw=0)
        kinds = [(bool(raw), bool(parts)) for _, raw, parts in capture_hours(store, "wine")]
        assert kinds == [(False, True), (False, True), (True, True), (True, True), (True, False), (True, False)]


@pytest.fixture(scope="module")
def stores(wine_registry: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("readers")
    base = root / "base"
    shutil.copytree(wine_registry["store_dir"], base)
    start = (time.time() // HOUR - 30) * HOUR
    answered = _write_period(base, start)
    out: dict[str, Any] = {"start": start, "answered": answered, "root": root}
    for state in STATES:
        shutil.copytree(base, root / state)
        _to_state(root / state, state)
        out[state] = root / state
    return out


def _cli(store: Path, *args: str, cwd: Path, check: bool = True) -> Any:
    return run_cli("--store", str(store), *args, cwd=cwd, check=check)


def _performance(store: Path, cwd: Path, ctx: dict[str, Any]) -> Any:
    # the function `mlopsctl performance` calls, over fixed times (the command's windows follow the clock)
    from mlopsctl.monitoring.performance import performance

    start = ctx["start"]
    out = performance(open_store(str(store)), "wine", since=start - HOUR, window=HOUR, until=start + 7 * HOUR)
    assert out["versions"] and out["versions"][0]["labelled"] > 100
    return json.loads(json.dumps(out, sort_keys=True, default=str))


def _drift(store: Path, cwd: Path, ctx: dict[str, Any]) -> Any:
    proc = _cli(store, "drift", "wine", "--version", "1", "--since", "3d", "--json", "--no-save", cwd=cwd, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    out = json.loads(proc.stdout)
    for volatile in ("created_at", "elapsed_s"):
        out.pop(volatile)
    for volatile in ("since", "since_iso"):  # --since is from the command's clock
        out["source"].pop(volatile)
    assert out["current_rows"] > 300 and out["n_features"] == 11
    return proc.returncode, out


def _ab_report(store: Path, cwd: Path, ctx: dict[str, Any]) -> Any:
    from mlopsctl.config import ExperimentsSection
    from mlopsctl.experiments.report import build_report

    start = ctx["start"]
    record = {
        "id": "exp-1",
        "environment": "prod",
        "started_ts": start,
        "started_at": datetime.fromtimestamp(start, UTC).isoformat(),
        "ended_at": datetime.fromtimestamp(start + 6 * HOUR, UTC).isoformat(),
        "control": "prod",
        "control_version": 1,
        "candidate": "2",
        "candidate_version": 2,
        "status": "concluded",
    }
    out = build_report(open_store(str(store)), "wine", record, ExperimentsSection())
    out.pop("created_at")  # the report's own clock: two builds can straddle a second
    text = json.dumps(out, sort_keys=True, default=str)
    assert '"control"' in text and '"candidate"' in text
    return json.loads(text)


def _feedback(store: Path, cwd: Path, ctx: dict[str, Any]) -> Any:
    import pandas as pd

    copy = cwd / "feedback-store"
    shutil.copytree(store, copy)  # the join writes the labels it accepts
    ids = [*ctx["answered"][::3], "nobody"]
    labels = cwd / "labels.csv"
    pd.DataFrame({"request_id": ids, "label": [5] * len(ids)}).to_csv(labels, index=False)
    proc = _cli(copy, "feedback", str(labels), "--model", "wine", "--since", "3d", "--json", cwd=cwd, check=False)
    assert proc.returncode == 1, proc.stderr  # "nobody" is unknown
    out = json.loads(proc.stdout)
    out.pop("key", None)
    assert out["accepted"] == len(ids) - 1
    return out


def _export(fmt: str) -> Any:
    def run(store: Path, cwd: Path, ctx: dict[str, Any]) -> Any:
        import pandas as pd

        args = ["capture", "export", "wine", "--since", "3d", "--format", fmt, "--errors"]
        if fmt == "parquet":
            _cli(store, *args, "--out", str(cwd / "out.parquet"), cwd=cwd)
            frame = pd.read_parquet(cwd / "out.parquet")
            assert len(frame) == 6 * 3 * 40
            return frame.to_json(orient="split")
        text = _cli(store, *args, cwd=cwd).stdout
        if fmt == "csv":
            assert len(pd.read_csv(io.StringIO(text))) == 6 * 3 * 40
            return text
        return [json.loads(line) for line in text.splitlines()]

    return run


READERS = {
    "performance": _performance,
    "drift": _drift,
    "ab-report": _ab_report,
    "feedback": _feedback,
    "export-csv": _export("csv"),
    "export-jsonl": _export("jsonl"),
    "export-parquet": _export("parquet"),
}


@pytest.mark.parametrize("reader", list(READERS), ids=list(READERS))
def test_every_reader_answers_the_same_compacted_or_not(reader: str, stores: dict[str, Any], tmp_path: Path) -> None:
    answers = {}
    for state in STATES:
        cwd = tmp_path / state
        cwd.mkdir()
        answers[state] = READERS[reader](stores[state], cwd, stores)
    assert answers["compacted"] == answers["uncompacted"]
    assert answers["mixed"] == answers["uncompacted"]
