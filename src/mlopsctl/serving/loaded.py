"""A model version made ready to serve: verified, its runtime built, warmed up.

Serving uses the ONNX export when the bundle has one (it passed the parity check at
publish time) and falls back to the scikit-learn pipeline otherwise; only that fallback
imports scikit-learn. Everything here runs off the request path (start-up or reload).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from mlopsctl import registry
from mlopsctl.errors import NotFound
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
    trusted: bool = False,
    version: int | None = None,
) -> LoadedModel:
    """Resolve ``ref`` (alias, version or latest), verify the bundle's files and build the runner."""
    from mlopsctl.serving.runtime import OnnxRunner

    v = version if version is not None else registry.resolve(store, name, ref)
    man = registry.manifest(store, name, v)
    have = set(man["files"])
    use_onnx = runtime in ("auto", "onnx") and "model.onnx" in have
    if runtime == "onnx" and not use_onnx:
        reason = json.loads(registry.read_files(store, name, v, ["export.json"])["export.json"]).get("reason")
        raise NotFound("ONNX export", f"{name}@{v}", reason or "the bundle has none")
    files = registry.read_files(store, name, v)  # every file is checked, not only the ones served
    sig = json.loads(files["signature.json"])
    task, classes = sig["task"], sig.get("classes")
    if use_onnx:
        runner: Any = OnnxRunner(files["model.onnx"], sig["inputs"], task, classes)
    else:
        from mlopsctl.serving.runtime import SklearnRunner
        from mlopsctl.training.bundle import load_skops

        runner = SklearnRunner(load_skops(files["model.skops"], trusted=trusted), sig["inputs"], task, classes)
    edges: list[float] = []
    if task == "regression":
        baseline = json.loads(files["baseline.json"])
        q = baseline.get("predictions", {}).get("quantiles", {})
        edges = sorted({round(float(x), 6) for x in q.values() if x is not None})
    alias = None if (ref is None or isinstance(ref, int) or str(ref).isdigit() or ref == "latest") else str(ref)
    model = LoadedModel(
        name=name,
        version=v,
        alias=alias,
        signature=sig,
        spec=InputSpec(sig),
        runner=runner,
        runtime=runner.runtime_name,
        task=task,
        classes=classes,
        manifest=man,
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
