"""A model version made ready to serve: verified, its runtime built, warmed up.

Serving uses the ONNX export when the bundle has one (it passed the parity check at
publish time) and falls back to the scikit-learn pipeline otherwise; only that fallback
imports scikit-learn. Everything here runs off the request path (start-up or reload).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mlopsctl.bundle import keys
from mlopsctl.bundle.ref import ModelRef
from mlopsctl.bundle.task import is_regression
from mlopsctl.serving.inputs import InputSpec
from mlopsctl.store.base import Store


@dataclass
class LoadedModel:
    name: str
    version: int
    alias: str | None
    signature: dict[str, Any]
    spec: InputSpec
    runner: Any
    runtime: str
    task: str
    classes: list[Any] | None
    manifest: dict[str, Any]
    loaded_at: float = field(default_factory=time.time)
    bucket_edges: list[float] = field(default_factory=list)
    class_keys: list[str] = field(default_factory=list)  # class labels as JSON keys

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "runtime": self.runtime,
            "task": self.task,
            "classes": self.classes,
            "run_id": self.manifest.get("run_id"),
            "metrics": self.manifest.get("metrics"),
            "inputs": self.signature["inputs"],
            "loaded_at": self.loaded_at,
        }


def load(
    store: Store,
    name: str,
    ref: str | int | None,
    *,
    runtime: str = "auto",
    trusted_types: Iterable[str] = (),
    version: int | None = None,
) -> LoadedModel:
    """Open the version ``ref`` names (alias, version or latest), every file checked, and build its runner."""
    from mlopsctl.bundle.version import open_version, version_at

    target = ModelRef.of(name, ref)
    mv = (
        version_at(store, name, version, trusted_types=trusted_types)
        if version is not None
        else open_version(store, target, trusted_types=trusted_types)
    )
    mv.verify()  # every file is checked, not only the ones served
    runner = mv.runner(runtime)
    sig = mv.signature
    task, classes = sig.task, mv.classes
    edges: list[float] = []
    if is_regression(task):
        baseline = mv.json(keys.BASELINE, {}) or {}
        q = baseline.get("predictions", {}).get("quantiles", {})
        edges = sorted({round(float(x), 6) for x in q.values() if x is not None})
    signature = sig.to_dict()
    model = LoadedModel(
        name=name,
        version=mv.number,
        alias=target.alias,
        signature=signature,
        spec=InputSpec(signature),
        runner=runner,
        runtime=runner.runtime_name,
        task=task,
        classes=classes,
        manifest=dict(mv.manifest),
        bucket_edges=edges,
        class_keys=[str(c) for c in classes or []],
    )
    _warm_up(model)
    return model


def _warm_up(model: LoadedModel) -> None:
    """One prediction before the model takes traffic, so the first request pays no lazy set-up."""
    row: dict[str, list[Any]] = {}
    for f in model.signature["inputs"]:
        if f["kind"] == "numeric":
            lo, hi = f.get("min"), f.get("max")
            row[f["name"]] = [float((lo + hi) / 2) if lo is not None and hi is not None else 0.0]
        else:
            row[f["name"]] = [(f.get("categories") or ["warm up"])[0]]
    model.runner.predict(row)
