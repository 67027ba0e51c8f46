"""Reading what the servers captured: prediction records and ground-truth feedback.

Layout in the store (written by ``serving/capture.py`` and by ``record_feedback``):

    capture/{model}/{YYYY-MM-DDTHH}/{writer}-{seq:06d}.jsonl   one line per predicted row
    capture-parquet/{model}/{YYYY-MM-DD}/{YYYY-MM-DDTHH}.{part:03d}.parquet
                                                               closed hours, compacted
    feedback/{YYYY-MM-DDTHH}/{writer}-{seq:06d}.jsonl          one line per label

Readers go through ``capture_hours`` / ``hour_records`` (an hour at a time): a compacted part lists the
raw objects it holds, and a raw object a part holds is read from the part, never twice
(``monitoring/compaction.py`` writes the parts, then deletes the raw objects they hold).

The hour partition is UTC. A writer is one server process (host, pid and a random part),
so replicas never write the same object. A capture record::

    {"request_id": "9f0c…", "row": 0, "time": 1763900000.123, "model": "wine", "version": 2,
     "variant": "prod", "endpoint": "predict", "status": 200, "latency_ms": 0.31,
     "inputs": {"alcohol": 9.4, ...}, "prediction": 5, "confidence": 0.71}

A request that failed is one record with its ``status`` (4xx), ``error`` and ``inputs`` null.
A feedback record: ``{"request_id": …, "row": 0, "label": 5, "time": …, "source": …}``.
"""

from __future__ import annotations

import io
import os
import secrets
import socket
import time
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from mlopsctl.errors import DataError, NotFound
from mlopsctl.store.base import Store

CAPTURE = "capture/"
COMPACTED = "capture-parquet/"  # closed hours of capture/ as Parquet (monitoring/compaction.py)
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


def _in_period(t: Any, since: float | None, until: float | None) -> bool:
    return (since is None or t >= since) and (until is None or t <= until)


def parse_lines(data: bytes, key: str) -> list[dict[str, Any]]:
    """The records of one JSON-lines object; a line that is not a JSON object is refused, naming the key and
    line (the servers write whole objects: such a line was put there by something else)."""
    out = []
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise DataError(key, f"line {n}: not JSON ({exc})") from None
        if not isinstance(rec, dict):
            raise DataError(key, f"line {n}: a JSON {type(rec).__name__}, not an object")
        out.append(rec)
    return out


def _read(store: Store, prefix: str, since: float | None, until: float | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key in _keys(store, prefix, since, until):
        out.extend(r for r in parse_lines(store.get(key), key) if _in_period(r.get("time", 0.0), since, until))
    out.sort(key=lambda r: r.get("time", 0.0))
    return out


def get_many(store: Store, keys: list[str], threads: int = 16) -> Iterator[bytes]:
    """The objects' bytes, in order, fetched ``threads`` at a time (an S3 GET is a round trip; a local read
    a system call): an hour of capture is hundreds of small objects."""
    if len(keys) <= 1:
        yield from (store.get(k) for k in keys)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(threads, len(keys)), thread_name_prefix="mlops-get") as pool:
        yield from pool.map(store.get, keys)


def compacted_key(name: str, hour: str, part: int) -> str:
    """The Parquet file of part ``part`` of model ``name``'s hour ``hour`` (``monitoring/compaction.py``)."""
    return f"{COMPACTED}{name}/{hour[:10]}/{hour}.{part:03d}.parquet"


def hour_of(key: str) -> str:
    """The hour partition (``YYYY-MM-DDTHH``) of a raw capture key or a compacted one."""
    parts = key.split("/")
    if key.startswith(COMPACTED):
        return parts[-1].split(".", 1)[0]
    return parts[2]


def capture_hours(
    store: Store, name: str, since: float | None = None, until: float | None = None, *, hours: list[str] | None = None
) -> list[tuple[str, list[str], list[str]]]:
    """Model ``name``'s hours in the period, oldest first, each with its raw JSON-lines keys and its
    compacted Parquet keys (parts in order). Lists, never reads, the objects. ``hours``: look at these
    hour partitions only, without listing the model's folders first (a short look-back, often)."""
    lo = hour_partition(since) if since is not None else ""
    hi = hour_partition(until) if until is not None else "~"
    raw_prefix, comp_prefix = f"{CAPTURE}{name}/", f"{COMPACTED}{name}/"
    if hours is None:
        days = [d for d in store.list_dirs(comp_prefix) if lo[:10] <= d <= hi[:10]]
        raw_hours = [h for h in store.list_dirs(raw_prefix) if lo <= h <= hi]
    else:
        days, raw_hours = sorted({h[:10] for h in hours}), list(hours)
    found: dict[str, tuple[list[str], list[str]]] = {}
    for day in days:
        for key in store.list(f"{comp_prefix}{day}/"):
            if key.endswith(".parquet") and lo <= hour_of(key) <= hi and (hours is None or hour_of(key) in hours):
                found.setdefault(hour_of(key), ([], []))[1].append(key)
    for hour in raw_hours:
        raw = [k for k in store.list(f"{raw_prefix}{hour}/") if k.endswith(".jsonl")]
        if raw:
            found.setdefault(hour, ([], []))[0].extend(raw)
    return [(h, raw, sorted(parts)) for h, (raw, parts) in sorted(found.items())]


def _arrow_filter(table: Any, since: float | None, until: float | None, version: int | None, ok_only: bool) -> Any:
    """A boolean mask of the rows that may pass (typed columns only; the records are checked again after)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = pa.array([True] * len(table))
    names = table.schema.names

    def typed(col: str, kind: Any) -> bool:
        return col in names and kind(table.schema.field(col).type)

    if typed("time", pa.types.is_floating):
        if since is not None:
            mask = pc.and_(mask, pc.fill_null(pc.greater_equal(table["time"], since), True))
        if until is not None:
            mask = pc.and_(mask, pc.fill_null(pc.less_equal(table["time"], until), True))
    if version is not None and typed("version", pa.types.is_integer):
        mask = pc.and_(mask, pc.fill_null(pc.equal(table["version"], version), True))
    if ok_only and typed("status", pa.types.is_integer):
        mask = pc.and_(mask, pc.fill_null(pc.equal(table["status"], 200), True))
    return mask


def hour_records(
    store: Store,
    raw: list[str],
    parts: list[str],
    since: float | None = None,
    until: float | None = None,
    *,
    version: int | None = None,
    ok_only: bool = False,
) -> list[dict[str, Any]]:
    """One hour's records (raw objects and compacted parts), by time; each raw object's records counted once.

    A raw object that a part lists as a source is read from the part (the compactor may not have deleted it
    yet, or keeps it for ``keep_raw_hours``). Records are put in the order of their raw keys, then sorted by
    time (stable), so an hour reads the same compacted, not compacted, or half."""
    import numpy as np

    from mlopsctl.monitoring import capture_parquet as cp

    chunks: dict[str, list[dict[str, Any]]] = {}
    for key in parts:
        table = cp.read(store.get(key))
        srcs = cp.sources(table)
        index = cp.source_index(table)
        mask = _arrow_filter(table, since, until, version, ok_only)
        keep = np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)
        records = cp.decode(table.filter(mask))
        for (src, _), rec in zip([srcs[i] for i in index[keep]], records, strict=True):
            chunks.setdefault(src, []).append(rec)
        for src, _ in srcs:
            chunks.setdefault(src, [])
    todo = [key for key in raw if key not in chunks]
    for key, data in zip(todo, get_many(store, todo), strict=True):
        chunks[key] = parse_lines(data, key)
    out = []
    for key in sorted(chunks):
        for r in chunks[key]:
            if not _in_period(r.get("time", 0.0), since, until):
                continue
            if version is not None and r.get("version") != version:
                continue
            if ok_only and r.get("status") != 200:
                continue
            out.append(r)
    out.sort(key=lambda r: r.get("time", 0.0))
    return out


def iter_captures(
    store: Store,
    name: str,
    since: float | None = None,
    until: float | None = None,
    *,
    version: int | None = None,
    ok_only: bool = False,
) -> Iterator[list[dict[str, Any]]]:
    """Capture records of model ``name`` between ``since`` and ``until``, an hour at a time, oldest first.

    Only one hour's objects are held at once: a caller that aggregates as it goes never holds the period."""
    for hour, raw, parts in capture_hours(store, name, since, until):
        for attempt in range(3):
            try:
                records = hour_records(store, raw, parts, since, until, version=version, ok_only=ok_only)
                break
            except NotFound:  # a compactor deleted a raw object after listing: its part holds it now
                if attempt == 2:
                    raise
                again = capture_hours(store, name, hours=[hour])
                raw, parts = (again[0][1], again[0][2]) if again else ([], [])
        if records:
            yield records


def load_captures(
    store: Store,
    name: str,
    since: float | None = None,
    until: float | None = None,
    *,
    version: int | None = None,
    ok_only: bool = False,
) -> list[dict[str, Any]]:
    """Capture records of model ``name`` between ``since`` and ``until`` (epoch seconds), oldest first:
    the compacted hours' Parquet and the JSON lines not compacted yet, each record once."""
    return [r for hour in iter_captures(store, name, since, until, version=version, ok_only=ok_only) for r in hour]


# -- columns, not records: readers that need a few fields of every row ------------------------------------

_INPUT = "inputs."  # a name in ``names`` for one input field: ``inputs.alcohol``
_HAS_INPUTS = "inputs?"  # a name in ``names`` for whether a row has inputs (a failed request's are null)


def _object_array(values: list[Any]) -> Any:
    import numpy as np

    out = np.empty(len(values), dtype=object)
    out[:] = values  # element-wise: a list value stays one element
    return out


def _arrow_values(arr: Any, as_json: bool) -> Any:
    """A column of a part as a numpy array: typed (int64, float64, bool) when it has no null, else Python
    values as JSON gave them (``monitoring/capture_parquet.py`` keeps each value's type)."""
    import pyarrow as pa

    if as_json:
        return _object_array([None if v is None else orjson.loads(v) for v in arr.to_pylist()])
    t = arr.type
    if arr.null_count == 0 and (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
        return arr.to_numpy()
    if pa.types.is_floating(t):  # Python floats, None where null (a failed request's inputs)
        values = arr.to_numpy(zero_copy_only=False).astype(object)
        values[arr.is_null().to_numpy(zero_copy_only=False)] = None
        return values
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return arr.to_numpy(zero_copy_only=False)  # str objects, None where null
    return _object_array(arr.to_pylist())


def _json_value(text: str) -> Any:
    """A value kept as JSON text in a part (integers of 19 digits and more read exactly: orjson floats them)."""
    import json
    import re

    return json.loads(text) if re.search(r"\d{19}", text) else orjson.loads(text)


def _part_segments(data: bytes, key: str, names: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """(raw key, columns) of each object a compacted part holds, in the part's row order; only the columns
    ``names`` ask for (see ``hour_columns``) are read from the file.

    Reads both formats of ``monitoring/capture_parquet.py``: 1 (each column typed per hour) and 2 (typed as
    the model's capture table: input fields renamed as ``mlopsctl.inputs`` lists them, a value that does not
    fit its column kept in ``_extra``, which wins over the column)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlopsctl.monitoring import capture_parquet as cp

    pf = pq.ParquetFile(io.BytesIO(data))
    schema = pf.schema_arrow
    meta = schema.metadata or {}
    if meta.get(cp.META_FORMAT) not in getattr(cp, "FORMATS", (cp.FORMAT,)) or cp.META_SOURCES not in meta:
        raise DataError(key, "not a compacted capture table (no mlopsctl.capture metadata)")
    as_json = set(orjson.loads(meta[cp.META_JSON]))
    extra = getattr(cp, "EXTRA", "_extra")
    field_of = {feature: f for f, feature in orjson.loads(meta.get(b"mlopsctl.inputs", b"[]"))}
    present = [n for n in names if n in schema.names and n not in (cp.INPUTS, cp.LAYOUT, extra)]
    if any(n.startswith(_INPUT) or n == _HAS_INPUTS for n in names) and cp.INPUTS in schema.names:
        present.append(cp.INPUTS)
    if extra in schema.names:
        present.append(extra)
    table = pf.read(columns=present, use_threads=False)
    n = table.num_rows
    struct = table.column(cp.INPUTS).combine_chunks() if cp.INPUTS in present else None
    known = {f.name: i for i, f in enumerate(struct.type)} if struct is not None else {}
    cols = {}
    for name in names:
        field = field_of.get(name[len(_INPUT) :], name[len(_INPUT) :]) if name.startswith(_INPUT) else ""
        if name in present:
            cols[name] = _arrow_values(table.column(name).combine_chunks(), name in as_json)
        elif name == _HAS_INPUTS:
            cols[name] = struct.is_valid().to_numpy(zero_copy_only=False) if struct is not None else np.zeros(n, bool)
        elif field in known:
            assert struct is not None
            child = struct.field(known[field])
            if struct.null_count:  # a failed request's inputs are null: so are its fields
                import pyarrow.compute as pc

                child = pc.if_else(struct.is_valid(), child, None)
            if pa.types.is_floating(child.type):  # a feature: a missing number is NaN, as in a frame of records
                cols[name] = child.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            else:
                cols[name] = _arrow_values(child, f"{_INPUT}{field}" in as_json)
        else:
            cols[name] = _object_array([None] * n)
    if extra in present and table.column(extra).null_count < n:  # values kept beside their typed columns
        kept = table.column(extra).combine_chunks()
        for i in np.flatnonzero(kept.is_valid().to_numpy(zero_copy_only=False)):
            e = _json_value(kept[int(i)].as_py())
            for name in names:
                part, k = ("i", name[len(_INPUT) :]) if name.startswith(_INPUT) else ("k", name)
                if name != _HAS_INPUTS and k in e.get(part, {}):
                    if cols[name].dtype != object:
                        cols[name] = cols[name].astype(object)
                    cols[name][i] = e[part][k]
    out, offset = [], 0
    for src, rows in cp.sources(table):
        out.append((src, {k: v[offset : offset + rows] for k, v in cols.items()}))
        offset += rows
    if offset != n:
        raise DataError(key, f"its sources list {offset} rows, the table has {n}")
    return out


def _record_columns(records: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    import numpy as np

    out = {}
    for name in names:
        if name == _HAS_INPUTS:
            out[name] = np.array([r.get("inputs") is not None for r in records], dtype=bool)
        elif name.startswith(_INPUT):
            field = name[len(_INPUT) :]
            out[name] = _object_array([(r.get("inputs") or {}).get(field) for r in records])
        else:
            out[name] = _object_array([r.get(name) for r in records])
    return out


def _join(arrays: list[Any]) -> Any:
    """One array of segments' arrays; mixed types become Python values (an int 5 never turns into 5.0)."""
    import numpy as np

    if len({a.dtype for a in arrays}) > 1:
        arrays = [a.astype(object) for a in arrays]
    return np.concatenate(arrays)


def hour_columns(
    store: Store,
    raw: list[str],
    parts: list[str],
    names: list[str],
    since: float | None = None,
    until: float | None = None,
    *,
    version: int | None = None,
    ok_only: bool = False,
) -> dict[str, Any]:
    """One hour's records as columns (numpy arrays, one per name in ``names``, plus ``time``): the rows
    ``hour_records`` gives, in its order, without building a record per row. A name is a top-level field
    (None where a record lacks it), ``inputs.NAME`` an input field (a missing number NaN in a compacted
    part, None in JSON lines), ``inputs?`` whether a row has inputs."""
    import numpy as np

    wanted = list(dict.fromkeys([*names, "time", "version", "status"]))
    segments: list[tuple[str, dict[str, Any]]] = []
    held: set[str] = set()
    for key, data in zip(parts, get_many(store, parts), strict=True):
        for src, cols in _part_segments(data, key, wanted):
            segments.append((src, cols))
            held.add(src)
    todo = [key for key in raw if key not in held]
    for key, data in zip(todo, get_many(store, todo), strict=True):
        segments.append((key, _record_columns(parse_lines(data, key), wanted)))
    segments.sort(key=lambda s: s[0])  # stable: a key in two parts keeps both, in part order (as hour_records)
    if not segments:
        return {name: _object_array([]) for name in wanted}
    cols = {name: _join([s[1][name] for s in segments]) for name in wanted}
    t = cols["time"]
    if t.dtype == object:
        t = np.array([0.0 if v is None else v for v in t], dtype=float)  # a record without a time: 0.0
    keep = np.ones(len(t), dtype=bool)
    if since is not None:
        keep &= t >= since
    if until is not None:
        keep &= t <= until
    if version is not None:
        keep &= np.asarray(cols["version"] == version, dtype=bool)
    if ok_only:
        keep &= np.asarray(cols["status"] == 200, dtype=bool)
    order = np.flatnonzero(keep)
    order = order[np.argsort(t[order], kind="stable")]
    cols["time"] = t
    return {name: cols[name][order] for name in [*names, "time"]}


def iter_capture_columns(
    store: Store,
    name: str,
    names: list[str],
    since: float | None = None,
    until: float | None = None,
    *,
    version: int | None = None,
    ok_only: bool = False,
) -> Iterator[dict[str, Any]]:
    """``hour_columns`` of each hour of model ``name`` in the period, oldest first (``iter_captures``'s rows)."""
    for hour, raw, parts in capture_hours(store, name, since, until):
        for attempt in range(3):
            try:
                cols = hour_columns(store, raw, parts, names, since, until, version=version, ok_only=ok_only)
                break
            except NotFound:  # a compactor deleted a raw object after listing: its part holds it now
                if attempt == 2:
                    raise
                again = capture_hours(store, name, hours=[hour])
                raw, parts = (again[0][1], again[0][2]) if again else ([], [])
        if len(cols["time"]):
            yield cols


def _floats(values: Any) -> Any:
    """Python floats as a float64 array (a quarter of the memory); any other column as it is."""
    import numpy as np

    if values.dtype == object and len(values) and all(type(v) is float for v in values):
        return values.astype(np.float64)
    return values


CURRENT_MAX_ROWS = 1_000_000  # rows of capture a drift test reads at most: a uniform sample above this


def captured_current(
    store: Store,
    name: str,
    version: int,
    features: list[str],
    since: float | None = None,
    until: float | None = None,
    *,
    max_rows: int = CURRENT_MAX_ROWS,
    random_state: int = 0,
) -> tuple[Any, dict[str, int]]:
    """The answered rows of ``name`` v``version`` in the period as a DataFrame: one column per feature of
    ``features`` that any row has, and ``__prediction__``; with ``records`` (the version's records, failed
    ones too), ``rows`` (answered with inputs) and ``sampled`` (rows in the frame).

    Read an hour at a time as columns (a compacted part's input fields, never records). The drift tests
    need every current value at once, so above ``max_rows`` rows the frame is a uniform sample of
    ``max_rows`` of them (each row kept with the same chance, seeded by ``random_state``), in time order."""
    import numpy as np
    import pandas as pd

    names = [f"{_INPUT}{f}" for f in features]
    wanted = ["status", _HAS_INPUTS, "prediction", *names]
    rng = np.random.default_rng(random_state)
    kept: list[dict[str, Any]] = []  # per hour: columns and a random key per row (the smallest keys stay)
    held = records = rows = 0

    def shrink() -> None:
        nonlocal kept, held
        joined = {k: _join([c[k] for c in kept]) for k in kept[0]}
        top = np.sort(np.argpartition(joined["_key"], max_rows - 1)[:max_rows])  # the smallest keys, in order
        kept, held = [{k: v[top] for k, v in joined.items()}], max_rows

    for cols in iter_capture_columns(store, name, wanted, since, until, version=version):
        records += len(cols["time"])
        ok = np.asarray(cols["status"] == 200, dtype=bool) & cols[_HAS_INPUTS].astype(bool)
        n = int(ok.sum())
        if not n:
            continue
        hour = {k: _floats(cols[k][ok]) for k in [*names, "prediction"]}
        hour["_key"] = rng.random(n)
        kept.append(hour)
        rows += n
        held += n
        if held > 2 * max_rows:
            shrink()
    if held > max_rows:
        shrink()
    data: dict[str, Any] = {}
    for k in [*names, "prediction"]:
        arr = _join([c[k] for c in kept]) if kept else np.empty(0, dtype=object)
        values = arr.tolist() if arr.dtype == object else None
        if k != "prediction" and values is not None and all(v is None for v in values):
            continue  # no row has this input: the drift test says the column is missing
        # Python values get the types a frame of the records gives them (ints, floats with NaN, text)
        column = pd.Series(arr) if values is None else pd.Series(values, dtype=None if values else object)
        data[PREDICTION if k == "prediction" else k[len(_INPUT) :]] = column
    frame = pd.DataFrame(data, index=pd.RangeIndex(len(data[PREDICTION])))
    return frame, {"records": records, "rows": rows, "sampled": len(frame)}


def load_feedback(store: Store, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
    return _read(store, FEEDBACK, since, until)


def latest_labels(
    store: Store, name: str, since: float | None = None, until: float | None = None
) -> tuple[dict[tuple[str, int], Any], int]:
    """The ground truth for ``name``'s predictions, one label per (request_id, row): the label with the
    latest time wins (of two at one time, the one read last), as the server's live accuracy counts it. Also the
    number of labels read (repeats included)."""
    latest: dict[tuple[str, int], tuple[Any, Any]] = {}  # (request_id, row) → (time, label)
    n = 0
    keys = list(_keys(store, FEEDBACK, since, until))
    for start in range(0, len(keys), 64):  # streamed: the period's feedback is never held as records
        batch = keys[start : start + 64]
        for key, data in zip(batch, get_many(store, batch), strict=True):
            for f in parse_lines(data, key):
                t = f.get("time", 0.0)
                if not _in_period(t, since, until) or f.get("model") not in (None, name):
                    continue
                n += 1
                k = (f["request_id"], int(f.get("row", 0)))
                seen = latest.get(k)
                if seen is None or t >= seen[0]:  # a later label wins; of two at once, the one read last
                    latest[k] = (t, f["label"])
    return {k: label for k, (_, label) in latest.items()}, n


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
        since = now - self.lookback
        hours = [hour_partition(since + 3600 * i) for i in range(int(self.lookback // 3600) + 1)]
        hours = list(dict.fromkeys([*hours, hour_partition(now)]))
        self._seen = {k for k in self._seen if hour_of(k) >= hours[0]}
        for name in self.models:
            for _, raw, parts in capture_hours(self.store, name, hours=hours):
                for key in [*parts, *raw]:  # a part first: the raw objects it holds need no reading
                    if key in self._seen:
                        continue
                    try:
                        self._read(key)
                    except NotFound:  # compacted and deleted since the listing: its part is read next time
                        continue
                    self._seen.add(key)

    def _records(self, key: str) -> list[dict[str, Any]]:
        if not key.endswith(".parquet"):
            return parse_lines(self.store.get(key), key)
        from mlopsctl.monitoring import capture_parquet as cp

        table = cp.read(self.store.get(key))
        self._seen.update(src for src, _ in cp.sources(table))
        table = table.filter(_arrow_filter(table, None, None, None, True))
        cols = cp.columns(table, ("request_id", "row", "model", "version", "variant", "status", "prediction"))
        return [dict(zip(cols, values, strict=True)) for values in zip(*cols.values(), strict=True)]

    def _read(self, key: str) -> None:
        self.objects_read += 1
        rows: dict[str, dict[int, Any]] = {}
        meta: dict[str, tuple[str, int]] = {}
        for rec in self._records(key):
            if str(rec.get("variant") or "").startswith("shadow") or rec.get("status") != 200:
                continue
            rid = rec["request_id"]
            meta[rid] = (rec["model"], int(rec["version"]))
            rows.setdefault(rid, {})[int(rec.get("row") or 0)] = rec.get("prediction")
        for rid, by_row in rows.items():
            preds = [by_row.get(i) for i in range(max(by_row) + 1)]
            self.index[rid] = (*meta[rid], preds)
            self.index.move_to_end(rid)
        while len(self.index) > self.limit:
            self.index.popitem(last=False)
