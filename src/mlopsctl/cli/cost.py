"""`mlopsctl cost`: the monthly bill of the service on AWS, line by line, beside SageMaker and EKS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlopsctl.cli import common
from mlopsctl.errors import ValidationError

ASSUME = "Assumptions (printed with the estimate)"
TRAFFIC = "Traffic"


def _qty(x: float) -> str:
    if x == 0 or x >= 100:
        return f"{x:,.0f}"
    return f"{x:,.2f}".rstrip("0").rstrip(".") if x >= 1 else f"{x:.3g}"


def _price(p: float) -> str:
    whole, _, frac = f"{p:.7f}".partition(".")
    return f"${whole}.{frac.rstrip('0').ljust(2, '0')}"


def _money(x: float | None) -> str:
    if x is None:
        return "—"
    return f"-${-x:,.2f}" if x < -0.0049 else f"${abs(x) if x < 0 else x:,.2f}"


def _traffic_line(report: dict[str, Any]) -> str:
    t = report["traffic"]
    head = (
        f"{t['requests_per_month']:,.0f} requests, {t['predictions_per_month']:,.0f} predictions a month, "
        f"{t['mean_duration_s'] * 1000:.3g} ms each"
    )
    d = t["detail"]
    if t["source"] == "url":
        servers = ", ".join(
            f"{s['url']}: {s['requests']:,.0f} requests in {s['seconds']:,.0f} s ({s['basis']})" for s in d["servers"]
        )
        why = f"observed: {servers}"
    elif t["source"] == "capture":
        why = (
            f"from the capture of {', '.join(d['models'])}: {d['captured_requests']:,} requests in "
            f"{d['observed_seconds']:,.0f} s, sample rate {d['sample_rate']:g}"
        )
    elif t["source"] == "given":
        why = "given with --requests"
    else:
        why = "assumed: give --requests N, --url of a running server, or capture in the store"
    note = f"; {d['note']}" if d.get("note") else ""
    return f"Traffic: {head} ({why}{note})"


def _table(title: str, columns: list[str], right: tuple[str, ...] = (), no_wrap: tuple[str, ...] = ()) -> Any:
    """A table as the three of the estimate look: title on the left, bold headers, no outer edge."""
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
    for col in columns:
        t.add_column(col, justify="right" if col in right else "left", no_wrap=col in no_wrap)
    return t


def _estimate_table(e: dict[str, Any]) -> Any:
    from rich.markup import escape

    t = _table(
        f"{e['title']}: {_money(e['total'])} a month",
        ["item", "quantity", "unit", "unit price", "monthly"],
        right=("quantity", "unit price", "monthly"),
    )
    for line in e["lines"]:
        t.add_row(
            escape(line["item"]), _qty(line["quantity"]), escape(line["unit"]), _price(line["unit_price"]),
            _money(line["monthly"]),
        )  # fmt: skip
    t.add_row("[bold]subtotal[/bold]", "", "", "", f"[bold]{_money(e['total'])}[/bold]", end_section=True)
    return t


def _comparison_table(report: dict[str, Any]) -> Any:
    observed = report["traffic"]["source"] != "assumed"
    per = ("per 1,000 predictions",) if observed else ()
    t = _table("The same service, a month", ["runs on", "monthly", *per], right=("monthly", *per))
    for e in report["comparison"]:
        mark = " (cheapest)" if e["name"] == report["cheapest"] else ""
        row = [e["title"] + mark, _money(e["total"]) if e["available"] else "not offered"]
        if observed:
            row.append("—" if e["per_1000_predictions"] is None else f"${e['per_1000_predictions']:,.4f}")
        t.add_row(*row)
    return t


def _assumptions_table(report: dict[str, Any]) -> Any:
    from rich.markup import escape

    t = _table("Assumptions", ["assumption", "value", "from", "change with"], no_wrap=("assumption",))
    for row in report["assumptions"]:
        value = row["value"]
        shown = _qty(value) if isinstance(value, float) else str(value)
        t.add_row(row["name"], escape(f"{shown} {row['unit']}".strip()), escape(str(row["why"])), escape(row["option"]))
    return t


def _print(report: dict[str, Any]) -> None:
    from rich.markup import escape

    c = common.console()
    p, i = report["prices"], report["inputs"]
    who = report["service"] or "the service"
    c.print(
        f"[bold]{escape(who)}[/bold] on AWS {i['region']} ({p['region_name']}), {i['layout']} layout: "
        f"{i['replicas']} × {i['cpu']:g} vCPU / "
        f"{i['memory']:g} GB, {i['hours']:g} h a month{', free tier taken off' if i['free_tier'] else ''}. "
        f"Prices as of {p['as_of']} in {p['currency']}"
        + (f", with {len(p['overridden'])} from {escape(p['files'][-1])}" if p["overridden"] else "")
    )
    for e in report["estimates"]:
        if not e["available"]:
            c.print(f"\n[bold]{e['title']}[/bold]: not offered ({escape(e['reason'])})")
            continue
        c.print()
        c.print(_estimate_table(e))
        c.print("  " + " · ".join(f"{group} {_money(v)}" for group, v in e["subtotals"].items()))
        for note in e["notes"]:
            c.print(f"  [dim]{escape(note)}[/dim]")
        dated: dict[str, set[str]] = {}
        for line in e["lines"]:
            dated.setdefault(line["as_of"], set()).add(line["source"])
        for as_of, sources in sorted(dated.items()):
            c.print(f"  [dim]prices as of {as_of}: {escape(', '.join(sorted(sources)))}[/dim]")
    for table in (_comparison_table(report), escape(_traffic_line(report)), _assumptions_table(report)):
        c.print()
        c.print(table)
    c.print(
        f"[dim]Price table: {escape(', '.join(p['files']))} (each section's source: --json). "
        + ("Data transfer" if i["free_tier"] else "Free tiers (--free-tier), data transfer")
        + " out and taxes are not counted: docs/cost.md.[/dim]"
    )


def _assume(flag: str, help: str) -> Any:
    """An option for one assumption of the estimate (None: its stated default), in its own help panel."""
    return typer.Option(None, flag, help=help, rich_help_panel=ASSUME)


def _traffic(default: Any, *flags: str, help: str) -> Any:
    return typer.Option(default, *flags, help=help, rich_help_panel=TRAFFIC)


def cost(
    target: str = typer.Option("aws", "--target", help="Where to price it: aws (the only target so far)."),
    region: str | None = typer.Option(
        None, "--region", help="AWS region (default: \\[deploy] region, else us-east-1)."
    ),
    layout: str | None = typer.Option(
        None,
        "--layout",
        help="The layout `deploy aws` writes: minimal or private (default: \\[deploy] layout, else minimal).",
    ),
    cpu: float | None = typer.Option(None, "--cpu", help="vCPU per task (default: \\[deploy] cpu, else 0.25)."),
    memory: float | None = typer.Option(None, "--memory", help="GB per task (default: \\[deploy] memory, else 0.5)."),
    replicas: int | None = typer.Option(
        None, "--replicas", help="Tasks running (default: \\[deploy] min_replicas, else 1)."
    ),
    hours: float | None = typer.Option(None, "--hours", help="Hours the service runs in the month (default 720)."),
    prices: Path | None = typer.Option(
        None, "--prices", help="A TOML price table merged over the built-in one (docs/cost.md)."
    ),
    free_tier: bool = typer.Option(
        False,
        "--free-tier",
        help="Take off AWS's free tier: the always-free allowances and the first 12 months' (accounts opened "
        "before 15 July 2025), as if the service were the account's only use.",
    ),
    public_ips: int | None = _assume(
        "--public-ips",
        "Public IPv4 addresses of the Fargate layout (default: 2 for the ALB + 1 per NAT gateway, or per task).",
    ),
    nat_gateways: int | None = _assume(
        "--nat-gateways", "NAT gateways (default: the layout's, minimal 0, private 1; 0: tasks get public IPs)."
    ),
    insights_metrics: int | None = _assume(
        "--insights-metrics", "Container Insights metrics (default: the layout's, minimal 0, private 38)."
    ),
    metrics: int | None = _assume("--metrics", "CloudWatch custom metrics (default 6: the server's EMF metrics)."),
    alarms: int | None = _assume("--alarms", "CloudWatch alarm metrics (default: what `deploy aws` writes)."),
    log_gb: float | None = _assume("--log-gb", "GB of logs a month (default 1)."),
    s3_gb: float | None = _assume("--s3-gb", "GB in the store besides capture (default 1)."),
    image_gb: float | None = _assume("--image-gb", "GB of images kept in ECR (default 1)."),
    athena_tb: float | None = _assume(
        "--athena-tb", "TB Athena scans a month (default: a month of compacted capture read 30 times)."
    ),
    request_kb: float | None = _assume("--request-kb", "KB per request (default 1)."),
    response_kb: float | None = _assume("--response-kb", "KB per response (default 0.5)."),
    retrain_runs: float | None = _assume(
        "--retrain-runs", "Scheduled retrainings a month (default: from \\[deploy] retrain_schedule, else 0)."
    ),
    retrain_minutes: float | None = _assume("--retrain-minutes", "Minutes one retraining runs (default 15)."),
    url: list[str] = _traffic(
        [], "--url", "-u", help="A running server to read traffic from (/metrics); repeat for replicas."
    ),
    window: str | None = _traffic(
        None, "--window", help="With --url: scrape twice this far apart (30s, 5m) for the current rate."
    ),
    requests: float | None = _traffic(None, "--requests", help="Requests a month (default: observed, else 1,000,000)."),
    duration_ms: float | None = _traffic(
        None, "--duration-ms", help="Mean time per request (default: observed, else 50)."
    ),
    since: str = _traffic("7d", "--since", help="Capture period to count (30m, 24h, 7d)."),
    model: list[str] = _traffic(
        [], "--model", "-m", help="Models whose capture counts (default: the project's, else all)."
    ),
    capture: bool = _traffic(
        True, "--capture/--no-capture", help="Read traffic from the store's capture when there is no --url."
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """A monthly estimate, line by line: what `deploy aws` writes (ECS Fargate + ALB, the layout's network,
    CloudWatch, the store) beside SageMaker real-time, serverless and EKS.

    Prices come from a table kept as data (region, date and sources shown); every assumption is printed.
    With --url or the store's capture it adds the cost per 1,000 predictions from observed traffic."""
    from functools import partial

    from mlopsctl.config import parse_duration
    from mlopsctl.deploy.cost import estimate, inputs_from
    from mlopsctl.deploy.cost_traffic import traffic_for

    def seconds(opt: str, text: str) -> float:
        try:
            return parse_duration(text)
        except ValueError as exc:
            raise ValidationError(f"{opt} {text}: {exc}", [(opt, str(exc))]) from None

    cfg = common.config(required=False)
    inputs = inputs_from(
        cfg,
        target=target,
        region=region,
        layout=layout,
        cpu=cpu,
        memory=memory,
        replicas=replicas,
        hours=hours,
        prices=str(prices) if prices else None,
        free_tier=free_tier or None,
        public_ips=public_ips,
        nat_gateways=nat_gateways,
        insights_metrics=insights_metrics,
        metrics=metrics,
        alarms=alarms,
        log_gb=log_gb,
        s3_gb=s3_gb,
        image_gb=image_gb,
        athena_tb=athena_tb,
        request_kb=request_kb,
        response_kb=response_kb,
        retrain_runs=retrain_runs,
        retrain_minutes=retrain_minutes,
    )
    traffic = partial(
        traffic_for,
        urls=url,
        window=seconds("--window", window) if window is not None else None,
        requests_per_month=requests,
        duration_s=duration_ms / 1000 if duration_ms is not None else None,
        store_uri=common.store_uri(cfg) if capture else None,
        models=model or ([cfg.model_name] if cfg else None),
        since_seconds=seconds("--since", since),
        sample_rate=inputs.capture_sample_rate,
    )
    report = estimate(inputs, traffic, service=cfg.service_name if cfg else None)
    if as_json:
        common.emit_json(report)
    else:
        _print(report)


def register(app: typer.Typer) -> None:
    """Add `cost` to the main app."""
    app.command("cost")(cost)
