"""The drift tests of one feature against its reference sketch, and the verdict they add up to.

Each feature kind runs one or more tests (``Check``), each with a p-value and an effect size:

| test | kind | effect size |
| --- | --- | --- |
| ``ks`` | numeric, prediction (regression) | KS D: the largest gap between the two CDFs, a share of rows |
| ``chi2`` | categorical, prediction (classes) | total variation over the pooled categories, a share of rows |
| ``missing`` | any, when either side has missing values | current − reference share of missing values |
| ``length_ks`` | text | KS D of the character lengths |
| ``oov`` | text | out-of-vocabulary rate minus the rate expected of new training-like text |

A check *drifts* when its p-value, adjusted for every check of the report (``drift.detect``: Holm by
default), is below ``p_value`` **and** its effect is at least its threshold (``effect``, 0.1, for shares of
rows; ``OOV_RISE``, 0.05, for the OOV rate). A feature drifts when one of its checks does. ``measure`` runs
the checks (no verdict); ``judge`` turns them and their adjusted p-values into the report's
``FeatureDrift`` record. Everything here is a pure function returning frozen records.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from mlopsctl.monitoring.sketch import (
    CategoricalSketch,
    NumericSketch,
    Sketch,
    TextSketch,
    category_counts,
    texts,
    tokens_per_row,
)
from mlopsctl.monitoring.twosample import (
    Sorted,
    compare_to_sketch,
    finite_or_none,
    missing_test,
    pooled_chi_square,
    psi,
    ratio_rise,
    shares,
    total_variation,
)

OOV_RISE = 0.05  # text: the OOV rate must rise at least this much (absolute) above the expected rate
CHART_BINS = 30  # histogram bars in a numeric chart (at most this many distinct values: a bar per value)
CHART_CATEGORIES = 20  # bars in a categorical chart; the rest are summed into "(other)"
ALL_MISSING_SEVERITY = 100.0  # a feature with no values at all in the current data sorts first


@dataclass(frozen=True)
class Check:
    """One test of one feature: its statistic, p-value and effect size, and once judged, its verdict."""

    test: str
    statistic: float
    p_value: float
    effect: float
    effect_threshold: float
    p_value_adjusted: float | None = None
    drifted: bool = False

    @property
    def large(self) -> bool:
        """The effect is at least its threshold (a rise for ``oov``; either direction otherwise)."""
        size = self.effect if self.test == "oov" else abs(self.effect)
        return size >= self.effect_threshold

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for k in ("statistic", "p_value", "effect", "p_value_adjusted"):
            out[k] = finite_or_none(out[k])
        return out


@dataclass(frozen=True)
class Measured:
    """One feature's checks before the verdict (``checks[0]`` is its main test)."""

    name: str
    kind: str  # numeric | categorical | text | prediction
    test: str  # the report's name for the test: ks | chi2 | length_ks+oov | all_missing
    checks: tuple[Check, ...]
    psi: float | None
    distance: float | None
    n_reference: int
    n_current: int
    missing_reference: float
    missing_current: float
    details: dict[str, Any] = field(default_factory=dict)
    chart: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's result in the report. Every kind fills the same fields."""

    name: str
    kind: str  # numeric | categorical | text | prediction
    test: str  # ks | chi2 | length_ks+oov | all_missing
    statistic: float | None  # the main test's: KS D, the chi-square statistic, or 1.0 (all missing)
    p_value: float | None  # the main test's
    p_value_adjusted: float | None  # after the correction for every check of the report
    threshold: float  # p_value: a check drifts when its adjusted p-value is below this …
    drifted: bool
    severity: float  # … and its effect is at least its threshold; severity = the largest effect / threshold
    psi: float | None
    psi_threshold: float
    psi_drifted: bool  # PSI above its threshold: a warning, not the verdict
    distance: float | None  # Wasserstein-1 (numeric; text: of the lengths)
    n_reference: int  # values tested (missing ones left out)
    n_current: int
    missing_reference: float  # share of rows without a value
    missing_current: float
    effect: float | None = None  # the main test's effect size
    effect_threshold: float = 0.0
    tests: tuple[Check, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    chart: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "tests"}
        for k in ("statistic", "p_value", "p_value_adjusted", "psi", "distance", "effect"):
            out[k] = finite_or_none(out[k])
        out["tests"] = [c.to_dict() for c in self.tests]
        return out


# -- the missing values ------------------------------------------------------------------------------


def _missing_check(ref_missing: int, ref_rows: int, cur_missing: int, cur_rows: int, effect: float) -> Check | None:
    if ref_missing == 0 and cur_missing == 0:
        return None
    stat, p, diff = missing_test(ref_missing, ref_rows, cur_missing, cur_rows)
    return Check("missing", stat, p, diff, effect)


def _all_missing(name: str, kind: str, n_ref: int, missing_ref: float, n_rows: int) -> Measured:
    return Measured(
        name,
        kind,
        "all_missing",
        (Check("all_missing", 1.0, 0.0, 1.0, 0.0),),
        None,
        None,
        n_ref,
        0,
        missing_ref,
        1.0,
        {"note": f"no values in the {n_rows} current rows"},
    )


# -- numbers -----------------------------------------------------------------------------------------


def _label(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.4g}"


def numeric_chart(ref: NumericSketch, cur: Sorted, distinct: Any | None) -> dict[str, Any]:
    """Shares over the same bins: a bar per value when there are few, else equal-width bins over the
    0.5–99.5 % range of both samples (the outer bins take the outliers)."""
    if distinct is not None and distinct.size <= CHART_BINS:
        between = (distinct[1:] + distinct[:-1]) / 2
        return {
            "type": "bars",
            "labels": [_label(v) for v in distinct],
            "reference": shares(ref.counts(between)).tolist(),
            "current": shares(cur.counts(between)).tolist(),
        }
    lo = float(min(ref.quantile(0.005), cur.quantile(0.005)))
    hi = float(max(ref.quantile(0.995), cur.quantile(0.995)))
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, CHART_BINS + 1)
    return {
        "type": "histogram",
        "edges": edges.tolist(),
        "reference": shares(ref.counts(edges[1:-1])).tolist(),
        "current": shares(cur.counts(edges[1:-1])).tolist(),
    }


def measure_numeric(
    name: str, ref: NumericSketch, values: Any, effect: float, kind: str = "numeric"
) -> Measured | None:
    """KS (with its D as the effect), PSI, Wasserstein and the missing values. None: no reference values."""
    cur = Sorted.of_f32(values)
    n_ref, n_cur = ref.n + ref.missing, cur.n + cur.missing
    if ref.n == 0:
        return None
    if cur.n == 0:
        return _all_missing(name, kind, ref.n, ref.missing / n_ref, n_cur)
    c = compare_to_sketch(ref, cur, keep_distinct=CHART_BINS)
    checks = [Check("ks", c.statistic, c.p_value, c.statistic, effect)]
    missing = _missing_check(ref.missing, n_ref, cur.missing, n_cur, effect)
    if missing is not None:
        checks.append(missing)
    std = ref.std
    return Measured(
        name,
        kind,
        "ks",
        tuple(checks),
        c.psi,
        c.wasserstein,
        ref.n,
        cur.n,
        ref.missing / n_ref,
        cur.missing / n_cur,
        {
            "ks_method": c.method,
            "sketch_error": c.sketch_error,
            "mean_reference": ref.mean,
            "mean_current": float(np.mean(cur.values)),
            "std_reference": std,
            "std_current": float(np.std(cur.values)),
            "distance_std": c.wasserstein / std if std > 0 else None,  # in reference standard deviations
            "psi_bins": {"edges": c.psi_edges, "reference": c.psi_reference, "current": c.psi_current},
        },
        numeric_chart(ref, cur, c.distinct),
    )


# -- categories --------------------------------------------------------------------------------------


def measure_categorical(
    name: str,
    ref: CategoricalSketch,
    values: Any,
    effect: float,
    known: set[str] | None = None,
    kind: str = "categorical",
) -> Measured | None:
    """Chi-square over the pooled categories (total variation as the effect), PSI and the missing values."""
    cur_counts, cur_missing = category_counts(values)
    n_ref, n_cur = ref.n, sum(cur_counts.values())
    if n_ref == 0:
        return None
    if n_cur == 0:
        return _all_missing(name, kind, n_ref, ref.missing / (n_ref + ref.missing), cur_missing)
    ref_counts = ref.counts
    cats = sorted(ref_counts, key=lambda k: (-ref_counts[k], k))
    extra = sorted((k for k in cur_counts if k not in ref_counts), key=lambda k: (-cur_counts[k], k))
    cats += extra
    r = np.array([ref_counts.get(k, 0) for k in cats])
    c = np.array([cur_counts.get(k, 0) for k in cats])
    t = pooled_chi_square(cats, r, c)
    tv = total_variation(t.reference, t.current)
    checks = [Check("chi2", t.statistic, t.p_value, tv, effect)]
    missing = _missing_check(ref.missing, n_ref + ref.missing, cur_missing, n_cur + cur_missing, effect)
    if missing is not None:
        checks.append(missing)
    rs, cs = shares(r), shares(c)
    unseen = [k for k in extra if k not in (known or set())]
    shown = sorted(sorted(range(len(cats)), key=lambda i: -max(rs[i], cs[i]))[:CHART_CATEGORIES])
    labels = [cats[i] for i in shown]
    ref_sh, cur_sh = [float(rs[i]) for i in shown], [float(cs[i]) for i in shown]
    if len(cats) > len(shown):
        labels.append("(other)")
        ref_sh.append(max(0.0, 1 - sum(ref_sh)))
        cur_sh.append(max(0.0, 1 - sum(cur_sh)))
    return Measured(
        name,
        kind,
        "chi2",
        tuple(checks),
        psi(rs, cs),
        None,
        n_ref,
        n_cur,
        ref.missing / (n_ref + ref.missing),
        cur_missing / (n_cur + cur_missing),
        {
            "dof": t.dof,
            "p_value_method": t.method,
            "categories": len(cats),
            "pooled": t.pooled[:CHART_CATEGORIES],
            "n_pooled": len(t.pooled),
            "unseen": unseen,
            "unseen_share": sum(cur_counts[k] for k in unseen) / n_cur,
            "absent_in_current": [k for k in cats if k not in cur_counts][:CHART_CATEGORIES],
        },
        {"type": "bars", "labels": labels, "reference": ref_sh, "current": cur_sh},
    )


# -- text --------------------------------------------------------------------------------------------


def measure_text(name: str, ref: TextSketch, values: Any, effect: float) -> Measured | None:
    """KS on the character lengths, the OOV rate against the expected rate, and the missing values."""
    kept, cur_missing = texts(values)
    n_rows = len(kept) + cur_missing
    if ref.n == 0:
        return None
    if kept.empty:
        return _all_missing(name, "text", ref.n, ref.missing / (ref.n + ref.missing), n_rows)
    lengths = measure_numeric(name, ref.lengths, kept.str.len().to_numpy(dtype=np.float64), effect, "text")
    assert lengths is not None
    vocab = set(ref.vocabulary)
    rows = tokens_per_row(kept)
    n_tokens = np.fromiter((len(r) for r in rows), np.float64, len(rows))
    n_oov = np.fromiter((sum(t not in vocab for t in r) for r in rows), np.float64, len(rows))
    rate, z, p = ratio_rise(n_oov, n_tokens, ref.expected_oov)
    ks = replace(lengths.checks[0], test="length_ks")
    checks = [ks, Check("oov", z, p, rate - ref.expected_oov, OOV_RISE)]
    missing = _missing_check(ref.missing, ref.n + ref.missing, cur_missing, n_rows, effect)
    if missing is not None:
        checks.append(missing)
    return replace(
        lengths,
        test="length_ks+oov",
        checks=tuple(checks),
        missing_reference=ref.missing / (ref.n + ref.missing),
        missing_current=cur_missing / n_rows,
        details={
            **lengths.details,
            "oov_expected": ref.expected_oov,
            "oov_current": rate,
            "oov_rise": rate - ref.expected_oov,
            "oov_threshold": OOV_RISE,
            "vocabulary_size": len(ref.vocabulary),
            "tokens_current": int(n_tokens.sum()),
        },
        chart={**lengths.chart, "unit": "characters"},
    )


def measure(
    name: str, kind: str, ref: Sketch, values: Any, effect: float, known: set[str] | None = None
) -> Measured | None:
    """The checks of one column of ``kind`` against its sketch. None: the reference has no values."""
    if isinstance(ref, NumericSketch):
        return measure_numeric(name, ref, values, effect, kind if kind == "prediction" else "numeric")
    if isinstance(ref, CategoricalSketch):
        return measure_categorical(name, ref, values, effect, known, kind if kind == "prediction" else "categorical")
    return measure_text(name, ref, values, effect)


# -- the verdict -------------------------------------------------------------------------------------


def judge(m: Measured, adjusted: list[float], p_value: float, psi_threshold: float) -> FeatureDrift:
    """The feature's verdict from its checks and their adjusted p-values (in the order of ``m.checks``)."""
    checks = tuple(
        replace(c, p_value_adjusted=a, drifted=c.test == "all_missing" or (a < p_value and c.large))
        for c, a in zip(m.checks, adjusted, strict=True)
    )
    main = checks[0]
    if m.test == "all_missing":
        severity = ALL_MISSING_SEVERITY
    else:
        severity = max(abs(c.effect) / c.effect_threshold if c.effect_threshold > 0 else abs(c.effect) for c in checks)
    psi_drifted = m.psi is not None and m.psi > psi_threshold
    return FeatureDrift(
        name=m.name,
        kind=m.kind,
        test=m.test,
        statistic=main.statistic,
        p_value=None if m.test == "all_missing" else main.p_value,
        p_value_adjusted=None if m.test == "all_missing" else main.p_value_adjusted,
        threshold=p_value,
        drifted=any(c.drifted for c in checks),
        severity=round(severity, 4) if math.isfinite(severity) else ALL_MISSING_SEVERITY,
        psi=m.psi,
        psi_threshold=psi_threshold,
        psi_drifted=psi_drifted,
        distance=m.distance,
        n_reference=m.n_reference,
        n_current=m.n_current,
        missing_reference=m.missing_reference,
        missing_current=m.missing_current,
        effect=main.effect,
        effect_threshold=main.effect_threshold,
        tests=checks,
        details=m.details,
        chart=m.chart,
    )
