"""Capture records as a Parquet table and back, exactly: the compacted form of an hour of capture.

A record is a JSON object (``monitoring/captured.py``); the table has one typed column per top-level key
(``request_id`` string, ``time`` double, ``version`` int64…) and ``inputs`` a struct with one typed field
per feature, so DuckDB, Athena or pandas read it as columns. Decoding gives back the very records that
were encoded, keys, key order and types included (``9`` stays an int, ``9.0`` a float, a key that was
absent stays absent), so every reader answers the same before and after compaction:

- a column (or input field) whose values are all of one JSON kind (int, float, string, bool) is stored
  with that type; one that mixes kinds (or holds lists, objects, integers past int64) holds each value as
  its JSON text, and is named in the ``mlopsctl.json`` metadata;
- ``_layout`` (int32) numbers each row's key layout (which keys, in which order, and the inputs' keys or
  null), listed in the ``mlopsctl.layouts`` metadata: a null in a typed column is a null, never "absent";
- ``mlopsctl.sources`` lists the raw objects the rows came from, in row order, as ``[key, rows]``: the
  compactor verifies and deletes by them, and readers skip a raw object a table already holds.

Nothing in a table is run: metadata is JSON, values are data.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

LAYOUT = "_layout"
INPUTS = "inputs"
META_SOURCES = b"mlopsctl.sources"
META_LAYOUTS = b"mlopsctl.layouts"
META_JSON = b"mlopsctl.json"
META_FORMAT = b"mlopsctl.capture"
FORMAT = b"1"
_INT64 = (-(2**63), 2**63 - 1)


_ARROW = {bool: "bool_", int: "int64", float: "float64", str: "string"}


def _column(values: list[Any]) -> tuple[Any, bool]:
    """An Arrow array of ``values`` (None = null) and whether it holds JSON text."""
    import pyarrow as pa

    kinds = set(map(type, values))
    kinds.discard(type(None))
    if not kinds:
        return pa.nulls(len(values), pa.string()), False
    if len(kinds) == 1 and (k := next(iter(kinds))) in _ARROW:
        fits = True
        if k is int:  # JSON integers past int64 (orjson writes up to 2**64 - 1) are kept as text
            present = [v for v in values if v is not None]
            fits = _INT64[0] <= min(present) and max(present) <= _INT64[1]
        if fits:
            return pa.array(values, type=getattr(pa, _ARROW[k])()), False
    text = [None if v is None else orjson.dumps(v).decode() for v in values]
    return pa.array(text, type=pa.string()), True


def encode(records: Sequence[dict[str, Any]], sources: Sequence[tuple[str, int]]) -> Any:
    """The records as a ``pyarrow.Table`` whose metadata lists ``sources`` (raw key, rows), in row order."""
    import pyarrow as pa

    if sum(n for _, n in sources) != len(records):
        raise ValueError(f"sources count {sum(n for _, n in sources)} rows, got {len(records)} records")
    layouts: dict[tuple[Any, ...], int] = {}
    layout_ids: list[int] = []
    for r in records:
        inputs = r.get(INPUTS)
        shape = (tuple(r), tuple(inputs) if isinstance(inputs, dict) else None)
        layout_ids.append(layouts.setdefault(shape, len(layouts)))
    top: dict[str, None] = {}
    fields: dict[str, None] = {}
    for keys, in_keys in layouts:
        top.update(dict.fromkeys(k for k in keys if k != INPUTS))
        fields.update(dict.fromkeys(in_keys or ()))
    names, arrays, as_json = [], [], []
    for key in top:
        arr, j = _column([r.get(key) for r in records])
        names.append(key)
        arrays.append(arr)
        if j:
            as_json.append(key)
    if fields:
        rows = [r.get(INPUTS) if isinstance(r.get(INPUTS), dict) else None for r in records]
        children = []
        for f in fields:
            arr, j = _column([None if d is None else d.get(f) for d in rows])
            children.append(arr)
            if j:
                as_json.append(f"{INPUTS}.{f}")
        mask = pa.array([d is None for d in rows], type=pa.bool_())
        names.append(INPUTS)
        arrays.append(pa.StructArray.from_arrays(children, names=list(fields), mask=mask))
    names.append(LAYOUT)
    arrays.append(pa.array(layout_ids, type=pa.int32()))
    meta = {
        META_FORMAT: FORMAT,
        META_SOURCES: orjson.dumps([[k, n] for k, n in sources]),
        META_LAYOUTS: orjson.dumps([[list(keys), None if ins is None else list(ins)] for keys, ins in layouts]),
        META_JSON: orjson.dumps(as_json),
    }
    return pa.Table.from_arrays(arrays, names=names).replace_schema_metadata(meta)


def to_bytes(table: Any) -> bytes:
    """The table as a Parquet file (zstd), whole in memory: the store writes objects whole."""
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", compression_level=3, use_dictionary=True)
    return sink.getvalue()


def read(data: bytes) -> Any:
    """A compacted table from its bytes; refuses a Parquet file that is not one (the key named by the caller)."""
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    meta = table.schema.metadata or {}
    if meta.get(META_FORMAT) != FORMAT or META_SOURCES not in meta or LAYOUT not in table.column_names:
        raise ValueError("not a compacted capture table (no mlopsctl.capture metadata)")
    return table


def sources(table: Any) -> list[tuple[str, int]]:
    """(raw key, rows) of each object the table holds, in row order."""
    return [(str(k), int(n)) for k, n in orjson.loads(table.schema.metadata[META_SOURCES])]


def source_index(table: Any) -> Any:
    """For each row, the index in ``sources(table)`` of the object it came from (a numpy array)."""
    import numpy as np

    counts = [n for _, n in sources(table)]
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


def ids(table: Any) -> list[tuple[str, int]]:
    """(request_id, row) of every row, in order: what verification compares with the raw objects."""
    rid = table.column("request_id").to_pylist() if "request_id" in table.column_names else [None] * len(table)
    row = table.column("row").to_pylist() if "row" in table.column_names else [None] * len(table)
    return [(str(a), int(b or 0)) for a, b in zip(rid, row, strict=True)]


def _values(arr: Any, name: str, as_json: set[str]) -> list[Any]:
    values = arr.to_pylist()
    if name in as_json:
        return [None if v is None else orjson.loads(v) for v in values]
    return list(values)


def columns(table: Any, names: Iterable[str]) -> dict[str, list[Any]]:
    """Top-level fields as Python lists (None where a record lacked one), without building the records: a
    reader that needs a few fields of every row (the feedback look-up) skips the inputs."""
    as_json = set(orjson.loads(table.schema.metadata[META_JSON]))
    out = {}
    for name in names:
        if name in table.column_names and name not in (INPUTS, LAYOUT):
            out[name] = _values(table.column(name), name, as_json)
        else:
            out[name] = [None] * len(table)
    return out


def decode(table: Any) -> list[dict[str, Any]]:
    """The records, as they were given to ``encode`` (rows the caller filtered out are simply not there)."""
    meta = table.schema.metadata
    layouts = orjson.loads(meta[META_LAYOUTS])
    as_json = set(orjson.loads(meta[META_JSON]))
    cols: dict[str, list[Any]] = {}
    inputs: dict[str, list[Any]] = {}
    for name in table.column_names:
        if name == LAYOUT:
            continue
        col = table.column(name)
        if name == INPUTS:
            struct = col.combine_chunks()
            for i, field in enumerate(struct.type):
                inputs[field.name] = _values(struct.field(i), f"{INPUTS}.{field.name}", as_json)
        else:
            cols[name] = _values(col, name, as_json)
    out = []
    for i, lay in enumerate(table.column(LAYOUT).to_pylist()):
        keys, in_keys = layouts[lay]
        rec: dict[str, Any] = {}
        for k in keys:
            if k == INPUTS:
                rec[k] = None if in_keys is None else {f: inputs[f][i] for f in in_keys}
            else:
                rec[k] = cols[k][i]
        out.append(rec)
    return out


def record_ids(records: Iterable[dict[str, Any]]) -> list[tuple[str, int]]:
    """(request_id, row) of raw records, in order, as ``ids`` gives them for a table."""
    return [(str(r.get("request_id")), int(r.get("row") or 0)) for r in records]
