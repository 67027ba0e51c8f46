"""The canary guard and the progressive ramp.

``judge`` compares the candidate with the control over one window: the candidate is pulled
back when its error rate (its own failures, and requests only it refuses; never the callers' bad
requests, see `WindowStats`) is above the control's by more than ``error_rate_margin`` *and*
significantly so (a one-sided 99 % bound on the difference is above zero, so a handful of
unlucky requests does not end an experiment), or when its p95 latency is above the control's
times ``latency_p95_ratio`` and by more than ``latency_p95_margin_ms``. Nothing is decided
before both variants have ``min_requests`` requests in the window.

``Guard`` runs in every server that serves a deployment with an experiment. Each tick it
takes the window's counts from the server's own metrics (`serving/live.py` snapshots), judges
and acts through compare-and-swap on the deployment: of several replicas reaching the same
decision one makes the move, records the event and sends the notification; the others find
it done. The same tick takes the next ramp step once the guard has held for a whole window
at the current step.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlopsctl.config import GuardSection
from mlopsctl.experiments.deployment import CANDIDATE, CONTROL, set_candidate_weight

if TYPE_CHECKING:
    from mlopsctl.monitoring.notify import Notifier
    from mlopsctl.serving.live import LiveStats
    from mlopsctl.serving.metrics import ServerMetrics
    from mlopsctl.serving.reload import Served
    from mlopsctl.store.base import Store

log = logging.getLogger("mlopsctl.guard")
Z_99 = 2.3263478740408408  # one-sided 99 %


@dataclass(frozen=True)
class WindowStats:
    """One variant over a window. ``errors`` are what the guard judges: the server's failures (5xx: the model
    raised, not ready) and, for a candidate, requests it refused that the control answers
    (``candidate_only``). Requests every variant refuses (``refused``: the caller's bad input) are not errors
    of anyone's, so callers cannot sink a canary by sending junk to it."""

    requests: float
    errors: float
    p95_ms: float | None
    refused: float = 0.0  # 4xx of any kind (the callers'), for the record
    candidate_only: float = 0.0  # of those, the ones the control would have answered (counted in errors)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Decision:
    action: str  # "wait" (too few requests), "hold" (healthy), "pull_back"
    reason: str
    details: dict[str, Any]


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _side(w: WindowStats) -> dict[str, Any]:
    return {
        "requests": w.requests,
        "errors": w.errors,
        "p95_ms": w.p95_ms,
        "refused": w.refused,
        "candidate_only": w.candidate_only,
    }


def judge(control: WindowStats, candidate: WindowStats, cfg: GuardSection, window: float) -> Decision:
    details = {
        "window_seconds": round(window, 1),
        "control": _side(control),
        "candidate": _side(candidate),
    }
    need = cfg.min_requests
    if control.requests < need or candidate.requests < need:
        return Decision(
            "wait",
            f"too few requests to judge: control {control.requests:.0f}, candidate {candidate.requests:.0f} "
            f"(need {need} each in the window)",
            details,
        )
    pc, pk = control.error_rate, candidate.error_rate
    diff = pk - pc
    se = math.sqrt(pc * (1 - pc) / control.requests + pk * (1 - pk) / candidate.requests)
    lower = diff - Z_99 * se
    if diff > cfg.error_rate_margin and lower > 0:
        return Decision(
            "pull_back",
            f"candidate error rate {_pct(pk)} vs control {_pct(pc)} over {window:.0f}s "
            f"(bound: control + {_pct(cfg.error_rate_margin)}; "
            f"{candidate.requests:.0f} and {control.requests:.0f} requests)",
            {**details, "rule": "error_rate", "value": pk, "threshold": pc + cfg.error_rate_margin},
        )
    kc, kk = control.p95_ms, candidate.p95_ms
    if kc is not None and kk is not None:
        bound = max(kc * cfg.latency_p95_ratio, kc + cfg.latency_p95_margin_ms)
        if kk > bound:
            return Decision(
                "pull_back",
                f"candidate p95 latency {kk:.1f} ms vs control {kc:.1f} ms over {window:.0f}s "
                f"(bound: x{cfg.latency_p95_ratio:g} and +{cfg.latency_p95_margin_ms:g} ms = {bound:.1f} ms)",
                {**details, "rule": "latency_p95", "value": kk, "threshold": bound},
            )
    return Decision(
        "hold",
        f"candidate within bounds: error rate {_pct(pk)} vs {_pct(pc)}, "
        f"p95 {'–' if kk is None else f'{kk:.1f}'} vs {'–' if kc is None else f'{kc:.1f}'} ms",
        details,
    )


class Guard:
    """The guard and ramp of the experiments this server serves (one background tick)."""

    def __init__(
        self,
        store: Store,
        served: list[Served],
        live: LiveStats,
        metrics: ServerMetrics,
        cfg: GuardSection,
        notifiers: list[Notifier],
    ) -> None:
        self.store, self.served, self.live, self.metrics, self.cfg = store, served, live, metrics, cfg
        self.notifiers = notifiers
        self.last: dict[str, Decision] = {}  # model -> last decision, for /dashboard and logs

    def tick(self) -> None:
        if not self.cfg.enabled:
            return
        for served in self.served:
            env = served.environment
            if served.route.experiment is None or env is None:
                continue
            try:
                self.check(served, env)
            except Exception:  # the store may be briefly unreachable: next tick
                log.exception("guard: %s", served.name)

    def check(self, served: Served, env: str) -> Decision | None:
        doc = served.deployment  # as the reloader last read it: the route and the document agree
        if doc is None or doc.experiment is None or doc.experiment_id != served.route.experiment:
            return None
        exp = doc.experiment
        if exp.get("status") != "running" or doc.weight(CANDIDATE) <= 0:
            return None
        now = time.time()
        since = max(now - self.cfg.window, float(exp.get("step_started_ts") or exp["started_ts"]))
        stats = self.live.variant_window(served.name, since, now)
        zero = WindowStats(0, 0, None)
        decision = judge(stats.get(CONTROL, zero), stats.get(CANDIDATE, zero), self.cfg, now - since)
        self.last[served.name] = decision
        if decision.action == "pull_back":
            moved = set_candidate_weight(
                self.store,
                served.name,
                env,
                str(exp["id"]),
                0.0,
                action="ab_pull_back",
                reason=decision.reason,
                status="pulled_back",
                details={"rule": decision.details.get("rule")},
            )
            if moved is not None:
                self.metrics.guard_actions.labels(served.name, "pulled_back").inc()
                log.warning("guard: %s: candidate pulled back: %s", served.name, decision.reason)
                self._notify(served.name, "firing", "MlopsCanaryPulledBack", "critical", decision)
            return decision
        steps = exp.get("ramp") or []
        step = int(exp["step"]) if exp.get("step") is not None else -1
        held_for = now - float(exp.get("step_started_ts") or exp["started_ts"])
        ramping = decision.action == "hold" and 0 <= step < len(steps) - 1
        if not ramping or held_for < self.cfg.window:
            return decision
        weight = float(steps[step + 1])
        reason = f"guard held for {held_for:.0f}s at {steps[step]:g} %: {decision.reason}"
        moved = set_candidate_weight(
            self.store, served.name, env, str(exp["id"]), weight, action="ab_ramp", reason=reason, step=step + 1
        )
        if moved is not None:
            self.metrics.guard_actions.labels(served.name, "ramp").inc()
            log.info("guard: %s: candidate ramped to %g %%", served.name, weight)
            ramp = Decision("ramp", f"candidate now gets {weight:g} % ({reason})", decision.details)
            self._notify(served.name, "info", "MlopsCanaryRamp", "info", ramp)
        return decision

    def _notify(self, model: str, status: str, alert: str, severity: str, decision: Decision) -> None:
        from mlopsctl.monitoring.notify import Event

        event = Event(
            status=status,
            model=model,
            rule="canary_guard",
            alert=alert,
            severity=severity,
            summary=decision.reason,
            value=decision.details.get("value"),
            threshold=decision.details.get("threshold"),
            active_since=None,
        )
        for n in self.notifiers:
            try:
                n.send(event)
            except Exception as exc:  # one notifier down does not stop the others
                log.error("guard: notify %s: %s", getattr(n, "name", n), exc)
