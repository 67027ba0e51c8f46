"""Prometheus metrics of the server, kept in memory and rendered on `GET /metrics`.

Each app has its own CollectorRegistry (several apps can live in one process, as in
tests). Label children for a served version are resolved once when it is loaded, so the
request path only increments and observes.
"""

from __future__ import annotations

import bisect
import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, disable_created_metrics

from mlopsctl.experiments.deployment import SHADOW_PREFIX  # shadows answer no caller: no request series
from mlopsctl.monitoring.taskmetrics import CLASSIFICATION, PER_CLASS, REGRESSION

disable_created_metrics()  # the `_created` series double the output and nothing here reads them

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_HELP = {
    "accuracy": "Accuracy",
    "f1_macro": "Macro F1",
    "precision_macro": "Macro precision",
    "recall_macro": "Macro recall",
    "rmse": "Root mean squared error",
    "mae": "Mean absolute error",
    "r2": "R squared",
    "bias": "Mean signed error (prediction - label)",
}


def multiprocess() -> bool:
    """Whether this process is one of `serve --workers N`'s: its values then live in shared files and every
    worker answers /metrics with all of theirs (prometheus-client's multiprocess mode)."""
    return bool(os.environ.get(MULTIPROC_ENV))


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # process_start_time_seconds, CPU seconds, memory, open files (Linux; nothing elsewhere): uptime for
        # `mlopsctl cost --url`, and what every Prometheus user expects to find
        ProcessCollector(registry=r)
        self.requests = Counter(
            "mlops_requests",
            "Prediction requests answered, by outcome.",
            ["model", "version", "variant", "endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "mlops_request_duration_seconds",
            "Time to answer a prediction request.",
            ["model", "variant", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rows = Counter("mlops_prediction_rows", "Rows predicted.", ["model", "version"], registry=r)
        self.predictions = Counter(
            "mlops_predictions",
            "Predictions by class (classification) or by value "
            "bucket (regression: upper bound of the training-quantile bucket).",
            ["model", "version", "variant", "class"],
            registry=r,
        )
        self.info = Gauge(
            "mlops_model_info",
            "The version each served model and variant runs (value 1).",
            ["model", "variant", "version", "alias", "runtime", "run_id"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.loaded_at = Gauge(
            "mlops_model_loaded_timestamp_seconds",
            "When the served version was loaded.",
            ["model"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.reloads = Counter(
            "mlops_model_reloads",
            "Model swaps after an alias moved, by result.",
            ["model", "result"],
            registry=r,
        )
        self.ready = Gauge(
            "mlops_ready", "1 when every configured model is loaded.", registry=r, multiprocess_mode="livemin"
        )
        self.capture_written = Counter(
            "mlops_capture_records_written", "Prediction records written to the store.", ["model"], registry=r
        )
        self.capture_dropped = Counter(
            "mlops_capture_dropped",
            "Prediction records not captured because the buffer was full (or a write kept failing).",
            ["model"],
            registry=r,
        )
        self.capture_queued = Gauge(
            "mlops_capture_queued_records", "Records waiting to be written.", registry=r, multiprocess_mode="livesum"
        )
        self.feedback = Counter(
            "mlops_feedback_labels", "Ground-truth labels received, by outcome.", ["model", "result"], registry=r
        )
        self.drift_share = Gauge(
            "mlops_drift_share",
            "Share of drifted features in the latest drift report of the served model (absent until one exists).",
            ["model"],
            registry=r,
            multiprocess_mode="livemax",
        )
        # the task's live metrics over the labels window (monitoring/taskmetrics.py), absent until a label comes;
        # with --workers N: the worker that got the latest labels
        self.live = {
            m: Gauge(
                f"mlops_live_{m}",
                f"{_LIVE_HELP[m]} of this server's predictions that got feedback, over the labels window ({kind}).",
                ["model"],
                registry=r,
                multiprocess_mode="livemostrecent",
            )
            for kind, names in (("classification", CLASSIFICATION), ("regression", REGRESSION))
            for m in names
        }
        self.live_accuracy = self.live["accuracy"]
        self.live_per_class = {
            m: Gauge(
                f"mlops_live_{m}",
                f"{m.capitalize()} of each class over the labels window (classification).",
                ["model", "class"],
                registry=r,
                multiprocess_mode="livemostrecent",
            )
            for m in PER_CLASS
        }
        self.live_labelled = Gauge(
            "mlops_live_labelled",
            "Predictions with feedback in the labels window (every task).",
            ["model"],
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.variant_weight = Gauge(
            "mlops_variant_weight",
            "Share of the traffic (0-1) routed to each variant; shadows get copies, not shares.",
            ["model", "variant"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.shadow_requests = Counter(
            "mlops_shadow_requests",
            "Requests copied to a shadow variant, by outcome (never returned to the caller).",
            ["model", "variant", "version", "status"],
            registry=r,
        )
        self.shadow_latency = Histogram(
            "mlops_shadow_duration_seconds",
            "Time a shadow variant took (after the answer was sent).",
            ["model", "variant"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.shadow_dropped = Counter(
            "mlops_shadow_dropped", "Copies not sent to shadows because their queue was full.", ["model"], registry=r
        )
        self.candidate_refusals = Counter(
            "mlops_candidate_refusals",
            "Requests a variant refused (4xx) that the control answers: a regression of the candidate, which the "
            "canary guard counts with its failures (a caller's own bad requests are refused by both and not counted).",
            ["model", "variant"],
            registry=r,
        )
        self.guard_actions = Counter(
            "mlops_guard_actions",
            "Canary guard decisions this server made: pulled_back, ramp.",
            ["model", "action"],
            registry=r,
        )

    def declare(self, name: str) -> None:
        """Every series an alert rule or the dashboard reads exists at 0 from the start, so ``increase()``
        sees its first event (a series born at 1 has no increase)."""
        for result in ("ok", "failed"):
            self.reloads.labels(name, result)
        for result in ("accepted", "rejected"):
            self.feedback.labels(name, result)
        for action in ("pulled_back", "ramp"):
            self.guard_actions.labels(name, action)
        self.capture_written.labels(name)
        self.capture_dropped.labels(name)
        self.shadow_dropped.labels(name)
        self.live_labelled.labels(name).set(0)

    def collect(self) -> Any:
        """The metric families this server reports: its own, or with --workers N every worker's."""
        return self.exposition_registry().collect()

    def exposition_registry(self) -> CollectorRegistry:
        if not multiprocess():
            return self.registry
        from prometheus_client import multiprocess as mp

        merged = CollectorRegistry()
        mp.MultiProcessCollector(merged)
        ProcessCollector(registry=merged)  # the answering worker's process figures (uptime for `cost --url`)
        return merged

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.exposition_registry())

    @staticmethod
    def _info_labels(model: Any, variant: str) -> tuple[str, ...]:
        return (
            model.name,
            variant,
            str(model.version),
            model.alias or "",
            model.runtime,
            str(model.manifest.get("run_id", "")),
        )

    def bind(self, model: Any, variant: str, previous: Any | None = None) -> ModelMetrics:
        if previous is not None:
            self.unbind(previous, variant)
        self.info.labels(*self._info_labels(model, variant)).set(1)
        self.loaded_at.labels(model.name).set(model.loaded_at)
        return ModelMetrics(self, model, variant, answers=not variant.startswith(SHADOW_PREFIX))

    def unbind(self, model: Any, variant: str) -> None:
        """Drop the info series of a variant that is no longer served."""
        try:
            self.info.remove(*self._info_labels(model, variant))
        except KeyError:
            pass


class ModelMetrics:
    """The label children of one served version, resolved once."""

    def __init__(self, m: ServerMetrics, model: Any, variant: str, answers: bool = True) -> None:
        name, version = model.name, str(model.version)
        self._m, self._name, self._version, self.variant = m, name, version, variant
        from mlopsctl.serving.protocols import protocols

        endpoints = tuple(protocols()) if answers else ()
        self.ok = {ep: m.requests.labels(name, version, variant, ep, "200") for ep in endpoints}
        for ep in endpoints:  # the error-rate rules' numerator exists at 0 before the first failure
            m.requests.labels(name, version, variant, ep, "500")
        self.latency = {ep: m.latency.labels(name, variant, ep) for ep in endpoints}
        self.rows = m.rows.labels(name, version)
        self.edges = list(model.bucket_edges)
        # classification counts by class; regression by the training-quantile bucket a value falls in
        self.classification = bool(model.classes)
        labels = [str(c) for c in model.classes] if model.classes else [*(f"le_{e:g}" for e in self.edges), "le_+Inf"]
        self.by_label = {lbl: m.predictions.labels(name, version, variant, lbl) for lbl in labels} if answers else {}
        self.bucket_names = labels

    def error(self, endpoint: str, status: int) -> None:
        self._m.requests.labels(self._name, self._version, self.variant, endpoint, str(status)).inc()

    def observe(self, endpoint: str, seconds: float, predictions: list[Any]) -> None:
        self.ok[endpoint].inc()
        self.latency[endpoint].observe(seconds)
        self.rows.inc(len(predictions))
        by_label = self.by_label
        if self.classification:
            for p in predictions:
                child = by_label.get(str(p))
                if child is not None:
                    child.inc()
        else:
            for p in predictions:
                by_label[self.bucket_names[bisect.bisect_left(self.edges, p)]].inc()
