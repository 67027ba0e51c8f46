"""What a model version predicts, and the metrics that judge it: the only place task names are compared."""

from __future__ import annotations

from typing import Literal, cast

from mlopsctl.errors import ValidationError

Task = Literal["classification", "regression", "text-classification"]
TASKS: tuple[Task, ...] = ("classification", "regression", "text-classification")
CLASSIFICATION_METRICS = ("accuracy", "f1_macro", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})


def check_task(task: str) -> Task:
    if task not in TASKS:
        raise ValidationError(f"task must be one of {', '.join(TASKS)}; got {task!r}", [("task", str(task))])
    return cast(Task, task)


def is_regression(task: str) -> bool:
    return task == "regression"


def is_classification(task: str) -> bool:
    """Classification of any kind, text included: the model has classes and probabilities."""
    return task in ("classification", "text-classification")


def is_text(task: str) -> bool:
    return task == "text-classification"


def metrics_of(task: str) -> tuple[str, ...]:
    return REGRESSION_METRICS if is_regression(task) else CLASSIFICATION_METRICS


def default_metric(task: str) -> str:
    return "rmse" if is_regression(task) else "f1_macro"


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def better(metric: str, a: float, b: float) -> float:
    """How much better ``a`` is than ``b`` (positive: better), whatever the metric's direction."""
    return (b - a) if metric in LOWER_IS_BETTER else (a - b)
