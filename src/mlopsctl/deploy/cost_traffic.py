"""The traffic a cost estimate assumes: stated defaults, or what a server or the store observed.

Observed traffic comes from one of two places:

- a running server's ``/metrics`` (``--url``, repeatable for replicas): the counters
  ``mlops_requests_total`` (every answered request, errors included) and ``mlops_predictions_total``
  (rows predicted for callers; shadows excluded), divided by the time they counted over: since
  ``process_start_time_seconds`` when the server exports it, else since the earliest
  ``mlops_model_loaded_timestamp_seconds`` (a reload moves that forward, so the rate is then an upper
  bound). With a window, two scrapes that far apart give the current rate instead of the lifetime one.
  The mean request duration is ``mlops_request_duration_seconds`` sum over count.
- the store's capture (``capture/{model}/…``): requests (distinct request ids) and predictions
  (answered rows) over ``--since``, or since the first captured record when capture started later,
  divided by the capture sample rate; shadow variants are left out.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from mlopsctl.errors import ValidationError

DEFAULT_REQUESTS_PER_MONTH = 1_000_000
DEFAULT_DURATION_S = 0.05


@dataclass
class Traffic:
    """Requests and predictions per second while the service runs, and the mean time a request takes."""

    source: str  # "assumed" | "given" | "url" | "capture"
    requests_per_second: float | None  # None: stated per month instead (the default assumption)
    predictions_per_second: float | None
    mean_duration_s: float
    requests_per_month_fixed: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def per_month(self, hours: float) -> tuple[float, float]:
        """(requests, predictions) in a month of ``hours`` running hours."""
        if self.requests_per_second is None:
            n = float(self.requests_per_month_fixed or 0.0)
            return n, n  # one row per request
        seconds = hours * 3600
        return self.requests_per_second * seconds, float(self.predictions_per_second or 0.0) * seconds

    def to_json(self, hours: float) -> dict[str, Any]:
        requests, predictions = self.per_month(hours)
        out = asdict(self)
        out.pop("requests_per_month_fixed")
        out.update(requests_per_month=requests, predictions_per_month=predictions)
        return out


def assumed(requests_per_month: float | None = None, duration_s: float | None = None) -> Traffic:
    """The stated default, or what ``--requests``/``--duration-ms`` say."""
    given = requests_per_month is not None
    return Traffic(
        source="given" if given else "assumed",
        requests_per_second=None,
        predictions_per_second=None,
        mean_duration_s=DEFAULT_DURATION_S if duration_s is None else duration_s,
        requests_per_month_fixed=float(
            DEFAULT_REQUESTS_PER_MONTH if requests_per_month is None else requests_per_month
        ),
    )


# -- a server's /metrics --------------------------------------------------------------------------------


def _counters(text: str) -> dict[str, float]:
    """The few series the estimate needs, summed over labels (replicas are summed by the caller)."""
    from prometheus_client.parser import text_string_to_metric_families

    sums = {"requests": 0.0, "predictions": 0.0, "rows": 0.0, "duration_sum": 0.0, "duration_count": 0.0}
    names = {
        "mlops_requests_total": "requests",
        "mlops_predictions_total": "predictions",
        "mlops_prediction_rows_total": "rows",
        "mlops_request_duration_seconds_sum": "duration_sum",
        "mlops_request_duration_seconds_count": "duration_count",
    }
    start: float | None = None
    loaded: float | None = None
    seen = False
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in names:
                sums[names[s.name]] += s.value
                seen = True
            elif s.name == "process_start_time_seconds":
                start = s.value
            elif s.name == "mlops_model_loaded_timestamp_seconds" and s.value > 0:
                loaded = s.value if loaded is None else min(loaded, s.value)
                seen = True
    if not seen:
        raise ValueError("no mlops_* series: is it an mlopsctl server?")
    if start is not None:
        sums["since"], sums["since_basis"] = start, 1.0
    elif loaded is not None:
        sums["since"], sums["since_basis"] = loaded, 0.0
    return sums


def _scrape(url: str, timeout: float) -> dict[str, float]:
    import httpx

    target = url.rstrip("/") + "/metrics"
    try:
        r = httpx.get(target, timeout=timeout)
        r.raise_for_status()
        out = _counters(r.text)
    except (httpx.HTTPError, ValueError) as exc:
        raise ValidationError(f"--url {url}: cannot read {target}: {exc}", [("--url", str(exc))]) from None
    out["t"] = time.time()
    return out


def _predictions(c: dict[str, float]) -> float:
    return c["predictions"] if c["predictions"] > 0 else c["rows"]


def _increase(before: float, after: float) -> float:
    return after - before if after >= before else after  # a drop: the process restarted in between


def scraped(urls: list[str], window: float | None = None, timeout: float = 5.0) -> Traffic:
    """Traffic from servers' ``/metrics``: over their uptime, or over ``window`` seconds between two scrapes."""
    first = [_scrape(u, timeout) for u in urls]
    requests = predictions = dur_sum = dur_count = 0.0
    rates: list[dict[str, Any]] = []
    if window:
        time.sleep(window)
        second = [_scrape(u, timeout) for u in urls]
        for url, a, b in zip(urls, first, second, strict=True):
            span = max(b["t"] - a["t"], 1e-3)
            n, p = _increase(a["requests"], b["requests"]), _increase(_predictions(a), _predictions(b))
            requests, predictions = requests + n / span, predictions + p / span
            dur_sum += _increase(a["duration_sum"], b["duration_sum"])
            dur_count += _increase(a["duration_count"], b["duration_count"])
            rates.append({"url": url, "requests": n, "predictions": p, "seconds": span, "basis": "window"})
    else:
        for url, c in zip(urls, first, strict=True):
            if "since" not in c:
                raise ValidationError(
                    f"--url {url}: no start time in /metrics (no model loaded yet?): use --window 60s",
                    [("--url", "no start time")],
                )
            span = max(c["t"] - c["since"], 1e-3)
            basis = "process_start_time_seconds" if c["since_basis"] else "mlops_model_loaded_timestamp_seconds"
            requests += c["requests"] / span
            predictions += _predictions(c) / span
            dur_sum, dur_count = dur_sum + c["duration_sum"], dur_count + c["duration_count"]
            rates.append(
                {"url": url, "requests": c["requests"], "predictions": _predictions(c), "seconds": span, "basis": basis}
            )
    return Traffic(
        source="url",
        requests_per_second=requests,
        predictions_per_second=predictions,
        mean_duration_s=dur_sum / dur_count if dur_count else DEFAULT_DURATION_S,
        detail={"servers": rates, "window_seconds": window, "duration_observed": dur_count > 0},
    )


# -- the store's capture --------------------------------------------------------------------------------


def captured(
    store: Any,
    models: list[str] | None,
    since_seconds: float,
    sample_rate: float = 1.0,
    now: float | None = None,
) -> Traffic | None:
    """Traffic from capture records of ``models`` (default: every captured model); None when there are none."""
    from mlopsctl.experiments.deployment import SHADOW_PREFIX  # shadow variants: copies nobody asked for
    from mlopsctl.monitoring.captured import CAPTURE, load_captures

    now = time.time() if now is None else now
    start = now - since_seconds
    names = models or store.list_dirs(CAPTURE)
    request_ids: set[str] = set()
    predictions = 0
    latency_ms: dict[str, float] = {}
    first: float | None = None
    for name in names:
        for r in load_captures(store, name, start, now):
            if str(r.get("variant") or "").startswith(SHADOW_PREFIX):
                continue
            rid = str(r.get("request_id"))
            request_ids.add(rid)
            if r.get("status") == 200:
                predictions += 1
            if r.get("latency_ms") is not None:
                latency_ms.setdefault(rid, float(r["latency_ms"]))
            t = float(r.get("time", now))
            first = t if first is None else min(first, t)
    if not request_ids or first is None:
        return None
    rate = sample_rate if sample_rate > 0 else 1.0
    span = max(now - max(start, first), 1.0)
    durations = list(latency_ms.values())
    return Traffic(
        source="capture",
        requests_per_second=len(request_ids) / rate / span,
        predictions_per_second=predictions / rate / span,
        mean_duration_s=(math.fsum(durations) / len(durations) / 1000) if durations else DEFAULT_DURATION_S,
        detail={
            "models": list(names),
            "captured_requests": len(request_ids),
            "captured_predictions": predictions,
            "sample_rate": sample_rate,
            "since_seconds": since_seconds,
            "observed_seconds": span,
            "first_record_time": first,
        },
    )


def traffic_for(
    *,
    urls: list[str] | None = None,
    window: float | None = None,
    requests_per_month: float | None = None,
    duration_s: float | None = None,
    store_uri: str | None = None,
    models: list[str] | None = None,
    since_seconds: float = 7 * 86400,
    sample_rate: float = 1.0,
) -> Traffic:
    """The traffic to price: ``--requests`` when given, else a server's /metrics (``--url``), else the
    store's capture (``store_uri``, None to skip it), else the stated default."""
    from pathlib import Path

    from mlopsctl.errors import MlopsError
    from mlopsctl.store.base import open_store

    if window is not None and (not urls or window <= 0):
        problem = "needs --url" if not urls else "must be more than 0s"
        raise ValidationError(f"--window: {problem}", [("--window", problem)])
    for opt, v in (("--requests", requests_per_month), ("--duration-ms", duration_s)):
        if v is not None and v < 0:
            shown = v * 1000 if opt == "--duration-ms" else v
            raise ValidationError(f"{opt} {shown:g}: must be 0 or more", [(opt, "negative")])
    if requests_per_month is not None:
        return assumed(requests_per_month, duration_s)
    note = ""
    if urls:
        traffic = scraped(urls, window)
    elif store_uri is not None and not store_uri.startswith("s3://") and not Path(store_uri).is_dir():
        traffic, note = assumed(None, duration_s), f"no store at {store_uri}: traffic assumed"
    elif store_uri is not None:
        try:
            found = captured(open_store(store_uri), models, since_seconds, sample_rate)
        except (MlopsError, OSError) as exc:  # the estimate stands without it; say why
            found, note = None, f"capture not read from {store_uri}: {exc}"
        if found is None:
            note = note or f"no capture in {store_uri} over the period: traffic assumed"
        traffic = found or assumed(None, duration_s)
    else:
        traffic = assumed(None, duration_s)
    if duration_s is not None:
        traffic.mean_duration_s = duration_s
        traffic.detail["duration_given"] = True
    if note:
        traffic.detail["note"] = note
    return traffic
