"""`mlopsctl retrain` and `mlopsctl pipeline runs|show`: the retraining pipeline and its records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlopsctl.cli import common

pipeline_app = typer.Typer(no_args_is_help=True, help="Retraining pipeline runs: triggers, steps, outcomes.")


def retrain(
    name: str | None = typer.Argument(None, help="Model name (default: the project's)."),
    data: Path | None = typer.Option(None, "--data", help="Train on this file (default: \\[data] path)."),
    include_feedback: bool = typer.Option(
        False, "--include-feedback", help="Add captured inputs that got a ground-truth label as training rows."
    ),
    trigger: str = typer.Option(
        "always", "--if", help="always | schedule | drift (captured inputs drifted) | accuracy (live accuracy low)."
    ),
    rollout: str | None = typer.Option(
        None, "--rollout", help="canary (an A/B canary, guarded) | direct (promote); default \\[retrain] rollout."
    ),
    current: Path | None = typer.Option(
        None, "--current", help="For --if drift: check this file instead of the captured inputs."
    ),
    alias: str = typer.Option("prod", "--alias", help="The alias the new version goes to."),
    reason: str = typer.Option("", "--reason", help="Why: kept in the history."),
    resume: bool = typer.Option(False, "--resume", help="Continue the model's last failed run from its failed step."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Retrain: trigger → data → train → evaluate (fresh holdout) → gate → publish → rollout.

    Exit 0 when it rolled out, was skipped (the trigger did not fire) or awaits approval;
    1 when the gate stopped it or a step failed (production unchanged)."""
    from mlopsctl.errors import NotFound, ValidationError
    from mlopsctl.pipeline import runs
    from mlopsctl.pipeline.retrain import Options, Pipeline

    cfg = common.require_config()
    if name and name != cfg.model_name:
        raise ValidationError(
            f"{name!r} is not this project's model ({cfg.model_name}): run retrain in that model's project",
            [("name", f"expected {cfg.model_name}")],
        )
    store = common.store(cfg)
    quiet = as_json
    c = common.err_console()

    def log(line: str) -> None:
        if not quiet:
            from rich.markup import escape

            c.print(escape(line))

    pipe = Pipeline(cfg, store, log=log)
    previous = None
    if resume:
        failed = [r for r in runs.list_runs(store, cfg.model_name) if r["status"] != "running"][:1]
        if not failed or failed[0]["status"] != "failed":
            last = failed[0]["status"] if failed else "none"
            raise NotFound("failed pipeline run", cfg.model_name, f"the last run is {last}: nothing to resume")
        previous = failed[0]
        log(f"resuming {previous['id']} at step {previous['error']['step']}")
    options = Options(
        trigger=trigger,
        rollout=rollout or cfg.retrain.rollout,
        data=str(data) if data else None,
        include_feedback=include_feedback,
        current=str(current) if current else None,
        alias=alias,
        reason=reason,
    )
    try:
        record = pipe.run(options, resume=previous)
    except Exception:
        if as_json:
            latest = runs.list_runs(store, cfg.model_name)[:1]
            if latest:
                common.emit_json(latest[0])
        raise
    if as_json:
        common.emit_json(record)
        return
    common.console().print(f"[bold]{record['id']}[/bold]: {record['status']}: {record.get('summary', '')}")


@pipeline_app.command("runs")
def runs_list(
    name: str | None = typer.Argument(None, help="Model name (default: the project's; all models without one)."),
    limit: int = typer.Option(20, "--limit", min=1, help="How many, newest first."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Pipeline runs, newest first: trigger, status, the step that failed, the version rolled out."""
    from mlopsctl.pipeline import runs

    cfg = common.config(required=False)
    store = common.store(cfg)
    names = [name] if name else ([cfg.model_name] if cfg else runs.models_with_runs(store))
    found = [r for n in names for r in runs.list_runs(store, n)]
    found.sort(key=lambda r: r["id"], reverse=True)
    found = found[:limit]
    if as_json:
        common.emit_json(found)
        return
    rows = []
    for r in found:
        out: dict[str, Any] = {}
        for s in r["steps"]:
            out.update(s.get("outputs", {}))
        version = f"v{out['version']}" if "version" in out else ""
        where = (r.get("error") or {}).get("step", "")
        rows.append([r["id"], r["model"], r["trigger"], r["status"], where, version, r.get("summary", "")[:90]])
    common.table(None, ["run", "model", "trigger", "status", "failed at", "version", "summary"], rows)


@pipeline_app.command("show")
def show(
    run_id: str = typer.Argument(..., help="Pipeline run id (p-…)."),
    name: str | None = typer.Option(None, "--model", help="Model name (default: the project's)."),
    as_json: bool = common.JsonOpt,
) -> None:
    """One run, step by step: how long each took and what it found or decided."""
    from mlopsctl.pipeline import runs

    cfg = common.config(required=False)
    store = common.store(cfg)
    model = name or (cfg.model_name if cfg else None)
    if model is None:
        from mlopsctl.errors import ValidationError

        raise ValidationError("--model is needed outside a project", [("--model", "missing")])
    record = runs.get_run(store, model, run_id)
    if as_json:
        common.emit_json(record)
        return
    c = common.console()
    c.print(f"[bold]{record['id']}[/bold] {record['model']}: trigger {record['trigger']}, {record['status']}")
    rows = []
    for s in record["steps"]:
        said = s.get("error") or s.get("message") or (s.get("outputs") or {}).get("summary", "")
        rows.append([s["name"], s["status"], f"{s.get('seconds', 0):.1f}s", str(said)[:110]])
    common.table(None, ["step", "status", "time", "outcome"], rows)


def register(app: typer.Typer) -> None:
    app.command("retrain")(retrain)
    app.add_typer(pipeline_app, name="pipeline")
