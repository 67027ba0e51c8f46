"""A model scored on rows: the metrics of its task, computed the same way for training, publish, the gate,
retraining and live performance."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlopsctl.bundle.task import is_regression


def _clean(value: float) -> float | None:
    v = float(value)
    return None if math.isnan(v) or math.isinf(v) else round(v, 6)


def classification_metrics(y_true: Any, y_pred: Any, proba: Any | None, classes: list[Any]) -> dict[str, float | None]:
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    out: dict[str, float | None] = {
        "accuracy": _clean(accuracy_score(y_true, y_pred)),
        "f1_macro": _clean(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "roc_auc": None,
        "log_loss": None,
    }
    if proba is not None:
        proba = np.asarray(proba)
        try:
            if len(classes) == 2:
                out["roc_auc"] = _clean(roc_auc_score(np.asarray(y_true) == classes[1], proba[:, 1]))
            else:
                # one-vs-rest over the classes present in the holdout (a class with no rows has no AUC)
                present = [i for i, c in enumerate(classes) if np.any(np.asarray(y_true) == c)]
                p = proba[:, present]
                p = p / np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)
                out["roc_auc"] = _clean(
                    roc_auc_score(y_true, p, multi_class="ovr", labels=[classes[i] for i in present])
                )
        except ValueError:
            out["roc_auc"] = None
        known = set(map(str, classes))
        if all(str(v) in known for v in np.asarray(y_true).tolist()):
            out["log_loss"] = _clean(log_loss(y_true, np.clip(proba, 1e-15, 1), labels=classes))
        # else a class the model never saw (white wine's quality 9 for a red-wine model): no log loss

    return out


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float | None]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "rmse": _clean(math.sqrt(mean_squared_error(y_true, y_pred))),
        "mae": _clean(mean_absolute_error(y_true, y_pred)),
        "r2": _clean(r2_score(y_true, y_pred)),
    }


def evaluate(model: Any, task: str, X: Any, y: Any) -> dict[str, float | None]:
    """The task's metrics of ``model`` (anything with predict, and predict_proba for probabilities) on X, y."""
    if is_regression(task):
        return regression_metrics(y, model.predict(X))
    classes = list(model.classes_)
    proba = model.predict_proba(X) if hasattr(model, "predict_proba") else None
    return classification_metrics(y, model.predict(X), proba, classes)
