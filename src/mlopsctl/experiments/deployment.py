"""Deployments: what an environment serves, kept in the store and changed only by compare-and-swap.

``deployments/{model}/{environment}.json`` says how the traffic of one alias (the
environment: ``prod``, ``staging``…) is split. Without the file, or when it holds a single
variant, the alias is served as it is. An A/B test (``start``) splits the traffic between a
*control* (the alias) and a *candidate* (a version or another alias) by weight, optionally
pinned per caller by a header; shadows get a copy of each request and are never answered
with. Servers following the alias poll this object and switch routes the way they follow
alias moves (``serving/reload.py``).

Every change is an event in the model's history, and each experiment has a record at
``experiments/{model}/{id}.json`` (started, weights moved, ended and why). One experiment at
a time per model.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlopsctl import registry
from mlopsctl.errors import Conflict, GateRefused, NotFound, ValidationError
from mlopsctl.registry import history
from mlopsctl.registry.aliases import ALIAS_RE
from mlopsctl.registry.versions import check_name
from mlopsctl.store.base import Store, dumps

CONTROL, CANDIDATE = "control", "candidate"
SHADOW_PREFIX = "shadow-"
MAX_ATTEMPTS = 20
HEADER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")


@dataclass
class Variant:
    name: str
    ref: str  # an alias or a version number ("5")
    weight: float = 0.0  # percent of the traffic; 0 for a shadow


@dataclass
class Deployment:
    model: str
    environment: str
    variants: list[Variant]
    shadows: list[Variant] = field(default_factory=list)
    sticky: str | None = None
    experiment: dict[str, Any] | None = None  # the running experiment (see `start`)
    updated_at: str = ""
    updated_by: str = ""

    @property
    def experiment_id(self) -> str | None:
        return None if self.experiment is None else str(self.experiment["id"])

    def is_plain(self) -> bool:
        """Serves the alias alone: no split, no shadow."""
        return len(self.variants) <= 1 and not self.shadows

    def weight(self, name: str) -> float:
        return next((v.weight for v in self.variants if v.name == name), 0.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Deployment:
        return cls(
            model=d["model"],
            environment=d["environment"],
            variants=[Variant(**v) for v in d.get("variants", [])],
            shadows=[Variant(**v) for v in d.get("shadows", [])],
            sticky=d.get("sticky"),
            experiment=d.get("experiment"),
            updated_at=d.get("updated_at", ""),
            updated_by=d.get("updated_by", ""),
        )

    @classmethod
    def plain(cls, model: str, environment: str) -> Deployment:
        return cls(model, environment, [Variant(environment, environment, 100.0)])


def _key(name: str, environment: str) -> str:
    check_name(name)
    if not re.match(ALIAS_RE, environment) or environment.isdigit() or environment == "latest":
        raise NotFound("environment", environment, "environments are aliases such as prod or staging")
    return f"deployments/{name}/{environment}.json"


def read_deployment(store: Store, name: str, environment: str) -> tuple[Deployment | None, str | None]:
    """The deployment of ``name@environment`` and its etag; (None, None) when there is none."""
    try:
        raw, etag = store.get_with_etag(_key(name, environment))
    except NotFound:
        return None, None
    return Deployment.from_dict(json.loads(raw)), etag


def deployments(store: Store, name: str) -> list[Deployment]:
    out = []
    for key in store.list(f"deployments/{name}/"):
        env = key.rsplit("/", 1)[1].removesuffix(".json")
        doc, _ = read_deployment(store, name, env)
        if doc is not None:
            out.append(doc)
    return out


def running(store: Store, name: str) -> Deployment | None:
    """The deployment of ``name`` with a running experiment, if any (there is at most one)."""
    return next((d for d in deployments(store, name) if d.experiment is not None), None)


def update(
    store: Store, name: str, environment: str, change: Callable[[Deployment], Deployment | None]
) -> Deployment | None:
    """Read, change, compare-and-swap, again if someone else wrote in between.

    ``change`` gets the current deployment (a plain one when there is none) and returns the new
    one, or None to leave it as it is. It may raise to refuse; it may run more than once.
    """
    key = _key(name, environment)
    for _ in range(MAX_ATTEMPTS):
        current, etag = read_deployment(store, name, environment)
        new = change(current or Deployment.plain(name, environment))
        if new is None:
            return None
        new.updated_at, new.updated_by = history.now(), history.actor()
        try:
            store.compare_and_swap(key, etag, dumps(new.to_dict()))
        except Conflict:
            continue
        return new
    raise Conflict(key, f"the deployment of {name}@{environment} kept changing; gave up after {MAX_ATTEMPTS} attempts")


# -- experiments ----------------------------------------------------------------------------------


def _invalid(field: str, problem: str) -> ValidationError:
    return ValidationError(f"{field}: {problem}", [(field, problem)])


def parse_split(text: str) -> tuple[float, float]:
    """``"90/10"`` → (90.0, 10.0): control and candidate percentages adding up to 100."""
    parts = text.split("/")
    try:
        control, candidate = (float(p) for p in parts) if len(parts) == 2 else (float("nan"), 0.0)
    except ValueError:
        control, candidate = float("nan"), 0.0
    if not (control == control) or control < 0 or candidate < 0:
        raise _invalid("split", f"{text!r}: expected CONTROL/CANDIDATE such as 90/10")
    if abs(control + candidate - 100) > 1e-9:
        total, fix = control + candidate, f"{100 - candidate:g}/{candidate:g}"
        raise _invalid("split", f"{text!r} adds up to {total:g}, not 100: e.g. {fix}")
    if candidate == 0:
        raise _invalid("split", "the candidate gets no traffic: give it more than 0")
    return control, candidate


def parse_ramp(text: str | list[float] | None) -> list[float]:
    if not text:
        return []
    try:
        steps = [float(x) for x in text.split(",")] if isinstance(text, str) else [float(x) for x in text]
    except ValueError:
        raise _invalid("ramp", f"{text!r}: expected percentages such as 5,25,50,100") from None
    if any(not 0 < s <= 100 for s in steps) or steps != sorted(steps) or len(set(steps)) != len(steps):
        raise _invalid("ramp", f"{text!r}: increasing percentages in (0, 100], e.g. 5,25,50,100")
    return steps


def _ref_version(store: Store, name: str, ref: str) -> int:
    """The version ``ref`` (a number, v-number or alias) names; a clear error when it names none."""
    try:
        return registry.resolve(store, name, ref)
    except NotFound as exc:
        known = registry.version_numbers(store, name)
        have = ", ".join(f"v{v}" for v in known) or "none"
        raise NotFound(
            exc.what,
            f"{name}@{ref}",
            f"versions: {have}; aliases: {', '.join(registry.aliases(store, name)) or 'none'}",
        ) from None


def _event(store: Store, name: str, action: str, **fields: Any) -> dict[str, Any]:
    return history.record(store, name, action, **fields)


def _record_key(name: str, experiment_id: str) -> str:
    return f"experiments/{name}/{experiment_id}.json"


def experiment_record(store: Store, name: str, experiment_id: str) -> dict[str, Any] | None:
    return store.get_json_or(_record_key(name, experiment_id))


def experiment_records(store: Store, name: str) -> list[dict[str, Any]]:
    return [store.get_json(k) for k in store.list(f"experiments/{name}/") if k.endswith(".json") and k.count("/") == 2]


def _append_record(store: Store, name: str, experiment_id: str, entry: dict[str, Any], **top: Any) -> None:
    """Add ``entry`` to the experiment record's log (compare-and-swap) and set ``top`` fields."""
    key = _record_key(name, experiment_id)
    for _ in range(MAX_ATTEMPTS):
        try:
            raw, etag = store.get_with_etag(key)
        except NotFound:
            return
        rec = json.loads(raw)
        rec.setdefault("log", []).append({"at": history.now(), "by": history.actor(), **entry})
        rec.update(top)
        try:
            store.compare_and_swap(key, etag, dumps(rec))
            return
        except Conflict:
            continue


def start(
    store: Store,
    name: str,
    *,
    control: str,
    candidate: str,
    split: str,
    sticky: str | None = None,
    ramp: str | list[float] | None = None,
    reason: str = "",
    plan: Callable[[int], int | None] | None = None,
    force: bool = False,
) -> Deployment:
    """Start an A/B test on ``name@control``; refused if one runs on this model already, and (unless
    ``force``, then recorded) when the candidate's signature differs from the control version's."""
    if registry.get_alias(store, name, control) is None:
        aliases = ", ".join(registry.aliases(store, name)) or "none"
        raise NotFound("alias", f"{name}@{control}", f"the control must be an alias; {name} has: {aliases}")
    control_w, candidate_w = parse_split(split)
    steps = parse_ramp(ramp)
    if steps:
        control_w, candidate_w = 100 - steps[0], steps[0]
    if sticky is not None and not HEADER_RE.match(sticky):
        raise _invalid("sticky", f"{sticky!r} is not an HTTP header name (e.g. X-User-Id)")
    cand_version = _ref_version(store, name, candidate)
    control_version = _ref_version(store, name, control)
    if cand_version == control_version:
        raise _invalid("candidate", f"{name}@{candidate} is v{cand_version}, the version {control} serves already")
    other = running(store, name)
    if other is not None and other.experiment is not None:
        e = other.experiment
        raise Conflict(
            f"deployments/{name}/{other.environment}.json",
            f"{name} already has an experiment running: {e['id']} on {other.environment} "
            f"(candidate v{e['candidate_version']}); `mlopsctl ab conclude {name}` or `ab stop {name}` first",
        )
    forced = _check_signature(store, name, cand_version, control_version, control, "ab start", force=force)
    now = time.time()
    experiment_id = f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"
    # a candidate named by version is pinned; by alias it follows the alias
    cand_ref = str(cand_version) if re.fullmatch(r"v?\d+", candidate) else candidate
    experiment = {
        "id": experiment_id,
        "started_at": history.now(),
        "started_ts": now,
        "control": control,
        "control_version": control_version,
        "candidate": cand_ref,
        "candidate_version": cand_version,
        "sticky": sticky,
        "ramp": steps,
        "step": 0 if steps else None,
        "step_started_ts": now,
        "status": "running",
        "reason": reason,
        "planned_per_variant": plan(control_version) if plan else None,
        **({"forced": forced} if forced else {}),
    }

    def change(dep: Deployment) -> Deployment:
        if dep.experiment is not None:
            raise Conflict(
                f"deployments/{name}/{control}.json", f"{name}@{control} already runs {dep.experiment['id']}"
            )
        dep.variants = [Variant(CONTROL, control, control_w), Variant(CANDIDATE, cand_ref, candidate_w)]
        dep.sticky, dep.experiment = sticky, experiment
        return dep

    store.put_json_if_absent(
        _record_key(name, experiment_id), {"model": name, "environment": control, **experiment, "log": []}
    )
    try:
        dep = update(store, name, control, change)
    except Exception:
        _append_record(store, name, experiment_id, {"action": "not_started"}, status="not_started")
        raise
    assert dep is not None
    _event(
        store,
        name,
        "ab_start",
        alias=control,
        experiment=experiment_id,
        version=cand_version,
        split=f"{control_w:g}/{candidate_w:g}",
        sticky=sticky,
        ramp=steps,
        reason=reason,
        **({"forced": True, "overridden": forced} if forced else {}),
    )
    return dep


def _check_signature(
    store: Store, name: str, candidate: int, control: int, alias: str, command: str, *, force: bool
) -> list[str]:
    """How ``candidate``'s inputs differ from ``control``'s (the version ``alias`` serves): a GateRefused
    naming each difference, or with ``force`` the differences to record as overridden."""
    from mlopsctl.bundle.version import signature_differences

    changes = signature_differences(store, name, candidate, control)
    if changes and not force:
        raise GateRefused(
            f"{command} refused: {'; '.join(changes)} (v{control} is what {name}@{alias} serves: requests it "
            f"answers would fail on v{candidate}); --force to go ahead anyway, recorded"
        )
    return changes


def set_candidate_weight(
    store: Store,
    name: str,
    environment: str,
    experiment_id: str,
    weight: float,
    *,
    action: str,
    reason: str,
    step: int | None = None,
    status: str | None = None,
    details: dict[str, Any] | None = None,
) -> Deployment | None:
    """Move the candidate's share to ``weight`` % if ``experiment_id`` still runs there with another weight.

    Returns the new deployment, or None when nothing changed (already done by another replica, or the
    experiment ended): the caller that gets a deployment back is the one that made the move.
    """

    def change(dep: Deployment) -> Deployment | None:
        if dep.experiment_id != experiment_id or dep.experiment is None:
            return None
        if status is not None and dep.experiment.get("status") == status:
            return None
        if dep.weight(CANDIDATE) == weight and (step is None or dep.experiment.get("step") == step):
            return None
        for v in dep.variants:
            v.weight = weight if v.name == CANDIDATE else 100 - weight
        exp = dict(dep.experiment)
        if step is not None:
            exp["step"], exp["step_started_ts"] = step, time.time()
        if status is not None:
            exp["status"] = status
            exp[status] = {"at": history.now(), "reason": reason, **(details or {})}
        dep.experiment = exp
        return dep

    dep = update(store, name, environment, change)
    if dep is not None:
        _event(
            store,
            name,
            action,
            alias=environment,
            experiment=experiment_id,
            weight=weight,
            reason=reason,
            **(details or {}),
        )
        _append_record(
            store,
            name,
            experiment_id,
            {"action": action, "weight": weight, "reason": reason, **(details or {})},
            **({"status": status} if status else {}),
        )
    return dep


def end(
    store: Store, name: str, *, outcome: str, reason: str = "", report: dict[str, Any] | None = None
) -> dict[str, Any]:
    """End the running experiment of ``name``: the control alias serves all traffic again (shadows stay).

    ``outcome``: ``stopped`` (abandoned), ``concluded`` or ``promoted``. Returns the experiment record.
    """
    dep = running(store, name)
    if dep is None or dep.experiment is None:
        raise NotFound("experiment", name, "none is running: `mlopsctl ab start` one")
    experiment_id, env = dep.experiment["id"], dep.environment

    def change(d: Deployment) -> Deployment | None:
        if d.experiment_id != experiment_id:
            return None
        d.variants = [Variant(env, env, 100.0)]
        d.sticky, d.experiment = None, None
        return d

    update(store, name, env, change)
    extra = {"report": report} if report is not None else {}
    _append_record(
        store,
        name,
        experiment_id,
        {"action": outcome, "reason": reason},
        status=outcome,
        ended_at=history.now(),
        **extra,
    )
    _event(
        store,
        name,
        f"ab_{'stop' if outcome == 'stopped' else 'conclude'}",
        alias=env,
        experiment=experiment_id,
        outcome=outcome,
        reason=reason,
    )
    return experiment_record(store, name, experiment_id) or {}


# -- shadows ----------------------------------------------------------------------------------------


def shadow_name(version: int) -> str:
    return f"{SHADOW_PREFIX}v{version}"


def add_shadow(
    store: Store, name: str, environment: str, ref: str, *, reason: str = "", force: bool = False
) -> Deployment:
    """Copy the traffic of ``name@environment`` to version ``ref``; refused (unless ``force``, then recorded)
    when its signature differs from the alias's version, whose requests it would then fail."""
    current = registry.get_alias(store, name, environment)
    if current is None:
        raise NotFound(
            "alias", f"{name}@{environment}", "shadows copy the traffic of an alias: promote a version to it first"
        )
    version = _ref_version(store, name, ref)
    variant = shadow_name(version)
    forced = _check_signature(store, name, version, int(current["version"]), environment, "shadow add", force=force)

    def change(dep: Deployment) -> Deployment:
        if any(s.name == variant for s in dep.shadows):
            raise Conflict(f"deployments/{name}/{environment}.json", f"v{version} already shadows {name}@{environment}")
        dep.shadows = [*dep.shadows, Variant(variant, str(version), 0.0)]
        return dep

    dep = update(store, name, environment, change)
    assert dep is not None
    _event(
        store,
        name,
        "shadow_add",
        alias=environment,
        version=version,
        reason=reason,
        **({"forced": True, "overridden": forced} if forced else {}),
    )
    return dep


def remove_shadow(store: Store, name: str, environment: str, ref: str, *, reason: str = "") -> Deployment:
    version = _ref_version(store, name, ref)
    variant = shadow_name(version)

    def change(dep: Deployment) -> Deployment:
        if not any(s.name == variant for s in dep.shadows):
            have = ", ".join(s.name for s in dep.shadows) or "none"
            raise NotFound("shadow", f"{name}@{environment} v{version}", f"shadows now: {have}")
        dep.shadows = [s for s in dep.shadows if s.name != variant]
        return dep

    dep = update(store, name, environment, change)
    assert dep is not None
    _event(store, name, "shadow_remove", alias=environment, version=version, reason=reason)
    return dep
