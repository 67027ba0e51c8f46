"""Files for a Prometheus + Grafana stack watching the servers: `mlopsctl monitor stack --out DIR`.

    DIR/prometheus.yml                               scrape configuration (rule file beside it)
    DIR/mlops-alerts.yml                             the alerting rules (`alerts.prometheus_rules`)
    DIR/grafana/dashboards/mlopsctl.json             the dashboard
    DIR/grafana/provisioning/datasources/mlopsctl.yml   Prometheus as Grafana's data source
    DIR/grafana/provisioning/dashboards/mlopsctl.yml    load the dashboards folder

Every query reads metrics the server exports (`mlopsctl.serving.metrics`); the tests hold
the dashboard to that.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlopsctl.config import AlertsSection
from mlopsctl.monitoring.alerts import RULES_HEADER, prometheus_rules, render_yaml
from mlopsctl.monitoring.taskmetrics import CLASSIFICATION, FLOORS, REGRESSION

RULES_FILE = "mlops-alerts.yml"
DASHBOARD_UID = "mlopsctl-serving"
_DS = {"type": "prometheus", "uid": "${datasource}"}
_M = '{model=~"$model"}'


def _target(expr: str, legend: str, *, instant: bool = False, ref: str = "A") -> dict[str, Any]:
    t: dict[str, Any] = {"datasource": _DS, "expr": expr, "legendFormat": legend, "refId": ref}
    if instant:
        t |= {"instant": True, "range": False, "format": "table"}
    return t


def _panel(
    title: str,
    targets: list[dict[str, Any]],
    pos: tuple[int, int, int, int],
    *,
    kind: str = "timeseries",
    unit: str = "short",
    description: str = "",
    threshold: float | None = None,
    bad_below: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A panel; ``threshold`` draws an alert bound (red above it, or below it with ``bad_below``)."""
    x, y, w, h = pos
    defaults: dict[str, Any] = {"unit": unit}
    if threshold is not None:
        low, high = ("red", "green") if bad_below else ("green", "red")
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": low, "value": None}, {"color": high, "value": threshold}],
        }
        defaults["custom"] = {"thresholdsStyle": {"mode": "line"}}
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": _DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {},
        **(extra or {}),
    }


def _live_panel(a: AlertsSection, kind: str, names: Sequence[str], pos: tuple[int, int, int, int]) -> dict[str, Any]:
    """The live metrics of a kind of task, each the labelled-weighted mean over the servers (the rules' too);
    the first bound set on one of them is drawn as a line."""
    bounds = [(m, side, b) for m, side, b in a.bounds() if m in names]
    targets = [
        _target(
            f"sum by (model) (mlops_live_{m}{_M} * mlops_live_labelled{_M}) / sum by (model) (mlops_live_labelled{_M})",
            "{{model}} " + m,
        )
        for m in names
    ]
    title = (
        "Live classification metrics: accuracy, macro F1, precision, recall"
        if kind == "classification"
        else "Live regression metrics: RMSE, MAE, R², bias"
    )
    return _panel(
        title,
        targets,
        pos,
        unit="percentunit" if kind == "classification" else "short",
        threshold=bounds[0][2] if bounds else None,
        bad_below=bool(bounds) and bounds[0][0] in FLOORS,
        description=f"Predictions with feedback over the labels window ({kind} models; no data for the others, "
        "and until the first label).",
    )


def dashboard(alerts: AlertsSection | None = None) -> dict[str, Any]:
    """The Grafana dashboard (JSON model, schema 39): traffic, errors, latency, predictions, versions,
    reloads, capture, drift and the live metrics of each task, with the alert bounds drawn as lines."""
    a = alerts or AlertsSection()
    rate = "[$__rate_interval]"
    buckets = f"mlops_request_duration_seconds_bucket{_M}{rate}"
    ok = '!~"2.."'
    panels = [
        _panel(
            "Requests per second",
            [_target(f"sum by (model, status) (rate(mlops_requests_total{_M}{rate}))", "{{model}} {{status}}")],
            (0, 0, 12, 8),
            unit="reqps",
        ),
        _panel(
            "Error rate (non-2xx)",
            [
                _target(
                    f'sum by (model) (rate(mlops_requests_total{{model=~"$model",status{ok}}}{rate}))'
                    f" / sum by (model) (rate(mlops_requests_total{_M}{rate}))",
                    "{{model}}",
                )
            ],
            (12, 0, 12, 8),
            unit="percentunit",
            threshold=a.error_rate,
        ),
        _panel(
            "Latency p50 / p95",
            [
                _target(
                    f"histogram_quantile({q}, sum by (le, model) (rate({buckets})))",
                    f"{{{{model}}}} p{int(q * 100)}",
                )
                for q in (0.5, 0.95)
            ],
            (0, 8, 12, 8),
            unit="s",
            threshold=None if a.latency_p95_ms is None else a.latency_p95_ms / 1000,
        ),
        _panel(
            "Predictions by class",
            [_target(f"sum by (model, class) (rate(mlops_predictions_total{_M}{rate}))", "{{model}} {{class}}")],
            (12, 8, 12, 8),
            unit="short",
            description="Classification: by predicted class; regression: by training-quantile bucket.",
            extra={"options": {"stacking": {"mode": "normal"}}},
        ),
        _panel(
            "Versions serving",
            [_target(f"max by (model, version, alias, runtime, run_id) (mlops_model_info{_M})", "", instant=True)],
            (0, 16, 12, 6),
            kind="table",
            extra={
                "transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}]
            },
        ),
        _panel(
            "Ready / rows predicted",
            [
                _target("min(mlops_ready)", "ready"),
                _target(f"sum by (model) (rate(mlops_prediction_rows_total{_M}{rate}))", "{{model}} rows/s"),
            ],
            (12, 16, 12, 6),
        ),
        _panel(
            "Model reloads",
            [
                _target(
                    f"sum by (model, result) (increase(mlops_model_reloads_total{_M}{rate}))", "{{model}} {{result}}"
                )
            ],
            (0, 22, 12, 7),
            description="Swaps after an alias moved (promotion, rollback); failed ones keep the old version serving.",
        ),
        _panel(
            "Capture: records written / dropped",
            [
                _target(f"sum by (model) (rate(mlops_capture_records_written_total{_M}{rate}))", "{{model}} written"),
                _target(f"sum by (model) (rate(mlops_capture_dropped_total{_M}{rate}))", "{{model}} dropped"),
                _target("sum(mlops_capture_queued_records)", "queued"),
            ],
            (12, 22, 12, 7),
            description="Dropped records mean the capture buffer was full: the store is slow or unreachable.",
        ),
        _panel(
            "Drifted share of features (latest drift report)",
            [_target(f"max by (model) (mlops_drift_share{_M})", "{{model}}")],
            (0, 29, 12, 7),
            unit="percentunit",
            threshold=a.drift_share,
            description="No data until a drift report exists (`mlopsctl drift`).",
        ),
        _live_panel(a, "classification", CLASSIFICATION, (12, 29, 12, 7)),
        _panel(
            "Feedback labels",
            [
                _target(
                    f"sum by (model, result) (rate(mlops_feedback_labels_total{_M}{rate}))", "{{model}} {{result}}"
                ),
                _target(f"sum by (model) (mlops_live_labelled{_M})", "{{model}} labelled in window"),
            ],
            (0, 36, 12, 6),
        ),
        _live_panel(a, "regression", REGRESSION, (12, 49, 12, 7)),
        _panel(
            "Alerts firing",
            [
                _target(
                    'sum by (alertname, model) (ALERTS{alertname=~"Mlops.*", alertstate="firing"})',
                    "{{alertname}} {{model}}",
                )
            ],
            (12, 36, 12, 6),
            description="From Prometheus' own ALERTS series (the rules of `mlopsctl monitor rules`).",
        ),
        _panel(
            "Variants: traffic share and requests per second",
            [
                _target(f"max by (model, variant) (mlops_variant_weight{_M})", "{{model}} {{variant}} weight (share)"),
                _target(
                    f"sum by (model, variant) (rate(mlops_requests_total{_M}{rate}))", "{{model}} {{variant}} req/s"
                ),
                _target(
                    f"sum by (model, variant) (rate(mlops_shadow_requests_total{_M}{rate}))",
                    "{{model}} {{variant}} copies/s",
                ),
            ],
            (0, 42, 12, 7),
            description="A/B tests and canaries (`mlopsctl ab`): each variant's share; shadows get copies.",
        ),
        _panel(
            "Variants: error rate and p95 latency",
            [
                _target(
                    f'sum by (model, variant) (rate(mlops_requests_total{{model=~"$model",status{ok}}}{rate}))'
                    f" / sum by (model, variant) (rate(mlops_requests_total{_M}{rate}))",
                    "{{model}} {{variant}} errors",
                ),
                _target(
                    f"histogram_quantile(0.95, sum by (le, model, variant) (rate({buckets})))",
                    "{{model}} {{variant}} p95 (s)",
                ),
            ],
            (12, 42, 12, 7),
            description="What the canary guard compares; a pulled-back candidate drops to 0 % above.",
        ),
    ]
    return {
        "uid": DASHBOARD_UID,
        "title": "mlopsctl: prediction service",
        "tags": ["mlopsctl"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
                {
                    "name": "model",
                    "type": "query",
                    "datasource": _DS,
                    "query": {"query": "label_values(mlops_model_info, model)", "refId": "models"},
                    "definition": "label_values(mlops_model_info, model)",
                    "refresh": 2,
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                },
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def prometheus_config(
    targets: Sequence[str], *, scrape_interval: str = "15s", alertmanagers: Sequence[str] = ()
) -> dict[str, Any]:
    """``prometheus.yml``: scrape the servers' /metrics, load the rule file beside it."""
    doc: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": [RULES_FILE],
        "scrape_configs": [
            {
                "job_name": "mlopsctl",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }
    if alertmanagers:
        doc["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
    return doc


def write_stack(
    out: Path,
    alerts: AlertsSection,
    *,
    targets: Sequence[str],
    model_names: Sequence[str] = (),
    alertmanagers: Sequence[str] = (),
    prometheus_url: str = "http://localhost:9090",
) -> list[Path]:
    """Write the stack's files under ``out``; the paths written."""
    files: dict[str, str] = {
        "prometheus.yml": render_yaml(
            prometheus_config(targets, alertmanagers=alertmanagers),
            "# Prometheus configuration written by `mlopsctl monitor stack` (docs/alerts.md).",
        ),
        RULES_FILE: render_yaml(prometheus_rules(alerts, model_names), RULES_HEADER),
        "grafana/dashboards/mlopsctl.json": json.dumps(dashboard(alerts), indent=2) + "\n",
        "grafana/provisioning/datasources/mlopsctl.yml": render_yaml(
            {
                "apiVersion": 1,
                "datasources": [
                    {
                        "name": "Prometheus",
                        "type": "prometheus",
                        "access": "proxy",
                        "url": prometheus_url,
                        "isDefault": True,
                    }
                ],
            }
        ),
        "grafana/provisioning/dashboards/mlopsctl.yml": render_yaml(
            {
                "apiVersion": 1,
                "providers": [
                    {
                        "name": "mlopsctl",
                        "type": "file",
                        "folder": "mlopsctl",
                        "options": {"path": "/var/lib/grafana/dashboards"},
                    }
                ],
            },
            "# Mount DIR/grafana/dashboards at /var/lib/grafana/dashboards (or change the path).",
        ),
    }
    written = []
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
