"""What a server is told at start: the models to serve and every setting of the parts that serve them.

`mlopsctl serve` builds it from the project's config and flags; with ``--workers N`` it travels to each
worker process as JSON in ``MLOPS_SERVE_SETTINGS`` (`app.app_from_env`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

SETTINGS_ENV = "MLOPS_SERVE_SETTINGS"


@dataclass
class ServeSettings:
    store_uri: str
    models: list[tuple[str, str | None]]  # (name, alias | version | None for latest)
    runtime: str = "auto"
    reload_interval: float = 2.0
    max_body_bytes: int = 1_048_576
    max_batch_rows: int = 10_000
    trusted_types: list[str] = field(default_factory=list)  # [registry] trusted_types
    # [monitoring.capture] settings (CaptureSection fields); None turns capture off
    capture: dict[str, Any] | None = field(default_factory=dict)
    accuracy_window: float = 3600.0
    guard: dict[str, Any] = field(default_factory=dict)  # [experiments.guard] (GuardSection fields)
    notify: dict[str, Any] = field(default_factory=dict)  # [monitoring.notify] (NotifySection fields)
    project: str | None = None  # the folder of mlops.toml, for POST /retrain
    variant_header: bool = False  # [serving] variant_header: answer with X-Variant
    cloudwatch: dict[str, Any] = field(default_factory=dict)  # [monitoring.cloudwatch] (CloudWatchSection fields)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        d = json.loads(text)
        d["models"] = [tuple(m) for m in d["models"]]
        return cls(**d)
