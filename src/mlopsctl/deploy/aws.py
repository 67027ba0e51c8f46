"""`mlopsctl deploy aws`: the service on AWS as a Terraform configuration, for a person to review.

ECS Fargate tasks behind an Application Load Balancer in a VPC of their own, laid out ``minimal``
(public subnets, no NAT gateway) or ``private`` (private subnets behind a NAT gateway): target-tracking
autoscaling, the store in an encrypted, versioned S3 bucket, an SSM parameter mirroring the production
pointer, least-privilege IAM, CloudWatch logs, the server's own metrics (EMF) with a dashboard and the
alarms to an SNS topic, a monthly budget, a scheduled retraining task (off by default) and optional
roles for GitHub Actions. One file per concern; the project's ``[deploy]`` values are the defaults of
the variables in ``variables.tf``. The texts live in ``aws_tf_*.py``, what each layout bills in
``aws_layout.py`` (which `mlopsctl cost` prices); docs/deploy-aws.md explains every choice.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mlopsctl import __version__
from mlopsctl.config import AlertsSection, Config, DeploySection
from mlopsctl.deploy import aws_tf_base as base
from mlopsctl.deploy import aws_tf_data as data
from mlopsctl.deploy import aws_tf_iam as iam
from mlopsctl.deploy import aws_tf_ops as ops
from mlopsctl.deploy import aws_tf_service as service
from mlopsctl.deploy.aws_layout import alarms_written, layout
from mlopsctl.deploy.aws_tf_athena import athena_tf
from mlopsctl.deploy.aws_tf_retrain import retrain_tf
from mlopsctl.deploy.aws_variables import AwsValues, fargate_memory_local, render_variables, variables
from mlopsctl.deploy.files import check_model_ref, service_name, write_files
from mlopsctl.errors import ValidationError
from mlopsctl.monitoring.capture_schema import from_signatures

TFVARS_EXAMPLE = """\
# Copy to terraform.tfvars and edit; every variable and its default is in variables.tf.
image_tag = "REPLACE-with-the-pushed-tag" # e.g. the git SHA the image was built from

# certificate_arn          = "arn:aws:acm:REGION:ACCOUNT:certificate/ID" # HTTPS, and port 80 redirects
# allowed_cidrs            = ["203.0.113.0/24"]
# min_replicas             = 2
# github_repository        = "OWNER/REPO" # roles GitHub Actions can assume (OIDC): deploy, and plan on pull requests
# monthly_budget_usd       = 50
# retrain_schedule_enabled = true # the retraining task on retrain_schedule (push the train-TAG image first)
"""

GITIGNORE = """\
.terraform/
*.tfstate
*.tfstate.*
crash.log
"""


def _files(v: AwsValues) -> dict[str, str]:
    """File name → text, in the order a reader meets them (variables.tf is rendered separately)."""
    lay = layout(v.layout)
    alarms = alarms_written(v.accuracy_min)
    return {
        "versions.tf": base.VERSIONS_TF,
        "main.tf": base.MAIN_TF.replace("@FARGATE_MEMORY@", fargate_memory_local()),
        "network.tf": base.network_tf(lay),
        "kms.tf": base.kms_tf(lay),
        "ecr.tf": service.ECR_TF,
        "ecs.tf": service.ecs_tf(lay, v.log_retention_days),
        "alb.tf": service.alb_tf(v.deletion_protection),
        "autoscaling.tf": service.AUTOSCALING_TF,
        "s3.tf": data.S3_TF,
        "athena.tf": athena_tf(v.capture_table or from_signatures(v.model, []), v.capture_first_day),
        "ssm.tf": data.SSM_TF,
        "iam.tf": iam.IAM_TF,
        "monitoring.tf": ops.monitoring_tf(alarms),
        "dashboard.tf": ops.dashboard_tf(alarms),
        "budget.tf": ops.BUDGET_TF,
        "retrain.tf": retrain_tf(lay),
        "outputs.tf": ops.outputs_tf(lay),
    }


TF_FILES = (
    "versions.tf", "main.tf", "variables.tf", "network.tf", "kms.tf", "ecr.tf", "ecs.tf", "alb.tf", "autoscaling.tf",
    "s3.tf", "athena.tf", "ssm.tf", "iam.tf", "monitoring.tf", "dashboard.tf", "budget.tf", "retrain.tf", "outputs.tf",
)  # fmt: skip
FILE_NAMES = (*TF_FILES, "terraform.tfvars.example", ".gitignore")


def values_from_config(
    cfg: Config | None, *, model: str | None = None, alias: str | None = None, layout_name: str | None = None
) -> AwsValues:
    """The variable defaults: ``[deploy]``, the alert thresholds, the metrics namespace and the SSM mirror name
    of the project; ``layout_name`` (``--layout``) wins over ``[deploy] layout``."""
    from mlopsctl.registry.mirror import parameter_name

    if cfg is None and not model:
        raise ValidationError(
            "no mlops.toml here or above, and no --model: pass --model NAME (or run in a project)",
            [("--model", "required outside a project")],
        )
    name_of_model = model or (cfg.model_name if cfg else "")
    served = alias or (cfg.serving.alias if cfg else "prod")
    check_model_ref(name_of_model, served)
    d = cfg.deploy if cfg else DeploySection()
    lay = layout(layout_name or d.layout)
    name = service_name(cfg, name_of_model)
    # the alarms follow [monitoring.alerts]; a rule turned off there keeps its default threshold here
    alerts = cfg.monitoring.alerts if cfg else AlertsSection()

    def threshold(rule: str) -> float:
        value = getattr(alerts, rule)
        return float(AlertsSection.model_fields[rule].default if value is None else value)

    error_rate, latency_ms = threshold("error_rate"), threshold("latency_p95_ms")
    pattern = cfg.registry.ssm_parameter if cfg else ""
    pointer = (
        parameter_name(pattern, name_of_model, served) if pattern else f"/mlopsctl/{name}/{name_of_model}/{served}"
    )
    return AwsValues(
        name=name,
        region=d.region,
        model=name_of_model,
        alias=served,
        cpu=d.cpu,
        memory=d.memory,
        min_replicas=d.min_replicas,
        max_replicas=d.max_replicas,
        cpu_target_percent=d.cpu_target_percent,
        requests_per_target=d.requests_per_target,
        log_retention_days=d.log_retention_days or lay.log_retention_days,
        alarm_email=d.alarm_email,
        container_port=d.container_port,
        pointer_parameter=pointer,
        error_rate_percent=round(error_rate * 100, 4),
        error_minutes=max(1, math.ceil(alerts.error_for / 60)),
        latency_p95_ms=latency_ms,
        latency_minutes=max(1, math.ceil(alerts.latency_for / 60)),
        pointer_mirrored=bool(pattern),
        layout=lay.name,
        deletion_protection=lay.deletion_protection if d.deletion_protection is None else d.deletion_protection,
        silence_minutes=max(1, math.ceil((alerts.silence_for or 1800) / 60)),
        drift_share=threshold("drift_share"),
        accuracy_min=alerts.accuracy_min,
        accuracy_min_samples=alerts.accuracy_min_samples,
        metrics_namespace=cfg.monitoring.cloudwatch.namespace if cfg else "mlopsctl",
        monthly_budget=d.monthly_budget or default_budget(cfg, lay.name),
        retrain_schedule=d.retrain_schedule,
        capture_compaction=cfg.monitoring.capture.compact_in_server if cfg else False,
    )


def default_budget(cfg: Config | None, layout_name: str) -> float:
    """The budget when ``[deploy] monthly_budget`` is not set: `mlopsctl cost`'s estimate of this project and
    layout (assumed traffic) plus 25 %, rounded up to whole $5."""
    from mlopsctl.deploy.cost import estimate_for

    total = estimate_for(cfg, layout_name)
    return float(5 * math.ceil(total * 1.25 / 5))


def _header(v: AwsValues) -> str:
    return (
        f"# Written by `mlopsctl deploy aws` (mlopsctl {__version__}) for the service {v.name!r}, "
        f"{v.layout} layout.\n"
        "# Review and edit freely; set values in terraform.tfvars (docs/deploy-aws.md).\n\n"
    )


def render(v: AwsValues) -> dict[str, str]:
    """Every file of the configuration: name → text."""
    head = _header(v)
    out = {"variables.tf": render_variables(v, head)}
    out.update({name: head + text for name, text in _files(v).items()})
    out["terraform.tfvars.example"] = TFVARS_EXAMPLE
    out[".gitignore"] = GITIGNORE
    return out


def write(out: Path, v: AwsValues, *, force: bool = False) -> dict[str, Any]:
    """Write the configuration into ``out``; refuses to overwrite its files without ``force``.

    Files that are not ours (terraform.tfvars, the state, .terraform/) are never touched."""
    files = render(v)
    present = [str(out / n) for n in files if (out / n).exists()]
    written = write_files(out, files, force=force, note="; terraform.tfvars and the state are never touched")
    steps = [
        f"cd {out}",
        "terraform init",
        "terraform apply -target=aws_ecr_repository.this -var image_tag=TAG",
        "docker build -t $(terraform output -raw ecr_repository_url):TAG DIR  # DIR: `mlopsctl deploy docker`'s",
        "docker push $(terraform output -raw ecr_repository_url):TAG  # logged in: docs/deploy-aws.md",
        "terraform apply -var image_tag=TAG",
        "export MLOPS_STORE=$(terraform output -raw store_uri)  # then publish and promote a model",
        "mlopsctl smoke $(terraform output -raw url)  # health, ready, a prediction, a 4xx, metrics",
        "tear down (deletes the store): terraform apply -var image_tag=TAG -var deletion_protection=false "
        "-var force_destroy=true, then terraform destroy with the same -var",
    ]
    if not v.pointer_mirrored:
        pattern = v.pointer_parameter.replace(f"/{v.model}/{v.alias}", "/{model}/{alias}")
        steps.append(f'in mlops.toml [registry]: ssm_parameter = "{pattern}"  # promote updates the SSM pointer')
    return {
        "out": str(out),
        "written": [str(p) for p in written],
        "overwritten": present,
        "service": v.name,
        "layout": v.layout,
        # the defaults written into variables.tf (None: required, e.g. image_tag)
        "variables": {var.name: None if var.default is ... else var.default for var in variables(v)},
        "next": steps,
    }
