"""A published model version, opened from the store: read-only, every file checked when it is read.

`open_version` resolves a reference (``wine``, ``wine@3``, ``wine@prod``) and returns a `ModelVersion`.
Each file it hands out is checked against the sha256 in ``manifest.json`` first; the fitted model is
rebuilt only through `safety.load_skops` (the allowlist), the ONNX graph only after `safety.check_onnx`.
Every part that uses a version (serving, the gate, drift, retraining, A/B analysis, export) opens it here.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any

from mlopsctl.bundle import keys
from mlopsctl.bundle.ref import ModelRef
from mlopsctl.bundle.signature import Signature
from mlopsctl.errors import NotFound, UnsafeModel
from mlopsctl.registry import versions as registry_versions
from mlopsctl.store.base import Store

RUNTIMES = ("auto", "onnx", "sklearn")


class ModelVersion:
    """One immutable version of a model: its manifest, signature and files, and the model they hold."""

    def __init__(
        self, store: Store, name: str, number: int, manifest: Mapping[str, Any], *, trusted_types: Iterable[str] = ()
    ) -> None:
        self.store, self.name, self.number = store, name, number
        self.manifest: Mapping[str, Any] = manifest
        self.trusted_types = tuple(trusted_types)
        self._files: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"ModelVersion({self.name}@{self.number}, task={self.task}, runtime={self.runtime})"

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.name, version=self.number)

    def path(self, fname: str) -> str:
        return f"models/{self.name}/versions/{self.number}/{fname}"

    # -- files ------------------------------------------------------------------------------------------
    def has(self, fname: str) -> bool:
        return fname in self.manifest.get("files", {})

    def file(self, fname: str) -> bytes:
        """One file's bytes, checked against the manifest (IntegrityError names a file that differs)."""
        if fname not in self._files:
            got = registry_versions.read_files(self.store, self.name, self.number, [fname])
            if fname not in got:
                raise NotFound("file", self.path(fname), f"{self.name} v{self.number} has no {fname}")
            self._files[fname] = got[fname]
        return self._files[fname]

    def verify(self) -> list[str]:
        """Check every file in the manifest; returns their names."""
        got = registry_versions.read_files(self.store, self.name, self.number)
        self._files.update(got)
        return list(got)

    def json(self, fname: str, default: Any = None) -> Any:
        return json.loads(self.file(fname)) if self.has(fname) else default

    def frame(self, fname: str) -> Any:
        import pandas as pd

        return pd.read_parquet(io.BytesIO(self.file(fname)))

    # -- what it is -------------------------------------------------------------------------------------
    @cached_property
    def signature(self) -> Signature:
        return Signature.from_json(self.file(keys.SIGNATURE), path=self.path(keys.SIGNATURE))

    @property
    def task(self) -> str:
        return self.signature.task

    @property
    def classes(self) -> list[Any] | None:
        return None if self.signature.classes is None else list(self.signature.classes)

    @property
    def metrics(self) -> dict[str, Any]:
        """The holdout metrics recorded at publish."""
        return dict(self.manifest.get("metrics") or {})

    @property
    def primary_metric(self) -> str:
        return str(self.manifest.get("primary_metric") or "")

    @property
    def runtime(self) -> str:
        """How the version is served by default: ``onnx`` where the export passed its check, else ``sklearn``."""
        return "onnx" if self.has(keys.MODEL_ONNX) else "sklearn"

    @property
    def data_sha256(self) -> str | None:
        return self.manifest.get("data_sha256")

    @property
    def run_id(self) -> str | None:
        return self.manifest.get("run_id")

    # -- the model --------------------------------------------------------------------------------------
    def estimator(self) -> Any:
        """The fitted model, rebuilt from ``model.skops`` through the allowlist (never a pickle)."""
        from mlopsctl.bundle.safety import load_skops

        return load_skops(
            self.file(keys.MODEL_SKOPS), name=self.path(keys.MODEL_SKOPS), trusted_types=self.trusted_types
        )

    def runner(self, runtime: str = "auto") -> Any:
        """A runner for the hot path: the ONNX graph (``auto`` where the bundle has one, or ``onnx``) or the
        fitted model (``sklearn``)."""
        from mlopsctl.bundle.runners import OnnxRunner, SklearnRunner

        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r}")
        sig = self.signature
        inputs = sig.input_dicts()
        if runtime in ("auto", "onnx") and self.has(keys.MODEL_ONNX):
            return OnnxRunner(
                self.file(keys.MODEL_ONNX), inputs, sig.task, self.classes, name=self.path(keys.MODEL_ONNX)
            )
        if runtime == "onnx":
            reason = (self.json(keys.EXPORT, {}) or {}).get("reason")
            raise NotFound("ONNX export", f"{self.name}@{self.number}", reason or "the bundle has none")
        return SklearnRunner(self.estimator(), inputs, sig.task, self.classes)

    def check_loads(self) -> dict[str, Any]:
        """Everything a server would do to serve it, short of serving: every file checked, the fitted model
        rebuilt and, where there is one, the ONNX graph opened. Raises IntegrityError or UnsafeModel."""
        from mlopsctl.bundle.runners import OnnxRunner

        checked = self.verify()
        self.estimator()
        if self.has(keys.MODEL_ONNX):
            sig = self.signature
            OnnxRunner(
                self.file(keys.MODEL_ONNX), sig.input_dicts(), sig.task, self.classes, name=self.path(keys.MODEL_ONNX)
            )
        return {"files": checked, "runtime": self.runtime}

    # -- data it carries ----------------------------------------------------------------------------------
    def holdout(self) -> Any | None:
        """The rows it was evaluated on at publish (features and target), or None."""
        return self.frame(keys.HOLDOUT) if self.has(keys.HOLDOUT) else None

    def score(self, rows: Any, *, model: Any = None) -> dict[str, float | None] | None:
        """The task's metrics on ``rows`` (a frame with its input columns and its target); None when the rows
        lack a column it needs."""
        from mlopsctl.bundle.scoring import evaluate

        sig = self.signature
        needed = [*sig.names, sig.target]
        if any(c not in rows.columns for c in needed):
            return None
        return evaluate(model if model is not None else self.estimator(), sig.task, rows[sig.names], rows[sig.target])


def open_version(
    store: Store,
    ref: ModelRef | str,
    *,
    trusted_types: Iterable[str] = (),
) -> ModelVersion:
    """The version ``ref`` names (``wine``, ``wine@3``, ``wine@prod`` or a ModelRef), from its manifest."""
    r = ref if isinstance(ref, ModelRef) else ModelRef.parse(ref)
    number = registry_versions.resolve_ref(store, r)
    manifest = registry_versions.manifest(store, r.name, number)
    return ModelVersion(store, r.name, number, manifest, trusted_types=trusted_types)


def version_at(store: Store, name: str, number: int, *, trusted_types: Iterable[str] = ()) -> ModelVersion:
    """Version ``number`` of ``name``."""
    return open_version(store, ModelRef(name, version=number), trusted_types=trusted_types)


def signature_differences(store: Store, name: str, candidate: int, control: int) -> list[str]:
    """How version ``candidate``'s inputs differ from version ``control``'s (`Signature.differences`): what
    promotion, an A/B start and a shadow refuse without --force, since requests the control answers would
    fail on the candidate."""
    if candidate == control:
        return []
    cand, cur = version_at(store, name, candidate).signature, version_at(store, name, control).signature
    return cand.differences(cur, name=f"v{candidate}", control_name=f"v{control}")


__all__ = ["RUNTIMES", "ModelVersion", "UnsafeModel", "open_version", "signature_differences", "version_at"]
