"""What a model file may hold: the one place a fitted model is read back from bytes.

A ``model.skops`` file is a zip of JSON that names the types to rebuild. skops trusts its own
list (scikit-learn's estimators, numpy and scipy containers, builtin containers); every other
type it reports (`skops.io.get_untrusted_types`) must be named here, exactly, in
`TRUSTED_TYPES`, or by the project in ``[registry] trusted_types``. There are no prefix rules:
a name such as ``builtins.exec`` reached through skops' constructor node would run code, so a
type is trusted only by its full name. Names that reach code execution whatever they are
called with (`refusal`) can never be trusted, not even by the project's config.

A ``model.onnx`` file is checked before onnxruntime opens it (`check_onnx`): no initializer
may point at external data (onnxruntime would read it from the server's working directory),
and the metadata mlopsctl reads must be JSON of the expected shape (never anything else: a
pickle there is refused, not parsed).

Every loader in mlopsctl (publish, the gate, serve with either runtime, predict, drift,
retrain, import) calls `load_skops`; nothing anywhere unpickles.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from mlopsctl.errors import UnsafeModel

# Types skops does not trust by itself that a model of the supported libraries holds. Each one is
# rebuilt by `cls.__new__` + `__setstate__` from data (arrays, dicts, bytes), never by calling it
# with arguments from the file.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "numpy.dtype",
        "collections.OrderedDict",
        # scikit-learn internals skops leaves out
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.utils._bunch.Bunch",
        "sklearn.compose._column_transformer._RemainderColsList",
        # XGBoost's scikit-learn API: the booster is restored from its own binary model format
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRegressor",
        "xgboost.sklearn.XGBRFClassifier",
        "xgboost.sklearn.XGBRFRegressor",
        # LightGBM's scikit-learn API: the booster is restored from its model text
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
    }
)

# Modules whose functions and types reach the interpreter, the OS or arbitrary attributes: a name in
# one of them is refused even when the project lists it.
_REFUSED_MODULES = frozenset(
    {
        "builtins",
        "__builtin__",
        "os",
        "posix",
        "nt",
        "posixpath",
        "subprocess",
        "sys",
        "importlib",
        "operator",
        "functools",
        "pickle",
        "_pickle",
        "marshal",
        "shelve",
        "dill",
        "cloudpickle",
        "joblib",
        "runpy",
        "code",
        "codeop",
        "ctypes",
        "shutil",
        "socket",
        "io",
        "_io",
        "pathlib",
        "types",
        "inspect",
        "pty",
        "platform",
        "webbrowser",
        "multiprocessing",
        "threading",
        "_thread",
        "asyncio",
        "signal",
        "tempfile",
        "glob",
        "pydoc",
        "timeit",
        "urllib",
        "http",
        "ftplib",
        "smtplib",
        "telnetlib",
        "zipimport",
        "pkgutil",
        "site",
        "gc",
        "weakref",
        "numpy.lib.npyio",
        "numpy.testing",
        "numpy.f2py",
        "numpy.distutils",
        "numpy.ctypeslib",
        "pandas.io",
        "torch",
    }
)


def refusal(name: str) -> str | None:
    """Why ``name`` (a type or function's ``module.qualname``) can never be trusted; None if it may be."""
    module = name.rsplit(".", 1)[0] if "." in name else ""
    if not module:
        return "a name without its module"
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        if ".".join(parts[:i]) in _REFUSED_MODULES:
            return f"{'.'.join(parts[:i])} reaches the interpreter, files or processes"
    if any(p.startswith("__") and p.endswith("__") for p in name.split(".")):
        return "a dunder name reaches the interpreter's internals"
    return None


def check_trusted_types(names: Iterable[str]) -> tuple[str, ...]:
    """A project's ``[registry] trusted_types``, checked: exact dotted names, none that can run code."""
    out = []
    for name in names:
        if not isinstance(name, str) or not name or any(c in name for c in " *?[]/\\"):
            raise ValueError(f"trusted_types: {name!r} is not an exact name such as 'features.add_ratio'")
        why = refusal(name)
        if why:
            raise ValueError(f"trusted_types: {name!r} can never be trusted ({why})")
        out.append(name)
    return tuple(out)


def untrusted(found: Iterable[str], trusted_types: Iterable[str] = ()) -> list[str]:
    """The names in ``found`` (what skops reports) that neither list trusts, or that are refused."""
    extra = set(trusted_types)
    return [t for t in found if refusal(t) is not None or (t not in TRUSTED_TYPES and t not in extra)]


def load_skops(data: bytes, *, name: str = "model.skops", trusted_types: Iterable[str] = ()) -> Any:
    """The estimator in a skops file, once every type it names is trusted. Raises UnsafeModel naming the
    file and the first refused type; a file skops cannot read is refused the same way, never half-loaded."""
    import skops.io as sio

    extra = tuple(trusted_types)
    try:
        found = sio.get_untrusted_types(data=data)
    except Exception as exc:  # not a skops zip, malformed JSON, an unknown node: nothing was built
        raise UnsafeModel(name, f"not a readable skops file ({type(exc).__name__}: {_first_line(exc)})") from None
    refused = untrusted(found, extra)
    if refused:
        first = refused[0]
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        why = refusal(first)
        advice = (
            why if why else "not a type of scikit-learn, numpy, XGBoost or LightGBM; name your own in trusted_types"
        )
        raise UnsafeModel(name, f"type {first}{more} is not trusted: {advice}", first)
    try:
        model = sio.loads(data, trusted=list(found))
    except UnsafeModel:
        raise
    except ImportError as exc:  # a trusted type whose library is not installed here
        missing = (getattr(exc, "name", None) or str(exc)).split(".")[0]
        raise UnsafeModel(
            name, f"needs the {missing} package to rebuild it: pip install 'mlopsctl[{missing}]' (or {missing})"
        ) from None
    except Exception as exc:  # e.g. an object array stored as a pickle: numpy refuses it (allow_pickle=False)
        raise UnsafeModel(name, f"skops could not rebuild it ({type(exc).__name__}: {_first_line(exc)})") from None
    if not callable(getattr(model, "predict", None)):
        raise UnsafeModel(name, f"holds a {type(model).__name__}, not a model with predict()")
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


# -- ONNX -----------------------------------------------------------------------------------------------

# protobuf field numbers of onnx.proto3 (ModelProto and what it holds) that can carry a TensorProto
_MODEL_GRAPH, _MODEL_FUNCTIONS, _MODEL_METADATA = 7, 25, 14
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE = 1, 5, 15
_NODE_ATTRIBUTE = 5
_FUNCTION_NODE = 7
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE, _ATTR_SPARSES = 5, 6, 10, 11, 22, 23
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_STRING_PROTO_KEY, _STRING_PROTO_VALUE = 1, 2
_MAX_DEPTH = 64


def _fields(buf: bytes, start: int = 0, end: int | None = None) -> Iterable[tuple[int, int, Any]]:
    """(field number, wire type, value) of one protobuf message; a length-delimited value is (start, end)."""
    pos, end = start, len(buf) if end is None else end
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield field, wire, value
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise ValueError("a field runs past the end of its message")
            yield field, wire, (pos, pos + length)
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {wire} is not protobuf 3")
    if pos != end:
        raise ValueError("a message ends inside a field")


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


# An external tensor must say where its data is: an external_data entry whose key is "location" (field 1,
# 8 bytes). A graph without these bytes anywhere has no external tensor, and the walk below is skipped.
_LOCATION_KEY = b"\x0a\x08location"


def onnx_external_tensors(data: bytes) -> list[str]:
    """Names of the tensors in an ONNX model whose data lives outside the file (initializers, sparse
    initializers, node attributes, subgraphs and functions included). A light protobuf walk: the serving
    process never imports the ``onnx`` package. The walk takes ~0.5 s for a 100-tree forest (onnx.proto is
    proto2: its repeated numbers are not packed), so a graph that cannot hold one (no ``location`` key
    anywhere in its bytes) is answered at once."""
    found: list[str] = []
    if _LOCATION_KEY not in data:
        return found

    def tensor(span: tuple[int, int]) -> None:
        name, external = "", False
        for field, wire, value in _fields(data, *span):
            if field == _TENSOR_NAME and wire == 2:
                name = data[value[0] : value[1]].decode("utf-8", "replace")
            elif (field == _TENSOR_DATA_LOCATION and wire == 0 and value == 1) or (
                field == _TENSOR_EXTERNAL_DATA and wire == 2
            ):
                external = True
        if external:
            found.append(name or "(unnamed)")

    def sparse(span: tuple[int, int]) -> None:
        for field, wire, value in _fields(data, *span):
            if field in (_SPARSE_VALUES, _SPARSE_INDICES) and wire == 2:
                tensor(value)

    def graph(span: tuple[int, int], depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise ValueError("subgraphs nested too deep")
        for field, wire, value in _fields(data, *span):
            if wire != 2:
                continue
            if field == _GRAPH_INITIALIZER:
                tensor(value)
            elif field == _GRAPH_SPARSE:
                sparse(value)
            elif field == _GRAPH_NODE:
                node(value, depth)

    def node(span: tuple[int, int], depth: int) -> None:
        for field, wire, value in _fields(data, *span):
            if field == _NODE_ATTRIBUTE and wire == 2:
                attribute(value, depth)

    def attribute(span: tuple[int, int], depth: int) -> None:
        for field, wire, value in _fields(data, *span):
            if wire != 2:
                continue
            if field in (_ATTR_T, _ATTR_TENSORS):
                tensor(value)
            elif field in (_ATTR_SPARSE, _ATTR_SPARSES):
                sparse(value)
            elif field in (_ATTR_G, _ATTR_GRAPHS):
                graph(value, depth + 1)

    for field, wire, value in _fields(data):
        if wire != 2:
            continue
        if field == _MODEL_GRAPH:
            graph(value, 0)
        elif field == _MODEL_FUNCTIONS:
            for f2, w2, v2 in _fields(data, *value):
                if f2 == _FUNCTION_NODE and w2 == 2:
                    node(v2, 0)
    return found


def check_onnx(data: bytes, *, name: str = "model.onnx") -> None:
    """Refuse an ONNX file that points at external data or is not a protobuf model (UnsafeModel)."""
    try:
        external = onnx_external_tensors(data)
    except (ValueError, IndexError) as exc:
        raise UnsafeModel(name, f"not an ONNX model ({exc})") from None
    if external:
        more = f" and {len(external) - 1} more" if len(external) > 1 else ""
        raise UnsafeModel(
            name, f"tensor {external[0]!r}{more} points at external data: a bundle's ONNX graph must hold its own data"
        )


def metadata_json(meta: dict[str, str], key: str, *, name: str = "model.onnx") -> Any:
    """A metadata value mlopsctl wrote as JSON; anything else (a pickle, a truncated string) is refused."""
    raw = meta[key]
    try:
        return json.loads(raw)
    except (ValueError, TypeError):
        raise UnsafeModel(name, f"metadata {key!r} is not JSON ({len(raw)} characters)") from None
