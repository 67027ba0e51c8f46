"""`mlopsctl smoke URL`: smoke tests of a running service (health, ready, a prediction per model, a 4xx, metrics)."""

from __future__ import annotations

import sys

import typer

from mlopsctl.cli import common
from mlopsctl.errors import ValidationError


def smoke(
    url: str = typer.Argument(..., help="The service: http://127.0.0.1:8000, or the load balancer's URL."),
    model: list[str] = typer.Option(
        [], "--model", "-m", help="A model to predict with (repeatable; default: every model the service lists)."
    ),
    wait: str = typer.Option("0s", "--wait", help="How long /ready may take to answer 200 (30s, 5m)."),
    timeout: str = typer.Option("10s", "--timeout", help="How long each request may take."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Health, readiness, one prediction per served model from its signature, a bad request's 4xx, the metrics.

    One line per check; exit 1 with an `error:` line on standard error for each failed one."""
    from mlopsctl.config import parse_duration
    from mlopsctl.deploy.smoke import run_smoke

    if not url.startswith(("http://", "https://")):
        raise ValidationError(f"URL {url!r}: expected http://HOST:PORT or https://…", [("URL", "not an http URL")])

    def seconds(opt: str, text: str) -> float:
        try:
            return parse_duration(text)
        except ValueError as exc:
            raise ValidationError(f"{opt} {text}: {exc}", [(opt, str(exc))]) from None

    checks = run_smoke(url, models=model or None, timeout=seconds("--timeout", timeout), wait=seconds("--wait", wait))
    failed = [c for c in checks if not c.ok]
    if as_json:
        common.emit_json({"url": url, "ok": not failed, "checks": [c.to_json() for c in checks]})
    else:
        from rich.markup import escape

        c = common.console()
        width = max(len(x.name) for x in checks)
        for x in checks:
            mark = "[green]ok  [/green]" if x.ok else "[red]FAIL[/red]"
            c.print(f"{mark} {escape(x.name.ljust(width))}  {x.seconds * 1000:6.0f} ms  {escape(x.detail)}")
    for x in failed:
        common.error_line(f"smoke {x.name}: {x.detail}")
    if failed:
        sys.exit(1)


def register(app: typer.Typer) -> None:
    """Add `smoke` to the main app."""
    app.command("smoke")(smoke)
