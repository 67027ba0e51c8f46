"""The drift baseline of a model version: what its training features and predictions looked like.

Stored in every bundle as ``baseline.json``: per feature, summary statistics (count, missing, quantiles, a
histogram, the top categories) and the *sketch* drift tests read (``sketch``: made from every training
row, bounded in size, with its error stated); and the same for the model's predictions on rows it was not
fitted on (its holdout), so that unseen rows from the training distribution do not show prediction drift.
``format`` 2 marks a baseline with sketches; ``reference.parquet`` (a bounded sample of training rows with
the model's predictions) is still written beside it, for people and for older readers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlopsctl.bundle.task import is_regression

SAMPLE_ROWS = 5000
BINS = 20
FORMAT = 2  # baseline.json with sketches


def _num(x: Any) -> float | None:
    v = float(x)
    return None if not np.isfinite(v) else v


def numeric_summary(values: Any) -> dict[str, Any]:
    arr = np.asarray(values, dtype=float)
    finite = arr[np.isfinite(arr)]
    out: dict[str, Any] = {"count": int(arr.size), "missing": int(arr.size - finite.size)}
    if finite.size:
        qs = np.quantile(finite, [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
        counts, edges = np.histogram(finite, bins=BINS)
        out.update(
            mean=_num(finite.mean()),
            std=_num(finite.std()),
            min=_num(finite.min()),
            max=_num(finite.max()),
            quantiles=dict(zip(["p1", "p5", "p25", "p50", "p75", "p95", "p99"], map(_num, qs), strict=True)),
            histogram={"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
        )
    return out


def categorical_summary(values: Any, top: int = 50) -> dict[str, Any]:
    import pandas as pd

    s = pd.Series(values, dtype="object")
    counts = s.dropna().astype(str).value_counts()
    return {
        "count": len(s),
        "missing": int(s.isna().sum()),
        "distinct": int(counts.size),
        "frequencies": {str(k): int(v) for k, v in counts.head(top).items()},
    }


def text_summary(values: Any) -> dict[str, Any]:
    import pandas as pd

    s = pd.Series(values, dtype="object").dropna().astype(str)
    tokens = s.str.lower().str.findall(r"(?u)\b\w\w+\b")
    vocab = pd.Series([t for row in tokens for t in row], dtype="object").value_counts()
    return {
        "count": len(values),
        "missing": int(len(values) - len(s)),
        "length": numeric_summary(s.str.len().to_numpy()),
        "tokens": numeric_summary(tokens.map(len).to_numpy()),
        "vocabulary": [str(w) for w in vocab.index[:5000]],
    }


def build_baseline(
    X: Any, features: list[dict[str, Any]], predictions: Any, task: str, *, prediction_source: str = "training"
) -> dict[str, Any]:
    """Statistics and sketches of the training features ``X`` (a DataFrame: every training row) and of the
    model's ``predictions``; ``prediction_source`` says which rows those are (``holdout``: rows the model
    was not fitted on, the right reference for prediction drift; ``training``: in-sample)."""
    from mlopsctl.monitoring.sketch import sketch_of

    feats: dict[str, Any] = {}
    for f in features:
        col = X[f["name"]]
        if f["kind"] == "numeric":
            summary = {"kind": "numeric", **numeric_summary(col.to_numpy(dtype=float, na_value=np.nan))}
        elif f["kind"] == "categorical":
            summary = {"kind": "categorical", **categorical_summary(col)}
        else:
            summary = {"kind": "text", **text_summary(col)}
        feats[f["name"]] = {**summary, "sketch": sketch_of(f["kind"], col).to_dict()}
    regression = is_regression(task)
    values = np.asarray(predictions, dtype=float) if regression else list(map(str, predictions))
    preds = (
        {"kind": "numeric", **numeric_summary(values)}
        if regression
        else {"kind": "categorical", **categorical_summary(values)}
    )
    preds["sketch"] = sketch_of("numeric" if regression else "categorical", values).to_dict()
    preds["source"] = prediction_source
    preds["rows"] = len(values)
    return {"format": FORMAT, "n_rows": len(X), "features": feats, "predictions": preds}


def reference_sample(X: Any, predictions: Any, seed: int, rows: int = SAMPLE_ROWS) -> Any:
    """A bounded random sample of training rows with the prediction column ``__prediction__``."""
    ref = X.copy()
    ref["__prediction__"] = list(predictions)
    if len(ref) > rows:
        ref = ref.sample(n=rows, random_state=seed)
    return ref.reset_index(drop=True)
