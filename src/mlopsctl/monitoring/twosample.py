"""Two-sample statistics for drift: KS, Wasserstein, PSI, chi-square, and multiple-testing corrections.

Numeric samples are sorted once (``Sorted``) and every statistic reads the sorted arrays:

- the two empirical CDFs are evaluated once, at the distinct values of both samples (a linear merge
  of the two sorted arrays), which gives the Kolmogorov–Smirnov statistic (their largest gap) and the
  Wasserstein-1 distance (the area between them) in one pass;
- PSI bins are cut at the reference's deciles and counted with ``np.searchsorted`` too.

The KS p-value is computed the way ``scipy.stats.ks_2samp(method="auto")`` computes it, so the two
agree to the last bit: when both samples have at most 10,000 values scipy's exact distribution is used
(by calling ``ks_2samp`` on those small samples); otherwise Smirnov's asymptotic distribution,
``kstwo.sf(D, round(n·m / (n + m)))`` with the larger sample first, as scipy does. Chi-square is scipy's
``chi2_contingency`` on the 2×k table of category counts (with its Yates correction when k = 2).

scipy is imported inside the functions that need it, never at module level.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

KS_EXACT_MAX_N = 10_000  # scipy's MAX_AUTO_N: ks_2samp(method="auto") is exact up to this size
PSI_BINS = 10  # PSI bins: the reference's deciles
PSI_EPSILON = 1e-4  # a bin share below this (an empty bin) counts as this, so log(0) never happens
CORRECTIONS = ("none", "bonferroni", "holm", "fdr_bh")


@dataclass(frozen=True)
class Sorted:
    """The finite values of one numeric sample, sorted ascending, and how many were not finite."""

    values: Any  # a float64 ndarray
    missing: int

    @classmethod
    def of(cls, data: Any) -> Sorted:
        arr = np.asarray(data, dtype=np.float64)
        finite = np.isfinite(arr)
        kept = arr if bool(finite.all()) else arr[finite]
        return cls(np.sort(kept), int(arr.size - kept.size))

    @property
    def n(self) -> int:
        return int(self.values.size)

    def quantile(self, q: Any) -> Any:
        """Quantiles by linear interpolation (numpy's default), read off the sorted values."""
        v = self.values
        pos = np.asarray(q, dtype=np.float64) * (v.size - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, v.size - 1)
        return v[lo] + (v[hi] - v[lo]) * (pos - lo)

    def cut_points(self, q: Any) -> Any:
        """For each share q, the smallest value with at least q of the sample at or below it (a value of
        the sample: numpy's ``inverted_cdf`` quantile)."""
        idx = np.ceil(np.asarray(q, dtype=np.float64) * self.values.size).astype(np.int64) - 1
        return self.values[np.clip(idx, 0, self.values.size - 1)]

    def counts(self, inner_edges: Any) -> Any:
        """Counts in the bins (-inf, e0], (e0, e1], …, (e_last, inf) for ascending ``inner_edges``."""
        cut = np.searchsorted(self.values, inner_edges, side="right")
        return np.diff(np.concatenate(([0], cut, [self.values.size])))


@dataclass(frozen=True)
class NumericComparison:
    statistic: float  # KS D
    p_value: float
    method: str  # "exact" or "asymp", as scipy names them
    wasserstein: float
    psi: float
    psi_edges: list[float]
    psi_reference: list[float]  # shares per PSI bin
    psi_current: list[float]
    distinct: Any | None  # the distinct values of both samples, when there are at most ``keep_distinct``


def ecdf_gaps(ref: Sorted, cur: Sorted) -> tuple[Any, Any]:
    """The distinct values of both samples and F_ref − F_cur at each (right-continuous ECDFs).

    The two sorted samples are merged (a stable argsort of two sorted runs is one linear merge); a
    running count of the values that came from the reference gives, at the last of each run of equal
    values, the same counts as ``searchsorted(..., side="right")``, without a binary search per value.
    """
    both = np.concatenate((ref.values, cur.values))
    order = np.argsort(both, kind="stable")
    merged = both[order]
    n_ref_le = np.cumsum(order < ref.n)  # reference values at or before each merged position
    n_cur_le = np.arange(1, merged.size + 1) - n_ref_le
    keep = np.empty(merged.size, dtype=bool)
    keep[:-1] = merged[1:] != merged[:-1]
    keep[-1] = True
    if not keep.all():  # ties: read the counts at the last of each run of equal values
        merged, n_ref_le, n_cur_le = merged[keep], n_ref_le[keep], n_cur_le[keep]
    return merged, n_ref_le / ref.n - n_cur_le / cur.n


def ks_statistic(gaps: Any) -> float:
    """The two-sided KS statistic from the CDF gaps, computed as scipy does (same operations, same bits)."""
    max_s = float(np.max(gaps))
    min_s = float(np.clip(-np.min(gaps), 0, 1))
    return min_s if min_s > max_s else max_s


def ks_pvalue(d: float, n1: int, n2: int) -> float:
    """scipy's asymptotic two-sided KS p-value for samples of sizes n1, n2 (``method="asymp"``)."""
    from scipy.stats import kstwo

    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    return float(np.clip(kstwo.sf(d, np.round(en)), 0, 1))


def ks_2samp_sorted(ref: Sorted, cur: Sorted, gaps: Any | None = None) -> tuple[float, float, str]:
    """(D, p-value, method) equal to ``scipy.stats.ks_2samp(ref, cur)`` on the finite values."""
    if max(ref.n, cur.n) <= KS_EXACT_MAX_N:
        from scipy.stats import ks_2samp

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # scipy falls back to asymp itself, and says so
            r = ks_2samp(ref.values, cur.values)
        return float(r.statistic), float(r.pvalue), "exact"
    if gaps is None:
        gaps = ecdf_gaps(ref, cur)[1]
    d = ks_statistic(gaps)
    return d, ks_pvalue(d, ref.n, cur.n), "asymp"


def wasserstein(points: Any, gaps: Any) -> float:
    """The Wasserstein-1 distance: the area between the two ECDFs (as ``scipy.stats.wasserstein_distance``)."""
    if points.size < 2:
        return 0.0
    return float(np.dot(np.abs(gaps[:-1]), np.diff(points)))


def psi(ref_shares: Any, cur_shares: Any) -> float:
    """Population stability index: Σ (cur − ref) · ln(cur / ref), shares floored at ``PSI_EPSILON``."""
    r = np.maximum(np.asarray(ref_shares, dtype=np.float64), PSI_EPSILON)
    c = np.maximum(np.asarray(cur_shares, dtype=np.float64), PSI_EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def psi_edges(ref: Sorted, bins: int = PSI_BINS) -> Any:
    """Inner bin edges at the reference's deciles (for ``bins=10``), duplicates dropped.

    Each cut point is a reference value: the smallest with at least k/bins of the reference at or below
    it. Bins are right-closed, (-inf, e1], (e1, e2], …, (e_last, inf), so every value of either sample
    falls in one. A feature with many equal values (a count, a flag) gets fewer bins, one per distinct
    cut point; values above the reference's top cut point share the last bin.
    """
    return np.unique(ref.cut_points(np.arange(1, bins) / bins))


def shares(counts: Any) -> Any:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total else counts


def compare_numeric(ref: Sorted, cur: Sorted, keep_distinct: int = 0) -> NumericComparison:
    """KS, Wasserstein and PSI of two non-empty sorted samples."""
    points, gaps = ecdf_gaps(ref, cur)
    d, p, method = ks_2samp_sorted(ref, cur, gaps)
    edges = psi_edges(ref)
    r, c = shares(ref.counts(edges)), shares(cur.counts(edges))
    return NumericComparison(
        statistic=d,
        p_value=p,
        method=method,
        wasserstein=wasserstein(points, gaps),
        psi=psi(r, c),
        psi_edges=[float(e) for e in edges],
        psi_reference=r.tolist(),
        psi_current=c.tolist(),
        distinct=points if points.size <= keep_distinct else None,
    )


def chi_square(ref_counts: Any, cur_counts: Any) -> tuple[float, float, int]:
    """(statistic, p-value, degrees of freedom) of ``chi2_contingency`` on the 2×k table of counts."""
    from scipy.stats import chi2_contingency

    table = np.vstack([np.asarray(ref_counts, dtype=np.int64), np.asarray(cur_counts, dtype=np.int64)])
    if table.shape[1] < 2:
        return 0.0, 1.0, 0  # one category on both sides: nothing to compare
    res = chi2_contingency(table)
    return float(res.statistic), float(res.pvalue), int(res.dof)


def adjust(p_values: list[float], method: str) -> list[float]:
    """p-values adjusted for testing many features at once: Bonferroni, Holm (step-down) or
    Benjamini–Hochberg (``scipy.stats.false_discovery_control``). ``none`` returns them as they are."""
    if method not in CORRECTIONS:
        raise ValueError(f"correction {method!r}: expected one of {', '.join(CORRECTIONS)}")
    m = len(p_values)
    if m == 0 or method == "none":
        return list(p_values)
    p = np.asarray(p_values, dtype=np.float64)
    if method == "bonferroni":
        out = np.minimum(p * m, 1.0)
    elif method == "holm":
        order = np.argsort(p, kind="stable")
        stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
        out = np.empty(m)
        out[order] = np.minimum(stepped, 1.0)
    else:
        from scipy.stats import false_discovery_control

        out = np.asarray(false_discovery_control(p, method="bh"), dtype=np.float64)
    return [float(x) for x in out]


def finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)
