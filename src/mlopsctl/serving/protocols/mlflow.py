"""MLflow's scoring protocol (`POST /invocations`), so MLflow clients work unchanged.

JSON bodies carry one of ``dataframe_split`` (columns + data), ``dataframe_records``
(a list of objects), ``instances`` or ``inputs`` (a list of objects, or an object of
columns); ``text/csv`` bodies are a table with a header row. The answer is
``{"predictions": [...]}``.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from mlopsctl.errors import ValidationError
from mlopsctl.serving.inputs import InputSpec, coerce_strings
from mlopsctl.serving.loaded import LoadedModel

KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def rows_from_json(payload: Any, max_rows: int) -> tuple[list[Any], str]:
    if not isinstance(payload, dict):
        raise ValidationError("body", [("body", f"expected an object with one of {', '.join(KEYS)}")])
    present = [k for k in KEYS if k in payload]
    extra = [k for k in payload if k not in KEYS and k != "params"]
    if len(present) != 1 or extra:
        raise ValidationError(
            "body",
            [
                (
                    "body",
                    f"expected exactly one of {', '.join(KEYS)}" + (f"; unknown: {', '.join(extra)}" if extra else ""),
                )
            ],
        )
    key = present[0]
    value = payload[key]
    if key == "dataframe_split":
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("columns"), list)
            or not isinstance(value.get("data"), list)
        ):
            raise ValidationError("body", [(key, 'expected {"columns": [...], "data": [[...], ...]}')])
        extra = sorted(set(value) - {"columns", "data", "index"})
        if extra:
            raise ValidationError("body", [(f"{key}.{extra[0]}", "unknown field: expected columns, data and index")])
        if "index" in value and not isinstance(value["index"], list):
            raise ValidationError("body", [(f"{key}.index", "expected an array of row labels")])
        cols = value["columns"]
        bad = next((i for i, c in enumerate(cols) if not isinstance(c, str)), None)
        if bad is not None:
            raise ValidationError(
                "body", [(f"{key}.columns[{bad}]", f"expected a column name (a string), got {cols[bad]!r}"[:200])]
            )
        rows = []
        for i, rec in enumerate(value["data"]):
            if not isinstance(rec, list) or len(rec) != len(cols):
                raise ValidationError("body", [(f"{key}.data[{i}]", f"expected an array of {len(cols)} values")])
            rows.append(dict(zip(cols, rec, strict=True)))
    elif isinstance(value, dict):  # columnar: {"col": [v1, v2], ...}
        lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise ValidationError("body", [(key, "expected every column to be an array of the same length")])
        n = lengths.pop()
        rows = [{c: value[c][i] for c in value} for i in range(n)]
    elif isinstance(value, list):
        rows = value
    else:
        raise ValidationError("body", [(key, "expected an array of objects or an object of columns")])
    if not rows:
        raise ValidationError("body", [(key, "no rows")])
    if len(rows) > max_rows:
        raise ValidationError("body", [(key, f"{len(rows)} rows: at most {max_rows} per request")])
    return rows, key


def rows_from_csv(body: bytes, spec: InputSpec, max_rows: int) -> list[dict[str, Any]]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError("body", [("body", "CSV body is not UTF-8")]) from None
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise ValidationError("body", [("body", "empty CSV: expected a header row and data rows")])
    rows = []
    try:
        for i, row in enumerate(reader):
            if None in row:
                raise ValidationError("body", [(f"row {i + 1}", "more values than header columns")])
            rows.append(row)
            if len(rows) > max_rows:
                raise ValidationError("body", [("body", f"more than {max_rows} rows per request")])
    except csv.Error as exc:  # a field over the csv module's limit (128 KiB), a NUL byte, …
        raise ValidationError("body", [(f"row {len(rows) + 1}", f"not CSV the server can read: {exc}")]) from None
    if not rows:
        raise ValidationError("body", [("body", "CSV has a header but no rows")])
    return coerce_strings(rows, spec)


class MlflowProtocol:
    name = "invocations"

    def rows(self, model: LoadedModel, content_type: str, body: bytes, max_rows: int) -> tuple[list[Any], str, bool]:
        if content_type.startswith("text/csv"):
            return rows_from_csv(body, model.spec, max_rows), "rows", False
        from mlopsctl.serving.predict import json_payload

        rows, prefix = rows_from_json(json_payload(content_type, body, csv=True), max_rows)
        return rows, prefix, False

    def answer(
        self, model: LoadedModel, preds: list[Any], probas: Any, single: bool, variant: str, request_id: str
    ) -> dict[str, Any]:
        return {"predictions": preds}

    def error(self, status: int, error: str, problems: list[tuple[str, str]], request_id: str) -> bytes:
        from mlopsctl.serving.predict import error_body

        return error_body(error, problems, request_id)


MLFLOW = MlflowProtocol()
