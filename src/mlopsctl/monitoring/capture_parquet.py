"""Capture records as a Parquet table and back, exactly: the compacted form of an hour of capture.

A record is a JSON object (``monitoring/captured.py``); the table has one typed column per top-level key
(``request_id`` string, ``time`` double, ``version`` int64…) and ``inputs`` a struct with one typed field
per feature, so DuckDB, Athena or pandas read it as columns. Decoding gives back the very records that
were encoded, keys, key order and types included (``9`` stays an int, ``9.0`` a float, a key that was
absent stays absent), so every reader answers the same before and after compaction:

- the columns follow the model's capture table (``monitoring/capture_schema.py``): each fixed field, input
  and the prediction has the table's type in every part, null where a record has no value. A value that does
  not fit its column (an integer in a double column, a string in a number column, an input or key the table
  does not have) is kept exactly in ``_extra`` (JSON, per row: ``{"k": {key: value}, "i": {input: value}}``),
  its typed column holding the value cast where that loses nothing, else null;
- where the table does not say (a model with no published version: inputs and prediction) a column whose values
  are all of one JSON kind is stored with that type, and one that mixes kinds (or holds lists, objects,
  integers past int64) holds each value as its JSON text, named in the ``mlopsctl.json`` metadata;
- input fields are named as the table names them (``fixed_acidity``), ``mlopsctl.inputs`` lists
  ``[field, feature]`` of each;
- ``_layout`` (int32) numbers each row's key layout (which keys, in which order, and the inputs' keys or
  null), listed in the ``mlopsctl.layouts`` metadata: a null in a typed column is a null, never "absent";
- ``mlopsctl.sources`` lists the raw objects the rows came from, in row order, as ``[key, rows]``: the
  compactor verifies and deletes by them, and readers skip a raw object a table already holds.

Format 1 (before the table's schema) had no ``_extra`` or ``mlopsctl.inputs``; it still reads.

Nothing in a table is run: metadata is JSON, values are data.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

LAYOUT = "_layout"
EXTRA = "_extra"
INPUTS = "inputs"
META_SOURCES = b"mlopsctl.sources"
META_LAYOUTS = b"mlopsctl.layouts"
META_JSON = b"mlopsctl.json"
META_INPUTS = b"mlopsctl.inputs"
META_FORMAT = b"mlopsctl.capture"
FORMAT = b"2"
FORMATS = (b"1", b"2")  # 1: typed per hour, no _extra; still read
_INT64 = (-(2**63), 2**63 - 1)
_EXACT = 2**53  # integers a double holds exactly


_LONG = re.compile(rb"\d{19}")


def _dumps(v: Any) -> str:
    """JSON text of a value the capture may hold (an integer of any size: the stdlib writes what orjson cannot)."""
    try:
        return orjson.dumps(v).decode()
    except TypeError:
        return json.dumps(v)


def _loads(text: str | bytes) -> Any:
    """The value of JSON text; integers of 19 digits and more read exactly (orjson makes them floats)."""
    raw = text.encode() if isinstance(text, str) else text
    return json.loads(raw) if _LONG.search(raw) else orjson.loads(raw)


_ARROW = {bool: "bool_", int: "int64", float: "float64", str: "string"}
_PY: dict[str, type] = {"bool": bool, "int64": int, "double": float, "string": str}


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
    text = [None if v is None else _dumps(v) for v in values]
    return pa.array(text, type=pa.string()), True


def _cast(v: Any, ftype: str) -> Any:
    """``v`` in a column of ``ftype`` where that loses nothing a SQL engine cares for, else None."""
    if ftype == "double":
        return float(v) if type(v) is int and abs(v) <= _EXACT else None
    if ftype == "int64":
        return int(v) if type(v) is float and v.is_integer() and abs(v) <= _EXACT else None
    if ftype == "string":
        return _dumps(v)
    return None


def _exact(v: Any, py: type) -> bool:
    """Whether ``v`` is of JSON kind ``py`` (an int within int64)."""
    if type(v) is not py:
        return False
    n: Any = v
    return py is not int or _INT64[0] <= n <= _INT64[1]


def _typed(values: list[Any], ftype: str, key: str, extra: list[dict[str, Any] | None], part: str) -> Any:
    """An Arrow array of ``ftype`` for ``values``; a value of another JSON kind goes in ``extra[row][part]``."""
    import pyarrow as pa

    arrow = {"bool": pa.bool_(), "int64": pa.int64(), "double": pa.float64(), "string": pa.string()}[ftype]
    py = _PY[ftype]
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if kinds <= {py}:
        if py is not int or not kinds:
            return pa.array(values, type=arrow)
        present = [v for v in values if v is not None]
        if _INT64[0] <= min(present) and max(present) <= _INT64[1]:
            return pa.array(values, type=arrow)
    out = []
    for i, v in enumerate(values):
        if v is None or _exact(v, py):
            out.append(v)
            continue
        row = extra[i]
        if row is None:
            row = extra[i] = {}
        row.setdefault(part, {})[key] = v
        out.append(_cast(v, ftype))
    return pa.array(out, type=arrow)


def encode(records: Sequence[dict[str, Any]], sources: Sequence[tuple[str, int]], schema: Any = None) -> Any:
    """The records as a ``pyarrow.Table`` whose metadata lists ``sources`` (raw key, rows), in row order.
    ``schema``: the model's ``CaptureSchema`` (default: the fixed fields typed, inputs and prediction per hour)."""
    import pyarrow as pa

    from mlopsctl.monitoring import capture_schema as cs

    if sum(n for _, n in sources) != len(records):
        raise ValueError(f"sources count {sum(n for _, n in sources)} rows, got {len(records)} records")
    if schema is None:
        schema = cs.from_signatures("", [])
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
    extra: list[dict[str, Any] | None] = [None] * len(records)
    names: list[str] = []
    arrays: list[Any] = []
    as_json: list[str] = []
    by_key = {f.key: f for f in schema.columns}
    for name, _, _ in cs.FIXED:
        if name == INPUTS:
            if schema.inputs or fields:
                names.append(INPUTS)
                arrays.append(_inputs(records, schema, fields, extra, as_json))
            continue
        field = by_key.get(name)
        if field is not None:
            names.append(name)
            arrays.append(_typed([r.get(name) for r in records], field.type, name, extra, "k"))
        elif name in top:  # the prediction of a model the registry does not describe
            arr, j = _column([r.get(name) for r in records])
            names.append(name)
            arrays.append(arr)
            if j:
                as_json.append(name)
    placed = set(names)
    for key in top:  # keys the table does not have: each value kept as it is
        if key not in placed:
            for i, r in enumerate(records):
                if key in r:
                    row = extra[i]
                    if row is None:
                        row = extra[i] = {}
                    row.setdefault("k", {})[key] = r[key]
    names.append(EXTRA)
    arrays.append(pa.array([None if e is None else _dumps(e) for e in extra], type=pa.string()))
    names.append(LAYOUT)
    arrays.append(pa.array(layout_ids, type=pa.int32()))
    meta = {
        META_FORMAT: FORMAT,
        META_SOURCES: orjson.dumps([[k, n] for k, n in sources]),
        META_LAYOUTS: orjson.dumps([[list(keys), None if ins is None else list(ins)] for keys, ins in layouts]),
        META_JSON: orjson.dumps(as_json),
        META_INPUTS: orjson.dumps(_input_names(schema, fields)),
    }
    return pa.Table.from_arrays(arrays, names=names).replace_schema_metadata(meta)


def _input_names(schema: Any, fields: dict[str, None]) -> list[list[str]]:
    """[struct field, feature] of each input field the table has."""
    if schema.inputs is not None:
        return [[f.name, f.key] for f in schema.inputs]
    return [[f, f] for f in fields]


def _inputs(
    records: Sequence[dict[str, Any]],
    schema: Any,
    fields: dict[str, None],
    extra: list[dict[str, Any] | None],
    as_json: list[str],
) -> Any:
    """The ``inputs`` struct: the table's features typed (others kept in ``extra``), or each typed per hour."""
    import pyarrow as pa

    rows = [r.get(INPUTS) if isinstance(r.get(INPUTS), dict) else None for r in records]
    for i, r in enumerate(records):
        value = r.get(INPUTS)
        if value is not None and not isinstance(value, dict):  # not an object: kept as it is
            row = extra[i]
            if row is None:
                row = extra[i] = {}
            row.setdefault("k", {})[INPUTS] = value
    children, names = [], []
    if schema.inputs is not None:
        known = set()
        for f in schema.inputs:
            known.add(f.key)
            names.append(f.name)
            children.append(_typed([None if d is None else d.get(f.key) for d in rows], f.type, f.key, extra, "i"))
        for key in fields:
            if key not in known:
                for i, d in enumerate(rows):
                    if d is not None and key in d:
                        row = extra[i]
                        if row is None:
                            row = extra[i] = {}
                        row.setdefault("i", {})[key] = d[key]
    else:
        for f in fields:
            arr, j = _column([None if d is None else d.get(f) for d in rows])
            names.append(f)
            children.append(arr)
            if j:
                as_json.append(f"{INPUTS}.{f}")
    mask = pa.array([d is None for d in rows], type=pa.bool_())
    return pa.StructArray.from_arrays(children, names=names, mask=mask)


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
    if meta.get(META_FORMAT) not in FORMATS or META_SOURCES not in meta or LAYOUT not in table.column_names:
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
    cols = columns(table, ("request_id", "row"))
    return [(str(a), int(b or 0)) for a, b in zip(cols["request_id"], cols["row"], strict=True)]


def _values(arr: Any, name: str, as_json: set[str]) -> list[Any]:
    values = arr.to_pylist()
    if name in as_json:
        return [None if v is None else _loads(v) for v in values]
    return list(values)


def _extras(table: Any) -> list[dict[str, Any] | None]:
    """Each row's values kept beside the typed columns (format 2), else None."""
    if EXTRA not in table.column_names:
        return [None] * len(table)
    return [None if v is None else _loads(v) for v in table.column(EXTRA).to_pylist()]


def columns(table: Any, names: Iterable[str]) -> dict[str, list[Any]]:
    """Top-level fields as Python lists (None where a record lacked one), without building the records: a
    reader that needs a few fields of every row (the feedback look-up) skips the inputs."""
    as_json = set(orjson.loads(table.schema.metadata[META_JSON]))
    extras = _extras(table)
    out = {}
    for name in names:
        if name in table.column_names and name not in (INPUTS, LAYOUT, EXTRA):
            values = _values(table.column(name), name, as_json)
        else:
            values = [None] * len(table)
        for i, e in enumerate(extras):
            if e is not None and name in e.get("k", ()):
                values[i] = e["k"][name]
        out[name] = values
    return out


def decode(table: Any) -> list[dict[str, Any]]:
    """The records, as they were given to ``encode`` (rows the caller filtered out are simply not there)."""
    meta = table.schema.metadata
    layouts = orjson.loads(meta[META_LAYOUTS])
    as_json = set(orjson.loads(meta[META_JSON]))
    renamed = dict(orjson.loads(meta[META_INPUTS])) if META_INPUTS in meta else {}
    cols: dict[str, list[Any]] = {}
    inputs: dict[str, list[Any]] = {}
    for name in table.column_names:
        if name in (LAYOUT, EXTRA):
            continue
        col = table.column(name)
        if name == INPUTS:
            struct = col.combine_chunks()
            for i, field in enumerate(struct.type):
                key = renamed.get(field.name, field.name)
                inputs[key] = _values(struct.field(i), f"{INPUTS}.{field.name}", as_json)
        else:
            cols[name] = _values(col, name, as_json)
    extras = _extras(table)
    out = []
    for i, lay in enumerate(table.column(LAYOUT).to_pylist()):
        keys, in_keys = layouts[lay]
        e = extras[i] or {}
        top, ins = e.get("k", {}), e.get("i", {})
        rec: dict[str, Any] = {}
        for k in keys:
            if k in top:
                rec[k] = top[k]
            elif k == INPUTS:
                rec[k] = None if in_keys is None else {f: ins[f] if f in ins else inputs[f][i] for f in in_keys}
            else:
                rec[k] = cols[k][i]
        out.append(rec)
    return out


def record_ids(records: Iterable[dict[str, Any]]) -> list[tuple[str, int]]:
    """(request_id, row) of raw records, in order, as ``ids`` gives them for a table."""
    return [(str(r.get("request_id")), int(r.get("row") or 0)) for r in records]
