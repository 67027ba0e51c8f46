"""The drift baseline of a model version: what its training features and predictions looked like.

Stored in every bundle as ``baseline.json`` (summary statistics and histograms) beside
``reference.parquet`` (a bounded sample of training rows with the model's predictions),
so later drift tests can compare live inputs against both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlopsctl.bundle.task import is_regression

SAMPLE_ROWS = 5000
BINS = 20


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


def build_baseline(X: Any, features: list[dict[str, Any]], predictions: Any, task: str) -> dict[str, Any]:
    """Statistics of the training features ``X`` (a DataFrame) and of the model's predictions on it."""
    feats: dict[str, Any] = {}
    for f in features:
        col = X[f["name"]]
        if f["kind"] == "numeric":
            feats[f["name"]] = {
                "kind": "numeric",
                **numeric_summary(col.to_numpy(dtype=float, na_value=np.nan)),
            }
        elif f["kind"] == "categorical":
            feats[f["name"]] = {"kind": "categorical", **categorical_summary(col)}
        else:
            feats[f["name"]] = {"kind": "text", **text_summary(col)}
    preds = (
        {"kind": "numeric", **numeric_summary(predictions)}
        if is_regression(task)
        else {"kind": "categorical", **categorical_summary(list(map(str, predictions)))}
    )
    return {"n_rows": len(X), "features": feats, "predictions": preds}


def reference_sample(X: Any, predictions: Any, seed: int, rows: int = SAMPLE_ROWS) -> Any:
    """A bounded random sample of training rows with the prediction column ``__prediction__``."""
    ref = X.copy()
    ref["__prediction__"] = list(predictions)
    if len(ref) > rows:
        ref = ref.sample(n=rows, random_state=seed)
    return ref.reset_index(drop=True)
