"""`mlopsctl data validate|ingest|list`: check a file, snapshot it by content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlopsctl.cli import common

app = typer.Typer(no_args_is_help=True)


def _read(path: Path, sep: str | None, header: bool | None, columns: str | None) -> tuple[Any, str | None, Any]:
    """The file as a frame (read as `train` reads files: the project's [data] settings and the flags), the
    project's target and config (if in a project)."""
    cfg = common.config(required=False)
    df = common.read_file(path, cfg, sep, header, columns)
    return df, (cfg.data.target if cfg is not None else None), cfg


def print_coerced(df: Any, path: Path) -> None:
    """A warning line for each column whose values that are not numbers were read as missing ([data] coerce)."""
    from rich.markup import escape

    for name, said in (df.attrs.get("coerced") or {}).items():
        common.err_console().print(
            f"[yellow]warning:[/yellow] {escape(str(path))}: column {escape(repr(name))}: {escape(said)}: read as "
            "missing (\\[data] coerce)"
        )


def training_view(df: Any, target: str | None, cfg: Any, source: str) -> tuple[Any, Any, list[str]]:
    """What `train` would see of ``df`` and the rules it would hold it to: (frame, rules, ignored columns).

    In a project with its target in the data: the configured features and the target, under the project's
    [training] and [data] settings. Outside a project, with a target: every column, under the settings
    `init` would write (task inferred from the target). Without a target: ``df``, no rules."""
    from mlopsctl.data.validate import TrainingRules

    if target is None or target not in df.columns:
        return df, None, []
    if cfg is not None:
        if target != cfg.data.target:
            return df, TrainingRules.of(cfg), []
        from mlopsctl.training.train import select_features

        features = select_features(df, cfg, source)
        ignored = [c for c in df.columns if c not in features and c != target]
        return df[[*features, target]], TrainingRules.of(cfg), ignored
    return df, default_rules(df, target), []


def default_rules(df: Any, target: str) -> Any:
    """The rules of the project `mlopsctl init` would write for this data and target."""
    from mlopsctl.cli.project import infer_task
    from mlopsctl.config import FAMILIES_BY_TASK, DataSection, TrainingSection
    from mlopsctl.data.schema import infer_schema
    from mlopsctl.data.validate import TrainingRules

    task = infer_task(df, target, infer_schema(df, target))
    fields, data_fields = TrainingSection.model_fields, DataSection.model_fields
    return TrainingRules(
        task=task,
        cv_folds=fields["cv_folds"].default,
        test_size=fields["test_size"].default,
        max_categories=data_fields["max_categories"].default,
        model=FAMILIES_BY_TASK[task][0],
    )


def _reference(against: str | None) -> Any:
    from mlopsctl.data.snapshot import list_snapshots, load_snapshot

    if against == "none":
        return None
    store = common.store()
    if against in (None, "latest"):
        snaps = list_snapshots(store)
        return snaps[0].schema if snaps else None
    return load_snapshot(store, against)[1].schema


@app.command("validate")
def validate_cmd(
    path: Path = typer.Argument(..., help="CSV, Parquet or JSON lines file."),
    against: str | None = typer.Option(
        None,
        "--against",
        help="Snapshot (sha256 prefix) whose schema the data "
        "must fit; 'latest' (default when the store has one) or 'none'.",
    ),
    target: str | None = typer.Option(None, "--target", help="Target column (default: the project's)."),
    sep: str | None = common.SepOpt,
    header: bool | None = common.HeaderOpt,
    columns: str | None = common.ColumnsOpt,
    as_json: bool = common.JsonOpt,
) -> None:
    """Check columns, types, null rates, value ranges and categories; with a target, also what `train` needs
    (two classes or more, rows per class for the holdout and CV folds, categorical levels up to
    \\[data] max_categories). Report every problem, one a line; exit 1 on errors."""
    from rich.markup import escape

    from mlopsctl.data.validate import validate

    df, cfg_target, cfg = _read(path, sep, header, columns)
    target = target or (cfg_target if cfg_target in df.columns else None)
    frame, rules, ignored = training_view(df, target, cfg, str(path))
    schema = _reference(against)
    if not as_json:
        print_coerced(df, path)
    report = validate(frame, schema, target=target, rules=rules)
    if as_json:
        where = against or ("latest" if schema else None)
        coerced = df.attrs.get("coerced") or {}
        common.emit_json(
            {"path": str(path), "against": where, "ignored_columns": ignored, "coerced": coerced, **report.to_dict()}
        )
    else:
        c = common.console()
        verdict = "[green]ok[/green]" if report.ok else "[red]failed[/red]"
        ref = " against the latest snapshot's schema" if schema is not None and against is None else ""
        c.print(
            f"{escape(str(path))}: {report.n_rows} rows × {report.n_columns} columns{ref}: {verdict} "
            f"({len(report.errors)} error(s), {len(report.warnings)} warning(s))"
        )
        if ignored:
            c.print(f"[dim]not checked: {escape(', '.join(ignored))} (train does not use them: \\[data])[/dim]")
        for p in report.problems:
            c.print(escape(str(p)))
    if not report.ok:
        raise report.refusal(str(path), "listed above" if not as_json else "in the JSON")


@app.command("ingest")
def ingest_cmd(
    path: Path = typer.Argument(..., help="CSV, Parquet or JSON lines file."),
    target: str | None = typer.Option(None, "--target", help="Target column (default: the project's)."),
    sep: str | None = common.SepOpt,
    header: bool | None = common.HeaderOpt,
    columns: str | None = common.ColumnsOpt,
    as_json: bool = common.JsonOpt,
) -> None:
    """Validate (as `data validate` does), then store a content-addressed snapshot (sha256) with its schema and
    profile."""
    from mlopsctl.data.schema import infer_schema
    from mlopsctl.data.snapshot import ingest
    from mlopsctl.data.validate import validate

    df, cfg_target, cfg = _read(path, sep, header, columns)
    target = target or (cfg_target if cfg_target in df.columns else None)
    frame, rules, _ = training_view(df, target, cfg, str(path))
    report = validate(frame, target=target, rules=rules)
    if not report.ok:
        raise report.refusal(str(path), f"`mlopsctl data validate {path}` lists")
    if not as_json:
        print_coerced(df, path)
    schema = infer_schema(
        df,
        target,
        text_columns=cfg.data.text_columns if cfg else None,
        categorical_columns=cfg.data.categorical_columns if cfg else None,
    )
    snap, created = ingest(common.store(cfg), df, source=str(path), target=target, schema=schema)
    if as_json:
        common.emit_json({"created": created, **snap.to_dict()})
        return
    state = "stored" if created else "already stored"
    common.console().print(
        f"{path}: {snap.n_rows} rows × {snap.n_columns} columns → dataset [bold]{snap.sha256[:12]}[/bold] ({state})"
    )


@app.command("list")
def list_cmd(as_json: bool = common.JsonOpt) -> None:
    """The stored dataset snapshots, newest first."""
    from mlopsctl.data.snapshot import list_snapshots

    snaps = list_snapshots(common.store())
    if as_json:
        common.emit_json([s.to_dict() for s in snaps])
        return
    common.table(
        "datasets",
        ["sha256", "rows", "columns", "target", "source", "created"],
        [[s.sha256[:12], s.n_rows, s.n_columns, s.target, s.source, s.created_at] for s in snaps],
    )
