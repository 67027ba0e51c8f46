"""The `mlopsctl` entry point: global options, command groups, one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from mlopsctl import __version__
from mlopsctl.cli import common

app = typer.Typer(
    name="mlopsctl",
    help="From a CSV to a versioned, monitored prediction service.\n\n"
    "Golden path: init → train → publish → promote → serve (and rollback).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlopsctl {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    store: str | None = typer.Option(
        None,
        "--store",
        envvar="MLOPS_STORE",
        help="Store URI (default: the project's store.uri, else ./.mlops).",
    ),
    project: Path | None = typer.Option(
        None,
        "--project",
        "-C",
        help="Project folder (default: the nearest folder with mlops.toml at or above the current one).",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    common.STATE.store = store
    common.STATE.project = project
    common.STATE.debug = debug


def _register() -> None:
    from mlopsctl.cli import (
        ab,
        capture,
        cost,
        data,
        deploy,
        drift,
        models,
        monitor,
        pipeline,
        project,
        serve,
        smoke,
        train,
        transfer,
    )

    project.register(app)
    app.add_typer(data.app, name="data", help="Validate and ingest data (content-addressed snapshots).")
    train.register(app)
    models.register(app)
    transfer.register(app)
    serve.register(app)
    capture.register(app)
    drift.register(app)
    monitor.register(app)
    ab.register(app)
    pipeline.register(app)
    deploy.register(app)
    cost.register(app)
    smoke.register(app)


_register()


def main() -> None:
    from mlopsctl.errors import DataErrors, MlopsError

    try:
        # standalone mode: click prints usage errors and exits with each command's code itself
        app()
    except MlopsError as exc:
        if common.STATE.debug:
            raise
        for one in exc.errors if isinstance(exc, DataErrors) else [exc]:  # one line per column
            common.error_line(str(one))
        sys.exit(1)
    except Exception as exc:
        if common.STATE.debug:
            raise
        common.error_line(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)")
        sys.exit(1)


if __name__ == "__main__":
    main()
