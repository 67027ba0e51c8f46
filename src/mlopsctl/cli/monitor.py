"""`mlopsctl monitor rules|check|stack`: alert rules for Prometheus and evaluated here; a Prometheus + Grafana stack."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

import typer

from mlopsctl.cli import common
from mlopsctl.config import AlertsSection, Config, NotifySection, parse_duration
from mlopsctl.errors import ValidationError

monitor_app = typer.Typer(
    no_args_is_help=True,
    help="Alerts: Prometheus rules, `check` (evaluate and notify), a Prometheus + Grafana stack.",
)


def _alerts(cfg: Config | None) -> AlertsSection:
    """The project's alert rules (none without a project but the defaults); with capture off, no capture rule."""
    if cfg is None:
        return AlertsSection()
    if not cfg.monitoring.capture.enabled:
        return cfg.monitoring.alerts.model_copy(update={"capture_for": None})
    return cfg.monitoring.alerts


def _default_target(cfg: Config | None) -> str:
    host = cfg.serving.host if cfg else "127.0.0.1"
    port = cfg.serving.port if cfg else 8000
    return f"{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"


@monitor_app.command("rules")
def rules(
    fmt: str = typer.Option("prometheus", "--format", help="prometheus (the only format so far)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write to this file (default: standard output)."),
    model: list[str] = typer.Option(
        [], "--model", "-m", help="Models to alert on when their metrics are absent (default: the project's model)."
    ),
) -> None:
    """Prometheus alerting rules for \\[monitoring.alerts] (check them with `promtool check rules`)."""
    from mlopsctl.monitoring.alerts import RULES_HEADER, prometheus_rules, render_yaml

    if fmt != "prometheus":
        raise ValidationError(f"--format {fmt!r}: use prometheus", [("--format", "expected prometheus")])
    cfg = common.config(required=False)
    names = model or ([cfg.model_name] if cfg else [])
    text = render_yaml(prometheus_rules(_alerts(cfg), names), RULES_HEADER)
    if out is None:
        sys.stdout.write(text)
        return
    from mlopsctl.cli.deploy import output_file, writing

    with writing(output_file(out)):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    n = text.count("- alert:")
    common.err_console().print(f"wrote {n} alerting rule(s) to {out}")


def _print_check(result: dict[str, Any]) -> None:
    c = common.console()
    for s in result["sources"]:
        if not s["ok"]:
            c.print(f"[yellow]cannot scrape[/yellow] {s['url']}: {s['error']}")
    if not result["models"]:
        c.print("no model to check: no server answered, no --model was given and no project names one")
    rows = [
        [
            a["model"],
            a["alert"],
            a["state"] + (" (no data)" if a["no_data"] else ""),
            a["summary"],
            a["note"],
        ]
        for a in result["alerts"]
    ]
    common.table(f"alerts at {result['checked_at']}", ["model", "alert", "state", "now", "detail"], rows)
    for n in result["notifications"]:
        if n["ok"]:
            c.print(f"notified {n['notifier']}: {n['alert']} {n['model']} {n['status']}")
        else:
            c.print(f"[red]notify {n['notifier']} failed[/red] ({n['alert']} {n['model']} {n['status']}): {n['error']}")
    firing = result["firing"]
    c.print(f"{firing} alert(s) firing" if firing else "no alert firing")


@monitor_app.command("check")
def check(
    url: list[str] = typer.Option(
        [], "--url", "-u", help="A server to scrape (repeat for replicas; default from \\[serving] host and port)."
    ),
    model: list[str] = typer.Option(
        [], "--model", "-m", help="Only these models (default: the project's and every model the servers export)."
    ),
    every: str | None = typer.Option(None, "--every", help="Check again after this long (30s, 1m) until stopped."),
    once: bool = typer.Option(False, "--once", help="One check, then exit (the default)."),
    notify: bool = typer.Option(True, "--notify/--no-notify", help="Send notifications (default: yes)."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Evaluate the alert rules from the servers' /metrics and the store; notify state changes.

    A server that does not answer, a model without requests or captured predictions for the configured
    window, and a live metric past its bound all fire. Exit code 0: no alert firing; 1: at least one firing
    (or an error)."""
    from mlopsctl.monitoring.evaluate import check as run_check
    from mlopsctl.monitoring.notify import notifiers

    if once and every:
        raise ValidationError("--once and --every: choose one", [("--every", "not with --once")])
    interval = _duration("--every", every) if every else None
    for u in url:
        _check_url(u)
    if interval is not None and interval <= 0:
        raise ValidationError("--every: must be more than 0s", [("--every", "must be positive")])
    cfg = common.config(required=False)
    store = common.store(cfg)
    acfg = _alerts(cfg)
    urls = url or [f"http://{_default_target(cfg)}"]
    served = [cfg.model_name] if cfg else []
    # with --json, standard output is the JSON: the one-line notifier writes to standard error
    notify_cfg = cfg.monitoring.notify if cfg else NotifySection()
    targets = notifiers(notify_cfg, stream=sys.stderr if as_json else None) if notify else []
    timeout = notify_cfg.timeout_seconds
    try:
        while True:
            result = run_check(store, acfg, targets, urls=urls, models=model, served=served, timeout=timeout)
            if as_json:
                common.emit_json(result)
            else:
                _print_check(result)
            if interval is None:
                raise typer.Exit(1 if result["firing"] else 0)
            time.sleep(interval)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@monitor_app.command("stack")
def stack(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write into (created)."),
    target: list[str] = typer.Option(
        [], "--target", "-t", help="HOST:PORT of a server to scrape, repeatable (default from \\[serving])."
    ),
    model: list[str] = typer.Option([], "--model", "-m", help="Models for the absent-metrics alert."),
    alertmanager: list[str] = typer.Option([], "--alertmanager", help="HOST:PORT of an Alertmanager, repeatable."),
    prometheus_url: str = typer.Option(
        "http://localhost:9090", "--prometheus-url", help="Where Grafana reaches Prometheus."
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """Write prometheus.yml, its alerting rules, a Grafana dashboard and Grafana provisioning files."""
    from mlopsctl.cli.deploy import output_folder, writing
    from mlopsctl.monitoring.stack import write_stack

    for flag, values in (("--target", target), ("--alertmanager", alertmanager)):
        for value in values:
            _check_host_port(flag, value)
    _check_url(prometheus_url, "--prometheus-url")
    cfg = common.config(required=False)
    with writing(output_folder(out)):
        written = write_stack(
            out,
            _alerts(cfg),
            targets=target or [_default_target(cfg)],
            model_names=model or ([cfg.model_name] if cfg else []),
            alertmanagers=alertmanager,
            prometheus_url=prometheus_url,
        )
    if as_json:
        common.emit_json({"written": [str(p) for p in written]})
        return
    c = common.console()
    for p in written:
        c.print(f"wrote {p}")
    c.print(f"check with: promtool check config {out / 'prometheus.yml'}")


def _duration(flag: str, text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ValidationError(f"{flag}: {exc}", [(flag, str(exc))]) from None


def _check_url(url: str, flag: str = "--url") -> None:
    """A server's address: http(s)://HOST[:PORT][/path]."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 1) > 0
    except ValueError:  # a port that is not a number, or out of range
        ok = False
    if not ok:
        raise ValidationError(f"{flag} {url!r}: expected a server's address, e.g. http://127.0.0.1:8000", [(flag, url)])


_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")


def _check_host_port(flag: str, value: str) -> None:
    m = _HOST_PORT.fullmatch(value)
    if m is None or not 0 < int(m.group(2)) <= 65535:
        raise ValidationError(f"{flag} {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8000", [(flag, value)])


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.add_typer(monitor_app, name="monitor")
