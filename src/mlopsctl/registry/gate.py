"""The evaluation gate: may a version replace the one an alias points to?

It compares the primary metric of the candidate and of the alias's current version, on
the same holdout where an evaluator can score both, else as each version recorded it.
A candidate worse by more than the tolerance is refused with both numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from mlopsctl.bundle.task import LOWER_IS_BETTER

# (candidate version, current version) -> (candidate value, current value, method) or None
Evaluator = Callable[[int, int], "tuple[float, float, str] | None"]


@dataclass
class GateResult:
    passed: bool
    metric: str
    candidate: float | None
    current: float | None
    current_version: int | None
    tolerance: float
    method: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check(
    metric: str,
    candidate: float | None,
    current: float | None,
    tolerance: float,
    *,
    candidate_version: int | None,
    current_version: int | None,
    method: str,
) -> GateResult:
    """Pass or refuse ``candidate`` against ``current``; ``candidate_version`` None is a model not
    published yet (the retraining pipeline gates before it publishes)."""

    def result(passed: bool, message: str) -> GateResult:
        return GateResult(passed, metric, candidate, current, current_version, tolerance, method, message)

    if current_version is None:
        return result(True, "no current version: nothing to compare against")
    if candidate is None or current is None:
        return result(True, f"{metric} not available for both versions: gate skipped")
    delta = (current - candidate) if metric in LOWER_IS_BETTER else (candidate - current)
    direction = "lower" if metric in LOWER_IS_BETTER else "higher"
    text = (
        f"{metric} ({direction} is better) of "
        f"{'the new model' if candidate_version is None else f'v{candidate_version}'} = {candidate:.4f} vs "
        f"v{current_version} = {current:.4f} ({method})"
    )
    if delta < -tolerance:
        return result(False, f"{text}: worse by {-delta:.4f}, more than the tolerance {tolerance}")
    return result(True, f"{text}: within tolerance {tolerance}" if delta < 0 else text)
