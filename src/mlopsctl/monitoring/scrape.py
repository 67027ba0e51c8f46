"""Reading a server's `/metrics` and doing Prometheus' window arithmetic on the scrapes.

`mlopsctl monitor check` keeps a short history of scrapes (in the store) and computes from
it what Prometheus computes from its time series: the increase of a counter over a window
(counter resets handled) and ``histogram_quantile`` over bucket increases.

A scrape is reduced, per model, to the few series the alert rules read::

    {"t": 1763900000.0,
     "requests": {"URL|VERSION|ENDPOINT|STATUS": count, ...},
     "buckets": {"URL|ENDPOINT|LE": count, ...},
     "gauges": {"mlops_drift_share": 0.1, "mlops_live_accuracy": 0.8, "mlops_live_labelled": 60.0,
                "process_start_time_seconds": 1763890000.0}}

The live metrics are every ``mlops_live_{metric}`` gauge (`taskmetrics`); the process start time
is the server's (the earliest replica's), copied to each of its models.

The URL in each series key keeps replicas apart: each replica's counters reset on their own.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

REQUESTS = "mlops_requests_total"
BUCKETS = "mlops_request_duration_seconds_bucket"
CAPTURED = "mlops_capture_records_written_total"
LABELLED = "mlops_live_labelled"
LIVE_PREFIX = "mlops_live_"
START = "process_start_time_seconds"


def _gauge(name: str) -> bool:
    return name == "mlops_drift_share" or name.startswith(LIVE_PREFIX)


def parse_metrics(text: str, source: str = "") -> dict[str, dict[str, Any]]:
    """The series the rules need from one server's Prometheus text, per model (see the module doc)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict[str, Any]] = {}
    started: float | None = None

    def entry(model: str) -> dict[str, Any]:
        return out.setdefault(model, {"requests": {}, "buckets": {}, "gauges": {}})

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            model = s.labels.get("model")
            if s.name == START:
                started = s.value
            if model is None or "class" in s.labels:  # per-class gauges are the dashboard's, not a rule's
                continue
            if s.name == REQUESTS:
                key = "|".join((source, s.labels.get("version", ""), s.labels.get("endpoint", ""), s.labels["status"]))
                series = entry(model)["requests"]
                series[key] = series.get(key, 0.0) + s.value
            elif s.name == BUCKETS:
                key = "|".join((source, s.labels.get("endpoint", ""), s.labels["le"]))
                series = entry(model)["buckets"]
                series[key] = series.get(key, 0.0) + s.value
            elif _gauge(s.name) and not math.isnan(s.value):
                entry(model)["gauges"][s.name] = s.value
    if started is not None:
        for e in out.values():
            e["gauges"][START] = started
    return out


def merge(parts: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """One view of several replicas' scrapes: counters side by side (their keys differ by URL),
    the highest drift share, the earliest start, the labelled count summed and each live metric
    weighted by it."""
    out: dict[str, dict[str, Any]] = {}
    for part in parts:
        for model, e in part.items():
            m = out.setdefault(model, {"requests": {}, "buckets": {}, "gauges": {}, "_live": {}, "_n": 0.0})
            m["requests"].update(e["requests"])
            m["buckets"].update(e["buckets"])
            g = e["gauges"]
            if "mlops_drift_share" in g:
                m["gauges"]["mlops_drift_share"] = max(
                    m["gauges"].get("mlops_drift_share", -1.0), g["mlops_drift_share"]
                )
            if START in g:
                m["gauges"][START] = min(m["gauges"].get(START, math.inf), g[START])
            n = g.get(LABELLED, 0.0)
            if n > 0:
                m["_n"] += n
                for k, v in g.items():
                    if k.startswith(LIVE_PREFIX) and k != LABELLED:
                        m["_live"][k] = m["_live"].get(k, 0.0) + v * n
    for m in out.values():
        weighted, labelled = m.pop("_live"), m.pop("_n")
        if labelled > 0:
            m["gauges"] |= {k: v / labelled for k, v in weighted.items()}
            m["gauges"][LABELLED] = labelled
    return out


def series_increase(samples: list[dict[str, float]]) -> dict[str, float]:
    """Per series, the increase across consecutive samples; a drop is a counter reset (the process
    restarted), after which the new value is all increase, as Prometheus' ``increase`` counts it.
    A series absent from an earlier sample started at zero in between."""
    out: dict[str, float] = {}
    for prev, cur in itertools.pairwise(samples):
        for key, value in cur.items():
            before = prev.get(key, 0.0)
            out[key] = out.get(key, 0.0) + (value - before if value >= before else value)
    return out


def window_samples(history: list[dict[str, Any]], current: dict[str, Any], window: float) -> list[dict[str, Any]]:
    """The samples a rate over ``window`` seconds ending at ``current`` uses: those inside the window,
    or, when none is, the newest one before it (a check that runs less often than the window still
    gets a rate, over the longer span). Empty when there is no earlier sample at all."""
    now = current["t"]
    earlier = [s for s in history if s["t"] < now]
    if not earlier:
        return []
    inside = [s for s in earlier if s["t"] >= now - window] or [earlier[-1]]
    return [*inside, current]


def request_increase(samples: list[dict[str, Any]]) -> tuple[float, float]:
    """(requests, errors) answered across ``samples``; an error is any status other than 2xx."""
    inc = series_increase([s["requests"] for s in samples])
    total = sum(inc.values())
    errors = sum(v for k, v in inc.items() if not k.rsplit("|", 1)[-1].startswith("2"))
    return total, errors


def latency_quantile(q: float, samples: list[dict[str, Any]]) -> float | None:
    """``histogram_quantile(q, sum by (le) (increase(bucket[window])))`` in seconds (None: no requests)."""
    inc = series_increase([s["buckets"] for s in samples])
    by_le: dict[float, float] = {}
    for key, v in inc.items():
        le = float(key.rsplit("|", 1)[-1])
        by_le[le] = by_le.get(le, 0.0) + v
    return histogram_quantile(q, by_le)


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' ``histogram_quantile`` on cumulative counts by upper bound (None where it gives NaN)."""
    if not buckets or math.inf not in buckets:
        return None
    edges = sorted(buckets)
    counts = [buckets[e] for e in edges]
    for i in range(1, len(counts)):  # a scrape racing an observation can leave buckets non-monotonic
        counts[i] = max(counts[i], counts[i - 1])
    if len(edges) < 2 or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    b = next(i for i, c in enumerate(counts) if c >= rank)
    if b == len(edges) - 1:
        return edges[-2]  # in the +Inf bucket: the largest finite bound
    if b == 0 and edges[0] <= 0:
        return edges[0]
    start, count = 0.0, counts[b]
    if b > 0:
        start = edges[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    return start + (edges[b] - start) * (rank / count)


def total_requests(sample: dict[str, Any]) -> float:
    return float(sum(sample["requests"].values()))
