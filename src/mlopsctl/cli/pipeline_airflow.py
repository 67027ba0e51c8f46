"""`mlopsctl pipeline airflow`: write the retraining pipeline as an Airflow DAG (one task per step)."""

from __future__ import annotations

from pathlib import Path

import typer

from mlopsctl.cli import common


def airflow(
    out: Path = typer.Option(..., "--out", "-o", help="The Airflow DAGs folder to write into (created)."),
    schedule: str = typer.Option(
        "0 3 * * 1",
        "--schedule",
        help="Cron expression (UTC), @daily/@weekly/…, or none (manual runs only). Default: Mondays 03:00.",
    ),
    trigger: str = typer.Option(
        "schedule",
        "--if",
        help="schedule (every run retrains; the gate decides) | drift | performance | a metric (accuracy, rmse…) "
        "| always.",
    ),
    rollout: str | None = typer.Option(
        None, "--rollout", help="canary | direct (default: the project's \\[retrain] rollout, read at run time)."
    ),
    data: str | None = typer.Option(None, "--data", help="Train on this file (made absolute; default: \\[data] path)."),
    include_feedback: bool = typer.Option(
        False, "--include-feedback", help="Add captured inputs that got a ground-truth label as training rows."
    ),
    current: str | None = typer.Option(
        None, "--current", help="For --if drift: check this file instead of the captured inputs."
    ),
    alias: str = typer.Option("prod", "--alias", help="The alias the new version goes to."),
    retries: int = typer.Option(2, "--retries", help="Retries of a failed task (exit 1); exit 99 is never retried."),
    retry_delay: str = typer.Option("5m", "--retry-delay", help="Wait between retries: 30s, 5m, 1h."),
    timeout: str | None = typer.Option(
        None,
        "--timeout",
        help="Each task's execution_timeout (default: \\[retrain] lock_stale_after, 6h: a step running longer "
        "loses the lock anyway).",
    ),
    mlopsctl: str | None = typer.Option(
        None, "--mlopsctl", help="mlopsctl on the workers (default: the absolute path of this one)."
    ),
    dag_id: str | None = typer.Option(None, "--dag-id", help="Default: mlopsctl_retrain_<model>."),
    queue: str | None = typer.Option(
        None, "--queue", help="The tasks' queue: the workers that have mlopsctl and see the project (Celery)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace the DAG file if it exists."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Write an Airflow DAG running this project's retraining pipeline: one BashOperator per step,
    chained, each calling `mlopsctl pipeline step STEP --run <Airflow's run id>`; exit 99 skips the rest."""
    from mlopsctl.pipeline.airflow import spec_for, write
    from mlopsctl.pipeline.runs import STEPS

    cfg = common.require_config()
    spec = spec_for(
        cfg,
        schedule=schedule,
        trigger=trigger,
        rollout=rollout,
        data=data,
        include_feedback=include_feedback,
        current=current,
        alias=alias,
        retries=retries,
        retry_delay=retry_delay,
        timeout=timeout,
        mlopsctl=mlopsctl,
        dag_id=dag_id,
        queue=queue,
    )
    path = write(spec, out, force=force)
    if as_json:
        common.emit_json(
            {
                "path": str(path),
                "dag_id": spec.dag_id,
                "schedule": spec.schedule,
                "tasks": list(STEPS),
                "commands": {step: spec.command(step) for step in STEPS},
                "warnings": spec.warnings,
            }
        )
        return
    c = common.console()
    c.print(f"wrote {path}: DAG {spec.dag_id}, schedule {spec.schedule or 'none (manual runs)'}", markup=False)
    c.print(f"tasks: {' >> '.join(STEPS)}, each: {spec.command('STEP')}", markup=False)
    for warning in spec.warnings:
        common.err_console().print(f"warning: {warning}", markup=False)


def register(group: typer.Typer) -> None:
    """Add `airflow` to the `pipeline` group."""
    group.command("airflow")(airflow)
