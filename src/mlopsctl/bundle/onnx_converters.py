"""skl2onnx converters that close gaps in skl2onnx 1.20 for mlopsctl's pipelines.

Passed to each conversion call (nothing is registered globally); why each exists is in the
docstring of `mlopsctl.bundle.export`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlopsctl.bundle.export import ML_OPSET
from mlopsctl.bundle.keys import MISSING_STRING

_TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")
_DOUBLE_ATTRS = ("nodes_values", "nodes_hitrates", "base_values", "class_weights", "target_weights")


def custom_converters(float_trees: bool = False) -> dict[type, Any]:
    """The converters; with `float_trees`, a random forest fed doubles compares in float32 (see
    `_TreeContainer`)."""
    from skl2onnx.operator_converters.random_forest import (
        convert_sklearn_random_forest_classifier,
        convert_sklearn_random_forest_regressor_converter,
    )
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer
    from sklearn.impute import SimpleImputer

    def tree(convert: Any, exact_in_float: bool = False) -> Any:
        def converter(scope: Any, operator: Any, container: Any) -> None:
            double = _is_double(operator.inputs[0].type)
            fixed = _TreeContainer(container, scope, operator, double, float_trees and exact_in_float and double)
            convert(scope, operator, fixed, op_version=ML_OPSET if double else 1)

        return converter

    return {
        SimpleImputer: _convert_imputer,
        TfidfVectorizer: _convert_tfidf,
        TfidfTransformer: _convert_tfidf,
        # scikit-learn's forests compare float32(x) with their thresholds; HistGradientBoosting compares x
        RandomForestClassifier: tree(convert_sklearn_random_forest_classifier, exact_in_float=True),
        HistGradientBoostingClassifier: tree(convert_sklearn_random_forest_classifier),
        RandomForestRegressor: tree(convert_sklearn_random_forest_regressor_converter, exact_in_float=True),
        HistGradientBoostingRegressor: tree(convert_sklearn_random_forest_regressor_converter),
    }


def _is_double(t: Any) -> bool:
    from skl2onnx.common.data_types import DoubleTensorType

    return isinstance(t, DoubleTensorType)


class _TreeContainer:
    """Passes everything to skl2onnx's container, fixing TreeEnsemble attributes on the way.

    With `float_trees` (double input, a random forest), the ensemble is fed its input cast to float32
    and compares it with float32 thresholds: half the memory of double thresholds, which is what a
    single-row prediction waits on (the walk through 100 trees is bound by cache misses). It stays
    exact. skl2onnx's double threshold `w` satisfies `float32(x) <= t  <=>  x <= w` for scikit-learn's
    threshold `t`; every float32 value `v` is also a double, so `v <= w  <=>  v <= w32` where `w32` is
    the largest float32 not above `w`. The Cast rounds to nearest, as scikit-learn's `astype(float32)`.
    """

    def __init__(self, container: Any, scope: Any, operator: Any, double: bool, float_trees: bool = False) -> None:
        self._container = container
        self._scope = scope
        self._double = double
        self._float_trees = float_trees
        # outputs skl2onnx declared as double, which a TreeEnsemble (always float) must be cast to
        self._double_outputs = {v.full_name for v in operator.outputs if _is_double(v.type)}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(
        self,
        op_type: str,
        inputs: Any,
        outputs: Any,
        op_domain: str = "",
        op_version: Any = None,
        **attrs: Any,
    ) -> Any:
        if op_type in _TREE_OPS:
            from onnx import TensorProto, numpy_helper

            if "nodes_missing_value_tracks_true" in attrs:
                # HistGradientBoosting leaves append a Python bool, which onnx refuses in an int list
                attrs["nodes_missing_value_tracks_true"] = [int(v) for v in attrs["nodes_missing_value_tracks_true"]]
            float_trees = self._float_trees and set(attrs.get("nodes_modes", [])) <= {"BRANCH_LEQ", "LEAF"}
            if float_trees:
                attrs["nodes_values"] = _round_down_float32(attrs["nodes_values"])
                source = inputs[0] if isinstance(inputs, list) else inputs
                cast = self._scope.get_unique_variable_name("tree_input_float")
                self._container.add_node(
                    "Cast", [source], [cast], to=TensorProto.FLOAT, name=self._scope.get_unique_operator_name("Cast")
                )
                inputs = [cast]
            for key, value in list(attrs.items()):
                if self._double and not float_trees and key in _DOUBLE_ATTRS:
                    attrs[f"{key}_as_tensor"] = numpy_helper.from_array(np.asarray(value, dtype=np.float64))
                    del attrs[key]
            if self._double:
                outputs = list(outputs) if isinstance(outputs, list) else [outputs]
                casts = []
                for i, name in enumerate(outputs):
                    if name in self._double_outputs:
                        outputs[i] = self._scope.get_unique_variable_name(f"{name}_float")
                        casts.append((outputs[i], name))
                self._container.add_node(op_type, inputs, outputs, op_domain=op_domain, op_version=op_version, **attrs)
                for source, target in casts:
                    self._container.add_node(
                        "Cast",
                        [source],
                        [target],
                        to=TensorProto.DOUBLE,
                        name=self._scope.get_unique_operator_name("Cast"),
                    )
                return None
        return self._container.add_node(op_type, inputs, outputs, op_domain=op_domain, op_version=op_version, **attrs)


def _round_down_float32(values: Any) -> list[float]:
    """Each value as the largest float32 not above it."""
    w = np.asarray(values, dtype=np.float64)
    w32 = w.astype(np.float32)
    above = w32.astype(np.float64) > w
    w32[above] = np.nextafter(w32[above], np.float32(-np.inf))
    return [float(v) for v in w32]


def _convert_imputer(scope: Any, operator: Any, container: Any) -> None:
    from onnx import TensorProto
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer

    op = operator.raw_operator
    itype = operator.inputs[0].type
    same_type = all(type(v.type) is type(itype) for v in operator.inputs)
    missing_is_nan = isinstance(op.missing_values, float) and np.isnan(op.missing_values)
    if not (same_type and missing_is_nan) or getattr(op, "add_indicator", False):
        convert_sklearn_imputer(scope, operator, container)
        return
    output = operator.outputs[0].full_name
    if isinstance(itype, StringTensorType):
        if op.strategy == "constant" and op.fill_value == MISSING_STRING:
            joined = _concat(scope, operator, container)
            container.add_node("Identity", [joined], [output], name=scope.get_unique_operator_name("Identity"))
            return
        # the feed marks a missing string with MISSING_STRING: replace that by the imputer's statistic
        import copy

        marked = copy.copy(op)
        marked.missing_values = MISSING_STRING
        operator.raw_operator = marked
        try:
            convert_sklearn_imputer(scope, operator, container)
        finally:
            operator.raw_operator = op
        return
    stats = np.asarray(op.statistics_, dtype=np.float64)
    if np.isnan(stats).any() and not getattr(op, "keep_empty_features", False):
        raise NotImplementedError("SimpleImputer dropped a feature that was all missing in training")
    double = _is_double(itype)
    if not (double or isinstance(itype, FloatTensorType)):
        convert_sklearn_imputer(scope, operator, container)
        return
    joined = _concat(scope, operator, container)
    fill = scope.get_unique_variable_name("impute_fill")
    container.add_initializer(
        fill,
        TensorProto.DOUBLE if double else TensorProto.FLOAT,
        [1, stats.size],
        stats.astype(np.float64 if double else np.float32).ravel().tolist(),
    )
    mask = scope.get_unique_variable_name("impute_mask")
    container.add_node("IsNaN", [joined], [mask], name=scope.get_unique_operator_name("IsNaN"))
    container.add_node("Where", [mask, fill, joined], [output], name=scope.get_unique_operator_name("Where"))


def _concat(scope: Any, operator: Any, container: Any) -> str:
    names = [v.full_name for v in operator.inputs]
    if len(names) == 1:
        return str(names[0])
    joined = scope.get_unique_variable_name("impute_in")
    container.add_node("Concat", names, [joined], axis=1, name=scope.get_unique_operator_name("Concat"))
    return str(joined)


def _convert_tfidf(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx turns a TfidfVectorizer into a CountVectorizer and a TfidfTransformer operator, both with
    the vectorizer as raw operator, so all three arrive here; only the weighting is replaced."""
    from skl2onnx.common._registration import get_converter

    if operator.type == "SklearnTfidfTransformer":
        _convert_tfidf_weights(scope, operator, container)
    else:
        get_converter(operator.type)(scope, operator, container)


def _convert_tfidf_weights(scope: Any, operator: Any, container: Any) -> None:
    """TF-IDF weighting as scikit-learn computes it. skl2onnx 1.20 writes sublinear tf as log(1 + tf),
    scikit-learn as 1 + log(tf) for tf > 0: the two agree only on documents without a repeated term."""
    from onnx import TensorProto

    op = operator.raw_operator
    double = _is_double(operator.inputs[0].type)
    proto, ftype = (TensorProto.DOUBLE, np.float64) if double else (TensorProto.FLOAT, np.float32)

    def const(stem: str, values: Any, dtype: Any = ftype, proto_type: int = proto) -> str:
        name = scope.get_unique_variable_name(stem)
        values = np.asarray(values, dtype=dtype).ravel()
        container.add_initializer(name, proto_type, [values.size], values.tolist())
        return str(name)

    def node(op_type: str, inputs: list[str], **attrs: Any) -> str:
        out = scope.get_unique_variable_name(f"tfidf_{op_type.lower()}")
        container.add_node(op_type, inputs, [out], name=scope.get_unique_operator_name(op_type), **attrs)
        return str(out)

    x = operator.inputs[0].full_name
    zero, one = const("zero", [0.0]), const("one", [1.0])
    if op.sublinear_tf:
        x = node("Where", [node("Greater", [x, zero]), node("Add", [node("Log", [x]), one]), zero])
    if op.use_idf:
        x = node("Mul", [x, const("idf", op.idf_)])
    if op.norm in ("l1", "l2"):
        axes = const("axes", [1], np.int64, TensorProto.INT64)
        norm = node("ReduceL2" if op.norm == "l2" else "ReduceL1", [x, axes], keepdims=1)
        # scikit-learn's normalize leaves an all-zero row as it is
        x = node("Div", [x, node("Where", [node("Equal", [norm, zero]), one, norm])])
    elif op.norm is not None:
        raise NotImplementedError(f"TF-IDF norm {op.norm!r}")
    container.add_node(
        "Identity", [x], [operator.outputs[0].full_name], name=scope.get_unique_operator_name("Identity")
    )


# XGBoost and LightGBM estimators in scikit-learn pipelines, converted with onnxmltools' converters. These
# are registered with skl2onnx once per process (skl2onnx has no per-call hook for a new type's allowed
# options, such as zipmap); only the two libraries' own classes are registered, nothing of scikit-learn's.
_BOOSTERS_REGISTERED = False


def booster_types() -> tuple[type, ...]:
    """The XGBoost and LightGBM estimator classes that are importable here (none when neither is installed)."""
    found: list[type] = []
    try:
        from xgboost import XGBClassifier, XGBRegressor

        found += [XGBClassifier, XGBRegressor]
    except ImportError:
        pass
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor

        found += [LGBMClassifier, LGBMRegressor]
    except ImportError:
        pass
    return tuple(found)


def register_booster_converters() -> None:
    """Teach skl2onnx the XGBoost and LightGBM estimators (onnxmltools' converters); a no-op the second time.
    Raises ImportError when onnxmltools is missing (the export then reports it and serving uses the model)."""
    global _BOOSTERS_REGISTERED
    if _BOOSTERS_REGISTERED:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor

        update_registered_converter(
            XGBClassifier,
            "XGBoostXGBClassifier",
            calculate_linear_classifier_output_shapes,
            convert_xgboost,
            options=classifier_options,
        )
        update_registered_converter(
            XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes, convert_xgboost
        )
    except ImportError as exc:
        if "onnxmltools" in str(exc):
            raise
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        update_registered_converter(
            LGBMClassifier,
            "LightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes,
            convert_lightgbm,
            options=classifier_options,
        )
        update_registered_converter(
            LGBMRegressor,
            "LightGbmLGBMRegressor",
            calculate_linear_regressor_output_shapes,
            convert_lightgbm,
            options={"split": None},
        )
    except ImportError as exc:
        if "onnxmltools" in str(exc):
            raise
    _BOOSTERS_REGISTERED = True
