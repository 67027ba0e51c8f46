"""The task sizes AWS Fargate offers, and a check that names the valid choices.

Source: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size
(Linux/x86_64, as of 2026). CPU in vCPU, memory in GB.
"""

from __future__ import annotations


def _steps(lo: float, hi: float, step: float) -> tuple[float, ...]:
    n = round((hi - lo) / step)
    return tuple(round(lo + i * step, 3) for i in range(n + 1))


FARGATE_SIZES: dict[float, tuple[float, ...]] = {
    0.25: (0.5, 1.0, 2.0),
    0.5: _steps(1, 4, 1),
    1.0: _steps(2, 8, 1),
    2.0: _steps(4, 16, 1),
    4.0: _steps(8, 30, 1),
    8.0: _steps(16, 60, 4),
    16.0: _steps(32, 120, 8),
}


def _fmt(x: float) -> str:
    return f"{x:g}"


def fargate_problem(cpu: float, memory: float) -> str | None:
    """None when ``cpu`` vCPU with ``memory`` GB is a Fargate size; else the problem and the valid choices."""
    if cpu <= 0:
        return f"cpu {_fmt(cpu)} must be positive: Fargate offers {', '.join(_fmt(c) for c in FARGATE_SIZES)} vCPU"
    if memory <= 0:
        return f"memory {_fmt(memory)} GB must be positive"
    mems = FARGATE_SIZES.get(round(cpu, 3))
    if mems is None:
        return f"cpu {_fmt(cpu)} vCPU is not a Fargate size: use one of {', '.join(_fmt(c) for c in FARGATE_SIZES)}"
    if round(memory, 3) not in mems:
        if len(mems) <= 4:
            choices = ", ".join(_fmt(m) for m in mems)
        else:
            choices = f"{_fmt(mems[0])}–{_fmt(mems[-1])} in steps of {_fmt(mems[1] - mems[0])}"
        return f"memory {_fmt(memory)} GB does not go with {_fmt(cpu)} vCPU on Fargate: use {choices} GB"
    return None


def fargate_units(cpu: float, memory: float) -> tuple[int, int]:
    """ECS task definition units: CPU units (1024 per vCPU) and memory in MiB."""
    return round(cpu * 1024), round(memory * 1024)
