"""Placeholder: `mlopsctl pipeline airflow`, filled in by its own change."""

from __future__ import annotations

import typer


def register(group: typer.Typer) -> None:
    """Add `airflow` to the `pipeline` group."""
