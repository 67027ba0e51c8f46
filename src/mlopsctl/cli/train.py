"""`mlopsctl train` and `mlopsctl runs list|show`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlopsctl.cli import common

runs_app = typer.Typer(no_args_is_help=True, help="Training runs: params, data hash, commit, metrics.")


def _fmt(v: Any) -> str:
    return "" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


def train(
    tune: bool = typer.Option(False, "--tune", help="Search hyper-parameters first (\\[training.tune] budget)."),
    data: Path | None = typer.Option(None, "--data", help="Train on this file instead of the configured one."),
    sep: str | None = common.SepOpt,
    header: bool | None = common.HeaderOpt,
    columns: str | None = common.ColumnsOpt,
    as_json: bool = common.JsonOpt,
) -> None:
    """Train the project's model: validated snapshot, CV, holdout metrics; stored as a run."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mlopsctl.training.train import train_project

    cfg = common.require_config()
    store = common.store(cfg)
    frame = checked_frame(cfg, data, sep, header, columns)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=common.err_console(),
        transient=True,
        disable=as_json,
    ) as progress:
        tasks: dict[str, Any] = {}

        def report(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = progress.add_task(step, total=total)
            progress.update(tasks[step], completed=done, total=total)

        run = train_project(cfg, store, data_path=data, tune=tune, reporter=report, frame=frame)
    if as_json:
        common.emit_json(run)
        return
    m = run["metrics"]["holdout"]
    c = common.console()
    c.print(
        f"run [bold]{run['run_id']}[/bold]: {run['task']} {run['model']} on {run['data']['n_rows']} rows "
        f"(data {run['data']['sha256'][:12]}, commit {(run['git']['commit'] or 'none')[:10]}) "
        f"in {run['timings']['total_s']:.1f}s"
    )
    cv = run["metrics"]["cv"]
    rows = [[k, _fmt(v), _fmt(cv.get(k, {}).get("mean")) if isinstance(cv.get(k), dict) else ""] for k, v in m.items()]
    common.table(None, ["metric", "holdout", f"cv mean ({cv.get('folds', 0)} folds)"], rows)
    if run.get("tuning"):
        t = run["tuning"]
        c.print(
            f"tuned: {len(t['trials'])} trials in {t['seconds']:.1f}s (stopped by {t['stopped_by']}), "
            f"best {t['best_params']}"
        )
    c.print(f"Next: mlopsctl publish {run['run_id']}")


def checked_frame(
    cfg: Any, data: Path | None, sep: str | None = None, header: bool | None = None, columns: str | None = None
) -> tuple[Any, str]:
    """The training data as `train_project` reads it, refused before any fitting when it breaks a rule of
    `data validate` (the same checks, rules and messages: a line for each column holding values that are not
    numbers): no model is fitted on data CV cannot split, and no one-hot encoding of a column with too many
    levels is ever allocated."""
    from mlopsctl.cli.data import print_coerced
    from mlopsctl.data.read import FileOptions
    from mlopsctl.data.validate import TrainingRules, headerless_hint, validate
    from mlopsctl.errors import DataError
    from mlopsctl.training.train import load_training_data, select_features

    options = FileOptions.of(cfg).but(sep=sep, header=header, columns=columns)
    df, source = load_training_data(cfg, data, options)
    target = cfg.data.target
    if target not in df.columns:
        names = [str(c) for c in df.columns]
        found = f"target column not found; columns are: {', '.join(names)}{headerless_hint(names)}"
        raise DataError(source, found, column=target)
    features = select_features(df, cfg, source)
    report = validate(df[[*features, target]], target=target, rules=TrainingRules.of(cfg))
    if not report.ok:
        raise report.refusal(source)
    print_coerced(df, Path(source))
    return df, source


@runs_app.command("list")
def runs_list(as_json: bool = common.JsonOpt) -> None:
    """Training runs, newest first."""
    from mlopsctl.training.train import list_runs

    runs = list_runs(common.store())
    if as_json:
        common.emit_json(runs)
        return
    rows = []
    for r in runs:
        metric = r["primary_metric"]
        rows.append(
            [
                r["run_id"],
                r["model_name"],
                r["model"],
                r["data"]["sha256"][:12],
                (r["git"]["commit"] or "")[:10],
                f"{metric}={_fmt(r['metrics']['holdout'].get(metric))}",
                f"{r['timings']['total_s']:.1f}s",
                r["created_at"],
            ]
        )
    common.table("runs", ["run", "model", "family", "data", "commit", "primary metric", "took", "created"], rows)


@runs_app.command("show")
def runs_show(run_id: str = typer.Argument(None, help="Run id or prefix (default: newest).")) -> None:
    """One run, whole, as JSON."""
    from mlopsctl.training.train import get_run

    common.emit_json(get_run(common.store(), run_id))


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.add_typer(runs_app, name="runs")
