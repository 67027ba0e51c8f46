"""A model trained outside mlopsctl, recorded as a run so it can be published like any other.

The Python API (`mlopsctl.publish`), `mlopsctl publish --model FILE` and `mlopsctl import` (MLflow)
hand a fitted model and rows to `record_model`. The rows give the signature (each column's kind,
type, range or categories), the drift baseline and reference sample, and, with the target, the
holdout metrics the gate compares; they are stored as a dataset snapshot (content-addressed), so
the version's lineage names its data by sha256 as a trained one does. The model is stored as
skops and read back through the allowlist before anything else: a model holding a type that is not
trusted is refused here, at publish, with the name to add to ``[registry] trusted_types``, not
later by a server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlopsctl.bundle import keys
from mlopsctl.bundle.signature import Signature
from mlopsctl.bundle.task import check_task, default_metric, is_regression, metrics_of
from mlopsctl.errors import DataError, ValidationError
from mlopsctl.store.base import Store, dumps
from mlopsctl.training.runs import (
    git_info,
    new_run_id,
    now_iso,
    package_versions,
    parquet,
    save_run,
    user,
)

# rows of X the published model is compared on against itself read back from skops
ROUND_TRIP_ROWS = 200
_FLAVORS = {"xgboost": "xgboost", "lightgbm": "lightgbm", "sklearn": "sklearn"}


def flavor_of(model: Any) -> str:
    """The library that made the model's final estimator: sklearn, xgboost, lightgbm (or its module's root)."""
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    root = type(final).__module__.split(".", 1)[0]
    return _FLAVORS.get(root, root)


def family_of(model: Any) -> str:
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    return type(final).__name__


def infer_task(model: Any, schema: Any, task: str | None) -> str:
    """The task from the model itself: a classifier has classes; text-classification when a feature is text."""
    classifier = hasattr(model, "classes_") and callable(getattr(model, "predict_proba", None))
    if task is not None:
        task = check_task(task)
        if is_regression(task) == classifier:
            have = "a classifier (it has classes_ and predict_proba)" if classifier else "a regressor"
            raise ValidationError(f"task {task!r} does not fit the model: it is {have}", [("task", task)])
        return task
    if not classifier:
        return "regression"
    return "text-classification" if any(c.kind == "text" for c in schema.features) else "classification"


def check_fitted(model: Any) -> None:
    if not callable(getattr(model, "predict", None)):
        raise ValidationError(
            f"a {type(model).__name__} has no predict(): publish a fitted estimator or Pipeline", [("model", "predict")]
        )
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError:
        raise ValidationError(
            f"the {type(model).__name__} is not fitted: fit it first (or let `mlopsctl train` fit it: "
            "[training] entrypoint)",
            [("model", "not fitted")],
        ) from None
    except TypeError:
        pass  # not a scikit-learn estimator: predict() is what serving needs


def as_frame(X: Any) -> Any:
    """X as a DataFrame with string column names (a numpy array gets x0, x1, …)."""
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        frame = X
    elif hasattr(X, "shape") and len(getattr(X, "shape", ())) == 2:
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    else:
        raise ValidationError(
            f"X must be a DataFrame (or a 2-D array); got {type(X).__name__}", [("X", "expected a DataFrame")]
        )
    if len(frame) == 0:
        raise ValidationError("X has no rows: the signature, baseline and metrics come from them", [("X", "empty")])
    bad = [c for c in frame.columns if not isinstance(c, str)]
    if bad:
        raise ValidationError(
            f"X's column names must be strings; got {bad[0]!r}: name the features", [(str(bad[0]), "not a string")]
        )
    return frame


def _target(y: Any, X: Any, target: str | None) -> tuple[Any, str]:
    import pandas as pd

    name = target or (str(y.name) if isinstance(y, pd.Series) and y.name is not None else "target")
    if name in X.columns:
        raise ValidationError(f"the target {name!r} is also a column of X: drop it from X", [(name, "in X")])
    values = pd.Series(y.to_numpy() if isinstance(y, pd.Series) else list(y), index=X.index, name=name)
    if len(values) != len(X):
        raise ValidationError(f"y has {len(values)} values for {len(X)} rows of X", [("y", "length")])
    return values, name


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _params(model: Any) -> dict[str, Any]:
    try:
        params = model.get_params(deep=False)
    except Exception:  # not a scikit-learn estimator
        return {}
    return json.loads(json.dumps({k: v for k, v in params.items() if k != "steps"}, default=lambda o: type(o).__name__))


def round_trip(model: Any, X: Any, trusted_types: Iterable[str]) -> tuple[bytes, Any]:
    """``model`` as skops bytes, read back through the allowlist, and checked to predict as the original."""
    import numpy as np
    import skops.io as sio

    from mlopsctl.bundle.safety import load_skops

    try:
        data = sio.dumps(model)
    except Exception as exc:
        raise ValidationError(
            f"the {type(model).__name__} cannot be saved with skops: {type(exc).__name__}: {exc}",
            [("model", "skops")],
        ) from None
    back = load_skops(data, name=f"{family_of(model)} as skops", trusted_types=trusted_types)
    rows = X.iloc[:ROUND_TRIP_ROWS]
    a, b = np.asarray(model.predict(rows)), np.asarray(back.predict(rows))
    same = np.array_equal(a, b) if a.dtype.kind not in "fc" else np.allclose(a, b, rtol=0, atol=0, equal_nan=True)
    if not same:
        raise ValidationError(
            f"the {type(model).__name__} predicts differently once saved with skops and read back: "
            "it holds state skops does not keep",
            [("model", "skops round trip")],
        )
    return data, back


def record_model(
    store: Store,
    model: Any,
    X: Any,
    y: Any | None = None,
    *,
    name: str,
    task: str | None = None,
    target: str | None = None,
    metrics: Mapping[str, float] | None = None,
    primary_metric: str | None = None,
    source: str = "python",
    trusted_types: Iterable[str] = (),
    text_columns: list[str] | None = None,
    categorical_columns: list[str] | None = None,
    seed: int = 0,
    root: Path | None = None,
    lineage: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Store a fitted ``model`` as a run, with ``X`` (and ``y``: then these rows are its holdout) giving its
    signature, baseline and metrics. Returns the run record (``run.json``)."""
    import pandas as pd

    from mlopsctl.bundle.scoring import evaluate
    from mlopsctl.data.schema import infer_schema
    from mlopsctl.data.snapshot import ingest
    from mlopsctl.data.validate import validate
    from mlopsctl.monitoring.baseline import build_baseline, reference_sample

    check_fitted(model)
    frame = as_frame(X)
    features = [str(c) for c in frame.columns]
    labelled = frame
    target_name = target or "target"
    if y is not None:
        values, target_name = _target(y, frame, target)
        labelled = frame.assign(**{target_name: values})
    schema = infer_schema(
        labelled,
        target_name if y is not None else None,
        text_columns=text_columns,
        categorical_columns=categorical_columns,
    )
    report = validate(labelled, target=target_name if y is not None else None)
    if not report.ok:
        first = report.errors[0]
        raise DataError(source, f"{first.detail} ({len(report.errors)} error(s))", column=first.column)
    the_task = infer_task(model, schema, task)
    data_bytes, back = round_trip(model, frame, trusted_types)
    classes = None if is_regression(the_task) else [_plain(c) for c in back.classes_]
    signature = Signature.from_schema(schema, features, the_task, target_name, classes)
    inputs = signature.input_dicts()
    for f in inputs:  # numbers are fed as float, as the server will feed them
        if f["kind"] == "numeric":
            frame = frame.assign(**{f["name"]: pd.to_numeric(frame[f["name"]], errors="coerce").astype(float)})
    metric = primary_metric or default_metric(the_task)
    if metric not in metrics_of(the_task):
        raise ValidationError(
            f"primary metric {metric!r} does not fit task {the_task!r}: use one of {', '.join(metrics_of(the_task))}",
            [("primary_metric", metric)],
        )
    reported = {str(k): float(v) for k, v in (metrics or {}).items()}
    if y is not None:
        holdout_metrics = evaluate(back, the_task, frame, labelled[target_name])
    else:
        holdout_metrics = {k: v for k, v in reported.items() if k in metrics_of(the_task)}
    snapshot, _ = ingest(store, labelled, source=source, target=target_name if y is not None else None, schema=schema)
    predictions = back.predict(frame)
    # with y these rows are the holdout, predictions on them are out of sample (the prediction drift reference)
    baseline = build_baseline(
        frame, inputs, predictions, the_task, prediction_source="holdout" if y is not None else "training"
    )
    reference = reference_sample(frame, predictions, seed)
    holdout = frame.assign(**{target_name: labelled[target_name].to_numpy()}) if y is not None else frame
    run: dict[str, Any] = {
        "run_id": new_run_id(),
        "model_name": name,
        "project": name,
        "task": the_task,
        "model": family_of(model),
        "flavor": flavor_of(model),
        "origin": source,
        "params": _params(model),
        "primary_metric": metric,
        "metrics": {"holdout": holdout_metrics, "cv": {}, "reported": reported},
        "data": {
            "sha256": snapshot.sha256,
            "source": source,
            "n_rows": len(frame),
            "n_train": None,
            "n_holdout": len(frame) if y is not None else 0,
            "test_size": None,
            "seed": seed,
        },
        "signature": signature.to_dict(),
        "tuning": None,
        "git": git_info(root or Path.cwd()),
        "packages": package_versions(extra=_library_packages(model)),
        "timings": {},
        "created_at": now_iso(),
        "user": user(),
        **({"lineage": dict(lineage)} if lineage else {}),
    }
    files = {
        keys.MODEL_SKOPS: data_bytes,
        keys.HOLDOUT: parquet(holdout),
        keys.REFERENCE: parquet(reference),
        keys.BASELINE: dumps(baseline),
    }
    return save_run(store, run, files)


def _library_packages(model: Any) -> list[str]:
    flavor = flavor_of(model)
    return [flavor] if flavor in ("xgboost", "lightgbm") else []


PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


def read_model_file(path: Path, *, unsafe_pickle: bool = False, trusted_types: Iterable[str] = ()) -> Any:
    """The fitted model in ``path``: a skops file through the allowlist; a joblib or pickle file only with
    ``unsafe_pickle`` (unpickling runs whatever code the file holds: do it only with a file you made)."""
    from mlopsctl.bundle.safety import load_skops

    where = str(path)
    if not path.is_file():
        raise DataError(where, "file not found")
    suffix = path.suffix.lower()
    if suffix == ".skops":
        return load_skops(path.read_bytes(), name=where, trusted_types=trusted_types)
    if suffix not in PICKLE_SUFFIXES:
        raise DataError(where, f"a model file is .skops, or {', '.join(PICKLE_SUFFIXES)} with --unsafe-pickle")
    if not unsafe_pickle:
        raise DataError(
            where,
            "a joblib/pickle file runs code when it is opened: pass --unsafe-pickle if you made it yourself "
            "(it is stored as skops; the store never holds a pickle), or save the model with skops.io.dump",
        )
    try:
        import joblib

        return joblib.load(path)  # the user asked for it, for a file of their own
    except Exception as exc:
        raise DataError(where, f"could not unpickle it: {type(exc).__name__}: {exc}") from None
