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


def latest_labels(
    store: Store, name: str, since: float | None = None, until: float | None = None
) -> tuple[dict[tuple[str, int], Any], int]:
    """The ground truth for ``name``'s predictions, one label per (request_id, row): a later label replaces
    an earlier one (feedback is read oldest first), as the server's live accuracy counts it. Also the
    number of labels read (repeats included)."""
    labels: dict[tuple[str, int], Any] = {}
    n = 0
    for f in load_feedback(store, since, until):
        if f.get("model") in (None, name):
            n += 1
            labels[(f["request_id"], int(f.get("row", 0)))] = f["label"]
    return labels, n


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


class CapturedIndex:
    """Request ids that any server captured recently, read from the store when asked for one.

    Behind a load balancer, `POST /feedback` for a prediction reaches any replica, most often
    not the one that answered it. A replica that does not know the id looks here: the capture
    objects of the last ``lookback`` seconds, read once each (only objects it has not read yet
    on later misses), at most once per ``min_refresh`` seconds. The id is found once the
    answering replica has flushed its capture (``flush_interval_seconds``); before that the
    label is refused as unknown and the client may send it again. Shadow answers are skipped:
    labels join the answer the caller got.
    """

    def __init__(
        self,
        store: Store,
        models: Iterable[str],
        *,
        lookback: float = 6 * 3600,
        limit: int = 200_000,
        min_refresh: float = 1.0,
    ) -> None:
        import threading
        from collections import OrderedDict

        self.store, self.models = store, list(dict.fromkeys(models))
        self.lookback, self.limit, self.min_refresh = lookback, limit, min_refresh
        self.index: OrderedDict[str, tuple[str, int, list[Any]]] = OrderedDict()  # id → (model, version, preds)
        self._seen: set[str] = set()
        self._last = -float("inf")
        self._lock = threading.Lock()
        self.objects_read = 0

    def get(self, request_id: str) -> tuple[str, int, list[Any]] | None:
        hit = self.index.get(request_id)
        if hit is not None:
            return hit
        with self._lock:  # one refresh at a time; the others find its result
            hit = self.index.get(request_id)
            if hit is None and time.monotonic() - self._last >= self.min_refresh:
                self._refresh()
                hit = self.index.get(request_id)
        return hit

    def _refresh(self) -> None:
        now = time.time()
        self._last = time.monotonic()
        parts = [hour_partition(now - self.lookback + 3600 * i) for i in range(int(self.lookback // 3600) + 1)]
        parts = list(dict.fromkeys([*parts, hour_partition(now)]))
        self._seen = {k for k in self._seen if k.split("/")[2] >= parts[0]}  # capture/{model}/{part}/…
        for name in self.models:
            for part in parts:
                for key in self.store.list(f"{CAPTURE}{name}/{part}/"):
                    if key not in self._seen:
                        self._read(key)
                        self._seen.add(key)

    def _read(self, key: str) -> None:
        self.objects_read += 1
        rows: dict[str, dict[int, Any]] = {}
        meta: dict[str, tuple[str, int]] = {}
        for line in self.store.get(key).splitlines():
            if not line.strip():
                continue
            rec = orjson.loads(line)
            if str(rec.get("variant") or "").startswith("shadow") or rec.get("status") != 200:
                continue
            rid = rec["request_id"]
            meta[rid] = (rec["model"], int(rec["version"]))
            rows.setdefault(rid, {})[int(rec.get("row", 0))] = rec.get("prediction")
        for rid, by_row in rows.items():
            preds = [by_row.get(i) for i in range(max(by_row) + 1)]
            self.index[rid] = (*meta[rid], preds)
            self.index.move_to_end(rid)
        while len(self.index) > self.limit:
            self.index.popitem(last=False)
