"""Drift: do the inputs a model sees now look like the data it was trained on?

``detect`` compares current inputs (a DataFrame: captured predictions or a file) with a version's
reference: the *sketches* in ``baseline.json``, made at publish from every training row (``sketch``: each
numeric column's CDF within 0.001, every category's count, the text vocabulary and its expected
out-of-vocabulary rate, the missing values), and for the prediction, a sketch of the model's predictions
on rows it did not learn from (its holdout). A version published before sketches existed has only
``reference.parquet`` (a sample of up to 5,000 training rows with in-sample predictions): its sketches
are made from that sample, and the report says so.

Each feature runs the checks of its kind (``checks``: KS, chi-square over pooled categories, the text
length and vocabulary, a missing-value test), each with a p-value and an effect size. The p-values of
every check of the report are adjusted together (``correction``, Holm by default); a check drifts when its
adjusted p-value is below ``p_value`` and its effect is at least ``effect``, so a large sample does not
flag negligible shifts and a report on data from the training distribution flags nothing (at most
``p_value`` of such reports flag anything). The dataset drifts when the share of drifted features is at
least ``share``. The prediction is judged apart and not counted in the dataset verdict. A report is a
plain JSON document, saved under ``drift/{model}/``. The server never imports this module.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import numpy as np

from mlopsctl.bundle.task import is_regression
from mlopsctl.errors import Conflict, DataError
from mlopsctl.monitoring.captured import PREDICTION
from mlopsctl.monitoring.checks import OOV_RISE, FeatureDrift, Measured, judge, measure
from mlopsctl.monitoring.sketch import Sketch, sketch_from_dict, sketch_of
from mlopsctl.monitoring.twosample import CORRECTIONS, adjust
from mlopsctl.store.base import Store, dumps

WORKERS = 4  # threads testing features at once, at most


@dataclass(frozen=True)
class DriftSettings:
    """What counts as drift: ``[monitoring.drift]`` in mlops.toml."""

    p_value: float = 0.05
    psi_threshold: float = 0.2
    share: float = 0.3
    correction: str = "holm"
    min_rows: int = 30
    effect: float = 0.1  # a check drifts only with an effect this large (a share of rows: KS D, total variation)

    def __post_init__(self) -> None:
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction {self.correction!r}: expected one of {', '.join(CORRECTIONS)}")
        if not 0 < self.p_value < 1:
            raise ValueError(f"p_value {self.p_value}: expected a number between 0 and 1")
        if not 0 < self.share <= 1:
            raise ValueError(f"share {self.share}: expected a number above 0 and at most 1")
        if not self.psi_threshold > 0 or self.min_rows < 1:
            raise ValueError("psi_threshold must be above 0 and min_rows at least 1")
        if not 0 <= self.effect < 1:
            raise ValueError(f"effect {self.effect}: expected a number from 0 up to (not including) 1")

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
            effect=getattr(section, "effect", cls.effect),
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "oov_rise": OOV_RISE}


@dataclass
class Reference:
    """What a version was trained on: its input signature and baseline (with the sketches drift reads).

    ``frame`` is the reference sample of a version published before sketches (or any frame to compare
    with): features without a sketch in the baseline are sketched from it.
    """

    features: list[dict[str, Any]]  # the signature's inputs: name, kind, …
    frame: Any  # DataFrame or None: a reference sample, with PREDICTION when known
    task: str = "classification"
    baseline: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    version: int | None = None

    @cached_property
    def sketches(self) -> dict[str, Sketch]:
        """A sketch per feature that has reference values (from the baseline, else from the frame)."""
        known = self.baseline.get("features", {})
        out: dict[str, Sketch] = {}
        for f in self.features:
            stored = (known.get(f["name"]) or {}).get("sketch")
            if stored is not None:
                out[f["name"]] = sketch_from_dict(stored)
            elif self.frame is not None and f["name"] in self.frame.columns:
                out[f["name"]] = sketch_of(f["kind"], self.frame[f["name"]])
        return out

    @cached_property
    def prediction(self) -> tuple[Sketch | None, str]:
        """The predictions' sketch and where they come from (``holdout``, or ``training`` when in-sample)."""
        stored = self.baseline.get("predictions") or {}
        if stored.get("sketch") is not None:
            return sketch_from_dict(stored["sketch"]), str(stored.get("source") or "training")
        if self.frame is not None and PREDICTION in self.frame.columns:
            kind = "numeric" if is_regression(self.task) else "categorical"
            return sketch_of(kind, self.frame[PREDICTION]), "training"
        return None, ""

    @property
    def rows(self) -> int:
        """The reference's rows: the training rows the sketches summarise (or the frame's)."""
        stored = self.baseline.get("n_rows")
        if any("sketch" in (v or {}) for v in self.baseline.get("features", {}).values()) and stored:
            return int(stored)
        return len(self.frame) if self.frame is not None else int(stored or 0)


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
    baseline = mv.json(keys.BASELINE, {}) or {}
    if baseline.get("format", 1) >= 2:  # sketches of every training row: the sample is not needed
        return Reference(mv.signature.input_dicts(), None, mv.task, baseline, name, version)
    if not mv.has(keys.REFERENCE):
        raise DataError(f"{name}@{version}", f"the bundle has no {keys.REFERENCE}: republish it")
    return Reference(mv.signature.input_dicts(), mv.frame(keys.REFERENCE), mv.task, baseline, name, version)


# -- checking the current data -----------------------------------------------------------------


def _numbers(col: Any) -> tuple[Any, list[str]]:
    """An array of numbers (NaN for missing) and the values that are not numbers (a few, as text).

    A column of a numpy number type comes as it is (float32 stays float32, usually a view of the frame):
    no float64 copy of every column at once; the checks convert one column at a time.
    """
    import pandas as pd

    if isinstance(col.dtype, np.dtype) and col.dtype.kind in "fiu":
        return col.to_numpy(), []
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
    """The current values per feature (numeric ones as arrays of numbers), or a DataError naming the columns."""
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


def _measure(f: dict[str, Any], values: Any, reference: Reference, settings: DriftSettings) -> Measured | None:
    sketch = reference.sketches.get(f["name"])
    if sketch is None:
        return None
    known = None
    if f["kind"] == "categorical":
        stored = reference.baseline.get("features", {}).get(f["name"], {})
        known = {str(c) for c in f.get("categories") or []} | set(stored.get("frequencies", {}))
    return measure(f["name"], f["kind"], sketch, values, settings.effect, known)


def _judge_all(measured: list[Measured], settings: DriftSettings) -> list[FeatureDrift]:
    """Adjust the p-values of every check of ``measured`` as one family, then judge each feature."""
    family = [c.p_value for m in measured for c in m.checks if c.test != "all_missing"]
    adjusted = iter(adjust(family, settings.correction))
    out = []
    for m in measured:
        ps = [0.0 if c.test == "all_missing" else next(adjusted) for c in m.checks]
        out.append(judge(m, ps, settings.p_value, settings.psi_threshold))
    return out


def _prediction(reference: Reference, current: Any, settings: DriftSettings) -> tuple[FeatureDrift | None, str]:
    sketch, source = reference.prediction
    if sketch is None or PREDICTION not in current.columns:
        return None, source
    cur_col = current[PREDICTION]
    if is_regression(reference.task):
        values, wrong = _numbers(cur_col)
        if wrong:
            return None, source
    else:
        values = cur_col
    m = measure(PREDICTION, "prediction", sketch, values, settings.effect)
    if m is None:
        return None, source
    kind = "numeric" if is_regression(reference.task) else "categorical"
    m = replace(m, details={**m.details, "prediction_kind": kind, "reference": source})
    return _judge_all([m], settings)[0], source


def order(r: FeatureDrift) -> tuple[bool, float, float, str]:
    """Drifted first, then by severity (effect over its threshold), then PSI, then the name."""
    return (not r.drifted, -r.severity, -(r.psi or 0.0), r.name)


def _tested(
    f: dict[str, Any], m: Measured | None, sketched: dict[str, Sketch], measured: list[Measured], notes: list[str]
) -> None:
    if f["name"] not in sketched:
        notes.append(f"{f['name']}: not in the reference; not tested")
    elif m is None:
        notes.append(f"{f['name']}: no values in the reference; not tested")
    else:
        measured.append(m)


def detect(
    reference: Reference,
    current: Any,
    settings: DriftSettings | None = None,
    *,
    source: dict[str, Any] | None = None,
    alias: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> DriftReport:
    """Test every feature of ``current`` (a DataFrame) against ``reference``; the report, sorted by severity.

    Raises DataError when a feature column is missing, a numeric one holds non-numbers, or there are
    fewer than ``settings.min_rows`` rows. Other columns (the target, capture metadata) are ignored.
    Features are tested one at a time per worker thread (a column's sorted copy is its only large
    allocation; numpy's sorts and searches run without the GIL), ``workers`` of them (default: the CPUs,
    at most ``WORKERS``); the report is the same whatever their number. ``progress``, when given, is
    called after each feature with (features done, features in all).
    """
    started = time.perf_counter()
    settings = settings or DriftSettings()
    source = source or {"kind": "dataframe"}
    where = str(source.get("path") or source.get("description") or "current data")
    columns = check_current(reference, current, settings, where)
    measured: list[Measured] = []
    notes: list[str] = []
    total = len(reference.features)
    sketched = reference.sketches  # made (or read) once, before the threads

    def one(f: dict[str, Any]) -> Measured | None:
        return _measure(f, columns.pop(f["name"]), reference, settings) if f["name"] in sketched else None

    n_workers = min(workers or os.cpu_count() or 1, WORKERS) if total >= 8 else 1
    pool = ThreadPoolExecutor(n_workers, thread_name_prefix="drift") if n_workers > 1 else None
    try:
        outcomes = pool.map(one, reference.features) if pool is not None else map(one, reference.features)
        for done, (f, m) in enumerate(zip(reference.features, outcomes, strict=True), 1):
            _tested(f, m, sketched, measured, notes)
            if progress is not None:
                progress(done, total)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    results = sorted(_judge_all(measured, settings), key=order)
    prediction, pred_source = _prediction(reference, current, settings)
    if prediction is None:
        notes.append("prediction drift: the current data has no predictions (column __prediction__)")
    elif pred_source != "holdout":
        notes.append(
            "prediction drift: the reference predictions are the model's on its own training rows (a version "
            "published before holdout predictions were kept), which unseen rows do not match: republish to fix"
        )
    if reference.frame is not None and not any(
        "sketch" in (v or {}) for v in reference.baseline.get("features", {}).values()
    ):
        notes.append(
            f"the reference is a sample of {len(reference.frame):,} training rows: republish to test against all"
        )
    drifted = [r.name for r in results if r.drifted]
    share = len(drifted) / len(results) if results else 0.0
    return DriftReport(
        model=reference.name,
        version=reference.version,
        alias=alias,
        created_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        source=source,
        reference_rows=reference.rows,
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
