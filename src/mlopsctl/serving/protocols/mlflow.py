"""MLflow's scoring protocol (`POST /invocations`) as `mlflow models serve` speaks it, so MLflow clients work unchanged.

A body is ``application/json`` with one of ``dataframe_split``, ``dataframe_records``, ``instances`` or
``inputs`` (``params`` and other keys are ignored), ``text/csv`` (what pandas' ``to_csv`` writes, with or
without its index) or ``application/vnd.apache.parquet``. As in MLflow, features are matched by their exact
names and columns that are not features are ignored. The answer is ``{"predictions": [...]}``; an error is
MLflow's ``{"error_code", "message"}`` with its status (400 where MLflow answers 400), plus the problems by
field in ``detail``. docs/serving.md lists where this differs from MLflow's scoring server, and why;
tests/test_mlflow_parity.py holds it to a real ``mlflow models serve``.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from mlopsctl.errors import ValidationError
from mlopsctl.serving.inputs import InputSpec, coerce_strings
from mlopsctl.serving.loaded import LoadedModel

if TYPE_CHECKING:
    from mlopsctl.serving.predict import Refused

FORMS = ("dataframe_split", "dataframe_records", "instances", "inputs")
LLM_KEYS = ("messages", "prompt", "input")  # MLflow reads a body with one of them as a chat/completions/embeddings call
MEDIA_TYPES = {"application/json": "json", "text/csv": "csv", "application/vnd.apache.parquet": "parquet"}
# MLflow's error codes (mlflow.protos.databricks_pb2) for mlopsctl's error names
BAD_REQUEST, INVALID_PARAMETER_VALUE = "BAD_REQUEST", "INVALID_PARAMETER_VALUE"
CODES = {
    "invalid_input": INVALID_PARAMETER_VALUE,
    "not_ready": "TEMPORARILY_UNAVAILABLE",
    "body_too_large": "REQUEST_LIMIT_EXCEEDED",
    "internal_error": "INTERNAL_ERROR",
}
_WHAT = {
    BAD_REQUEST: "Invalid input",
    INVALID_PARAMETER_VALUE: "The input does not fit the model's signature",
    "TEMPORARILY_UNAVAILABLE": "No model is loaded yet",
    "REQUEST_LIMIT_EXCEEDED": "The body is too large",
    "INTERNAL_ERROR": "The model failed",
}
PARQUET_MAX_BYTES = 64 << 20  # a Parquet body's feature columns, uncompressed: a small body can unpack to gigabytes


class Table(NamedTuple):
    """A body's rows, each holding only the model's features (by exact name), and what errors need."""

    rows: list[Any]
    prefix: str  # the field path of the rows in errors (``dataframe_records`` → ``dataframe_records[3].alcohol``)
    columns: list[Any] | None  # the body's columns, where it has a header (split, CSV, Parquet, columns)
    source: list[Any] | None = None  # the records as sent, to name their columns only if validation fails


def _bad(field: str, problem: str) -> ValidationError:
    return ValidationError(f"{field}: {problem}", [(field, problem)])


# -- content types ----------------------------------------------------------------------------------------


def media_kind(content_type: str) -> str:
    """json, csv or parquet for a Content-Type header, as MLflow reads it (only ``charset=utf-8`` as a
    parameter); a request without one is read as JSON. Raises ValidationError: a 415."""
    mime, *params = (p.strip() for p in content_type.split(";"))
    if not mime:
        return "json"
    kind = MEDIA_TYPES.get(mime.lower())
    if kind is None:
        allowed = ", ".join(MEDIA_TYPES)
        raise _bad("content-type", f"{mime!r}: send one of {allowed}")
    for param in filter(None, params):
        key, _, value = param.partition("=")
        if key.strip().lower() != "charset":
            raise _bad("content-type", f"{param!r}: the only parameter taken is charset=utf-8")
        if value.strip().strip('"').lower() != "utf-8":
            raise _bad("content-type", f"{param!r}: bodies are read as UTF-8 only")
    return kind


# -- JSON -------------------------------------------------------------------------------------------------


def rows_from_json(body: bytes, names: list[str], max_rows: int) -> Table:
    """The rows of a JSON body in one of MLflow's four forms (``params`` and other keys ignored, as MLflow does)."""
    if not body:
        raise _bad("body", f"empty body: expected a JSON object with one of {', '.join(FORMS)}")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _bad("body", f"not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise _bad("body", f"expected a JSON object with one of {', '.join(FORMS)}, got {type(payload).__name__}")
    llm = next((k for k in LLM_KEYS if k in payload), None)
    if llm is not None:
        raise _bad(llm, f"MLflow's chat, completions and embeddings key: this model takes one of {', '.join(FORMS)}")
    present = [k for k in FORMS if k in payload]
    if len(present) != 1:
        got = ", ".join(present) or "none"
        raise _bad("body", f"expected exactly one of {', '.join(FORMS)}; got {got}")
    key = present[0]
    value = payload[key]
    if key == "dataframe_split":
        return _split(value, names, max_rows)
    if isinstance(value, list):
        if key != "dataframe_records" and len(names) == 1 and value and not any(isinstance(v, dict) for v in value):
            value = [{names[0]: v} for v in value]  # a one-column model's values, as MLflow matches them to it
        return _records(value, key, names, max_rows)
    if isinstance(value, dict) and key != "dataframe_records":
        return _columns(value, key, names, max_rows)
    if key == "dataframe_records":
        raise _bad(key, "expected an array of records (objects of column values)")
    raise _bad(key, "expected an array of records, an object of columns (arrays of values) or one row's values")


def _records(value: list[Any], key: str, names: list[str], max_rows: int) -> Table:
    _count(key, len(value), max_rows)
    rows = [{n: r[n] for n in names if n in r} if isinstance(r, dict) else r for r in value]
    return Table(rows, key, None, value)


def _columns(value: dict[str, Any], key: str, names: list[str], max_rows: int) -> Table:
    """``{"col": [v1, v2], ...}``, or ``{"col": v, ...}`` for one row."""
    arrays = [isinstance(v, list) for v in value.values()]
    if not any(arrays):
        return Table([{n: value[n] for n in names if n in value}], key, list(value))
    if not all(arrays):
        scalar = next(c for c, v in value.items() if not isinstance(v, list))
        raise _bad(f"{key}.{scalar}", "expected an array of values like the other columns (values are not repeated)")
    lengths = sorted({len(v) for v in value.values()})
    if len(lengths) != 1:
        raise _bad(key, f"expected every column to be an array of the same length; got lengths {lengths[:5]}")
    _count(key, lengths[0], max_rows)
    feats = [n for n in names if n in value]
    return Table([{n: value[n][i] for n in feats} for i in range(lengths[0])], key, list(value))


def _split(value: Any, names: list[str], max_rows: int) -> Table:
    key = "dataframe_split"
    if not isinstance(value, dict):
        raise _bad(key, 'expected {"columns": [...], "data": [[...], ...]} (and optionally "index")')
    extra = sorted(set(value) - {"columns", "data", "index"})
    if extra:
        raise _bad(f"{key}.{extra[0]}", "unknown field: expected columns, data and index")
    data, cols = value.get("data"), value.get("columns")
    if not isinstance(data, list):
        raise _bad(f"{key}.data", "expected an array of rows, each an array of values")
    if not isinstance(cols, list):
        raise _bad(f"{key}.columns", "expected the column names, in the order of each row's values")
    bad = next((i for i, c in enumerate(cols) if not isinstance(c, str)), None)
    if bad is not None:
        raise _bad(f"{key}.columns[{bad}]", f"expected a column name (a string), got {cols[bad]!r}"[:200])
    index = value.get("index")  # null: pandas' default labels, as absent
    if index is not None and (not isinstance(index, list) or len(index) != len(data)):
        raise _bad(f"{key}.index", f"expected an array of {len(data)} row labels, one per row of data")
    _count(key, len(data), max_rows)
    for i, rec in enumerate(data):
        if not isinstance(rec, list) or len(rec) != len(cols):
            raise _bad(f"{key}.data[{i}]", f"expected an array of {len(cols)} values")
    at = {c: i for i, c in enumerate(cols)}
    feats = [(n, at[n]) for n in names if n in at]
    return Table([{n: rec[i] for n, i in feats} for rec in data], f"{key}.data", cols)


def _count(key: str, n: int, max_rows: int) -> None:
    if n == 0:
        raise _bad(key, "no rows")
    if n > max_rows:
        raise _bad(key, f"{n} rows: at most {max_rows} per request ([serving] max_batch_rows)")


# -- CSV and Parquet --------------------------------------------------------------------------------------


def rows_from_csv(body: bytes, spec: InputSpec, max_rows: int) -> Table:
    """A CSV table with a header row, as pandas reads one: blank lines skipped, a first column without a
    header name (``to_csv``'s index) ignored like any column that is not a feature, short rows padded."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _bad("body", "CSV body is not UTF-8") from None
    reader = csv.reader(io.StringIO(text))
    records: list[list[str]] = []
    try:
        header = next(reader, None)
        for rec in reader:
            if rec:
                records.append(rec)
            if len(records) > max_rows:
                raise _bad("body", f"more than {max_rows} rows per request ([serving] max_batch_rows)")
    except csv.Error as exc:  # a field over the csv module's limit (128 KiB), a NUL byte, …
        raise _bad(f"row {len(records) + 1}", f"not CSV the server can read: {exc}") from None
    if not header:
        raise _bad("body", "empty CSV: expected a header row and data rows")
    if not records:
        raise _bad("body", "CSV has a header but no rows")
    if len(header) == 1 and ";" in header[0]:
        raise _bad("body", "the header is one column holding ';': send comma-separated values (pandas: to_csv())")
    width = len(header)
    if all(len(r) == width + 1 for r in records):
        header = ["", *header]  # every row one value longer than the header: pandas takes the first as the index
        width += 1
    long = next((i for i, r in enumerate(records) if len(r) > width), None)
    if long is not None:
        raise _bad(f"row {long + 1}", f"{len(records[long])} values, the header has {width} columns")
    at = {c: i for i, c in enumerate(header)}
    feats = [(n, at[n]) for n in spec.names if n in at]
    rows = [{n: r[i] if i < len(r) else "" for n, i in feats} for r in records]
    return Table(coerce_strings(rows, spec), "rows", header)


def rows_from_parquet(body: bytes, names: list[str], max_rows: int) -> Table:
    """A Parquet file's rows, reading only the feature columns (pandas' index columns are not columns)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(pa.BufferReader(body))
        meta, schema = file.metadata, file.schema_arrow
    except Exception as exc:  # whatever pyarrow raises on bytes that are not Parquet is the body's fault
        raise _bad("body", f"not a Parquet file: {str(exc)[:200]}") from None
    _count("body", meta.num_rows, max_rows)
    index = {c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)}
    columns = [c for c in schema.names if c not in index]
    feats = [n for n in names if n in columns]
    size = sum(
        chunk.total_uncompressed_size
        for g in range(meta.num_row_groups)
        for chunk in (meta.row_group(g).column(j) for j in range(meta.num_columns))
        if chunk.path_in_schema.split(".")[0] in feats
    )
    if size > PARQUET_MAX_BYTES:
        raise _bad("body", f"the feature columns unpack to {size:,} bytes: at most {PARQUET_MAX_BYTES:,}")
    try:
        table = file.read(columns=feats)
    except Exception as exc:
        raise _bad("body", f"Parquet the server cannot read: {str(exc)[:200]}") from None
    values = {n: table.column(n).to_pylist() for n in feats}
    return Table([{n: values[n][i] for n in feats} for i in range(table.num_rows)], "rows", columns)


# -- errors -----------------------------------------------------------------------------------------------


def missing_columns(problems: list[tuple[str, str]], table: Table, names: list[str]) -> list[tuple[str, str]]:
    """Validation's problems with a feature absent from every row said once, as MLflow says it ("missing
    inputs"), naming the columns that were ignored (a misspelt feature is usually among them)."""
    if table.columns is not None:
        sent = list(table.columns)
    elif all(isinstance(r, dict) for r in table.source or []):
        sent = list(dict.fromkeys(k for r in table.source or [] for k in r))
    else:
        return problems  # rows that are not records: validation's own words say it
    missing = [n for n in names if n not in sent]
    if not missing:
        return problems
    gone = {f".{n}" for n in missing}
    rest = [(f, p) for f, p in problems if not (p == "missing field" and any(f.endswith(g) for g in gone))]
    summary = f"missing {len(missing)} of the model's {len(names)} features: {_names(missing)}"
    ignored = [c for c in sent if c not in names and c != ""]
    if ignored:
        summary += f"; not features, so ignored: {_names(ignored)}"
    return [("columns", summary), *((n, "missing column") for n in missing), *rest]


def _names(names: list[Any]) -> str:
    return ", ".join(repr(str(c)) for c in names[:5]) + (", …" if len(names) > 5 else "")


def message(code: str, problems: list[tuple[str, str]]) -> str:
    """MLflow's one-line message: the first problems (each missing column is in the summary of the columns)."""
    problems = [(f, p) for f, p in problems if p != "missing column"] or problems
    shown = "; ".join(f"{f}: {p}" for f, p in problems[:3])
    more = f"; and {len(problems) - 3} more (see detail)" if len(problems) > 3 else ""
    return f"{_WHAT.get(code, 'Invalid input')}. {shown}{more}"


def _refused(status: int, code: str, exc: ValidationError) -> Refused:
    from mlopsctl.serving.predict import Refused

    problems = exc.problems or [("body", str(exc))]
    return Refused(status, code, problems, str(exc)[:500])


class MlflowProtocol:
    name = "invocations"

    def rows(self, model: LoadedModel, content_type: str, body: bytes, max_rows: int) -> tuple[list[Any], str, bool]:
        """The body's rows, validated here: MLflow answers 400 where mlopsctl's own routes answer 422."""
        try:
            kind = media_kind(content_type)
        except ValidationError as exc:
            raise _refused(415, BAD_REQUEST, exc) from None
        spec = model.spec
        try:
            if kind == "csv":
                table = rows_from_csv(body, spec, max_rows)
            elif kind == "parquet":
                table = rows_from_parquet(body, spec.names, max_rows)
            else:
                table = rows_from_json(body, spec.names, max_rows)
        except ValidationError as exc:
            raise _refused(400, BAD_REQUEST, exc) from None
        try:
            spec.columns(table.rows, field_prefix=table.prefix)
        except ValidationError as exc:
            problems = missing_columns(exc.problems, table, spec.names)
            raise _refused(400, INVALID_PARAMETER_VALUE, ValidationError(str(exc), problems)) from None
        return table.rows, table.prefix, False

    def answer(
        self, model: LoadedModel, preds: list[Any], probas: Any, single: bool, variant: str, request_id: str
    ) -> dict[str, Any]:
        return {"predictions": preds}

    def error(self, status: int, error: str, problems: list[tuple[str, str]], request_id: str) -> bytes:
        """MLflow's error body, ``{"error_code", "message"}``, with the problems by field and the request id."""
        code = error if error.isupper() else CODES.get(error, BAD_REQUEST if status < 500 else "INTERNAL_ERROR")
        body = {
            "error_code": code,
            "message": message(code, problems),
            "detail": [{"field": f, "problem": p} for f, p in problems],
            "request_id": request_id,
        }
        return orjson.dumps(body)


MLFLOW = MlflowProtocol()
