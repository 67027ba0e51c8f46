"""Ground truth for captured predictions: validation and storage of feedback labels.

A label refers to a prediction by ``request_id`` (and ``row`` for a batch request,
default 0). The server's `POST /feedback` and `mlopsctl feedback FILE` both go through
``check_items``; a label is stored only when its prediction is known, and every unknown id
or bad label is reported back by its position, never dropped silently.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlopsctl.bundle.task import is_regression
from mlopsctl.monitoring.captured import encode_lines, feedback_key
from mlopsctl.store.base import Store

# (model, version, rows) of a known prediction, or None
Lookup = Callable[[str], tuple[str, int, int] | None]


@dataclass
class FeedbackResult:
    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {index, request_id, field, problem}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"accepted": len(self.accepted), "rejected": self.rejected}
        new = Counter(str(r["label"]) for r in self.accepted if r.get("new_class"))
        if new:
            out["new_classes"] = dict(sorted(new.items()))  # true labels the model cannot predict (yet)
        return out


MAX_REQUEST_ID = 128  # characters: the server keeps at most this much of an X-Request-Id
MAX_LABEL_CHARS = 256
MAX_EXACT_INT = 2**53  # beyond it a JSON number is not an exact integer (and not a class label anyone means)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _label_problem(label: Any, task: str, classes: list[Any] | None) -> tuple[Any, str | None]:
    """The label as stored (the class value itself), or a problem.

    A class the model never saw is accepted when it has its classes' type (white wine's quality 9
    for a red-wine model trained on 3–8: the truth, and what a retrained model should learn);
    one of another type ("excellent" among numbers) is refused as a likely mistake."""
    if label is None:
        return None, "a label is required"
    if isinstance(label, str) and len(label) > MAX_LABEL_CHARS:
        return None, f"a label of {len(label)} characters: at most {MAX_LABEL_CHARS}"
    if not isinstance(label, str | int | float) or isinstance(label, bool):
        return None, f"expected a class (a string or a number) or a value, got {type(label).__name__}"
    if is_regression(task):
        if isinstance(label, bool) or not isinstance(label, int | float) or not math.isfinite(label):
            return None, f"expected a finite number, got {label!r}"
        return float(label), None
    if classes:
        by_key = {str(c): c for c in classes}
        if str(label) in by_key:
            return by_key[str(label)], None
        numeric = all(_is_number(c) for c in classes)
        if numeric and _is_number(label):
            if abs(float(label)) >= MAX_EXACT_INT:
                return None, f"{label!r} is out of range for a class label (|label| < 2^53)"
            return (int(label) if float(label).is_integer() else label), None
        if not numeric and isinstance(label, str) and label:
            return label, None
        shown = ", ".join(map(str, classes[:20]))
        kind = "a number" if numeric else "a non-empty string"
        return None, f"{label!r} is not a class of this model and not {kind} like them (classes: {shown})"
    return label, None


def check_items(
    items: list[Any],
    lookup: Lookup,
    model_info: Callable[[str, int], tuple[str, list[Any] | None]],
    *,
    source: str,
) -> FeedbackResult:
    """Validate feedback items; ``model_info(name, version)`` gives (task, classes)."""
    out = FeedbackResult()
    now = time.time()
    for i, item in enumerate(items):

        def reject(field_name: str, problem: str, item: Any = item, i: int = i) -> None:
            rid = item.get("request_id") if isinstance(item, dict) else None
            out.rejected.append({"index": i, "request_id": rid, "field": field_name, "problem": problem})

        if not isinstance(item, dict):
            reject("body", 'expected an object {"request_id": ..., "label": ...}')
            continue
        extra = set(item) - {"request_id", "label", "row"}
        if extra:
            reject(sorted(extra)[0], 'unknown field: expected "request_id", "label" and optionally "row"')
            continue
        rid = item.get("request_id")
        if not isinstance(rid, str) or not rid or len(rid) > MAX_REQUEST_ID:
            reject("request_id", f"expected the request id of a prediction (1 to {MAX_REQUEST_ID} characters)")
            continue
        row = item.get("row", 0)
        if isinstance(row, float) and row.is_integer():
            row = int(row)  # 3.0 is the integer 3 in JSON
        if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < MAX_EXACT_INT:
            reject("row", f"expected a row index (an integer ≥ 0), got {row!r}")
            continue
        known = lookup(rid)
        if known is None:
            reject("request_id", f"unknown request id {rid!r}: no captured prediction has it")
            continue
        name, version, rows = known
        if row >= rows:
            reject("row", f"request {rid!r} had {rows} row(s): row {row} does not exist")
            continue
        task, classes = model_info(name, version)
        label, problem = _label_problem(item.get("label"), task, classes)
        if problem:
            reject("label", problem)
            continue
        out.accepted.append(
            {
                "request_id": rid,
                "row": row,
                "label": label,
                "time": now,
                "model": name,
                "version": version,
                "source": source,
                **({"new_class": True} if classes and str(label) not in {str(c) for c in classes} else {}),
            }
        )
    return out


def store_feedback(store: Store, records: list[dict[str, Any]], writer: str, seq: int) -> str | None:
    """Write accepted labels as one object; returns its key (None when there is nothing)."""
    if not records:
        return None
    key = feedback_key(records[0]["time"], writer, seq)
    store.put(key, encode_lines(records))
    return key
