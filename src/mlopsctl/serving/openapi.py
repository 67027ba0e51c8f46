"""The OpenAPI document, made to say exactly what the server does.

FastAPI describes the routes it sees; the prediction routes are answered before it (`asgi.py`) and
every route has error answers FastAPI cannot know. `document` fills in, from the models being served:
each request body as the server validates it (feature names, types, nullability, row limits, no other
fields), every status a route can answer with its body (`ErrorBody` for every error), and the content
types of the pages that are not JSON. `tests/test_openapi.py` holds the server to it with schemathesis.
"""

from __future__ import annotations

import json
import re
from typing import Any

ERROR_BODY = {
    "type": "object",
    "description": "Every error: a code, and the problems by field (and the request id on prediction routes).",
    "properties": {
        "error": {"type": "string"},
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "problem": {"type": "string"}},
                "required": ["field", "problem"],
            },
        },
        "request_id": {"type": "string"},
    },
    "required": ["error", "detail"],
}
MLFLOW_ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "description": "MLflow's scoring-server error: its error_code (BAD_REQUEST: the body cannot be read as a table; "
    "INVALID_PARAMETER_VALUE: it does not fit the model's signature) and message, with mlopsctl's problems by field "
    "and the request id beside them.",
    "properties": {
        "error_code": {"type": "string"},
        "message": {"type": "string"},
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "problem": {"type": "string"}},
                "required": ["field", "problem"],
            },
        },
        "request_id": {"type": "string"},
    },
    "required": ["error_code", "message"],
}
# the statuses /invocations answers in MLflow's shape: 413 (asgi.py) and 503 (predict.answer) are answered before
# the protocol is asked, in mlopsctl's own shape
_MLFLOW_SHAPED = (400, 415)
_MLFLOW_WHY = {
    400: "invalid input: the body cannot be read as a table (BAD_REQUEST) or does not fit the signature "
    "(INVALID_PARAMETER_VALUE)",
    413: "body over [serving] max_body_bytes",
    415: "a content type other than application/json, text/csv or application/vnd.apache.parquet",
    503: "no model loaded yet",
}
INVOCATIONS_DOC = (
    "MLflow's scoring protocol, as `mlflow models serve` answers it. JSON with one of dataframe_split, "
    "dataframe_records, instances or inputs (records, an object of columns, or one row's values; params and other "
    "keys are ignored); text/csv as pandas' to_csv writes it, with or without its index; or a Parquet file "
    "(Content-Type: application/vnd.apache.parquet). Features are matched by exact name; columns that are not "
    'features are ignored. The answer is {"predictions": [...]}; errors are MLflow\'s {"error_code", "message"}.'
)
_WHY = {
    400: "malformed JSON",
    401: "the management key is missing or wrong",
    404: "not found",
    409: "conflict with the server's state",
    413: "body over [serving] max_body_bytes, or too many rows",
    415: "unsupported content type",
    422: "invalid input: the problems by field",
    503: "no model loaded yet",
}
_ERRORS = {
    ("/predict", "post"): (400, 413, 415, 422, 503),
    ("/models/{name}/predict", "post"): (400, 404, 413, 415, 422, 503),
    ("/invocations", "post"): (400, 413, 415, 503),
    ("/feedback", "post"): (400, 401, 404, 409, 413, 422),
    ("/retrain", "post"): (400, 401, 409, 413, 422),
    ("/retrain/{run_id}", "get"): (401, 404),
    ("/models/{name}", "get"): (404,),
    ("/ready", "get"): (503,),
    ("/ping", "get"): (404,),
}
_CONTENT = {
    ("/metrics", "get"): ("text/plain; version=0.0.4; charset=utf-8", {"type": "string"}),
    ("/dashboard", "get"): ("text/html; charset=utf-8", {"type": "string"}),
    ("/version", "get"): ("text/plain; charset=utf-8", {"type": "string"}),
}
_OK = {("/retrain", "post"): 202}


def feedback_item(tasks: list[str]) -> dict[str, Any]:
    """A label as the served models take it: a class (a string, or a number below 2^53) or a value."""
    classes = [{"type": "string", "minLength": 1, "maxLength": 256}, {"type": "number", "exclusiveMaximum": 2**53,
               "exclusiveMinimum": -(2**53)}]  # fmt: skip
    label: dict[str, Any] = (
        {"type": "number"} if tasks and all(t == "regression" for t in tasks) else {"oneOf": classes}
    )
    if "regression" in tasks and not all(t == "regression" for t in tasks):
        label = {"oneOf": [classes[0], {"type": "number"}]}
    return {
        "type": "object",
        "properties": {
            "request_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "description": "the request_id of a prediction",
            },
            "label": {"description": "the true class (classification) or value (regression)", **label},
            "row": {
                "type": "integer",
                "minimum": 0,
                "maximum": 2**53 - 1,
                "default": 0,
                "description": "row of a batch request",
            },
        },
        "required": ["request_id", "label"],
        "additionalProperties": False,
    }


def invocations_body(row: dict[str, Any], max_rows: int) -> dict[str, Any]:
    """The MLflow scoring protocol's JSON forms, for the columns of ``row`` (an object schema): columns that are
    not features, ``params`` and other keys are ignored, as MLflow ignores them."""
    columns = list(row["properties"])
    row = {**row, "additionalProperties": True}
    records = {"type": "array", "items": row, "minItems": 1, "maxItems": max_rows}
    values = {
        "type": "array",
        "prefixItems": [row["properties"][c] for c in columns],
        "items": False,
        "minItems": len(columns),
    }
    split = {
        "type": "object",
        # "index" (pandas' row labels, one per row of data: MLflow refuses any other length) is taken and ignored;
        # JSON Schema cannot say "as long as data", so it is not in the schema, which would then be untrue
        "description": "pandas' to_dict(orient='split'): an index (one label per row) may be given too, and is ignored",
        "properties": {
            "columns": {"const": columns, "description": "the features, in this order"},
            "data": {"type": "array", "items": values, "minItems": 1, "maxItems": max_rows},
        },
        "required": ["columns", "data"],
        "additionalProperties": False,
    }
    forms = [("dataframe_records", records), ("instances", records), ("inputs", records), ("dataframe_split", split)]
    others = ["dataframe_records", "instances", "inputs", "dataframe_split", "messages", "prompt", "input"]
    return {
        "oneOf": [
            {
                "type": "object",
                "properties": {k: v},
                "required": [k],
                "propertyNames": {"not": {"enum": [o for o in others if o != k]}},  # one form; no LLM keys
            }
            for k, v in forms
        ]
    }


def csv_body(row: dict[str, Any]) -> dict[str, Any]:
    """CSV as the server reads it: the header row (the features, in order), then rows of their values."""
    import re

    def value(p: dict[str, Any]) -> str:
        kinds = p["type"] if isinstance(p["type"], list) else [p["type"]]
        number = r"-?[0-9]{1,6}(\.[0-9]{1,6})?"
        cell = number if "number" in kinds else r"[A-Za-z][A-Za-z0-9 _]{0,20}"
        return f"({cell})?" if "null" in kinds else cell

    names = list(row["properties"])
    header = ",".join(re.escape(n) if re.fullmatch(r"[^,\"\r\n]*", n) else re.escape(f'"{n}"') for n in names)
    line = ",".join(value(row["properties"][n]) for n in names)
    return {
        "type": "string",
        "pattern": f"^{header}\\n({line}\\n){{1,20}}$",
        "description": "a header row with the features, then one row per line",
    }


def document(
    schema: dict[str, Any],
    *,
    first: Any | None,
    specs: list[Any],
    max_rows: int,
    tasks: list[str] | None = None,
    names: list[str] | None = None,
) -> dict[str, Any]:
    """Fill in ``schema`` (FastAPI's) for the served specs (`inputs.InputSpec`); ``first`` answers /predict;
    ``names`` are the models served (the values of a ``{name}`` in a path)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = ERROR_BODY
    components["MlflowErrorBody"] = MLFLOW_ERROR_BODY
    components["FeedbackItem"] = feedback_item(tasks or [])

    def body(path: str, request: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        op = schema["paths"][path]["post"]
        content = {"application/json": {"schema": request}, **(extra or {})}
        op["requestBody"] = {"required": True, "content": content}

    if first is not None:
        body("/predict", first.request_schema(max_rows))
        body(
            "/invocations",
            invocations_body(first.row_schema(), max_rows),
            {"text/csv": {"schema": csv_body(first.row_schema())}},
        )
        schema["paths"]["/invocations"]["post"]["description"] = INVOCATIONS_DOC
    templated = schema["paths"].pop("/models/{name}/predict", None)
    for name, spec in zip(names or [], specs, strict=False):
        # one path per served model, each with its own body: a templated path could not say which body
        # goes with which name
        if templated is None or spec is None:
            continue
        op = json.loads(json.dumps(templated["post"]))
        op["parameters"] = [p for p in op.get("parameters", []) if p.get("name") != "name"]
        op["summary"] = f"Predict with {name}"
        op["operationId"] = f"predict_{re.sub(r'[^0-9A-Za-z_]', '_', name)}"
        schema["paths"][f"/models/{name}/predict"] = {"post": op}
        body(f"/models/{name}/predict", spec.request_schema(max_rows))
    item = {"$ref": "#/components/schemas/FeedbackItem"}
    body("/feedback", {"oneOf": [item, {"type": "array", "items": item, "minItems": 1, "maxItems": max_rows}]})
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            for param in op.get("parameters", []):
                if param.get("name") == "name" and param.get("in") == "path" and names:
                    param["schema"] = {"type": "string", "enum": list(names)}
            responses: dict[str, Any] = op.setdefault("responses", {})
            responses.pop("422", None)  # FastAPI's own validation error shape is not what the server answers
            ok = _OK.get((path, method))
            if ok is not None:
                responses[str(ok)] = responses.pop("200", {"description": "accepted"})
                responses[str(ok)]["description"] = "accepted"
            kind = _CONTENT.get((path, method))
            if kind is not None:
                responses["200"] = {"description": "OK", "content": {kind[0]: {"schema": kind[1]}}}
            route = "/models/{name}/predict" if re.fullmatch(r"/models/[^/{}]+/predict", path) else path
            mlflow = route == "/invocations"  # MLflow's error body, as MLflow's clients read it
            for status in _ERRORS.get((route, method), ()):
                error = "MlflowErrorBody" if mlflow and status in _MLFLOW_SHAPED else "ErrorBody"
                responses[str(status)] = {
                    "description": (_MLFLOW_WHY if mlflow else _WHY)[status],
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{error}"}}},
                }
    return schema
