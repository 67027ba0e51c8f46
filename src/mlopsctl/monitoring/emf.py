"""The server's key figures as CloudWatch metrics: Embedded Metric Format (EMF) log lines.

A team on AWS without a Prometheus still gets the metrics its alarms need. Every ``interval`` seconds
the emitter reads the server's Prometheus registry and writes, per served model, one JSON line on
standard output; on ECS the ``awslogs`` driver sends it to CloudWatch Logs, which turns it into metrics
in ``namespace`` (no agent, no API call, no extra permission). The names and units are ``METRICS``;
the dimensions are ``Service`` and ``Model``. `mlopsctl deploy aws` writes its alarms and dashboard on
exactly these (tests/test_emf.py reads a real server's lines and the Terraform's alarms).

Counts are what happened in the interval (differences of the server's counters), so CloudWatch's Sum
over replicas is the service's; ``LatencyP95`` is this replica's p95 over the interval (the alarm takes
the Maximum over replicas); the gauges are their current value. A figure with nothing behind it (no
request in the interval, no drift report, no label) is left out rather than sent as 0, except
``Requests`` and ``Errors5xx``, which are sent as 0: a quiet service is data, a dead one is missing data.

Spec: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("mlopsctl.monitoring")

NAMESPACE = "mlopsctl"
DIMENSIONS = ("Service", "Model")
# name → CloudWatch unit; what each is, in order (docs/deploy-aws.md lists them)
METRICS: dict[str, str] = {
    "Requests": "Count",  # prediction requests answered in the interval, whatever their status
    "Errors5xx": "Count",  # ...of which the server failed (5xx)
    "LatencyP95": "Milliseconds",  # p95 of the answered requests' time, over the interval
    "DriftShare": "None",  # share of drifted features in the served model's latest drift report
    "LiveAccuracy": "None",  # accuracy of this replica's predictions that got feedback (accuracy window)
    "LiveLabelled": "Count",  # predictions with feedback in that window
}
ENV_ENABLED, ENV_NAMESPACE, ENV_SERVICE = "MLOPS_CLOUDWATCH", "MLOPS_CLOUDWATCH_NAMESPACE", "MLOPS_CLOUDWATCH_SERVICE"


@dataclass
class ModelFigures:
    """One model's cumulative counters and current gauges, as read from the registry at one moment."""

    requests: float = 0.0
    errors_5xx: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # latency histogram: upper bound (s) → count
    drift_share: float | None = None
    live_accuracy: float | None = None
    live_labelled: float = 0.0


def read_registry(registry: Any) -> dict[str, ModelFigures]:
    """Per model: the figures of a ``prometheus_client`` registry (the server's ``ServerMetrics.registry``)."""
    out: dict[str, ModelFigures] = {}
    for family in registry.collect():
        for s in family.samples:
            model = s.labels.get("model")
            if model is None:
                continue
            f = out.setdefault(model, ModelFigures())
            if s.name == "mlops_requests_total":
                f.requests += s.value
                if s.labels.get("status", "").startswith("5"):
                    f.errors_5xx += s.value
            elif s.name == "mlops_request_duration_seconds_bucket":
                le = float(s.labels["le"])
                f.buckets[le] = f.buckets.get(le, 0.0) + s.value
            elif s.name == "mlops_drift_share" and s.value >= 0:  # absent until the first drift report
                f.drift_share = s.value
            elif s.name == "mlops_live_labelled":
                f.live_labelled = s.value
            elif s.name == "mlops_live_accuracy":
                f.live_accuracy = s.value
    return out


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus' ``histogram_quantile`` on cumulative bucket counts (linear inside a bucket); None when empty.

    The server's dashboard has its own copy (serving/live.py): monitoring does not import serving."""
    edges = sorted(buckets)
    if not edges or buckets[edges[-1]] <= 0:
        return None
    rank = q * buckets[edges[-1]]
    prev_edge, prev_count = 0.0, 0.0
    for edge in edges:
        count = buckets[edge]
        if count >= rank:
            if edge == float("inf"):
                return prev_edge
            inside = count - prev_count
            return prev_edge + (edge - prev_edge) * ((rank - prev_count) / inside if inside else 1.0)
        prev_edge, prev_count = edge, count
    return prev_edge


def _increase(before: float, after: float) -> float:
    return after - before if after >= before else after  # a counter that went down was reset


def figures(before: Mapping[str, ModelFigures], after: Mapping[str, ModelFigures]) -> dict[str, dict[str, float]]:
    """Per model, the METRICS over the interval between two readings (models of ``after`` only)."""
    out: dict[str, dict[str, float]] = {}
    for model, cur in after.items():
        old = before.get(model, ModelFigures())
        values: dict[str, float] = {
            "Requests": _increase(old.requests, cur.requests),
            "Errors5xx": _increase(old.errors_5xx, cur.errors_5xx),
        }
        delta = {le: _increase(old.buckets.get(le, 0.0), n) for le, n in cur.buckets.items()}
        p95 = quantile(0.95, delta)
        if p95 is not None:
            values["LatencyP95"] = round(p95 * 1000, 3)
        if cur.drift_share is not None:
            values["DriftShare"] = cur.drift_share
        if cur.live_labelled > 0 and cur.live_accuracy is not None:
            values["LiveAccuracy"] = cur.live_accuracy
            values["LiveLabelled"] = cur.live_labelled
        out[model] = values
    return out


def emf_record(
    values: Mapping[str, float], *, service: str, model: str, timestamp_ms: int, namespace: str = NAMESPACE
) -> dict[str, Any]:
    """One EMF document: the ``_aws`` metadata naming the metrics, their values and the dimension values."""
    unknown = sorted(set(values) - set(METRICS))
    if unknown:
        raise ValueError(f"not an EMF metric of mlopsctl: {', '.join(unknown)}; they are {', '.join(METRICS)}")
    names = [n for n in METRICS if n in values]
    return {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(DIMENSIONS)],
                    "Metrics": [{"Name": n, "Unit": METRICS[n]} for n in names],
                }
            ],
        },
        "Service": service,
        "Model": model,
        **{n: values[n] for n in names},
    }


def emf_lines(
    before: Mapping[str, ModelFigures],
    after: Mapping[str, ModelFigures],
    *,
    service: str,
    namespace: str = NAMESPACE,
    now: float | None = None,
) -> list[str]:
    """The log lines for the interval between two readings: one compact JSON document per model."""
    stamp = int((time.time() if now is None else now) * 1000)
    return [
        json.dumps(
            emf_record(values, service=service, model=model, timestamp_ms=stamp, namespace=namespace),
            separators=(",", ":"),
        )
        for model, values in sorted(figures(before, after).items())
    ]


def _on(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


class EmfEmitter:
    """Writes the EMF lines of a server's registry every ``interval`` seconds, from a daemon thread.

    ``start()`` reads the baseline; each tick writes what happened since the previous one; ``stop()`` writes
    the last partial interval. ``write`` receives each line (default: standard output, flushed).
    """

    def __init__(
        self,
        registry: Any,
        *,
        service: str,
        namespace: str = NAMESPACE,
        interval: float = 60.0,
        write: Callable[[str], None] | None = None,
    ) -> None:
        self.registry, self.service, self.namespace, self.interval = registry, service, namespace, interval
        self.write = write or self._stdout
        self.lines_written = 0
        self._last: dict[str, ModelFigures] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _stdout(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    @classmethod
    def from_settings(
        cls,
        registry: Any,
        cloudwatch: Mapping[str, Any] | None,
        *,
        default_service: str,
        environ: Mapping[str, str] | None = None,
        write: Callable[[str], None] | None = None,
    ) -> EmfEmitter | None:
        """The emitter ``[monitoring.cloudwatch]`` (a ``CloudWatchSection.model_dump()``) and the environment ask
        for, or None when it is off. ``MLOPS_CLOUDWATCH`` (1/0), ``MLOPS_CLOUDWATCH_NAMESPACE`` and
        ``MLOPS_CLOUDWATCH_SERVICE`` win over the file (the task definition of `deploy aws` sets all three)."""
        from mlopsctl.config import CloudWatchSection

        env = os.environ if environ is None else environ
        cw = CloudWatchSection(**dict(cloudwatch or {}))
        enabled = _on(env[ENV_ENABLED]) if env.get(ENV_ENABLED, "").strip() else cw.enabled
        if not enabled:
            return None
        namespace = env.get(ENV_NAMESPACE) or cw.namespace
        CloudWatchSection(namespace=namespace)  # the same check as the file's
        service = env.get(ENV_SERVICE) or cw.service or default_service
        return cls(registry, service=service, namespace=namespace, interval=cw.interval_seconds, write=write)

    def tick(self, now: float | None = None) -> list[str]:
        """Write (and return) the lines for the interval since the previous tick."""
        with self._lock:
            current = read_registry(self.registry)
            lines = emf_lines(self._last, current, service=self.service, namespace=self.namespace, now=now)
            self._last = current
            for line in lines:
                self.write(line)
            self.lines_written += len(lines)
        return lines

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:  # never let the thread die: the next interval tries again
                log.exception("cloudwatch: writing the EMF lines failed")

    def start(self) -> None:
        with self._lock:
            self._last = read_registry(self.registry)
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="mlops-emf", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write the last partial interval (a replica stopping still reports its requests)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
            try:
                self.tick()
            except Exception:
                log.exception("cloudwatch: writing the last EMF lines failed")
