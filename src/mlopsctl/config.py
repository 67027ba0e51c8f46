"""The project configuration: `mlops.toml`, as a validated pydantic model.

A wrong key, type or value is reported with the file and the dotted key, e.g.
``mlops.toml: training.model: expected one of random_forest, ...``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlopsctl.errors import ConfigError

CONFIG_FILE = "mlops.toml"
Task = Literal["classification", "regression", "text-classification"]
ModelFamily = Literal["random_forest", "hist_gradient_boosting", "logistic_regression", "linear_regression", "ridge"]
CLASSIFICATION_METRICS = ("accuracy", "f1_macro", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
LOWER_IS_BETTER = {"log_loss", "rmse", "mae"}
FAMILIES_BY_TASK: dict[str, tuple[str, ...]] = {
    "classification": ("random_forest", "hist_gradient_boosting", "logistic_regression"),
    # TF-IDF features are sparse; histogram boosting needs dense input
    "text-classification": ("logistic_regression", "random_forest"),
    "regression": ("random_forest", "hist_gradient_boosting", "ridge", "linear_regression"),
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ProjectSection(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""


class DataSection(_Section):
    path: str
    target: str
    separator: str | None = None
    header: bool | None = None
    columns: list[str] | None = None  # names for a file without a header row
    features: list[str] | None = None  # default: every column but the target
    drop: list[str] = []
    text_columns: list[str] | None = None
    categorical_columns: list[str] | None = None


class TuneSection(_Section):
    trials: int = Field(default=20, ge=1, le=10_000)
    timeout_seconds: float = Field(default=300, gt=0)


class TrainingSection(_Section):
    task: Task = "classification"
    model: ModelFamily = "random_forest"
    params: dict[str, Any] = {}
    primary_metric: str = ""
    test_size: float = Field(default=0.2, gt=0, lt=1)
    cv_folds: int = Field(default=5, ge=0, le=20)
    seed: int = 42
    tune: TuneSection = TuneSection()

    @model_validator(mode="after")
    def _check(self) -> TrainingSection:
        allowed = FAMILIES_BY_TASK[self.task]
        if self.model not in allowed:
            raise ValueError(f"model {self.model!r} does not fit task {self.task!r}: use one of {', '.join(allowed)}")
        metrics = REGRESSION_METRICS if self.task == "regression" else CLASSIFICATION_METRICS
        if not self.primary_metric:
            self.primary_metric = "rmse" if self.task == "regression" else "f1_macro"
        elif self.primary_metric not in metrics:
            raise ValueError(
                f"primary_metric {self.primary_metric!r} does not fit task {self.task!r}: "
                f"use one of {', '.join(metrics)}"
            )
        return self


class RegistrySection(_Section):
    model_name: str = Field(default="", pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    gate_tolerance: float = Field(default=0.01, ge=0)
    require_approval: list[str] = []
    trusted: bool = False  # only then may a pickle be loaded from the store


class ServingSection(_Section):
    alias: str = "prod"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    reload_interval_seconds: float = Field(default=2.0, gt=0)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_batch_rows: int = Field(default=10_000, ge=1)
    runtime: Literal["auto", "onnx", "sklearn"] = "auto"


class StoreSection(_Section):
    uri: str = ".mlops"


class Config(_Section):
    project: ProjectSection
    data: DataSection
    training: TrainingSection = TrainingSection()
    registry: RegistrySection = RegistrySection()
    serving: ServingSection = ServingSection()
    store: StoreSection = StoreSection()

    # where the file was read from; relative paths in it are relative to this folder
    root: Path = Field(default=Path("."), exclude=True)

    @field_validator("root", mode="before")
    @classmethod
    def _root(cls, v: Any) -> Path:
        return Path(v)

    @property
    def model_name(self) -> str:
        return self.registry.model_name or self.project.name

    def data_path(self) -> Path:
        p = Path(self.data.path).expanduser()
        return p if p.is_absolute() else self.root / p

    def store_uri(self, override: str | None = None) -> str:
        uri = override or os.environ.get("MLOPS_STORE") or self.store.uri
        if "://" in uri or Path(uri).is_absolute():
            return uri
        return str(self.root / uri)


def load_config(path: str | os.PathLike[str] = CONFIG_FILE) -> Config:
    """Read and validate a project's config. A folder means its mlops.toml."""
    p = Path(path)
    if p.is_dir():
        p = p / CONFIG_FILE
    if not p.is_file():
        raise ConfigError(str(p), "file", "not found (run `mlopsctl init NAME` or pass --project DIR)")
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), "syntax", str(exc)) from None
    return parse_config(raw, source=str(p), root=p.parent)


def parse_config(raw: dict[str, Any], *, source: str = CONFIG_FILE, root: Path | None = None) -> Config:
    try:
        return Config.model_validate({**raw, "root": root or Path(".")})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(x) for x in err["loc"]) or "(top level)"
        problem = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            problem = "unknown key"
        elif err["type"] == "literal_error":
            problem = f"got {err.get('input')!r}: {problem.lower()}"
        elif "input" in err and err["type"] not in ("missing", "value_error"):
            problem = f"got {err['input']!r}: {problem}"
        raise ConfigError(source, key, problem) from None


def find_project(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The nearest folder at or above ``start`` holding an mlops.toml."""
    here = Path(start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return None


def render_config(
    *,
    name: str,
    data_path: str,
    target: str,
    task: str,
    model: str | None = None,
    text_columns: list[str] | None = None,
    columns: list[str] | None = None,
    header: bool | None = None,
) -> str:
    """The mlops.toml that `init` writes, commented for a person to edit."""
    model = model or FAMILIES_BY_TASK[task][0]
    metric = "rmse" if task == "regression" else "f1_macro"
    params = "{ n_estimators = 100, max_depth = 12 }" if model == "random_forest" else "{}"
    extra = ""
    if text_columns:
        extra += f"text_columns = {text_columns!r}\n".replace("'", '"')
    if columns:
        extra += f"columns = {columns!r}\n".replace("'", '"')
    if header is not None:
        extra += f"header = {'true' if header else 'false'}\n"
    return f'''# mlopsctl project configuration. Reference: docs/config.md
[project]
name = "{name}"

[data]
path = "{data_path}"          # CSV (separator detected), Parquet or JSON lines
target = "{target}"
{extra}
[training]
task = "{task}"     # classification | regression | text-classification
model = "{model}"   # {" | ".join(FAMILIES_BY_TASK[task])}
params = {params}
primary_metric = "{metric}"   # the evaluation gate compares this on the holdout
test_size = 0.2
cv_folds = 5
seed = 42

[training.tune]
trials = 20
timeout_seconds = 300

[registry]
gate_tolerance = 0.01          # refuse a promotion worse than the alias's version by more than this
require_approval = ["prod"]    # aliases that need `mlopsctl approve` first

[serving]
alias = "prod"
host = "127.0.0.1"
port = 8000
reload_interval_seconds = 2

[store]
uri = ".mlops"                 # or s3://bucket/prefix; MLOPS_STORE and --store override
'''
