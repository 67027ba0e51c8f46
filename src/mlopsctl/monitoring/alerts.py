"""Alert rules from `[monitoring.alerts]`: as Prometheus alerting rules, and evaluated by mlopsctl itself.

Five rules, each one alert per model (defaults in `mlopsctl.config.AlertsSection`):

| rule | fires when (per model) | Prometheus alert |
| --- | --- | --- |
| latency | p95 latency > ``latency_p95_ms`` for ``latency_for`` | ``MlopsLatencyHigh`` |
| errors | share of non-2xx answers > ``error_rate`` for ``error_for`` | ``MlopsErrorRateHigh`` |
| silence | no request (or no metrics) for ``silence_for`` | ``MlopsNoRequests`` |
| drift | drifted share of features in the latest drift report > ``drift_share`` | ``MlopsDatasetDrift`` |
| accuracy | live accuracy < ``accuracy_min`` (over ``accuracy_min_samples`` labels) | ``MlopsAccuracyLow`` |

An error is any status other than 2xx: the server counts 4xx (rejected input) and would count
5xx the same way, and a jump in rejected inputs is how a client whose schema changed shows up.

Rates (error share, p95) are taken over ``rate_window(for)``: the rule's duration, at least one
minute (a Prometheus window must hold two scrapes), at most five. `mlopsctl.monitoring.evaluate`
runs the same rules on its own scrapes, for `mlopsctl monitor check`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mlopsctl.config import AlertsSection, Config, prometheus_duration
from mlopsctl.monitoring import scrape

GROUP = "mlopsctl"


@dataclass(frozen=True)
class Rule:
    key: str  # the name `AlertsSection.rules_on()` uses
    alert: str
    severity: str
    threshold: float
    for_seconds: float  # how long the condition must hold
    window: float  # rate window (latency, errors), quiet window (silence), 0 for gauges


def rate_window(for_seconds: float) -> float:
    return min(max(for_seconds, 60.0), 300.0)


def rules_of(cfg: AlertsSection) -> list[Rule]:
    out = []
    if cfg.latency_p95_ms is not None:
        out.append(
            Rule(
                "latency",
                "MlopsLatencyHigh",
                "warning",
                cfg.latency_p95_ms,
                cfg.latency_for,
                rate_window(cfg.latency_for),
            )
        )
    if cfg.error_rate is not None:
        out.append(
            Rule("errors", "MlopsErrorRateHigh", "critical", cfg.error_rate, cfg.error_for, rate_window(cfg.error_for))
        )
    if cfg.silence_for is not None:
        out.append(Rule("silence", "MlopsNoRequests", "warning", cfg.silence_for, cfg.silence_for, 0.0))
    if cfg.drift_share is not None:
        out.append(Rule("drift", "MlopsDatasetDrift", "warning", cfg.drift_share, 0.0, 0.0))
    if cfg.accuracy_min is not None:
        out.append(Rule("accuracy", "MlopsAccuracyLow", "critical", cfg.accuracy_min, 0.0, 0.0))
    return out


# -- Prometheus --------------------------------------------------------------------------------------


def _num(x: float) -> str:
    return format(x, ".10g")


def _pct(x: float) -> str:
    return f"{_num(x * 100)}%"


def silence_split(silence_for: float) -> tuple[float, float]:
    """(window, for) of the Prometheus silence rule: ``increase(...[window]) == 0`` held ``for`` the
    rest, so the quiet span is ``silence_for`` in all (a window holds two scrapes: at least 1m)."""
    window = min(300.0, max(60.0, silence_for / 2))
    return window, max(silence_for - window, 0.0)


def _quote(label_value: str) -> str:
    return json.dumps(label_value)  # PromQL strings take Go's escapes, which JSON's are a subset of


def prometheus_rules(cfg: Config | AlertsSection, model_names: Iterable[str] = ()) -> dict[str, Any]:
    """The rules as a Prometheus rule file (a dict to dump as YAML). The expressions cover every
    model the server exports; ``model_names`` adds, for silence, an alert when their metrics are
    absent altogether (server down or not scraped)."""
    a = cfg.monitoring.alerts if isinstance(cfg, Config) else cfg
    rules: list[dict[str, Any]] = []
    for r in rules_of(a):
        w = prometheus_duration(r.window) if r.window else ""
        hold = r.for_seconds
        if r.key == "latency":
            q = f"histogram_quantile(0.95, sum by (le, model) (rate({scrape.BUCKETS}[{w}])))"
            expr = f"{q} > {_num(r.threshold / 1000)}"
            summary = "p95 latency {{ $value | humanizeDuration }}" + f" above {_num(r.threshold)}ms"
            about = f"95th percentile of mlops_request_duration_seconds over {w} above the bound"
        elif r.key == "errors":
            expr = (
                f'(sum by (model) (rate({scrape.REQUESTS}{{status!~"2.."}}[{w}]))'
                f" / sum by (model) (rate({scrape.REQUESTS}[{w}]))) > {_num(r.threshold)}"
            )
            summary = "{{ $value | humanizePercentage }} of requests failed" + f" (above {_pct(r.threshold)})"
            about = f"share of mlops_requests_total with a non-2xx status over {w} above the bound"
        elif r.key == "silence":
            window, hold = silence_split(r.threshold)
            w = prometheus_duration(window)
            expr = f"sum by (model) (increase({scrape.REQUESTS}[{w}])) == 0"
            for name in model_names:
                expr += f" or absent_over_time({scrape.REQUESTS}{{model={_quote(name)}}}[{w}])"
            summary = f"no requests for {prometheus_duration(r.threshold)}"
            about = f"no increase of mlops_requests_total (or no such series) over {w}"
        elif r.key == "drift":
            expr = f"max by (model) (mlops_drift_share) > {_num(r.threshold)}"
            summary = "{{ $value | humanizePercentage }} of features drifted" + f" (above {_pct(r.threshold)})"
            about = "drifted share of features in the latest drift report (mlops_drift_share) above the bound"
        else:
            expr = (
                "(sum by (model) (mlops_live_accuracy * mlops_live_labelled) / sum by (model) (mlops_live_labelled))"
                f" < {_num(r.threshold)}"
                f" and on (model) (sum by (model) (mlops_live_labelled) >= {a.accuracy_min_samples})"
            )
            summary = 'live accuracy {{ $value | printf "%.3f" }}' + f" below {_num(r.threshold)}"
            about = (
                f"accuracy of predictions with feedback (mlops_live_accuracy) below the bound, "
                f"over {a.accuracy_min_samples} labels at least"
            )
        rule: dict[str, Any] = {"alert": r.alert, "expr": expr}
        if hold:
            rule["for"] = prometheus_duration(hold)
            about += f", for {prometheus_duration(hold)}"
        rule["labels"] = {"severity": r.severity, "rule": r.key}
        rule["annotations"] = {
            "summary": "{{ $labels.model }}: " + summary,
            "description": f"mlopsctl rule {r.key}: {about}.",
        }
        rules.append(rule)
    return {"groups": [{"name": GROUP, "rules": rules}]}


def render_yaml(doc: dict[str, Any], header: str = "") -> str:
    import yaml

    text = yaml.safe_dump(doc, sort_keys=False, width=1_000, allow_unicode=True)
    return (header + "\n" if header else "") + text


RULES_HEADER = (
    "# Prometheus alerting rules written by `mlopsctl monitor rules` from [monitoring.alerts] in mlops.toml.\n"
    "# Regenerate rather than edit: docs/alerts.md."
)


def describe(rule: Rule, value: float | None) -> str:
    """What an alert's value means, in words: ``error rate 12.5% (bound 5%)``."""

    def show(fmt: Callable[[float], str]) -> str:
        return "-" if value is None else fmt(value)

    if rule.key == "latency":
        return f"p95 latency {show(lambda v: f'{v * 1000:.1f} ms')} (bound {_num(rule.threshold)} ms)"
    if rule.key == "errors":
        return f"error rate {show(lambda v: f'{v:.1%}')} (bound {_pct(rule.threshold)})"
    if rule.key == "silence":
        return f"no requests for {show(prometheus_duration)} (bound {prometheus_duration(rule.threshold)})"
    if rule.key == "drift":
        return f"drifted share of features {show(lambda v: f'{v:.0%}')} (bound {_pct(rule.threshold)})"
    return f"live accuracy {show(lambda v: f'{v:.3f}')} (bound {_num(rule.threshold)})"


def rule_named(key: str, cfg: AlertsSection) -> Rule:
    """The rule ``key`` as configured (a rule turned off: its name, no bound)."""
    for r in rules_of(cfg):
        if r.key == key:
            return r
    names = {"latency": "MlopsLatencyHigh", "errors": "MlopsErrorRateHigh", "silence": "MlopsNoRequests"}
    names |= {"drift": "MlopsDatasetDrift", "accuracy": "MlopsAccuracyLow"}
    return Rule(key, names.get(key, key), "warning", 0.0, 0.0, 0.0)
