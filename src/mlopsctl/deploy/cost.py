"""`mlopsctl cost`: what the service costs a month on AWS, line by line, beside three other ways to run it.

The service is the one `deploy aws` writes for the same settings and layout: ``replicas`` ECS Fargate
tasks of ``cpu`` vCPU and ``memory`` GB behind an Application Load Balancer, an S3 store, an ECR image,
CloudWatch logs, the server's metrics, alarms and a dashboard, a KMS key, the SSM pointer and a budget
(what each layout holds is ``aws_layout.py``, which the Terraform texts are written from too).
The same service is then priced as a SageMaker real-time endpoint (one instance per replica,
the cheapest instance that sustains one task), SageMaker serverless inference (billed per GB-second
of request time, so it needs the traffic) and EKS (the control plane and a managed node group of
the cheapest EC2 type that fits the pods, behind the same load balancer).

Every price comes from the region's price table (``cost_prices.py``); every quantity that is not a
price is an assumption with a stated default, printed with the estimate, so it can be reviewed and
changed. Numbers stay unrounded here; the CLI rounds to cents when it prints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlopsctl.deploy.aws_layout import LAYOUTS, alarms_written
from mlopsctl.deploy.cost_prices import load_prices
from mlopsctl.deploy.cost_targets import (
    MAX_HOURS,
    TARGETS,
    CostInputs,
    Estimate,
    apply_free_tier,
    athena_tb,
    eks,
    fargate,
    public_ips,
    sagemaker_realtime,
    sagemaker_serverless,
)
from mlopsctl.deploy.cost_traffic import Traffic
from mlopsctl.deploy.sizes import FARGATE_SIZES, fargate_problem
from mlopsctl.errors import ValidationError

if TYPE_CHECKING:
    from mlopsctl.config import Config

# the inputs that count or measure something, each set by the option of its name: none may be negative
COUNTS_AND_SIZES: tuple[str, ...] = ("public_ips", "nat_gateways", "insights_metrics", "metrics", "alarms")
COUNTS_AND_SIZES += ("log_gb", "s3_gb", "image_gb", "request_kb", "response_kb", "retrain_runs", "retrain_minutes")
COUNTS_AND_SIZES += ("athena_tb",)


def inputs_from(cfg: Config | None, **flags: Any) -> CostInputs:
    """The inputs: the flags that were given, else the project's settings, else the defaults of CostInputs.

    From a project: ``[deploy]`` region, layout, cpu, memory, min_replicas, log_retention_days, retrain_schedule;
    ``[monitoring.alerts]`` accuracy_min (its alarm); ``[monitoring.capture]`` enabled, sample_rate,
    flush_interval_seconds; ``[serving]`` reload_interval_seconds. What is left to the layout is filled by
    ``CostInputs.resolve`` when the estimate is made.
    """
    o = CostInputs()
    origin: dict[str, str] = {}
    if cfg is not None:
        d, cap = cfg.deploy, cfg.monitoring.capture
        from_cfg = {
            "region": (d.region, "[deploy] region"),
            "layout": (d.layout, "[deploy] layout"),
            "cpu": (d.cpu, "[deploy] cpu"),
            "memory": (d.memory, "[deploy] memory"),
            "replicas": (d.min_replicas, "[deploy] min_replicas"),
            "log_retention_days": (d.log_retention_days, "[deploy] log_retention_days"),
            "retrain_schedule": (d.retrain_schedule, "[deploy] retrain_schedule"),
            "accuracy_alarm": (cfg.monitoring.alerts.accuracy_min is not None, "[monitoring.alerts] accuracy_min"),
            "capture_enabled": (cap.enabled, "[monitoring.capture] enabled"),
            "capture_sample_rate": (cap.sample_rate, "[monitoring.capture] sample_rate"),
            "capture_flush_seconds": (cap.flush_interval_seconds, "[monitoring.capture] flush_interval_seconds"),
            "reload_seconds": (cfg.serving.reload_interval_seconds, "[serving] reload_interval_seconds"),
        }
        for name, (value, where) in from_cfg.items():
            if value is not None:
                setattr(o, name, value)
                origin[name] = where
    for name, value in flags.items():
        if name not in CostInputs.__dataclass_fields__ or name == "origin":
            raise TypeError(f"unknown cost input {name!r}")
        if value is not None:
            setattr(o, name, value)
            origin[name] = "--" + name.replace("_", "-")
    o.origin = origin
    return o


def check_inputs(o: CostInputs) -> None:
    """One clear error for input that cannot be priced, naming the option and the valid choices."""
    if o.target not in TARGETS:
        raise ValidationError(
            f"--target {o.target}: not a target: use {' or '.join(TARGETS)}", [("--target", "unknown target")]
        )
    if o.layout not in LAYOUTS:
        raise ValidationError(
            f"--layout {o.layout}: not a layout: use {' or '.join(LAYOUTS)}", [("--layout", "minimal or private")]
        )
    problem = fargate_problem(o.cpu, o.memory)  # names the sizes Fargate offers
    if problem and o.memory <= 0 and o.cpu > 0:
        mems = FARGATE_SIZES.get(round(o.cpu, 3))
        offer = f" (with {o.cpu:g} vCPU Fargate offers {', '.join(f'{m:g}' for m in mems)} GB)" if mems else ""
        problem = f"memory {o.memory:g} GB must be positive{offer}"
    if problem:
        option = "--cpu" if problem.startswith("cpu") else "--memory"
        raise ValidationError(f"--{problem}", [(option, problem)])
    if o.replicas < 1:
        raise ValidationError(f"--replicas {o.replicas}: must be at least 1", [("--replicas", "at least 1")])
    if not 0 < o.hours <= MAX_HOURS:
        raise ValidationError(
            f"--hours {o.hours:g}: must be more than 0 and at most {MAX_HOURS} (a 31-day month)",
            [("--hours", f"in (0, {MAX_HOURS}]")],
        )
    for name in COUNTS_AND_SIZES:
        v = getattr(o, name)
        if v is not None and v < 0:
            opt = "--" + name.replace("_", "-")
            raise ValidationError(f"{opt} {v:g}: must be 0 or more", [(opt, "negative")])


def _assumptions(o: CostInputs, traffic: Traffic, requests: float, predictions: float) -> list[dict[str, Any]]:
    def a(name: str, value: Any, unit: str, why: str, option: str) -> dict[str, Any]:
        return {"name": name, "value": value, "unit": unit, "why": o.origin.get(name, why), "option": option}

    ips, ip_why = public_ips(o, o.replicas)
    lay = f"default: the {o.layout} layout's"
    written = ", ".join(x.suffix for x in alarms_written(1.0 if o.accuracy_alarm else None))
    athena = athena_tb(o, predictions)
    return [
        a("layout", o.layout, "", "default: minimal, as `deploy aws` writes", "--layout"),
        a("replicas", o.replicas, "task(s)", "default", "--replicas"),
        a("hours", o.hours, "hours running a month", "default: 720 (30 days)", "--hours"),
        a(
            "public_ips",
            o.public_ips if o.public_ips is not None else ips,
            "addresses (Fargate)",
            ip_why,
            "--public-ips",
        ),
        a("nat_gateways", o.nat_gateways, "", f"{lay} (minimal 0, private 1)", "--nat-gateways"),
        a(
            "insights_metrics",
            o.insights_metrics,
            "metrics (Fargate)",
            f"{lay}: Container Insights off in minimal, on in private (cluster 13, service 15, task family 10)",
            "--insights-metrics",
        ),
        a(
            "metrics",
            o.metrics,
            "custom metrics",
            "default: the server's EMF metrics (Requests, Errors5xx, LatencyP95, DriftShare, LiveAccuracy, "
            "LiveLabelled); ALB, ECS and SageMaker metrics are free",
            "--metrics",
        ),
        a("alarms", o.alarms, "alarm metrics", f"default: what `deploy aws` writes ({written})", "--alarms"),
        a("dashboards", o.dashboards, "dashboard", "default: the one `deploy aws` writes", "(fixed)"),
        a("log_gb", o.log_gb, "GB of logs a month", "default: the service's (and the VPC flow logs)", "--log-gb"),
        a("log_retention_days", o.log_retention_days, "days", f"{lay}", "[deploy] log_retention_days"),
        a(
            "retrain_runs",
            o.retrain_runs,
            "scheduled retrainings a month",
            f"from [deploy] retrain_schedule {o.retrain_schedule}" if o.retrain_schedule else "default: off",
            "--retrain-runs",
        ),
        a("retrain_minutes", o.retrain_minutes, "minutes per retraining", "default", "--retrain-minutes"),
        a("s3_gb", o.s3_gb, "GB in the store besides capture", "default", "--s3-gb"),
        a("capture_kb", o.capture_kb, "KB per captured prediction", "a wine row as JSON lines, rounded up", "(fixed)"),
        a(
            "capture_sample_rate",
            o.capture_sample_rate if o.capture_enabled else 0,
            "",
            "default",
            "[monitoring.capture]",
        ),
        a(
            "capture_flush_seconds",
            o.capture_flush_seconds,
            "s between capture writes",
            "default",
            "[monitoring.capture]",
        ),
        a("reload_seconds", o.reload_seconds, "s between store polls", "default", "[serving]"),
        a("image_gb", o.image_gb, "GB of images in ECR", "default: a few tags of the server image", "--image-gb"),
        a("athena_tb", athena[0], "TB Athena scans (Fargate)", f"default: {athena[1]}", "--athena-tb"),
        a("request_kb", o.request_kb, "KB per request", "default", "--request-kb"),
        a("response_kb", o.response_kb, "KB per response", "default", "--response-kb"),
        a("requests_per_month", requests, "requests", traffic.source, "--requests, --url, capture"),
        a("predictions_per_month", predictions, "predictions", traffic.source, "--url, capture"),
        a("mean_duration_ms", traffic.mean_duration_s * 1000, "ms per request", traffic.source, "--duration-ms, --url"),
    ]


def estimate(o: CostInputs, traffic: Traffic | Callable[[], Traffic], service: str | None = None) -> dict[str, Any]:
    """The estimate as a JSON-able dict: prices, inputs, assumptions, traffic, each target's lines and totals.

    ``traffic`` may be a function: it is called once the inputs and the price table have passed their checks.
    """
    check_inputs(o)
    try:
        o.resolve()
    except ValueError as exc:  # a retrain_schedule that cannot be counted
        raise ValidationError(f"[deploy] retrain_schedule: {exc}", [("retrain_schedule", str(exc))]) from None
    table = load_prices(o.region, o.prices)
    if not isinstance(traffic, Traffic):
        traffic = traffic()
    requests, predictions = traffic.per_month(o.hours)
    duration = traffic.mean_duration_s
    estimates = [
        fargate(table, o, requests, predictions),
        sagemaker_realtime(table, o, requests, predictions),
        sagemaker_serverless(table, o, requests, predictions, duration),
        eks(table, o, requests, predictions),
    ]
    if o.free_tier:
        for e in estimates:
            if e.available:
                apply_free_tier(table, e)
    per_1000 = traffic.source != "assumed" and predictions > 0

    def cost_per_1000(e: Estimate) -> float | None:
        return e.total / predictions * 1000 if per_1000 and e.available else None

    out: list[dict[str, Any]] = []
    for e in estimates:
        out.append(
            {
                "name": e.name,
                "title": e.title,
                "available": e.available,
                "reason": e.reason,
                "notes": e.notes,
                "lines": [line.to_json() for line in e.lines],
                "subtotals": e.subtotals(),
                "total": e.total if e.available else None,
                "per_1000_predictions": cost_per_1000(e),
            }
        )
    offered = [e for e in estimates if e.available]
    return {
        "target": o.target,
        "service": service,
        "prices": table.summary(),
        "inputs": {
            "region": o.region,
            "layout": o.layout,
            "cpu": o.cpu,
            "memory": o.memory,
            "replicas": o.replicas,
            "hours": o.hours,
            "free_tier": o.free_tier,
            "origin": {
                k: o.origin.get(k, "default") for k in ("region", "layout", "cpu", "memory", "replicas", "hours")
            },
        },
        "assumptions": _assumptions(o, traffic, requests, predictions),
        "traffic": traffic.to_json(o.hours),
        "estimates": out,
        "comparison": [
            {k: e[k] for k in ("name", "title", "available", "reason", "total", "per_1000_predictions")} for e in out
        ],
        "cheapest": min(offered, key=lambda e: e.total).name if offered else None,
    }


def estimate_for(cfg: Config | None, layout: str) -> float:
    """The monthly total of the Fargate estimate `mlopsctl cost --layout LAYOUT` gives in this project at the
    assumed traffic (USD): the base of the budget `deploy aws` writes. A region without a built-in price
    table is priced at us-east-1's."""
    from mlopsctl.deploy.cost_prices import builtin_regions
    from mlopsctl.deploy.cost_traffic import assumed

    region = cfg.deploy.region if cfg is not None else "us-east-1"
    o = inputs_from(cfg, layout=layout, region=region if region in builtin_regions() else "us-east-1")
    report = estimate(o, assumed(None, None))
    return float(report["estimates"][0]["total"])
