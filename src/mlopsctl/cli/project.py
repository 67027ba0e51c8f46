"""`mlopsctl init`: write a project folder with mlops.toml and a README."""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
from pathlib import Path
from typing import Any

import typer

from mlopsctl.cli import common
from mlopsctl.config import CONFIG_FILE, FAMILIES_BY_TASK, render_config
from mlopsctl.errors import ConfigError, DataError, ValidationError

EXAMPLES = {
    "wine": ("load_wine", "classification", "target"),
    "breast_cancer": ("load_breast_cancer", "classification", "target"),
    "diabetes": ("load_diabetes", "regression", "target"),
}


def write_example(name: str, dest: Path) -> Path:
    """A dataset that ships with scikit-learn, written as the CSV a user would bring."""
    import sklearn.datasets as ds

    loader, _, _ = EXAMPLES[name]
    frame = getattr(ds, loader)(as_frame=True).frame
    dest.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(dest, index=False)
    return dest


def infer_task(df: Any, target: str, schema: Any) -> str:
    import pandas as pd

    if any(c.kind == "text" for c in schema.features):
        return "text-classification"
    y = df[target]
    if pd.api.types.is_float_dtype(y) and y.nunique() > 20:
        return "regression"
    if pd.api.types.is_integer_dtype(y) and y.nunique() > 20:
        return "regression"
    return "classification"


def init(
    name: str = typer.Argument(..., help="Project (and model) name; also the folder created."),
    data: Path | None = typer.Option(
        None, "--data", help="Your data file: CSV (separator detected), Parquet or JSON lines."
    ),
    target: str | None = typer.Option(None, "--target", help="The column to predict."),
    task: str | None = typer.Option(
        None,
        "--task",
        help="classification | regression | text-classification (default: inferred from the target).",
    ),
    model: str | None = typer.Option(None, "--model", help="Model family (default: the task's first)."),
    columns: str | None = typer.Option(
        None,
        "--columns",
        help="Comma-separated column names for a file without a header row, e.g. text,label.",
    ),
    example: str | None = typer.Option(
        None, "--example", help=f"Start from a dataset shipped with scikit-learn: {', '.join(EXAMPLES)}."
    ),
    directory: Path | None = typer.Option(None, "--dir", help="Where to create the folder (default: here)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing mlops.toml."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Create a project folder with mlops.toml (data, target, task, model, gate, serving, store)."""
    check_name(name)
    folder = (directory or Path.cwd()) / name
    cfg_path = folder / CONFIG_FILE
    if folder.exists() and not folder.is_dir():
        raise ConfigError(str(folder), "NAME", "is a file, not a folder: choose another name or --dir")
    if cfg_path.exists() and not force:
        raise ConfigError(str(cfg_path), "file", "already exists (use --force to overwrite)")
    if (data is None) == (example is None):
        raise ValidationError(
            "pass --data PATH (your file) or --example " + "|".join(EXAMPLES) + ", one of them",
            [("--data", "one of --data and --example")],
        )
    _check_choice("--example", example, list(EXAMPLES))
    _check_choice("--task", task, list(FAMILIES_BY_TASK))
    if task is not None:
        _check_choice("--model", model, list(FAMILIES_BY_TASK[task]), f" for task {task!r}")
    existed = folder.exists()
    try:
        result = _init(folder, name, data, target, task, model, columns, example)
    except BaseException:
        if not existed:  # leave nothing behind: the folder is ours, made by this call
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if as_json:
        common.emit_json(result)
        return
    from rich.markup import escape

    err = common.err_console()
    for problem in result["problems"]:
        err.print(f"[yellow]warning:[/yellow] {escape(problem)}")
    if result["problems"]:
        err.print("[yellow]warning:[/yellow] `mlopsctl train` refuses the data until these are fixed")
    common.console().print(
        f"Created [bold]{escape(str(folder))}[/bold]: {result['task']} of [bold]{escape(result['target'])}[/bold] "
        f"from {escape(result['data'])} ({result['rows']} rows, {result['features']} features), "
        f"model {result['model']}.\nNext: cd {escape(str(folder))} && mlopsctl train"
    )


def check_name(name: str) -> None:
    """A project name fit for the folder, the config and the model's name in the registry, or a ConfigError
    naming it, the rule and a name that would do."""
    from mlopsctl.config import ProjectSection

    pattern = next(m.pattern for m in ProjectSection.model_fields["name"].metadata if getattr(m, "pattern", None))
    if re.fullmatch(pattern, name):
        return
    shown = name if len(name) <= 40 else name[:40] + "…"
    raise ValidationError(
        f"project name {shown!r} ({len(name)} characters): use 1 to 64 letters, digits, '_', '.' or '-', "
        f"starting with a letter or digit, e.g. {suggest_name(name)!r}",
        [("NAME", f"expected {pattern}")],
    )


def suggest_name(name: str) -> str:
    """``name`` made a valid project name ("my project" → "my-project", "wïne" → "wine")."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", ascii_name).lstrip("-_.")[:64].rstrip("-_.")
    return slug or "my-project"


def _check_choice(flag: str, value: str | None, allowed: list[str], fits: str = "") -> None:
    if value is not None and value not in allowed:
        raise ValidationError(f"{flag} {value!r}{fits}: use one of {', '.join(allowed)}", [(flag, value)])


def _init(
    folder: Path,
    name: str,
    data: Path | None,
    target: str | None,
    task: str | None,
    model: str | None,
    columns: str | None,
    example: str | None,
) -> dict[str, Any]:
    """Write the project; every check that can fail runs before mlops.toml is written."""
    from mlopsctl.cli.data import training_view
    from mlopsctl.data.read import read_table
    from mlopsctl.data.schema import infer_schema
    from mlopsctl.data.validate import TrainingRules, headerless_hint, validate

    cfg_path = folder / CONFIG_FILE
    names = [c.strip() for c in columns.split(",")] if columns else None
    if example is not None:
        data = write_example(example, folder / "data" / f"{example}.csv")
        target = target or EXAMPLES[example][2]
        task = task or EXAMPLES[example][1]
    assert data is not None
    if not data.exists():
        raise DataError(str(data), "file not found")
    df = read_table(data, header=False if names else None, names=names)
    found = [str(c) for c in df.columns]
    if target is None:
        raise ValidationError(f"pass --target COLUMN; columns are: {', '.join(found)}", [("--target", "missing")])
    if target not in df.columns:
        raise DataError(str(data), f"not a column; columns are: {', '.join(found)}{headerless_hint(found)}", target)
    schema = infer_schema(df, target)
    task = task or infer_task(df, target, schema)
    _check_choice("--model", model, list(FAMILIES_BY_TASK[task]), f" for task {task!r}")
    text_cols = [c.name for c in schema.features if c.kind == "text"]
    data_ref = os.path.relpath(data.absolute(), folder.absolute())
    if data_ref.startswith(".." + os.sep + ".." + os.sep + ".."):
        data_ref = str(data.absolute())
    text = render_config(
        name=name,
        data_path=data_ref,
        target=target,
        task=task,
        model=model,
        text_columns=text_cols or None,
        columns=names,  # a file of the project with a first line naming them has a header (data.read)
    )
    cfg = _parsed(text, cfg_path, folder, data_ref, target, [*text_cols, *(names or [])])
    frame, _, _ = training_view(df, target, cfg, str(data))
    report = validate(frame, target=target, rules=TrainingRules.of(cfg))
    folder.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(text)
    (folder / "README.md").write_text(
        PROJECT_README.format(name=name, data=data_ref, target=target, task=task, model=cfg.training.model)
    )
    (folder / ".gitignore").write_text(".mlops/\n")
    return {
        "project": str(folder),
        "config": str(cfg_path),
        "data": data_ref,
        "target": target,
        "task": task,
        "model": cfg.training.model,
        "rows": len(df),
        "features": len(schema.features),
        "problems": [f"{data}: column {p.column!r}: {p.detail}" for p in report.errors],
    }


def _parsed(text: str, cfg_path: Path, folder: Path, data_ref: str, target: str, columns: list[str]) -> Any:
    """The config ``text`` loads as, checked before it is written: a path or column name that does not come
    back from it as it went in (a quote or backslash in it) is refused by name."""
    import tomllib

    from mlopsctl.config import parse_config

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        raw = {}
    d = raw.get("data", {})
    same = d.get("path") == data_ref and d.get("target") == target
    same = same and all(c in (*d.get("text_columns", ()), *d.get("columns", ())) for c in columns)
    if not same:
        odd = [repr(v) for v in (data_ref, target, *columns) if re.search(r"[\"'\\\x00-\x1f]", v)]
        raise ConfigError(
            str(cfg_path),
            "data",
            f"init cannot quote {', '.join(odd) or 'a value'} (a quote, backslash or control character) in "
            "mlops.toml: rename it, or write mlops.toml by hand (docs/config.md)",
        )
    return parse_config(raw, source=str(cfg_path), root=folder)


PROJECT_README = """# {name}

An mlopsctl project: {task} of `{target}` from `{data}` with a {model} model.

    mlopsctl data validate {data}     # check the data
    mlopsctl train                     # a run: metrics, lineage, stored in .mlops/
    mlopsctl publish                   # an immutable model version from the newest run
    mlopsctl approve {name} 1          # prod requires approval (see [registry] in mlops.toml)
    mlopsctl promote {name} 1 --alias prod
    mlopsctl serve                     # http://127.0.0.1:8000/docs
    mlopsctl rollback {name} --alias prod

Edit `mlops.toml` to change the model family, its parameters, the gate tolerance or the
serving port. The store (`.mlops/`) holds datasets, runs, versions and the history of
every promotion.
"""


def register(app: typer.Typer) -> None:
    app.command("init")(init)
