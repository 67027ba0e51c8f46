"""The drift test of each feature kind, all returning one result shape (``FeatureDrift``).

- numeric: two-sample Kolmogorov–Smirnov (the verdict), PSI on the reference's deciles and the
  Wasserstein-1 distance (reported), from one sort of each column (see ``twosample``);
- categorical: chi-square on the 2×k table of category counts (the verdict) and PSI; a category the
  reference sample never had is a column of its own in the table, and is named as unseen when the
  signature and the baseline do not know it either;
- text: KS on the character lengths, and the out-of-vocabulary (OOV) rate of the current tokens against
  the baseline vocabulary, beside the rate expected for new text from the training distribution: the
  reference's own OOV rate plus the Good–Turing estimate of the chance that a token is a word never seen
  (the share of reference tokens whose word occurs once). Drifted when the length KS says so, or when
  the OOV rate is more than ``OOV_RISE`` above that expectation.

Each result carries the data for a chart (reference and current shares over the same bins). The verdict
and severity are set by ``judge`` once p-values are adjusted for the number of features.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mlopsctl.monitoring.twosample import Sorted, chi_square, compare_numeric, finite_or_none, psi, shares

OOV_RISE = 0.05  # text drifts when its OOV rate is this much (absolute) above the expected rate
CHART_BINS = 30  # histogram bars in a numeric chart (at most this many distinct values: a bar per value)
CHART_CATEGORIES = 20  # bars in a categorical chart; the rest are summed into "(other)"
ALL_MISSING_SEVERITY = 100.0  # a feature with no values at all in the current data sorts first
TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # the baseline's tokenizer (scikit-learn's default)


@dataclass
class FeatureDrift:
    """One feature's test. Every kind fills the same fields."""

    name: str
    kind: str  # numeric | categorical | text | prediction
    test: str  # ks | chi2 | length_ks+oov | all_missing
    statistic: float | None  # KS D, the chi-square statistic, or 1.0 (all missing)
    p_value: float | None
    p_value_adjusted: float | None  # after the correction for many features; the verdict reads this
    threshold: float  # drift when p_value_adjusted < threshold
    drifted: bool
    severity: float  # how far past its thresholds (1 = at one); results are sorted by it
    psi: float | None
    psi_threshold: float
    psi_drifted: bool
    distance: float | None  # Wasserstein-1 (numeric; text: of the lengths)
    n_reference: int  # values tested (missing ones left out)
    n_current: int
    missing_reference: float  # share of rows without a value
    missing_current: float
    details: dict[str, Any] = field(default_factory=dict)
    chart: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for k in ("statistic", "p_value", "p_value_adjusted", "psi", "distance"):
            out[k] = finite_or_none(out[k])
        return out


def _result(name: str, kind: str, test: str, **fields: Any) -> FeatureDrift:
    base: dict[str, Any] = dict(
        threshold=0.0, drifted=False, severity=0.0, psi=None, psi_threshold=0.0, psi_drifted=False, distance=None
    )
    return FeatureDrift(name=name, kind=kind, test=test, **{**base, **fields})


def all_missing(name: str, kind: str, n_ref: int, missing_ref: float, n_rows: int) -> FeatureDrift:
    """The result for a feature the reference has values of and the current data has none of."""
    return _result(
        name,
        kind,
        "all_missing",
        statistic=1.0,
        p_value=None,
        p_value_adjusted=None,
        drifted=True,
        severity=ALL_MISSING_SEVERITY,
        n_reference=n_ref,
        n_current=0,
        missing_reference=missing_ref,
        missing_current=1.0,
        details={"note": f"no values in the {n_rows} current rows"},
    )


def judge(r: FeatureDrift, p_value: float, psi_threshold: float) -> None:
    """Set the verdict and severity from the (adjusted) p-value, the PSI and, for text, the OOV rise."""
    r.threshold, r.psi_threshold = p_value, psi_threshold
    if r.test == "all_missing":
        return
    p = r.p_value_adjusted
    r.drifted = p is not None and p < p_value
    oov_rise = float(r.details.get("oov_rise", 0.0))
    if r.kind == "text":
        r.drifted = r.drifted or oov_rise > OOV_RISE
    r.psi_drifted = r.psi is not None and r.psi > psi_threshold
    parts = [0.0, max(oov_rise, 0.0) / OOV_RISE if r.kind == "text" else 0.0]
    if p is not None:
        parts.append(math.log(max(p, 1e-300)) / math.log(p_value))  # 1 at the threshold, 0 at p = 1
    if r.psi is not None:
        parts.append(r.psi / psi_threshold)
    r.severity = round(max(parts), 4)


# -- numeric ------------------------------------------------------------------------------------


def _label(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.4g}"


def numeric_chart(ref: Sorted, cur: Sorted, distinct: Any | None) -> dict[str, Any]:
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


def numeric_drift(name: str, ref_values: Any, cur_values: Any, kind: str = "numeric") -> FeatureDrift | None:
    """KS, PSI and Wasserstein of two numeric columns (NaN and ±inf are missing). None: no reference values."""
    ref, cur = Sorted.of(ref_values), Sorted.of(cur_values)
    n_ref, n_cur = ref.n + ref.missing, cur.n + cur.missing
    if ref.n == 0:
        return None
    if cur.n == 0:
        return all_missing(name, kind, ref.n, ref.missing / n_ref, n_cur)
    c = compare_numeric(ref, cur, keep_distinct=CHART_BINS)
    std = float(np.std(ref.values))
    return _result(
        name,
        kind,
        "ks",
        statistic=c.statistic,
        p_value=c.p_value,
        p_value_adjusted=c.p_value,
        psi=c.psi,
        distance=c.wasserstein,
        n_reference=ref.n,
        n_current=cur.n,
        missing_reference=ref.missing / n_ref,
        missing_current=cur.missing / n_cur,
        details={
            "ks_method": c.method,
            "mean_reference": float(np.mean(ref.values)),
            "mean_current": float(np.mean(cur.values)),
            "std_reference": std,
            "std_current": float(np.std(cur.values)),
            "distance_std": c.wasserstein / std if std > 0 else None,  # in reference standard deviations
            "psi_bins": {"edges": c.psi_edges, "reference": c.psi_reference, "current": c.psi_current},
        },
        chart=numeric_chart(ref, cur, c.distinct),
    )


# -- categorical --------------------------------------------------------------------------------


def category_counts(values: Any) -> tuple[dict[str, int], int]:
    """Counts per category key (3, 3.0 and "3" are one category; booleans are true/false) and the missing."""
    import pandas as pd

    from mlopsctl.data.schema import category_key

    s = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    raw = s.value_counts(dropna=True)  # count first, then name: one category_key call per distinct value
    counts: dict[str, int] = {}
    for k, n in zip(raw.index.tolist(), raw.tolist(), strict=True):
        key = category_key(k)
        counts[key] = counts.get(key, 0) + int(n)
    return counts, int(len(s) - sum(counts.values()))


def categorical_drift(
    name: str, ref_col: Any, cur_col: Any, known: set[str] | None = None, kind: str = "categorical"
) -> FeatureDrift | None:
    """Chi-square and PSI over the categories of both columns. None: no reference values."""
    ref_counts, ref_missing = category_counts(ref_col)
    cur_counts, cur_missing = category_counts(cur_col)
    n_ref, n_cur = sum(ref_counts.values()), sum(cur_counts.values())
    if n_ref == 0:
        return None
    if n_cur == 0:
        return all_missing(name, kind, n_ref, ref_missing / (n_ref + ref_missing), cur_missing)
    cats = sorted(ref_counts, key=lambda k: (-ref_counts[k], k))
    extra = sorted((k for k in cur_counts if k not in ref_counts), key=lambda k: (-cur_counts[k], k))
    cats += extra
    r = np.array([ref_counts.get(k, 0) for k in cats])
    c = np.array([cur_counts.get(k, 0) for k in cats])
    stat, p, dof = chi_square(r, c)
    rs, cs = shares(r), shares(c)
    unseen = [k for k in extra if k not in (known or set())]
    shown = sorted(sorted(range(len(cats)), key=lambda i: -max(rs[i], cs[i]))[:CHART_CATEGORIES])
    labels = [cats[i] for i in shown]
    ref_sh, cur_sh = [float(rs[i]) for i in shown], [float(cs[i]) for i in shown]
    if len(cats) > len(shown):
        labels.append("(other)")
        ref_sh.append(max(0.0, 1 - sum(ref_sh)))
        cur_sh.append(max(0.0, 1 - sum(cur_sh)))
    chart = {"type": "bars", "labels": labels, "reference": ref_sh, "current": cur_sh}
    return _result(
        name,
        kind,
        "chi2",
        statistic=stat,
        p_value=p,
        p_value_adjusted=p,
        psi=psi(rs, cs),
        n_reference=n_ref,
        n_current=n_cur,
        missing_reference=ref_missing / (n_ref + ref_missing),
        missing_current=cur_missing / (n_cur + cur_missing),
        details={
            "dof": dof,
            "categories": len(cats),
            "unseen": unseen,
            "unseen_share": sum(cur_counts[k] for k in unseen) / n_cur,
            "absent_in_current": [k for k in cats if k not in cur_counts][:CHART_CATEGORIES],
        },
        chart=chart,
    )


# -- text ---------------------------------------------------------------------------------------


def _tokens(texts: Any) -> list[str]:
    return [t for row in texts.str.lower().str.findall(TOKEN_PATTERN) for t in row]


def oov_rates(ref_tokens: list[str], cur_tokens: list[str], vocabulary: set[str]) -> tuple[float, float]:
    """(expected, current) out-of-vocabulary rates; expected = the reference's own rate + Good–Turing."""
    freq: dict[str, int] = {}
    for t in ref_tokens:
        freq[t] = freq.get(t, 0) + 1
    n_ref = max(len(ref_tokens), 1)
    seen_oov = sum(1 for t in ref_tokens if t not in vocabulary) / n_ref
    unseen_mass = sum(1 for k in freq.values() if k == 1) / n_ref  # P(the next token is a new word)
    current = sum(1 for t in cur_tokens if t not in vocabulary) / max(len(cur_tokens), 1)
    return min(seen_oov + unseen_mass, 1.0), current


def text_drift(name: str, ref_col: Any, cur_col: Any, vocabulary: list[str] | None) -> FeatureDrift | None:
    """KS (and PSI, Wasserstein) on character lengths and the OOV rate. None: no reference texts."""
    import pandas as pd

    ref_s = pd.Series(ref_col, dtype=object).dropna().astype(str)
    cur_s = pd.Series(cur_col, dtype=object).dropna().astype(str)
    if ref_s.empty:
        return None
    if cur_s.empty:
        return all_missing(name, "text", len(ref_s), 1 - len(ref_s) / len(ref_col), len(cur_col))
    lengths = numeric_drift(
        name, ref_s.str.len().to_numpy(dtype=np.float64), cur_s.str.len().to_numpy(dtype=np.float64), "text"
    )
    assert lengths is not None
    ref_tokens, cur_tokens = _tokens(ref_s), _tokens(cur_s)
    if vocabulary is None:  # a baseline without one: the reference's own words
        vocabulary = [str(w) for w in pd.Series(ref_tokens, dtype=object).value_counts().index[:5000]]
    expected, oov = oov_rates(ref_tokens, cur_tokens, set(vocabulary))
    lengths.test = "length_ks+oov"
    lengths.missing_reference = 1 - len(ref_s) / len(ref_col)
    lengths.missing_current = 1 - len(cur_s) / len(cur_col)
    lengths.chart["unit"] = "characters"
    lengths.details.update(
        oov_expected=expected,
        oov_current=oov,
        oov_rise=oov - expected,
        oov_threshold=OOV_RISE,
        vocabulary_size=len(vocabulary),
        tokens_current=len(cur_tokens),
    )
    return lengths
