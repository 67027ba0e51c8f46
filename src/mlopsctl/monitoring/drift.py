"""Drift: do the inputs a model sees now look like the data it was trained on?

``detect`` compares current inputs (a DataFrame: captured predictions or a file) with a version's
reference: ``reference.parquet`` (a sample of up to 5,000 training rows with the model's prediction in
``__prediction__``) and ``baseline.json``. Each feature is tested by the kind its signature gives
(``kinds``: KS for numbers, chi-square for categories, lengths and vocabulary for text); so is the
prediction, which is reported apart and not counted in the dataset verdict.

Feature p-values are adjusted for the number of features (``correction``: none, bonferroni, holm or
fdr_bh); a feature drifts when its adjusted p-value is below ``p_value``, a text feature also when its
out-of-vocabulary rate rises. The dataset drifts when the share of drifted features is at least
``share``. A report is a plain JSON document, saved under ``drift/{model}/``. This module is for the CLI
and jobs; the server never imports it (pandas and scipy are imported inside functions).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from mlopsctl.bundle.task import is_regression
from mlopsctl.errors import Conflict, DataError
from mlopsctl.monitoring.captured import PREDICTION
from mlopsctl.monitoring.kinds import (
    OOV_RISE,
    FeatureDrift,
    categorical_drift,
    judge,
    numeric_drift,
    text_drift,
)
from mlopsctl.monitoring.twosample import CORRECTIONS, adjust
from mlopsctl.store.base import Store, dumps


@dataclass(frozen=True)
class DriftSettings:
    """What counts as drift: ``[monitoring.drift]`` in mlops.toml."""

    p_value: float = 0.05
    psi_threshold: float = 0.2
    share: float = 0.3
    correction: str = "none"
    min_rows: int = 30

    def __post_init__(self) -> None:
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction {self.correction!r}: expected one of {', '.join(CORRECTIONS)}")
        if not 0 < self.p_value < 1:
            raise ValueError(f"p_value {self.p_value}: expected a number between 0 and 1")
        if not 0 < self.share <= 1:
            raise ValueError(f"share {self.share}: expected a number above 0 and at most 1")
        if not self.psi_threshold > 0 or self.min_rows < 1:
            raise ValueError("psi_threshold must be above 0 and min_rows at least 1")

    @classmethod
    def from_section(cls, section: Any | None) -> DriftSettings:
        """From a config ``DriftSection`` (or None for the defaults)."""
        if section is None:
            return cls()
        return cls(
            p_value=section.p_value,
            psi_threshold=section.psi_threshold,
            share=section.share,
            correction=section.correction,
            min_rows=section.min_rows,
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "oov_rise": OOV_RISE}


@dataclass
class Reference:
    """What a version was trained on: its input signature, baseline and reference sample."""

    features: list[dict[str, Any]]  # the signature's inputs: name, kind, …
    frame: Any  # DataFrame: the reference sample, with PREDICTION when known
    task: str = "classification"
    baseline: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    version: int | None = None


@dataclass
class DriftReport:
    model: str
    version: int | None
    alias: str | None
    created_at: str
    source: dict[str, Any]  # {"kind": "file", "path": …} or {"kind": "captured", "since": …, "records": …}
    reference_rows: int
    current_rows: int
    settings: dict[str, Any]
    dataset_drift: bool
    drifted_share: float
    n_features: int
    n_drifted: int
    drifted_features: list[str]
    features: list[FeatureDrift]
    prediction: FeatureDrift | None
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("features", "prediction")}
        out["features"] = [f.to_dict() for f in self.features]
        out["prediction"] = self.prediction.to_dict() if self.prediction else None
        return _json_safe(out)


def _json_safe(obj: Any) -> Any:
    """The same document with NaN and ±inf as null (JSON has neither) and numpy scalars as Python ones."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# -- loading the reference ---------------------------------------------------------------------


def load_reference(store: Store, name: str, version: int) -> Reference:
    """A version's reference from the registry (each file checked against the manifest's sha256)."""
    from mlopsctl.bundle import keys
    from mlopsctl.bundle.version import version_at

    mv = version_at(store, name, version)
    if not mv.has(keys.REFERENCE):
        raise DataError(f"{name}@{version}", f"the bundle has no {keys.REFERENCE}: republish it")
    baseline = mv.json(keys.BASELINE, {}) or {}
    return Reference(mv.signature.input_dicts(), mv.frame(keys.REFERENCE), mv.task, baseline, name, version)


# -- checking the current data -----------------------------------------------------------------


def _numbers(col: Any) -> tuple[Any, list[str]]:
    """A float64 array (NaN for missing) and the values that are not numbers (a few, as text)."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(col.dtype):
        return col.to_numpy(dtype=np.float64), []
    if pd.api.types.is_numeric_dtype(col.dtype):
        return col.to_numpy(dtype=np.float64, na_value=np.nan), []
    num = pd.to_numeric(col, errors="coerce")
    bad = num.isna() & col.notna()
    if bool(bad.any()):
        return None, [str(v) for v in pd.unique(col[bad])[:3]]
    return num.to_numpy(dtype=np.float64, na_value=np.nan), []


def check_current(reference: Reference, current: Any, settings: DriftSettings, source: str) -> dict[str, Any]:
    """The current values per feature (numeric ones as float arrays), or a DataError naming the columns."""
    names = [f["name"] for f in reference.features]
    absent = [n for n in names if n not in current.columns]
    if absent:
        listed = ", ".join(repr(n) for n in absent)
        raise DataError(
            source,
            f"missing column{'s' if len(absent) > 1 else ''} {listed} (the model's inputs: {', '.join(names)})",
        )
    out: dict[str, Any] = {}
    bad: list[tuple[str, list[str]]] = []
    for f in reference.features:
        col = current[f["name"]]
        if f["kind"] == "numeric":
            values, wrong = _numbers(col)
            if wrong:
                bad.append((f["name"], wrong))
            out[f["name"]] = values
        else:
            out[f["name"]] = col
    if len(bad) == 1:
        name, values = bad[0]
        raise DataError(source, f"values that are not numbers: {', '.join(map(repr, values))}", column=name)
    if bad:
        what = "; ".join(f"{n!r}: {', '.join(map(repr, vals))}" for n, vals in bad)
        raise DataError(source, f"numeric columns with values that are not numbers: {what}")
    if len(current) < settings.min_rows:
        raise DataError(
            source,
            f"{len(current)} row{'s' if len(current) != 1 else ''}: a drift test needs at least {settings.min_rows} "
            "(monitoring.drift.min_rows)",
        )
    return out


# -- the report --------------------------------------------------------------------------------


def _one(f: dict[str, Any], ref_col: Any, cur_col: Any, reference: Reference) -> FeatureDrift | None:
    name, kind = f["name"], f["kind"]
    known = reference.baseline.get("features", {}).get(name, {})
    if kind == "numeric":
        return numeric_drift(name, ref_col.to_numpy(dtype=np.float64, na_value=np.nan), cur_col)
    if kind == "categorical":
        categories = {str(c) for c in f.get("categories") or []} | set(known.get("frequencies", {}))
        return categorical_drift(name, ref_col, cur_col, categories)
    return text_drift(name, ref_col, cur_col, known.get("vocabulary"))


def _prediction(reference: Reference, current: Any, settings: DriftSettings) -> FeatureDrift | None:
    if PREDICTION not in reference.frame.columns or PREDICTION not in current.columns:
        return None
    ref_col, cur_col = reference.frame[PREDICTION], current[PREDICTION]
    if is_regression(reference.task):
        cur_values, wrong = _numbers(cur_col)
        if wrong:
            return None
        result = numeric_drift(PREDICTION, ref_col.to_numpy(dtype=np.float64), cur_values, "prediction")
    else:
        result = categorical_drift(PREDICTION, ref_col, cur_col, None, "prediction")
    if result is not None:
        result.details["prediction_kind"] = "numeric" if is_regression(reference.task) else "categorical"
        judge(result, settings.p_value, settings.psi_threshold)
    return result


def order(r: FeatureDrift) -> tuple[bool, float, float, str]:
    """Drifted first, then by severity; p-values that underflow tie, so PSI breaks ties, then the name."""
    return (not r.drifted, -r.severity, -(r.psi or 0.0), r.name)


def detect(
    reference: Reference,
    current: Any,
    settings: DriftSettings | None = None,
    *,
    source: dict[str, Any] | None = None,
    alias: str | None = None,
) -> DriftReport:
    """Test every feature of ``current`` (a DataFrame) against ``reference``; the report, sorted by severity.

    Raises DataError when a feature column is missing, a numeric one holds non-numbers, or there are
    fewer than ``settings.min_rows`` rows. Other columns (the target, capture metadata) are ignored.
    """
    started = time.perf_counter()
    settings = settings or DriftSettings()
    source = source or {"kind": "dataframe"}
    where = str(source.get("path") or source.get("description") or "current data")
    columns = check_current(reference, current, settings, where)
    results: list[FeatureDrift] = []
    notes: list[str] = []
    for f in reference.features:
        if f["name"] not in reference.frame.columns:
            notes.append(f"{f['name']}: not in the reference sample; not tested")
            continue
        r = _one(f, reference.frame[f["name"]], columns[f["name"]], reference)
        if r is None:
            notes.append(f"{f['name']}: no values in the reference sample; not tested")
            continue
        results.append(r)
    tested = [(r, r.p_value) for r in results if r.p_value is not None]
    adjusted = adjust([p for _, p in tested], settings.correction)
    for (r, _), p in zip(tested, adjusted, strict=True):
        r.p_value_adjusted = p
    for r in results:
        judge(r, settings.p_value, settings.psi_threshold)
    results.sort(key=order)
    prediction = _prediction(reference, current, settings)
    if prediction is None:
        notes.append("prediction drift: the current data has no predictions (column __prediction__)")
    drifted = [r.name for r in results if r.drifted]
    share = len(drifted) / len(results) if results else 0.0
    return DriftReport(
        model=reference.name,
        version=reference.version,
        alias=alias,
        created_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        source=source,
        reference_rows=len(reference.frame),
        current_rows=len(current),
        settings=settings.to_dict(),
        dataset_drift=bool(results) and share >= settings.share,
        drifted_share=share,
        n_features=len(results),
        n_drifted=len(drifted),
        drifted_features=drifted,
        features=results,
        prediction=prediction,
        notes=notes,
        elapsed_s=round(time.perf_counter() - started, 4),
    )


# -- saved reports -----------------------------------------------------------------------------


def _prefix(name: str) -> str:
    from mlopsctl.registry.versions import check_name

    return f"drift/{check_name(name)}/"


def save_report(store: Store, name: str, report: DriftReport | dict[str, Any]) -> str:
    """Keep a report as ``drift/{name}/{UTC time}.json`` and as ``drift/{name}/latest.json``; its key."""
    doc = report.to_dict() if isinstance(report, DriftReport) else report
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S.%fZ")
    data = dumps(doc)
    key = f"{_prefix(name)}{stamp}.json"
    for n in range(100):
        try:
            store.put_if_absent(key, data)
            break
        except Conflict:
            key = f"{_prefix(name)}{stamp}-{n + 1}.json"
    store.put(f"{_prefix(name)}latest.json", data)
    return key


def latest_report(store: Store, name: str) -> dict[str, Any] | None:
    """The last report saved for model ``name``, or None."""
    doc = store.get_json_or(f"{_prefix(name)}latest.json")
    return dict(doc) if doc is not None else None


def report_keys(store: Store, name: str) -> list[str]:
    """The keys of every saved report of model ``name``, oldest first."""
    return [k for k in store.list(_prefix(name)) if not k.endswith("/latest.json")]


__all__ = [
    "PREDICTION",
    "DriftReport",
    "DriftSettings",
    "FeatureDrift",
    "Reference",
    "check_current",
    "detect",
    "latest_report",
    "load_reference",
    "report_keys",
    "save_report",
]
