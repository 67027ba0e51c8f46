"""The live metrics of a task, from (labels, predictions, probabilities): one definition for every reader.

- classification and text classification: ``accuracy``, ``f1_macro``, ``precision_macro``,
  ``recall_macro``; ``precision`` and ``recall`` per class; ``log_loss`` where probabilities exist.
  Bounded by a floor (``[monitoring.alerts] min``).
- regression: ``rmse``, ``mae``, ``r2``, ``bias`` (mean of prediction − label: positive over-predicts).
  Bounded by a ceiling (``max``; ``bias``: of its absolute value), ``r2`` by a floor.

``compute`` gives them from whole columns (scikit-learn's functions: `mlopsctl performance`,
`monitor check`, `retrain --if`); ``Tally`` keeps them as counts and sums a label at a time,
added and taken away in O(1), for the server's live gauges (no pass over the window per
label). Both agree to floating-point rounding (tests/test_taskmetrics.py). Macro averages
are over the classes seen as a label or a prediction, with 0 for a class never predicted,
as scikit-learn's ``average="macro", zero_division=0``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any, TypeVar

from mlopsctl.bundle.task import is_regression

CLASSIFICATION = ("accuracy", "f1_macro", "precision_macro", "recall_macro")
REGRESSION = ("rmse", "mae", "r2", "bias")
PER_CLASS = ("precision", "recall")
# the side a bound takes: a floor (alert below) or a ceiling (alert above); bias: a ceiling on |bias|
FLOORS = frozenset({"accuracy", "f1_macro", "precision_macro", "recall_macro", "r2"})
CEILINGS = frozenset({"rmse", "mae", "bias", "log_loss"})
# measured live (the servers keep the predicted class, not every class's probability: no live log loss)
LIVE = frozenset(CLASSIFICATION + REGRESSION)


def metrics_of(task: str) -> tuple[str, ...]:
    """The task's live metrics (what a floor or ceiling may name)."""
    return REGRESSION if is_regression(task) else CLASSIFICATION


def task_of(metric: str) -> str | None:
    """The kind of task a live metric belongs to (None: not a live metric)."""
    if metric in CLASSIFICATION:
        return "classification"
    if metric in REGRESSION:
        return "regression"
    return None


def breaches(metric: str, value: float, bound: float) -> bool:
    """Whether ``value`` is on the wrong side of the metric's bound (a floor, or a ceiling; |bias|)."""
    if metric == "bias":
        return abs(value) > bound
    return value < bound if metric in FLOORS else value > bound


def _finite(v: float) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


# -- whole columns -------------------------------------------------------------------------------------


def compute(
    task: str,
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    proba: Any | None = None,
    classes: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """The task's metrics of predictions against labels ({} without any). Classification compares classes as
    text (a label 5 and a prediction "5" agree); ``proba`` (rows × ``classes``) adds ``log_loss``."""
    if len(y_true) == 0:
        return {}
    if is_regression(task):
        return _regression(y_true, y_pred)
    return _classification(y_true, y_pred, proba, classes)


def _regression(y_true: Sequence[Any], y_pred: Sequence[Any]) -> dict[str, Any]:
    import numpy as np
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    t, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    varies = t.size > 1 and float(np.ptp(t)) > 0
    return {
        "rmse": _finite(math.sqrt(mean_squared_error(t, p))),
        "mae": _finite(mean_absolute_error(t, p)),
        "r2": _finite(r2_score(t, p)) if varies else None,  # undefined on labels that do not vary
        "bias": _finite(float(np.mean(p - t))),
    }


def _classification(
    y_true: Sequence[Any], y_pred: Sequence[Any], proba: Any | None, classes: Sequence[Any] | None
) -> dict[str, Any]:
    import numpy as np
    from sklearn.metrics import accuracy_score, log_loss, precision_recall_fscore_support

    t, p = [str(v) for v in y_true], [str(v) for v in y_pred]
    labels = sorted(set(t) | set(p))
    # the classes as their numbers in ``labels``: the same counts, so the same metrics, without scikit-learn
    # sorting a million strings (3 s for a month of labels; 0.3 s so)
    code = {c: i for i, c in enumerate(labels)}
    ti = np.fromiter((code[c] for c in t), dtype=np.int64, count=len(t))
    pi = np.fromiter((code[c] for c in p), dtype=np.int64, count=len(p))
    prec, rec, f1, support = precision_recall_fscore_support(ti, pi, labels=np.arange(len(labels)), zero_division=0)
    out: dict[str, Any] = {
        "accuracy": _finite(accuracy_score(ti, pi)),
        "f1_macro": _finite(f1.mean()),
        "precision_macro": _finite(prec.mean()),
        "recall_macro": _finite(rec.mean()),
        "per_class": {
            c: {"precision": _finite(prec[i]), "recall": _finite(rec[i]), "support": int(support[i])}
            for i, c in enumerate(labels)
        },
    }
    if proba is not None and classes is not None:
        known = [str(c) for c in classes]
        if set(t) <= set(known):  # a class the model never saw has no probability: no log loss
            out["log_loss"] = _finite(log_loss(t, np.clip(np.asarray(proba, dtype=float), 1e-15, 1), labels=known))
    return out


# -- a label at a time ----------------------------------------------------------------------------------

K = TypeVar("K")


class _Sum:
    """Neumaier's compensated sum: adding and taking away values of very different sizes loses no digits
    of the small ones (a plain float sum drifts, and an RMSE of 0 reads as 1e-6 after a window slid)."""

    __slots__ = ("c", "s")

    def __init__(self) -> None:
        self.s = self.c = 0.0

    def add(self, x: float) -> None:
        t = self.s + x
        self.c += (self.s - t) + x if abs(self.s) >= abs(x) else (x - t) + self.s
        self.s = t

    @property
    def value(self) -> float:
        return self.s + self.c


def _bump(counter: Counter[K], key: K, sign: int) -> None:
    counter[key] += sign
    if counter[key] <= 0:
        del counter[key]


class Tally:
    """Counts and sums from which the task's live metrics are read in O(classes); ``add`` and ``remove``
    one (label, prediction) each (a sliding window takes away what leaves it, a relabel replaces)."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.regression = is_regression(task)
        self.n = 0
        # classification: (label, prediction) pairs, and per class how often it was the label / the prediction
        self.pairs: Counter[tuple[str, str]] = Counter()
        self.as_label: Counter[str] = Counter()
        self.as_pred: Counter[str] = Counter()
        # regression: sums of the error (prediction − label), its square and absolute value, the label and its square;
        # compensated, so taking away what was added leaves what a fresh sum of the rest would be
        self.sums = [_Sum() for _ in range(5)]

    def add(self, label: Any, prediction: Any, sign: int = 1) -> None:
        self.n += sign
        if self.regression:
            y, e = float(label), float(prediction) - float(label)
            for total, x in zip(self.sums, (e, e * e, abs(e), y, y * y), strict=True):
                total.add(sign * x)
            if self.n == 0:  # nothing left: start again from exact zeros
                self.sums = [_Sum() for _ in range(5)]
            return
        t, p = str(label), str(prediction)
        _bump(self.pairs, (t, p), sign)
        _bump(self.as_label, t, sign)
        _bump(self.as_pred, p, sign)

    def remove(self, label: Any, prediction: Any) -> None:
        self.add(label, prediction, -1)

    def metrics(self) -> dict[str, Any]:
        """As ``compute`` gives them ({} when empty; ``per_class`` for classification)."""
        if self.n <= 0:
            return {}
        n = self.n
        if self.regression:
            s_err, s_err2, s_abs, s_y, s_y2 = (total.value for total in self.sums)
            mean_y = s_y / n
            sst = s_y2 - n * mean_y * mean_y
            varies = n > 1 and sst > 1e-9 * max(1.0, s_y2)
            return {
                "rmse": math.sqrt(max(s_err2, 0.0) / n),
                "mae": max(s_abs, 0.0) / n,
                "r2": 1 - s_err2 / sst if varies else None,
                "bias": s_err / n,
            }
        labels = sorted(set(self.as_label) | set(self.as_pred))
        per_class: dict[str, dict[str, Any]] = {}
        for c in labels:
            tp = self.pairs.get((c, c), 0)
            predicted, actual = self.as_pred.get(c, 0), self.as_label.get(c, 0)
            prec = tp / predicted if predicted else 0.0
            rec = tp / actual if actual else 0.0
            f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
            per_class[c] = {"precision": prec, "recall": rec, "f1": f1, "support": actual}
        k = len(labels)
        correct = sum(v for (t, p), v in self.pairs.items() if t == p)
        return {
            "accuracy": correct / n,
            "f1_macro": sum(v["f1"] for v in per_class.values()) / k,
            "precision_macro": sum(v["precision"] for v in per_class.values()) / k,
            "recall_macro": sum(v["recall"] for v in per_class.values()) / k,
            "per_class": {c: {x: v[x] for x in ("precision", "recall", "support")} for c, v in per_class.items()},
        }
