"""Dataset snapshots: content-addressed copies of data, with schema and profile, in the store.

This module owns a dataset's identity and its record in the store. The identity
is ``dataset_hash``: the sha256 of a canonical text form of the column names and
values (row order kept), independent of the file format and of library
versions, so the same data read from CSV, Parquet or JSON lines has one hash.
``ingest`` writes, under ``datasets/{sha}/``::

    data.parquet   the data
    schema.json    Schema.to_dict()
    profile.json   per-column statistics (``profile``)
    snapshot.json  DatasetSnapshot.to_dict(), written last

Each object is created with put-if-absent and ``snapshot.json`` comes last, so a
snapshot is complete exactly when ``snapshot.json`` exists, and concurrent or
repeated ingests of the same data are harmless.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import math
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from mlopsctl.data.schema import Schema, category_key, infer_column, infer_schema
from mlopsctl.errors import Conflict, DataError, IntegrityError, NotFound
from mlopsctl.store.base import Store, dumps

PREFIX = "datasets/"
MIN_PREFIX = 6
# Bump when the canonical form changes; it is hashed first, so old and new hashes never collide.
_HASH_VERSION = "mlopsctl-dataset-v1"
_QUANTILES = {"p1": 0.01, "p5": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "p99": 0.99}
_TOP = 20
_CHUNK_ROWS = 10_000


# -- identity --------------------------------------------------------------------------------


def dataset_hash(df: pd.DataFrame) -> str:
    """sha256 hex of the data's canonical form.

    The form is UTF-8 text: a version line, "rows columns", the column names as a
    JSON array, then one JSON array per row. Numbers are written by value, not by
    type (3, 3.0 and numpy.int64(3) are all ``3``; other floats use Python's
    shortest round-trip repr), missing values (None, NaN, NA, NaT) are ``null``,
    strings are JSON strings. So dtype changes that keep values (int64 vs float64,
    object vs string columns) keep the hash, and any changed value changes it.
    """
    h = hashlib.sha256()
    names = [str(c) for c in df.columns]
    h.update(f"{_HASH_VERSION}\n{len(df)} {len(names)}\n{_json(names)}\n".encode())
    for start in range(0, len(df), _CHUNK_ROWS):
        part = df.iloc[start : start + _CHUNK_ROWS]
        cells = [_cells(part.iloc[:, j]) for j in range(part.shape[1])]
        if cells:
            rows = ["[" + ",".join(r) + "]\n" for r in zip(*cells, strict=True)]
        else:
            rows = ["[]\n"] * len(part)
        h.update("".join(rows).encode())
    return h.hexdigest()


def _cells(s: pd.Series) -> list[str]:
    kind = s.dtype.kind if isinstance(s.dtype, np.dtype) else ""
    if kind == "b":
        return ["true" if v else "false" for v in s.to_numpy().tolist()]
    if kind and kind in "iu":
        return [str(v) for v in s.to_numpy().tolist()]
    if kind == "f":
        return [_float(v) for v in s.to_numpy().tolist()]
    # Categorical text repeats a few values many times: encode each distinct one once.
    memo: dict[str, str] = {}
    out = []
    for v in s.astype(object).tolist():
        if type(v) is str:
            cell = memo.get(v)
            if cell is None:
                cell = memo[v] = _json(v)
        else:
            cell = _cell(v)
        out.append(cell)
    return out


def _cell(v: Any) -> str:
    if v is None or v is pd.NA or v is pd.NaT:
        return "null"
    if isinstance(v, str):
        return _json(v)
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return _float(float(v))
    if isinstance(v, dt.datetime | dt.date | pd.Timestamp):
        return _json(v.isoformat())
    return _json(str(v))


def _float(x: float) -> str:
    if math.isnan(x):
        return "null"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x.is_integer():
        return str(int(x))  # 3.0 and 3 are one value; this also folds -0.0 into 0
    return repr(x)


def _json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


# -- profile ---------------------------------------------------------------------------------


def profile(df: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    """Per-column statistics, JSON-ready (plain ints and floats, None for undefined).

    ``{"n_rows", "n_columns", "columns": {name: {...}}}``; each column has kind,
    dtype, role, count (present values) and nulls, plus: numeric: mean, std, min,
    max and quantiles p1..p99; categorical: n_unique and the top 20 values with
    counts; text: n_unique and length/token-count statistics.
    """
    columns: dict[str, Any] = {}
    for col in df.columns:
        name = str(col)
        s = df[col]
        meta = schema.column(name) if name in schema else infer_column(s, name)
        present = s.dropna()
        entry: dict[str, Any] = {
            "kind": meta.kind,
            "dtype": meta.dtype,
            "role": meta.role,
            "count": len(present),
            "nulls": len(s) - len(present),
        }
        if meta.kind == "numeric":
            entry.update(_numeric_stats(pd.to_numeric(present, errors="coerce").dropna()))
        elif meta.kind == "categorical":
            keys = present.map(category_key)
            counts = keys.value_counts()
            entry["n_unique"] = len(counts)
            entry["top"] = {str(k): int(v) for k, v in counts.head(_TOP).items()}
            entry["other"] = int(counts.iloc[_TOP:].sum())
        else:
            text = present.astype(str)
            entry["n_unique"] = int(text.nunique())
            entry["length"] = _numeric_stats(text.str.len())
            entry["tokens"] = _numeric_stats(text.str.count(r"\S+"))
        columns[name] = entry
    return {"n_rows": len(df), "n_columns": df.shape[1], "columns": columns}


def _numeric_stats(x: pd.Series) -> dict[str, Any]:
    x = x.astype("float64")
    finite = x[np.isfinite(x)]
    if finite.empty:
        return {"mean": None, "std": None, "min": None, "max": None, "quantiles": dict.fromkeys(_QUANTILES)}
    qs = finite.quantile(list(_QUANTILES.values())).tolist()
    return {
        "mean": _plain(finite.mean()),
        "std": _plain(finite.std()) if len(finite) > 1 else None,
        "min": _plain(finite.min()),
        "max": _plain(finite.max()),
        "quantiles": {k: _plain(q) for k, q in zip(_QUANTILES, qs, strict=True)},
    }


def _plain(v: Any) -> float | None:
    f = float(v)
    return f if math.isfinite(f) else None


# -- snapshots in the store ------------------------------------------------------------------


@dataclass
class DatasetSnapshot:
    sha256: str
    n_rows: int
    n_columns: int
    source: str
    target: str | None
    created_at: str
    schema: Schema
    profile: dict[str, Any]

    @property
    def key(self) -> str:
        """The store folder holding this snapshot."""
        return f"{PREFIX}{self.sha256}/"

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "n_rows": self.n_rows,
            "n_columns": self.n_columns,
            "source": self.source,
            "target": self.target,
            "created_at": self.created_at,
            "schema": self.schema.to_dict(),
            "profile": self.profile,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetSnapshot:
        try:
            return cls(
                sha256=str(d["sha256"]),
                n_rows=int(d["n_rows"]),
                n_columns=int(d["n_columns"]),
                source=str(d.get("source", "")),
                target=d.get("target"),
                created_at=str(d["created_at"]),
                schema=Schema.from_dict(d["schema"]),
                profile=dict(d.get("profile") or {}),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DataError("snapshot.json", f"malformed dataset snapshot: missing or bad {e}") from None


def ingest(
    store: Store,
    df: pd.DataFrame,
    *,
    source: str,
    target: str | None,
    schema: Schema | None = None,
) -> tuple[DatasetSnapshot, bool]:
    """Store ``df`` as a snapshot; returns (snapshot, created).

    Idempotent: data already in the store (same hash) is not written again and its
    existing snapshot is returned with ``created`` False; the first ingest's
    source, target and schema stand. ``schema`` defaults to ``infer_schema(df, target)``.
    """
    names = [str(c) for c in df.columns]
    if len(set(names)) != len(names):
        raise DataError(source, "duplicate column names")
    df = df.set_axis(names, axis=1).reset_index(drop=True)
    sha = dataset_hash(df)
    folder = f"{PREFIX}{sha}/"
    existing = store.get_json_or(folder + "snapshot.json")
    if existing is not None:
        return DatasetSnapshot.from_dict(existing), False

    if schema is None:
        schema = infer_schema(df, target)
    else:
        target = target if target is not None else schema.target
        if target is not None and target not in df.columns:
            raise DataError(source, f"target column not found; columns are: {', '.join(df.columns)}", column=target)
    prof = profile(df, schema)
    snap = DatasetSnapshot(
        sha256=sha,
        n_rows=len(df),
        n_columns=df.shape[1],
        source=source,
        target=target,
        created_at=_now(),
        schema=schema,
        profile=prof,
    )
    _put_once(store, folder + "data.parquet", _parquet_bytes(df, source))
    _put_once(store, folder + "schema.json", dumps(schema.to_dict()))
    _put_once(store, folder + "profile.json", dumps(prof))
    try:
        store.put_if_absent(folder + "snapshot.json", dumps(snap.to_dict()))
    except Conflict:  # a concurrent ingest of the same data finished first: theirs stands
        return DatasetSnapshot.from_dict(store.get_json(folder + "snapshot.json")), False
    return snap, True


def load_snapshot(store: Store, sha: str, *, verify: bool = True) -> tuple[pd.DataFrame, DatasetSnapshot]:
    """The data and snapshot for ``sha`` or a unique prefix of it (at least 6 characters).

    With ``verify`` the data is re-hashed and must match (IntegrityError otherwise).
    """
    full = resolve(store, sha)
    folder = f"{PREFIX}{full}/"
    snap = DatasetSnapshot.from_dict(store.get_json(folder + "snapshot.json"))
    raw = store.get(folder + "data.parquet")
    df = pd.read_parquet(io.BytesIO(raw), engine="pyarrow")
    if verify:
        actual = dataset_hash(df)
        if actual != snap.sha256:
            raise IntegrityError(folder + "data.parquet", snap.sha256, actual)
    return df, snap


def resolve(store: Store, sha: str) -> str:
    """The full sha256 of the one complete snapshot whose hash starts with ``sha``."""
    prefix = sha.strip().lower()
    if len(prefix) < MIN_PREFIX or any(c not in string.hexdigits for c in prefix):
        raise NotFound("dataset", sha, f"give at least {MIN_PREFIX} hex characters of its sha256")
    if len(prefix) == 64:
        matches = [prefix] if store.exists(f"{PREFIX}{prefix}/snapshot.json") else []
    else:
        matches = [
            d for d in _dataset_dirs(store) if d.startswith(prefix) and store.exists(f"{PREFIX}{d}/snapshot.json")
        ]
    if not matches:
        raise NotFound("dataset", sha, "no ingested dataset has this hash")
    if len(matches) > 1:
        raise NotFound("dataset", sha, f"ambiguous prefix, matches {', '.join(m[:12] for m in matches)}")
    return matches[0]


def list_snapshots(store: Store) -> list[DatasetSnapshot]:
    """Every complete snapshot, newest first."""
    snaps = []
    for d in _dataset_dirs(store):
        raw = store.get_json_or(f"{PREFIX}{d}/snapshot.json")
        if raw is not None:
            snaps.append(DatasetSnapshot.from_dict(raw))
    return sorted(snaps, key=lambda s: (s.created_at, s.sha256), reverse=True)


def _dataset_dirs(store: Store) -> list[str]:
    # The explicit type: mypy confuses ``list`` inside Store (it has a method named list).
    dirs: list[str] = [str(d) for d in cast(Iterable[str], store.list_dirs(PREFIX))]
    return dirs


def _put_once(store: Store, key: str, data: bytes) -> None:
    # Left by an earlier interrupted or concurrent ingest of the same data: the content is
    # the same data, so the existing object is kept.
    with contextlib.suppress(Conflict):
        store.put_if_absent(key, data)


def _parquet_bytes(df: pd.DataFrame, source: str) -> bytes:
    import pyarrow as pa

    buf = io.BytesIO()
    df = df.copy(deep=False)
    df.attrs = {}  # where the frame was read from (data.read) is not part of the dataset
    try:
        df.to_parquet(buf, index=False, engine="pyarrow")
    except (pa.ArrowException, ValueError, TypeError) as e:
        raise DataError(source, f"cannot store as Parquet (mixed value types in a column?): {e}") from None
    return buf.getvalue()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


__all__ = [
    "DatasetSnapshot",
    "dataset_hash",
    "ingest",
    "list_snapshots",
    "load_snapshot",
    "profile",
    "resolve",
]
