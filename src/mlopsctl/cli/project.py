"""`mlopsctl init`: write a project folder with mlops.toml and a README."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from mlopsctl.cli import common
from mlopsctl.config import CONFIG_FILE, FAMILIES_BY_TASK, load_config, render_config
from mlopsctl.errors import ConfigError, DataError

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
    from mlopsctl.data.read import read_table
    from mlopsctl.data.schema import infer_schema

    folder = (directory or Path.cwd()) / name
    cfg_path = folder / CONFIG_FILE
    if cfg_path.exists() and not force:
        raise ConfigError(str(cfg_path), "file", "already exists (use --force to overwrite)")
    if (data is None) == (example is None):
        raise ConfigError(CONFIG_FILE, "data", "pass --data PATH (your file) or --example " + "|".join(EXAMPLES))
    names = [c.strip() for c in columns.split(",")] if columns else None
    if example is not None:
        if example not in EXAMPLES:
            raise ConfigError(CONFIG_FILE, "example", f"unknown {example!r}: use one of {', '.join(EXAMPLES)}")
        data = write_example(example, folder / "data" / f"{example}.csv")
        target = target or EXAMPLES[example][2]
        task = task or EXAMPLES[example][1]
    assert data is not None
    if not data.exists():
        raise DataError(str(data), "file not found")
    df = read_table(data, header=False if names else None, names=names)
    if target is None:
        raise ConfigError(
            CONFIG_FILE,
            "data.target",
            f"pass --target COLUMN; columns are: {', '.join(map(str, df.columns))}",
        )
    if target not in df.columns:
        raise DataError(str(data), f"not a column; columns are: {', '.join(map(str, df.columns))}", column=target)
    schema = infer_schema(df, target)
    task = task or infer_task(df, target, schema)
    if task not in FAMILIES_BY_TASK:
        raise ConfigError(CONFIG_FILE, "training.task", f"got {task!r}: use one of {', '.join(FAMILIES_BY_TASK)}")
    text_cols = [c.name for c in schema.features if c.kind == "text"]
    folder.mkdir(parents=True, exist_ok=True)
    data_ref = os.path.relpath(data.absolute(), folder.absolute())
    if data_ref.startswith(".." + os.sep + ".." + os.sep + ".."):
        data_ref = str(data.absolute())
    cfg_path.write_text(
        render_config(
            name=name,
            data_path=data_ref,
            target=target,
            task=task,
            model=model,
            text_columns=text_cols or None,
            columns=names,
            header=False if names else None,
        )
    )
    cfg = load_config(cfg_path)  # what init writes must load
    (folder / "README.md").write_text(
        PROJECT_README.format(name=name, data=data_ref, target=target, task=task, model=cfg.training.model)
    )
    (folder / ".gitignore").write_text(".mlops/\n")
    result = {
        "project": str(folder),
        "config": str(cfg_path),
        "data": data_ref,
        "target": target,
        "task": task,
        "model": cfg.training.model,
        "rows": len(df),
        "features": len(schema.features),
    }
    if as_json:
        common.emit_json(result)
        return
    common.console().print(
        f"Created [bold]{folder}[/bold]: {task} of [bold]{target}[/bold] from {data_ref} "
        f"({len(df)} rows, {len(schema.features)} features), model {cfg.training.model}.\n"
        f"Next: cd {folder} && mlopsctl train"
    )


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
