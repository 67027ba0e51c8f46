"""The statistics of an A/B test: intervals, the always-valid test, sample sizes and the verdict.

Pure functions of counts and values (numpy and ``scipy.stats``), no I/O:

- ``wilson_interval``: the Wilson score interval of a proportion; ``two_proportions`` (pooled z-test,
  Newcombe's hybrid score interval) and ``welch`` (Welch's t): fixed-sample comparisons, kept for the
  error rates and for reference;
- ``estimate``: candidate − control on per-row values (correct or not, absolute errors), **stratified** by
  ramp step (each step's difference, weighted by its information, so a ramp that moves traffic while the
  metric drifts in time cannot make a difference out of nothing) with a **cluster-robust** variance
  (rows of one sticky user, or of one request, are not independent: their influence is summed per
  cluster before squaring);
- ``msprt``: the mixture sequential probability ratio test on that estimate (a normal mixture of
  likelihood ratios, Robbins 1970; Johari et al. 2017): an always-valid p-value and a confidence
  sequence, so the chance of ever declaring a difference that is not there stays below ``alpha`` however
  often, and however long, the report is read; the interval excludes 0 exactly when the verdict declares
  a difference;
- ``sample_size_proportions`` / ``sample_size_means``: rows per variant for the verdict to find
  ``min_effect`` with the given power (by default for the sequential test, read once at the planned
  size; reading it more often only adds power);
- ``bootstrap_ci``: BCa or percentile bootstrap for statistics without a closed form (macro F1);
  ``rmse_interval``: a studentised bootstrap on the log of the mean squared error (percentile intervals
  of an RMSE under-cover when errors are heavy-tailed);
- ``verdict``: one of three answers and a sentence with the numbers; ``decide`` is its vectorised core.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

CANDIDATE_BETTER, CONTROL_BETTER, NO_DIFFERENCE_YET = "candidate_better", "control_better", "no_difference_yet"
VERDICTS = (CANDIDATE_BETTER, CONTROL_BETTER, NO_DIFFERENCE_YET)
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 20251124
BOOTSTRAP_MAX_ROWS = 5000  # above this, resamples draw this many rows and are rescaled (m-out-of-n)
BOOTSTRAP_MAX_LEVELS = 256  # up to this many distinct values (and 10 rows each), multinomial resamples

Statistic = Callable[[NDArray[Any], NDArray[np.float64]], NDArray[np.float64]]


def _z(alpha: float) -> float:
    return float(stats.norm.ppf(1 - alpha / 2))


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class Comparison:
    """Candidate − control on one metric: the difference, its interval, the test statistic and p-value."""

    test: str
    diff: float
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float
    alpha: float  # the interval is at level 1 − alpha

    def to_dict(self) -> dict[str, Any]:
        """As JSON: floats that are NaN or infinite become None."""
        return {k: (v if isinstance(v, str) else _finite(v)) for k, v in asdict(self).items()}


# -- proportions ---------------------------------------------------------------------------------


def _wilson(x: Any, n: Any, z: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x, n = np.asarray(x, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    empty = n <= 0
    return np.where(empty, 0.0, np.clip(centre - half, 0, 1)), np.where(empty, 1.0, np.clip(centre + half, 0, 1))


def wilson_interval(successes: float, n: float, alpha: float = 0.05) -> tuple[float, float]:
    """The Wilson score interval of ``successes / n`` at level 1 − alpha; (0, 1) when n is 0."""
    lo, hi = _wilson(successes, n, _z(alpha))
    return float(lo), float(hi)


def z_test_proportions(
    x_control: ArrayLike, n_control: ArrayLike, x_candidate: ArrayLike, n_candidate: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The pooled two-proportion z statistic and two-sided p-value, element-wise over arrays.

    z > 0 when the candidate's proportion is higher. When the pooled variance is 0 (both all 0 or
    all 1) z is 0 and p is 1; with an empty sample both are NaN.
    """
    x1, n1 = np.asarray(x_control, dtype=float), np.asarray(n_control, dtype=float)
    x2, n2 = np.asarray(x_candidate, dtype=float), np.asarray(n_candidate, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (x1 + x2) / (n1 + n2)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        z = np.where(se > 0, (x2 / n2 - x1 / n1) / se, 0.0)
    z = np.where((n1 > 0) & (n2 > 0), z, np.nan)
    return z, 2 * stats.norm.sf(np.abs(z))


def two_proportions(
    x_control: int, n_control: int, x_candidate: int, n_candidate: int, alpha: float = 0.05
) -> Comparison:
    """Candidate − control proportion: pooled z-test p-value and Newcombe's hybrid score interval.

    Newcombe's interval (1998, method 10) combines the two Wilson intervals; unlike the Wald interval it
    stays inside [−1, 1] and keeps its coverage near 0 and 1 and with small samples.
    """
    z, p = z_test_proportions(x_control, n_control, x_candidate, n_candidate)
    if n_control <= 0 or n_candidate <= 0:
        nan = float("nan")
        return Comparison("two-proportion z-test", nan, nan, nan, nan, nan, alpha)
    zc = _z(alpha)
    p1, p2 = x_control / n_control, x_candidate / n_candidate
    l1, u1 = (float(v) for v in _wilson(x_control, n_control, zc))
    l2, u2 = (float(v) for v in _wilson(x_candidate, n_candidate, zc))
    d = p2 - p1
    lo = max(-1.0, d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2))  # clamped: rounding can step past ±1
    hi = min(1.0, d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2))
    return Comparison("two-proportion z-test", d, lo, hi, float(z), float(p), alpha)


# -- means ---------------------------------------------------------------------------------------


def welch(control_values: ArrayLike, candidate_values: ArrayLike, alpha: float = 0.05) -> Comparison:
    """Welch's t-test (unequal variances) of mean(candidate) − mean(control), with its t interval.

    Needs two values on each side (else the numbers are NaN). When both samples are constant the
    test has no variance: p is 1 if the means are equal, else 0.
    """
    a = np.asarray(control_values, dtype=float)
    b = np.asarray(candidate_values, dtype=float)
    nan = float("nan")
    if a.size < 2 or b.size < 2:
        return Comparison("Welch t-test", nan, nan, nan, nan, nan, alpha)
    d = float(b.mean() - a.mean())
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return Comparison("Welch t-test", d, d, d, 0.0 if d == 0 else math.copysign(math.inf, d), float(d == 0), alpha)
    res = stats.ttest_ind(b, a, equal_var=False)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    return Comparison("Welch t-test", d, d - half, d + half, float(res.statistic), float(res.pvalue), alpha)


def mean_interval(values: ArrayLike, alpha: float = 0.05) -> tuple[float, float, float]:
    """The mean and its t interval (mean, low, high); NaN where undefined (fewer than 1 or 2 values)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (math.nan,) * 3
    m = float(x.mean())
    if x.size < 2:
        return m, math.nan, math.nan
    half = float(stats.t.ppf(1 - alpha / 2, x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return m, m - half, m + half


# -- bootstrap -----------------------------------------------------------------------------------


def bootstrap_ci(
    statistic: Statistic,
    values: ArrayLike,
    *,
    alpha: float = 0.05,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    max_rows: int = BOOTSTRAP_MAX_ROWS,
    method: str = "bca",
) -> tuple[float, float]:
    """Bootstrap interval of ``statistic`` over the rows ``values`` (a 1-D array): BCa (Efron's bias-corrected
    and accelerated interval, the default: the acceleration from the jackknife over the distinct values) when
    there are at most ``BOOTSTRAP_MAX_LEVELS`` distinct values, else the percentile interval.

    ``statistic(levels, counts)`` gets the distinct values (G,) and a (B, G) matrix saying how many
    times each was drawn in each of B resamples, and returns the B statistics; it must depend on the
    counts only through their shares (a mean, an F1), which is what lets every resample be drawn
    without materialising it:

    - few distinct values (at most ``BOOTSTRAP_MAX_LEVELS``, such as the cells of a confusion matrix):
      a resample is one multinomial draw over them, the exact bootstrap at a cost that does not grow
      with the rows;
    - up to ``max_rows`` rows: rows are drawn with replacement, in chunks;
    - more: the bootstrap runs on a random subsample of m = ``max_rows`` rows, and each resample's
      deviation from the subsample's statistic is scaled by √(m/n) around the full-sample statistic (an
      m-out-of-n bootstrap; right for statistics that converge at 1/√n, such as these).

    The seed is fixed, so a report is reproducible. Returns (NaN, NaN) for no rows.
    """
    x = np.asarray(values)
    n = x.size
    if n == 0:
        return math.nan, math.nan
    levels, freq = np.unique(x, return_counts=True)
    full = float(statistic(levels, freq[None, :].astype(float))[0])
    rng = np.random.default_rng(seed)
    if levels.size <= BOOTSTRAP_MAX_LEVELS and levels.size * 10 <= n:
        thetas = statistic(levels, rng.multinomial(n, freq / n, size=n_resamples).astype(float))
    else:
        m = min(n, max_rows)
        sub = x if m == n else rng.choice(x, m, replace=False)
        levels, inverse, freq = np.unique(sub, return_inverse=True, return_counts=True)
        inverse, g = inverse.ravel(), levels.size
        chunk = max(1, min(n_resamples, 131_072 // m))  # a chunk's counts stay in cache: 5x faster than 2M
        parts = []
        for start in range(0, n_resamples, chunk):
            b = min(chunk, n_resamples - start)
            drawn = inverse[rng.integers(0, m, size=(b, m), dtype=np.int32)] + (np.arange(b) * g)[:, None]
            counts = np.bincount(drawn.ravel(), minlength=b * g).reshape(b, g).astype(float)
            parts.append(statistic(levels, counts))
        thetas = np.concatenate(parts)
        if m < n:
            thetas = full + (thetas - float(statistic(levels, freq[None, :].astype(float))[0])) * math.sqrt(m / n)
    thetas = thetas[np.isfinite(thetas)]
    if thetas.size == 0:
        return math.nan, math.nan
    shares = [alpha / 2, 1 - alpha / 2]
    uniq = np.unique(x, return_counts=True)
    if method == "bca" and 2 <= uniq[0].size <= BOOTSTRAP_MAX_LEVELS and n > 2:
        shares = _bca_shares(statistic, uniq, full, thetas, alpha)
    lo, hi = np.quantile(thetas, shares)
    return float(lo), float(hi)


def _bca_shares(
    statistic: Statistic, uniq: tuple[Any, Any], full: float, thetas: NDArray[np.float64], alpha: float
) -> list[float]:
    """The BCa quantile levels: bias correction z₀ from the share of resamples below the estimate, and the
    acceleration a from the jackknife (each distinct value left out once, weighted by its count)."""
    levels, freq = uniq
    freq = freq.astype(float)
    below = float(np.mean(thetas < full) + 0.5 * np.mean(thetas == full))
    if not 0 < below < 1:
        return [alpha / 2, 1 - alpha / 2]
    z0 = float(stats.norm.ppf(below))
    leave_one = freq[None, :] - np.eye(levels.size)
    keep = freq > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        jack = statistic(levels, leave_one[keep])
    if not np.all(np.isfinite(jack)):
        return [alpha / 2, 1 - alpha / 2]
    w = freq[keep]
    mean = float(np.sum(w * jack) / w.sum())
    dev = mean - jack
    denom = float(np.sum(w * dev**2)) ** 1.5
    a = float(np.sum(w * dev**3)) / (6 * denom) if denom > 0 else 0.0
    out = []
    for q in (alpha / 2, 1 - alpha / 2):
        zq = float(stats.norm.ppf(q))
        out.append(float(stats.norm.cdf(z0 + (z0 + zq) / (1 - a * (z0 + zq)))))
    return out


def rmse_interval(
    squared_errors: ArrayLike,
    alpha: float = 0.05,
    *,
    n_resamples: int = 2000,
    seed: int = BOOTSTRAP_SEED,
    max_rows: int = BOOTSTRAP_MAX_ROWS,
) -> tuple[float, float]:
    """A studentised bootstrap (bootstrap-t) interval of the RMSE, √mean(e²).

    The pivot is t = (log m* − log m)/se*, with m the mean squared error and se its delta-method standard
    error on the log scale (sd(e²)/(√n·m)); the interval is exp(log m − t*·se) at the pivot's quantiles,
    then the square root. On the log scale the mean of squared heavy-tailed errors is far closer to
    symmetric, and the pivot's own spread is resampled, so it keeps its coverage where the percentile
    interval falls to 60–80 %. Above ``max_rows`` rows the pivot's quantiles come from a random
    ``max_rows`` of them (a pivot's distribution barely depends on n). (NaN, NaN) with fewer than 2 rows.
    """
    x = np.asarray(squared_errors, dtype=float)
    n = x.size
    if n < 2:
        return math.nan, math.nan
    m = float(x.mean())
    sd = float(x.std(ddof=1))
    if m <= 0 or sd == 0:
        r = math.sqrt(max(m, 0.0))
        return r, r
    se = sd / (math.sqrt(n) * m)
    rng = np.random.default_rng(seed)
    sub = x if n <= max_rows else rng.choice(x, max_rows, replace=False)
    k = sub.size
    pivots = []
    chunk = max(1, min(n_resamples, 131_072 // k))
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        draw = sub[rng.integers(0, k, size=(b, k))]
        mb = draw.mean(axis=1)
        sb = draw.std(axis=1, ddof=1)
        ok = (mb > 0) & (sb > 0)
        sub_m = float(sub.mean())
        pivots.append((np.log(mb[ok]) - math.log(sub_m)) / (sb[ok] / (math.sqrt(k) * mb[ok])))
    t = np.concatenate(pivots)
    lo_t, hi_t = np.quantile(t, [alpha / 2, 1 - alpha / 2])
    return math.sqrt(m * math.exp(-float(hi_t) * se)), math.sqrt(m * math.exp(-float(lo_t) * se))


# -- the always-valid test -------------------------------------------------------------------------


# The mixing distribution over effects: a normal N(0, τ²) with weight 0.75 at the τ tuned to the minimum
# effect, and 0.0625 each at 4, 16, 64 and 256 times it. The first gives the plan its power; the others let a
# difference far larger than the minimum show within a few dozen rows (a single τ tuned to 2 accuracy points
# needs hundreds of rows to believe a 35-point gap). Costs ~6 % more rows at the plan.
MIXTURE: tuple[tuple[float, float], ...] = ((1.0, 0.75), (4.0, 0.0625), (16.0, 0.0625), (64.0, 0.0625), (256.0, 0.0625))


def _log_lr(d2: Any, v: Any, tau: float) -> Any:
    """log Λ: the likelihood ratio of an estimate with squared deviation ``d2`` and variance ``v`` from the
    tested value, averaged over the mixture of normal alternatives (``MIXTURE``, scaled by ``tau``)."""
    d2, v = np.asarray(d2, dtype=float), np.asarray(v, dtype=float)
    terms = []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for multiple, weight in MIXTURE:
            t2 = (multiple * tau) ** 2
            terms.append(math.log(weight) + 0.5 * np.log(v / (v + t2)) + d2 * t2 / (2 * v * (v + t2)))
        stacked = np.stack(terms)
        top = np.max(stacked, axis=0)
        return top + np.log(np.sum(np.exp(stacked - top), axis=0))


def _half_width(v: Any, tau: float, alpha: float) -> Any:
    """The x at which log Λ(x², v) reaches log(1/α): the confidence sequence's half-width (by bisection:
    Λ grows with x). Bracketed by the single components: the mixture reaches 1/α once any component j
    reaches 1/(α·w_j), and not before one reaches 1/α."""
    v = np.asarray(v, dtype=float)
    target = math.log(1 / alpha)

    def single(t2: float, level: float) -> Any:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sqrt(2 * v * (v + t2) / t2 * (math.log(1 / level) + 0.5 * np.log((v + t2) / v)))

    lo = np.min([single((m * tau) ** 2, alpha) for m, _ in MIXTURE], axis=0)
    hi = np.min([single((m * tau) ** 2, alpha * w) for m, w in MIXTURE], axis=0)
    for _ in range(60):
        mid = (lo + hi) / 2
        below = _log_lr(mid * mid, v, tau) < target
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return hi


@lru_cache(maxsize=64)
def _design(alpha: float, power: float) -> tuple[float, float]:
    """(η, r): the standardised effect η = δ/√V at which the test, read once, has ``power``, and the ratio
    r = τ²/V (τ the mixture's first sd) that minimises it; τ is set to √(r·V) at the planned size."""
    from scipy.optimize import brentq, minimize_scalar

    def bound(log_r: float) -> float:
        return float(_half_width(1.0, math.exp(0.5 * log_r), alpha))

    best = minimize_scalar(bound, bounds=(-4.0, 10.0), method="bounded", options={"xatol": 1e-4})
    r = math.exp(float(best.x))
    b = bound(float(best.x))

    def shortfall(eta: float) -> float:
        return float(stats.norm.cdf(eta - b) + stats.norm.cdf(-eta - b)) - power

    return float(brentq(shortfall, 0.0, b + 20)), r


def mixing_sd(min_effect: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """τ, the sd of the mixture's first normal, in the metric's unit: tuned so that an effect of
    ``min_effect`` at the planned size is found with ``power`` (τ = min_effect·√r/η)."""
    eta, r = _design(alpha, power)
    return float(min_effect) * math.sqrt(r) / eta


@dataclass(frozen=True)
class Sequential:
    """The mSPRT at one look: always-valid p-value and confidence sequence of the difference."""

    p_value: Any  # min(1, 1/Λ): at most alpha exactly when the interval excludes 0
    ci_low: Any
    ci_high: Any
    log_lr: Any  # log Λ, the mixture likelihood ratio against no difference


def msprt(
    diff: ArrayLike, variance: ArrayLike, tau: float, alpha: float = 0.05, *, interval: bool = True
) -> Sequential:
    """The mixture SPRT of "no difference", element-wise over arrays of estimates and their variances.

    Λ is the likelihood ratio of the estimate d ~ N(θ, V) averaged over alternatives θ ~ Σ w_j N(0, (m_j τ)²)
    (``MIXTURE``): for one normal, √(V/(V+τ²)) · exp(d²τ² / (2V(V+τ²))). Under no difference Λ is a
    martingale (asymptotically, with V estimated), so by Ville's inequality P(Λ ever reaches 1/α) ≤ α:
    p = min(1, 1/Λ) may be read at every look. The confidence sequence is every θ₀ the same test would
    not reject (d ± the x where Λ reaches 1/α; ``interval=False`` skips it: NaN). A variance of 0 (every
    row alike) gives p = 1 for d = 0 and 0 otherwise; NaN gives NaN.
    """
    d = np.asarray(diff, dtype=float)
    v = np.asarray(variance, dtype=float)
    log_lr = _log_lr(d * d, v, float(tau))
    with np.errstate(over="ignore", invalid="ignore"):
        p = np.minimum(1.0, np.exp(-log_lr))
    half = _half_width(v, float(tau), alpha) if interval else np.full(np.shape(v), math.nan)
    zero = v == 0
    p = np.where(zero, np.where(d == 0, 1.0, 0.0), p)
    half = np.where(zero, 0.0, half)
    log_lr = np.where(zero, np.where(d == 0, 0.0, np.inf), log_lr)
    return Sequential(p, d - half, d + half, log_lr)


def sequential_power(n: ArrayLike, s2: float, min_effect: float, alpha: float = 0.05, power: float = 0.8) -> Any:
    """The chance that the verdict, read once at ``n`` rows per variant, finds a true ``min_effect``
    (per-row variance of the difference ``s2`` = σ²_control + σ²_candidate; τ as ``mixing_sd``)."""
    tau = mixing_sd(min_effect, alpha, power)
    v = s2 / np.asarray(n, dtype=float)
    half = _half_width(v, tau, alpha)
    sd = np.sqrt(v)
    return stats.norm.cdf((min_effect - half) / sd) + stats.norm.cdf((-min_effect - half) / sd)


# -- sample sizes --------------------------------------------------------------------------------


def rows_for(s2: float, min_effect: float, alpha: float, power: float, sequential: bool = True) -> int:
    """Rows per variant for a per-row variance of the difference ``s2`` (σ²_control + σ²_candidate)."""
    z = _design(alpha, power)[0] if sequential else _z(alpha) + float(stats.norm.ppf(power))
    return max(2, math.ceil(z * z * s2 / min_effect**2))


def sample_size_proportions(
    p_control: float, min_effect: float, alpha: float = 0.05, power: float = 0.8, *, sequential: bool = True
) -> int:
    """Rows per variant for the verdict to find a change of ``min_effect`` in a proportion with ``power``.

    n = z² · (p₁(1 − p₁) + p₂(1 − p₂)) / min_effect², with p₂ = p₁ + min_effect (or p₁ − min_effect when
    that would pass 1). ``sequential`` (the default, the test the verdict runs): z = η, the standardised
    effect the always-valid test needs to reach ``power`` when read once at n (about 3.9 for α = 0.05 and
    80 %, against 2.8 for a test read only once: 1.9 times the rows). Otherwise the fixed-sample
    two-sided z-test's z₁₋α/₂ + z_power.
    """
    if not 0 < min_effect < 1:
        raise ValueError(f"min_effect {min_effect}: expected a number between 0 and 1")
    p1 = min(max(float(p_control), 0.0), 1.0)
    p2 = p1 + min_effect if p1 + min_effect <= 1 else p1 - min_effect
    return rows_for(p1 * (1 - p1) + p2 * (1 - p2), min_effect, alpha, power, sequential)


def sample_size_means(
    sd: float, min_effect: float, alpha: float = 0.05, power: float = 0.8, *, sequential: bool = True
) -> int:
    """Rows per variant for the verdict to find a change of ``min_effect`` in a mean with ``power``.

    n = z² · 2·sd² / min_effect², with ``sd`` the (pooled) standard deviation of one row's value, z as in
    ``sample_size_proportions``.
    """
    if not min_effect > 0:
        raise ValueError(f"min_effect {min_effect}: expected a number above 0")
    return rows_for(2 * float(sd) ** 2, min_effect, alpha, power, sequential)


# -- the estimate: stratified by ramp step, clustered by unit ---------------------------------------


@dataclass(frozen=True)
class Estimate:
    """Candidate − control on a per-row value, over the strata where both variants have rows."""

    diff: float
    variance: float  # cluster-robust
    control_mean: float  # the strata's means, weighted as the difference is
    candidate_mean: float
    n_control: int  # rows in the strata used
    n_candidate: int
    clusters: int  # units (sticky keys or requests) with rows in those strata
    strata: int  # strata with both variants
    design_effect: float  # the variance over what independent rows would give (1: no clustering)
    row_variance: float  # per-row variance of the difference (σ²_control + σ²_candidate) times the design effect

    def to_dict(self) -> dict[str, Any]:
        return {k: (_finite(v) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def estimate(values: ArrayLike, candidate: ArrayLike, stratum: ArrayLike, cluster: ArrayLike) -> Estimate:
    """Stratified difference of means with a cluster-robust (CR1) variance.

    Per stratum s (a ramp step) the difference of the two variants' means d_s, weighted by
    w_s ∝ n_cs·n_ts/(n_cs + n_ts) (each step's information: rows moved between steps do not mix steps with
    different allocations). The variance sums, per cluster, each row's influence w_s·(y − mean)/n_vs
    (+ for the candidate, − for the control) and squares those sums (G/(G − 1) small-sample factor). With
    every row its own cluster and one stratum this is the unpooled two-sample variance.
    """
    y = np.asarray(values, dtype=float)
    cand = np.asarray(candidate, dtype=bool)
    strat = np.asarray(stratum, dtype=np.int64)
    clus = np.asarray(cluster, dtype=np.int64)
    nan = math.nan
    if y.size == 0:
        return Estimate(nan, nan, nan, nan, 0, 0, 0, 0, nan, nan)
    small = strat.min() >= 0 and strat.max() < 64  # ramp steps: codes already; else factorise
    s_code = strat if small else np.unique(strat, return_inverse=True)[1]
    k = int(s_code.max()) + 1
    cell = s_code * 2 + cand  # (stratum, variant)
    n_cell = np.bincount(cell, minlength=2 * k).astype(float)
    sum_cell = np.bincount(cell, weights=y, minlength=2 * k)
    n_c, n_t = n_cell[0::2], n_cell[1::2]
    both = (n_c > 0) & (n_t > 0)
    if not both.any():
        return Estimate(nan, nan, nan, nan, int((~cand).sum()), int(cand.sum()), 0, 0, nan, nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_cell = np.where(n_cell > 0, sum_cell / n_cell, 0.0)
        info = np.where(both, n_c * n_t / (n_c + n_t), 0.0)
    w = info / info.sum()
    mc, mt = mean_cell[0::2], mean_cell[1::2]
    diff = float(np.sum(w * (mt - mc)))
    used = both[s_code]
    sign = np.where(cand, 1.0, -1.0)
    influence = np.where(used, sign * w[s_code] * (y - mean_cell[cell]) / np.maximum(n_cell[cell], 1), 0.0)
    c_used = clus[used]
    if c_used.size and c_used.min() >= 0 and c_used.max() < 4 * c_used.size:  # dense codes: count directly
        per_cluster = np.bincount(c_used, weights=influence[used])
        g = int(np.count_nonzero(np.bincount(c_used)))
    else:
        _, c_code = np.unique(c_used, return_inverse=True)
        g = int(c_code.max()) + 1 if c_code.size else 0
        per_cluster = np.bincount(c_code, weights=influence[used], minlength=g)
    rows_var = float(np.sum(influence[used] ** 2))
    var = float(np.sum(per_cluster**2)) * (g / (g - 1) if g > 1 else math.nan)
    n_rows = int(used.sum())
    deff = var / (rows_var * (n_rows / (n_rows - 1))) if rows_var > 0 and n_rows > 1 else 1.0
    # per-row variance of the difference, as a plan reads it: σ²_c + σ²_t with the design effect
    sc = float(np.var(y[used & ~cand])) if (used & ~cand).sum() > 1 else nan
    st = float(np.var(y[used & cand])) if (used & cand).sum() > 1 else nan
    return Estimate(
        diff=diff,
        variance=var,
        control_mean=float(np.sum(w * mc)),
        candidate_mean=float(np.sum(w * mt)),
        n_control=int((used & ~cand).sum()),
        n_candidate=int((used & cand).sum()),
        clusters=g,
        strata=int(both.sum()),
        design_effect=max(deff, 1.0) if math.isfinite(deff) else 1.0,
        row_variance=(sc + st) * (max(deff, 1.0) if math.isfinite(deff) else 1.0),
    )


def cluster_mean_interval(values: ArrayLike, cluster: ArrayLike, alpha: float = 0.05) -> tuple[float, float, float]:
    """The mean and its t interval with a cluster-robust standard error (rows of one cluster are summed)."""
    x = np.asarray(values, dtype=float)
    c = np.asarray(cluster, dtype=np.int64)
    if x.size == 0:
        return (math.nan,) * 3
    m = float(x.mean())
    _, code = np.unique(c, return_inverse=True)
    g = int(code.max()) + 1
    if g < 2:
        return m, math.nan, math.nan
    sums = np.bincount(code, weights=(x - m) / x.size, minlength=g)
    se = math.sqrt(float(np.sum(sums**2)) * g / (g - 1))
    half = float(stats.t.ppf(1 - alpha / 2, g - 1)) * se
    return m, m - half, m + half


def design_effect(values: ArrayLike, cluster: ArrayLike) -> float:
    """How much clustering inflates the variance of a mean (≥ 1; 1 when every row is its own cluster)."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return 1.0
    _, lo, hi = cluster_mean_interval(x, cluster, 0.3173105078629141)  # ±1 se (t with G − 1 df ≈ z)
    se_rows = float(x.std(ddof=1)) / math.sqrt(x.size)
    if not (math.isfinite(lo) and se_rows > 0):
        return 1.0
    return max(1.0, ((hi - lo) / 2 / se_rows) ** 2)


# -- the verdict ---------------------------------------------------------------------------------


def decide(p_value: ArrayLike, diff: ArrayLike, alpha: float, higher_is_better: bool = True) -> NDArray[np.int8]:
    """``verdict`` element-wise, as codes: 1 candidate better, −1 control better, 0 no difference yet
    (an always-valid p-value at most ``alpha`` declares the direction of ``diff``)."""
    p = np.asarray(p_value, dtype=float)
    with np.errstate(invalid="ignore"):
        significant = p <= alpha  # NaN p: False
    direction = np.sign(np.asarray(diff, dtype=float)) * (1 if higher_is_better else -1)
    return np.where(significant, np.nan_to_num(direction), 0).astype(np.int8)


def _fmt_p(p: float, bound: float) -> str:
    """ "p = …" with enough digits that p does not look equal to the bound it is compared with."""
    if p == 0:
        return "p ≈ 0"  # below the smallest float
    if p < 1e-4:
        return f"p = {p:.1e}"
    for digits in range(2, 8):
        s = f"{p:.{digits}g}"
        if (float(s) <= bound) == (p <= bound) and float(s) != bound:
            return f"p = {s}"
    return f"p = {p!r}"


def verdict(
    p_value: float | None,
    diff: float | None,
    n_min: int,
    n_required: int | None,
    alpha: float = 0.05,
    higher_is_better: bool = True,
    *,
    interval: tuple[float, float] | None = None,
    effect: str = "the minimum effect",
    power: float | None = None,
) -> tuple[str, str]:
    """The verdict (one of ``VERDICTS``) and one sentence with the numbers behind it.

    ``p_value`` is the always-valid p-value (``msprt``), so the verdict may be read at any time: a
    difference is declared when it is at most ``alpha``, before, at or after the planned size. ``n_min``
    is the fewest labelled rows among the variants, ``n_required`` the planned rows per variant (None
    when not known yet), ``interval`` the confidence sequence of the difference, ``effect`` the minimum
    effect in words ("2 accuracy points"), ``power`` the plan's power.
    """
    if p_value is None or diff is None or not math.isfinite(p_value) or not math.isfinite(diff):
        return NO_DIFFERENCE_YET, "not enough labelled predictions to test yet"
    code = int(decide(p_value, diff, alpha, higher_is_better))
    ci = f", difference {diff:+.4g} [{interval[0]:+.4g}, {interval[1]:+.4g}]" if interval else ""
    if n_required is None:
        where = f"{n_min:,} labelled rows per variant, the planned size not known yet"
    else:
        where = f"{n_min:,} of {n_required:,} planned labelled rows per variant"
    test = f"always-valid {_fmt_p(p_value, alpha)}"
    if code:
        name = CANDIDATE_BETTER if code > 0 else CONTROL_BETTER
        return name, f"{test} ≤ {alpha:g} ({where}{ci})"
    why = f"{test} > {alpha:g} ({where}{ci})"
    if n_required is not None and n_min >= n_required:
        at = f" at {100 * power:g} % power" if power is not None else " at the planned power"
        return NO_DIFFERENCE_YET, f"{why}: no difference of {effect} or more was found{at}"
    if n_required is None:
        return NO_DIFFERENCE_YET, f"{why}: keep collecting labels"
    return NO_DIFFERENCE_YET, f"{why}: keep collecting, {n_required - n_min:,} more labelled rows per variant planned"
