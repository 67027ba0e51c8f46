"""A bounded hyper-parameter search: random trials under a trial and a time budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def tune(
    make: Callable[[dict[str, Any]], Any],
    space: dict[str, list[Any]],
    base_params: dict[str, Any],
    X: Any,
    y: Any,
    *,
    metric: str,
    cv: Any,
    trials: int,
    timeout_seconds: float,
    seed: int,
    on_trial: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Try up to ``trials`` parameter sets drawn from ``space`` (stopping once ``timeout_seconds`` is spent);
    ``make(params)`` builds each candidate.

    Returns the best parameters and every trial's mean CV score (higher is better: scikit-learn's
    scorer convention, so losses are negated).
    """
    from sklearn.model_selection import ParameterSampler, cross_val_score

    n_grid = 1
    for values in space.values():
        n_grid *= len(values)
    candidates = list(ParameterSampler(space, n_iter=min(trials, n_grid), random_state=seed)) if space else [{}]
    start = time.monotonic()
    results: list[dict[str, Any]] = []
    for i, cand in enumerate(candidates):
        if results and time.monotonic() - start > timeout_seconds:
            break
        params = {**base_params, **cand}
        pipe = make(params)
        t0 = time.monotonic()
        scores = cross_val_score(pipe, X, y, cv=cv, scoring=scorer_name(metric), n_jobs=1)
        results.append(
            {
                "params": cand,
                "score": float(scores.mean()),
                "std": float(scores.std()),
                "seconds": round(time.monotonic() - t0, 3),
            }
        )
        if on_trial:
            on_trial(i + 1, len(candidates))
    best = max(results, key=lambda r: r["score"])
    return {
        "best_params": {**base_params, **best["params"]},
        "best_score": best["score"],
        "trials": results,
        "budget": {"trials": trials, "timeout_seconds": timeout_seconds},
        "stopped_by": "time" if len(results) < len(candidates) else "trials",
        "seconds": round(time.monotonic() - start, 3),
    }


def scorer_name(metric: str) -> str:
    """The scikit-learn scorer for a primary metric (for CV and tuning)."""
    return {
        "accuracy": "accuracy",
        "f1_macro": "f1_macro",
        "roc_auc": "roc_auc_ovr",
        "log_loss": "neg_log_loss",
        "rmse": "neg_root_mean_squared_error",
        "mae": "neg_mean_absolute_error",
        "r2": "r2",
    }[metric]
