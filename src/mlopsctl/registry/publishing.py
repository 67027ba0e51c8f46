"""Publish: a stored run becomes an immutable model version. The one workflow every caller uses.

`mlopsctl publish`, the Python API (`mlopsctl.publish`), `mlopsctl import`, the retraining
pipeline and ``POST /retrain`` all call `publish_run`. It reads the run's files (each checked
against ``run.json``), rebuilds the model through the allowlist, exports it to ONNX and checks the
graph against the model on the holdout (`bundle.export`), and writes the version's files with a
manifest of their sha256 (`registry.versions.publish`). A run published twice, or by two
processes at once, keeps one version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mlopsctl.bundle import keys
from mlopsctl.bundle.signature import Signature
from mlopsctl.registry import versions
from mlopsctl.store.base import Store, dumps


@dataclass(frozen=True)
class Published:
    """What a publish did: the version, whether it is new, and how it will be served."""

    model: str
    version: int
    created: bool
    run_id: str
    runtime: str
    export: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "created": self.created, **self.summary}

    def describe(self) -> str:
        """One line for people: what was written and how it will be served."""
        ex = self.export
        if self.runtime == "onnx":
            check = (
                f"ONNX export checked on {ex.get('n_rows_checked')} holdout rows (largest difference "
                f"{float(ex.get('max_abs_diff') or 0.0):.2e}): served with onnxruntime"
            )
        else:
            check = f"no ONNX export ({ex.get('reason') or 'not converted'}): served with scikit-learn"
        state = "published" if self.created else "already published as"
        return f"{state} {self.model} v{self.version} from run {self.run_id}; {check}"


def bundle_files(
    store: Store, run: dict[str, Any], *, trusted_types: Iterable[str] = ()
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The files of a version for ``run``, and the manifest's summary of it (runtime, export check, lineage)."""
    from mlopsctl.bundle.export import export_onnx
    from mlopsctl.training.runs import read_run_file, run_frame, run_model

    model = run_model(store, run, trusted_types=trusted_types)
    sig = Signature.from_dict(run["signature"])
    holdout = run_frame(store, run, keys.HOLDOUT)
    export = export_onnx(model, sig.input_dicts(), sig.task, holdout[sig.names])
    files: dict[str, bytes] = {
        keys.MODEL_SKOPS: read_run_file(store, run, keys.MODEL_SKOPS),
        keys.SIGNATURE: sig.to_json(),
        keys.METRICS: dumps({"primary_metric": run["primary_metric"], **run["metrics"]}),
        keys.BASELINE: read_run_file(store, run, keys.BASELINE),
        keys.REFERENCE: read_run_file(store, run, keys.REFERENCE),
        keys.HOLDOUT: read_run_file(store, run, keys.HOLDOUT),
        keys.RUN: dumps(run),
        keys.EXPORT: dumps(export.to_dict()),
    }
    if export.ok and export.onnx is not None:
        files[keys.MODEL_ONNX] = export.onnx
    summary = {
        "run_id": run["run_id"],
        "task": sig.task,
        "family": run["model"],
        "flavor": run.get("flavor", "sklearn"),
        "primary_metric": run["primary_metric"],
        "metrics": run["metrics"]["holdout"],
        "data_sha256": run["data"]["sha256"],
        "git_commit": (run.get("git") or {}).get("commit"),
        "runtime": "onnx" if keys.MODEL_ONNX in files else "sklearn",
        "export": export.to_dict(),
    }
    return files, summary


def publish_run(
    store: Store, run: dict[str, Any], *, name: str | None = None, trusted_types: Iterable[str] = ()
) -> Published:
    """Publish ``run`` as the next version of ``name`` (default: the run's model name); a run already
    published returns its version without exporting again."""
    model_name = versions.check_name(name or run["model_name"])
    done, claim = versions.claim_run(store, model_name, run["run_id"])
    if done is not None:
        summary = _summary(versions.manifest(store, model_name, done))
        return Published(model_name, done, False, run["run_id"], summary["runtime"], summary["export"], summary)
    assert claim is not None
    try:
        files, summary = bundle_files(store, run, trusted_types=trusted_types)
    except BaseException:
        versions.release_run_claim(store, model_name, run["run_id"], claim)
        raise
    version, created = versions.publish(store, model_name, files, summary, run_claim=claim)
    return Published(model_name, version, created, run["run_id"], summary["runtime"], summary["export"], summary)


def _summary(man: dict[str, Any]) -> dict[str, Any]:
    skip = {"name", "version", "created_at", "created_by", "files"}
    return {k: v for k, v in man.items() if k not in skip}
