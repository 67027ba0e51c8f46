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
    force: bool = typer.Option(False, "--force", help="Overwrite the files of an earlier run in --out."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Terraform for AWS: ECR, ECS Fargate, load balancer, autoscaling, S3 store, SSM pointer, IAM, alarms.

    The values of \\[deploy] become the defaults in variables.tf; check the output with
    `terraform fmt -check` and checkov, then `terraform init` and `apply` (docs/deploy-aws.md)."""
    from rich.markup import escape

    from mlopsctl.cli.deploy import output_folder, writing
    from mlopsctl.deploy.aws import values_from_config, write

    cfg = common.config(required=False)
    values = values_from_config(cfg, model=model, alias=alias)
    with writing(output_folder(out)):
        result = write(out, values, force=force)
    if as_json:
        common.emit_json(result)
        return
    c = common.console()
    v = result["variables"]
    c.print(
        f"wrote {len(result['written'])} files to {escape(str(out))} for the service {result['service']!r} "
        f"(serves {v['model_name']}@{v['model_alias']} in {v['region']}, {v['cpu']} CPU units / {v['memory']} MiB, "
        f"{v['min_replicas']}-{v['max_replicas']} tasks)"
    )
    for path in result["written"]:
        c.print(f"  {escape(path)}")
    c.print("next (docs/deploy-aws.md):")
    for step in result["next"]:
        c.print(f"  {escape(step)}")


def register(app: typer.Typer) -> None:
    """Add `deploy aws` to the deploy group."""
    app.command("aws")(aws)
