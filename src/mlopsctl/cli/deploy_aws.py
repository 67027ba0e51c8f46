"""`mlopsctl deploy aws`: the Terraform configuration for the service on AWS (ECS Fargate behind a load balancer)."""

from __future__ import annotations

from pathlib import Path

import typer

from mlopsctl.cli import common


def aws(
    out: Path = typer.Option(Path("deploy/aws"), "--out", "-o", help="Folder to write into (created)."),
    model: str | None = typer.Option(None, "--model", "-m", help="The model to serve (default: the project's)."),
    alias: str | None = typer.Option(
        None, "--alias", help="The alias the service serves and follows (default: \\[serving] alias, prod)."
    ),
    layout: str | None = typer.Option(
        None,
        "--layout",
        help="minimal (public subnets, no NAT gateway, Insights off, logs 7 days) or private (private subnets "
        "behind a NAT gateway); default: \\[deploy] layout, minimal.",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite the files of an earlier run in --out."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Terraform for AWS: ECR, ECS Fargate, load balancer, autoscaling, S3 store, SSM pointer, IAM, the server's
    CloudWatch metrics with a dashboard and alarms, a budget, a scheduled retraining task (off).

    The values of \\[deploy] become the defaults in variables.tf; `mlopsctl cost` prices the same layout. Check
    the output with `terraform fmt -check` and checkov, then `terraform init` and `apply` (docs/deploy-aws.md)."""
    from rich.markup import escape

    from mlopsctl.cli.deploy import output_folder, writing
    from mlopsctl.deploy.aws import values_from_config, write

    cfg = common.config(required=False)
    values = values_from_config(cfg, model=model, alias=alias, layout_name=layout)
    with writing(output_folder(out)):
        result = write(out, values, force=force)
    if as_json:
        common.emit_json(result)
        return
    c = common.console()
    v = result["variables"]
    c.print(
        f"wrote {len(result['written'])} files to {escape(str(out))} for the service {result['service']!r}, "
        f"{result['layout']} layout (serves {v['model_name']}@{v['model_alias']} in {v['region']}, {v['cpu']} CPU "
        f"units / {v['memory']} MiB, {v['min_replicas']}-{v['max_replicas']} tasks, "
        f"budget ${v['monthly_budget_usd']:g} a month)"
    )
    for path in result["written"]:
        c.print(f"  {escape(path)}")
    c.print("next (docs/deploy-aws.md):")
    for step in result["next"]:
        c.print(f"  {escape(step)}")


def register(app: typer.Typer) -> None:
    """Add `deploy aws` to the deploy group."""
    app.command("aws")(aws)
