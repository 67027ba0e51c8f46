"""`mlopsctl deploy aws`: the Terraform configuration for the service on AWS (ECS Fargate behind a load balancer)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    table, note = _capture_table(cfg, values.model)
    values = replace(values, capture_table=table, capture_first_day=datetime.now(UTC).strftime("%Y-%m-%d"))
    with writing(output_folder(out)):
        result = write(out, values, force=force)
    if note:
        common.err_console().print(escape(note))
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


def _capture_table(cfg: Any, model: str) -> tuple[Any, str]:
    """The served model's capture table (athena.tf's columns) from its versions in the store, and a note to
    print when the store has none (the table then has the fixed columns only)."""
    from mlopsctl.errors import MlopsError
    from mlopsctl.monitoring.capture_schema import schema_of

    try:
        table = schema_of(common.store(cfg), model)
    except MlopsError as exc:
        table, why = None, str(exc)
    else:
        why = "no published version"
    if table is not None and table.known:
        return table, ""
    return table, (
        f"note: athena.tf: {model} in store {common.store_uri(cfg)}: {why}; its capture table has the fixed "
        "columns only (no inputs, no prediction): publish a version, then run deploy aws --force again"
    )


def register(app: typer.Typer) -> None:
    """Add `deploy aws` to the deploy group."""
    app.command("aws")(aws)
