"""Reading what the servers captured: prediction records and ground-truth feedback.

Layout in the store (written by ``serving/capture.py`` and by ``record_feedback``):

    capture/{model}/{YYYY-MM-DDTHH}/{writer}-{seq:06d}.jsonl   one line per predicted row
    feedback/{YYYY-MM-DDTHH}/{writer}-{seq:06d}.jsonl          one line per label

The hour partition is UTC. A writer is one server process (host, pid and a random part),
so replicas never write the same object. A capture record::

    {"request_id": "9f0c…", "row": 0, "time": 1763900000.123, "model": "wine", "version": 2,
     "variant": "prod", "endpoint": "predict", "status": 200, "latency_ms": 0.31,
     "inputs": {"alcohol": 9.4, ...}, "prediction": 5, "confidence": 0.71}

A request that failed is one record with its ``status`` (4xx), ``error`` and ``inputs`` null.
A feedback record: ``{"request_id": …, "row": 0, "label": 5, "time": …, "source": …}``.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from mlopsctl.store.base import Store

CAPTURE = "capture/"
FEEDBACK = "feedback/"
PREDICTION = "__prediction__"  # the prediction column in frames, as in reference.parquet


def hour_partition(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H", time.gmtime(t))


def writer_id() -> str:
    """Unique per process: host, pid, and a random part (a restarted pid never reuses a name)."""
    host = "".join(c if c.isalnum() or c in "-." else "-" for c in socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


def capture_key(name: str, t: float, writer: str, seq: int) -> str:
    return f"{CAPTURE}{name}/{hour_partition(t)}/{writer}-{seq:06d}.jsonl"


def feedback_key(t: float, writer: str, seq: int) -> str:
    return f"{FEEDBACK}{hour_partition(t)}/{writer}-{seq:06d}.jsonl"


def encode_lines(records: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n" for r in records)


def _keys(store: Store, prefix: str, since: float | None, until: float | None) -> Iterator[str]:
    lo = hour_partition(since) if since is not None else ""
    hi = hour_partition(until) if until is not None else "~"
    for part in store.list_dirs(prefix):
        if lo <= part <= hi:
            yield from store.list(f"{prefix}{part}/")


def _read(store: Store, prefix: str, since: float | None, until: float | None) -> list[dict[str, Any]]:
    out = []
    for key in _keys(store, prefix, since, until):
        for line in store.get(key).splitlines():
            if not line.strip():
                continue
            rec = orjson.loads(line)
            t = rec.get("time", 0.0)
            if (since is None or t >= since) and (until is None or t <= until):
                out.append(rec)
    out.sort(key=lambda r: r.get("time", 0.0))
    return out


def load_captures(
    store: Store,
    name: str,
    since: float | None = None,
    until: float | None = None,
    *,
    version: int | None = None,
    ok_only: bool = False,
) -> list[dict[str, Any]]:
    """Capture records of model ``name`` between ``since`` and ``until`` (epoch seconds), oldest first."""
    records = _read(store, f"{CAPTURE}{name}/", since, until)
    if version is not None:
        records = [r for r in records if r.get("version") == version]
    if ok_only:
        records = [r for r in records if r.get("status") == 200]
    return records


def load_feedback(store: Store, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
    return _read(store, FEEDBACK, since, until)


def captured_frame(records: list[dict[str, Any]], feature_names: list[str] | None = None) -> Any:
    """The answered rows as a DataFrame: one column per feature, ``__prediction__`` and the metadata."""
    import pandas as pd

    ok = [r for r in records if r.get("status") == 200 and r.get("inputs") is not None]
    inputs = pd.DataFrame.from_records([r["inputs"] for r in ok])
    if feature_names is not None:
        inputs = inputs.reindex(columns=feature_names)
    meta = pd.DataFrame.from_records(
        [
            {
                "request_id": r["request_id"],
                "row": r.get("row", 0),
                "time": r["time"],
                "version": r.get("version"),
                "variant": r.get("variant"),
                "latency_ms": r.get("latency_ms"),
                PREDICTION: r.get("prediction"),
            }
            for r in ok
        ],
        columns=["request_id", "row", "time", "version", "variant", "latency_ms", PREDICTION],
    )
    return pd.concat([inputs.reset_index(drop=True), meta], axis=1)
