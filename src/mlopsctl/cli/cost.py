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
    return "—" if x is None else f"${x:,.2f}"


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


def _print(report: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    c = common.console()
    p, i = report["prices"], report["inputs"]
    who = report["service"] or "the service"
    c.print(
        f"[bold]{escape(who)}[/bold] on AWS {i['region']} ({p['region_name']}): {i['replicas']} × {i['cpu']:g} vCPU / "
        f"{i['memory']:g} GB, {i['hours']:g} h a month. Prices as of {p['as_of']} in {p['currency']}"
        + (f", with {len(p['overridden'])} from {escape(p['files'][-1])}" if p["overridden"] else "")
    )
    for e in report["estimates"]:
        if not e["available"]:
            c.print(f"\n[bold]{e['title']}[/bold]: not offered ({escape(e['reason'])})")
            continue
        t = Table(title=f"{e['title']}: {_money(e['total'])} a month", title_justify="left", show_edge=False)
        t.add_column("item", header_style="bold")
        t.add_column("quantity", justify="right", header_style="bold")
        t.add_column("unit", header_style="bold")
        t.add_column("unit price", justify="right", header_style="bold")
        t.add_column("monthly", justify="right", header_style="bold")
        for line in e["lines"]:
            t.add_row(
                escape(line["item"]),
                _qty(line["quantity"]),
                escape(line["unit"]),
                _price(line["unit_price"]),
                _money(line["monthly"]),
            )
        t.add_row("[bold]subtotal[/bold]", "", "", "", f"[bold]{_money(e['total'])}[/bold]", end_section=True)
        c.print()
        c.print(t)
        c.print("  " + " · ".join(f"{group} {_money(v)}" for group, v in e["subtotals"].items()))
        for note in e["notes"]:
            c.print(f"  [dim]{escape(note)}[/dim]")
    observed = report["traffic"]["source"] != "assumed"
    cmp = Table(title="The same service, a month", title_justify="left", show_edge=False, header_style="bold")
    cmp.add_column("runs on")
    cmp.add_column("monthly", justify="right")
    if observed:
        cmp.add_column("per 1,000 predictions", justify="right")
    for e in report["comparison"]:
        mark = " (cheapest)" if e["name"] == report["cheapest"] else ""
        row = [e["title"] + mark, _money(e["total"]) if e["available"] else "not offered"]
        if observed:
            per = e["per_1000_predictions"]
            row.append("—" if per is None else f"${per:,.4f}")
        cmp.add_row(*row)
    c.print()
    c.print(cmp)
    c.print()
    c.print(escape(_traffic_line(report)))
    a = Table(title="Assumptions", title_justify="left", show_edge=False, header_style="bold")
    a.add_column("assumption", no_wrap=True)
    for col in ("value", "from", "change with"):
        a.add_column(col)
    for row in report["assumptions"]:
        value = row["value"]
        shown = _qty(value) if isinstance(value, float) else str(value)
        a.add_row(row["name"], escape(f"{shown} {row['unit']}".strip()), escape(str(row["why"])), escape(row["option"]))
    c.print()
    c.print(a)
    c.print(
        f"[dim]Price table: {escape(', '.join(p['files']))} (each section's source: --json). "
        "Free tiers, data transfer out and taxes are not counted: docs/cost.md.[/dim]"
    )


def cost(
    target: str = typer.Option("aws", "--target", help="Where to price it: aws (the only target so far)."),
    region: str | None = typer.Option(
        None, "--region", help="AWS region (default: \\[deploy] region, else us-east-1)."
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
    public_ips: int | None = typer.Option(
        None,
        "--public-ips",
        help="Public IPv4 addresses of the Fargate layout (default: 2 for the ALB + 1 per NAT gateway).",
        rich_help_panel=ASSUME,
    ),
    nat_gateways: int | None = typer.Option(
        None,
        "--nat-gateways",
        help="NAT gateways for the private subnets (default 1, as `deploy aws` writes; 0: tasks get public IPs).",
        rich_help_panel=ASSUME,
    ),
    insights_metrics: int | None = typer.Option(
        None,
        "--insights-metrics",
        help="Container Insights metrics of the Fargate service (default 38; 0 when it is off).",
        rich_help_panel=ASSUME,
    ),
    metrics: int | None = typer.Option(
        None, "--metrics", help="CloudWatch custom metrics of your own (default 0).", rich_help_panel=ASSUME
    ),
    alarms: int | None = typer.Option(
        None, "--alarms", help="CloudWatch alarms (default 3, as `deploy aws` writes).", rich_help_panel=ASSUME
    ),
    log_gb: float | None = typer.Option(
        None, "--log-gb", help="GB of logs a month (default 1).", rich_help_panel=ASSUME
    ),
    s3_gb: float | None = typer.Option(
        None, "--s3-gb", help="GB in the store besides capture (default 1).", rich_help_panel=ASSUME
    ),
    image_gb: float | None = typer.Option(
        None, "--image-gb", help="GB of images kept in ECR (default 1).", rich_help_panel=ASSUME
    ),
    request_kb: float | None = typer.Option(
        None, "--request-kb", help="KB per request (default 1).", rich_help_panel=ASSUME
    ),
    response_kb: float | None = typer.Option(
        None, "--response-kb", help="KB per response (default 0.5).", rich_help_panel=ASSUME
    ),
    url: list[str] = typer.Option(
        [],
        "--url",
        "-u",
        help="A running server to read traffic from (/metrics); repeat for replicas.",
        rich_help_panel=TRAFFIC,
    ),
    window: str | None = typer.Option(
        None,
        "--window",
        help="With --url: scrape twice this far apart (30s, 5m) for the current rate.",
        rich_help_panel=TRAFFIC,
    ),
    requests: float | None = typer.Option(
        None, "--requests", help="Requests a month (default: observed, else 1,000,000).", rich_help_panel=TRAFFIC
    ),
    duration_ms: float | None = typer.Option(
        None, "--duration-ms", help="Mean time per request (default: observed, else 50).", rich_help_panel=TRAFFIC
    ),
    since: str = typer.Option("7d", "--since", help="Capture period to count (30m, 24h, 7d).", rich_help_panel=TRAFFIC),
    model: list[str] = typer.Option(
        [],
        "--model",
        "-m",
        help="Models whose capture counts (default: the project's, else all).",
        rich_help_panel=TRAFFIC,
    ),
    capture: bool = typer.Option(
        True,
        "--capture/--no-capture",
        help="Read traffic from the store's capture when there is no --url.",
        rich_help_panel=TRAFFIC,
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """A monthly estimate, line by line: ECS Fargate + ALB beside SageMaker real-time, serverless and EKS.

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

    for opt, v in (("--requests", requests), ("--duration-ms", duration_ms)):
        if v is not None and v < 0:
            raise ValidationError(f"{opt} {v:g}: must be 0 or more", [(opt, "negative")])
    cfg = common.config(required=False)
    inputs = inputs_from(
        cfg,
        target=target,
        region=region,
        cpu=cpu,
        memory=memory,
        replicas=replicas,
        hours=hours,
        prices=str(prices) if prices else None,
        public_ips=public_ips,
        nat_gateways=nat_gateways,
        insights_metrics=insights_metrics,
        metrics=metrics,
        alarms=alarms,
        log_gb=log_gb,
        s3_gb=s3_gb,
        image_gb=image_gb,
        request_kb=request_kb,
        response_kb=response_kb,
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
