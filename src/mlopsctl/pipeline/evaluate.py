"""The new run and production, scored on the same fresh holdout.

The new run's holdout was split from the new data; production may have trained on some of
those rows (the old data is usually part of the new), which would flatter it. So both are
scored on the holdout rows production never trained on: rows of its training snapshot
minus its own holdout, matched by content (features and target). When fewer than
``min_rows`` rows are fresh, the whole holdout is used and the method says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mlopsctl.store.base import Store


def row_hashes(df: Any, columns: list[str]) -> Any:
    """A hash per row over ``columns``, the same for equal values whatever the dtype (3 and 3.0)."""
    import pandas as pd

    norm = pd.DataFrame(index=df.index)
    for c in columns:
        col = df[c]
        norm[c] = col.astype("float64") if pd.api.types.is_numeric_dtype(col) else col.astype(str)
    return pd.util.hash_pandas_object(norm, index=False)


def fresh_holdout_scores(
    store: Store,
    model: str,
    run_id: str,
    production: int | None,
    *,
    min_rows: int = 30,
    trusted_types: Iterable[str] = (),
) -> dict[str, Any]:
    """``candidate_score``, ``current_score``, ``method``, ``holdout_rows``, ``fresh_rows``."""
    from mlopsctl.bundle import keys
    from mlopsctl.bundle.scoring import evaluate
    from mlopsctl.bundle.signature import Signature
    from mlopsctl.bundle.version import version_at
    from mlopsctl.data.snapshot import load_snapshot
    from mlopsctl.training.runs import get_run, run_frame, run_model

    trusted = tuple(trusted_types)
    run = get_run(store, run_id)
    sig, metric = Signature.from_dict(run["signature"]), run["primary_metric"]
    names, target, task = sig.names, sig.target, sig.task
    holdout = run_frame(store, run, keys.HOLDOUT)
    candidate = run_model(store, run, trusted_types=trusted)

    def score(fitted: Any, rows: Any, inputs: list[str]) -> float:
        value = evaluate(fitted, task, rows[inputs], rows[target]).get(metric)
        return float("nan") if value is None else float(value)

    if production is None:
        return {
            "candidate_score": score(candidate, holdout, names),
            "current_score": None,
            "method": "the new run's holdout (nothing in production yet)",
            "holdout_rows": len(holdout),
            "fresh_rows": len(holdout),
        }
    prod = version_at(store, model, production, trusted_types=trusted)
    prod_names = prod.signature.names
    if prod.signature.target != target or any(n not in holdout.columns for n in prod_names):
        recorded = prod.metrics.get(metric)
        return {
            "candidate_score": float(run["metrics"]["holdout"][metric]),
            "current_score": None if recorded is None else float(recorded),
            "method": f"each model's recorded holdout {metric} (v{production} takes other inputs)",
            "holdout_rows": len(holdout),
            "fresh_rows": 0,
        }
    current = prod.estimator()
    columns = [*prod_names, target]
    sha = prod.data_sha256
    trained = set()
    if sha:
        prod_data, _ = load_snapshot(store, sha, verify=False)
        if all(c in prod_data.columns for c in columns):
            prod_hold = prod.holdout()
            if prod_hold is None:
                prod_hold = prod_data.iloc[:0]
            held_out = set(row_hashes(prod_hold, columns)) if all(c in prod_hold for c in columns) else set()
            trained = set(row_hashes(prod_data, columns)) - held_out
    fresh = holdout[~row_hashes(holdout, columns).isin(trained).to_numpy()]
    if len(fresh) >= min_rows:
        rows = fresh
        method = f"both scored on the {len(fresh)} rows of the new holdout that v{production} never trained on"
    else:
        rows = holdout
        method = (
            f"both scored on the new holdout ({len(holdout)} rows); only {len(fresh)} were unseen by "
            f"v{production}, fewer than {min_rows}, so v{production} may be favoured"
        )
    new, old = score(candidate, rows, names), score(current, rows, prod_names)
    return {
        "candidate_score": new,
        "current_score": old,
        "method": method,
        "holdout_rows": len(holdout),
        "fresh_rows": len(fresh),
        "summary": f"{metric}: new model {new:.4f} vs v{production} {old:.4f} ({method})",
    }
