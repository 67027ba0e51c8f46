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
from collections import Counter
from collections.abc import Iterator
from typing import Any

from mlopsctl import registry
from mlopsctl.monitoring.captured import iter_capture_columns, iter_captures, latest_labels
from mlopsctl.monitoring.taskmetrics import compute
from mlopsctl.store.base import Store

# labels arrive after the predictions: look for feedback up to this long after the window ends
FEEDBACK_LAG = 30 * 86400.0
# what performance reads of each captured row (never its inputs)
_COLUMNS = ["request_id", "row", "version", "prediction"]


class LabelledCapture:
    """The answered (status 200) capture rows of ``name`` in the period, an hour at a time as columns, each
    row with its ``label`` (None without feedback: the last label given for its (request_id, row) wins).

    The period's labels are held (one per labelled row); the rows never are: ``hours()`` reads one hour's
    ids, versions, predictions and times (plus ``columns``), joins them and lets them go. After it ran,
    ``feedback`` is the number of labels read for this model and ``unmatched`` those whose prediction is
    not in the period."""

    def __init__(
        self, store: Store, name: str, since: float | None, until: float | None, columns: tuple[str, ...] = ()
    ) -> None:
        self.store, self.name, self.since, self.until = store, name, since, until
        self.columns = list(dict.fromkeys([*_COLUMNS, *columns]))
        fb_until = None if until is None else until + FEEDBACK_LAG
        self.labels, self.feedback = latest_labels(store, name, since, fb_until)
        self._ids = {rid for rid, _ in self.labels}
        self._matched: set[tuple[str, int]] = set()

    @property
    def unmatched(self) -> int:
        return len(self.labels) - len(self._matched)

    def hours(self) -> Iterator[dict[str, Any]]:
        """Each hour's columns (numpy arrays, by time: ``time``, ``version`` as int64, ``label`` and the
        ones asked for)."""
        import numpy as np

        for cols in iter_capture_columns(self.store, self.name, self.columns, self.since, self.until, ok_only=True):
            rid, row = cols["request_id"], cols["row"]
            label = np.full(len(rid), None, dtype=object)
            for i in np.flatnonzero(np.fromiter((x in self._ids for x in rid), dtype=bool, count=len(rid))):
                key = (rid[i], int(row[i] or 0))
                if key in self.labels:
                    self._matched.add(key)
                    label[i] = self.labels[key]
            cols["label"] = label
            v = cols["version"]
            cols["version"] = np.array([int(x) for x in v], dtype=np.int64) if v.dtype == object else v.astype(np.int64)
            yield cols


class _Version:
    """What ``performance`` keeps of one version while the hours go by: counts of predictions per window,
    and (window, label, prediction) of each labelled row, in the order read."""

    def __init__(self, since: float, window: float, first: float) -> None:
        self.window = window
        # the windows' starts, each the one before plus ``window`` (as the report has always stepped them)
        self.starts = [since + math.floor((first - since) / window) * window]
        self._edges: Any = None
        self.last = first
        self.predictions = 0
        self.counts: Counter[int] = Counter()
        self.win: list[int] = []
        self.labels: list[Any] = []
        self.preds: list[Any] = []

    def add(self, t: Any, labels: Any, preds: Any) -> None:
        import numpy as np

        while self.starts[-1] + self.window <= t.max():
            self.starts.append(self.starts[-1] + self.window)
            self._edges = None
        if self._edges is None:
            self._edges = np.asarray(self.starts)
        idx = np.searchsorted(self._edges, t, side="right") - 1  # -1: before the first window
        self.last = float(t[-1])
        self.predictions += len(t)
        self.counts.update(dict(zip(*(a.tolist() for a in np.unique(idx, return_counts=True)), strict=True)))
        has = np.fromiter((x is not None for x in labels), dtype=bool, count=len(labels))
        self.win.extend(idx[has].tolist())
        self.labels.extend(labels[has].tolist())
        self.preds.extend(preds[has].tolist())

    def windows(self, task: str) -> list[dict[str, Any]]:
        by_window: dict[int, tuple[list[Any], list[Any]]] = {}
        for k, y, p in zip(self.win, self.labels, self.preds, strict=True):
            pair = by_window.setdefault(k, ([], []))
            pair[0].append(y)
            pair[1].append(p)
        out = []
        for k, start in enumerate(self.starts):
            if start > self.last:
                break
            if self.counts.get(k):
                y, p = by_window.get(k, ([], []))
                out.append(
                    {
                        "start": start,
                        "end": start + self.window,
                        "predictions": self.counts[k],
                        "labelled": len(y),
                        **compute(task, y, p),
                    }
                )
        return out


def performance(store: Store, name: str, *, since: float, window: float, until: float | None = None) -> dict[str, Any]:
    """Per version: overall live metrics, per-window metrics, and the training holdout metrics.

    Streams the period an hour at a time: memory grows with the labelled rows and the windows, not with
    the predictions."""
    until = until or time.time()
    capture = LabelledCapture(store, name, since, until)
    by_version: dict[int, _Version] = {}
    for cols in capture.hours():
        ver, t = cols["version"], cols["time"]
        for v in dict.fromkeys(ver.tolist()):
            m = ver == v
            tv = t[m]
            if v not in by_version:
                by_version[v] = _Version(since, window, float(tv[0]))
            by_version[v].add(tv, cols["label"][m], cols["prediction"][m])
    versions = []
    for v, state in sorted(by_version.items()):
        man = registry.manifest(store, name, v)
        task = man.get("task", "classification")
        versions.append(
            {
                "version": v,
                "task": task,
                "predictions": state.predictions,
                "labelled": len(state.labels),
                "live": compute(task, state.labels, state.preds),
                "training": man.get("metrics", {}),
                "windows": state.windows(task),
            }
        )
    return {
        "model": name,
        "since": since,
        "until": until,
        "window_seconds": window,
        "feedback": capture.feedback,
        "unmatched_feedback": capture.unmatched,
        "versions": versions,
    }


def labelled_records(
    store: Store, name: str, since: float | None, until: float | None = None
) -> Iterator[dict[str, Any]]:
    """Captured records of ``name`` (status 200) that have a label (in ``label``), oldest first; the
    records of one hour at a time are built, the others let go (retraining on feedback reads inputs)."""
    labels, _ = latest_labels(store, name, since, None if until is None else until + FEEDBACK_LAG)
    for records in iter_captures(store, name, since, until, ok_only=True):
        for r in records:
            label = labels.get((r["request_id"], int(r.get("row", 0))))
            if label is not None:
                r["label"] = label
                yield r


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
    import numpy as np

    now = time.time() if now is None else now
    labels: list[Any] = []
    preds: list[Any] = []
    last_version = None
    for cols in LabelledCapture(store, name, now - window_seconds, now).hours():
        has = np.fromiter((x is not None for x in cols["label"]), dtype=bool, count=len(cols["label"]))
        if has.any():
            labels.extend(cols["label"][has].tolist())
            preds.extend(cols["prediction"][has].tolist())
            last_version = int(cols["version"][has][-1])
    task = model_task(store, name, last_version) if labels else model_task(store, name)
    if len(labels) < min_labels or task is None:
        return None, len(labels), task
    return compute(task, labels, preds), len(labels), task
