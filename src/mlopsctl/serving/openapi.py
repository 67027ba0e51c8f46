"""The OpenAPI document, made to say exactly what the server does.

FastAPI describes the routes it sees; the prediction routes are answered before it (`asgi.py`) and
every route has error answers FastAPI cannot know. `document` fills in, from the models being served:
each request body as the server validates it (feature names, types, nullability, row limits, no other
fields), every status a route can answer with its body (`ErrorBody` for every error), and the content
types of the pages that are not JSON. `tests/test_openapi.py` holds the server to it with schemathesis.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# the problems by field, in every protocol's error body
PROBLEMS: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"field": {"type": "string"}, "problem": {"type": "string"}},
        "required": ["field", "problem"],
    },
}
ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "description": "Every error: a code, and the problems by field (and the request id on prediction routes).",
    "properties": {
        "error": {"type": "string"},
        "detail": PROBLEMS,
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
        "detail": PROBLEMS,
        "request_id": {"type": "string"},
    },
    "required": ["error_code", "message"],
}
# the statuses /invocations answers in MLflow's shape (413 and 503 too: asgi.py and predict.answer ask the protocol)
_MLFLOW_SHAPED = (400, 413, 415, 503)
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


# -- the Open Inference Protocol (/v2): its own error body and answers, one infer body per served model --------

OIP_ERROR: dict[str, Any] = {
    "type": "object",
    "description": 'The Open Inference Protocol\'s error: {"error": "<message>"}, with the code and the problems '
    "by field beside it.",
    "properties": {
        "error": {"type": "string", "description": "what went wrong, for people (clients print it)"},
        "code": {"type": "string"},
        "detail": PROBLEMS,
        "request_id": {"type": "string"},
    },
    "required": ["error"],
}
_TENSOR_META: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}, "description": "-1: any number of rows"},
    },
    "required": ["name", "datatype", "shape"],
}
_OIP_SCHEMAS: dict[str, Any] = {
    "OipError": OIP_ERROR,
    "OipServerMetadata": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "version", "extensions"],
    },
    "OipModelMetadata": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}, "description": "the versions served now"},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _TENSOR_META, "description": "one per feature"},
            "outputs": {"type": "array", "items": _TENSOR_META},
        },
        "required": ["name", "versions", "platform", "inputs", "outputs"],
    },
    "OipInferResponse": {
        "type": "object",
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string", "description": "the request's id, else the server's request id"},
            "parameters": {"type": "object", "description": "request_id (for feedback) and variant"},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        **_TENSOR_META["properties"],
                        "data": {"type": "array", "description": "row-major, flat"},
                        "parameters": {"type": "object"},
                    },
                    "required": ["name", "datatype", "shape", "data"],
                },
            },
        },
        "required": ["model_name", "model_version", "id", "outputs"],
    },
}
_OIP_WHY = {
    400: "not a request this model takes: a field, name, datatype, shape or value count (the message says which)",
    404: "the model, or the version, is not served here",
    413: "body over [serving] max_body_bytes",
    415: "a compressed body (Content-Encoding), multipart or CSV",
    422: "a value the model's signature refuses: a missing value where training had none, or a number far "
    "outside the training range",
    503: "the model is not loaded (yet)",
}
_OIP_OK: dict[str, Any] = {
    "/v2": {"$ref": "#/components/schemas/OipServerMetadata"},
    "/v2/health/live": {"type": "object", "properties": {"live": {"const": True}}, "required": ["live"]},
    "/v2/health/ready": {"type": "object", "properties": {"ready": {"const": True}}, "required": ["ready"]},
    "/v2/models/{name}": {"$ref": "#/components/schemas/OipModelMetadata"},
    "/v2/models/{name}/versions/{version}": {"$ref": "#/components/schemas/OipModelMetadata"},
    "/v2/models/{name}/ready": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "ready": {"const": True}},
        "required": ["name", "ready"],
    },
}
_OIP_OK["/v2/models/{name}/versions/{version}/ready"] = _OIP_OK["/v2/models/{name}/ready"]
_OIP_ERRORS = {
    "/v2/health/ready": (503,),
    "/v2/models/{name}": (404, 503),
    "/v2/models/{name}/versions/{version}": (404,),
    "/v2/models/{name}/ready": (404, 503),
    "/v2/models/{name}/versions/{version}/ready": (404,),
}
_INFER_ERRORS = (400, 413, 415, 422, 503)


def oip_value_schemas(feature: dict[str, Any], value: dict[str, Any]) -> list[tuple[list[str], dict[str, Any]]]:
    """The datatypes an input tensor of ``feature`` takes, each with the schema of one value (``value``: the
    feature's in a row, as `InputSpec.row_schema` has it): integers in the narrower of the feature's range
    and the type's."""
    from mlopsctl.serving.protocols.oip import FLOATS, INTS, feature_kind

    kind = feature_kind(feature)
    nullable = isinstance(value["type"], list)
    if kind == "string":
        return [(["BYTES"], value)]
    if kind == "bool":
        flag: dict[str, Any] = {"type": ["boolean", "null"] if nullable else "boolean"}
        return [(["BOOL"], flag), (["BYTES"], value)]
    out: list[tuple[list[str], dict[str, Any]]] = [(list(FLOATS), value)]
    groups: dict[tuple[float, float], list[str]] = {}
    for datatype, (lo, hi) in INTS.items():
        low, high = max(lo, math.ceil(value["minimum"])), min(hi, math.floor(value["maximum"]))
        if low <= high:
            groups.setdefault((low, high), []).append(datatype)
    for (low, high), datatypes in groups.items():
        integer = {"type": ["integer", "null"] if nullable else "integer", "minimum": low, "maximum": high}
        out.append((datatypes, integer))
    return out


def oip_infer_body(model: Any, max_rows: int) -> dict[str, Any]:
    """An inference request for ``model`` (a `LoadedModel`), one row: the input tensors in the signature's
    order (any order is taken), shape [1] or [1, 1], data flat or nested."""
    from mlopsctl.serving.protocols.oip import output_names

    row = model.spec.row_schema()["properties"]
    items = []
    for feature in model.signature["inputs"]:
        branches = []
        for datatypes, value in oip_value_schemas(feature, row[feature["name"]]):
            flat = {"type": "array", "items": value, "minItems": 1, "maxItems": 1}
            nested = {"anyOf": [flat, {"type": "array", "items": flat, "minItems": 1, "maxItems": 1}]}
            for shape, data in (([1], flat), ([1, 1], nested)):
                fields = {"datatype": {"enum": datatypes}, "shape": {"const": shape}, "data": data}
                branches.append({"properties": fields})
        items.append(
            {
                "type": "object",
                "properties": {
                    "name": {"const": feature["name"]},
                    "datatype": {"type": "string"},
                    "shape": {"type": "array", "items": {"type": "integer"}},
                    "data": {"type": "array"},
                    "parameters": {"type": "object", "not": {"required": ["binary_data_size"]}},
                },
                "required": ["name", "datatype", "shape", "data"],
                "additionalProperties": False,
                "anyOf": branches,
            }
        )
    output = {
        "type": "object",
        "properties": {
            "name": {"enum": list(output_names(model))},
            "parameters": {"type": "object", "not": {"required": ["classification"]}},
        },
        "required": ["name"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "description": f"One input tensor per feature. N rows (up to {max_rows}): shape [N] or [N, 1] and N values "
        "in each tensor, flat or nested [[x], ...]; this schema shows one row. With the binary tensor data "
        "extension (Inference-Header-Content-Length), a tensor's parameters.binary_data_size replaces its data.",
        "properties": {
            "id": {"type": "string", "description": "echoed in the answer"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "prefixItems": items, "items": False, "minItems": len(items)},
            "outputs": {"type": "array", "items": output, "description": "the outputs to answer (default: all)"},
        },
        "required": ["inputs"],
        "additionalProperties": False,
    }


def oip_document(schema: dict[str, Any], served: list[tuple[str, Any, list[str]]], *, max_rows: int) -> dict[str, Any]:
    """Fill in the /v2 routes of ``schema`` (FastAPI's, after `document`): their answers and error bodies, and
    one infer path per served model (``served``: name, its loaded model or None, the versions served), each
    with its request body."""
    paths = schema["paths"]
    schema.setdefault("components", {}).setdefault("schemas", {}).update(_OIP_SCHEMAS)

    def answers(op: dict[str, Any], ok: dict[str, Any], errors: tuple[int, ...]) -> None:
        responses = op.setdefault("responses", {})
        responses["200"] = {"description": "OK", "content": {"application/json": {"schema": ok}}}
        for status in errors:
            error = {"application/json": {"schema": {"$ref": "#/components/schemas/OipError"}}}
            responses[str(status)] = {"description": _OIP_WHY[status], "content": error}

    for path, ok in _OIP_OK.items():
        if path in paths:
            answers(paths[path]["get"], ok, _OIP_ERRORS.get(path, ()))
    every = sorted({v for _, _, versions in served for v in versions}, key=int)
    for path in ("/v2/models/{name}/versions/{version}", "/v2/models/{name}/versions/{version}/ready"):
        for param in paths.get(path, {}).get("get", {}).get("parameters", []):
            if param.get("name") == "version" and every:
                param["schema"] = {"type": "string", "enum": every}
    plain = paths.pop("/v2/models/{name}/infer", None)
    pinned = paths.pop("/v2/models/{name}/versions/{version}/infer", None)
    response = {"$ref": "#/components/schemas/OipInferResponse"}
    for name, model, versions in served:
        if model is None:
            continue
        slug = re.sub(r"[^0-9A-Za-z_]", "_", name)
        body = {"required": True, "content": {"application/json": {"schema": oip_infer_body(model, max_rows)}}}
        for template, path, errors in (
            (plain, f"/v2/models/{name}/infer", _INFER_ERRORS),
            (pinned, f"/v2/models/{name}/versions/{{version}}/infer", (*_INFER_ERRORS, 404)),
        ):
            if template is None:
                continue
            op = json.loads(json.dumps(template["post"]))
            op["parameters"] = [p for p in op.get("parameters", []) if p.get("name") != "name"]
            for param in op["parameters"]:
                if param.get("name") == "version":
                    param["schema"] = {"type": "string", "enum": versions} if versions else {"type": "string"}
            op["summary"] = f"Inference with {name}" + (" (a version being served)" if "{version}" in path else "")
            op["operationId"] = f"oip_infer_{slug}" + ("_version" if "{version}" in path else "")
            op["requestBody"] = body
            answers(op, response, tuple(sorted(errors)))
            paths[path] = {"post": op}
    return schema
