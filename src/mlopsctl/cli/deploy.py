"""`mlopsctl deploy docker|aws|github`: files to run the service elsewhere, written for a person to read and review."""

from __future__ import annotations

import typer

deploy_app = typer.Typer(
    no_args_is_help=True,
    help="Write deployment files: a Docker stack, AWS as Terraform, GitHub Actions workflows.",
)


def register(app: typer.Typer) -> None:
    """Add the `deploy` group; each target's commands live in its own module."""
    from mlopsctl.cli import deploy_aws, deploy_docker, deploy_github

    deploy_docker.register(deploy_app)
    deploy_aws.register(deploy_app)
    deploy_github.register(deploy_app)
    app.add_typer(deploy_app, name="deploy")
