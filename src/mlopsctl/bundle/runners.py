"""The runners that predict with a model version: an ONNX graph in onnxruntime, or the fitted model itself.

Both take validated columns (feature name → one value per row: float or None for numbers, str or None
for categories and text) and return (predictions, probabilities). Predictions are Python scalars: the
class labels as the caller gave them in `classes` (int or str), or floats for regression; probabilities
are one row per prediction in the order of `classes`, or None for regression.

This module imports only numpy at top level, and onnxruntime when an OnnxRunner is built: serving an
ONNX model never loads scikit-learn, pandas or scipy. The graph's input plan (which feature feeds which
input, or which column of the one numeric input, as which dtype, and what stands for a missing value)
comes from the metadata the export writes (`mlopsctl.bundle.keys`); without it, inputs are fed in
feature order. The graph is checked before onnxruntime opens it (`safety.check_onnx`), and its metadata
is read as JSON of the expected shape, nothing else.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlopsctl.bundle.keys import META_CLASSES, META_INPUTS, MISSING_STRING
from mlopsctl.bundle.safety import check_onnx, metadata_json
from mlopsctl.bundle.task import is_regression
from mlopsctl.errors import UnsafeModel, ValidationError

_DTYPES: dict[str, Any] = {"double": np.float64, "float": np.float32, "string": object}
TEXT_CHUNK = 64  # rows per onnxruntime call for a model with a text feature
_ORT_DTYPES = {"tensor(double)": "double", "tensor(float)": "float", "tensor(string)": "string"}


class OnnxRunner:
    runtime_name = "onnx"

    def __init__(
        self,
        onnx_bytes: bytes,
        features: list[dict[str, Any]],
        task: str,
        classes: list[Any] | None,
        *,
        name: str = "model.onnx",
    ):
        import onnxruntime as ort

        check_onnx(onnx_bytes, name=name)

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(onnx_bytes, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own errors (Fail, InvalidGraph, …) share no base class
            raise UnsafeModel(name, f"onnxruntime cannot open it ({_first_line(exc)})") from None
        # The Python wrapper keeps the model's bytes (3.8 MB for the wine forest) only to rebuild the session
        # when the providers change, which this runner never does: the C++ session has its own copy.
        if getattr(self._session, "_model_bytes", None) is not None:
            self._session._model_bytes = None
        self.task = task
        self._regression = is_regression(task)
        meta = self._session.get_modelmeta().custom_metadata_map
        inputs = self._session.get_inputs()
        if META_INPUTS in meta:
            spec = _input_plan(metadata_json(meta, META_INPUTS, name=name), name)
        else:
            if len(inputs) != len(features):
                raise ValueError(f"the graph has {len(inputs)} inputs for {len(features)} features")
            spec = [
                {
                    "feature": f["name"],
                    "input": i.name,
                    "type": _ORT_DTYPES.get(i.type, "float"),
                    "missing": None
                    if f["kind"] == "numeric"
                    else (MISSING_STRING if f["kind"] == "categorical" else ""),
                    "lower": False,
                }
                for f, i in zip(features, inputs, strict=True)
            ]
        known = {f["name"] for f in features}
        missing = [s["feature"] for s in spec if s["feature"] not in known]
        if missing:
            raise ValueError(f"the graph needs features the signature lacks: {missing}")
        # numeric features sharing one (rows, k) input: input → [(column, feature)], and its dtype
        matrices: dict[str, list[tuple[int, str]]] = {}
        matrix_dtype: dict[str, Any] = {}
        for s in spec:
            if "column" in s:
                matrices.setdefault(s["input"], []).append((int(s["column"]), s["feature"]))
                matrix_dtype[s["input"]] = _DTYPES[s["type"]]
        self._matrices: tuple[tuple[str, Any, tuple[str, ...]], ...] = tuple(
            (name, matrix_dtype[name], tuple(f for _, f in sorted(cols))) for name, cols in matrices.items()
        )
        # (feature, input, numpy dtype, stand-in for None (None for numbers), lowercase): one per other input
        self._plan: tuple[tuple[str, str, Any, str | None, bool], ...] = tuple(
            (s["feature"], s["input"], _DTYPES[s["type"]], s["missing"], bool(s.get("lower")))
            for s in spec
            if "column" not in s
        )
        # a text feature's graph makes one dense row per document over the whole vocabulary (~1.5 MB a row for
        # SST-2's 78,867 terms): big batches are run TEXT_CHUNK rows at a time, so memory stays bounded
        self._chunk = TEXT_CHUNK if any(f["kind"] == "text" for f in features) else 0
        self._outputs = [o.name for o in self._session.get_outputs()][: 1 if self._regression else 2]
        # the C++ session's run, without the Python wrapper's per-call check of the feed's names (the plan
        # above always feeds every input)
        inner = getattr(self._session, "_sess", None)
        self._run = inner.run if inner is not None and callable(getattr(inner, "run", None)) else self._session.run
        # graph label (int64 or str) → the caller's class object; graph column order → order of `classes`
        self.classes: list[Any] | None = None
        self._label_of: dict[Any, Any] = {}
        self._order: Any = None
        if not self._regression:
            graph_classes = (
                metadata_json(meta, META_CLASSES, name=name) if META_CLASSES in meta else list(classes or [])
            )
            if not isinstance(graph_classes, list):
                raise UnsafeModel(name, f"metadata {META_CLASSES!r} is not a list of class labels")
            self.classes = list(classes) if classes is not None else graph_classes
            self._label_of = {_label_key(c): c for c in self.classes}
            self._order = _reorder([_label_key(c) for c in graph_classes], [_label_key(c) for c in self.classes])

    def predict(self, columns: dict[str, list[Any]]) -> tuple[list[Any], Any]:
        """Labels (or values) and probabilities: a (rows, classes) float32 array, or None for regression."""
        n = len(next(iter(columns.values()))) if columns else 0
        if not self._chunk or n <= self._chunk:
            return self._predict(columns)
        labels: list[Any] = []
        parts = []
        for start in range(0, n, self._chunk):
            part = {k: v[start : start + self._chunk] for k, v in columns.items()}
            got, proba = self._predict(part)
            labels.extend(got)
            parts.append(proba)
        return labels, (None if self._regression else np.concatenate(parts))

    def _predict(self, columns: dict[str, list[Any]]) -> tuple[list[Any], Any]:
        feeds = {}
        for name, dtype, features in self._matrices:
            # None becomes NaN in a float array, which is what the graph's imputer replaces
            per_feature = [columns[f] for f in features]
            if len(per_feature[0]) == 1:
                feeds[name] = np.array([[v[0] for v in per_feature]], dtype=dtype)
            else:
                feeds[name] = np.ascontiguousarray(np.array(per_feature, dtype=dtype).T)
        for feature, name, dtype, missing, lower in self._plan:
            values = columns[feature]
            if missing is None:
                # None becomes NaN in a float array, which is what the graph's imputer replaces
                feeds[name] = np.array(values, dtype=dtype).reshape(-1, 1)
            elif lower:
                # the exporter moved the vectorizer's lowercasing here (str.lower, as scikit-learn does)
                feeds[name] = np.array([missing if v is None else v.lower() for v in values], dtype=object).reshape(
                    -1, 1
                )
            else:
                feeds[name] = np.array([missing if v is None else v for v in values], dtype=object).reshape(-1, 1)
        out = self._run(self._outputs, feeds, None)
        if self._regression:
            return out[0].ravel().tolist(), None
        proba = out[1]
        if self._order is not None:
            proba = proba[:, self._order]
        label_of = self._label_of
        labels = [label_of.get(v, v) for v in out[0].ravel().tolist()]
        return labels, proba  # a float32 array: orjson prints each value in its shortest form


class SklearnRunner:
    runtime_name = "sklearn"

    def __init__(self, pipeline: Any, features: list[dict[str, Any]], task: str, classes: list[Any] | None):
        import pandas as pd

        self._pd = pd
        self._pipeline = pipeline
        self.task = task
        self._regression = is_regression(task)
        self._plan = tuple((f["name"], f["kind"]) for f in features)
        self._names = [f["name"] for f in features]
        self.classes: list[Any] | None = None
        self._order: Any = None
        if not self._regression:
            model_classes = np.asarray(pipeline.classes_).tolist()
            self.classes = list(classes) if classes is not None else model_classes
            self._order = _reorder([_label_key(c) for c in model_classes], [_label_key(c) for c in self.classes])

    def predict(self, columns: dict[str, list[Any]]) -> tuple[list[Any], list[list[float]] | None]:
        pd = self._pd
        data: dict[str, Any] = {}
        for name, kind in self._plan:
            values = columns[name]
            if kind == "numeric":
                data[name] = np.array(values, dtype=np.float64)
            elif kind == "text":
                # TF-IDF cannot take a missing document: an absent text is an empty one (as in the ONNX graph)
                data[name] = pd.Series(["" if v is None else v for v in values], dtype=object)
            else:
                # NaN (not None) is what SimpleImputer recognises as missing in an object column; a Series
                # keeps the object dtype (pandas 3 would infer its `str` dtype from a list or an array)
                data[name] = pd.Series([np.nan if v is None else v for v in values], dtype=object)
        frame = pd.DataFrame(data, columns=self._names, copy=False)
        try:
            if self._regression:
                return np.asarray(self._pipeline.predict(frame), dtype=np.float64).ravel().tolist(), None
            proba = self._pipeline.predict_proba(frame)
        except ValueError as exc:
            if "infinity" not in str(exc) and "too large" not in str(exc):
                raise
            # a scaler in the model took a huge input past float32 (scikit-learn's trees cast to it)
            problem = "a value overflows inside the model (scaled past float32): send values nearer the training range"
            raise ValidationError(problem, [("rows", problem)]) from None
        if self._order is not None:
            proba = proba[:, self._order]
        # the model's own rule (argmax of the probabilities), without a second pass through the pipeline
        assert self.classes is not None
        classes = self.classes
        return [classes[i] for i in np.argmax(proba, axis=1).tolist()], proba


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _reorder(have: list[Any], want: list[Any]) -> Any:
    """Column indices that turn probabilities in the order `have` into the order `want` (None: same)."""
    if have == want:
        return None
    pos = {k: i for i, k in enumerate(have)}
    if len(want) != len(have) or any(k not in pos for k in want):
        raise ValueError(f"classes {want} do not match the model's classes {have}")
    return np.array([pos[k] for k in want])


def _label_key(label: Any) -> Any:
    """How a class label appears in the graph: ONNX keeps int64 or string labels."""
    if isinstance(label, str):
        return label
    if isinstance(label, (bool, int, np.integer)) or (isinstance(label, float) and label.is_integer()):
        return int(label)
    return str(label)


_PLAN_KEYS = {"feature": str, "input": str, "type": str}


def _input_plan(plan: Any, name: str) -> list[dict[str, Any]]:
    """The export's input plan, checked entry by entry (a file that says otherwise is refused)."""
    if not isinstance(plan, list) or not plan:
        raise UnsafeModel(name, f"metadata {META_INPUTS!r} is not a list of inputs")
    for entry in plan:
        ok = isinstance(entry, dict) and all(isinstance(entry.get(k), t) for k, t in _PLAN_KEYS.items())
        if not ok or entry["type"] not in _DTYPES or not isinstance(entry.get("missing"), str | None):
            raise UnsafeModel(name, f"metadata {META_INPUTS!r} has an entry that is not an input: {str(entry)[:80]}")
        if "column" in entry and not (isinstance(entry["column"], int) and entry["column"] >= 0):
            raise UnsafeModel(name, f"metadata {META_INPUTS!r}: column {entry['column']!r} is not an index")
    return plan
