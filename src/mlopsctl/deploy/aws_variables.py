"""`variables.tf` for `deploy aws`: every knob of the Terraform, with the project's values as defaults.

The values from ``[deploy]`` (and a few from ``[monitoring.alerts]`` and ``[registry]``) become
the *defaults* of Terraform variables, so a reviewer changes them in ``terraform.tfvars``
without running mlopsctl again; ``validation`` blocks refuse what AWS would refuse later.
Text is written already in ``terraform fmt`` style (the test runs ``terraform fmt -check``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlopsctl.deploy.sizes import FARGATE_SIZES, fargate_units
from mlopsctl.pipeline.retrain import TRIGGERS


def hcl_string(text: str) -> str:
    """A quoted HCL string: escapes, and ``${`` / ``%{`` kept literal."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return '"' + body.replace("${", "$${").replace("%{", "%%{") + '"'


def hcl_value(value: Any) -> str:
    """A Python value as an HCL literal (one line)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return hcl_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(hcl_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{hcl_string(k)} = {hcl_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no HCL literal for {type(value).__name__}")


def aligned(pairs: list[tuple[str, str]], indent: str) -> list[str]:
    """``key = value`` lines with the equals signs lined up, as ``terraform fmt`` does."""
    width = max((len(k) for k, _ in pairs), default=0)
    return [f"{indent}{k.ljust(width)} = {v}" for k, v in pairs]


@dataclass
class Variable:
    name: str
    type: str
    description: str
    default: Any = ...  # ... = required (no default)
    validations: list[tuple[str, str]] = field(default_factory=list)  # (condition, error_message)
    group: str = ""  # a comment line before the first variable of a group

    def render(self) -> str:
        pairs = [("description", hcl_string(self.description)), ("type", self.type)]
        if self.default is not ...:
            pairs.append(("default", hcl_value(self.default)))
        lines = [f'variable "{self.name}" {{', *aligned(pairs, "  ")]
        for condition, message in self.validations:
            lines += ["", "  validation {", *aligned([("condition", condition), ("error_message", message)], "    ")]
            lines.append("  }")
        lines.append("}")
        return "\n".join(lines)


@dataclass(frozen=True)
class AwsValues:
    """What `deploy aws` takes from the project (and the command line) as variable defaults."""

    name: str
    region: str
    model: str
    alias: str
    cpu: float
    memory: float
    min_replicas: int
    max_replicas: int
    cpu_target_percent: float
    requests_per_target: int
    log_retention_days: int
    alarm_email: str
    container_port: int
    pointer_parameter: str  # the SSM parameter mlopsctl mirrors the alias into
    error_rate_percent: float
    error_minutes: int
    latency_p95_ms: float
    latency_minutes: int
    pointer_mirrored: bool = False  # the project's [registry] ssm_parameter already names the parameter
    layout: str = "minimal"  # aws_layout.LAYOUTS
    deletion_protection: bool = False
    silence_minutes: int = 30  # no prediction request for this long: the no-invocations alarm
    drift_share: float = 0.3
    accuracy_min: float | None = None  # None: no live accuracy alarm is written
    accuracy_min_samples: int = 50
    metrics_namespace: str = "mlopsctl"  # [monitoring.cloudwatch] namespace: where the server's EMF metrics go
    monthly_budget: float = 50.0
    retrain_schedule: str = ""  # "" writes the schedule disabled
    capture_compaction: bool = False  # [monitoring.capture] compact_in_server: the tasks compact the capture
    capture_table: Any = None  # the served model's CaptureSchema (monitoring/capture_schema.py); None: fixed fields
    capture_first_day: str = "2026-01-01"  # athena.tf projects days from this one (deploy aws: the day it ran)


# the retentions CloudWatch Logs accepts (config.py checks [deploy] log_retention_days against the same)
LOG_RETENTION_DAYS: tuple[int, ...] = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096)
LOG_RETENTION_DAYS += (1827, 2192, 2557, 2922, 3288, 3653)


def _check(condition: str, message: str) -> list[tuple[str, str]]:
    return [(condition, hcl_string(message))]


def variables(v: AwsValues) -> list[Variable]:
    """Every variable of the configuration, with this project's values as defaults."""
    cpu_units, memory_mib = fargate_units(v.cpu, v.memory)
    cpus = sorted(round(c * 1024) for c in FARGATE_SIZES)
    retention = list(LOG_RETENTION_DAYS)
    s, n, b, ls = "string", "number", "bool", "list(string)"
    private = v.layout == "private"
    out = [
        # -- the service
        Variable(
            "name",
            s,
            "Name of the service: prefix of every resource (lower case, dashes, at most 28 characters).",
            v.name,
            _check(
                'can(regex("^[a-z][a-z0-9-]{0,27}$", var.name))',
                "name: lower case letters, digits and dashes, starting with a letter, at most 28 characters.",
            ),
            group="Service",
        ),
        Variable(
            "region",
            s,
            "AWS region for every resource.",
            v.region,
            _check('can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))', "region: e.g. us-east-1, eu-west-3."),
        ),
        Variable(
            "model_name",
            s,
            "The model the task's command serves (registry name; a deploy.yml run sets its own).",
            v.model,
        ),
        Variable(
            "model_alias",
            s,
            "The alias the task's command serves and follows (a deploy.yml run sets its own).",
            v.alias,
        ),
        Variable(
            "image_tag",
            s,
            "Tag of the server image in the repository; tags are immutable: push one per build (the git SHA).",
            validations=_check(
                'length(var.image_tag) > 0 && var.image_tag != "latest"',
                "image_tag: a build's tag such as the git SHA (tags are immutable, so not latest).",
            ),
        ),
        Variable(
            "cpu",
            n,
            f"CPU units per task (1024 = 1 vCPU); from [deploy] cpu = {v.cpu:g}.",
            cpu_units,
            _check(f"contains({hcl_value(cpus)}, var.cpu)", f"cpu: a Fargate size: {', '.join(map(str, cpus))}."),
        ),
        Variable(
            "memory",
            n,
            f"Memory per task in MiB, a size Fargate offers with cpu; from [deploy] memory = {v.memory:g}.",
            memory_mib,
        ),
        Variable(
            "cpu_architecture",
            s,
            "CPU architecture of the image: X86_64, or ARM64 (Graviton, about 20 % cheaper) for an arm64 image.",
            "X86_64",
            _check('contains(["X86_64", "ARM64"], var.cpu_architecture)', "cpu_architecture: X86_64 or ARM64."),
        ),
        Variable(
            "container_port",
            n,
            "Port the server listens on in the container.",
            v.container_port,
            _check(
                "var.container_port >= 1024 && var.container_port <= 65535",
                "container_port: 1024-65535 (the container runs as a non-root user).",
            ),
        ),
        Variable(
            "container_user",
            s,
            "UID[:GID] the container runs as, never root (the root filesystem is read-only, /tmp a task volume).",
            "10001:10001",
            _check(
                'can(regex("^[0-9]+(:[0-9]+)?$", var.container_user)) && '
                'try(tonumber(split(":", var.container_user)[0]) > 0, false)',
                "container_user: a numeric UID[:GID] other than 0 (root).",
            ),
        ),
        # -- autoscaling
        Variable(
            "min_replicas",
            n,
            "Fewest tasks the autoscaler keeps (2 or more keep serving through the loss of a zone).",
            v.min_replicas,
            _check("var.min_replicas >= 1 && var.min_replicas <= 100", "min_replicas: 1-100."),
            group="Autoscaling",
        ),
        Variable(
            "max_replicas",
            n,
            "Most tasks the autoscaler starts.",
            v.max_replicas,
            _check("var.max_replicas >= 1 && var.max_replicas <= 100", "max_replicas: 1-100."),
        ),
        Variable(
            "cpu_target_percent",
            n,
            "Target tracking: average CPU utilisation of the service, in percent.",
            v.cpu_target_percent,
            _check("var.cpu_target_percent > 0 && var.cpu_target_percent <= 100", "cpu_target_percent: in (0, 100]."),
        ),
        Variable(
            "requests_per_target",
            n,
            "Target tracking: load balancer requests per task per minute (ALBRequestCountPerTarget).",
            v.requests_per_target,
            _check("var.requests_per_target >= 1", "requests_per_target: at least 1."),
        ),
        # -- the store
        Variable(
            "store_prefix",
            s,
            "Prefix of the mlopsctl store in the bucket: the store is s3://BUCKET/PREFIX.",
            "mlops",
            _check(
                'can(regex("^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$", var.store_prefix))',
                "store_prefix: path segments such as mlops or teams/wine, without a leading or trailing slash.",
            ),
            group="Store",
        ),
        Variable("bucket_name", s, "Name of the store bucket to create; empty = NAME-mlops-ACCOUNT-REGION.", ""),
        Variable(
            "capture_expiration_days",
            n,
            "Captured predictions (PREFIX/capture/, compacted: PREFIX/capture-parquet/) are deleted after this many "
            "days; 0 keeps them.",
            90,
            _check("var.capture_expiration_days >= 0", "capture_expiration_days: 0 (keep) or more."),
        ),
        Variable(
            "noncurrent_version_days",
            n,
            "Overwritten or deleted objects stay recoverable (bucket versioning) this many days.",
            90,
            _check("var.noncurrent_version_days >= 1", "noncurrent_version_days: at least 1."),
        ),
        Variable(
            "canary_guard_writes",
            b,
            "Let the servers write deployments/, experiments/ and models/*/history/ (conditional writes only): "
            "the A/B canary guard in each server pulls a failing candidate back that way. "
            "false = the tasks write captured predictions and feedback only.",
            True,
        ),
        Variable(
            "capture_compaction_writes",
            b,
            "Let the servers compact captured predictions (PREFIX/capture/ -> PREFIX/capture-parquet/, create-only) "
            "and delete the JSON lines they verified, holding a lease in PREFIX/leases/ (conditional writes); "
            "from [monitoring.capture] compact_in_server.",
            v.capture_compaction,
        ),
        Variable(
            "athena_bytes_scanned_cutoff",
            n,
            "Athena cancels a query of the capture workgroup past this many bytes scanned (10 GB: $0.05 at $5 a TB).",
            10 * 1024**3,
            _check(
                "var.athena_bytes_scanned_cutoff >= 10485760",
                "athena_bytes_scanned_cutoff: at least 10485760 (10 MB, Athena's minimum).",
            ),
        ),
        Variable(
            "athena_results_days",
            n,
            "Athena's query results (s3://BUCKET/athena-results/) are deleted after this many days.",
            30,
            _check("var.athena_results_days >= 1", "athena_results_days: at least 1."),
        ),
        Variable(
            "pointer_parameter_name",
            s,
            "SSM parameter mirroring the served alias: mlopsctl writes it when the alias moves "
            "([registry] ssm_parameter must name the same parameter).",
            v.pointer_parameter,
            _check(
                'can(regex("^/[A-Za-z0-9_./-]+$", var.pointer_parameter_name))',
                "pointer_parameter_name: a path such as /mlopsctl/wine/prod.",
            ),
        ),
        # -- network
        Variable(
            "vpc_cidr",
            s,
            "CIDR of the VPC; the subnets are carved from it (/20 each in a /16).",
            "10.0.0.0/16",
            _check("can(cidrsubnet(var.vpc_cidr, 4, 15))", "vpc_cidr: an IPv4 CIDR of /16 to /24, e.g. 10.0.0.0/16."),
            group="Network",
        ),
        Variable(
            "az_count",
            n,
            "Availability zones used (the load balancer needs at least two).",
            2,
            _check("var.az_count >= 2 && var.az_count <= 3", "az_count: 2 or 3."),
        ),
        Variable(
            "availability_zones",
            ls,
            'Zones to use, e.g. ["us-east-1a", "us-east-1b"]; empty = the first az_count standard zones by name.',
            [],
            _check(
                "length(var.availability_zones) == 0 || "
                "(length(var.availability_zones) >= 2 && length(var.availability_zones) <= 3)",
                "availability_zones: empty, or 2 or 3 zone names.",
            ),
        ),
        *(
            [
                Variable(
                    "nat_gateway_per_az",
                    b,
                    "One NAT gateway per zone (survives a zone outage; one more NAT charge and public IPv4 address "
                    "each) instead of one.",
                    False,
                )
            ]
            if private
            else []
        ),
        Variable(
            "allowed_cidrs",
            ls,
            "IPv4 ranges that may reach the load balancer.",
            ["0.0.0.0/0"],
            _check(
                "alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0))])",
                "allowed_cidrs: IPv4 CIDRs such as 203.0.113.0/24.",
            ),
        ),
        Variable(
            "certificate_arn",
            s,
            "ACM certificate for HTTPS on the load balancer; empty = HTTP only. With one, port 80 redirects to 443.",
            "",
            _check(
                'var.certificate_arn == "" || can(regex("^arn:aws[a-z-]*:acm:", var.certificate_arn))',
                "certificate_arn: empty or an ACM certificate ARN.",
            ),
        ),
        Variable(
            "deletion_protection",
            b,
            "Protect the load balancer from deletion; terraform destroy needs false (docs/deploy-aws.md).",
            v.deletion_protection,
        ),
        Variable(
            "force_destroy",
            b,
            "Let terraform destroy delete the store bucket with every object version in it and the image "
            "repository with its images; keep false except to tear everything down.",
            False,
        ),
        # -- monitoring
        Variable(
            "log_retention_days",
            n,
            "Days CloudWatch keeps the service's logs" + (" and the VPC flow logs." if private else "."),
            v.log_retention_days,
            _check(
                f"contains({hcl_value(retention)}, var.log_retention_days)",
                f"log_retention_days: a CloudWatch retention: {', '.join(map(str, retention))}.",
            ),
            group="Monitoring",
        ),
        Variable(
            "container_insights",
            s,
            "ECS Container Insights on the cluster: enabled, enhanced or disabled (enabled publishes 38 custom "
            "metrics, a CloudWatch cost).",
            "enabled" if private else "disabled",
            _check(
                'contains(["enabled", "enhanced", "disabled"], var.container_insights)',
                "container_insights: enabled, enhanced or disabled.",
            ),
        ),
        Variable(
            "alarm_email",
            s,
            "Address subscribed to the alarm topic (AWS mails a confirmation link first); empty = none.",
            v.alarm_email,
            _check(
                'var.alarm_email == "" || can(regex("^[^@ ]+@[^@ ]+$", var.alarm_email))',
                "alarm_email: empty or an e-mail address.",
            ),
        ),
        Variable(
            "metrics_namespace",
            s,
            "CloudWatch namespace of the server's metrics (EMF log lines: Requests, Errors5xx, LatencyP95, "
            "DriftShare, LiveAccuracy, LiveLabelled); the alarms and the dashboard read them there.",
            v.metrics_namespace,
            _check('can(regex("^[A-Za-z0-9_./#:-]{1,255}$", var.metrics_namespace))', "metrics_namespace: a name."),
        ),
        Variable(
            "alarm_5xx_rate_percent",
            n,
            "Alarm when the server's 5xx answers exceed this share of its requests, in percent...",
            v.error_rate_percent,
            _check(
                "var.alarm_5xx_rate_percent > 0 && var.alarm_5xx_rate_percent <= 100",
                "alarm_5xx_rate_percent: in (0, 100].",
            ),
        ),
        Variable(
            "alarm_5xx_minutes",
            n,
            "...for this many minutes in a row.",
            v.error_minutes,
            _check("var.alarm_5xx_minutes >= 1", "alarm_5xx_minutes: at least 1."),
        ),
        Variable(
            "alarm_p95_latency_ms",
            n,
            "Alarm when the p95 of the server's answer time (its LatencyP95, the slowest task's) exceeds this, "
            "in milliseconds...",
            v.latency_p95_ms,
            _check("var.alarm_p95_latency_ms > 0", "alarm_p95_latency_ms: more than 0."),
        ),
        Variable(
            "alarm_latency_minutes",
            n,
            "...for this many minutes in a row.",
            v.latency_minutes,
            _check("var.alarm_latency_minutes >= 1", "alarm_latency_minutes: at least 1."),
        ),
        Variable(
            "alarm_no_invocations_minutes",
            n,
            "Alarm when the service answers no prediction request for this many minutes (a dead server "
            "reports nothing, which counts too).",
            v.silence_minutes,
            _check(
                "var.alarm_no_invocations_minutes >= 1 && var.alarm_no_invocations_minutes <= 1440",
                "alarm_no_invocations_minutes: 1-1440.",
            ),
        ),
        Variable(
            "alarm_drift_share",
            n,
            "Alarm when the served model's latest drift report finds more than this share of features drifted.",
            v.drift_share,
            _check("var.alarm_drift_share > 0 && var.alarm_drift_share <= 1", "alarm_drift_share: in (0, 1]."),
        ),
        *(
            [
                Variable(
                    "alarm_accuracy_min",
                    n,
                    "Alarm when a task's live accuracy (its predictions that got feedback) falls below this...",
                    v.accuracy_min,
                    _check(
                        "var.alarm_accuracy_min > 0 && var.alarm_accuracy_min <= 1", "alarm_accuracy_min: in (0, 1]."
                    ),
                ),
                Variable(
                    "alarm_accuracy_min_samples",
                    n,
                    "...once it holds at least this many labelled predictions.",
                    v.accuracy_min_samples,
                    _check("var.alarm_accuracy_min_samples >= 1", "alarm_accuracy_min_samples: at least 1."),
                ),
            ]
            if v.accuracy_min is not None
            else []
        ),
        Variable(
            "monthly_budget_usd",
            n,
            "An AWS budget: the alarm topic hears when the month's actual cost passes 80 % of this, or the "
            "forecast passes 100 %.",
            v.monthly_budget,
            _check("var.monthly_budget_usd > 0", "monthly_budget_usd: more than 0."),
        ),
        Variable(
            "budget_by_service_tag",
            b,
            "Count only resources tagged Service = name (activate the Service cost allocation tag in Billing "
            "first); false counts the whole account.",
            False,
        ),
        # -- images and CI
        Variable(
            "ecr_keep_images",
            n,
            "Images the repository keeps (older ones expire; untagged ones after 7 days).",
            30,
            _check("var.ecr_keep_images >= 2", "ecr_keep_images: at least 2 (the running image and the one before)."),
            group="Images and CI",
        ),
        Variable(
            "github_repository",
            s,
            "OWNER/REPO whose GitHub Actions may push and deploy (an OIDC role); empty = no CI role.",
            "",
            _check(
                'var.github_repository == "" || can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))',
                "github_repository: empty or OWNER/REPO.",
            ),
        ),
        Variable(
            "github_subjects",
            ls,
            "What in that repository may assume the role: OIDC subjects after repo:OWNER/REPO: "
            "(a branch ref:refs/heads/main, a tag ref:refs/tags/v1, an environment environment:production).",
            ["ref:refs/heads/main"],
            _check(
                'length(var.github_subjects) > 0 && alltrue([for s in var.github_subjects : s != "*" && s != ""])',
                "github_subjects: one or more subjects such as ref:refs/heads/main or environment:production, not *.",
            ),
        ),
        Variable(
            "github_oidc_provider_arn",
            s,
            "ARN of the account's GitHub OIDC provider if it has one (there can be only one); empty = create it.",
            "",
        ),
        Variable("tags", "map(string)", "Tags added to every resource.", {}),
        # -- retraining
        Variable(
            "retrain_schedule_enabled",
            b,
            "Run the retraining task on retrain_schedule (an EventBridge rule, written disabled unless "
            "[deploy] retrain_schedule is set).",
            bool(v.retrain_schedule),
            group="Scheduled retraining",
        ),
        Variable(
            "retrain_schedule",
            s,
            "When the retraining task runs: an EventBridge schedule expression (UTC).",
            v.retrain_schedule or "rate(7 days)",
            _check(
                'can(regex("^(rate|cron)\\\\(.+\\\\)$", var.retrain_schedule))',
                "retrain_schedule: rate(7 days) or cron(0 3 ? * MON *).",
            ),
        ),
        Variable(
            "retrain_trigger",
            s,
            "What the task's mlopsctl retrain --if checks first: schedule and always run; drift, performance "
            "and a metric's name (accuracy, rmse...) retrain only when the served model drifted or a live metric "
            "is past its bound in [monitoring.alerts] min / max.",
            "schedule",
            _check(
                f"contains({json.dumps(list(TRIGGERS))}, var.retrain_trigger)",
                f"retrain_trigger: one of {', '.join(TRIGGERS)}.",
            ),
        ),
        Variable(
            "retrain_image_tag",
            s,
            "Tag of the training image (Dockerfile.train of `mlopsctl deploy docker`) in the repository; "
            "empty = train-<image_tag>.",
            "",
        ),
        Variable(
            "retrain_cpu",
            n,
            "CPU units of the retraining task.",
            1024,
            _check(f"contains({hcl_value(cpus)}, var.retrain_cpu)", "retrain_cpu: a Fargate size."),
        ),
        Variable(
            "retrain_memory", n, "Memory of the retraining task in MiB, a size Fargate offers with retrain_cpu.", 2048
        ),
    ]
    return out


def render_variables(v: AwsValues, header: str) -> str:
    out = [header.rstrip("\n"), ""]
    for var in variables(v):
        if var.group:
            out.append(f"# -- {var.group} " + "-" * (72 - len(var.group)))
        out += [var.render(), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def fargate_memory_local() -> str:
    """The HCL map of the memory sizes Fargate allows per CPU size (MiB), for a precondition."""
    pairs = []
    for cpu, mems in FARGATE_SIZES.items():
        units = [round(m * 1024) for m in mems]
        if len(units) > 4:
            step = units[1] - units[0]
            value = f"range({units[0]}, {units[-1] + 1}, {step})"
        else:
            value = hcl_value(units)
        pairs.append((hcl_string(str(round(cpu * 1024))), value))
    return "\n".join(aligned(pairs, "    "))
