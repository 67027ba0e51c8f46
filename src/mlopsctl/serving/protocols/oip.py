"""The Open Inference Protocol v2 over REST (KServe, Triton, MLServer, Seldon): ``POST /v2/models/{name}/infer``.

A request carries one named input tensor per feature, shape ``[N]`` or ``[N, 1]`` (N rows), its ``data``
flat or nested ``[[x], ...]``: numbers as FP16/FP32/FP64 or any INT/UINT type, text and categories as
BYTES, a boolean feature as BOOL (or BYTES "true"/"false"). Tensors may also travel as raw bytes after
the JSON (the binary tensor data extension, what tritonclient sends by default): ``PredictRoutes`` then
puts the ``Inference-Header-Content-Length`` header into the content type it hands on (`with_header`),
so the body and that string are all a parse needs, here, in a shadow or in the guard's re-check.

The answer's outputs: ``predict`` (labels or values, ``[N]``) and, for classifiers, ``predict_proba``
(``[N, classes]``) and ``classes`` (the labels in ``predict_proba``'s column order), as MLServer's
scikit-learn runtime names them; a request's ``outputs`` picks among them. Answers are JSON tensors
(binary outputs are not sent: clients read the JSON ``data``). Errors are ``{"error": "<message>"}``, with
the problems by field beside it.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from typing import Any, NamedTuple

import orjson

from mlopsctl.serving.loaded import LoadedModel

FLOATS = ("FP16", "FP32", "FP64")
INTS = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
}
# the datatypes a feature takes, by how the protocol sees it: a number, a string, a flag
ACCEPTS = {
    "number": (*FLOATS, *INTS),
    "string": ("BYTES",),
    "bool": ("BOOL", "BYTES"),
}
NUMPY = {"BOOL": "?", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8", "INT8": "<i1", "INT16": "<i2", "INT32": "<i4"}
NUMPY.update({"INT64": "<i8", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8"})
# the JSON types of a tensor's values by datatype (null: a missing value); the integer types are range-checked
_BOOL: frozenset[type] = frozenset((bool, type(None)))
_JSON_TYPES: dict[str, frozenset[type]] = {"BYTES": frozenset((str, type(None))), "BOOL": _BOOL}
_JSON_TYPES.update({t: frozenset((int, float, type(None))) for t in FLOATS})
_WHAT = {"BYTES": "strings", "BOOL": "true or false", **{t: "numbers" for t in FLOATS}}
OUTPUTS = ("predict", "predict_proba", "classes")
REQUEST_KEYS = frozenset(("id", "parameters", "inputs", "outputs"))
INPUT_KEYS = frozenset(("name", "shape", "datatype", "parameters", "data"))
OUTPUT_KEYS = frozenset(("name", "parameters"))
_NOT_JSON = ("multipart/", "text/csv")  # refused by predict.json_payload (415)
HEADER_MARK = ";inference-header-content-length="  # what PredictRoutes adds to the content type (`with_header`)
ENCODING_MARK = ";content-encoding="

# the request's ``id`` and requested outputs, from `rows` to `answer` (one request per task: the same context)
_REQUEST: ContextVar[tuple[str | None, tuple[str, ...] | None]] = ContextVar("oip_request", default=(None, None))


def with_header(content_type: str, header_length: bytes | None, encoding: bytes | None) -> str:
    """The content type with what else a parse needs: the length of the JSON before binary tensors, and a
    content encoding (refused: say so rather than read compressed bytes as JSON)."""
    if header_length is not None:
        content_type += HEADER_MARK + header_length.decode("latin-1")
    if encoding is not None and encoding.lower() != b"identity":
        content_type += ENCODING_MARK + encoding.decode("latin-1")
    return content_type


def feature_kind(feature: dict[str, Any]) -> str:
    """How the protocol sees a signature feature: "number", "bool" or "string"."""
    if feature["kind"] == "numeric":
        return "number"
    return "bool" if feature.get("dtype") == "bool" else "string"


def input_datatype(feature: dict[str, Any]) -> str:
    """The datatype the model metadata gives a feature (any of `ACCEPTS` for its kind is taken)."""
    kind = feature_kind(feature)
    if kind == "number":
        return "INT64" if feature.get("dtype") == "int" else "FP64"
    return "BOOL" if kind == "bool" else "BYTES"


def label_datatype(classes: list[Any] | None) -> str:
    """The datatype of ``predict`` (and ``classes``): the labels' own type, BYTES for strings; FP64 for values."""
    if classes is None:
        return "FP64"
    if all(type(c) is bool for c in classes):
        return "BOOL"
    if all(type(c) is int for c in classes):
        return "INT64"
    if all(type(c) in (int, float) for c in classes):
        return "FP64"
    return "BYTES"


def proba_datatype(model: LoadedModel) -> str:
    """onnxruntime computes probabilities in float32; scikit-learn (and the rest) answer float64."""
    return "FP32" if model.runtime == "onnx" else "FP64"


def output_names(model: LoadedModel) -> tuple[str, ...]:
    return OUTPUTS if model.classes is not None else OUTPUTS[:1]


def model_metadata(model: LoadedModel, versions: list[str]) -> dict[str, Any]:
    """``GET /v2/models/{name}``: the inputs (one per feature) and outputs, from the signature."""
    inputs = [{"name": f["name"], "datatype": input_datatype(f), "shape": [-1, 1]} for f in model.signature["inputs"]]
    labels = label_datatype(model.classes)
    outputs = [{"name": "predict", "datatype": labels, "shape": [-1]}]
    if model.classes is not None:
        k = len(model.classes)
        outputs.append({"name": "predict_proba", "datatype": proba_datatype(model), "shape": [-1, k]})
        outputs.append({"name": "classes", "datatype": labels, "shape": [k]})
    platform = "onnx_onnxv1" if model.runtime == "onnx" else f"{model.runtime}_skops"
    return {"name": model.name, "versions": versions, "platform": platform, "inputs": inputs, "outputs": outputs}


def _bad(field: str, problem: str, status: int = 400, error: str = "invalid_request") -> Exception:
    from mlopsctl.serving.predict import Refused

    return Refused(status, error, [(field, problem)], f"{status}: {field}: {problem}"[:500])


def _split(content_type: str, body: bytes) -> tuple[str, bytes, bytes | None]:
    """The JSON part of a body and the binary tensor data after it (None when there is none)."""
    if ";" not in content_type:
        return content_type, body, None
    content_type, _, encoding = content_type.partition(ENCODING_MARK)
    if encoding:
        raise _bad("content-encoding", f"{encoding!r}: send the body uncompressed", 415, "unsupported_media_type")
    content_type, _, length = content_type.partition(HEADER_MARK)
    if not length:
        return content_type, body, None
    if not length.isdigit() or int(length) > len(body):
        problem = f"{length!r}: expected the JSON's length in bytes, at most the body's {len(body)}"
        raise _bad("inference-header-content-length", problem)
    n = int(length)
    return content_type, body[:n], body[n:]


def _rows(shape: Any) -> int:
    """N of a shape ``[N]`` or ``[N, 1]``; -1 for any other."""
    if type(shape) is list:
        if len(shape) == 2:
            rows, one = shape
            if type(rows) is int and type(one) is int and one == 1 and rows >= 0:
                return rows
        elif len(shape) == 1:
            rows = shape[0]
            if type(rows) is int and rows >= 0:
                return rows
    return -1


def _flags(values: list[Any]) -> list[Any]:
    """BOOL values as the categories a flag is known by, "false"/"true" (data/schema.py)."""
    return [None if v is None else ("true" if v else "false") for v in values]


def _check_fields(tensor: dict[str, Any], name: str) -> None:
    extra = tensor.keys() - INPUT_KEYS
    if extra:
        raise _bad(f"inputs.{name}.{sorted(extra)[0]}", "unknown field: expected name, datatype, shape, data")
    for field in ("datatype", "shape"):
        if field not in tensor:
            raise _bad(f"inputs.{name}.{field}", "missing")
    if "data" not in tensor and "parameters" not in tensor:
        raise _bad(f"inputs.{name}.data", "missing: expected the values (or parameters.binary_data_size)")


def _json_values(data: Any, two_d: bool, n: int, datatype: str, name: str) -> list[Any]:
    """A tensor's JSON values: flat, or nested ``[[x], [y], ...]`` for shape [N, 1]; each of the datatype's
    JSON type (null stands for a missing value: validation decides whether the feature may miss)."""
    if type(data) is not list:
        raise _bad(f"inputs.{name}.data", f"expected an array of {n} values, got {_show(data)}")
    if two_d and data and type(data[0]) is list:
        if any(type(r) is not list or len(r) != 1 for r in data):
            raise _bad(f"inputs.{name}.data", "expected [[x], [y], ...] (one value per row) or a flat array")
        data = [r[0] for r in data]
    if len(data) != n:
        raise _bad(f"inputs.{name}.data", f"{len(data)} values for {n} rows")
    allowed = _JSON_TYPES.get(datatype)
    if allowed is not None:
        for v in data:
            if type(v) not in allowed:
                raise _bad(f"inputs.{name}.data", f"{datatype} data must be {_WHAT[datatype]}, got {_show(v)}")
        return data
    lo, hi = INTS[datatype]
    for v in data:
        kind = type(v)
        if kind is float and v.is_integer():
            kind, v = int, int(v)
        if kind is int:
            if not lo <= v <= hi:
                raise _bad(f"inputs.{name}.data", f"{v} is out of {datatype}'s range [{lo}, {hi}]")
        elif v is not None:
            raise _bad(f"inputs.{name}.data", f"{datatype} data must be integers, got {_show(v)}")
    return data


def _with_parameters(
    tensor: dict[str, Any], datatype: str, n: int, binary: bytes | None, at: int, name: str
) -> tuple[list[Any], int]:
    """A tensor with parameters: its JSON data, or (``binary_data_size``) its bytes from ``binary[at:]``;
    also where the next binary tensor starts."""
    params = tensor["parameters"]
    if type(params) is not dict:
        raise _bad(f"inputs.{name}.parameters", f"expected an object, got {_show(params)}")
    if "binary_data_size" not in params:
        if "data" not in tensor:
            raise _bad(f"inputs.{name}.data", "missing: expected the values (or parameters.binary_data_size)")
        return _json_values(tensor["data"], len(tensor["shape"]) == 2, n, datatype, name), at
    size = params["binary_data_size"]
    if binary is None or "data" in tensor or type(size) is not int or size < 0:
        problem = "binary_data_size needs the Inference-Header-Content-Length header and no data"
        raise _bad(f"inputs.{name}.parameters.binary_data_size", problem)
    if at + size > len(binary):
        raise _bad(f"inputs.{name}.parameters.binary_data_size", f"{size} bytes: past the body's end")
    return _binary_values(binary[at : at + size], datatype, n, f"inputs.{name}"), at + size


def _binary_values(chunk: bytes, datatype: str, n: int, where: str) -> list[Any]:
    """A tensor's values from its raw bytes: little-endian, row-major; BYTES elements as 4-byte length + bytes."""
    if datatype == "BYTES":
        values: list[Any] = []
        at = 0
        while at < len(chunk):
            if at + 4 > len(chunk):
                raise _bad(f"{where}.data", "binary BYTES data ends inside an element's 4-byte length")
            size = int.from_bytes(chunk[at : at + 4], "little")
            at += 4
            if at + size > len(chunk):
                raise _bad(f"{where}.data", "binary BYTES data ends inside an element")
            try:
                values.append(chunk[at : at + size].decode("utf-8"))
            except UnicodeDecodeError:
                raise _bad(f"{where}.data", f"element {len(values)} is not UTF-8 text") from None
            at += size
    else:
        import numpy as np

        dtype = np.dtype(NUMPY[datatype])
        if len(chunk) % dtype.itemsize:
            raise _bad(f"{where}.data", f"{len(chunk)} bytes is not a whole number of {datatype} values")
        values = np.frombuffer(chunk, dtype=dtype).tolist()
    if len(values) != n:
        raise _bad(f"{where}.data", f"{len(values)} values for {n} rows")
    return values


def _request_fields(payload: dict[str, Any], model: LoadedModel) -> tuple[str | None, tuple[str, ...] | None]:
    """The request's fields beside its inputs: its ``id`` and the outputs it asks for."""
    extra = payload.keys() - REQUEST_KEYS
    if extra:
        raise _bad(sorted(extra)[0], "unknown field: expected id, parameters, inputs and outputs")
    request_id = payload.get("id")
    if "id" in payload and type(request_id) is not str:
        raise _bad("id", f"expected a string, got {_show(request_id)}")
    if type(payload.get("parameters", {})) is not dict:
        raise _bad("parameters", f"expected an object, got {_show(payload['parameters'])}")
    return request_id, _outputs(payload, model)


def _outputs(payload: dict[str, Any], model: LoadedModel) -> tuple[str, ...] | None:
    if "outputs" not in payload:
        return None
    wanted = payload["outputs"]
    known = output_names(model)
    if type(wanted) is not list:
        raise _bad("outputs", f'expected an array of {{"name": ...}} (outputs: {", ".join(known)})')
    names: list[str] = []
    for i, out in enumerate(wanted):
        if type(out) is not dict or "name" not in out or set(out) - OUTPUT_KEYS:
            raise _bad(f"outputs[{i}]", 'expected {"name": ..., "parameters": {...}} and no other field')
        name = out["name"]
        if name not in known:
            raise _bad(f"outputs[{i}].name", f"{_show(name)}: {model.name} has the outputs {', '.join(known)}")
        params = out.get("parameters", {})
        if type(params) is not dict:
            raise _bad(f"outputs[{i}].parameters", "expected an object")
        if "classification" in params:
            raise _bad(f"outputs[{i}].parameters.classification", "the classification extension is not supported")
        if name not in names:
            names.append(name)
    return tuple(names) or None


class OpenInferenceProtocol:
    name = "infer"

    def rows(self, model: LoadedModel, content_type: str, body: bytes, max_rows: int) -> tuple[list[Any], str, bool]:
        content_type, head, binary = _split(content_type, body)
        if not head:
            raise _bad("body", 'empty body: expected {"inputs": [...]}')
        try:
            if content_type.startswith(_NOT_JSON):
                raise ValueError(content_type)
            payload = orjson.loads(head)
        except ValueError:  # predict.json_payload says what is wrong, as for every protocol
            from mlopsctl.serving.predict import json_payload

            payload = json_payload(content_type, head)
        if type(payload) is not dict:
            raise _bad("body", f'expected an object with "inputs", got {_show(payload)}')
        request_id, outputs = None, None
        if len(payload) != 1 or "inputs" not in payload:  # more than the inputs: each field checked
            request_id, outputs = _request_fields(payload, model)
        columns = self._columns(model, payload.get("inputs"), binary, max_rows)
        _REQUEST.set((request_id, outputs))
        values = list(columns.values())
        if len(values[0]) == 1:
            return [{name: v[0] for name, v in columns.items()}], "row", False
        names = list(columns)
        return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)], "row", False

    def _columns(self, model: LoadedModel, inputs: Any, binary: bytes | None, max_rows: int) -> dict[str, list[Any]]:
        """The input tensors as one list of values per feature (each the same length, the rows).

        The hot path: one loop over the tensors, the common tensor ({name, datatype, shape, data}, JSON
        values) checked with plain comparisons; anything else takes the slower branches, which name the
        problem."""
        spec = model.spec
        if type(inputs) is not list or not inputs:
            raise _bad("inputs", f"expected an array of input tensors, one per feature ({len(spec.names)})")
        plan = _plan(model)
        by_key = plan.inputs
        columns: dict[str, list[Any]] = {}
        n, at = -1, 0
        two_d: list[int] | None = None
        one_d: list[int] | None = None
        for i, tensor in enumerate(inputs):
            # the common tensor: {name, datatype, shape [N, 1] or [N] as the first one's, data: N JSON values}
            try:
                feature, types = by_key[tensor["name"]]
                shape, data = tensor["shape"], tensor["data"]
                allowed = types[tensor["datatype"]]  # None: a type checked value by value (integers)
            except (KeyError, TypeError):  # not a dict, or a field missing, unknown or not hashable
                allowed = None
            if (
                allowed is not None
                and len(tensor) == 4
                and feature not in columns
                and shape in (two_d, one_d)
                and type(data) is list
                and len(data) == n
                and type(shape[0]) is int
                and type(shape[-1]) is int
            ):
                for v in data:
                    if type(v) not in allowed:
                        break
                else:
                    columns[feature] = data if allowed is not _BOOL else _flags(data)
                    continue
            n, at = self._tensor(i, tensor, model, n, max_rows, binary, at, columns)
            two_d, one_d = [n, 1], [n]
        if binary is not None and at != len(binary):
            raise _bad("body", f"{len(binary) - at} bytes after the JSON that no input's binary_data_size claims")
        if len(columns) != len(spec.names):
            missing = [f for f in spec.names if f not in columns]
            raise _bad(f"inputs.{missing[0]}", f"missing: every feature is an input ({len(missing)} missing)")
        return columns

    @staticmethod
    def _tensor(
        i: int,
        tensor: Any,
        model: LoadedModel,
        n: int,
        max_rows: int,
        binary: bytes | None,
        at: int,
        columns: dict[str, list[Any]],
    ) -> tuple[int, int]:
        """Any other tensor (the first, binary ones, nested data, integers, the wrong ones): checked field by
        field, its values put in ``columns``; returns the rows and where the next binary tensor starts."""
        spec = model.spec
        if type(tensor) is not dict:
            raise _bad(f"inputs[{i}]", f'expected {{"name", "datatype", "shape", "data"}}, got {_show(tensor)}')
        name = tensor.get("name")
        feature = spec.lookup.get(name) if type(name) is str else None
        if name is None or feature is None:
            raise _bad(f"inputs[{i}].name", f"{_show(name)} is not an input: {_names(spec.names)}")
        if feature in columns:
            raise _bad(f"inputs.{name}", "given more than once")
        accepted = _plan(model).inputs[name][1]
        if len(tensor) != 4 or "data" not in tensor or "shape" not in tensor or "datatype" not in tensor:
            _check_fields(tensor, name)
        datatype = tensor["datatype"]
        if type(datatype) is not str or datatype not in accepted:
            kind = next(k for k, types in ACCEPTS.items() if set(types) == set(accepted))
            problem = f"{_show(datatype)}: a {kind} input takes {', '.join(ACCEPTS[kind])}"
            raise _bad(f"inputs.{name}.datatype", problem)
        shape = tensor["shape"]
        rows = _rows(shape)
        if rows < 0:
            raise _bad(f"inputs.{name}.shape", f"expected [N] or [N, 1] (N rows), got {_show(shape)}")
        if n < 0 and not 0 < rows <= max_rows:  # the first tensor sets the rows
            raise _bad(f"inputs.{name}.shape", f"{rows} rows: expected 1 to {max_rows} per request")
        if n >= 0 and rows != n:
            raise _bad(f"inputs.{name}.shape", f"{rows} rows, where {next(iter(columns))} has {n}")
        if "parameters" not in tensor:
            values = _json_values(tensor["data"], len(shape) == 2, rows, datatype, name)
        else:
            values, at = _with_parameters(tensor, datatype, rows, binary, at, name)
        columns[feature] = values if datatype != "BOOL" else _flags(values)
        return rows, at

    def answer(
        self, model: LoadedModel, preds: list[Any], probas: Any, single: bool, variant: str, request_id: str
    ) -> dict[str, Any]:
        given, wanted = _REQUEST.get()
        n = len(preds)
        plan = _plan(model)
        labels = plan.labels
        outputs = []
        for name in wanted or plan.outputs:
            if name == "predict":
                data = preds if labels != "BYTES" else [str(p) for p in preds]
                outputs.append({"name": name, "datatype": labels, "shape": [n], "data": data})
            elif name == "predict_proba":
                outputs.append(_probabilities(plan, probas, n))
            else:
                outputs.append({"name": name, "datatype": labels, "shape": [len(plan.classes)], "data": plan.classes})
        return {
            "model_name": model.name,
            "model_version": str(model.version),
            "id": request_id if given is None else given,
            "parameters": {"request_id": request_id, "variant": variant},
            "outputs": outputs,
        }

    def error(self, status: int, error: str, problems: list[tuple[str, str]], request_id: str) -> bytes:
        return orjson.dumps(error_document(error, problems, request_id))


def error_document(error: str, problems: list[tuple[str, str]], request_id: str = "") -> dict[str, Any]:
    """The protocol's error body: ``error`` is the message (what its clients print), ``code`` and ``detail``
    are the server's one error shape (the code, the problems by field)."""
    shown = "; ".join(f"{f}: {p}" for f, p in problems[:3]) + ("; …" if len(problems) > 3 else "")
    body: dict[str, Any] = {
        "error": shown or error,
        "code": error,
        "detail": [{"field": f, "problem": p} for f, p in problems],
    }
    if request_id:
        body["request_id"] = request_id
    return body


def _probabilities(plan: _Plan, probas: Any, n: int) -> dict[str, Any]:
    datatype, k = plan.proba, len(plan.classes)
    if hasattr(probas, "reshape"):
        flat = probas.reshape(-1)  # C order: row by row, contiguous (orjson serialises the array itself)
        if datatype == "FP64" and flat.dtype != "float64":
            flat = flat.astype("float64")
    else:
        flat = [float(p) for row in probas for p in row]
    return {"name": "predict_proba", "datatype": datatype, "shape": [n, k], "data": flat}


class _Plan(NamedTuple):
    """What the protocol needs of one model on every request, worked out once."""

    # an input's name as sent (or its snake_case) -> (its feature, each datatype it takes -> the JSON types of
    # its values, or None where each value is checked further: the integer types' ranges)
    inputs: dict[str, tuple[str, dict[str, frozenset[type] | None]]]
    outputs: tuple[str, ...]
    labels: str  # the datatype of predict and classes
    classes: list[Any]  # the classes output's data
    proba: str  # the datatype of predict_proba


_PLANS: dict[int, tuple[LoadedModel, _Plan]] = {}


def _plan(model: LoadedModel) -> _Plan:
    """The model's plan, kept for the last few models loaded (a model is never changed once loaded)."""
    hit = _PLANS.get(id(model))
    if hit is not None and hit[0] is model:
        return hit[1]
    labels = label_datatype(model.classes)
    classes = list(model.classes or [])
    spec = model.spec
    kinds = {f["name"]: feature_kind(f) for f in spec.features}
    plan = _Plan(
        inputs={
            key: (name, {t: _JSON_TYPES.get(t) for t in ACCEPTS[kinds[name]]}) for key, name in spec.lookup.items()
        },
        outputs=output_names(model),
        labels=labels,
        classes=classes if labels != "BYTES" else [str(c) for c in classes],
        proba=proba_datatype(model),
    )
    if len(_PLANS) >= 16:
        _PLANS.clear()
    _PLANS[id(model)] = (model, plan)
    return plan


def _names(names: list[str]) -> str:
    return "expected one of " + ", ".join(names[:20]) + (", …" if len(names) > 20 else "")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "…")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = orjson.dumps(value, default=str).decode() if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


OIP = OpenInferenceProtocol()

__all__ = ["OIP", "error_document", "model_metadata", "with_header"]
