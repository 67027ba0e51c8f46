"""ONNX export of a fitted task pipeline, and the parity check that decides whether serving may use it.

`export_onnx` converts the whole Pipeline (preprocessing included) with skl2onnx, one graph input per
feature (numeric features then joined into one input), then runs the graph through the serving runner
(`mlopsctl.bundle.runners.OnnxRunner`) on the holdout and compares it with the pipeline itself. Only
an export that passes is marked `ok`; anything else is reported with its reason and numbers, and
serving falls back to the scikit-learn model.

Why numeric inputs are fed as float64 ("double") where the graph allows it: scikit-learn's trees cast
their input to float32 and compare it with a float64 threshold, so a float32 ONNX graph (float32 input,
float32 thresholds) sends rows near a split the other way — on red wine a 100-tree forest agreed on only
~99% of labels. In double, with thresholds stored as double tensors (ai.onnx.ml opset 3 `*_as_tensor`)
and skl2onnx's threshold adjustment for scikit-learn's float32 cast, the trees route every row as
scikit-learn does. A random forest then compares in float32 after all: its input is cast once, as
scikit-learn casts it, and each double threshold becomes the float32 just below it, which routes every
row the same way with half the tree data to walk (`onnx_converters._TreeContainer` says why it is
exact). Where that graph fails the parity check, double trees are tried, and where a graph cannot be
built or loaded in double, float32 throughout is tried last.

All numeric features are fed as one (rows, k) input (`MATRIX_INPUT`, a column each, recorded in the
metadata) rather than k (rows, 1) inputs: a single-row request then builds and binds one array, not k.

Three gaps in skl2onnx 1.20 are worked around with per-call converters (nothing is registered
globally):
- SimpleImputer on numbers becomes IsNaN + Where (onnxruntime has no double `Imputer` kernel, and
  skl2onnx's FeatureVectorizer concatenation would round doubles to float32);
- SimpleImputer on strings: ONNX strings have no NaN, so a missing category is fed as the sentinel
  `MISSING_STRING` (recorded in the graph's metadata) and the imputer maps the sentinel to its fill value
  (an Identity when the fill value is the sentinel, as in `training.tasks`);
- tree ensembles: HistGradientBoosting leaves carry a Python bool that recent onnx refuses in an
  integer attribute, and double thresholds need the `*_as_tensor` attributes.
The default TF-IDF token pattern `(?u)\\b\\w\\w+\\b` is given to the ONNX Tokenizer (RE2) as
`[\\p{L}\\p{N}_]{2,}`, which splits the same way; skl2onnx's own replacement `[a-zA-Z0-9_]+` keeps
one-letter tokens and so builds different bigrams.

Tolerances (float32 outputs against scikit-learn's float64): a classifier passes when every label
agrees and no probability differs by more than `tolerance` (1e-4: float32 rounding is ~1e-7, a split
that flips in one tree of a hundred moves a probability by ~1e-2). A regressor passes when no prediction
differs by more than `rtol` (1e-5) times the scale of the predictions (max |y|, at least 1).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mlopsctl.bundle.keys import MATRIX_INPUT, META_CLASSES, META_INPUTS, META_TASK, MISSING_STRING
from mlopsctl.bundle.task import is_regression

ONNX_OPSET = 18
ML_OPSET = 3
# the parity check scores at most this many rows (a random sample of the holdout beyond it), this many at a
# time: a text model's ONNX graph makes one dense row per document over its whole vocabulary
CHECK_ROWS = 2_000
CHECK_BATCH = 256  # the runner itself runs a text model 64 rows at a time (runners.TEXT_CHUNK)

_SKLEARN_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_RE2_TOKEN_PATTERN = r"[\p{L}\p{N}_]{2,}"


@dataclass
class ExportResult:
    onnx: bytes | None
    ok: bool
    reason: str
    max_abs_diff: float | None = None
    label_agreement: float | None = None
    n_rows_checked: int = 0
    onnx_opset: int | None = None
    input_mode: str = "per_column"  # or "numeric_matrix": every numeric feature in one (rows, k) input
    numeric_dtype: str | None = None  # "double" or "float": how numeric features are fed
    tree_dtype: str | None = None  # "float" or "double": what a tree ensemble compares, if there is one
    tolerance: float | None = None  # the absolute bound max_abs_diff was held to

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["onnx"]
        out["onnx_bytes"] = len(self.onnx) if self.onnx is not None else None
        return out


def export_onnx(
    pipeline: Any,
    features: list[dict[str, Any]],
    task: str,
    check_df: Any,
    *,
    tolerance: float = 1e-4,
    rtol: float = 1e-5,
) -> ExportResult:
    """Convert `pipeline` to ONNX and check it against the pipeline on `check_df`. Never raises for a
    model that does not convert: the result says why."""
    has_numeric = any(f["kind"] == "numeric" for f in features)
    attempts: list[ExportResult] = []
    tries = [("double", True), ("double", False), ("float", False)] if has_numeric else [("float", False)]
    for dtype, float_trees in tries:
        last = attempts[-1] if attempts else None
        if (dtype, float_trees) == ("double", False) and last and last.onnx and last.tree_dtype != "float":
            continue  # no forest was cast to float32: the same graph again would fail the same way
        result = _try_export(pipeline, features, task, check_df, dtype, tolerance, rtol, float_trees)
        if result.ok:
            return result
        attempts.append(result)
    # report the attempt that got furthest: a checked graph over one that failed to convert or load
    checked = [a for a in attempts if a.n_rows_checked]
    best = checked[0] if checked else attempts[0]
    if len(attempts) > 1 and best is not attempts[0]:
        best.reason = f"{best.reason} (double inputs: {attempts[0].reason})"
    return best


def _try_export(
    pipeline: Any,
    features: list[dict[str, Any]],
    task: str,
    check_df: Any,
    dtype: str,
    tolerance: float,
    rtol: float,
    float_trees: bool = False,
) -> ExportResult:
    base: dict[str, Any] = {
        "onnx_opset": ONNX_OPSET,
        "numeric_dtype": dtype if any(f["kind"] == "numeric" for f in features) else None,
    }
    try:
        model = _convert(pipeline, features, task, dtype, float_trees)
        base.update(_graph_facts(model))
    except Exception as exc:
        return ExportResult(None, False, f"{_component_from(exc)}: {_first_line(exc)}", **base)
    onnx_bytes = model.SerializeToString()
    try:
        from mlopsctl.bundle.runners import OnnxRunner

        classes = _classes(pipeline) if not is_regression(task) else None
        runner = OnnxRunner(onnx_bytes, features, task, classes)
    except Exception as exc:
        return ExportResult(None, False, f"onnxruntime: {_first_line(exc)}", **base)
    try:
        return _check(pipeline, runner, onnx_bytes, features, task, check_df, tolerance, rtol, base)
    except Exception as exc:
        return ExportResult(onnx_bytes, False, f"parity check: {_first_line(exc)}", **base)


def _check(
    pipeline: Any,
    runner: Any,
    onnx_bytes: bytes,
    features: list[dict[str, Any]],
    task: str,
    check_df: Any,
    tolerance: float,
    rtol: float,
    base: dict[str, Any],
) -> ExportResult:
    """The graph against the model on up to `CHECK_ROWS` rows, `CHECK_BATCH` at a time: memory stays bounded
    by a batch whatever the holdout's size or the vocabulary's."""
    names = [f["name"] for f in features]
    frame = check_df[names]
    if len(frame) > CHECK_ROWS:
        frame = frame.sample(n=CHECK_ROWS, random_state=0)
    n = len(frame)
    if n == 0:
        return ExportResult(onnx_bytes, False, "no rows to check parity on", **base)
    regression = is_regression(task)
    diff, disagree, scale = 0.0, 0, 0.0
    for start in range(0, n, CHECK_BATCH):
        part = frame.iloc[start : start + CHECK_BATCH]
        labels, proba = runner.predict(_columns(part, features))
        if regression:
            expected = np.asarray(pipeline.predict(part), dtype=np.float64).ravel()
            got = np.asarray(labels, dtype=np.float64)
            diff = _worst(diff, float(np.max(np.abs(got - expected))))
            scale = max(scale, float(np.max(np.abs(expected))))
        else:
            expected_labels = np.asarray(pipeline.predict(part)).tolist()
            disagree += sum(a != b for a, b in zip(labels, expected_labels, strict=True))
            got_p = np.asarray(proba, dtype=np.float64)
            expected_p = np.asarray(pipeline.predict_proba(part), dtype=np.float64)
            diff = _worst(diff, float(np.max(np.abs(got_p - expected_p))))
    if regression:
        bound = rtol * max(1.0, scale)
        ok = bool(diff <= bound)
        reason = "" if ok else f"max |prediction difference| {diff:.3g} > {bound:.3g} ({rtol:g} of the scale)"
        return ExportResult(onnx_bytes, ok, reason, diff, None, n, tolerance=bound, **base)
    agreement = 1.0 - disagree / n
    problems = []
    if disagree:
        problems.append(f"{disagree} of {n} labels differ")
    if not diff <= tolerance:
        problems.append(f"max |probability difference| {diff:.3g} > {tolerance:g}")
    return ExportResult(onnx_bytes, not problems, "; ".join(problems), diff, agreement, n, tolerance=tolerance, **base)


def _worst(a: float, b: float) -> float:
    """The larger difference, where NaN (a graph that gave no number) beats any number."""
    return a if a != a else (b if b != b or b > a else a)


def _columns(frame: Any, features: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The check data as the server hands it to a runner: floats (NaN for missing), str or None."""
    import pandas as pd

    out: dict[str, list[Any]] = {}
    for f in features:
        col = frame[f["name"]]
        if f["kind"] == "numeric":
            out[f["name"]] = pd.to_numeric(col, errors="coerce").astype("float64").tolist()
        else:
            out[f["name"]] = [
                None if v is None or (isinstance(v, float) and v != v) or v is pd.NA else str(v)
                for v in col.astype(object).tolist()
            ]
    return out


def _classes(pipeline: Any) -> list[Any]:
    return np.asarray(pipeline.classes_).tolist()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def onnx_input_names(names: list[str]) -> list[str]:
    """The graph input names skl2onnx makes from feature names (C-like names, unique, in order)."""
    seen: set[str] = set()
    out = []
    for name in names:
        seed = re.sub("[^\\w+]", "_", name)
        if re.match("^[0-9]", seed):
            seed = "_" + seed
        candidate, i = seed, 1
        while candidate in seen:
            candidate = f"{seed}{i}"
            i += 1
        seen.add(candidate)
        out.append(candidate)
    return out


def _walk(est: Any) -> Any:
    """Every estimator nested in `est` (pipelines, column transformers, unions), `est` included."""
    yield est
    children: list[Any] = []
    if hasattr(est, "steps"):
        children = [s for _, s in est.steps]
    elif hasattr(est, "transformers_"):
        children = [t for _, t, _ in est.transformers_]
    elif hasattr(est, "transformer_list"):
        children = [t for _, t in est.transformer_list]
    for child in children:
        if not isinstance(child, str):
            yield from _walk(child)


def _graph_facts(model: Any) -> dict[str, Any]:
    """How the converted graph is fed and what its tree ensembles compare (for the export report)."""
    from onnx import TensorProto

    facts: dict[str, Any] = {
        "input_mode": "numeric_matrix" if any(i.name == MATRIX_INPUT for i in model.graph.input) else "per_column"
    }
    tree_inputs = {n.input[0] for n in model.graph.node if n.op_type.startswith("TreeEnsemble")}
    if tree_inputs:
        as_float = any(
            n.op_type == "Cast"
            and n.output[0] in tree_inputs
            and any(a.name == "to" and a.i == TensorProto.FLOAT for a in n.attribute)
            for n in model.graph.node
        )
        facts["tree_dtype"] = "float" if as_float else "double"
    return facts


def _convert(pipeline: Any, features: list[dict[str, Any]], task: str, dtype: str, float_trees: bool = False) -> Any:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
    from sklearn.feature_extraction.text import CountVectorizer

    from mlopsctl.bundle.onnx_converters import custom_converters

    pipeline = _conversion_form(pipeline, features, dtype)
    pipeline, lowered = _lowercase_outside(pipeline, {f["name"] for f in features if f["kind"] == "text"})
    numeric_type = DoubleTensorType if dtype == "double" else FloatTensorType
    initial_types = [
        (f["name"], numeric_type([None, 1]) if f["kind"] == "numeric" else StringTensorType([None, 1]))
        for f in features
    ]
    options: dict[int, dict[str, Any]] = {}
    final = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    if not is_regression(task):
        options[id(final)] = {"zipmap": False}
    for est in _walk(pipeline):
        if (
            isinstance(est, CountVectorizer)
            and est.analyzer == "word"
            and est.tokenizer is None
            and est.token_pattern == _SKLEARN_TOKEN_PATTERN
        ):
            options[id(est)] = {"tokenexp": _RE2_TOKEN_PATTERN}

    model = convert_sklearn(
        pipeline,
        initial_types=initial_types,
        target_opset={"": ONNX_OPSET, "ai.onnx.ml": ML_OPSET},
        options=options,
        custom_conversion_functions=custom_converters(float_trees=float_trees),
    )

    graph_inputs = [i.name for i in model.graph.input]
    expected = onnx_input_names([f["name"] for f in features])
    if graph_inputs != expected:
        raise RuntimeError(f"graph inputs {graph_inputs} do not match the features {expected}")
    spec = [
        {
            "feature": f["name"],
            "input": name,
            "type": dtype if f["kind"] == "numeric" else "string",
            "missing": None if f["kind"] == "numeric" else (MISSING_STRING if f["kind"] == "categorical" else ""),
            "lower": f["name"] in lowered,
        }
        for f, name in zip(features, expected, strict=True)
    ]
    _numeric_matrix(model, spec)
    meta = {META_INPUTS: json.dumps(spec), META_TASK: task}
    if not is_regression(task):
        meta[META_CLASSES] = json.dumps(_classes(pipeline))
    for key, value in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    return model


def _conversion_form(model: Any, features: list[dict[str, Any]], dtype: str) -> Any:
    """The model as skl2onnx can take it (the served model is never changed):

    - a bare estimator (no Pipeline around it) fed numeric features gets a passthrough ColumnTransformer in
      front, so the graph has one input per feature like every other export;
    - an XGBoost or LightGBM estimator gets onnxmltools' converters and, when numbers are fed as doubles, a
      cast to float32 in front of it: the libraries compare features in float32 (XGBoost) or keep float32
      trees in the graph, so the graph casts where the library does and the steps before it stay double."""
    import copy

    from mlopsctl.bundle.onnx_converters import booster_types, register_booster_converters

    boosters = booster_types()
    model = _nan_category_as_missing(model)
    if not hasattr(model, "steps") and not hasattr(model, "transformers_"):
        if not all(f["kind"] == "numeric" for f in features):
            return model  # skl2onnx says why it cannot convert it
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline

        names = [f["name"] for f in features]
        front = ColumnTransformer([("features", "passthrough", names)])
        front.fit(_empty_frame(names))
        model = Pipeline([("features", front), ("model", model)])
    if not boosters or not hasattr(model, "steps") or not any(isinstance(e, boosters) for e in _walk(model)):
        return model
    register_booster_converters()
    if dtype != "double":
        out = copy.copy(model)
        out.steps = [(n, _unnamed_features(e) if isinstance(e, boosters) else e) for n, e in model.steps]
        return out
    from skl2onnx.sklapi import CastTransformer

    steps: list[tuple[str, Any]] = []
    for name, step in model.steps:
        if isinstance(step, boosters):
            steps.append((f"{name}_float32", CastTransformer(dtype=np.float32).fit(np.zeros((1, 1)))))
            step = _unnamed_features(step)
        steps.append((name, step))
    out = copy.copy(model)
    out.steps = steps
    return out


def _nan_category_as_missing(model: Any) -> Any:
    """A OneHotEncoder fitted on data with missing values keeps NaN as a category of its own (scikit-learn's
    default). The graph is fed `MISSING_STRING` for a missing category, so a copy of the model whose
    encoders name that category `MISSING_STRING` converts to a graph that one-hot encodes it the same way."""
    import copy

    from sklearn.preprocessing import OneHotEncoder

    def nan_in(enc: Any) -> bool:
        return isinstance(enc, OneHotEncoder) and any(
            c.dtype == object and any(isinstance(v, float) and v != v for v in c)
            for c in getattr(enc, "categories_", [])
        )

    if not any(nan_in(e) for e in _walk(model)):
        return model
    twin = copy.deepcopy(model)
    for enc in _walk(twin):
        if nan_in(enc):
            enc.categories_ = [
                np.array([MISSING_STRING if isinstance(v, float) and v != v else v for v in c], dtype=object)
                if c.dtype == object
                else c
                for c in enc.categories_
            ]
    return twin


def _unnamed_features(estimator: Any) -> Any:
    """An XGBoost model fitted on a DataFrame names its features; onnxmltools' converter reads only f0, f1, ….
    A copy without the names converts (the features are the same columns in the same order)."""
    import copy

    booster = getattr(estimator, "get_booster", None)
    if booster is None or not getattr(booster(), "feature_names", None):
        return estimator
    twin = copy.deepcopy(estimator)
    twin.get_booster().feature_names = None
    return twin


def _empty_frame(names: list[str]) -> Any:
    import pandas as pd

    return pd.DataFrame({n: np.zeros(1) for n in names})


def _numeric_matrix(model: Any, spec: list[dict[str, Any]]) -> None:
    """Feed every numeric feature through one (rows, k) input instead of k (rows, 1) inputs: one array to
    build and bind per request instead of k. skl2onnx joins the numeric columns with a Concat (axis 1)
    before the imputer; that Concat becomes the new input itself. Where the columns are used otherwise,
    a Split gives the old inputs back. `spec` entries of numeric features get the input and their column."""
    from onnx import helper

    numeric = [s for s in spec if s["missing"] is None]
    if len(numeric) < 2:
        return
    graph = model.graph
    names = [s["input"] for s in numeric]
    inputs = {i.name: i for i in graph.input}
    elem_type = inputs[names[0]].type.tensor_type.elem_type
    consumers = [n for n in graph.node if any(i in names for i in n.input)]
    joins = [
        n
        for n in consumers
        if n.op_type == "Concat" and list(n.input) == names and any(a.name == "axis" and a.i == 1 for a in n.attribute)
    ]
    if len(consumers) == 1 and joins:
        join = joins[0]
        join.op_type = "Identity"
        del join.input[:]
        join.input.append(MATRIX_INPUT)
        del join.attribute[:]
    else:
        split = helper.make_node("Split", [MATRIX_INPUT], names, axis=1, num_outputs=len(names), name="split_numeric")
        graph.node.insert(0, split)
    kept = [i for i in graph.input if i.name not in set(names)]
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info(MATRIX_INPUT, elem_type, [None, len(names)]))
    graph.input.extend(kept)
    for column, entry in enumerate(numeric):
        entry["input"] = MATRIX_INPUT
        entry["column"] = column


def _lowercase_outside(pipeline: Any, text_features: set[str]) -> tuple[Any, set[str]]:
    """A shallow copy of `pipeline` whose text vectorizers do not lowercase, and the features the runner
    must lowercase instead. Python's str.lower() is what scikit-learn applies; the ONNX StringNormalizer
    needs a named OS locale (en_US.UTF-8 by default, often absent in containers) and may fold case
    differently. Only vectorizers fed one text column straight from the input are changed."""
    import copy

    from sklearn.feature_extraction.text import CountVectorizer

    lowered: set[str] = set()

    def visit(est: Any) -> Any:
        if hasattr(est, "steps"):
            steps = [(name, visit(step)) for name, step in est.steps]
            if all(a is b for (_, a), (_, b) in zip(steps, est.steps, strict=True)):
                return est
            out = copy.copy(est)
            out.steps = steps
            return out
        if hasattr(est, "transformers_"):
            parts = []
            for name, trans, cols in est.transformers_:
                col = cols if isinstance(cols, str) else None
                if (
                    col in text_features
                    and isinstance(trans, CountVectorizer)
                    and trans.lowercase
                    and not trans.stop_words
                    and not getattr(trans, "stop_words_", None)
                    and trans.analyzer == "word"
                    and trans.preprocessor is None
                ):
                    trans = copy.copy(trans)
                    trans.lowercase = False
                    lowered.add(col)
                parts.append((name, trans, cols))
            if not lowered:
                return est
            out = copy.copy(est)
            out.transformers_ = parts
            return out
        return est

    return visit(pipeline), lowered


def _component_from(exc: BaseException) -> str:
    """Name the pipeline component whose conversion failed: the class skl2onnx's message names, else
    the innermost estimator the traceback was converting or parsing."""
    m = re.search(r"<class '([\w.]+)'>", str(exc))
    if m:
        return m.group(1).rsplit(".", 1)[-1]
    name = None
    tb = exc.__traceback__
    while tb is not None:
        local = tb.tb_frame.f_locals
        raw = getattr(local.get("operator"), "raw_operator", None)
        if raw is None and hasattr(local.get("model"), "get_params"):
            raw = local["model"]
        if raw is not None and not isinstance(raw, str):
            name = type(raw).__name__
        tb = tb.tb_next
    return name or "onnx export"
