"""A training run: data → validated snapshot → pipeline → CV + holdout metrics → stored run.

A run is stored under ``runs/{run_id}/``: ``run.json`` (params, data sha256, git commit,
package versions, timings, metrics, signature), ``model.skops`` (the fitted pipeline in a
safe format), ``holdout.parquet`` (for the ONNX parity check and the gate) and
``reference.parquet`` + ``baseline.json`` (for drift).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from mlopsctl.bundle.task import is_regression, is_text
from mlopsctl.config import Config
from mlopsctl.errors import DataError, ValidationError
from mlopsctl.store.base import Store
from mlopsctl.training.runs import (
    get_run,
    git_info,
    list_runs,
    new_run_id,
    now_iso,
    package_versions,
    parquet,
    save_run,
    user,
)

Reporter = Callable[[str, int, int], None]  # (step, done, total)
P = ParamSpec("P")
R = TypeVar("R")


def load_training_data(config: Config, path: str | Path | None = None, options: Any = None) -> tuple[Any, str]:
    """The data file (``path``, default: ``[data] path``) read by the one reader with ``options``
    (`data.read.FileOptions`, default: the project's [data] settings)."""
    from mlopsctl.data.read import FileOptions, read_data

    src = Path(path) if path else config.data_path()
    df = read_data(src, options if options is not None else FileOptions.of(config))
    return df, str(src)


def select_features(df: Any, config: Config, source: str) -> list[str]:
    from mlopsctl.data.validate import headerless_hint

    d = config.data
    if d.target not in df.columns:
        raise DataError(
            source,
            f"target column not found; columns are: {', '.join(map(str, df.columns))}"
            + headerless_hint([str(c) for c in df.columns]),
            column=d.target,
        )
    wanted = d.features or [c for c in df.columns if c != d.target and c not in d.drop]
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise DataError(source, f"configured feature(s) not in the data: {', '.join(missing)}", column=missing[0])
    return list(wanted)


def signature_of(schema: Any, features: list[str], task: str, target: str, classes: list[Any] | None) -> dict[str, Any]:
    from mlopsctl.bundle.signature import Signature

    return Signature.from_schema(schema, features, task, target, classes).to_dict()


class ModelMaker:
    """Makes the estimator a run trains: the project's own entrypoint, or a built-in family's pipeline."""

    def __init__(self, config: Config, features: list[dict[str, Any]]) -> None:
        self.config, self.features = config, features
        t = config.training
        self.entrypoint: Any = None
        if t.entrypoint:
            from mlopsctl.training.entrypoint import load_entrypoint

            self.entrypoint = load_entrypoint(t.entrypoint, config.root)
        from mlopsctl.training.tasks import SEARCH_SPACES

        self.space: dict[str, list[Any]] = dict(t.tune.space) or (
            {} if self.entrypoint is not None else dict(SEARCH_SPACES.get(t.model, {}))
        )
        self.family = f"entrypoint {t.entrypoint}" if self.entrypoint is not None else t.model

    @classmethod
    def from_config(cls, config: Config, features: list[dict[str, Any]]) -> ModelMaker:
        return cls(config, features)

    def make(self, params: dict[str, Any]) -> Any:
        if self.entrypoint is not None:
            return self.entrypoint.estimator(params)
        from mlopsctl.training.tasks import build_pipeline

        t = self.config.training
        if t.model == "random_forest" and "n_jobs" not in params:
            params = {**params, "n_jobs": t.threads or -1}
        return build_pipeline(t.task, t.model, params, self.features, t.seed)


def _thread_limited(train: Callable[P, R]) -> Callable[P, R]:
    """Run ``train`` with BLAS, OpenMP and ``n_jobs`` limited to ``[training] threads`` (0: every core);
    the limits are restored after it, error or not."""

    @functools.wraps(train)
    def limited(*args: P.args, **kwargs: P.kwargs) -> R:
        from threadpoolctl import threadpool_limits

        config = args[0] if args else kwargs["config"]
        with threadpool_limits(limits=config.training.threads or None):  # type: ignore[attr-defined]
            return train(*args, **kwargs)

    return limited


@_thread_limited
def train_project(
    config: Config,
    store: Store,
    *,
    data_path: str | Path | None = None,
    tune: bool = False,
    reporter: Reporter | None = None,
    frame: tuple[Any, str] | None = None,
) -> dict[str, Any]:
    """Train the project's model and store the run. Returns the run record.

    ``frame`` (a DataFrame and where it came from) replaces reading the data file. Training uses
    ``[training] threads`` threads (`_thread_limited`)."""
    import numpy as np
    import pandas as pd
    from sklearn.model_selection import KFold, StratifiedKFold, cross_validate, train_test_split

    from mlopsctl.bundle.scoring import evaluate
    from mlopsctl.data.schema import infer_schema
    from mlopsctl.data.snapshot import ingest
    from mlopsctl.data.validate import TrainingRules, validate
    from mlopsctl.monitoring.baseline import build_baseline, reference_sample
    from mlopsctl.training.entrypoint import is_fitted
    from mlopsctl.training.external import flavor_of
    from mlopsctl.training.tune import scorer_name
    from mlopsctl.training.tune import tune as run_tune

    report = reporter or (lambda step, done, total: None)
    t_start = time.monotonic()
    tcfg, task, target = config.training, config.training.task, config.data.target
    report("read data", 0, 1)
    df, source = frame if frame is not None else load_training_data(config, data_path)
    features = select_features(df, config, source)
    df = df[[*features, target]]
    schema = infer_schema(
        df, target, text_columns=config.data.text_columns, categorical_columns=config.data.categorical_columns
    )
    if is_text(task) and not any(c.kind == "text" for c in schema.features):
        raise DataError(
            source,
            "task is text-classification but no column looks like text: set [data] text_columns",
            column=None,
        )
    vr = validate(df, target=target, rules=TrainingRules.of(config))  # what `data validate` says, before any fit
    if not vr.ok:
        raise vr.refusal(source)
    snapshot, _ = ingest(store, df, source=source, target=target, schema=schema)
    report("read data", 1, 1)

    y_all = df[target]
    if is_regression(task):
        if not pd.api.types.is_numeric_dtype(y_all):
            raise DataError(source, "regression needs a numeric target", column=target)
        y_all = y_all.astype(float)
    X_all = df[features]
    feat_sig = signature_of(schema, features, task, target, None)["inputs"]
    for f in feat_sig:
        if f["kind"] == "numeric":
            X_all = X_all.assign(**{f["name"]: X_all[f["name"]].astype(float)})

    stratify = None
    if not is_regression(task):
        counts = y_all.value_counts()
        stratify = y_all if counts.min() >= 2 else None
    X_train, X_hold, y_train, y_hold = train_test_split(
        X_all, y_all, test_size=tcfg.test_size, random_state=tcfg.seed, stratify=stratify
    )

    if is_regression(task):
        cv: Any = KFold(n_splits=max(tcfg.cv_folds, 2), shuffle=True, random_state=tcfg.seed)
    else:
        min_class = int(y_train.value_counts().min())
        cv = StratifiedKFold(
            n_splits=max(2, min(tcfg.cv_folds, min_class)) if min_class >= 2 else 2,
            shuffle=True,
            random_state=tcfg.seed,
        )
        if min_class < 2:
            cv = KFold(n_splits=max(tcfg.cv_folds, 2), shuffle=True, random_state=tcfg.seed)

    maker = ModelMaker.from_config(config, feat_sig)
    params = dict(tcfg.params)
    timings: dict[str, float] = {}
    tuning: dict[str, Any] | None = None
    if tune:
        if not maker.space:
            raise ValidationError(
                "--tune needs a search space for your entrypoint: set [training.tune] space, "
                'e.g. { "model__n_estimators" = [100, 200, 400] }',
                [("training.tune.space", "empty")],
            )
        t0 = time.monotonic()
        tuning = run_tune(
            maker.make,
            maker.space,
            params,
            X_train,
            y_train,
            metric=tcfg.primary_metric,
            cv=cv,
            trials=tcfg.tune.trials,
            timeout_seconds=tcfg.tune.timeout_seconds,
            seed=tcfg.seed,
            on_trial=lambda d, t: report("tune", d, t),
        )
        params = tuning["best_params"]
        timings["tune_s"] = round(time.monotonic() - t0, 3)

    pipeline = maker.make(params)
    prefitted = maker.entrypoint is not None and is_fitted(pipeline)
    cv_summary: dict[str, Any] = {}
    if tcfg.cv_folds >= 2 and not prefitted:
        report("cross-validate", 0, 1)
        t0 = time.monotonic()
        scoring = (
            ["r2", "neg_root_mean_squared_error", "neg_mean_absolute_error"]
            if is_regression(task)
            else ["accuracy", "f1_macro"]
        )
        if scorer_name(tcfg.primary_metric) not in scoring:
            scoring.append(scorer_name(tcfg.primary_metric))
        res = cross_validate(pipeline, X_train, y_train, cv=cv, scoring=scoring, n_jobs=1)
        for s in scoring:
            vals = np.asarray(res[f"test_{s}"], dtype=float)
            sign = -1.0 if s.startswith("neg_") else 1.0
            name = {
                "neg_root_mean_squared_error": "rmse",
                "neg_mean_absolute_error": "mae",
                "neg_log_loss": "log_loss",
                "roc_auc_ovr": "roc_auc",
            }.get(s, s)
            cv_summary[name] = {
                "mean": round(float(sign * vals.mean()), 6),
                "std": round(float(vals.std()), 6),
            }
        cv_summary["folds"] = cv.get_n_splits()
        timings["cv_s"] = round(time.monotonic() - t0, 3)
        report("cross-validate", 1, 1)

    report("fit", 0, 1)
    t0 = time.monotonic()
    if not prefitted:
        pipeline.fit(X_train, y_train)
    timings["fit_s"] = round(time.monotonic() - t0, 3)
    report("fit", 1, 1)
    if maker.entrypoint is not None:  # your code's model must come back from the store as it is
        from mlopsctl.training.external import round_trip

        round_trip(pipeline, X_hold, config.registry.trusted_types)

    report("evaluate", 0, 1)
    holdout_metrics = evaluate(pipeline, task, X_hold, y_hold)
    classes = None if is_regression(task) else [c.item() if hasattr(c, "item") else c for c in pipeline.classes_]
    signature = signature_of(schema, features, task, target, classes)
    train_pred = pipeline.predict(X_train)
    # drift: the features of every row given for training; the predictions on rows the model was not fitted
    # on (in-sample ones are too confident, so unseen rows would show prediction drift)
    baseline = build_baseline(X_all, feat_sig, pipeline.predict(X_hold), task, prediction_source="holdout")
    reference = reference_sample(X_train, train_pred, tcfg.seed)
    report("evaluate", 1, 1)

    run_id = new_run_id()
    timings["total_s"] = round(time.monotonic() - t_start, 3)
    run = {
        "run_id": run_id,
        "model_name": config.model_name,
        "project": config.project.name,
        "task": task,
        "model": maker.family,
        "flavor": flavor_of(pipeline),
        "params": {k: v for k, v in params.items()},
        "threads": tcfg.threads,
        "primary_metric": tcfg.primary_metric,
        "metrics": {"holdout": holdout_metrics, "cv": cv_summary},
        "data": {
            "sha256": snapshot.sha256,
            "source": source,
            "n_rows": len(df),
            "n_train": len(X_train),
            "n_holdout": len(X_hold),
            "test_size": tcfg.test_size,
            "seed": tcfg.seed,
        },
        "signature": signature,
        "tuning": tuning,
        "git": git_info(config.root),
        **(
            {"entrypoint": maker.entrypoint.lineage(), "fitted_by": "entrypoint" if prefitted else "mlopsctl"}
            if maker.entrypoint is not None
            else {}
        ),
        "packages": package_versions(extra=[flavor_of(pipeline)] if flavor_of(pipeline) != "sklearn" else []),
        "timings": timings,
        "created_at": now_iso(),
        "user": user(),
    }
    _save_run(store, run, pipeline, X_hold.assign(**{target: y_hold.to_numpy()}), reference, baseline)
    return run


def _save_run(
    store: Store, run: dict[str, Any], pipeline: Any, holdout: Any, reference: Any, baseline: dict[str, Any]
) -> None:
    import skops.io as sio

    from mlopsctl.bundle import keys
    from mlopsctl.store.base import dumps

    files = {
        keys.MODEL_SKOPS: sio.dumps(pipeline),
        keys.HOLDOUT: parquet(holdout),
        keys.REFERENCE: parquet(reference),
        keys.BASELINE: dumps(baseline),
    }
    save_run(store, run, files)


__all__ = ["get_run", "git_info", "list_runs", "new_run_id", "package_versions", "train_project"]
