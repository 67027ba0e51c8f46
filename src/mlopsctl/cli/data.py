"""`mlopsctl data validate|ingest|list`: check a file, snapshot it by content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlopsctl.cli import common

app = typer.Typer(no_args_is_help=True)


def _read(path: Path) -> tuple[Any, str | None, Any]:
    """The file as a frame, the project's target and config (if in a project)."""
    from mlopsctl.data.read import read_table

    cfg = common.config(required=False)
    if cfg is not None and path.absolute() == cfg.data_path().absolute():
        d = cfg.data
        df = read_table(path, sep=d.separator, header=d.header, names=d.columns)
    else:
        names = cfg.data.columns if cfg is not None and cfg.data.columns else None
        df = read_table(path, header=False if names else None, names=names)
    return df, (cfg.data.target if cfg is not None else None), cfg


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
    as_json: bool = common.JsonOpt,
) -> None:
    """Check columns, types, null rates, value ranges and categories; report every problem."""
    from mlopsctl.data.validate import validate

    df, cfg_target, _ = _read(path)
    target = target or (cfg_target if cfg_target in df.columns else None)
    schema = _reference(against)
    report = validate(df, schema, target=target)
    if as_json:
        common.emit_json({"path": str(path), "against": against or ("latest" if schema else None), **report.to_dict()})
    else:
        c = common.console()
        verdict = "[green]ok[/green]" if report.ok else "[red]failed[/red]"
        ref = " against the latest snapshot's schema" if schema is not None and against is None else ""
        c.print(
            f"{path}: {report.n_rows} rows × {report.n_columns} columns{ref}: {verdict} "
            f"({len(report.errors)} error(s), {len(report.warnings)} warning(s))"
        )
        if report.problems:
            common.table(
                None,
                ["severity", "column", "check", "rows", "detail"],
                [[p.severity, p.column, p.check, p.rows, p.detail] for p in report.problems],
            )
    if not report.ok:
        raise typer.Exit(1)


@app.command("ingest")
def ingest_cmd(
    path: Path = typer.Argument(..., help="CSV, Parquet or JSON lines file."),
    target: str | None = typer.Option(None, "--target", help="Target column (default: the project's)."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Validate, then store a content-addressed snapshot (sha256) with its schema and profile."""
    from mlopsctl.data.schema import infer_schema
    from mlopsctl.data.snapshot import ingest
    from mlopsctl.data.validate import validate

    df, cfg_target, cfg = _read(path)
    target = target or (cfg_target if cfg_target in df.columns else None)
    report = validate(df, target=target)
    if not report.ok:
        first = report.errors[0]
        from mlopsctl.errors import DataError

        raise DataError(
            str(path),
            f"{first.check}: {first.detail} ({len(report.errors)} error(s); see `mlopsctl data validate`)",
            column=first.column,
        )
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
