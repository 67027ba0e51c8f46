"""Aliases: movable pointers to versions, moved only by compare-and-swap.

``models/{name}/aliases/{alias}.json`` holds the version and the stack of the versions
it pointed to before, so ``rollback`` undoes promotions one at a time. A promotion reads
the alias, applies the approval rule and the gate against the version it read, and swaps
only if the alias still holds what was read; otherwise it starts over.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mlopsctl.bundle.ref import ALIAS_RE as BUNDLE_ALIAS_RE
from mlopsctl.bundle.ref import alias_problem
from mlopsctl.errors import Conflict, GateRefused, NotFound
from mlopsctl.registry import history
from mlopsctl.registry.gate import Evaluator, check
from mlopsctl.registry.versions import approval, check_name, manifest
from mlopsctl.store.base import Store, dumps

ALIAS_RE = BUNDLE_ALIAS_RE.pattern
MAX_ATTEMPTS = 20


def _key(name: str, alias: str) -> str:
    problem = alias_problem(alias)
    if problem:
        raise NotFound("alias", alias, problem)
    return f"models/{name}/aliases/{alias}.json"


def get_alias(store: Store, name: str, alias: str) -> dict[str, Any] | None:
    check_name(name)
    return store.get_json_or(_key(name, alias))


def aliases(store: Store, name: str) -> dict[str, dict[str, Any]]:
    out = {}
    for key in store.list(f"models/{name}/aliases/"):
        alias = key.rsplit("/", 1)[1].removesuffix(".json")
        out[alias] = store.get_json(key)
    return out


def _recorded_metric(store: Store, name: str, version: int, metric: str) -> float | None:
    value = manifest(store, name, version).get("metrics", {}).get(metric)
    return None if value is None else float(value)


def promote(
    store: Store,
    name: str,
    version: int,
    alias: str,
    *,
    reason: str = "",
    force: bool = False,
    tolerance: float = 0.01,
    require_approval: list[str] | None = None,
    evaluator: Evaluator | None = None,
    compatibility: Callable[[int, int], list[str]] | None = None,
) -> dict[str, Any] | None:
    """Point ``alias`` at ``version``. Returns the history event, or None if it already pointed there.

    ``compatibility(candidate, current)`` lists how the candidate's inputs differ from those of the version
    the alias points at; any difference refuses the move unless ``force`` (then it is recorded as overridden).
    """
    key = _key(name, alias)
    man = manifest(store, name, version)
    state = approval(store, name, version)
    refusals: list[str] = []
    if state["state"] == "rejected":
        refusals.append(f"{name} v{version} was rejected by {state.get('by')}: {state.get('reason') or 'no reason'}")
    elif alias in (require_approval or []) and state["state"] != "approved":
        refusals.append(f"{alias} requires approval: run `mlopsctl approve {name} {version}` first")
    metric = man.get("primary_metric", "")
    for _ in range(MAX_ATTEMPTS):
        try:
            raw, etag = store.get_with_etag(key)
            current: dict[str, Any] | None = json.loads(raw)
        except NotFound:
            current, etag = None, None
        cur_v = int(current["version"]) if current else None
        if cur_v == version:
            return None
        cand_val: float | None
        cur_val: float | None
        scored = evaluator(version, cur_v) if (evaluator and cur_v is not None) else None
        if scored is not None:
            cand_val, cur_val, method = scored
        else:
            cand_val = _recorded_metric(store, name, version, metric)
            cur_val = _recorded_metric(store, name, cur_v, metric) if cur_v is not None else None
            method = "each version's recorded holdout metric"
        gate = check(
            metric,
            cand_val,
            cur_val,
            tolerance,
            candidate_version=version,
            current_version=cur_v,
            method=method,
        )
        changes = compatibility(version, cur_v) if (compatibility and cur_v is not None) else []
        signature = (
            [f"its signature differs from v{cur_v}'s, which {alias} serves: " + "; ".join(changes)] if changes else []
        )
        problems = refusals + signature + ([] if gate.passed else [gate.message])
        if problems and not force:
            hint = f" (requests {name}@{alias} answers now would fail; --force promotes anyway, recorded)"
            said = "promotion refused: " + "; ".join(problems) + (hint if changes else "")
            raise GateRefused(said, cand_val, cur_val)
        stack = ([*current.get("stack", []), cur_v] if current else [])[-50:]
        event_fields = {
            "alias": alias,
            "from": cur_v,
            "to": version,
            "reason": reason,
            "forced": bool(problems),
            "overridden": problems,
            "gate": gate.to_dict(),
        }
        event = _swap(store, name, key, etag, "promote", version, stack, event_fields)
        if event is not None:
            return event
        # someone moved the alias since we read it: gate again against the new target
    raise Conflict(key, f"{name}@{alias} kept changing; gave up after {MAX_ATTEMPTS} attempts")


def rollback(store: Store, name: str, alias: str, *, reason: str = "") -> dict[str, Any]:
    """Point ``alias`` back at the version it pointed to before its last promotion."""
    key = _key(name, alias)
    for _ in range(MAX_ATTEMPTS):
        try:
            raw, etag = store.get_with_etag(key)
        except NotFound:
            raise NotFound("alias", f"{name}@{alias}", "nothing to roll back") from None
        current = json.loads(raw)
        stack = list(current.get("stack", []))
        if not stack:
            raise Conflict(
                key,
                f"{name}@{alias} has no earlier version to roll back to (it points to v{current['version']})",
            )
        target = stack.pop()
        fields = {"alias": alias, "reason": reason, "from": current["version"], "to": target}
        event = _swap(store, name, key, etag, "rollback", target, stack, fields)
        if event is not None:
            return event
    raise Conflict(key, f"{name}@{alias} kept changing; gave up after {MAX_ATTEMPTS} attempts")


def _swap(
    store: Store,
    name: str,
    key: str,
    etag: str | None,
    action: str,
    version: int,
    stack: list[int],
    fields: dict[str, Any],
) -> dict[str, Any] | None:
    """Point the alias at ``version`` if it still holds ``etag`` and record the event; None if it changed."""
    event_id = history.new_event_id()  # taken before the swap: ids sort in swap order
    doc = {
        "version": version,
        "stack": stack,
        "updated_at": history.now(),
        "updated_by": history.actor(),
        "reason": fields.get("reason", ""),
        "event": event_id,
    }
    try:
        store.compare_and_swap(key, etag, dumps(doc))
    except Conflict:
        return None
    return history.record(store, name, action, event_id, **fields)
