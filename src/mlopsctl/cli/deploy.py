"""`mlopsctl deploy docker|aws|github`: files to run the service elsewhere, written for a person to read and review."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from mlopsctl.errors import ValidationError

deploy_app = typer.Typer(
    no_args_is_help=True,
    help="Write deployment files: a Docker stack, AWS as Terraform, GitHub Actions workflows.",
)


def output_folder(path: Path, flag: str = "--out") -> Path:
    """``path`` checked as a folder a command can write into (it or its nearest existing parent is a folder
    open for writing), or one line naming ``flag``, the path and why not. Nothing is created: a command that
    fails later leaves no folder behind. Shared by the commands that write files (deploy, monitor, capture,
    drift); the writes themselves go in `writing`."""
    if path.exists() and not path.is_dir():
        raise ValidationError(f"{flag} {path}: is a file, not a folder", [(flag, "expected a folder")])
    here = path.absolute()
    while not here.exists():
        here = here.parent
    if not here.is_dir():
        raise ValidationError(f"{flag} {path}: {here} is a file, not a folder", [(flag, "expected a folder")])
    if not os.access(here, os.W_OK | os.X_OK):
        raise ValidationError(
            f"{flag} {path}: {here} is not open for writing: choose a folder you can write to",
            [(flag, "permission denied")],
        )
    return path


def output_file(path: Path, flag: str = "--out") -> Path:
    """``path`` checked as a file a command can write (see `output_folder`), or one line naming ``flag``."""
    if path.is_dir():
        raise ValidationError(
            f"{flag} {path}: is a folder: give a file name in it, e.g. {path / 'out'}", [(flag, "expected a file")]
        )
    output_folder(path.parent, flag)
    return path


@contextmanager
def writing(path: Path, flag: str = "--out") -> Iterator[None]:
    """Writes under ``path`` the system refuses (a full disk, a read-only or virtual file system) end as one
    line naming ``flag``, the path and the reason; other errors pass through."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None or not _under(Path(os.fsdecode(exc.filename)), path):
            raise
        reason = exc.strerror or str(exc)
        where = f" ({exc.filename})" if os.fsdecode(exc.filename) != str(path) else ""
        raise ValidationError(
            f"{flag} {path}: cannot write there: {reason}{where}; choose a folder you can write to", [(flag, reason)]
        ) from None


def _under(p: Path, root: Path) -> bool:
    p, root = p.absolute(), root.absolute()
    return p == root or root in p.parents or p in root.parents


def register(app: typer.Typer) -> None:
    """Add the `deploy` group; each target's commands live in its own module."""
    from mlopsctl.cli import deploy_aws, deploy_docker, deploy_github

    deploy_docker.register(deploy_app)
    deploy_aws.register(deploy_app)
    deploy_github.register(deploy_app)
    app.add_typer(deploy_app, name="deploy")
