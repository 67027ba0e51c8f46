"""The bundle writer: turn a stored run into the files of a model version.

A bundle holds the fitted pipeline (skops), the ONNX export where it converts and passes
the parity check on the holdout, the input signature, the drift baseline, metrics, the
run's lineage and the holdout itself (so the gate can score other versions on it).
``manifest.json`` with every file's sha256 is written by the registry.
"""

from __future__ import annotations

import io
import json
from typing import Any

from mlopsctl.errors import IntegrityError
from mlopsctl.store.base import Store, dumps

# Types a skops file may contain without the store being marked trusted: scikit-learn's own
# estimators and the numpy/scipy containers they hold. Anything else needs `trusted = true`.
SAFE_PREFIXES = ("sklearn.", "numpy.", "scipy.sparse.", "builtins.", "collections.")


def load_skops(data: bytes, *, trusted: bool = False, name: str = "model.skops") -> Any:
    import skops.io as sio

    untrusted = sio.get_untrusted_types(data=data)
    unsafe = [t for t in untrusted if not t.startswith(SAFE_PREFIXES)]
    if unsafe and not trusted:
        raise IntegrityError(name, "only scikit-learn types", f"untrusted types {', '.join(unsafe[:5])}")
    return sio.loads(data, trusted=untrusted)


def _frame(data: bytes) -> Any:
    import pandas as pd

    return pd.read_parquet(io.BytesIO(data))


def build_bundle(
    store: Store, run: dict[str, Any], *, trusted: bool = False
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The files of a version for ``run`` and a summary (runtime, export check)."""
    from mlopsctl.training.export import export_onnx

    prefix = f"runs/{run['run_id']}/"
    model_bytes = store.get(prefix + "model.skops")
    holdout_bytes = store.get(prefix + "holdout.parquet")
    pipeline = load_skops(model_bytes, trusted=trusted)
    sig = run["signature"]
    holdout = _frame(holdout_bytes)
    X_hold = holdout[[f["name"] for f in sig["inputs"]]]
    export = export_onnx(pipeline, sig["inputs"], run["task"], X_hold)
    files: dict[str, bytes] = {
        "model.skops": model_bytes,
        "signature.json": dumps(sig),
        "metrics.json": dumps({"primary_metric": run["primary_metric"], **run["metrics"]}),
        "baseline.json": store.get(prefix + "baseline.json"),
        "reference.parquet": store.get(prefix + "reference.parquet"),
        "holdout.parquet": holdout_bytes,
        "run.json": dumps(run),
        "export.json": dumps(export.to_dict()),
    }
    if export.ok and export.onnx is not None:
        files["model.onnx"] = export.onnx
    summary = {
        "run_id": run["run_id"],
        "task": run["task"],
        "family": run["model"],
        "primary_metric": run["primary_metric"],
        "metrics": run["metrics"]["holdout"],
        "data_sha256": run["data"]["sha256"],
        "git_commit": run["git"].get("commit"),
        "runtime": "onnx" if "model.onnx" in files else "sklearn",
        "export": export.to_dict(),
    }
    return files, summary


def score_on_holdout(
    files: dict[str, bytes], holdout_bytes: bytes, metric: str, *, trusted: bool = False
) -> float | None:
    """The primary ``metric`` of a bundle's model on another bundle's holdout (None if it cannot apply)."""
    from mlopsctl.training.evaluate import evaluate

    sig = json.loads(files["signature.json"])
    holdout = _frame(holdout_bytes)
    names = [f["name"] for f in sig["inputs"]]
    if sig["target"] not in holdout.columns or any(n not in holdout.columns for n in names):
        return None
    pipeline = load_skops(files["model.skops"], trusted=trusted)
    value = evaluate(pipeline, sig["task"], holdout[names], holdout[sig["target"]]).get(metric)
    return None if value is None else float(value)
