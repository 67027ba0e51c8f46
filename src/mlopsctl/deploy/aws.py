"""`mlopsctl deploy aws`: the service on AWS as a Terraform configuration, for a person to review.

ECS Fargate tasks behind an Application Load Balancer in a VPC of their own, target-tracking
autoscaling, the store in an encrypted, versioned S3 bucket, an SSM parameter mirroring the
production pointer, least-privilege IAM, CloudWatch logs and alarms to an SNS topic, and an
optional role for GitHub Actions. One file per concern; the project's ``[deploy]`` values are
the defaults of the variables in ``variables.tf``. The texts live in ``aws_tf_*.py``;
docs/deploy-aws.md explains every choice.
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
from mlopsctl.deploy.aws_variables import AwsValues, fargate_memory_local, render_variables, variables
from mlopsctl.deploy.files import check_model_ref, service_name, write_files
from mlopsctl.errors import ValidationError

TFVARS_EXAMPLE = """\
# Copy to terraform.tfvars and edit; every variable and its default is in variables.tf.
image_tag = "REPLACE-with-the-pushed-tag" # e.g. the git SHA the image was built from

# certificate_arn   = "arn:aws:acm:REGION:ACCOUNT:certificate/ID" # HTTPS, and port 80 redirects
# allowed_cidrs     = ["203.0.113.0/24"]
# min_replicas      = 2
# github_repository = "OWNER/REPO" # a role GitHub Actions can assume (OIDC)
"""

GITIGNORE = """\
.terraform/
*.tfstate
*.tfstate.*
crash.log
"""


def _files() -> dict[str, str]:
    """File name → text, in the order a reader meets them (variables.tf is rendered separately)."""
    return {
        "versions.tf": base.VERSIONS_TF,
        "main.tf": base.MAIN_TF.replace("@FARGATE_MEMORY@", fargate_memory_local()),
        "network.tf": base.NETWORK_TF,
        "kms.tf": base.KMS_TF,
        "ecr.tf": service.ECR_TF,
        "ecs.tf": service.ECS_TF,
        "alb.tf": service.ALB_TF,
        "autoscaling.tf": service.AUTOSCALING_TF,
        "s3.tf": data.S3_TF,
        "ssm.tf": data.SSM_TF,
        "iam.tf": iam.IAM_TF,
        "monitoring.tf": ops.MONITORING_TF,
        "outputs.tf": ops.OUTPUTS_TF,
    }


FILE_NAMES = ("variables.tf", *_files(), "terraform.tfvars.example", ".gitignore")


def values_from_config(cfg: Config | None, *, model: str | None = None, alias: str | None = None) -> AwsValues:
    """The variable defaults: ``[deploy]``, the alert thresholds and the SSM mirror name of the project."""
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
        log_retention_days=d.log_retention_days,
        alarm_email=d.alarm_email,
        container_port=d.container_port,
        pointer_parameter=pointer,
        error_rate_percent=round(error_rate * 100, 4),
        error_minutes=max(1, math.ceil(alerts.error_for / 60)),
        latency_p95_ms=latency_ms,
        latency_minutes=max(1, math.ceil(alerts.latency_for / 60)),
        pointer_mirrored=bool(pattern),
    )


def _header(v: AwsValues) -> str:
    return (
        f"# Written by `mlopsctl deploy aws` (mlopsctl {__version__}) for the service {v.name!r}.\n"
        "# Review and edit freely; set values in terraform.tfvars (docs/deploy-aws.md).\n\n"
    )


def render(v: AwsValues) -> dict[str, str]:
    """Every file of the configuration: name → text."""
    head = _header(v)
    out = {"variables.tf": render_variables(v, head)}
    out.update({name: head + text for name, text in _files().items()})
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
    ]
    if not v.pointer_mirrored:
        pattern = v.pointer_parameter.replace(f"/{v.model}/{v.alias}", "/{model}/{alias}")
        steps.append(f'in mlops.toml [registry]: ssm_parameter = "{pattern}"  # promote updates the SSM pointer')
    return {
        "out": str(out),
        "written": [str(p) for p in written],
        "overwritten": present,
        "service": v.name,
        # the defaults written into variables.tf (None: required, e.g. image_tag)
        "variables": {var.name: None if var.default is ... else var.default for var in variables(v)},
        "next": steps,
    }
