"""Promote and roll back: the one workflow that moves an alias, whoever asks.

`mlopsctl promote`, `mlopsctl rollback`, `ab conclude --promote`, the retraining pipeline and
``POST /retrain`` all call `promote` or `rollback`. A promotion:

1. opens the candidate as a server would (every file against its manifest, the fitted model
   through the allowlist, the ONNX graph in onnxruntime): a version that would not load is refused
   before anything moves;
2. refuses a candidate whose signature differs from that of the version the alias points at (columns
   added or dropped, a column of another type: requests answered today would fail), then applies the
   approval rule and the evaluation gate (both versions scored on the candidate's
   holdout where their signatures agree, else each one's recorded metric), then moves the alias by
   compare-and-swap and records the event (`registry.aliases`);
3. writes the alias's SSM mirror where ``[registry] ssm_parameter`` asks for one. The store is the
   truth: when that write fails the alias has moved, and the error says so and how to repair it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mlopsctl.errors import GateRefused, IntegrityError, MlopsError, StoreError, UnsafeModel
from mlopsctl.registry.aliases import promote as point_alias
from mlopsctl.registry.aliases import rollback as point_back
from mlopsctl.registry.gate import Evaluator
from mlopsctl.store.base import Store


@dataclass(frozen=True)
class RegistrySettings:
    """What publish and promote take from ``[registry]`` (and ``[deploy] region`` for SSM)."""

    gate_tolerance: float = 0.01
    require_approval: tuple[str, ...] = ()
    trusted_types: tuple[str, ...] = ()
    ssm_parameter: str = ""
    ssm_aliases: tuple[str, ...] = ("prod",)
    region: str | None = None

    @classmethod
    def from_config(cls, cfg: Any | None) -> RegistrySettings:
        if cfg is None:
            return cls()
        r = cfg.registry
        return cls(
            gate_tolerance=r.gate_tolerance,
            require_approval=tuple(r.require_approval),
            trusted_types=tuple(r.trusted_types),
            ssm_parameter=r.ssm_parameter,
            ssm_aliases=tuple(r.ssm_aliases),
            region=cfg.deploy.region,
        )


@dataclass(frozen=True)
class Move:
    """An alias move: the history event (None when the alias already pointed there) and the SSM value written."""

    model: str
    alias: str
    version: int
    event: dict[str, Any] | None
    mirrored: dict[str, Any] | None = None
    parameter: str | None = None  # the SSM parameter written

    def to_dict(self) -> dict[str, Any]:
        body = self.event or {"model": self.model, "alias": self.alias, "to": self.version, "unchanged": True}
        return {**body, "ssm": self.mirrored}


class MirrorFailed(MlopsError):
    """The alias moved in the store, but its SSM mirror was not written."""

    def __init__(self, move: Move, problem: str) -> None:
        self.move = move
        super().__init__(
            f"{move.model}@{move.alias} moved in the store, but its SSM mirror was not written: {problem}; "
            f"run `mlopsctl models mirror {move.model} --alias {move.alias}` to write it again"
        )


def holdout_evaluator(store: Store, name: str, trusted_types: Iterable[str] = ()) -> Evaluator:
    """Score both versions' models on the candidate's holdout, when they take the same inputs."""
    from mlopsctl.bundle.version import version_at

    trusted = tuple(trusted_types)

    def evaluate(candidate: int, current: int) -> tuple[float, float, str] | None:
        cand = version_at(store, name, candidate, trusted_types=trusted)
        cur = version_at(store, name, current, trusted_types=trusted)
        if not cand.signature.same_inputs(cur.signature):
            return None
        holdout = cand.holdout()
        metric = cand.primary_metric
        if holdout is None or not metric:
            return None
        a, b = (cand.score(holdout) or {}).get(metric), (cur.score(holdout) or {}).get(metric)
        if a is None or b is None:
            return None
        return float(a), float(b), f"both scored on v{candidate}'s holdout"

    return evaluate


def check_loadable(store: Store, name: str, version: int, trusted_types: Iterable[str] = ()) -> None:
    """Refuse (GateRefused) a version a server could not load: a file that differs from its manifest, a
    model file that is not trusted, an ONNX graph onnxruntime cannot open."""
    from mlopsctl.bundle.version import version_at

    try:
        version_at(store, name, version, trusted_types=trusted_types).check_loads()
    except (IntegrityError, UnsafeModel) as exc:
        raise GateRefused(f"promotion refused: {name} v{version} would not load: {exc}") from None


def promote(
    store: Store,
    name: str,
    version: int,
    alias: str,
    *,
    settings: RegistrySettings | None = None,
    reason: str = "",
    force: bool = False,
    evaluator: Evaluator | None = None,
) -> Move:
    """Point ``alias`` at ``version`` through the load check, the signature check (the candidate takes the
    columns and types of the version the alias points at), the approval rule and the gate, then mirror it.
    ``force`` overrides all but the load check; what it overrode is recorded in the history event."""
    from mlopsctl.bundle.version import signature_differences

    s = settings or RegistrySettings()
    mirror = mirror_settings(s)  # a bad parameter pattern fails before anything moves
    check_loadable(store, name, version, s.trusted_types)  # not even --force serves what cannot load
    event = point_alias(
        store,
        name,
        version,
        alias,
        reason=reason,
        force=force,
        tolerance=s.gate_tolerance,
        require_approval=list(s.require_approval),
        evaluator=evaluator or holdout_evaluator(store, name, s.trusted_types),
        compatibility=lambda candidate, current: signature_differences(store, name, candidate, current),
    )
    return _mirrored(store, mirror, Move(name, alias, version, event))


def rollback(
    store: Store, name: str, alias: str, *, settings: RegistrySettings | None = None, reason: str = ""
) -> Move:
    """Point ``alias`` back at the version it pointed to before its last promotion, then mirror it."""
    mirror = mirror_settings(settings or RegistrySettings())
    event = point_back(store, name, alias, reason=reason)
    return _mirrored(store, mirror, Move(name, alias, int(event["to"]), event))


def mirror_settings(settings: RegistrySettings) -> Any:
    """The SSM mirror the settings ask for (None when ``ssm_parameter`` is empty)."""
    from mlopsctl.registry.mirror import SsmMirror, parameter_name

    if not settings.ssm_parameter:
        return None
    parameter_name(settings.ssm_parameter, "model", "alias")
    return SsmMirror(settings.ssm_parameter, list(settings.ssm_aliases), region=settings.region)


def _mirrored(store: Store, mirror: Any, move: Move) -> Move:
    if mirror is None or not mirror.covers(move.alias):
        return move
    try:
        value = mirror.sync(store, move.model, move.alias)
    except StoreError as exc:
        raise MirrorFailed(move, str(exc)) from None
    return Move(move.model, move.alias, move.version, move.event, value, mirror.parameter(move.model, move.alias))
