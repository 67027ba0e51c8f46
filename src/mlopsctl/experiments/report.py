"""An experiment's report from the store: its captured requests joined with feedback, analysed.

``build_report`` reads the capture records of the model between the experiment's start and
end (all statuses, every variant: control, candidate and the shadows), attaches the last
feedback label given for each (request id, row), and hands them to ``analysis.analyze`` with
the significance level, power and minimum effect of ``[experiments]``, the times the split changed
(ramp steps and pull-backs from the experiment's log: the strata of the test) and the control's
holdout MAE (the unit of a regression's minimum effect). The experiment's own facts (id,
environment, versions, weights, status, guard and ramp events) are added on top.
"""

from __future__ import annotations

import time
from typing import Any

from mlopsctl.bundle.task import is_regression
from mlopsctl.config import ExperimentsSection
from mlopsctl.experiments.analysis import analyze
from mlopsctl.experiments.deployment import CANDIDATE, CONTROL, SHADOW_PREFIX, read_deployment
from mlopsctl.monitoring.captured import latest_labels, load_captures
from mlopsctl.monitoring.performance import FEEDBACK_LAG
from mlopsctl.store.base import Store


def _parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def experiment_rows(store: Store, name: str, since: float, until: float | None) -> list[dict[str, Any]]:
    """Capture records of ``name`` in [since, until], each with ``label`` (None without feedback)."""
    records = load_captures(store, name, since, until)
    labels, _ = latest_labels(store, name, since, None if until is None else until + FEEDBACK_LAG)
    for r in records:
        r["label"] = labels.get((r["request_id"], int(r.get("row", 0))))
    return records


def planned_rows(store: Store, name: str, control_version: int, cfg: ExperimentsSection) -> int | None:
    """Labelled rows per variant to plan for at the start, from the control's holdout metrics.

    The plan is for the always-valid test (``stats.sample_size_*``), so it says how long to run, never
    when it is safe to look. Classification: the two-proportion variance at the holdout accuracy.
    Regression: the two-mean formula on absolute errors, whose spread follows from the holdout RMSE and
    MAE (Var|e| = RMSE² − MAE²), for an effect of ``min_effect`` × MAE. None when the version has no such
    metrics. Live rates differ from holdout ones: the report rechecks the plan once labels come in.
    """
    from mlopsctl.bundle.version import version_at

    control = version_at(store, name, control_version)
    return plan_from_metrics(control.task, control.metrics, cfg)


def plan_from_metrics(task: str, metrics: dict[str, Any], cfg: ExperimentsSection) -> int | None:
    import math

    from mlopsctl.experiments.stats import sample_size_means, sample_size_proportions

    if is_regression(task):
        rmse, mae = metrics.get("rmse"), metrics.get("mae")
        if not isinstance(rmse, int | float) or not isinstance(mae, int | float) or mae <= 0:
            return None
        sd = math.sqrt(max(float(rmse) ** 2 - float(mae) ** 2, (0.1 * float(mae)) ** 2))
        return sample_size_means(sd, cfg.min_effect * float(mae), cfg.alpha, cfg.power)
    acc = metrics.get("accuracy")
    if not isinstance(acc, int | float) or not 0 < acc < 1:
        return None
    p = min(float(acc), 1 - cfg.min_effect - 1e-6)
    return sample_size_proportions(p, cfg.min_effect, cfg.alpha, cfg.power)


def split_changes(record: dict[str, Any]) -> list[float]:
    """The times (epoch seconds) the experiment's traffic split changed: its ramp steps and pull-backs.

    Between two changes the split is constant, so each period is a stratum of the test: comparing the
    variants within a step, never across steps, keeps a metric that moves in time (a weekday, a season)
    from looking like a difference when the ramp moves traffic at the same time.
    """
    out = []
    for entry in record.get("log") or []:
        if "weight" in entry and entry.get("at"):
            t = _parse_iso(str(entry["at"]))
            if t is not None:
                out.append(t)
    return sorted(out)


def build_report(store: Store, name: str, record: dict[str, Any], cfg: ExperimentsSection) -> dict[str, Any]:
    """The report of the experiment ``record`` (as `deployment.experiment_record` returns it)."""
    since = float(record["started_ts"])
    until = _parse_iso(record.get("ended_at"))
    control_version = int(record["control_version"])
    from mlopsctl.bundle.version import version_at

    control = version_at(store, name, control_version)
    # the experiment's variants and the shadows: not a request answered before the route switched
    records = [
        r
        for r in experiment_rows(store, name, since, until)
        if r.get("variant") in (CONTROL, CANDIDATE) or str(r.get("variant", "")).startswith(SHADOW_PREFIX)
    ]
    mae = control.metrics.get("mae")
    report = analyze(
        records,
        task=control.task,
        classes=control.classes,
        model=name,
        experiment=str(record["id"]),
        alpha=cfg.alpha,
        power=cfg.power,
        min_effect=cfg.min_effect,
        planned_per_variant=record.get("planned_per_variant"),
        strata=split_changes(record),
        reference_mae=float(mae) if isinstance(mae, int | float) and mae > 0 else None,
    )
    live = None
    if until is None:
        dep, _ = read_deployment(store, name, str(record["environment"]))
        if dep is not None and dep.experiment_id == record["id"]:
            live = dep
    report["experiment_info"] = {
        "id": record["id"],
        "environment": record["environment"],
        "started_at": record.get("started_at"),
        "ended_at": record.get("ended_at"),
        "duration_seconds": round((until or time.time()) - since, 1),
        "status": (live.experiment or {}).get("status") if live else record.get("status"),
        "control": {"ref": record["control"], "version": control_version},
        "candidate": {"ref": record["candidate"], "version": record["candidate_version"]},
        "weights": {v.name: v.weight for v in live.variants} if live else None,
        "sticky": record.get("sticky"),
        "ramp": record.get("ramp") or [],
        "step": (live.experiment or {}).get("step") if live else record.get("step"),
        "shadows": [s.name for s in live.shadows] if live else [],
        "log": record.get("log", []),
    }
    return report
