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

Absence is a signal: the models checked are the ones asked for, else the project's and every
one the servers export (so a dead server still has its project's model checked); a server that
does not answer fires ``down`` (one alert for the servers, at ``monitoring/_servers/``), a model
with no request for ``silence_for`` fires ``silence`` (a server that never had one counts from
its start), and one with no captured prediction for ``capture_for`` fires ``capture``. A live
metric's rule applies to the models whose task has that metric (the newest version's task in
the registry): a regression model is never judged by accuracy.
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
from mlopsctl.monitoring.alerts import SERVER_RULES, SERVERS, Rule, describe, rule_named, rules_of
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
# (store, model, window, min labels) → (the task's live metrics or None below min labels, labels, task)
MetricsFn = Callable[[Store, str, float, int], "tuple[dict[str, Any] | None, int, str | None]"]
CapturedFn = Callable[[Store, str, float, float], "float | None"]  # (store, model, since, until) → last time


def state_key(model: str) -> str:
    return f"monitoring/{'_servers' if model == SERVERS else model}/alerts/state.json"


def model_rules(cfg: AlertsSection, task: str | None) -> list[Rule]:
    """The rules judged per model: every rule but the servers', and a live metric's only when the
    model's task has it (task unknown: kept, and it reports no data)."""
    from mlopsctl.monitoring.taskmetrics import metrics_of

    have = metrics_of(task) if task is not None else None
    return [
        r for r in rules_of(cfg) if r.key not in SERVER_RULES and (r.metric is None or have is None or r.metric in have)
    ]


def last_captured(store: Store, name: str, since: float, until: float) -> float | None:
    """When the newest prediction of ``name`` captured between ``since`` and ``until`` was made."""
    from mlopsctl.monitoring.captured import load_captures

    records = load_captures(store, name, since, until, ok_only=True)
    return float(records[-1]["time"]) if records else None


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


def _metric_observations(
    store: Store, name: str, cfg: AlertsSection, rules: list[Rule], fn: MetricsFn | None
) -> dict[str, Observation]:
    metric_rules = [r for r in rules if r.metric is not None]
    if not metric_rules:
        return {}
    if fn is None:
        from mlopsctl.monitoring.performance import live_metrics

        fn = live_metrics
    values, n, task = fn(store, name, cfg.labels_window, cfg.min_labels)
    out = {}
    for r in metric_rules:
        if task is None:
            out[r.key] = Observation(None, None, note=f"{name} is not in the registry: its task is unknown")
        elif values is None:
            out[r.key] = Observation(None, None, note=f"{n} labelled predictions, fewer than {cfg.min_labels}")
        elif values.get(r.key) is None:
            out[r.key] = Observation(None, None, note=f"{r.key} undefined on these {n} labels")
        else:
            from mlopsctl.monitoring.taskmetrics import breaches

            v = float(values[r.key])
            out[r.key] = Observation(breaches(r.key, v, r.threshold), v, note=f"{n} labelled predictions ({task})")
    return out


def _capture(store: Store, name: str, rule: Rule, known_since: float, now: float, fn: CapturedFn | None) -> Observation:
    last = (fn or last_captured)(store, name, now - rule.threshold, now)
    span = prometheus_duration(rule.threshold)
    if last is not None:
        return Observation(False, now - last, note=f"last prediction captured {prometheus_duration(now - last)} ago")
    if now - known_since < rule.threshold:
        return Observation(False, None, note=f"watched for less than {span}: nothing captured yet")
    return Observation(True, None, note=f"no prediction captured in the last {span}")


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
    metrics_fn: MetricsFn | None = None,
    captured_fn: CapturedFn | None = None,
    rules: list[Rule] | None = None,
) -> tuple[dict[str, Any], dict[str, Observation]]:
    """The observations of every rule for one model (``rules``: default, all but the servers'), and the
    model's new scrape history.

    ``current`` is this check's reduced scrape of the model (None: no server answered for it);
    ``complete`` whether every server answered (only then does the scrape join the rate history)."""
    history: list[dict[str, Any]] = state.get("samples", [])
    new = {k: v for k, v in state.items() if k not in ("samples", "alerts")}
    obs: dict[str, Observation] = {}
    sample = None if current is None else {"t": now, "requests": current["requests"], "buckets": current["buckets"]}
    gauges = (current or {}).get("gauges", {})

    rules = [r for r in rules_of(cfg) if r.key not in SERVER_RULES] if rules is None else rules
    started = gauges.get(scrape.START)
    # silence: the last check that saw a request counter move; the first check ever starts the clock, or
    # the server's start when it has answered no request at all
    last_seen: dict[str, float] = state.get("last_seen", {})
    quiet_since = state.get("quiet_since")
    if quiet_since is None:
        idle = sample is not None and started is not None and scrape.total_requests(sample) == 0
        quiet_since = min(started, now) if idle and started is not None else now
    known_since = min(state.get("known_since", now), started if started is not None else now)
    new["known_since"] = known_since
    if sample is not None:
        moved = any(v > 0 and v != last_seen.get(k) for k, v in sample["requests"].items())
        if moved:
            quiet_since = now
        # a scrape that missed a replica keeps that replica's last counts
        new["last_seen"] = dict(sample["requests"]) if complete else {**last_seen, **sample["requests"]}
    new["quiet_since"] = quiet_since

    obs |= _metric_observations(store, name, cfg, rules, metrics_fn)
    for rule in rules:
        if rule.metric is not None:
            continue
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
        elif rule.key == "capture":
            obs[rule.key] = _capture(store, name, rule, known_since, now, captured_fn)
        elif rule.key == "drift":
            obs[rule.key] = _drift(store, name, rule.threshold, gauges, drift_fn)

    if sample is not None and complete:
        keep_from = now - max([r.window for r in rules_of(cfg)] + [300.0])
        older = [s for s in history if s["t"] < keep_from][-1:]
        history = older + [s for s in history if s["t"] >= keep_from and s["t"] < now] + [sample]
        history = history[-MAX_SAMPLES:]
    new["samples"] = history
    return new, obs


def evaluate(
    state: dict[str, Any],
    rules: list[Rule],
    obs: dict[str, Observation],
    now: float,
    notifier_names: Sequence[str],
) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """Step every alert of a model; returns the new alert states and what to send: (rule, notifier, status).
    The sends are marked as announced in the returned state (undone by the caller when one fails)."""
    alerts: dict[str, Any] = {}
    sends: list[tuple[str, str, str]] = []
    by_key = {r.key: r for r in rules}
    for key, prev in state.get("alerts", {}).items():
        told = "firing" in prev.get("announced", {}).values()
        if key not in by_key and (prev["state"] != "inactive" or told):  # the rule no longer applies: it resolves
            off = copy.deepcopy(prev)
            alerts[key] = off | {"state": "inactive", "active_at": None, "note": "rule off", "no_data": False}
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
    served: Sequence[str] = (),
    now: float | None = None,
    timeout: float = 5.0,
    drift_fn: DriftFn | None = None,
    metrics_fn: MetricsFn | None = None,
    captured_fn: CapturedFn | None = None,
    task_fn: Callable[[Store, str], str | None] | None = None,
) -> dict[str, Any]:
    """One evaluation of every rule for every model: scrape ``urls``, read the store, step the alerts,
    save their state, notify the changes. Models: ``models``, else ``served`` (the project's) and every
    model the servers export. The servers' own alerts (``down``) come last, as model ``(servers)``."""
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
    names = list(dict.fromkeys(models)) or sorted(set(served) | set(merged))
    if task_fn is None:
        from mlopsctl.monitoring.performance import model_task

        task_fn = model_task
    rows: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    by_name = {n.name: n for n in notifiers}

    def judge(name: str, rules: list[Rule], observe: Callable[[dict[str, Any]], Any]) -> None:
        alerts, sends = _step_entry(store, name, rules, observe, now, list(by_name))
        notes.extend(_notify(store, name, alerts, sends, by_name, cfg, now))
        rows.extend(_row(name, k, st, cfg) for k, st in alerts.items())

    for name in names:
        rules = model_rules(cfg, task_fn(store, name))

        def observe(state: dict[str, Any], name: str = name, rules: list[Rule] = rules) -> Any:
            return observe_model(
                store,
                name,
                cfg,
                state,
                merged.get(name),
                complete,
                now,
                drift_fn=drift_fn,
                metrics_fn=metrics_fn,
                captured_fn=captured_fn,
                rules=rules,
            )

        judge(name, rules, observe)
    server_rules = [r for r in rules_of(cfg) if r.key in SERVER_RULES]
    if server_rules:
        failed = [str(s["url"]) for s in sources if not s["ok"]]

        def servers(state: dict[str, Any]) -> Any:
            note = "not answering: " + ", ".join(failed) if failed else f"{len(sources)} answered"
            new = {k: v for k, v in state.items() if k != "alerts"}
            return new, {"down": Observation(bool(failed), float(len(failed)), note=note)}

        judge(SERVERS, server_rules, servers)
    return {
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "sources": sources,
        "rules": cfg.rules_on(),
        "models": names,
        "alerts": rows,
        "firing": sum(r["state"] == "firing" for r in rows),
        "notifications": notes,
    }


def _step_entry(
    store: Store,
    name: str,
    rules: list[Rule],
    observe: Callable[[dict[str, Any]], Any],
    now: float,
    notifier_names: list[str],
) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """Observe and step one model's (or the servers') alerts and save them with compare-and-swap:
    two checks at once never both announce an alert."""
    key = state_key(name)
    for _ in range(5):
        try:
            raw, etag = store.get_with_etag(key)
            state: dict[str, Any] = json.loads(raw)
        except NotFound:
            state, etag = {}, None
        new, obs = observe(state)
        alerts, sends = evaluate(state, rules, obs, now, notifier_names)
        new |= {"model": name, "alerts": alerts, "checked_at": now}
        try:
            store.compare_and_swap(key, etag, dumps(new))
            return alerts, sends
        except Conflict:
            continue
    raise Conflict(key, f"{key}: changed by other checks five times running; try again")


def _notify(
    store: Store,
    name: str,
    alerts: dict[str, Any],
    sends: list[tuple[str, str, str]],
    by_name: dict[str, Notifier],
    cfg: AlertsSection,
    now: float,
) -> list[dict[str, Any]]:
    notes: list[dict[str, Any]] = []
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
        _unannounce(store, state_key(name), failed)
    return notes


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
