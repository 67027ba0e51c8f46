"""The Python API for notebooks and scripts: publish a model you trained, load a version to predict with.

    import mlopsctl

    version = mlopsctl.publish(model, name="adult", X=X_test, y=y_test, project=".")
    model = mlopsctl.load("adult@prod", project=".")
    model.predict(X_new)

`publish` takes any fitted scikit-learn estimator or Pipeline, and XGBoost and LightGBM models
through their scikit-learn API. It gives the version every guarantee `mlopsctl publish` gives a
trained run: the model stored as skops (never a pickle) and read back through the allowlist, an
ONNX export checked against the model where it converts, the signature and drift baseline from
``X``, holdout metrics from ``X`` and ``y``, a manifest of sha256s, and lineage (the data's sha256,
the git commit of the working folder, package versions). `load` predicts through the same
validation and runner as the server, so a local prediction is the served one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlopsctl.bundle.ref import ModelRef
from mlopsctl.bundle.version import ModelVersion, open_version


def _where(project: str | os.PathLike[str] | None, store: str | None) -> tuple[Any, Any]:
    """(config or None, store) for a call: ``store`` wins, then the project's, then MLOPS_STORE or ./.mlops."""
    from mlopsctl.config import find_project, load_config
    from mlopsctl.store.base import open_store

    folder = Path(project) if project is not None else find_project()
    cfg = load_config(folder) if folder is not None else None
    if cfg is not None:
        cfg.allow_project_code()
    uri = store or (cfg.store_uri() if cfg else os.environ.get("MLOPS_STORE") or str(Path(".mlops").absolute()))
    return cfg, open_store(uri)


def publish(
    model: Any,
    *,
    name: str | None = None,
    X: Any,
    y: Any | None = None,
    metrics: Mapping[str, float] | None = None,
    project: str | os.PathLike[str] | None = None,
    store: str | None = None,
    task: str | None = None,
    target: str | None = None,
    text_columns: list[str] | None = None,
    categorical_columns: list[str] | None = None,
) -> ModelVersion:
    """Publish a fitted ``model`` as the next version of ``name`` and return it.

    ``X`` (a DataFrame of the features the model takes, as it takes them) gives the signature and the drift
    baseline; with ``y`` the rows are the holdout the metrics and the evaluation gate use, so pass rows the
    model did not train on. ``metrics`` are numbers you measured yourself, kept beside the computed ones.
    ``project`` is a folder with mlops.toml (its store, model name, trusted types and primary metric);
    ``store`` a store URI that overrides it. ``task`` is inferred from the model (a classifier has classes,
    text-classification when a column is text) unless given.
    """
    from mlopsctl.registry.publishing import publish_run
    from mlopsctl.training.external import record_model

    cfg, the_store = _where(project, store)
    model_name = name or (cfg.model_name if cfg else None)
    if not model_name:
        from mlopsctl.errors import ValidationError

        raise ValidationError("name the model: publish(model, name='adult', X=...)", [("name", "required")])
    trusted = tuple(cfg.registry.trusted_types) if cfg else ()
    run = record_model(
        the_store,
        model,
        X,
        y,
        name=model_name,
        task=task,
        target=target or (cfg.data.target if cfg else None),
        metrics=metrics,
        primary_metric=cfg.training.primary_metric if cfg and task in (None, cfg.training.task) else None,
        source="python: mlopsctl.publish",
        trusted_types=trusted,
        text_columns=text_columns,
        categorical_columns=categorical_columns,
        root=cfg.root if cfg else None,
    )
    done = publish_run(the_store, run, name=model_name, trusted_types=trusted)
    return open_version(the_store, ModelRef(model_name, version=done.version), trusted_types=trusted)


class LocalModel:
    """A version loaded to predict in this process, through the server's own validation and runner."""

    def __init__(self, version: ModelVersion, runtime: str = "auto") -> None:
        from mlopsctl.serving.inputs import InputSpec

        self.version = version
        self.signature = version.signature
        self._spec = InputSpec(self.signature.to_dict())
        self._runner = version.runner(runtime)
        self.runtime: str = self._runner.runtime_name
        self.classes = version.classes

    def __repr__(self) -> str:
        return f"LocalModel({self.version.name}@{self.version.number}, runtime={self.runtime})"

    def _rows(self, X: Any) -> list[Any]:
        if hasattr(X, "to_dict") and hasattr(X, "notna"):  # a DataFrame: missing values (NaN, NA) become None
            rows: list[Any] = X.astype(object).where(X.notna(), None).to_dict(orient="records")
        elif isinstance(X, Mapping):
            rows = [dict(X)]
        else:
            rows = list(X)
        return rows

    def _run(self, X: Any) -> tuple[list[Any], Any]:
        from mlopsctl.serving.inputs import coerce_strings

        rows = coerce_strings(self._rows(X), self._spec)
        columns = self._spec.columns(rows, field_prefix="rows")
        out: tuple[list[Any], Any] = self._runner.predict(columns)
        return out

    def predict(self, X: Any) -> list[Any]:
        """Predictions for the rows of ``X`` (a DataFrame, a list of dicts, or one dict)."""
        return self._run(X)[0]

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, one row per input, columns in the order of ``classes`` (classifiers only)."""
        import numpy as np

        _, proba = self._run(X)
        if proba is None:
            raise TypeError(f"{self.version.name} v{self.version.number} is a regression model: no probabilities")
        return np.asarray(proba, dtype=np.float64)


def load(
    ref: str,
    *,
    project: str | os.PathLike[str] | None = None,
    store: str | None = None,
    runtime: str = "auto",
) -> LocalModel:
    """The version ``ref`` names (``adult``, ``adult@3``, ``adult@prod``), ready to predict locally."""
    cfg, the_store = _where(project, store)
    trusted = tuple(cfg.registry.trusted_types) if cfg else ()
    version = open_version(the_store, ModelRef.parse(ref), trusted_types=trusted)
    version.verify()
    return LocalModel(version, runtime)
