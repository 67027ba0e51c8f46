"""Alert rules from `[monitoring.alerts]`: as Prometheus alerting rules, and evaluated by mlopsctl itself.

One alert per model for each rule (defaults in `mlopsctl.config.AlertsSection`); ``down`` is one per server:

| rule | fires when | Prometheus alert |
| --- | --- | --- |
| latency | p95 latency > ``latency_p95_ms`` for ``latency_for`` | ``MlopsLatencyHigh`` |
| errors | share of non-2xx answers > ``error_rate`` for ``error_for`` | ``MlopsErrorRateHigh`` |
| silence | no request (or no metrics) for ``silence_for`` | ``MlopsNoRequests`` |
| down | a server does not answer ``/metrics`` (for ``down_for``); none reports at all | ``MlopsServerDown`` |
| capture | no prediction of the model captured for ``capture_for`` | ``MlopsNoCapture`` |
| drift | drifted share of features in the latest drift report > ``drift_share`` | ``MlopsDatasetDrift`` |
| *metric* | a live metric past its bound ``min.METRIC`` / ``max.METRIC`` | ``MlopsAccuracyLow``, ``MlopsRmseHigh``… |

A metric's rule applies to the models whose task has that metric (`taskmetrics.metrics_of`): a
regression model is never judged by accuracy. An error is any status other than 2xx: the server
counts 4xx (rejected input) and would count 5xx the same way, and a jump in rejected inputs is how
a client whose schema changed shows up.

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
    key: str  # the name `AlertsSection.rules_on()` uses (a live metric's rule: the metric's name)
    alert: str
    severity: str
    threshold: float
    for_seconds: float  # how long the condition must hold
    window: float  # rate window (latency, errors), quiet window (silence, capture), 0 for gauges
    side: str = ""  # a live metric's rule: "min" (a floor) or "max" (a ceiling)

    @property
    def metric(self) -> str | None:
        """The live metric this rule bounds (None: an operational rule)."""
        return self.key if self.side else None


OPERATIONAL = {
    "latency": "MlopsLatencyHigh",
    "errors": "MlopsErrorRateHigh",
    "silence": "MlopsNoRequests",
    "down": "MlopsServerDown",
    "capture": "MlopsNoCapture",
    "drift": "MlopsDatasetDrift",
}
SERVER_RULES = frozenset({"down"})  # judged per server, not per model
SERVERS = "(servers)"  # the `model` of the server-wide alerts in `monitor check` (no model is named so)


def alert_name(key: str, side: str = "") -> str:
    """``MlopsAccuracyLow``, ``MlopsRmseHigh``, ``MlopsF1MacroLow``: a metric's alert; else the rule's."""
    if key in OPERATIONAL:
        return OPERATIONAL[key]
    from mlopsctl.monitoring.taskmetrics import FLOORS

    camel = "".join(part.capitalize() for part in key.split("_"))
    return f"Mlops{camel}{'Low' if (side or ('min' if key in FLOORS else 'max')) == 'min' else 'High'}"


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
    if cfg.down_for is not None:
        out.append(Rule("down", "MlopsServerDown", "critical", 0.0, cfg.down_for, 0.0))
    if cfg.capture_for is not None:
        out.append(Rule("capture", "MlopsNoCapture", "warning", cfg.capture_for, 0.0, cfg.capture_for))
    if cfg.drift_share is not None:
        out.append(Rule("drift", "MlopsDatasetDrift", "warning", cfg.drift_share, 0.0, 0.0))
    for metric, side, bound in cfg.bounds():
        out.append(Rule(metric, alert_name(metric, side), "critical", bound, 0.0, 0.0, side))
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


def _metric_expr(rule: Rule, min_labels: int) -> tuple[str, str, str]:
    """A live metric's rule: the labelled-weighted mean over replicas, judged once enough labels are in."""
    m = rule.key
    gauge = f"mlops_live_{m}"
    mean = f"(sum by (model) ({gauge} * mlops_live_labelled) / sum by (model) (mlops_live_labelled))"
    if m == "bias":
        mean = f"abs{mean}"
    op, word = ("<", "below") if rule.side == "min" else (">", "above")
    expr = f"{mean} {op} {_num(rule.threshold)} and on (model) (sum by (model) (mlops_live_labelled) >= {min_labels})"
    shown = "|bias|" if m == "bias" else m.replace("_", " ")
    summary = f"live {shown} " + '{{ $value | printf "%.3f" }}' + f" {word} {_num(rule.threshold)}"
    about = f"{shown} of the predictions with feedback ({gauge}) {word} the bound, over {min_labels} labels at least"
    return expr, summary, about


def prometheus_rules(
    cfg: Config | AlertsSection, model_names: Iterable[str] = (), *, job: str = "mlopsctl"
) -> dict[str, Any]:
    """The rules as a Prometheus rule file (a dict to dump as YAML). The expressions cover every
    model the server exports; ``model_names`` adds, for silence and capture, an alert when their
    metrics are absent altogether (server down or not scraped). ``job``: the scrape job of the servers."""
    a = cfg.monitoring.alerts if isinstance(cfg, Config) else cfg
    if isinstance(cfg, Config) and not cfg.monitoring.capture.enabled:
        a = a.model_copy(update={"capture_for": None})  # nothing is captured: no capture to miss
    names = list(model_names)
    rules: list[dict[str, Any]] = []
    for r in rules_of(a):
        w = prometheus_duration(r.window) if r.window else ""
        hold = r.for_seconds
        prefix = "{{ $labels.model }}: "
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
        elif r.key in ("silence", "capture"):
            window, hold = silence_split(r.threshold)
            w = prometheus_duration(window)
            series = scrape.REQUESTS if r.key == "silence" else scrape.CAPTURED
            expr = f"sum by (model) (increase({series}[{w}])) == 0"
            for name in names:
                expr += f" or absent_over_time({series}{{model={_quote(name)}}}[{w}])"
            if r.key == "silence":
                summary = f"no requests for {prometheus_duration(r.threshold)}"
                about = f"no increase of mlops_requests_total (or no such series) over {w}"
            else:
                summary = f"no prediction captured for {prometheus_duration(r.threshold)}"
                about = f"no increase of {series} (or no such series) over {w}"
        elif r.key == "down":
            expr = f"up{{job={_quote(job)}}} == 0 or absent(mlops_ready)"
            prefix = ""
            summary = (
                "{{ if $labels.instance }}server {{ $labels.instance }} does not answer /metrics"
                "{{ else }}no server reports metrics (mlops_ready absent){{ end }}"
            )
            about = f"a target of job {job} is down (up == 0), or no server's mlops_ready is scraped at all"
        elif r.key == "drift":
            expr = f"max by (model) (mlops_drift_share) > {_num(r.threshold)}"
            summary = "{{ $value | humanizePercentage }} of features drifted" + f" (above {_pct(r.threshold)})"
            about = "drifted share of features in the latest drift report (mlops_drift_share) above the bound"
        else:
            expr, summary, about = _metric_expr(r, a.min_labels)
        rule: dict[str, Any] = {"alert": r.alert, "expr": expr}
        if hold:
            rule["for"] = prometheus_duration(hold)
            about += f", for {prometheus_duration(hold)}"
        rule["labels"] = {"severity": r.severity, "rule": r.key}
        rule["annotations"] = {
            "summary": prefix + summary,
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
    if rule.key == "down":
        return f"{show(lambda v: f'{v:.0f}')} server(s) not answering /metrics"
    if rule.key == "capture":
        bound = prometheus_duration(rule.threshold)
        if value is None:
            return f"no captured prediction (bound {bound})"
        return f"last prediction captured {prometheus_duration(value)} ago (bound {bound})"
    if rule.key == "drift":
        return f"drifted share of features {show(lambda v: f'{v:.0%}')} (bound {_pct(rule.threshold)})"
    shown = "|bias|" if rule.key == "bias" else rule.key.replace("_", " ")
    return f"live {shown} {show(lambda v: f'{v:.3f}')} (bound {_num(rule.threshold)})"


def rule_named(key: str, cfg: AlertsSection) -> Rule:
    """The rule ``key`` as configured (a rule turned off: its name, no bound)."""
    for r in rules_of(cfg):
        if r.key == key:
            return r
    return Rule(key, alert_name(key), "warning", 0.0, 0.0, 0.0)
