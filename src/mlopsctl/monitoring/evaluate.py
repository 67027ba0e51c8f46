"""`mlopsctl monitor check`: the alert rules evaluated by mlopsctl, from the servers' /metrics and the store.

Each check scrapes the servers, reduces the scrape to the series the rules read
(`mlopsctl.monitoring.scrape`), and steps every alert the way Prometheus does: pending while
the condition holds for less than the rule's duration, firing once it has held that long
across checks, inactive when it is false. Per model, the recent scrapes (for rates over the
rule's window), the alerts' states and which notifier was told what are kept in the store
at ``monitoring/{model}/alerts/state.json`` and written with compare-and-swap *before*
notifying, so a firing alert is announced once, a resolved one once, and two checks running
together never both send. A rule that cannot be evaluated (no earlier scrape, a server that
did not answer, no drift report) keeps its state rather than resolving.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mlopsctl.config import AlertsSection, prometheus_duration
from mlopsctl.errors import Conflict, NotFound
from mlopsctl.monitoring import scrape
from mlopsctl.monitoring.alerts import Rule, describe, rule_named, rules_of
from mlopsctl.monitoring.notify import Event, Notifier, NotifyError
from mlopsctl.store.base import Store, dumps

MAX_SAMPLES = 500


@dataclass
class Observation:
    condition: bool | None  # None: cannot tell now; the alert keeps its state
    value: float | None
    since: float | None = None  # when the condition began, where that is known (silence)
    note: str = ""


DriftFn = Callable[[Store, str], "dict[str, Any] | None"]
AccuracyFn = Callable[[Store, str, float, int], "tuple[float | None, int]"]


def state_key(model: str) -> str:
    return f"monitoring/{model}/alerts/state.json"


def fetch(url: str, timeout: float) -> str:
    import httpx

    target = url if url.rstrip("/").endswith("/metrics") else url.rstrip("/") + "/metrics"
    r = httpx.get(target, timeout=timeout)
    r.raise_for_status()
    return r.text


def _drift(store: Store, name: str, threshold: float, gauges: dict[str, float], fn: DriftFn | None) -> Observation:
    if fn is None:
        try:
            from mlopsctl.monitoring.drift import latest_report

            fn = latest_report
        except ImportError:  # no drift reports in this build: the server's gauge of the same report
            share = gauges.get("mlops_drift_share")
            if share is None or share < 0:
                return Observation(None, None, note="no drift report")
            return Observation(share > threshold, share, note="from the server's mlops_drift_share")
    report = fn(store, name)
    if not report or report.get("drifted_share") is None:
        return Observation(None, None, note="no drift report yet")
    share = float(report["drifted_share"])
    return Observation(share > threshold, share, note=f"drift report of v{report.get('version')}")


def _accuracy(
    store: Store, name: str, cfg: AlertsSection, gauges: dict[str, float], fn: AccuracyFn | None
) -> Observation:
    assert cfg.accuracy_min is not None
    if fn is None:
        try:
            from mlopsctl.monitoring.performance import live_accuracy

            fn = live_accuracy
        except ImportError:
            acc, n = gauges.get("mlops_live_accuracy"), int(gauges.get("mlops_live_labelled", 0))
            if acc is None or n < cfg.accuracy_min_samples:
                return Observation(None, acc, note=f"{n} labelled predictions, fewer than {cfg.accuracy_min_samples}")
            return Observation(acc < cfg.accuracy_min, acc, note=f"{n} labelled predictions (server gauges)")
    acc, n = fn(store, name, cfg.accuracy_window, cfg.accuracy_min_samples)
    if acc is None:
        return Observation(None, None, note=f"{n} labelled predictions, fewer than {cfg.accuracy_min_samples}")
    return Observation(acc < cfg.accuracy_min, acc, note=f"{n} labelled predictions")


def step(prev: dict[str, Any] | None, rule: Rule, obs: Observation, now: float) -> dict[str, Any]:
    """One evaluation of one alert, as Prometheus does it: inactive → pending → firing (after ``for``),
    back to inactive when the condition is false; no data keeps the state."""
    st = copy.deepcopy(prev) if prev else {"state": "inactive", "active_at": None, "announced": {}}
    st["value"], st["checked_at"], st["note"] = obs.value, now, obs.note
    if obs.condition is None:
        st["no_data"] = True
        return st
    st["no_data"] = False
    if obs.condition:
        if st["state"] == "inactive":
            st["state"], st["active_at"] = "pending", obs.since if obs.since is not None else now
        if st["state"] == "pending" and now - st["active_at"] >= rule.for_seconds:
            st["state"], st["fired_at"] = "firing", now
    else:
        if st["state"] == "firing":
            st["resolved_at"] = now
        st["state"], st["active_at"] = "inactive", None
    return st


def observe_model(
    store: Store,
    name: str,
    cfg: AlertsSection,
    state: dict[str, Any],
    current: dict[str, Any] | None,
    complete: bool,
    now: float,
    *,
    drift_fn: DriftFn | None = None,
    accuracy_fn: AccuracyFn | None = None,
) -> tuple[dict[str, Any], dict[str, Observation]]:
    """The observations of every rule for one model, and the model's new scrape history.

    ``current`` is this check's reduced scrape of the model (None: no server answered for it);
    ``complete`` whether every server answered (only then does the scrape join the rate history)."""
    history: list[dict[str, Any]] = state.get("samples", [])
    new = {k: v for k, v in state.items() if k not in ("samples", "alerts")}
    obs: dict[str, Observation] = {}
    sample = None if current is None else {"t": now, "requests": current["requests"], "buckets": current["buckets"]}
    gauges = (current or {}).get("gauges", {})

    # silence: the last check that saw a request counter move; the first check ever starts the clock
    last_seen: dict[str, float] = state.get("last_seen", {})
    quiet_since = state.get("quiet_since", now)
    if sample is not None:
        moved = any(v > 0 and v != last_seen.get(k) for k, v in sample["requests"].items())
        if moved:
            quiet_since = now
        # a scrape that missed a replica keeps that replica's last counts
        new["last_seen"] = dict(sample["requests"]) if complete else {**last_seen, **sample["requests"]}
    new["quiet_since"] = quiet_since

    for rule in rules_of(cfg):
        if rule.key in ("latency", "errors"):
            samples = scrape.window_samples(history, sample, rule.window) if sample and complete else []
            if not samples:
                why = "no earlier scrape to take a rate from" if sample else "no metrics for this model"
                obs[rule.key] = Observation(None, None, note=why)
            elif rule.key == "latency":
                p95 = scrape.latency_quantile(0.95, samples)
                span = f"over {prometheus_duration(now - samples[0]['t'])}"
                if p95 is None:
                    obs[rule.key] = Observation(False, None, note=f"no successful request {span}")
                else:
                    obs[rule.key] = Observation(p95 * 1000 > rule.threshold, p95, note=span)
            else:
                total, errors = scrape.request_increase(samples)
                span = f"{errors:.0f} of {total:.0f} requests over {prometheus_duration(now - samples[0]['t'])}"
                share = errors / total if total else None
                obs[rule.key] = Observation(bool(share is not None and share > rule.threshold), share, note=span)
        elif rule.key == "silence":
            quiet = now - quiet_since
            note = "" if sample is not None else "no metrics for this model"
            obs[rule.key] = Observation(quiet > 0, quiet, since=quiet_since, note=note)
        elif rule.key == "drift":
            obs[rule.key] = _drift(store, name, rule.threshold, gauges, drift_fn)
        else:
            obs[rule.key] = _accuracy(store, name, cfg, gauges, accuracy_fn)

    if sample is not None and complete:
        keep_from = now - max([r.window for r in rules_of(cfg)] + [300.0])
        older = [s for s in history if s["t"] < keep_from][-1:]
        history = older + [s for s in history if s["t"] >= keep_from and s["t"] < now] + [sample]
        history = history[-MAX_SAMPLES:]
    new["samples"] = history
    return new, obs


def evaluate(
    state: dict[str, Any], cfg: AlertsSection, obs: dict[str, Observation], now: float, notifier_names: Sequence[str]
) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """Step every alert of a model; returns the new alert states and what to send: (rule, notifier, status).
    The sends are marked as announced in the returned state (undone by the caller when one fails)."""
    alerts: dict[str, Any] = {}
    sends: list[tuple[str, str, str]] = []
    by_key = {r.key: r for r in rules_of(cfg)}
    for key, prev in state.get("alerts", {}).items():
        told = "firing" in prev.get("announced", {}).values()
        if key not in by_key and (prev["state"] != "inactive" or told):  # the rule was turned off: it resolves
            off = copy.deepcopy(prev)
            alerts[key] = off | {"state": "inactive", "active_at": None, "note": "rule turned off", "no_data": False}
    for key, rule in by_key.items():
        alerts[key] = step(state.get("alerts", {}).get(key), rule, obs[key], now)
    for key, st in alerts.items():
        announced = st.setdefault("announced", {})
        for n in notifier_names:
            if st["state"] == "firing" and announced.get(n) != "firing":
                sends.append((key, n, "firing"))
                announced[n] = "firing"
            elif st["state"] != "firing" and announced.get(n) == "firing":
                sends.append((key, n, "resolved"))
                announced[n] = "resolved"
    return alerts, sends


def _row(model: str, key: str, st: dict[str, Any], cfg: AlertsSection) -> dict[str, Any]:
    rule = rule_named(key, cfg)
    return {
        "model": model,
        "rule": key,
        "alert": rule.alert,
        "severity": rule.severity,
        "state": st["state"],
        "value": st.get("value"),
        "threshold": rule.threshold if key in cfg.rules_on() else None,
        "for_seconds": rule.for_seconds,
        "active_since": st.get("active_at"),
        "no_data": bool(st.get("no_data")),
        "note": st.get("note", ""),
        "summary": describe(rule, st.get("value")),
    }


def check(
    store: Store,
    cfg: AlertsSection,
    notifiers: Sequence[Notifier],
    *,
    urls: Sequence[str],
    models: Sequence[str] = (),
    now: float | None = None,
    timeout: float = 5.0,
    drift_fn: DriftFn | None = None,
    accuracy_fn: AccuracyFn | None = None,
) -> dict[str, Any]:
    """One evaluation of every rule for every model: scrape ``urls``, read the store, step the alerts,
    save their state, notify the changes. Models: ``models``, else every model the servers export."""
    now = time.time() if now is None else now
    sources, parts = [], []
    for url in urls:
        try:
            parts.append(scrape.parse_metrics(fetch(url, timeout), source=url))
            sources.append({"url": url, "ok": True, "error": None})
        except Exception as exc:  # unreachable, HTTP error, not Prometheus text: reported, silence counts on
            sources.append({"url": url, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
    merged = scrape.merge(parts)
    complete = all(s["ok"] for s in sources)
    names = list(models) or sorted(merged)
    rows: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    by_name = {n.name: n for n in notifiers}
    for name in names:
        key = state_key(name)
        for _ in range(5):  # compare-and-swap: two checks at once never both announce an alert
            try:
                raw, etag = store.get_with_etag(key)
                state: dict[str, Any] = json.loads(raw)
            except NotFound:
                state, etag = {}, None
            new, obs = observe_model(
                store, name, cfg, state, merged.get(name), complete, now, drift_fn=drift_fn, accuracy_fn=accuracy_fn
            )
            alerts, sends = evaluate(state, cfg, obs, now, list(by_name))
            new |= {"model": name, "alerts": alerts, "checked_at": now}
            try:
                etag = store.compare_and_swap(key, etag, dumps(new))
                break
            except Conflict:
                continue
        else:
            raise Conflict(key, f"{key}: changed by other checks five times running; try again")
        failed: list[tuple[str, str, str]] = []
        for rule_key, notifier, status in sends:
            st = alerts[rule_key]
            rule = rule_named(rule_key, cfg)
            event = Event(
                status=status,
                model=name,
                rule=rule_key,
                alert=rule.alert,
                severity=rule.severity,
                summary=describe(rule, st.get("value")),
                value=st.get("value"),
                threshold=rule.threshold if rule_key in cfg.rules_on() else None,
                active_since=st.get("active_at") or st.get("fired_at"),
                at=now,
            )
            entry = {"model": name, "alert": rule.alert, "status": status, "notifier": notifier, "ok": True}
            try:
                by_name[notifier].send(event)
                entry["error"] = None
            except NotifyError as exc:
                entry |= {"ok": False, "error": exc.problem}
                failed.append((rule_key, notifier, status))
            notes.append(entry)
        if failed:
            _unannounce(store, key, failed)
        rows += [_row(name, k, st, cfg) for k, st in alerts.items()]
    return {
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "sources": sources,
        "rules": cfg.rules_on(),
        "models": names,
        "alerts": rows,
        "firing": sum(r["state"] == "firing" for r in rows),
        "notifications": notes,
    }


def _unannounce(store: Store, key: str, failed: list[tuple[str, str, str]]) -> None:
    """Forget the announcements that failed, so the next check sends them again."""
    back = {"firing": None, "resolved": "firing"}
    for _ in range(5):
        raw, etag = store.get_with_etag(key)
        state = json.loads(raw)
        for rule_key, notifier, status in failed:
            announced = state["alerts"].get(rule_key, {}).get("announced", {})
            if announced.get(notifier) == status:
                if back[status] is None:
                    announced.pop(notifier, None)
                else:
                    announced[notifier] = back[status]
        try:
            store.compare_and_swap(key, etag, dumps(state))
            return
        except Conflict:
            continue
