"""ONNX export and the serving runners, on the real datasets in ../shared/data.

Each convertible pipeline must pass the exporter's parity check, and the ONNX runner must answer as the
scikit-learn runner does: on the holdout, row by row, and on rows with a missing number, a missing or
unseen category, or an odd text.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlopsctl.bundle.export import MATRIX_INPUT, ExportResult, export_onnx
from mlopsctl.bundle.runners import OnnxRunner, SklearnRunner

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def uses_shared_data(fn: Any) -> Any:
    reason = f"shared datasets not found at {DATA}"
    return pytest.mark.shared_data(pytest.mark.skipif(not DATA.is_dir(), reason=reason)(fn))


SENTIMENT_FILES = ("amazon_cells_labelled.txt", "imdb_labelled.txt", "yelp_labelled.txt")


# --- the pipelines training builds (training.tasks), with the estimator under test swapped in ---


def build_pipeline(numeric: list[str], categorical: list[str], text: str | None, model: Any, min_df: int = 1) -> Any:
    from sklearn.base import is_regressor

    from mlopsctl.training.tasks import build_pipeline as build

    family = "hist_gradient_boosting" if type(model).__name__.startswith("HistGradient") else "random_forest"
    task = "regression" if is_regressor(model) else "classification"
    pipe = build(task, family, {}, signature(numeric, list(categorical), text), seed=0)
    pipe.steps[-1] = ("model", model)
    if text:
        pipe.set_params(pre__text0__min_df=min_df)
    return pipe


def signature(
    numeric: list[str], categorical: list[str] | tuple[str, ...] = (), text: str | None = None
) -> list[dict[str, Any]]:
    return (
        [{"name": n, "kind": "numeric", "dtype": "float", "nullable": True} for n in numeric]
        + [{"name": n, "kind": "categorical", "dtype": "string", "nullable": True} for n in categorical]
        + ([{"name": text, "kind": "text", "dtype": "string", "nullable": False}] if text else [])
    )


def columns_of(frame: pd.DataFrame, features: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Rows as the server hands them to a runner: floats or None, str or None."""
    out: dict[str, list[Any]] = {}
    for f in features:
        values = frame[f["name"]].astype(object).tolist()
        if f["kind"] == "numeric":
            out[f["name"]] = [None if pd.isna(v) else float(v) for v in values]
        else:
            out[f["name"]] = [None if pd.isna(v) else str(v) for v in values]
    return out


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """OpenMP (HistGradientBoosting) spins when the cores are shared: one thread keeps timings sane."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


# --- data ---


def split(df: pd.DataFrame, train_share: float = 0.75, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    df = df.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    cut = int(len(df) * train_share)
    return df.iloc[:cut], df.iloc[cut:]


@pytest.fixture(scope="module")
def wine() -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    df = pd.read_csv(DATA / "wine-quality" / "winequality-red.csv", sep=";")
    return (*split(df), [c for c in df.columns if c != "quality"])


@pytest.fixture(scope="module")
def housing() -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    df = pd.read_csv(DATA / "california-housing" / "housing.csv")
    df = df.sample(n=8000, random_state=0)  # enough for the NaNs (~80) and every category; quick to fit
    numeric = [c for c in df.columns if c not in ("median_house_value", "ocean_proximity")]
    return (*split(df), numeric)


@pytest.fixture(scope="module")
def sentiment() -> tuple[pd.DataFrame, pd.DataFrame]:
    frames = [
        pd.read_csv(DATA / "sentiment" / name, sep="\t", header=None, names=["text", "label"], quoting=3)
        for name in SENTIMENT_FILES
    ]
    return split(pd.concat(frames, ignore_index=True))


# --- the cases: (pipeline, features, task, holdout, edge rows), fitted once per module ---

Case = tuple[Any, list[dict[str, Any]], str, pd.DataFrame, dict[str, list[Any]]]


def wine_edge_rows(numeric: list[str], holdout: pd.DataFrame) -> dict[str, list[Any]]:
    rows = columns_of(holdout.iloc[:3], signature(numeric))
    rows["alcohol"][0] = None  # a missing number: the median imputer fills it
    rows["pH"][1] = None
    rows["sulphates"][2] = 1e6  # far outside the training range
    return rows


def make_wine(
    model: Callable[[], Any], task: str, labels: Callable[[pd.Series], pd.Series] | None = None
) -> Callable[[Any], Case]:
    def make(data: Any) -> Case:
        from sklearn.base import clone

        train, holdout, numeric = data
        target = train["quality"].astype(float) if task == "regression" else train["quality"]
        if labels is not None:
            target = labels(target)
        pipe = build_pipeline(numeric, [], None, clone(model())).fit(train[numeric], target)
        return pipe, signature(numeric), task, holdout, wine_edge_rows(numeric, holdout)

    return make


def make_housing(model: Callable[[], Any]) -> Callable[[Any], Case]:
    def make(data: Any) -> Case:
        train, holdout, numeric = data
        features = signature(numeric, ["ocean_proximity"])
        cols = [f["name"] for f in features]
        pipe = build_pipeline(numeric, ["ocean_proximity"], None, model()).fit(train[cols], train["median_house_value"])
        rows = columns_of(holdout.iloc[:4], features)
        rows["total_bedrooms"][0] = None
        rows["ocean_proximity"][1] = "ATLANTIS"  # a category never seen in training
        rows["ocean_proximity"][2] = None  # a missing category
        rows["total_bedrooms"][3], rows["ocean_proximity"][3] = None, ""
        return pipe, features, "regression", holdout, rows

    return make


def make_sentiment(model: Callable[[], Any], min_df: int = 1, label_names: bool = False) -> Callable[[Any], Case]:
    def make(data: Any) -> Case:
        train, holdout = data
        if label_names:
            train, holdout = (d.assign(label=d["label"].map({0: "negative", 1: "positive"})) for d in (train, holdout))
        features = signature([], [], "text")
        pipe = build_pipeline([], [], "text", model(), min_df=min_df).fit(train[["text"]], train["label"])
        rows = {
            "text": [
                "",
                None,
                "a b c",
                "!!!",
                "great, great, GREAT phone",
                "Café TRÈS bon — Straße",
                "10/10 would buy again",
                "terrible, broke in a day",
            ]
        }
        return pipe, features, "text-classification", holdout, rows

    return make


def _rf_clf() -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1)


def _hgb_clf() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=50, random_state=0)


def _logreg() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000)


def _rf_reg(n: int = 30, depth: int | None = None) -> Callable[[], Any]:
    def make() -> Any:
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(n_estimators=n, max_depth=depth, random_state=0, n_jobs=1)

    return make


def _hgb_reg() -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=50, random_state=0)


def _ridge() -> Any:
    from sklearn.linear_model import Ridge

    return Ridge(alpha=1.0)


CASES: dict[str, tuple[str, Callable[[Any], Case]]] = {
    "wine-forest-clf": ("wine", make_wine(_rf_clf, "classification")),
    "wine-hgb-clf": ("wine", make_wine(_hgb_clf, "classification")),
    "wine-logreg-clf": ("wine", make_wine(_logreg, "classification")),
    "wine-logreg-str-labels": ("wine", make_wine(_logreg, "classification", lambda y: "q" + y.astype(str))),
    "wine-forest-reg": ("wine", make_wine(_rf_reg(), "regression")),
    "wine-ridge-reg": ("wine", make_wine(_ridge, "regression")),
    "housing-forest-reg": ("housing", make_housing(_rf_reg(20, 10))),
    "housing-hgb-reg": ("housing", make_housing(_hgb_reg)),
    "sentiment-logreg": ("sentiment", make_sentiment(_logreg)),
    "sentiment-logreg-mindf2-str-labels": ("sentiment", make_sentiment(_logreg, min_df=2, label_names=True)),
}


@pytest.fixture(scope="module")
def exported(request: pytest.FixtureRequest) -> Callable[[str], tuple[Case, ExportResult]]:
    cache: dict[str, tuple[Case, ExportResult]] = {}

    def get(name: str) -> tuple[Case, ExportResult]:
        if name not in cache:
            dataset, make = CASES[name]
            case = make(request.getfixturevalue(dataset))
            pipe, features, task, holdout, _ = case
            cache[name] = case, export_onnx(pipe, features, task, holdout)
        return cache[name]

    return get


def regression_bound(expected: Any) -> float:
    return 1e-5 * max(1.0, float(np.max(np.abs(expected))))


# --- export ---


@pytest.mark.parametrize("name", list(CASES))
@uses_shared_data
def test_export_passes_parity(exported: Any, name: str) -> None:
    (pipe, features, task, holdout, _), result = exported(name)
    assert result.ok, result.reason
    assert result.reason == ""
    assert result.onnx and result.onnx_opset
    n_numeric = sum(f["kind"] == "numeric" for f in features)
    assert result.input_mode == ("numeric_matrix" if n_numeric > 1 else "per_column")
    forest = type(pipe.steps[-1][1]).__name__.startswith("RandomForest")
    hgb = type(pipe.steps[-1][1]).__name__.startswith("HistGradient")
    assert result.tree_dtype == ("float" if forest else "double" if hgb else None)
    assert result.n_rows_checked == len(holdout)
    assert result.max_abs_diff is not None
    if task == "regression":
        assert result.label_agreement is None
        assert result.max_abs_diff <= regression_bound(pipe.predict(holdout))
    else:
        assert result.label_agreement == 1.0
        assert result.max_abs_diff <= 1e-5
    if any(f["kind"] == "numeric" for f in features):
        assert result.numeric_dtype == "double"
    summary = result.to_dict()
    assert "onnx" not in summary
    json.dumps(summary)


@pytest.mark.parametrize("name", list(CASES))
@uses_shared_data
def test_runners_agree(exported: Any, name: str) -> None:
    (pipe, features, task, holdout, edge_rows), result = exported(name)
    classes = None if task == "regression" else pipe.classes_.tolist()
    onnx_runner = OnnxRunner(result.onnx, features, task, classes)
    sklearn_runner = SklearnRunner(pipe, features, task, classes)
    assert (onnx_runner.runtime_name, sklearn_runner.runtime_name) == ("onnx", "sklearn")

    batch = columns_of(holdout, features)
    singles = [{k: v[i : i + 1] for k, v in batch.items()} for i in range(5)]
    singles += [{k: v[i : i + 1] for k, v in edge_rows.items()} for i in range(len(next(iter(edge_rows.values()))))]
    for columns in [batch, edge_rows, *singles]:
        got_labels, got_proba = onnx_runner.predict(columns)
        want_labels, want_proba = sklearn_runner.predict(columns)
        n = len(next(iter(columns.values())))
        assert len(got_labels) == n
        if task == "regression":
            assert got_proba is None and want_proba is None
            assert all(type(v) is float for v in got_labels)
            assert np.max(np.abs(np.subtract(got_labels, want_labels))) <= regression_bound(want_labels)
        else:
            assert got_labels == want_labels
            assert {type(v) for v in got_labels} <= {type(c) for c in classes}
            assert got_proba is not None and want_proba is not None
            assert np.asarray(got_proba).shape == (n, len(classes))
            assert np.max(np.abs(np.subtract(got_proba, want_proba))) <= 1e-5

    # the scikit-learn runner is the pipeline itself, fed the way the server feeds it
    want = pipe.predict(holdout[[f["name"] for f in features]])
    labels, _ = sklearn_runner.predict(batch)
    if task == "regression":
        np.testing.assert_allclose(labels, want, rtol=1e-12)
    else:
        assert labels == want.tolist()


@uses_shared_data
def test_probabilities_follow_the_order_of_classes(exported: Any) -> None:
    (pipe, features, task, holdout, _), result = exported("wine-logreg-clf")
    columns = columns_of(holdout.iloc[:20], features)
    reverse = pipe.classes_.tolist()[::-1]
    for runner in (
        OnnxRunner(result.onnx, features, task, reverse),
        SklearnRunner(pipe, features, task, reverse),
    ):
        labels, proba = runner.predict(columns)
        assert labels == pipe.predict(holdout.iloc[:20]).tolist()
        np.testing.assert_allclose(np.asarray(proba)[:, ::-1], pipe.predict_proba(holdout.iloc[:20]), atol=1e-5)


@uses_shared_data
def test_sentiment_model_direction(exported: Any) -> None:
    (pipe, features, task, _, _), result = exported("sentiment-logreg")
    runner = OnnxRunner(result.onnx, features, task, pipe.classes_.tolist())
    _, proba = runner.predict({"text": ["great, loved it", "terrible, broke in a day"]})
    assert proba is not None and proba[0][1] > 0.5 > proba[1][1]


@uses_shared_data
def test_numeric_features_share_one_input(exported: Any) -> None:
    """The housing graph takes its eight numeric features as one (rows, 8) double input and the category
    as its own; the Concat that joined the numeric columns is gone."""
    import onnx

    (_, features, _, _, _), result = exported("housing-forest-reg")
    model = onnx.load_from_string(result.onnx)
    shapes = {
        i.name: (i.type.tensor_type.elem_type, [d.dim_value or None for d in i.type.tensor_type.shape.dim])
        for i in model.graph.input
    }
    assert shapes == {
        MATRIX_INPUT: (onnx.TensorProto.DOUBLE, [None, 8]),
        "ocean_proximity": (onnx.TensorProto.STRING, [None, 1]),
    }
    spec = json.loads({p.key: p.value for p in model.metadata_props}["mlopsctl.inputs"])
    numeric = [f["name"] for f in features if f["kind"] == "numeric"]
    assert [(s["feature"], s.get("column")) for s in spec if s["input"] == MATRIX_INPUT] == [
        (n, i) for i, n in enumerate(numeric)
    ]
    consumers = [n for n in model.graph.node if MATRIX_INPUT in n.input]
    assert [n.op_type for n in consumers] == ["Identity"]


@uses_shared_data
def test_graph_with_an_input_per_feature_still_serves(housing: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Versions published before the numeric input was shared have one input per feature: the runner
    reads that plan from the graph's metadata and serves them as before."""
    from mlopsctl.bundle import export

    monkeypatch.setattr(export, "_numeric_matrix", lambda model, spec: None)
    pipe, features, task, holdout, edge_rows = make_housing(_rf_reg(5, 6))(housing)
    result = export_onnx(pipe, features, task, holdout)
    assert result.ok and result.input_mode == "per_column", result.reason
    runner = OnnxRunner(result.onnx, features, task, None)
    for columns in (columns_of(holdout.iloc[:50], features), edge_rows):
        got, _ = runner.predict(columns)
        want, _ = SklearnRunner(pipe, features, task, None).predict(columns)
        assert np.allclose(got, want, rtol=1e-5)


@uses_shared_data
def test_forest_compares_in_float32_and_routes_as_sklearn(wine: Any) -> None:
    """A forest fed doubles casts them to float32 once and keeps float32 thresholds rounded down, so a
    value on a threshold, or on the float32 values around it, goes the way scikit-learn sends it
    (scikit-learn compares float32(x) with a float64 threshold). The float32 nearest to scikit-learn's
    threshold may lie above it, and a value equal to that float32 would then go the wrong way."""
    import onnx
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    train, holdout, numeric = wine
    forest = RandomForestClassifier(n_estimators=20, random_state=0, n_jobs=1)
    raw = ColumnTransformer([("num", "passthrough", numeric)])  # the trees see the inputs as they are
    pipe = Pipeline([("pre", raw), ("model", forest)]).fit(train[numeric], train["quality"])
    features = signature(numeric)
    result = export_onnx(pipe, features, "classification", holdout)
    assert result.ok and result.tree_dtype == "float", result.reason
    model = onnx.load_from_string(result.onnx)
    (tree,) = [n for n in model.graph.node if n.op_type == "TreeEnsembleClassifier"]
    assert "nodes_values" in {a.name for a in tree.attribute}
    (cast,) = [n for n in model.graph.node if tree.input[0] in n.output]
    assert cast.op_type == "Cast" and cast.attribute[0].i == onnx.TensorProto.FLOAT

    base = holdout[numeric].iloc[0].to_numpy(dtype=np.float64)
    rows = []
    for est in forest.estimators_:
        t = est.tree_
        for node in np.flatnonzero(t.feature >= 0)[:25]:
            thr = float(t.threshold[node])
            near = np.float32(thr)
            for v in (thr, near, np.nextafter(near, np.float32(-np.inf)), np.nextafter(near, np.float32(np.inf))):
                x = base.copy()
                x[int(t.feature[node])] = float(v)
                rows.append(x)
    frame = pd.DataFrame(rows, columns=numeric)
    runner = OnnxRunner(result.onnx, features, "classification", pipe.classes_.tolist())
    labels, proba = runner.predict(columns_of(frame, features))
    expected = pipe.predict_proba(frame)
    assert np.max(np.abs(np.asarray(proba, dtype=np.float64) - expected)) < 1e-5
    assert labels == pipe.predict(frame).tolist()


@uses_shared_data
def test_parity_failure_is_reported_not_forced(exported: Any) -> None:
    (pipe, features, task, holdout, _), _ = exported("wine-logreg-clf")
    result = export_onnx(pipe, features, task, holdout, tolerance=0.0)  # float32 probabilities never match 0
    assert not result.ok
    assert "probability difference" in result.reason
    assert result.max_abs_diff is not None and result.max_abs_diff > 0
    assert result.label_agreement == 1.0


@uses_shared_data
def test_non_convertible_pipeline_is_reported(wine: Any) -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.tree import DecisionTreeClassifier

    train, holdout, numeric = wine
    pipe = Pipeline(
        [
            ("log", FunctionTransformer(lambda x: np.log1p(x))),
            ("model", DecisionTreeClassifier(max_depth=4, random_state=0)),
        ]
    ).fit(train[numeric], train["quality"])
    result = export_onnx(pipe, signature(numeric), "classification", holdout)
    assert not result.ok
    assert result.onnx is None
    assert result.reason.startswith("FunctionTransformer: ")
    assert "\n" not in result.reason
    assert result.to_dict()["reason"] == result.reason


def test_onnx_runner_imports_no_sklearn_or_pandas() -> None:
    """Importing the runtime, building and running an OnnxRunner stays off scikit-learn and pandas."""
    from skl2onnx.algebra.onnx_ops import OnnxAdd, OnnxIdentity
    from skl2onnx.common.data_types import DoubleTensorType

    # a tiny regression graph: y = x + 1
    node = OnnxIdentity(OnnxAdd("x", np.array([1.0]), op_version=18), op_version=18, output_names=["variable"])
    onnx_bytes = node.to_onnx({"x": DoubleTensorType([None, 1])}, target_opset=18).SerializeToString()
    code = (
        "import sys; from mlopsctl.bundle.runners import OnnxRunner; "
        "r = OnnxRunner(sys.stdin.buffer.read(), "
        "[{'name': 'x', 'kind': 'numeric', 'dtype': 'float', 'nullable': True}], 'regression', None); "
        "print(r.predict({'x': [1.0, 2.5]})[0], "
        "[m for m in ('sklearn', 'pandas', 'scipy', 'skl2onnx') if m in sys.modules])"
    )
    src = Path(__file__).resolve().parents[1] / "src"
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=onnx_bytes,
        capture_output=True,
        check=True,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.decode().strip() == "[2.0, 3.5] []"


def test_numeric_inputs_used_apart_are_split_back_from_the_one_matrix() -> None:
    """Where the numeric columns are not joined by one Concat (here: added), the (rows, k) input is split
    back into the old inputs, and the graph computes the same thing from the matrix."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from mlopsctl.bundle.export import _numeric_matrix

    graph = helper.make_graph(
        [helper.make_node("Add", ["x1", "x2"], ["sum"]), helper.make_node("Mul", ["sum", "x1"], ["out"])],
        "apart",
        [helper.make_tensor_value_info(n, TensorProto.DOUBLE, [None, 1]) for n in ("x1", "x2")]
        + [helper.make_tensor_value_info("word", TensorProto.STRING, [None, 1])],
        [helper.make_tensor_value_info("out", TensorProto.DOUBLE, [None, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    spec = [
        {"feature": "a", "input": "x1", "missing": None},
        {"feature": "b", "input": "x2", "missing": None},
        {"feature": "w", "input": "word", "missing": ""},
    ]
    _numeric_matrix(model, spec)
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ["Split", "Add", "Mul"]
    assert [i.name for i in model.graph.input] == [MATRIX_INPUT, "word"]
    assert [(s["input"], s.get("column")) for s in spec] == [(MATRIX_INPUT, 0), (MATRIX_INPUT, 1), ("word", None)]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.25]])
    (out,) = session.run(None, {MATRIX_INPUT: x, "word": np.array([["a"], ["b"], ["c"]], dtype=object)})
    np.testing.assert_allclose(out.ravel(), (x[:, 0] + x[:, 1]) * x[:, 0])


def test_a_text_model_runs_big_batches_in_chunks_with_the_same_answers() -> None:
    """A TF-IDF graph makes one dense row per document over the whole vocabulary, so the runner runs a text
    model TEXT_CHUNK rows at a time: 1,000 rows at once give what scikit-learn gives."""
    from mlopsctl.bundle.runners import TEXT_CHUNK
    from mlopsctl.training.tasks import build_pipeline

    path = DATA / "sentiment" / "amazon_cells_labelled.txt"
    if not path.is_file():
        pytest.skip(f"needs {path}")
    frame = pd.read_csv(path, sep="\t", header=None, names=["text", "label"], quoting=3)
    features = [{"name": "text", "kind": "text"}]
    pipe = build_pipeline("text-classification", "logistic_regression", {}, features, 0)
    pipe.fit(frame[["text"]], frame["label"])
    result = export_onnx(pipe, features, "text-classification", frame[["text"]])
    assert result.ok and result.onnx is not None
    runner = OnnxRunner(result.onnx, features, "text-classification", [0, 1])
    assert len(frame) > 10 * TEXT_CHUNK
    labels, proba = runner.predict({"text": frame["text"].tolist()})
    assert labels == pipe.predict(frame[["text"]]).tolist()
    np.testing.assert_allclose(proba, pipe.predict_proba(frame[["text"]]), atol=1e-6)
