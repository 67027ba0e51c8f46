"""The project configuration: `mlops.toml`, as a validated pydantic model.

A wrong key, type or value is reported with the file and the dotted key, e.g.
``mlops.toml: training.model: expected one of random_forest, ...``.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlopsctl.bundle.task import Task, default_metric, metrics_of
from mlopsctl.errors import ConfigError

CONFIG_FILE = "mlops.toml"
ModelFamily = Literal["random_forest", "hist_gradient_boosting", "logistic_regression", "linear_regression", "ridge"]
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
    # a categorical feature with more distinct values is refused by `data validate` and `train` (one-hot
    # encoding makes a column per value: hist_gradient_boosting holds them dense, ~8 KB a row at 1000)
    max_categories: int = Field(default=1000, ge=2)
    # numeric columns whose values that are not numbers ("strong" among the alcohol values) are read as
    # missing, then imputed; without it `train` and `data validate` refuse them, naming their lines
    coerce: list[str] = []


class TuneSection(_Section):
    trials: int = Field(default=20, ge=1, le=10_000)
    timeout_seconds: float = Field(default=300, gt=0)
    # parameter name → values to try; default: the family's own space (training/tasks.py). An entrypoint's
    # search needs one, e.g. { "model__n_estimators" = [100, 200, 400] }
    space: dict[str, list[Any]] = {}

    @field_validator("space")
    @classmethod
    def _space(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [k for k, values in v.items() if not values]
        if empty:
            raise ValueError(f"space: {empty[0]!r} has no values to try")
        return v


class TrainingSection(_Section):
    task: Task = "classification"
    model: ModelFamily = "random_forest"
    params: dict[str, Any] = {}
    primary_metric: str = ""
    test_size: float = Field(default=0.2, gt=0, lt=1)
    cv_folds: int = Field(default=5, ge=0, le=20)
    seed: int = 42
    tune: TuneSection = TuneSection()
    # your own code: "train.py:build", a function returning an estimator (then `model` is not used)
    entrypoint: str = ""
    # threads for BLAS, OpenMP and n_jobs while training; 0 = every core. One is the default: on a shared
    # or busy machine more threads than free cores make training much slower, not faster
    threads: int = Field(default=1, ge=0, le=512)

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, v: str) -> str:
        if v and not re.fullmatch(r"[\w./-]+:[A-Za-z_]\w*", v):
            raise ValueError(f"got {v!r}: expected FILE.py:FUNCTION or MODULE:FUNCTION, e.g. train.py:build")
        return v

    @model_validator(mode="after")
    def _check(self) -> TrainingSection:
        allowed = FAMILIES_BY_TASK[self.task]
        if self.model not in allowed:
            raise ValueError(f"model {self.model!r} does not fit task {self.task!r}: use one of {', '.join(allowed)}")
        metrics = metrics_of(self.task)
        if not self.primary_metric:
            self.primary_metric = default_metric(self.task)
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
    # exact names of your own functions and classes a model file may name (importing them runs your code);
    # scikit-learn, numpy, XGBoost and LightGBM types need no entry (bundle/safety.py)
    trusted_types: list[str] = []
    trusted: bool = False  # removed: a blanket trust let a model file run any code

    @field_validator("trusted_types")
    @classmethod
    def _trusted_types(cls, v: list[str]) -> list[str]:
        from mlopsctl.bundle.safety import check_trusted_types

        return list(check_trusted_types(v))

    @field_validator("trusted")
    @classmethod
    def _no_blanket_trust(cls, v: bool) -> bool:
        if v:
            raise ValueError(
                "trusted = true is no longer accepted (it let a model file run any code): list the exact names "
                'of your own functions in trusted_types, e.g. ["features.add_ratio"]'
            )
        return v

    # mirror these aliases to AWS SSM parameters after each move, e.g. "/mlopsctl/{model}/{alias}"; "" = off
    ssm_parameter: str = ""
    ssm_aliases: list[str] = ["prod"]


class ServingSection(_Section):
    alias: str = "prod"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    reload_interval_seconds: float = Field(default=2.0, gt=0)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_batch_rows: int = Field(default=10_000, ge=1)
    runtime: Literal["auto", "onnx", "sklearn"] = "auto"
    api_key: str = ""  # the management key (POST /retrain); MLOPS_API_KEY overrides; "" keeps them shut
    # answer with an X-Variant header naming the variant (off: a caller need not know it is in a canary)
    variant_header: bool = False


class StoreSection(_Section):
    uri: str = ".mlops"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | float | int) -> float:
    """Seconds in ``30s``, ``5m``, ``1h``, ``7d``, ``2w`` (a bare number is seconds)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"duration {text!r} is negative")
        return float(text)
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"duration {text!r}: expected a number and a unit, e.g. 30s, 5m, 1h, 7d, 2w")
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def prometheus_duration(seconds: float) -> str:
    """``300`` → ``5m``: the largest unit that divides evenly (Prometheus' own duration syntax)."""
    s = round(seconds)
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if s and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


class _Duration(_Section):
    @field_validator("*", mode="before")
    @classmethod
    def _durations(cls, v: Any, info: Any) -> Any:
        if info.field_name.endswith("_for") or info.field_name.endswith("_window"):
            return parse_duration(v) if v is not None else v
        return v


class CaptureSection(_Section):
    enabled: bool = True
    sample_rate: float = Field(default=1.0, ge=0, le=1)  # share of requests recorded
    buffer_rows: int = Field(default=100_000, ge=100)  # records held in memory; beyond, new ones are dropped
    batch_rows: int = Field(default=2_000, ge=1)  # a batch file is written at this many records...
    flush_interval_seconds: float = Field(default=5.0, gt=0)  # ...or after this long
    # request ids kept in memory for POST /feedback (older ones are found in the store's capture)
    recent_requests: int = Field(default=10_000, ge=0)
    recent_rows: int = Field(default=100_000, ge=0)  # ...holding at most this many predictions in all
    # POST /feedback for an id another replica answered: look in the store's capture this far back; 0 = off
    feedback_lookback: float = Field(default=6 * 3600, ge=0)
    # a local folder for a write-ahead file of the buffer ("" = none): then a server that is killed loses no
    # answered request (the next one started with the folder on the host writes them); without it, a kill
    # loses at most the records queued since the last flush (flush_interval_seconds or batch_rows)
    wal_dir: str = ""
    # compaction (`mlopsctl capture compact`, docs/monitoring.md): an hour's JSON lines become Parquet once the
    # hour ended compact_after ago; the JSON lines are deleted keep_raw_hours after its end (0: once verified)
    compact_after: float = 15 * 60
    keep_raw_hours: float = Field(default=24.0, ge=0)
    # the server compacts in the background every compact_interval, one replica at a time (a lease in the store,
    # taken over compact_lease after its holder stopped renewing it)
    compact_in_server: bool = False
    compact_interval: float = Field(default=10 * 60, gt=0)
    compact_lease: float = Field(default=15 * 60, gt=0)

    @field_validator("feedback_lookback", "compact_after", "compact_interval", "compact_lease", mode="before")
    @classmethod
    def _lookback(cls, v: Any) -> float:
        return parse_duration(v)


class DriftSection(_Section):
    p_value: float = Field(default=0.05, gt=0, lt=1)  # KS / chi-square: drift below this (after correction)
    psi_threshold: float = Field(default=0.2, gt=0)  # PSI: drift above this
    share: float = Field(default=0.3, gt=0, le=1)  # dataset drift when this share of features drifted
    # over every check of a report: holm keeps the chance that a report on unchanged data flags anything <= p_value
    correction: Literal["none", "bonferroni", "holm", "fdr_bh"] = "holm"
    min_rows: int = Field(default=30, ge=1)  # fewer current rows: an error, not a verdict
    effect: float = Field(default=0.1, ge=0, lt=1)  # and a check drifts only with KS D / total variation >= this


class AlertsSection(_Duration):
    latency_p95_ms: float | None = Field(default=500, gt=0)  # None disables a rule
    latency_for: float = 300
    error_rate: float | None = Field(default=0.05, gt=0, le=1)
    error_for: float = 180
    silence_for: float | None = 1800  # no requests at all for this long
    down_for: float | None = 0  # a server that does not answer /metrics (0: at the first failed scrape)
    capture_for: float | None = 3600  # no captured prediction of a served model for this long
    drift_share: float | None = Field(default=0.3, gt=0, le=1)  # share of drifted features in the last report
    # live metrics from feedback (monitoring/taskmetrics.py): floors (alert below) and ceilings (alert above)
    min: dict[str, float] = {}  # e.g. { f1_macro = 0.6, accuracy = 0.7 } or { r2 = 0.5 }
    max: dict[str, float] = {}  # e.g. { rmse = 0.8, mae = 0.5, bias = 0.2 } (bias: its absolute value)
    labels_window: float = 3600  # the live metrics are over the labels of predictions this recent...
    min_labels: int = Field(default=50, ge=1)  # ...once there are this many

    @model_validator(mode="before")
    @classmethod
    def _deprecated(cls, data: Any) -> Any:
        """``accuracy_min`` (deprecated) is ``min.accuracy``; ``accuracy_window`` and ``accuracy_min_samples``
        (deprecated) are ``labels_window`` and ``min_labels``."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for old, new in (("accuracy_window", "labels_window"), ("accuracy_min_samples", "min_labels")):
            if old in data:
                if new in data:
                    raise ValueError(f"{old} (deprecated) and {new} both given: keep {new}")
                data[new] = data.pop(old)
        if "accuracy_min" in data:
            floor = data.pop("accuracy_min")
            floors = dict(data.get("min") or {})
            if "accuracy" in floors and floor not in (None, False):
                raise ValueError("accuracy_min (deprecated) and min.accuracy both given: keep min.accuracy")
            if floor not in (None, False):
                floors["accuracy"] = floor
            data["min"] = floors
        return data

    @field_validator(
        "latency_p95_ms", "error_rate", "silence_for", "down_for", "capture_for", "drift_share", mode="before"
    )
    @classmethod
    def _off(cls, v: Any) -> Any:
        return None if v is False else v  # TOML has no null: `rule = false` turns a rule off

    @field_validator("min", "max", mode="before")
    @classmethod
    def _bounds(cls, v: Any, info: Any) -> Any:
        from mlopsctl.monitoring.taskmetrics import CEILINGS, FLOORS, LIVE

        if not isinstance(v, dict):
            return v
        side, other = (FLOORS, "max") if info.field_name == "min" else (CEILINGS, "min")
        allowed = sorted(side & LIVE)
        for metric, bound in v.items():
            if metric == "log_loss":
                raise ValueError(
                    "log_loss is not measured live (servers keep the predicted class, not every probability): "
                    f"bound one of {', '.join(allowed)}"
                )
            if metric not in LIVE:
                raise ValueError(f"unknown metric {metric!r}: use one of {', '.join(allowed)}")
            if metric not in side:
                where = f"{other} = {{ {metric} = ... }}"
                raise ValueError(f"{metric} is bounded by {other} ({where}), not {info.field_name}")
            if isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound):
                raise ValueError(f"{metric}: got {bound!r}, expected a number")
            if metric in ("accuracy", "f1_macro", "precision_macro", "recall_macro") and not 0 < bound <= 1:
                raise ValueError(f"{metric}: got {bound!r}, expected a share in (0, 1]")
            if metric in ("rmse", "mae", "bias") and bound < 0:
                raise ValueError(f"{metric}: got {bound!r}, expected 0 or more")
        return v

    @property
    def accuracy_min(self) -> float | None:
        """Deprecated: ``min.accuracy``."""
        return self.min.get("accuracy")

    @property
    def accuracy_window(self) -> float:
        """Deprecated: ``labels_window``."""
        return self.labels_window

    @property
    def accuracy_min_samples(self) -> int:
        """Deprecated: ``min_labels``."""
        return self.min_labels

    def bounds(self) -> list[tuple[str, str, float]]:
        """(metric, "min" | "max", bound) of every live-metric bound, floors first."""
        return [(m, "min", b) for m, b in self.min.items()] + [(m, "max", b) for m, b in self.max.items()]

    def rules_on(self) -> list[str]:
        """The rules in force, by name (a live-metric bound is a rule named after its metric)."""
        on = {
            "latency": self.latency_p95_ms,
            "errors": self.error_rate,
            "silence": self.silence_for,
            "down": self.down_for,
            "capture": self.capture_for,
            "drift": self.drift_share,
        }
        return [k for k, v in on.items() if v is not None] + [m for m, _, _ in self.bounds()]


def check_alert_metrics(task: str, alerts: AlertsSection, raw: dict[str, Any]) -> tuple[str, str] | None:
    """(dotted key, problem) of a live-metric bound the task does not have, e.g. accuracy on a regression."""
    from mlopsctl.monitoring.taskmetrics import metrics_of

    have = metrics_of(task)
    for metric, side, _ in alerts.bounds():
        if metric in have:
            continue
        legacy = metric == "accuracy" and side == "min" and "accuracy_min" in raw
        key = "monitoring.alerts." + ("accuracy_min" if legacy else f"{side}.{metric}")
        return key, (
            f"{metric} is not a metric of {task} models ([training] task = {task!r}): bound one of {', '.join(have)}"
        )
    return None


class NotifySection(_Section):
    stdout: bool = True
    webhook_url: str | None = None  # env MLOPS_WEBHOOK_URL overrides
    webhook_format: Literal["json", "slack"] = "json"
    sns_topic_arn: str | None = None  # needs the [aws] extra
    timeout_seconds: float = Field(default=5.0, gt=0)


class CloudWatchSection(_Section):
    """The server's key figures as CloudWatch metrics: EMF log lines on stdout (monitoring/emf.py)."""

    enabled: bool = False  # MLOPS_CLOUDWATCH=1 turns it on (the task `deploy aws` writes sets it)
    namespace: str = Field(default="mlopsctl", pattern=r"^[A-Za-z0-9_./#:-]{1,255}$")  # MLOPS_CLOUDWATCH_NAMESPACE
    service: str = ""  # the Service dimension (MLOPS_CLOUDWATCH_SERVICE); default: the project's service name
    interval_seconds: float = Field(default=60, ge=10, le=3600)  # one line per model this often


class MonitoringSection(_Section):
    capture: CaptureSection = CaptureSection()
    drift: DriftSection = DriftSection()
    alerts: AlertsSection = AlertsSection()
    notify: NotifySection = NotifySection()
    cloudwatch: CloudWatchSection = CloudWatchSection()


class GuardSection(_Section):
    """The canary guard: the candidate loses its traffic when it is worse than the control by these bounds."""

    enabled: bool = True
    error_rate_margin: float = Field(default=0.02, ge=0, le=1)  # candidate error rate above control's + this
    latency_p95_ratio: float = Field(default=1.5, ge=1)  # candidate p95 above control's x this...
    latency_p95_margin_ms: float = Field(default=5.0, ge=0)  # ...and above it by more than this
    window: float = 300  # judged over this long (`5m`)...
    min_requests: int = Field(default=100, ge=1)  # ...once each variant has this many requests in it
    interval: float = 5  # how often a server evaluates it

    @field_validator("window", "interval", mode="before")
    @classmethod
    def _durations(cls, v: Any) -> Any:
        return parse_duration(v)


class ExperimentsSection(_Section):
    """A/B analysis: the significance level, power and smallest effect worth detecting."""

    alpha: float = Field(default=0.05, gt=0, lt=0.5)  # chance of ever declaring a false winner, however often read
    power: float = Field(default=0.8, gt=0.5, lt=1)  # chance to detect an effect of min_effect at the planned size
    # classification: accuracy points (0.02 = 2 points); regression: a share of the control's MAE (0.05 = 5 %)
    min_effect: float = Field(default=0.02, gt=0, lt=1)
    # deprecated, ignored: the verdict is an always-valid test (mixture SPRT), safe to read at any time
    interim_alpha: float = Field(default=0.001, gt=0, lt=0.5)
    ramp: list[float] = []  # default ramp for `ab start`, e.g. [5, 25, 50, 100] (% to the candidate)
    guard: GuardSection = GuardSection()

    @field_validator("ramp")
    @classmethod
    def _ramp(cls, v: list[float]) -> list[float]:
        if any(not 0 < x <= 100 for x in v) or v != sorted(v) or len(set(v)) != len(v):
            raise ValueError("ramp: increasing percentages in (0, 100], e.g. [5, 25, 50, 100]")
        return v


# the values CloudWatch Logs accepts for a log group's retention
class RetrainSection(_Section):
    """`mlopsctl retrain`: what its triggers look at and how it rolls out."""

    rollout: Literal["direct", "canary"] = "canary"
    drift_window: float = 86400  # the drift trigger checks inputs captured this far back
    feedback_window: float = 30 * 86400  # --include-feedback adds labelled captured rows this far back
    min_fresh_rows: int = Field(default=30, ge=1)  # fewer unseen holdout rows: score on the whole holdout
    canary_split: str = "90/10"  # the canary's first split when no ramp is set
    canary_ramp: list[float] = []  # e.g. [10, 50, 100]; default: [experiments] ramp
    lock_stale_after: float = 6 * 3600  # a pipeline lock not refreshed this long belongs to a dead run

    @field_validator("drift_window", "feedback_window", "lock_stale_after", mode="before")
    @classmethod
    def _durations(cls, v: Any) -> float:
        return parse_duration(v)


_LOG_RETENTION_DAYS: tuple[int, ...] = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731)
_LOG_RETENTION_DAYS += (1096, 1827, 2192, 2557, 2922, 3288, 3653)


class DeploySection(_Section):
    """What `deploy docker|aws` write and `cost` prices: one service, sized per task."""

    name: str = Field(default="", pattern=r"^$|^[a-z][a-z0-9-]{0,27}$")  # resource names; default: the project's
    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    cpu: float = 0.25  # vCPU per task; a Fargate size
    memory: float = 0.5  # GB per task; must go with cpu on Fargate
    min_replicas: int = Field(default=1, ge=1, le=100)
    max_replicas: int = Field(default=4, ge=1, le=100)
    cpu_target_percent: float = Field(default=60, gt=0, le=100)  # target-tracking on average CPU
    requests_per_target: int = Field(default=1000, ge=1)  # target-tracking on ALB requests per task per minute
    # minimal: tasks in public subnets with a public IP, no NAT gateway, Container Insights off, logs kept 7 days;
    # private: tasks in private subnets behind a NAT gateway, Insights and VPC flow logs on (docs/deploy-aws.md)
    layout: Literal["minimal", "private"] = "minimal"
    log_retention_days: int | None = None  # a CloudWatch retention; default: 7 (minimal), 365 (private)
    alarm_email: str = ""  # subscribed to the alarm topic when set
    container_port: int = Field(default=8080, ge=1, le=65535)
    deletion_protection: bool | None = None  # on the load balancer; default: false (minimal), true (private)
    monthly_budget: float | None = Field(default=None, gt=0)  # USD, an AWS budget; default: `cost`'s estimate + 25 %
    # an EventBridge schedule for the retraining task, e.g. "rate(7 days)" or "cron(0 3 ? * MON *)"; "" = written off
    retrain_schedule: str = Field(default="", pattern=r"^$|^(rate|cron)\(.+\)$")

    @model_validator(mode="after")
    def _check(self) -> DeploySection:
        from mlopsctl.deploy.sizes import fargate_problem

        problem = fargate_problem(self.cpu, self.memory)
        if problem:
            raise ValueError(problem)
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} is above max_replicas {self.max_replicas}")
        if self.log_retention_days is not None and self.log_retention_days not in _LOG_RETENTION_DAYS:
            raise ValueError(
                f"log_retention_days {self.log_retention_days} is not a CloudWatch retention: use one of "
                + ", ".join(map(str, _LOG_RETENTION_DAYS))
            )
        return self


def service_slug(name: str) -> str:
    """A name made an AWS resource name: lower case, dashes, a letter first, 28 characters at most
    ("Wine_Quality" → "wine-quality", "1wine" → "wine", "2024" → "mlops-2024")."""
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    slug = slug.lstrip("0123456789-") or (f"mlops-{slug}" if slug else "mlops")
    return slug[:28].rstrip("-")


class Config(_Section):
    project: ProjectSection
    data: DataSection
    training: TrainingSection = TrainingSection()
    registry: RegistrySection = RegistrySection()
    serving: ServingSection = ServingSection()
    store: StoreSection = StoreSection()
    monitoring: MonitoringSection = MonitoringSection()
    experiments: ExperimentsSection = ExperimentsSection()
    retrain: RetrainSection = RetrainSection()
    deploy: DeploySection = DeploySection()

    # where the file was read from; relative paths in it are relative to this folder
    root: Path = Field(default=Path("."), exclude=True)

    @field_validator("root", mode="before")
    @classmethod
    def _root(cls, v: Any) -> Path:
        return Path(v)

    @property
    def model_name(self) -> str:
        return self.registry.model_name or self.project.name

    @property
    def service_name(self) -> str:
        """The name deploy gives the service's resources (lower case, dashes)."""
        return self.deploy.name or service_slug(self.project.name)

    def allow_project_code(self) -> None:
        """Make the project folder importable when ``[registry] trusted_types`` names code of the project's own
        (``features.add_ratio`` lives in ``features.py`` beside mlops.toml). Called by the commands and the
        server at start, never on import."""
        allow_code_from(self.root if self.registry.trusted_types else None)

    def data_path(self) -> Path:
        p = Path(self.data.path).expanduser()
        return p if p.is_absolute() else self.root / p

    def store_uri(self, override: str | None = None) -> str:
        uri = override or os.environ.get("MLOPS_STORE") or self.store.uri
        if "://" in uri or Path(uri).is_absolute():
            return uri
        return str(self.root / uri)


def allow_code_from(folder: str | os.PathLike[str] | None) -> None:
    """Put ``folder`` first on ``sys.path`` (once): where a model's trusted functions are imported from."""
    import sys

    if folder is None:
        return
    path = str(Path(folder).resolve())
    if path not in sys.path:
        sys.path.insert(0, path)


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
        cfg = Config.model_validate({**raw, "root": root or Path(".")})
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
    raw_alerts = raw.get("monitoring", {}).get("alerts", {}) if isinstance(raw.get("monitoring"), dict) else {}
    wrong = check_alert_metrics(cfg.training.task, cfg.monitoring.alerts, raw_alerts)
    if wrong is not None:
        raise ConfigError(source, *wrong)
    return cfg


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
    metric = default_metric(task)
    if task == "regression":  # a live metric's bound, from feedback over labels_window: the task's own metrics
        bound = "# max = { rmse = 0.8 }         # live RMSE ceiling (also mae, bias; min = { r2 = 0.5 })"
    else:
        bound = "# min = { f1_macro = 0.6 }     # live macro F1 floor (also accuracy, precision_macro, recall_macro)"
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
threads = 1                    # BLAS, OpenMP and n_jobs while training; 0 = every core
# entrypoint = "train.py:build"  # your own code: a function returning an estimator (docs/byo.md)

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

[monitoring.capture]
sample_rate = 1.0              # share of predictions recorded in the store (capture/)

[monitoring.drift]
p_value = 0.05                 # KS / chi-square threshold per feature
share = 0.3                    # dataset drift when this share of features drifted

[monitoring.alerts]
latency_p95_ms = 500           # alert when p95 is above this for latency_for; `= false` turns a rule off
latency_for = "5m"
error_rate = 0.05
error_for = "3m"
silence_for = "30m"
drift_share = 0.3
{bound}
'''
