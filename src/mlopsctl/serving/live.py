"""What the server knows about itself right now, for `/dashboard` and a few gauges.

A background thread takes a snapshot of the request counters and latency histogram every
``interval`` seconds; rates and latency quantiles over the last minute are differences
between snapshots (as Prometheus' ``rate`` and ``histogram_quantile`` would compute them).
Every few ticks it also reads the registry (aliases, last promotions) and the latest drift
report, so a page refresh never reads the store. The live metrics of each model's task
(`monitoring.taskmetrics`) come from the labels posted to this server's `/feedback` for
predictions it made: a ``Tally`` per model, updated a label at a time (a label that leaves the
window, or is replaced by a later one for the same prediction, is taken away), so a label costs
O(1) and a refresh O(classes), whatever the window holds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

from mlopsctl.monitoring.taskmetrics import PER_CLASS, Tally
from mlopsctl.serving.reload import Every
from mlopsctl.store.base import Store

if TYPE_CHECKING:
    from mlopsctl.serving.capture import CaptureWriter
    from mlopsctl.serving.metrics import ServerMetrics
    from mlopsctl.serving.reload import Served, Slot

log = logging.getLogger("mlopsctl.serving")
RATE_WINDOW = 60.0
KEEP_SECONDS = 900.0
MAX_LABELS = 200_000  # labels remembered per model for the live metrics (the window usually holds fewer)
Outcome = tuple[tuple[str, int], float, Any, Any]  # ((request_id, row), time, label, prediction)


def _snapshot(metrics: ServerMetrics) -> dict[str, dict[str, Any]]:
    """Per model: request counts by status, latency bucket counts, predictions by class (cumulative)."""
    out: dict[str, dict[str, Any]] = {}

    def entry(model: str) -> dict[str, Any]:
        return out.setdefault(model, {"requests": 0.0, "errors": 0.0, "buckets": {}, "classes": {}, "variants": {}})

    def variant(model: str, name: str) -> dict[str, Any]:
        blank = {"requests": 0.0, "errors": 0.0, "failures": 0.0, "refused": 0.0, "only": 0.0, "buckets": {}}
        return entry(model)["variants"].setdefault(name, blank)

    for family in metrics.collect():
        for s in family.samples:
            model = s.labels.get("model")
            if model is None:
                continue
            if s.name == "mlops_requests_total":
                status = s.labels["status"]
                error = status != "200"
                for e in (entry(model), variant(model, s.labels["variant"])):
                    e["requests"] += s.value
                    if error:
                        e["errors"] += s.value
                v = variant(model, s.labels["variant"])
                if status.startswith("5"):  # the server's own failures: the model raised, not ready, …
                    v["failures"] += s.value
                elif status.startswith("4"):
                    v["refused"] += s.value
            elif s.name == "mlops_candidate_refusals_total":
                variant(model, s.labels["variant"])["only"] += s.value
            elif s.name == "mlops_request_duration_seconds_bucket":
                le = float(s.labels["le"])
                for b in (entry(model)["buckets"], variant(model, s.labels["variant"])["buckets"]):
                    b[le] = b.get(le, 0.0) + s.value
            elif s.name == "mlops_shadow_requests_total":  # a shadow's own numbers, not the model's
                v = variant(model, s.labels["variant"])
                v["requests"] += s.value
                if s.labels["status"] != "200":
                    v["errors"] += s.value
            elif s.name == "mlops_shadow_duration_seconds_bucket":
                b = variant(model, s.labels["variant"])["buckets"]
                le = float(s.labels["le"])
                b[le] = b.get(le, 0.0) + s.value
            elif s.name == "mlops_predictions_total":
                c = entry(model)["classes"]
                c[s.labels["class"]] = c.get(s.labels["class"], 0.0) + s.value
    return out


def _delta(cur: dict[str, Any], old: dict[str, Any]) -> tuple[float, float, dict[float, float]]:
    """Requests, errors and latency bucket counts between two snapshot entries (cumulative counters)."""
    ob = old.get("buckets", {})
    buckets = {le: c - ob.get(le, 0.0) for le, c in cur.get("buckets", {}).items()}
    return cur.get("requests", 0.0) - old.get("requests", 0.0), cur.get("errors", 0.0) - old.get("errors", 0.0), buckets


def quantile_from_buckets(q: float, buckets: dict[float, float]) -> float | None:
    """``histogram_quantile`` on cumulative bucket counts (linear inside the bucket)."""
    edges = sorted(buckets)
    if not edges or buckets[edges[-1]] <= 0:
        return None
    total = buckets[edges[-1]]
    rank = q * total
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


class LiveStats:
    def __init__(
        self,
        store: Store,
        metrics: ServerMetrics,
        slots: list[Slot],
        capture: CaptureWriter | None,
        *,
        accuracy_window: float = 3600.0,
        interval: float = 2.0,
        registry_every: float = 10.0,
        keep_seconds: float = KEEP_SECONDS,
        served: list[Served] | None = None,
    ) -> None:
        self.served = {s.name: s for s in served or []}
        self.store, self.metrics, self.slots, self.capture = store, metrics, slots, capture
        self.accuracy_window, self.interval, self.registry_every = accuracy_window, interval, registry_every
        self.snapshots: deque[tuple[float, dict[str, dict[str, Any]]]] = deque()
        # per model: (request_id, row) → (time, label, prediction), oldest first; a later label for the same
        # prediction replaces the earlier one, so a prediction counts once however often it is labelled
        self.labelled: dict[str, OrderedDict[tuple[str, int], tuple[float, Any, Any]]] = {
            s.name: OrderedDict() for s in slots
        }
        self.tallies: dict[str, Tally] = {}
        self._classes: dict[str, set[str]] = {}  # the per-class gauges set, per model
        self.registry_view: dict[str, Any] = {}
        self.drift: dict[str, Any] = {}
        self.started = time.time()
        self.keep_seconds = keep_seconds
        self._registry_read = 0.0
        self._every = Every("mlops-live", interval, self.tick)
        self._lock = threading.Lock()  # mlops_drift_share stays absent ("no data") until a report exists

    # -- background -------------------------------------------------------------------------------
    def tick(self) -> None:
        now = time.time()
        snap = _snapshot(self.metrics)
        with self._lock:
            self.snapshots.append((now, snap))
            while self.snapshots and now - self.snapshots[0][0] > self.keep_seconds:
                self.snapshots.popleft()
        if self.capture is not None:
            self.metrics.capture_queued.set(self.capture.added - self.capture.drained)
        self._refresh_accuracy(now)
        if now - self._registry_read >= self.registry_every:
            self._registry_read = now
            self._read_store()

    def _read_store(self) -> None:
        from mlopsctl import registry

        view: dict[str, Any] = {}
        for s in self.slots:
            try:
                view[s.name] = {
                    "aliases": {a: d.get("version") for a, d in registry.aliases(self.store, s.name).items()},
                    "events": registry.events(self.store, s.name, limit=8),
                }
                latest = self.store.get_json_or(f"drift/{s.name}/latest.json")
            except Exception as exc:  # the store may be briefly unreachable: keep the last view
                log.warning("dashboard: cannot read the registry for %s: %s", s.name, exc)
                continue
            if latest is not None:
                self.drift[s.name] = {
                    k: latest.get(k) for k in ("dataset_drift", "drifted_share", "created_at", "version")
                } | {"drifted": [f.get("name") for f in latest.get("features", []) if f.get("drifted")][:10]}
                share = latest.get("drifted_share")
                if isinstance(share, int | float):
                    self.metrics.drift_share.labels(s.name).set(share)
        self.registry_view = view

    def start(self) -> None:
        self.tick()
        self._every.start()

    def stop(self) -> None:
        self._every.stop()

    def variant_window(self, name: str, since: float, now: float) -> dict[str, Any]:
        """Per variant of ``name``: requests, errors and p95 between ``since`` and now (``WindowStats``).

        The base is the last snapshot taken at or before ``since`` (the first one if none is that old).
        """
        from mlopsctl.experiments.guard import WindowStats

        current = _snapshot(self.metrics).get(name, {}).get("variants", {})
        with self._lock:
            older = [snap for t, snap in self.snapshots if t <= since]
            base_all = older[-1] if older else (self.snapshots[0][1] if self.snapshots else {})
        base = base_all.get(name, {}).get("variants", {})
        out = {}
        for variant, cur in current.items():
            old = base.get(variant, {})
            requests, _, delta = _delta(cur, old)
            p95 = quantile_from_buckets(0.95, delta)

            def window(key: str, cur: dict[str, Any] = cur, old: dict[str, Any] = old) -> float:
                return float(cur.get(key, 0.0) - old.get(key, 0.0))

            out[variant] = WindowStats(
                requests,
                window("failures") + window("only"),  # what the guard judges: never a caller's own 4xx
                None if p95 is None else p95 * 1000,
                refused=window("refused"),
                candidate_only=window("only"),
            )
        return out

    # -- live metrics -------------------------------------------------------------------------------
    def add_labels(self, name: str, task: str, outcomes: list[Outcome]) -> None:
        """((request_id, row), time, label, prediction) for each label of ``name`` (of ``task``): the latest
        label of a prediction is the one counted."""
        with self._lock:
            q = self.labelled.setdefault(name, OrderedDict())
            tally = self.tallies.get(name)
            if tally is None or tally.task != task:  # the first label, or a model of another task now
                q.clear()
                tally = self.tallies[name] = Tally(task)
            for key, t, label, pred in outcomes:
                old = q.pop(key, None)
                if old is not None:
                    tally.remove(old[1], old[2])
                q[key] = (t, label, pred)
                tally.add(label, pred)
            while len(q) > MAX_LABELS:
                _, (_, label, pred) = q.popitem(last=False)
                tally.remove(label, pred)
        self._refresh_accuracy(time.time())

    def live_metrics(self, name: str) -> dict[str, Any]:
        tally = self.tallies.get(name)
        return tally.metrics() if tally is not None else {}

    def _refresh_accuracy(self, now: float) -> None:
        with self._lock:
            for name, q in self.labelled.items():
                tally = self.tallies.get(name)
                while q and now - next(iter(q.values()))[0] > self.accuracy_window:
                    _, (_, label, pred) = q.popitem(last=False)
                    if tally is not None:
                        tally.remove(label, pred)
                self.metrics.live_labelled.labels(name).set(len(q))
                self._export(name, tally.metrics() if tally is not None else {})

    def _export(self, name: str, values: dict[str, Any]) -> None:
        """The gauges of ``name``'s live metrics; a metric without a value (no label in the window, R² of
        labels that do not vary) is absent, which Grafana and Prometheus show as no data."""
        for metric, gauge in self.metrics.live.items():
            v = values.get(metric)
            if v is None:
                try:
                    gauge.remove(name)
                except KeyError:
                    pass
            else:
                gauge.labels(name).set(v)
        per_class = values.get("per_class", {})
        for cls in self._classes.get(name, set()) - set(per_class):
            for m in PER_CLASS:
                try:
                    self.metrics.live_per_class[m].remove(name, cls)
                except KeyError:
                    pass
        for cls, v in per_class.items():
            for m in PER_CLASS:
                self.metrics.live_per_class[m].labels(name, cls).set(v[m])
        self._classes[name] = set(per_class)

    # -- the dashboard's data -----------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        now = time.time()
        current = _snapshot(self.metrics)
        with self._lock:
            older = [s for s in self.snapshots if now - s[0] >= RATE_WINDOW - 1e-9]
            base_t, base = older[-1] if older else (self.snapshots[0] if self.snapshots else (self.started, {}))
            labelled = {n: len(q) for n, q in self.labelled.items()}
            live = {n: t.metrics() for n, t in self.tallies.items()}
        span = max(now - base_t, 1e-3)
        models = []
        for s in self.slots:
            cur, old = current.get(s.name, {}), base.get(s.name, {})
            requests, errors, delta = _delta(cur, old)
            p50, p95 = quantile_from_buckets(0.5, delta), quantile_from_buckets(0.95, delta)
            loaded = s.current[0] if s.current else None
            n_lab, values = labelled.get(s.name, 0), live.get(s.name, {})
            route = None
            if s.name in self.served:
                from mlopsctl.serving.reload import route_status

                route = route_status(self.served[s.name].route)
                cv, ov = cur.get("variants", {}), old.get("variants", {})
                for v in (*route["variants"], *route["shadows"]):
                    n, n_err, v_delta = _delta(cv.get(v["variant"], {}), ov.get(v["variant"], {}))
                    q = quantile_from_buckets(0.95, v_delta)
                    v["request_rate"] = n / span
                    v["error_rate"] = n_err / n if n else 0.0
                    v["p95_ms"] = None if q is None else q * 1000
            models.append(
                {
                    "name": s.name,
                    "follows": s.ref or "latest",
                    "version": loaded.version if loaded else None,
                    "runtime": loaded.runtime if loaded else None,
                    "task": loaded.task if loaded else None,
                    "loaded_at": loaded.loaded_at if loaded else None,
                    "error": s.last_error,
                    "window_seconds": round(span, 1),
                    "request_rate": requests / span,
                    "error_rate": (errors / requests) if requests else 0.0,
                    "p50_ms": None if p50 is None else p50 * 1000,
                    "p95_ms": None if p95 is None else p95 * 1000,
                    "requests_total": cur.get("requests", 0.0),
                    "predictions_by_class": cur.get("classes", {}),
                    "live_accuracy": values.get("accuracy"),
                    "live": {k: v for k, v in values.items() if k != "per_class"},
                    "live_per_class": values.get("per_class", {}),
                    "labelled": n_lab,
                    "aliases": self.registry_view.get(s.name, {}).get("aliases", {}),
                    "events": self.registry_view.get(s.name, {}).get("events", []),
                    "drift": self.drift.get(s.name),
                    "route": route,
                }
            )
        return {
            "time": now,
            "uptime_seconds": now - self.started,
            "models": models,
            "capture": self.capture.status() if self.capture else None,
        }
