"""`mlopsctl retrain` and `mlopsctl pipeline runs|show`: the retraining pipeline and its records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlopsctl.cli import common

pipeline_app = typer.Typer(no_args_is_help=True, help="Retraining pipeline runs: triggers, steps, outcomes.")


# the options of a run, shared by `retrain` and `pipeline step`
DataOpt = typer.Option(None, "--data", help="Train on this file (default: \\[data] path).")
FeedbackOpt = typer.Option(
    False, "--include-feedback", help="Add captured inputs that got a ground-truth label as training rows."
)
TriggerOpt = typer.Option(
    "always",
    "--if",
    help="always | schedule | drift (captured inputs drifted) | performance (a live metric past its bound in "
    "\\[monitoring.alerts] min/max) | a metric's name: accuracy, f1_macro, rmse, mae, r2, bias…",
)
RolloutOpt = typer.Option(
    None, "--rollout", help="canary (an A/B canary, guarded) | direct (promote); default \\[retrain] rollout."
)
CurrentOpt = typer.Option(None, "--current", help="For --if drift: check this file instead of the captured inputs.")
AliasOpt = typer.Option("prod", "--alias", help="The alias the new version goes to.")
ReasonOpt = typer.Option("", "--reason", help="Why: kept in the history.")


def _options(
    cfg: Any,
    trigger: str,
    rollout: str | None,
    data: Path | None,
    include_feedback: bool,
    current: Path | None,
    alias: str,
    reason: str,
    files: tuple[str | None, bool | None, str | None] = (None, None, None),
) -> Any:
    from mlopsctl.pipeline.retrain import Options

    return Options(
        sep=files[0],
        header=files[1],
        columns=files[2],
        trigger=trigger,
        rollout=rollout or cfg.retrain.rollout,
        data=str(data) if data else None,
        include_feedback=include_feedback,
        current=str(current) if current else None,
        alias=alias,
        reason=reason,
    )


def _project_model(name: str | None) -> Any:
    from mlopsctl.errors import ValidationError

    cfg = common.require_config()
    if name and name != cfg.model_name:
        raise ValidationError(
            f"{name!r} is not this project's model ({cfg.model_name}): run it in that model's project",
            [("name", f"expected {cfg.model_name}")],
        )
    return cfg


def retrain(
    name: str | None = typer.Argument(None, help="Model name (default: the project's)."),
    data: Path | None = DataOpt,
    include_feedback: bool = FeedbackOpt,
    trigger: str = TriggerOpt,
    rollout: str | None = RolloutOpt,
    current: Path | None = CurrentOpt,
    alias: str = AliasOpt,
    reason: str = ReasonOpt,
    resume: bool = typer.Option(False, "--resume", help="Continue the model's last failed run from its failed step."),
    sep: str | None = common.SepOpt,
    header: bool | None = common.HeaderOpt,
    columns: str | None = common.ColumnsOpt,
    as_json: bool = common.JsonOpt,
) -> None:
    """Retrain: trigger → data → train → evaluate (fresh holdout) → gate → publish → rollout.

    Exit 0 when it rolled out, was skipped (the trigger did not fire) or awaits approval;
    1 when the gate stopped it or a step failed (production unchanged)."""
    from mlopsctl.errors import NotFound
    from mlopsctl.pipeline import runs
    from mlopsctl.pipeline.retrain import Pipeline

    cfg = _project_model(name)
    store = common.store(cfg)
    quiet = as_json
    c = common.err_console()

    def log(line: str) -> None:
        if not quiet:
            from rich.markup import escape

            c.print(escape(line))

    pipe = Pipeline(cfg, store, log=log)
    pipe.announce_end = False  # the outcome is printed below
    previous = None
    if resume:
        ended = [r for r in runs.list_runs(store, cfg.model_name) if r["status"] != "running"][:1]
        if not ended or ended[0]["status"] != "failed":
            last = ended[0]["status"] if ended else "none"
            raise NotFound("failed pipeline run", cfg.model_name, f"the last run is {last}: nothing to resume")
        previous = ended[0]
        log(f"resuming {previous['id']} at step {previous['error']['step']}")
    options = _options(cfg, trigger, rollout, data, include_feedback, current, alias, reason, (sep, header, columns))
    try:
        record = pipe.run(options, resume=previous)
    except Exception:
        if as_json and pipe.run_id:  # this run's record (another may have started in the same second)
            record = store.get_json_or(runs.run_key(cfg.model_name, pipe.run_id))
            if record is not None:
                common.emit_json(record)
        raise
    if as_json:
        common.emit_json(record)
        return
    common.console().print(f"[bold]{record['id']}[/bold]: {record['status']}: {record.get('summary', '')}")


EXIT_ENDED = 99  # `pipeline step`: the run ended (skipped, gated, awaiting approval): later steps should not run


@pipeline_app.command("step")
def step(
    step_name: str = typer.Argument(
        ..., metavar="STEP", help="trigger | data | train | evaluate | gate | publish | rollout."
    ),
    run: str = typer.Option(..., "--run", help="The run's id, the same for every step (e.g. the scheduler's run id)."),
    data: Path | None = DataOpt,
    include_feedback: bool = FeedbackOpt,
    trigger: str = TriggerOpt,
    rollout: str | None = RolloutOpt,
    current: Path | None = CurrentOpt,
    alias: str = AliasOpt,
    reason: str = ReasonOpt,
) -> None:
    """Run one step of a pipeline run, for schedulers with a task per step (Airflow).

    The options are read by the first step (trigger) and kept in the run. Exit 0 when the step
    is done (or was done before), 99 when the run ended here or earlier (skipped by its trigger,
    stopped by the gate, awaiting approval: later steps must not run), 1 when the step failed."""
    from mlopsctl.pipeline.retrain import Ended, Gated, Pipeline

    cfg = _project_model(None)
    log = common.err_console().print
    pipe = Pipeline(cfg, common.store(cfg), log=lambda line: log(line, markup=False))
    options = _options(cfg, trigger, rollout, data, include_feedback, current, alias, reason)
    try:
        record = pipe.step(step_name, run, options)
    except (Ended, Gated) as exc:
        common.err_console().print(str(exc), markup=False)
        raise typer.Exit(EXIT_ENDED) from None
    if record["status"] in ("skipped", "awaiting_approval"):
        raise typer.Exit(EXIT_ENDED)


@pipeline_app.command("finish")
def finish(
    run: str = typer.Argument(..., help="The id of a run another process began (POST /retrain does)."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Run the steps a begun pipeline run has not done yet, holding its lock (the server's POST /retrain
    starts this as a process of its own). Exit 0 when it rolled out, was skipped or awaits approval; 1 when
    the gate stopped it or a step failed."""
    from mlopsctl.errors import NotFound
    from mlopsctl.pipeline import runs
    from mlopsctl.pipeline.retrain import Pipeline

    cfg = _project_model(None)
    store = common.store(cfg)
    record = runs.get_run(store, cfg.model_name, runs.clean_run_id(run))
    if record["status"] != "running":
        raise NotFound("running pipeline run", f"{cfg.model_name}/{run}", f"it is {record['status']}")
    log = common.err_console().print
    pipe = Pipeline(cfg, store, log=lambda line: log(line, markup=False))
    lock = pipe._lock(record)
    lock.acquire()  # the same run: taken over from the process that began it
    import os

    record["process"] = {"pid": os.getpid(), "command": "pipeline finish"}
    runs.save(store, record)
    done = pipe.finish(record, lock)
    if as_json:
        common.emit_json(done)


@pipeline_app.command("schedule")
def schedule(
    cron: str = typer.Option(..., "--cron", help='When, as cron has it: "0 3 * * 1" (Mondays 03:00), "@daily"…'),
    trigger: str = typer.Option(
        "schedule",
        "--if",
        help="The retrain trigger: schedule | drift | performance | a metric (accuracy, rmse…) | always.",
    ),
    rollout: str | None = RolloutOpt,
    data: Path | None = DataOpt,
    include_feedback: bool = FeedbackOpt,
    install: bool = typer.Option(False, "--install", help="Put the line in the crontab (replacing this project's)."),
    remove: bool = typer.Option(False, "--remove", help="Take this project's line out of the crontab."),
    user: str | None = typer.Option(None, "--user", help="Whose crontab (root only; default: yours)."),
) -> None:
    """Print (or install) a crontab line that runs `mlopsctl retrain` in this project on a schedule."""
    from mlopsctl.errors import ValidationError
    from mlopsctl.pipeline import schedule as sched

    cfg = _project_model(None)
    opts = _options(cfg, trigger, rollout, data.resolve() if data else None, include_feedback, None, "prod", "")
    opts.check()
    if install and remove:
        raise ValidationError("--install and --remove: pick one", [("--remove", "with --install")])
    args = ["--if", opts.trigger, "--rollout", opts.rollout]
    args += ["--data", opts.data] if opts.data else []
    args += ["--include-feedback"] if opts.include_feedback else []
    line = sched.cron_line(cron, cfg.root, args)
    if not (install or remove):
        typer.echo(line)
        return
    removed = sched.install(None if remove else line, cfg.root, user)
    who = f"{user}'s" if user else "your"
    c = common.console()
    if remove:
        c.print(f"removed {removed} line(s) of this project from {who} crontab")
    else:
        c.print(f"installed in {who} crontab (replacing {removed}):", markup=False)
        c.print(line, markup=False, highlight=False)


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
    from mlopsctl.cli import pipeline_airflow

    pipeline_airflow.register(pipeline_app)
    app.command("retrain")(retrain)
    app.add_typer(pipeline_app, name="pipeline")
