"""What every command shares: the project, the store, output as text or JSON, errors as one line."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from mlopsctl.config import Config, find_project, load_config
from mlopsctl.errors import ConfigError
from mlopsctl.store.base import Store, open_store


@dataclass
class State:
    store: str | None = None
    project: Path | None = None
    debug: bool = False


STATE = State()


def config(required: bool = True) -> Config | None:
    folder = STATE.project or find_project()
    if folder is None:
        if required:
            raise ConfigError(
                "mlops.toml",
                "file",
                "no project here or above: run `mlopsctl init NAME` or pass --project DIR",
            )
        return None
    cfg = load_config(folder)
    cfg.allow_project_code()
    return cfg


def require_config() -> Config:
    cfg = config(required=True)
    assert cfg is not None
    return cfg


def store_uri(cfg: Config | None = None) -> str:
    if STATE.store:
        return STATE.store
    if cfg is None:
        cfg = config(required=False)
    if cfg is not None:
        return cfg.store_uri()
    return os.environ.get("MLOPS_STORE") or str(Path(".mlops").absolute())


def store(cfg: Config | None = None) -> Store:
    return open_store(store_uri(cfg))


def console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(obj: Any) -> None:
    import orjson

    opts = orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    sys.stdout.write(orjson.dumps(obj, option=opts, default=str).decode() + "\n")


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.table import Table

    t = Table(title=title, show_edge=False, header_style="bold")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    console().print(t)


def split_ref(text: str) -> tuple[str, str | None]:
    """``NAME``, ``NAME@ALIAS`` or ``NAME@VERSION`` → (name, what follows the @: an alias, digits or None for
    the latest), by the one grammar of `mlopsctl.bundle.ref`; ``NAME@v3`` is refused with the fix."""
    from mlopsctl.bundle.ref import ModelRef

    ref = ModelRef.parse(text)
    return ref.name, ref.selector


JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts instead of text.")

# How every command that reads a data file reads it (`data.read.read_data`): the project's [data] settings,
# these over them.
SepOpt = typer.Option(
    None, "--sep", help="The file's separator, e.g. ';' or tab (default: \\[data] separator, else detected)."
)
HeaderOpt = typer.Option(
    None,
    "--header/--no-header",
    help="Whether the file's first line names its columns (default: \\[data] header, else detected).",
)
ColumnsOpt = typer.Option(
    None, "--columns", help="Names for a file without a header row, e.g. text,label (default: \\[data] columns)."
)


def read_file(
    path: Path,
    cfg: Config | None,
    sep: str | None = None,
    header: bool | None = None,
    columns: str | None = None,
    *,
    project: bool = True,
    text: bool = False,
) -> Any:
    """``path`` read by the one reader (`data.read.read_data`) with the project's [data] settings (unless
    ``project`` is False: a file of another kind, such as feedback) and a command's --sep, --header and
    --columns over them."""
    from mlopsctl.data.read import FileOptions, read_data

    options = (FileOptions.of(cfg) if project else FileOptions()).but(sep=sep, header=header, columns=columns)
    return read_data(path, options, text=text)


def error_line(message: str) -> None:
    from rich.markup import escape

    first = next((line.strip() for line in message.splitlines() if line.strip()), "") or "failed"
    err_console().print("[red]error:[/red] " + escape(first))
