"""Live performance: captured predictions joined with their feedback labels.

``performance`` gives, per version and time window, the number of predictions, how many
got a label, and the task's live metrics on the labelled ones (``taskmetrics``: accuracy,
macro F1, precision and recall, per class too, for classification; RMSE, MAE, R² and bias
for regression), beside the metrics that version had on its training holdout (the same
names, scikit-learn's functions). ``live_metrics`` is what `monitor check` and
`retrain --if` judge.
"""

from __future__ import annotations

import math
import time
from typing import Any

from mlopsctl import registry
from mlopsctl.monitoring.captured import latest_labels, load_captures
from mlopsctl.monitoring.taskmetrics import compute
from mlopsctl.store.base import Store

# labels arrive after the predictions: look for feedback up to this long after the window ends
FEEDBACK_LAG = 30 * 86400.0


def labelled_predictions(
    store: Store, name: str, since: float | None, until: float | None = None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Captured rows of ``name`` (status 200) each with ``label`` (None without feedback), and counts.

    The last label given for a (request_id, row) wins. Counts: ``feedback`` (labels read for
    this model) and ``unmatched`` (labels for this model whose prediction is not in the window).
    """
    records = load_captures(store, name, since, until, ok_only=True)
    fb_until = None if until is None else until + FEEDBACK_LAG
    labels, n_feedback = latest_labels(store, name, since, fb_until)
    seen = set()
    for r in records:
        key = (r["request_id"], int(r.get("row", 0)))
        seen.add(key)
        r["label"] = labels.get(key)
    unmatched = sum(1 for k in labels if k not in seen)
    return records, {"feedback": n_feedback, "unmatched": unmatched}


def _metrics(task: str, y_true: list[Any], y_pred: list[Any]) -> dict[str, Any]:
    return compute(task, y_true, y_pred)


def performance(store: Store, name: str, *, since: float, window: float, until: float | None = None) -> dict[str, Any]:
    """Per version: overall live metrics, per-window metrics, and the training holdout metrics."""
    until = until or time.time()
    records, counts = labelled_predictions(store, name, since, until)
    by_version: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        by_version.setdefault(int(r["version"]), []).append(r)
    versions = []
    for v, recs in sorted(by_version.items()):
        man = registry.manifest(store, name, v)
        task = man.get("task", "classification")
        windows = []
        start = since + math.floor((recs[0]["time"] - since) / window) * window
        while start <= recs[-1]["time"]:
            inside = [r for r in recs if start <= r["time"] < start + window]
            lab = [r for r in inside if r["label"] is not None]
            if inside:
                windows.append(
                    {
                        "start": start,
                        "end": start + window,
                        "predictions": len(inside),
                        "labelled": len(lab),
                        **_metrics(task, [r["label"] for r in lab], [r["prediction"] for r in lab]),
                    }
                )
            start += window
        lab = [r for r in recs if r["label"] is not None]
        versions.append(
            {
                "version": v,
                "task": task,
                "predictions": len(recs),
                "labelled": len(lab),
                "live": _metrics(task, [r["label"] for r in lab], [r["prediction"] for r in lab]),
                "training": man.get("metrics", {}),
                "windows": windows,
            }
        )
    return {
        "model": name,
        "since": since,
        "until": until,
        "window_seconds": window,
        "feedback": counts["feedback"],
        "unmatched_feedback": counts["unmatched"],
        "versions": versions,
    }


def model_task(store: Store, name: str, version: int | None = None) -> str | None:
    """The task of ``name`` (its newest version's, or ``version``'s); None when the store has no such model."""
    from mlopsctl.errors import NotFound

    try:
        if version is None:
            numbers = registry.version_numbers(store, name)
            if not numbers:
                return None
            version = numbers[-1]
        return str(registry.manifest(store, name, version).get("task", "classification"))
    except NotFound:
        return None


def live_metrics(
    store: Store, name: str, window_seconds: float, min_labels: int, *, now: float | None = None
) -> tuple[dict[str, Any] | None, int, str | None]:
    """The task's metrics on the labelled predictions of the last ``window_seconds`` (None below
    ``min_labels``), the number of labelled predictions, and the task (of the newest version labelled)."""
    now = time.time() if now is None else now
    records, _ = labelled_predictions(store, name, now - window_seconds, now)
    lab = [r for r in records if r["label"] is not None]
    task = model_task(store, name, int(lab[-1]["version"])) if lab else model_task(store, name)
    if len(lab) < min_labels or task is None:
        return None, len(lab), task
    return compute(task, [r["label"] for r in lab], [r["prediction"] for r in lab]), len(lab), task
