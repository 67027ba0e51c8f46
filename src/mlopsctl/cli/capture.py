"""`mlopsctl capture export`, `capture compact`, `mlopsctl feedback FILE` and `mlopsctl performance NAME`."""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from mlopsctl.bundle.task import is_regression
from mlopsctl.cli import common
from mlopsctl.errors import DataError

capture_app = typer.Typer(no_args_is_help=True, help="Predictions the servers recorded (capture/ in the store).")


def _since(text: str) -> float:
    from mlopsctl.config import parse_duration

    try:
        return time.time() - parse_duration(text)
    except ValueError as exc:
        raise DataError("--since", str(exc)) from None


def _name(name: str | None) -> str:
    if name:
        return name
    cfg = common.config(required=False)
    if cfg is None:
        raise DataError("NAME", "give a model name (or run inside a project)")
    return cfg.model_name


def _known(store: Any, model: str) -> None:
    """A NotFound listing the store's models when ``model`` is not one of them."""
    from mlopsctl import registry
    from mlopsctl.errors import NotFound

    names = registry.model_names(store)
    if model not in names:
        hint = f"models there: {', '.join(names)}" if names else "the store has no models yet"
        raise NotFound("model", f"{model} in store {store.uri}", hint)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


@capture_app.command("export")
def export(
    name: str | None = typer.Argument(None, help="Model name (default: the project's)."),
    since: str = typer.Option("24h", "--since", help="How far back: 30m, 24h, 7d…"),
    fmt: str = typer.Option("csv", "--format", "-f", help="csv | parquet | jsonl"),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output file (default: stdout; parquet needs one)."),
    version: int | None = typer.Option(None, "--version", help="Only this version's predictions."),
    errors: bool = typer.Option(False, "--errors/--no-errors", help="Include failed requests (status ≠ 200)."),
) -> None:
    """Export captured predictions: one row per predicted row, the inputs as columns."""
    from mlopsctl.monitoring.captured import iter_captures

    if fmt not in ("csv", "parquet", "jsonl"):
        raise DataError("--format", f"got {fmt!r}: use csv, parquet or jsonl")
    if fmt == "parquet" and out is None:
        raise DataError("--out", "parquet is binary: give --out FILE")
    if out is not None:
        from mlopsctl.cli.deploy import output_file

        output_file(out)
    start = _since(since)
    model = _name(name)
    store = common.store()
    _known(store, model)
    # an hour at a time: JSON lines are written as they are read; CSV and Parquet keep each hour as a frame
    hours = iter_captures(store, model, start, version=version, ok_only=not errors)
    n = 0
    if fmt == "jsonl":
        with _text_out(out) as write:
            for records in hours:
                write("".join(json.dumps(r, default=str) + "\n" for r in records))
                n += len(records)
    else:
        import pandas as pd

        frames = []
        for records in hours:
            frames.append(_frame(records))
            n += len(records)
        if len(frames) > 1:  # an hour's frame may type a column differently (only nulls there): infer again
            frame = pd.concat(frames, ignore_index=True).infer_objects()
        else:
            frame = frames[0] if frames else _frame([])
        if fmt == "csv":
            with _text_out(out) as write:
                write(frame.to_csv(index=False))
        else:
            assert out is not None
            with _writing(out):
                frame.to_parquet(out, index=False)
    if out is not None:
        common.err_console().print(f"{n} record(s) of {model} since {_iso(start)} → {out}")


_EXPORT_COLUMNS = [
    "request_id",
    "row",
    "time",
    "model",
    "version",
    "variant",
    "endpoint",
    "status",
    "latency_ms",
    "prediction",
    "confidence",
    "error",
]


def _frame(records: list[dict[str, Any]]) -> Any:
    """Capture records as an export frame: the metadata columns, then one column per feature."""
    import pandas as pd

    inputs = pd.DataFrame.from_records([r.get("inputs") or {} for r in records])
    meta = pd.DataFrame.from_records(
        [{k: v for k, v in r.items() if k != "inputs"} for r in records], columns=_EXPORT_COLUMNS
    )
    return pd.concat([meta, inputs], axis=1)


@contextlib.contextmanager
def _text_out(out: Path | None) -> Iterator[Any]:
    """A function writing text to ``out`` (stdout when None), piece by piece."""
    if out is None:
        yield sys.stdout.write
        return
    with _writing(out), out.open("w") as fh:
        yield fh.write


@capture_app.command("compact")
def compact(
    models: list[str] | None = typer.Option(
        None, "--model", "-m", metavar="NAME", help="Only this model (repeatable; default: every model captured)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be compacted; write and delete nothing."),
    keep_raw_hours: float | None = typer.Option(
        None, "--keep-raw-hours", min=0, help="Delete the JSON lines this long after the hour (\\[monitoring.capture])."
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """Compact closed hours of capture JSON lines into Parquet (one file per model and hour), verified,
    then delete the JSON lines past keep_raw_hours. Safe to run beside another compactor."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mlopsctl.config import CaptureSection
    from mlopsctl.monitoring.compaction import compact as run

    cfg = common.config(required=False)
    cs = cfg.monitoring.capture if cfg is not None else CaptureSection()
    keep = cs.keep_raw_hours if keep_raw_hours is None else keep_raw_hours
    store = common.store(cfg)
    for model in models or []:
        _known(store, model)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=common.err_console(),
        transient=True,
        disable=as_json,
    ) as bar:
        task = bar.add_task("compacting hours" if not dry_run else "reading hours", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = run(
            store,
            models or None,
            compact_after=cs.compact_after,
            keep_raw=keep * 3600,
            dry_run=dry_run,
            progress=progress,
        )
    out = summary.to_dict()
    if as_json:
        common.emit_json(out)
    else:
        common.console().print(_summary_line(out, dry_run, keep))
    if out["failed"]:
        from mlopsctl.errors import MlopsError

        first = out["failed"][0]
        raise MlopsError(
            f"{len(out['failed'])} hour(s) left as they were, the first: "
            f"{first['model']} {first['hour']}: {first['error']}"
        )
    _exit_now(0)


def _exit_now(code: int) -> None:
    """End the process once its output is flushed, skipping the interpreter's teardown: after a compaction
    under load, a native thread pool (pyarrow's, it seems) sometimes aborted there ("terminate called without
    an active exception", SIGABRT) with all the work done and verified, so cron and CI saw exit -6."""
    import os
    import sys

    if os.environ.get("PYTEST_CURRENT_TEST") and "pytest" in sys.modules:
        return  # in process (the CLI's tests call it through typer's runner): let the test go on
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@capture_app.command("schema")
def schema(
    name: str | None = typer.Argument(None, help="Model name (default: the project's)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | json | ddl (Athena's CREATE EXTERNAL TABLE)."),
    location: str | None = typer.Option(
        None,
        "--location",
        help="The table's S3 folder for ddl (default: the store's capture-parquet/NAME/ on S3, else a placeholder).",
    ),
    database: str = typer.Option("mlopsctl", "--database", help="The Glue/Athena database for ddl."),
    first_day: str | None = typer.Option(
        None, "--first-day", help="First day Athena projects, YYYY-MM-DD (default: the oldest compacted day, or today)."
    ),
) -> None:
    """The columns of the model's capture table (its compacted Parquet): name, Athena type, what each holds;
    derived from its versions' signatures. With --format ddl, Athena's CREATE EXTERNAL TABLE with partition
    projection on the day (docs/monitoring.md)."""
    from mlopsctl.monitoring import capture_schema as cs
    from mlopsctl.monitoring.captured import COMPACTED

    if fmt not in ("table", "json", "ddl"):
        raise DataError("--format", f"got {fmt!r}: use table, json or ddl")
    if first_day is not None and not _is_day(first_day):
        raise DataError("--first-day", f"got {first_day!r}: a day as YYYY-MM-DD")
    model = _name(name)
    store = common.store()
    _known(store, model)
    table = cs.schema_of(store, model)
    if fmt == "json":
        common.emit_json(table.to_dict())
        return
    if fmt == "ddl":
        if location is None:
            base = store.uri if store.uri.startswith("s3://") else "s3://BUCKET/PREFIX"
            location = f"{base.rstrip('/')}/{COMPACTED}{model}/"
        elif not location.startswith("s3://"):
            raise DataError("--location", f"got {location!r}: an S3 folder, s3://BUCKET/PREFIX/{COMPACTED}{model}/")
        if first_day is None:
            days = store.list_dirs(f"{COMPACTED}{model}/")
            first_day = days[0] if days else datetime.now(UTC).strftime("%Y-%m-%d")
        sys.stdout.write(cs.ddl(table, location, database=database, first_day=first_day))
        return
    rows = []
    for n, t, d in table.table_columns():
        if n == cs.INPUTS:  # a row per field: the struct's type is long
            rows.append([n, "struct", d])
            rows.extend([f"{n}.{f.name}", f.athena, f.doc] for f in table.inputs or ())
        else:
            rows.append([n, t, d])
    rows.append([cs.PARTITION[0], cs.PARTITION[1], cs.PARTITION[2] + " (partition)"])
    versions = ", ".join(f"v{v}" for v in table.versions) or "none published: inputs and prediction typed per hour"
    common.table(f"{cs.table_name(model)} (versions: {versions})", ["column", "type", "holds"], rows)


def _is_day(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return len(text) == 10


def _summary_line(out: dict[str, Any], dry_run: bool, keep: float) -> str:
    before, after = out["bytes_before"], out["bytes_after"]
    if dry_run:
        line = f"would compact {out['hours']} hour(s): {out['records']:,} records, {out['objects']:,} object(s), "
        line += f"{_size(before)} of JSON lines"
    else:
        ratio = f" ({before / after:.1f}x smaller)" if 0 < after < before else ""
        line = f"compacted {out['hours']} hour(s): {out['records']:,} records, {_size(before)} of JSON lines → "
        line += f"{_size(after)} of Parquet{ratio}; {out['deleted']:,} raw object(s) deleted"
        if out["hours_cleaned"]:
            line += f" in {out['hours_cleaned']} hour(s)"
        if out["kept"]:
            line += f", {out['kept']:,} kept until {keep:g} h after their hour (keep_raw_hours)"
    return line


def _size(n: float) -> str:
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if n < 1000 or unit == "GB":
            break
    return f"{n:.1f} {unit}"


@contextlib.contextmanager
def _writing(out: Path) -> Iterator[None]:
    from mlopsctl.cli.deploy import writing

    with writing(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        yield


def feedback(
    file: Path = typer.Argument(..., help="CSV, Parquet or JSON lines with request_id, label and optionally row."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model name (default: the project's)."),
    since: str = typer.Option("30d", "--since", help="How far back to look for the predictions."),
    label_column: str = typer.Option("label", "--label-column", help="The column holding the true value."),
    sep: str | None = common.SepOpt,
    header: bool | None = common.HeaderOpt,
    columns: str | None = typer.Option(
        None, "--columns", help="Names for a file without a header row, e.g. request_id,label."
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """Join ground truth to captured predictions. Unknown request ids are listed; exit 1 if any."""
    import secrets

    from mlopsctl.monitoring.captured import iter_captures
    from mlopsctl.monitoring.feedback import check_items, store_feedback

    # a feedback file is not the project's data: only the flags say how to read it
    frame = common.read_file(file, None, sep, header, columns, project=False)
    missing = [c for c in ("request_id", label_column) if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns))
        raise DataError(str(file), f"missing column(s) {', '.join(missing)}; columns are: {found}", missing[0])
    name = _name(model)
    store = common.store()
    _known(store, name)
    known: dict[str, tuple[str, int, int]] = {}
    for records in iter_captures(store, name, _since(since), ok_only=True):  # an hour at a time
        for r in records:
            rid = r["request_id"]
            prev = known.get(rid)
            known[rid] = (name, int(r["version"]), max(int(r.get("row", 0)) + 1, prev[2] if prev else 0))
    signatures: dict[int, tuple[str, list[Any] | None]] = {}

    def info(n: str, v: int) -> tuple[str, list[Any] | None]:
        if v not in signatures:
            from mlopsctl.bundle.version import version_at

            mv = version_at(store, n, v)
            signatures[v] = (mv.task, mv.classes)
        return signatures[v]

    items = []
    for rec in frame.to_dict(orient="records"):
        item: dict[str, Any] = {"request_id": None if _missing(rec["request_id"]) else str(rec["request_id"])}
        label = rec[label_column]
        item["label"] = None if _missing(label) else (label.item() if hasattr(label, "item") else label)
        if "row" in rec and not _missing(rec["row"]):
            item["row"] = int(rec["row"])
        items.append(item)
    result = check_items(items, known.get, info, source=f"file:{file.name}")
    key = store_feedback(store, result.accepted, f"cli-{secrets.token_hex(4)}", 1)

    def where(rej: dict[str, Any]) -> str:
        line = rej["index"] + 2 if file.suffix.lower() in (".csv", ".tsv", ".txt") else rej["index"] + 1
        return f"line {line}: {rej['field']}: {rej['problem']}"

    if as_json:
        common.emit_json({**result.to_dict(), "key": key})
    else:
        from rich.markup import escape

        c = common.console()
        c.print(f"{len(result.accepted)} label(s) stored for {name}" + (f" ({key})" if key else ""))
        for rej in result.rejected[:20]:
            c.print(escape(f"{file}: {where(rej)}"))
        if len(result.rejected) > 20:
            c.print(f"… and {len(result.rejected) - 20} more")
    if result.rejected:
        n, total = len(result.rejected), len(items)
        listed = " (listed above)" if n > 1 and not as_json else ""
        raise DataError(
            str(file), f"{n} of {total} label(s) rejected{listed}, the first at {where(result.rejected[0])}"
        )


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def performance(
    name: str | None = typer.Argument(None, help="Model name (default: the project's)."),
    since: str = typer.Option("7d", "--since", help="How far back: 24h, 7d…"),
    window: str = typer.Option("1h", "--window", help="Width of each time window: 15m, 1h, 1d…"),
    as_json: bool = common.JsonOpt,
) -> None:
    """Live metrics per version and time window, beside training metrics: accuracy, f1_macro, precision_macro and
    recall_macro for a classifier (per class with --json), rmse, mae, r2 and bias for a regression."""
    from mlopsctl.config import parse_duration
    from mlopsctl.monitoring.performance import performance as compute
    from mlopsctl.monitoring.taskmetrics import CLASSIFICATION, REGRESSION

    try:
        width = parse_duration(window)
    except ValueError as exc:
        raise DataError("--window", str(exc)) from None
    if width <= 0:
        raise DataError("--window", "must be longer than 0")
    start = _since(since)
    model = _name(name)
    store = common.store()
    _known(store, model)
    report = compute(store, model, since=start, window=width)
    if as_json:
        common.emit_json(report)
        return
    if not report["versions"]:
        common.console().print(f"no captured predictions of {model} in the last {since}")
        return
    for v in report["versions"]:
        keys = list(REGRESSION if is_regression(v["task"]) else CLASSIFICATION)  # per class: --json
        rows = [
            [_iso(w["start"]), w["predictions"], w["labelled"], *(_fmt(w.get(k)) for k in keys)] for w in v["windows"]
        ]
        rows.append(["all (live)", v["predictions"], v["labelled"], *(_fmt(v["live"].get(k)) for k in keys)])
        rows.append(["training holdout", "", "", *(_fmt(v["training"].get(k)) for k in keys)])
        common.table(f"{model} v{v['version']}", ["window (UTC)", "predictions", "labelled", *keys], rows)
    if report["unmatched_feedback"]:
        common.err_console().print(
            f"{report['unmatched_feedback']} label(s) match no captured prediction in this period"
        )


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:.4f}"


def register(app: typer.Typer) -> None:
    app.add_typer(capture_app, name="capture", help="Predictions the servers recorded (capture/ in the store).")
    app.command("feedback")(feedback)
    app.command("performance")(performance)
