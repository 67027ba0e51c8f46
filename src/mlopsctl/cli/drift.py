"""`mlopsctl drift NAME`: compare what a model sees now with the data its version was trained on.

Exit codes for schedulers: 0 no dataset drift, 1 dataset drift, 2 an error (bad input, no data).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from mlopsctl.cli import common
from mlopsctl.errors import DataError, MlopsError

EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2
TABLE_ROWS = 40  # the terminal table: every drifted feature, then the most severe others up to this many rows


def _current_from_file(path: Path, cfg: Any, options: tuple[Any, ...]) -> tuple[Any, dict[str, Any]]:
    """The file read as `train` reads one: the project's [data] settings, --sep, --header and --columns."""
    return common.read_file(path, cfg, *options), {"kind": "file", "path": str(path)}


def _current_from_captures(
    store: Any, name: str, version: int, since: str, features: list[str]
) -> tuple[Any, dict[str, Any]]:
    from mlopsctl.config import parse_duration
    from mlopsctl.monitoring.captured import captured_current

    try:
        t0 = time.time() - parse_duration(since)
    except ValueError as exc:
        raise DataError("--since", str(exc)) from None
    frame, counts = captured_current(store, name, version, features, since=t0)
    if len(frame) == 0:
        raise DataError(
            f"capture/{name}/",
            f"no predictions of {name} v{version} captured in the last {since}"
            + (f" ({counts['records']} records, none answered)" if counts["records"] else "")
            + "; serve it, or pass --current FILE",
        )
    source: dict[str, Any] = {
        "kind": "captured",
        "window": since,
        "since": t0,
        "since_iso": datetime.fromtimestamp(t0, UTC).isoformat(timespec="seconds"),
        "records": counts["records"],
        "description": f"capture/{name}/ since {since} ago",
    }
    if counts["sampled"] < counts["rows"]:  # more rows than a drift test holds: a uniform sample of them
        source |= {"rows": counts["rows"], "sampled": counts["sampled"]}
        source["description"] += f" (a uniform sample of {counts['sampled']:,} of {counts['rows']:,} rows)"
    return frame, source


def _predict(
    store: Any, name: str, version: int, frame: Any, reference: Any, trusted: tuple[str, ...], where: str
) -> Any:
    """The frame with the version's predictions in ``__prediction__`` (its model run locally)."""
    import numpy as np

    from mlopsctl.data.schema import category_key
    from mlopsctl.monitoring.drift import PREDICTION, DriftSettings, check_current
    from mlopsctl.serving.loaded import load

    checked = check_current(reference, frame, DriftSettings(min_rows=1), where)
    columns: dict[str, list[Any]] = {}
    for f in reference.features:
        values = checked[f["name"]]
        if f["kind"] == "numeric":
            floats = np.asarray(values, dtype=np.float64).tolist()
            columns[f["name"]] = [None if math.isnan(v) else v for v in floats]
        elif f["kind"] == "categorical":
            columns[f["name"]] = [None if v is None or v != v else category_key(v) for v in values.tolist()]
        else:
            columns[f["name"]] = [None if v is None or v != v else str(v) for v in values.tolist()]
    model = load(store, name, None, version=version, trusted_types=trusted)
    preds, _ = model.runner.predict(columns)
    return frame.assign(**{PREDICTION: preds})


def _settings(
    cfg: Any, p_value: float | None, share: float | None, correction: str | None, effect: float | None = None
) -> Any:
    from mlopsctl.monitoring.drift import DriftSettings

    settings = DriftSettings.from_section(cfg.monitoring.drift if cfg else None)
    overrides: dict[str, Any] = {"p_value": p_value, "share": share, "correction": correction, "effect": effect}
    try:
        return dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        raise DataError("drift settings", str(exc)) from None


def _print(report: Any, saved: str | None, html: Path | None) -> None:
    from rich.markup import escape

    from mlopsctl.monitoring.report import fmt_num, fmt_p

    rows = []
    listed = [f for i, f in enumerate(report.features) if f.drifted or i < TABLE_ROWS]
    for f in listed:
        verdict = "[red]drift[/red]" if f.drifted else "[yellow]PSI[/yellow]" if f.psi_drifted else "ok"
        if not f.drifted and any(t.test == "missing" and t.drifted for t in f.tests):
            verdict = "[red]missing[/red]"
        rows.append(
            [
                escape(f.name),
                f.kind,
                f.test,
                fmt_num(f.statistic),
                fmt_p(f.p_value_adjusted),
                fmt_num(f.effect, 3),
                fmt_num(f.psi, 3),
                verdict,
            ]
        )
    p = report.prediction
    if p is not None:
        verdict = "[red]drift[/red]" if p.drifted else "ok"
        rows.append(
            ["(prediction)", p.details.get("prediction_kind", ""), p.test, fmt_num(p.statistic), fmt_p(p.p_value)]
        )
        rows[-1] += [fmt_num(p.effect, 3), fmt_num(p.psi, 3), verdict]
    title = f"{report.model} v{report.version}" + (f" ({report.alias})" if report.alias else "")
    common.table(title, ["feature", "kind", "test", "statistic", "p-value", "effect", "PSI", "verdict"], rows)
    c = common.console()
    if len(listed) < len(report.features):
        c.print(
            f"[dim]… and {len(report.features) - len(listed):,} more features without drift, less severe "
            "(--json or --html lists every one)[/dim]"
        )
    src = report.source
    where = src.get("path") if src.get("kind") == "file" else f"captured in the last {src.get('window')}"
    verdict = (
        "[bold red]dataset drift[/bold red]" if report.dataset_drift else "[bold green]no dataset drift[/bold green]"
    )
    c.print(
        f"{verdict}: {report.n_drifted} of {report.n_features} features drifted "
        f"({report.drifted_share:.0%}, threshold {report.settings['share']:.0%}); "
        f"{report.current_rows:,} current rows ({escape(str(where))}) vs {report.reference_rows:,} training rows"
    )
    for note in report.notes:
        c.print(f"[dim]note: {escape(note)}[/dim]")
    if saved:
        c.print(f"[dim]saved {escape(saved)}[/dim]")
    if html:
        c.print(f"[dim]HTML report: {escape(str(html))}[/dim]")


def drift(
    name: str | None = typer.Argument(None, help="Model name (default: the project's)."),
    alias: str | None = typer.Option(
        None, "--alias", help="Compare with the version this alias points to (default: the project's serving alias)."
    ),
    version: str | None = typer.Option(None, "--version", help="Compare with this version instead of an alias."),
    since: str | None = typer.Option(
        None, "--since", help="Current data: the version's captured predictions from this far back (default 24h)."
    ),
    current: Path | None = typer.Option(
        None,
        "--current",
        help="Current data from a file instead (CSV, Parquet, JSON lines); a target column is ignored.",
    ),
    sep: str | None = common.SepOpt,
    header: bool | None = common.HeaderOpt,
    columns: str | None = common.ColumnsOpt,
    html: Path | None = typer.Option(None, "--html", help="Also write a self-contained HTML report to this file."),
    as_json: bool = common.JsonOpt,
    save: bool | None = typer.Option(
        None,
        "--save/--no-save",
        help="Keep the report in the store, where alerts and the dashboard read it (default: yes for captured data, "
        "no for a file).",
    ),
    predict: bool = typer.Option(
        True, "--predict/--no-predict", help="For a file without __prediction__: run the model to test its predictions."
    ),
    p_value: float | None = typer.Option(
        None, "--p-value", help="Override monitoring.drift.p_value (a feature drifts below it)."
    ),
    share: float | None = typer.Option(
        None, "--share", help="Override monitoring.drift.share (dataset drift at this share of features)."
    ),
    correction: str | None = typer.Option(
        None, "--correction", help="Override monitoring.drift.correction: holm (default) | bonferroni | fdr_bh | none."
    ),
    effect: float | None = typer.Option(
        None,
        "--effect",
        help="Override monitoring.drift.effect: a check drifts only with an effect this large (KS D, total "
        "variation: a share of rows; default 0.1).",
    ),
) -> None:
    """Test current inputs against the version's training baseline, feature by feature.

    Exit code 0: no dataset drift; 1: dataset drift; 2: an error (bad input, no data).
    """
    try:
        report, saved = _run(
            name,
            alias,
            version,
            since,
            current,
            html,
            save,
            predict,
            p_value,
            share,
            correction,
            effect,
            quiet=as_json,
            file_options=(sep, header, columns),
        )
    except (MlopsError, OSError) as exc:
        if common.STATE.debug:
            raise
        said = f"{exc.filename}: {exc.strerror}" if isinstance(exc, OSError) and exc.filename else str(exc)
        common.error_line(said)
        raise typer.Exit(EXIT_ERROR) from None
    if as_json:
        common.emit_json({**report.to_dict(), "saved": saved, "html": str(html) if html else None})
    else:
        _print(report, saved, html)
    raise typer.Exit(EXIT_DRIFT if report.dataset_drift else EXIT_OK)


def _run(
    name: str | None,
    alias: str | None,
    version: str | None,
    since: str | None,
    current: Path | None,
    html: Path | None,
    save: bool | None,
    predict: bool,
    p_value: float | None,
    share: float | None,
    correction: str | None,
    effect: float | None,
    *,
    quiet: bool,
    file_options: tuple[Any, ...] = (None, None, None),
) -> tuple[Any, str | None]:
    from mlopsctl import registry
    from mlopsctl.monitoring.drift import PREDICTION, detect, load_reference, save_report

    if since is not None and current is not None:
        raise DataError("--since/--current", "give one source of current data, not both")
    if alias is not None and version is not None:
        raise DataError("--alias/--version", "give an alias or a version, not both")
    if html is not None:
        from mlopsctl.cli.deploy import output_file

        output_file(html, "--html")
    cfg = common.config(required=False)
    if name is None:
        if cfg is None:
            raise DataError("NAME", "give a model name (or run inside a project)")
        name = cfg.model_name
    store = common.store(cfg)
    settings = _settings(cfg, p_value, share, correction, effect)
    if version is None:
        alias = alias or (cfg.serving.alias if cfg else "prod")
    v = registry.resolve(store, name, version if version is not None else alias)
    reference = load_reference(store, name, v)
    notes: list[str] = []
    if current is not None:
        frame, source = _current_from_file(current, cfg, file_options)
        if predict and PREDICTION not in frame.columns and reference.prediction[0] is not None:
            trusted = tuple(cfg.registry.trusted_types) if cfg else ()
            status = common.err_console().status(f"predicting {len(frame):,} rows with {name} v{v}…")
            with status if not quiet else contextlib.nullcontext():
                try:
                    frame = _predict(store, name, v, frame, reference, trusted, str(current))
                except DataError:
                    raise
                except (MlopsError, ValueError, RuntimeError) as exc:  # the model would not run: test the inputs
                    notes.append(f"prediction drift: the model could not predict the file ({exc})")
    else:
        features = [f["name"] for f in reference.features]
        frame, source = _current_from_captures(store, name, v, since or "24h", features)
    with _progress(quiet) as progress:
        task = progress.add_task(f"drift: testing {len(reference.features):,} features", total=None)
        report = detect(
            reference,
            frame,
            settings,
            source=source,
            alias=alias,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    report.notes += notes
    saved = None
    if save if save is not None else source["kind"] == "captured":
        saved = save_report(store, name, report)
    if html is not None:
        from mlopsctl.cli.deploy import writing
        from mlopsctl.monitoring.report import render_html

        with writing(html, "--html"):
            html.write_text(render_html(report.to_dict()), encoding="utf-8")
    return report, saved


def _progress(quiet: bool) -> Any:
    """A progress bar over the features on stderr; off with --json or when stderr is not a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = common.err_console()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=quiet or not err.is_terminal,
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("drift")(drift)
