"""`mlopsctl deploy github`: GitHub Actions workflows for the project (CI, train and gate, deploy)."""

from __future__ import annotations

from pathlib import Path

import typer

from mlopsctl.cli import common


def github(
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Folder to write into (default: .github/workflows at the root of the project's git repository).",
    ),
    terraform: Path | None = typer.Option(
        None,
        "--terraform",
        help="The folder of `mlopsctl deploy aws`'s files that plan.yml plans (default: deploy/aws in the project).",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite workflows an earlier run wrote."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Write ci.yml (every push), plan.yml (terraform fmt, validate and plan on pull requests, posted), train.yml
    (train, publish, gate on main) and deploy.yml (build, push to ECR, roll out on ECS, smoke tests, rollback
    when they fail), using GitHub's OIDC token for AWS (docs/deploy-github.md)."""
    from mlopsctl.cli.deploy import output_folder, writing
    from mlopsctl.cli.deploy_docker import print_files
    from mlopsctl.deploy.github import write_workflows

    cfg = common.require_config()
    folder = output_folder(out) if out is not None else None
    with writing(folder or cfg.root):
        result = write_workflows(cfg, folder, force=force, terraform=terraform)
    if print_files(result, as_json):
        return
    c = common.console()
    c.print("Set these repository variables (Settings → Secrets and variables → Actions → Variables):")
    c.print("  " + ", ".join(result["repository_variables"]) + "  (the outputs of `mlopsctl deploy aws`'s Terraform)")
    c.print("  and MLOPSCTL_SPEC, what pip installs for mlopsctl while it is not on PyPI.")


def register(app: typer.Typer) -> None:
    """Add `deploy github` to the deploy group."""
    app.command("github")(github)
