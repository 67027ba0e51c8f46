"""Two-sample statistics for drift: KS, Wasserstein, PSI, chi-square, and multiple-testing corrections.

Numeric samples are sorted once (``Sorted``) and every statistic reads the sorted arrays:

- the two empirical CDFs are evaluated once, at the distinct values of both samples (a linear merge
  of the two sorted arrays), which gives the Kolmogorov–Smirnov statistic (their largest gap) and the
  Wasserstein-1 distance (the area between them) in one pass;
- PSI bins are cut at the reference's deciles, with one more bin below the reference's minimum (so a
  sample below a constant reference is not read as PSI 0), and counted with ``np.searchsorted`` too.

The same statistics against a reference *sketch* (``sketch.NumericSketch``: the training column's CDF at
up to 1,002 of its values) are ``compare_to_sketch``: exact, and equal to scipy's, when the sketch kept
every distinct value; otherwise the KS statistic is within the sketch's ``error`` (≤ 0.001) and the
p-value is computed from D − error, so the sketch can only make the test more conservative.

Categories: ``pooled_chi_square`` merges the categories too rare for the chi-square approximation (an
expected count below 5 in the smaller sample) into one bin before testing. ``missing_test`` compares the
shares of missing values; ``total_variation`` is the effect size of categories (half the sum of the
absolute differences of shares: the largest share of rows any set of categories gained or lost, as KS D
is for numbers over half-lines).

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

from mlopsctl.monitoring.sketch import NumericSketch

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

    @classmethod
    def of_f32(cls, data: Any) -> Sorted:
        """``Sorted.of(f32(data))``, the same values, sorted as float32: half the bytes and a faster sort.

        Numbers beyond float32's range (which ``f32`` keeps as they are) take ``Sorted.of(f32(data))``.
        """
        from mlopsctl.monitoring.sketch import F32_MAX, f32

        arr = np.asarray(data)
        if arr.dtype == np.float32:
            narrow = arr
        elif arr.dtype.kind in "fiub":
            wide = arr if arr.dtype == np.float64 else arr.astype(np.float64)  # as f32: through float64
            big = np.abs(wide) > F32_MAX  # ±inf, or a number float32 cannot hold
            if bool(big.any()) and bool(np.isfinite(wide[big]).any()):
                return cls.of(f32(wide))
            narrow = wide.astype(np.float32)
        else:
            return cls.of(f32(arr))
        finite = np.isfinite(narrow)
        kept = narrow if bool(finite.all()) else narrow[finite]
        return cls(np.sort(kept).astype(np.float64), int(narrow.size - kept.size))

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
    psi_edges: list[float]  # the reference's minimum, then its decile cut points
    psi_reference: list[float]  # shares per PSI bin: below the minimum, then up to each edge, then above
    psi_current: list[float]
    distinct: Any | None  # the distinct values of both samples, when there are at most ``keep_distinct``
    sketch_error: float = 0.0  # how far the reference CDF may be from the training data's (0: exact)


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
    # np.sum of the products, as scipy's _cdf_distance: np.dot goes to BLAS, 20× slower on a busy machine
    return float(np.sum(np.abs(gaps[:-1]) * np.diff(points)))


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


def psi_counts(sample: Sorted, lo: float, inner_edges: Any) -> Any:
    """Counts in the PSI bins: below ``lo`` (the reference's minimum), then [lo, e0], (e0, e1], …, (e_last, inf)."""
    below = int(np.searchsorted(sample.values, lo, side="left"))
    counts = sample.counts(inner_edges)
    counts[0] -= below
    return np.concatenate(([below], counts))


def shares(counts: Any) -> Any:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total else counts


def compare_numeric(ref: Sorted, cur: Sorted, keep_distinct: int = 0) -> NumericComparison:
    """KS, Wasserstein and PSI of two non-empty sorted samples."""
    points, gaps = ecdf_gaps(ref, cur)
    d, p, method = ks_2samp_sorted(ref, cur, gaps)
    edges = psi_edges(ref)
    lo = float(ref.values[0])
    r, c = shares(psi_counts(ref, lo, edges)), shares(psi_counts(cur, lo, edges))
    return NumericComparison(
        statistic=d,
        p_value=p,
        method=method,
        wasserstein=wasserstein(points, gaps),
        psi=psi(r, c),
        psi_edges=[lo, *(float(e) for e in edges)],
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


# -- against a reference sketch ------------------------------------------------------------------


def compare_to_sketch(ref: NumericSketch, cur: Sorted, keep_distinct: int = 0) -> NumericComparison:
    """KS, Wasserstein and PSI of a current sample (values at float32 precision) against a reference sketch.

    An exact sketch is the training column itself: with both sizes at most 10,000 the p-value is scipy's
    exact one (``ks_2samp`` on the rebuilt column), else Smirnov's asymptotic one, as scipy computes them.
    A sketch that dropped values knows the reference CDF within ``ref.error``: D is computed at every
    value of both (within that error of the true D) and the p-value from max(D − error, 0).
    """
    n, m = ref.n, cur.n
    points, cur_le, knots_le = _merge_points(ref.values, cur.values)
    gaps = np.concatenate(([0], ref.cum))[knots_le] / max(n, 1) - cur_le / m  # ref.cdf(points), in one pass
    if ref.exact and max(n, m) <= KS_EXACT_MAX_N:
        d, p, method = ks_2samp_sorted(Sorted(ref.sample(), 0), cur)
    else:
        d = ks_statistic(gaps)
        p, method = ks_pvalue(max(d - ref.error, 0.0), n, m), "asymp"
    edges = np.unique(ref.cut_points(PSI_BINS))
    lo = float(ref.values[0])
    r = shares(np.concatenate(([0], ref.counts(edges))))  # nothing of the reference is below its minimum
    c = shares(psi_counts(cur, lo, edges))
    return NumericComparison(
        statistic=d,
        p_value=p,
        method=method,
        wasserstein=wasserstein(points, gaps),
        psi=psi(r, c),
        psi_edges=[lo, *(float(e) for e in edges)],
        psi_reference=r.tolist(),
        psi_current=c.tolist(),
        distinct=points if points.size <= keep_distinct else None,
        sketch_error=ref.error,
    )


def _merge_points(knots: Any, values: Any) -> tuple[Any, Any, Any]:
    """The distinct values of the sorted ``values`` merged with the sorted distinct ``knots``, how many of
    ``values`` are at or below each, and how many knots (``searchsorted(knots, points, side="right")``):
    one pass over the current sample (it is sorted once, in ``Sorted``), a binary search per knot."""
    ends = np.flatnonzero(np.r_[values[1:] != values[:-1], True])  # the last of each run of equal values
    distinct, le = values[ends], ends + 1
    pos = np.searchsorted(distinct, knots, side="left")
    known = (pos < distinct.size) & (distinct[np.minimum(pos, max(distinct.size - 1, 0))] == knots)
    extra, at = knots[~known], pos[~known]
    extra_le = np.searchsorted(values, extra, side="right")
    is_knot = np.zeros(distinct.size, dtype=np.int64)
    is_knot[pos[known]] = 1
    # every knot is one of the merged points: a running count of them is the binary search's answer
    knots_le = np.cumsum(np.insert(is_knot, at, 1))
    return np.insert(distinct, at, extra), np.insert(le, at, extra_le), knots_le


# -- categories and missing values -----------------------------------------------------------------


MIN_EXPECTED = 5.0  # a category expected fewer times than this (in the smaller sample) is pooled
POOLED = "(rare categories)"


@dataclass(frozen=True)
class CategoryTest:
    statistic: float
    p_value: float
    dof: int
    labels: list[str]  # the bins tested: categories, and POOLED when some were merged
    reference: Any  # counts per bin
    current: Any
    pooled: list[str]  # the categories merged into POOLED
    method: str = "chi2"  # how the p-value was computed: chi2, or fisher (a 2×2 table with a rare bin)


def pooled_chi_square(categories: list[str], ref_counts: Any, cur_counts: Any) -> CategoryTest:
    """Chi-square on the 2×k table after merging the rare categories.

    A category whose expected count in the smaller sample, (r + c)·min(R, C)/(R + C), is below
    ``MIN_EXPECTED`` goes into one pooled bin; while that bin is still too rare it takes the next rarest
    category, as long as another bin is left. Pooling reads only the two samples' combined counts, which
    do not depend on which sample a row came from, so it does not bias the test. A 2×2 table with an
    expected count still below ``MIN_EXPECTED`` gets Fisher's exact test; one bin: nothing to test.
    """
    r = np.asarray(ref_counts, dtype=np.int64)
    c = np.asarray(cur_counts, dtype=np.int64)
    total = r + c
    scale = min(r.sum(), c.sum()) / max(total.sum(), 1)
    rare = total * scale < MIN_EXPECTED
    if rare.all() and rare.size:
        rare[int(np.argmax(total))] = False  # keep the largest apart: two bins at least
    if rare.any():
        for i in np.argsort(total, kind="stable"):  # a pooled bin still too rare takes the next rarest
            if total[rare].sum() * scale >= MIN_EXPECTED or (~rare).sum() < 2:
                break
            rare[i] = True
    keep = ~rare
    labels = [k for k, kept in zip(categories, keep.tolist(), strict=True) if kept]
    merged = [k for k, kept in zip(categories, keep.tolist(), strict=True) if not kept]
    r_bins, c_bins = r[keep], c[keep]
    if merged:
        labels.append(merged[0] if len(merged) == 1 else POOLED)
        r_bins = np.append(r_bins, r[rare].sum())
        c_bins = np.append(c_bins, c[rare].sum())
    stat, p, dof = chi_square(r_bins, c_bins)
    method = "chi2"
    if r_bins.size == 2 and min(r_bins.sum(), c_bins.sum()) * (r_bins + c_bins).min() / total.sum() < MIN_EXPECTED:
        from scipy.stats import fisher_exact

        p, method = float(fisher_exact(np.vstack([r_bins, c_bins])).pvalue), "fisher"  # the statistic stays chi²
    return CategoryTest(stat, p, dof, labels, r_bins, c_bins, merged if len(merged) > 1 else [], method)


def total_variation(ref_counts: Any, cur_counts: Any) -> float:
    """Half the sum of |share in reference − share in current|: the largest share of rows that any set of
    bins gained or lost (0 same, 1 disjoint)."""
    return float(0.5 * np.abs(shares(ref_counts) - shares(cur_counts)).sum())


def missing_test(ref_missing: int, ref_rows: int, cur_missing: int, cur_rows: int) -> tuple[float, float, float]:
    """(statistic, p-value, difference of the missing shares, current − reference) of the 2×2 table of
    missing and present values: Fisher's exact test when an expected count is below 5, else chi-square
    with Yates' correction (scipy's ``chi2_contingency``)."""
    from scipy.stats import chi2_contingency, fisher_exact

    table = np.array([[ref_missing, ref_rows - ref_missing], [cur_missing, cur_rows - cur_missing]], dtype=np.int64)
    diff = (cur_missing / cur_rows if cur_rows else 0.0) - (ref_missing / ref_rows if ref_rows else 0.0)
    if table.sum(axis=0).min() == 0 or table.sum(axis=1).min() == 0:
        return 0.0, 1.0, diff
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    if expected.min() < MIN_EXPECTED:
        res = fisher_exact(table)
        return float(res.statistic), float(res.pvalue), diff
    res2 = chi2_contingency(table)
    return float(res2.statistic), float(res2.pvalue), diff


def ratio_rise(numerators: Any, denominators: Any, expected: float) -> tuple[float, float, float]:
    """(rate, z, one-sided p-value) of Σ numerators / Σ denominators above ``expected``, with the
    variance of a ratio of sums over independent rows (tokens of one text are not independent)."""
    from scipy.stats import norm

    a = np.asarray(numerators, dtype=np.float64)
    b = np.asarray(denominators, dtype=np.float64)
    total, k = b.sum(), a.size
    if total <= 0:
        return 0.0, 0.0, 1.0
    rate = float(a.sum() / total)
    if k < 2:
        return rate, 0.0, 1.0
    var = float(np.sum((a - rate * b) ** 2)) / total**2 * k / (k - 1)
    if var <= 0:
        z = math.copysign(math.inf, rate - expected) if rate != expected else 0.0
    else:
        z = (rate - expected) / math.sqrt(var)
    return rate, z, float(norm.sf(z))


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
