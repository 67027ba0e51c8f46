"""The analysis of an A/B test: captured predictions and their labels in, the report document out.

``analyze`` reads capture records (one per predicted row, failures included, each with the
``label`` its feedback gave or None) and returns a JSON document: per variant the traffic (requests,
errors, latency), the labelled rows and the metrics on them with intervals; the test of the candidate
against the control on the primary metric (accuracy for classification, MAE for regression); the
planned sample size, rechecked against the live rates, and how much of it is there; and the verdict with
its reason. Shadows are measured like the others and also by how often they agree with the answer
actually given for the same row.

The test (``stats.estimate`` then ``stats.msprt``) is valid however often the report is read: each ramp
step is a stratum (``strata``: the times the split changed), and rows are clustered by their unit, the
record's ``unit`` (the hashed sticky key, when the server records it) or else its request, so correlated
rows of one user or one request count once. The interval of the difference is the test's confidence
sequence: it excludes 0 exactly when the verdict declares a winner.

A label is joined by (request_id, row), so a shadow row gets the label its primary answer got. A
label that is not among ``classes``, or a regression label that is not a number, is counted as
ignored, never raised on. No pandas: the records are read into columns once (list comprehensions)
and everything after that is numpy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlopsctl.bundle.task import is_classification
from mlopsctl.experiments import stats

MIN_PILOT = 30  # labelled rows per variant before a verdict, and before the live rates recheck the plan

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]


@dataclass
class _Columns:
    """The records as columns; ``source`` is, per record, the record whose label it gets (−1: none)."""

    names: list[str]  # variant names, by code
    variant: Ints
    request: Ints  # request id codes
    key: Ints  # (request id, row) codes
    unit: Ints  # the unit rows are clustered by: the record's "unit" (sticky key) or else its request
    ok: NDArray[np.bool_]  # status 200: answered
    latency: Floats
    time: Floats
    version: list[Any]
    prediction: list[Any]
    label: list[Any]
    source: Ints


def _factorize(values: list[Any]) -> tuple[Ints, list[Any]]:
    """Codes 0, 1, … of hashable values by first appearance, and the distinct values."""
    uniq: dict[Any, int] = dict.fromkeys(values, 0)
    for i, u in enumerate(uniq):
        uniq[u] = i
    return np.fromiter(map(uniq.__getitem__, values), np.int64, len(values)), list(uniq)


def _columns(records: Iterable[dict[str, Any]], control: str) -> _Columns:
    recs = records if isinstance(records, list) else list(records)
    n = len(recs)
    raw_variant, raw_names = _factorize([r.get("variant") for r in recs])
    names: dict[str, int] = {}
    to_name = np.array([names.setdefault(str(v or control), len(names)) for v in raw_names], dtype=np.int64)
    variant = to_name[raw_variant] if n else raw_variant
    request, _ = _factorize([r.get("request_id") for r in recs])
    unit, _ = _factorize([("unit", r["unit"]) if r.get("unit") else ("request", r.get("request_id")) for r in recs])
    row = np.asarray([r.get("row") or 0 for r in recs], dtype=np.int64)
    key = request * (int(row.max()) + 1) + row if n else request
    status = _floats([r.get("status") for r in recs])
    ok = (status == 200) | np.isnan(status)  # no status: answered (records from before statuses were kept)
    label = [r.get("label") for r in recs]
    labelled = ok & np.fromiter((x is not None for x in label), np.bool_, n)
    by_key = np.full(int(key.max()) + 1 if n else 0, -1, dtype=np.int64)
    by_key[key[labelled]] = np.flatnonzero(labelled)
    return _Columns(
        names=list(names),
        variant=variant,
        request=request,
        key=key,
        unit=unit,
        ok=ok,
        latency=np.array([r.get("latency_ms") for r in recs], dtype=float),
        time=np.array([r.get("time") for r in recs], dtype=float),
        version=[r.get("version") for r in recs],
        prediction=[r.get("prediction") for r in recs],
        label=label,
        source=np.where(ok, by_key[key], -1) if n else key,
    )


def _class_key(v: Any) -> str:
    """A class as a string that compares the way people mean: 5, 5.0 and "5" are one class."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _class_codes(values: list[Any], index: dict[str, int]) -> Ints:
    """Each value's class code in ``index`` (extended with new classes), by its ``_class_key``."""
    try:
        uniq: dict[Any, int] = dict.fromkeys(values, 0)
    except TypeError:  # an unhashable value (a list): go by the string
        values = [_class_key(v) for v in values]
        uniq = dict.fromkeys(values, 0)
    for u in uniq:
        uniq[u] = index.setdefault(_class_key(u), len(index))
    return np.fromiter(map(uniq.__getitem__, values), np.int64, len(values))


def _floats(values: list[Any]) -> Floats:
    """The values as floats (numeric strings too); what is not a finite number is NaN."""
    try:
        x = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        x = np.array([_number(v) for v in values], dtype=float)
    return np.where(np.isfinite(x), x, np.nan)


def _number(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _f(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _interval(value: Any, lo: Any = None, hi: Any = None) -> dict[str, float | None]:
    return {"value": _f(value), "ci_low": _f(lo), "ci_high": _f(hi)}


def _iso(t: float) -> str | None:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds") if math.isfinite(t) else None


def _macro_f1_statistic(k: int) -> stats.Statistic:
    """Macro F1 of confusion-matrix cells (cell id = true · k + predicted), per row of a count matrix.

    Averaged over the classes that occur as a label or a prediction (sklearn's ``f1_score(average=
    "macro")`` without ``labels``); a class absent from a resample is left out of its average.
    """

    def statistic(levels: NDArray[Any], counts: Floats) -> Floats:
        t, p = levels // k, levels % k
        present, inv = np.unique(np.concatenate([t, p]), return_inverse=True)
        rows = np.arange(levels.size)
        true_of = np.zeros((levels.size, present.size))
        pred_of = np.zeros((levels.size, present.size))
        true_of[rows, inv[: levels.size]] = 1
        pred_of[rows, inv[levels.size :]] = 1
        tp = counts @ (true_of * (t == p)[:, None])
        support = counts @ true_of + counts @ pred_of
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(support > 0, 2 * tp / support, np.nan)
        return np.asarray(np.nanmean(f1, axis=1), dtype=float)

    return statistic


def _rmse_statistic(levels: NDArray[Any], counts: Floats) -> Floats:
    return np.asarray(np.sqrt(counts @ levels / counts.sum(axis=1)), dtype=float)


@dataclass
class _Labelled:
    """One variant's usable labelled rows."""

    n: int = 0
    ignored: int = 0
    correct: int = 0  # classification
    cells: Ints | None = None  # classification: true · k + predicted
    abs_err: Floats | None = None  # regression
    y: Floats = field(default_factory=lambda: np.zeros(0))  # the tested value: correct (0/1) or |error|
    time: Floats = field(default_factory=lambda: np.zeros(0))
    unit: Ints = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _labelled(cols: _Columns, regression: bool, classes: Sequence[Any] | None) -> tuple[dict[int, _Labelled], int]:
    """Per variant code, its labelled answered rows; and k, the number of class codes."""
    rows = np.flatnonzero(cols.source >= 0)
    truth = [cols.label[j] for j in cols.source[rows].tolist()]
    preds = [cols.prediction[i] for i in rows.tolist()]
    var = cols.variant[rows]
    out: dict[int, _Labelled] = {}
    if regression:
        err = np.abs(_floats(preds) - _floats(truth))
        for v in range(len(cols.names)):
            sel = var == v
            ok = sel & np.isfinite(err)
            usable = err[ok]
            out[v] = _Labelled(
                n=usable.size,
                ignored=int(sel.sum()) - usable.size,
                abs_err=usable,
                y=usable,
                time=cols.time[rows[ok]],
                unit=cols.unit[rows[ok]],
            )
        return out, 1
    index: dict[str, int] = {}
    known = None if not classes else _class_codes(list(classes), index)
    t, p = _class_codes(truth, index), _class_codes(preds, index)
    k = max(len(index), 1)
    fine = np.ones(t.size, dtype=bool) if known is None else np.isin(t, known)
    for v in range(len(cols.names)):
        sel = var == v
        tv, pv = t[sel & fine], p[sel & fine]
        out[v] = _Labelled(
            n=tv.size,
            ignored=int((sel & ~fine).sum()),
            correct=int((tv == pv).sum()),
            cells=tv * k + pv,
            y=(tv == pv).astype(float),
            time=cols.time[rows[sel & fine]],
            unit=cols.unit[rows[sel & fine]],
        )
    return out, k


def _traffic(cols: _Columns, v: int, alpha: float) -> dict[str, Any]:
    mine = cols.variant == v
    answered = np.flatnonzero(mine & cols.ok)
    n_req = int(np.unique(cols.request[mine]).size)
    n_err = int(np.unique(cols.request[mine & ~cols.ok]).size)
    lo, hi = stats.wilson_interval(n_err, n_req, alpha)
    _, first = np.unique(cols.request[answered], return_index=True)  # a request's latency, once
    ms = cols.latency[answered[first]]
    ms = ms[np.isfinite(ms)]
    p50, p95 = np.percentile(ms, [50, 95]) if ms.size else (None, None)
    versions = {cols.version[i] for i in np.flatnonzero(mine).tolist()} - {None}
    return {
        "versions": sorted(versions, key=lambda x: (not isinstance(x, int), str(x))),
        "requests": n_req,
        "errors": n_err,
        "error_rate": _interval(n_err / n_req, lo, hi) if n_req else _interval(None),
        "p50_ms": _f(p50),
        "p95_ms": _f(p95),
        "rows": int(answered.size),
    }


def _metrics(lab: _Labelled, regression: bool, k: int, alpha: float) -> dict[str, Any]:
    """The variant's metrics with intervals that allow for clustered rows: MAE's t interval with a
    cluster-robust standard error, accuracy's Wilson interval at the effective number of rows (n over the
    design effect); RMSE by a studentised bootstrap, macro F1 by BCa."""
    if regression:
        assert lab.abs_err is not None
        e = lab.abs_err
        if e.size == 0:
            return {"mae": _interval(None), "rmse": _interval(None)}
        rmse_ci = stats.rmse_interval(e**2, alpha) if e.size > 1 else (None, None)
        return {
            "mae": _interval(*stats.cluster_mean_interval(e, lab.unit, alpha)),
            "rmse": _interval(math.sqrt(float(np.mean(e**2))), *rmse_ci),
        }
    assert lab.cells is not None
    if lab.n == 0:
        return {"accuracy": _interval(None), "f1_macro": _interval(None)}
    stat = _macro_f1_statistic(k)
    levels, counts = np.unique(lab.cells, return_counts=True)
    f1 = float(stat(levels, counts[None, :].astype(float))[0])
    f1_ci = stats.bootstrap_ci(stat, lab.cells, alpha=alpha) if lab.n > 1 else (None, None)
    deff = stats.design_effect(lab.y, lab.unit)
    n_eff = lab.n / deff
    acc = lab.correct / lab.n
    lo, hi = stats.wilson_interval(acc * n_eff, n_eff, alpha)
    return {"accuracy": _interval(acc, lo, hi), "f1_macro": _interval(f1, *f1_ci)}


def _agreement(cols: _Columns, v: int, primaries: list[int], regression: bool, alpha: float) -> dict[str, Any]:
    """How the shadow's answers compare with the answer given (by a primary) for the same row."""
    primary = np.isin(cols.variant, primaries) & cols.ok
    by_key = np.full(int(cols.key.max()) + 1, -1, dtype=np.int64)
    by_key[cols.key[primary]] = np.flatnonzero(primary)
    mine = np.flatnonzero((cols.variant == v) & cols.ok)
    other = by_key[cols.key[mine]]
    mine, other = mine[other >= 0], other[other >= 0]
    ours = [cols.prediction[i] for i in mine.tolist()]
    theirs = [cols.prediction[i] for i in other.tolist()]
    if regression:
        d = np.abs(_floats(ours) - _floats(theirs))
        d = d[np.isfinite(d)]
        return {"mean_abs_difference": _f(d.mean()) if d.size else None, "compared": int(d.size)}
    index: dict[str, int] = {}
    same = int((_class_codes(ours, index) == _class_codes(theirs, index)).sum())
    n = int(mine.size)
    agreement = _interval(same / n, *stats.wilson_interval(same, n, alpha)) if n else _interval(None)
    return {"agreement": agreement, "compared": n}


def analyze(
    records: Iterable[dict[str, Any]],
    *,
    task: str,
    classes: Sequence[Any] | None = None,
    model: str = "",
    experiment: str | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    min_effect: float = 0.02,
    control: str = "control",
    candidate: str = "candidate",
    planned_per_variant: int | None = None,
    strata: Sequence[float] = (),
    reference_mae: float | None = None,
) -> dict[str, Any]:
    """The report document of an A/B test (see the module docstring), JSON-ready: no NaN, no numpy.

    ``min_effect`` is in accuracy points for classification and a share of the control's MAE for
    regression (``reference_mae``, the control's holdout MAE, else its live MAE). ``planned_per_variant``
    is the plan made when the experiment started; once the control has ``MIN_PILOT`` labels the plan is
    recomputed from the live rates (and the clustering of the rows) and the start plan's power under them
    is reported. ``strata`` are the times (epoch seconds) the traffic split changed: each period between
    them is a stratum of the test.
    """
    regression = not is_classification(task)
    records = _as_list(records)
    cols = _columns(records, control)
    code = {name: i for i, name in enumerate(cols.names)}
    shadows = sorted(n for n in code if n not in (control, candidate))
    order = [n for n in (control, candidate) if n in code] + shadows
    rows, k = _labelled(cols, regression, classes)
    primaries = [code[n] for n in (control, candidate) if n in code]

    variants = []
    for name in order:
        role = "control" if name == control else "candidate" if name == candidate else "shadow"
        lab = rows[code[name]]
        entry = {"name": name, "role": role, **_traffic(cols, code[name], alpha), "labelled": lab.n}
        entry["ignored_labels"] = lab.ignored
        entry.update(_metrics(lab, regression, k, alpha))
        if role == "shadow":
            entry.update(_agreement(cols, code[name], primaries, regression, alpha))
        variants.append(entry)

    empty = _Labelled(abs_err=np.zeros(0), cells=np.zeros(0, dtype=np.int64))
    c_rows, t_rows = rows.get(code.get(control, -1), empty), rows.get(code.get(candidate, -1), empty)
    metric = "mae" if regression else "accuracy"
    higher_is_better = not regression
    bounds = np.sort(np.asarray(list(strata), dtype=float))
    est = stats.estimate(
        np.concatenate([c_rows.y, t_rows.y]),
        np.r_[np.zeros(c_rows.n, dtype=bool), np.ones(t_rows.n, dtype=bool)],
        np.searchsorted(bounds, np.concatenate([c_rows.time, t_rows.time]), side="right"),
        np.concatenate([c_rows.unit, t_rows.unit]),
    )
    control_value = float(c_rows.y.mean()) if c_rows.n else math.nan
    base = reference_mae if regression and reference_mae else control_value if regression else 1.0
    delta = min_effect * base if base and math.isfinite(base) else math.nan
    tau = stats.mixing_sd(delta, alpha, power) if math.isfinite(delta) and delta > 0 else math.nan
    seq = stats.msprt(est.diff, est.variance, tau, alpha) if math.isfinite(tau) else None
    p_value = float(seq.p_value) if seq is not None else math.nan
    lo, hi = (float(seq.ci_low), float(seq.ci_high)) if seq is not None else (math.nan, math.nan)
    z = est.diff / math.sqrt(est.variance) if est.variance > 0 else math.nan
    comparison = stats.Comparison("mixture SPRT (always valid)", est.diff, lo, hi, z, p_value, alpha)
    unit = "sticky key" if any(r.get("unit") for r in records) else "request"
    test = {
        "metric": metric,
        "higher_is_better": higher_is_better,
        "control": control,
        "candidate": candidate,
        "n_control": c_rows.n,
        "n_candidate": t_rows.n,
        **comparison.to_dict(),
        "relative_diff": _f(est.diff / est.control_mean) if est.control_mean else None,
        "always_valid": True,
        "tau": _f(tau),
        "variance": _f(est.variance),
        "clusters": est.clusters,
        "cluster_by": unit,
        "design_effect": _f(est.design_effect),
        "strata": est.strata,
        "rows_tested": {control: est.n_control, candidate: est.n_candidate},
    }

    plan = _plan(regression, c_rows, t_rows, est, alpha, power, min_effect, delta, planned_per_variant)
    have = {control: c_rows.n, candidate: t_rows.n}
    n_min = min(have.values())
    required = plan.required
    sample_size = {
        "required_per_variant": required,
        "basis": plan.basis,
        "have": have,
        "still_needed": None if required is None else max(0, required - n_min),
        "reached": required is not None and n_min >= required,
        "planned_at_start": planned_per_variant,
        "power_of_start_plan": _f(plan.power_of_start),
    }

    if c_rows.n == 0 and t_rows.n == 0:
        verdict, reason = stats.NO_DIFFERENCE_YET, "no labelled predictions yet"
    elif c_rows.n == 0 or t_rows.n == 0:
        verdict, reason = (
            stats.NO_DIFFERENCE_YET,
            f"no labelled predictions for {control if c_rows.n == 0 else candidate} yet",
        )
    elif min(est.n_control, est.n_candidate) < MIN_PILOT or not math.isfinite(p_value):
        verdict, reason = (
            stats.NO_DIFFERENCE_YET,
            f"too few labelled predictions to test yet ({MIN_PILOT} per variant at least, in the same ramp step)",
        )
    else:
        verdict, reason = stats.verdict(
            p_value,
            est.diff,
            n_min,
            required,
            alpha,
            higher_is_better,
            interval=(lo, hi),
            effect=plan.effect,
            power=power,
        )
        if est.strata > 1:
            reason += f"; {est.strata} ramp steps compared step by step"
        if est.design_effect > 1.05:
            reason += f"; rows clustered by {unit} (variance x{est.design_effect:.2g})"

    by_name = {e["name"]: e for e in variants}
    traffic = {n: (by_name[n]["requests"], by_name[n]["errors"]) if n in by_name else (0, 0) for n in have}
    errors = stats.two_proportions(
        traffic[control][1], traffic[control][0], traffic[candidate][1], traffic[candidate][0], alpha
    )
    latency: dict[str, Any] = {
        n: {"p50_ms": by_name[n]["p50_ms"], "p95_ms": by_name[n]["p95_ms"]} if n in by_name else None for n in have
    }
    c_p95 = (latency[control] or {}).get("p95_ms")
    t_p95 = (latency[candidate] or {}).get("p95_ms")
    latency["p95_change"] = _f(t_p95 / c_p95 - 1) if c_p95 and t_p95 is not None else None

    finite_times = cols.time[np.isfinite(cols.time)]
    return {
        "model": model,
        "experiment": experiment,
        "task": task,
        "metric": metric,
        "alpha": alpha,
        "power": power,
        "min_effect": min_effect,
        "method": "msprt",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "records": int(cols.variant.size),
        "first_time": _iso(float(finite_times.min())) if finite_times.size else None,
        "last_time": _iso(float(finite_times.max())) if finite_times.size else None,
        "variants": variants,
        "test": test,
        "sample_size": sample_size,
        "verdict": verdict,
        "reason": reason,
        "error_rate_test": {"higher_is_better": False, **errors.to_dict()},
        "latency": latency,
    }


def _as_list(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return records if isinstance(records, list) else list(records)


@dataclass(frozen=True)
class _Plan:
    required: int | None  # rows per variant the verdict needs to find the minimum effect with the power
    basis: str
    effect: str  # the minimum effect in words
    power_of_start: float | None  # the start plan's power at the live rates


def _plan(
    regression: bool,
    c: _Labelled,
    t: _Labelled,
    est: stats.Estimate,
    alpha: float,
    power: float,
    min_effect: float,
    delta: float,
    planned: int | None,
) -> _Plan:
    """Rows per variant to plan for: the start plan until the control has ``MIN_PILOT`` labels, then the
    plan at the live rates (with the rows' design effect), and the start plan's power at those rates."""
    deff = est.design_effect if math.isfinite(est.design_effect) else 1.0
    clustered = f", design effect {deff:.2g}" if deff > 1.05 else ""
    if not regression:
        effect = f"{100 * min_effect:g} accuracy points"
        if c.n < MIN_PILOT:
            if planned is not None:
                return _Plan(planned, f"fixed when the experiment started, {effect}", effect, None)
            basis = f"accuracy 0.5 assumed (the control has fewer than {MIN_PILOT} labelled rows), {effect}"
            return _Plan(stats.sample_size_proportions(0.5, min_effect, alpha, power), basis, effect, None)
        p1 = c.correct / c.n
        p2 = p1 + min_effect if p1 + min_effect <= 1 else p1 - min_effect
        s2 = (p1 * (1 - p1) + p2 * (1 - p2)) * deff
        basis = f"live control accuracy {p1:.3f} on {c.n:,} labelled rows{clustered}, {effect}"
    else:
        assert c.abs_err is not None and t.abs_err is not None
        effect = f"{100 * min_effect:g} % of the control's MAE"
        if c.n < MIN_PILOT or not math.isfinite(delta) or delta <= 0:
            if planned is not None:
                return _Plan(planned, f"fixed when the experiment started, {effect}", effect, None)
            return _Plan(None, f"not known yet: the control has fewer than {MIN_PILOT} labelled rows", effect, None)
        if t.n >= 2:
            sd = math.sqrt(((c.n - 1) * c.abs_err.var(ddof=1) + (t.n - 1) * t.abs_err.var(ddof=1)) / (c.n + t.n - 2))
        else:
            sd = float(c.abs_err.std(ddof=1))
        s2 = 2 * sd * sd * deff
        effect = f"{100 * min_effect:g} % of the control's MAE ({delta:.4g})"
        basis = f"live sd of absolute errors {sd:.4g}{clustered}, {effect}"
    required = stats.rows_for(s2, delta, alpha, power, True)
    start_power = None
    if planned is not None:
        start_power = float(stats.sequential_power(planned, s2, delta, alpha, power))
        basis += f"; the start plan ({planned:,}) has {100 * start_power:.0f} % power at these rates"
    return _Plan(required, basis, effect, start_power)
