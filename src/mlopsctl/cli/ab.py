"""`mlopsctl ab …` and `mlopsctl shadow …`: A/B tests, canaries and shadow traffic.

An experiment lives in the store (``experiments/deployment.py``); running servers that follow
the control alias pick up every change within their reload interval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlopsctl.cli import common
from mlopsctl.errors import NotFound

app = typer.Typer(
    help="A/B tests and canaries: split an alias's traffic with a candidate, judge it, promote or pull back.",
    no_args_is_help=True,
)
shadow_app = typer.Typer(
    help="Shadow variants: a copy of every request, answered after the caller's, captured, never returned.",
    no_args_is_help=True,
)


def _cfg() -> Any:
    from mlopsctl.config import ExperimentsSection

    cfg = common.config(required=False)
    return cfg, (cfg.experiments if cfg else ExperimentsSection())


def _current_record(store: Any, name: str, experiment: str | None) -> dict[str, Any]:
    from mlopsctl.experiments import deployment as dep

    if experiment:
        rec = dep.experiment_record(store, name, experiment)
        if rec is None:
            known = ", ".join(r["id"] for r in dep.experiment_records(store, name)) or "none"
            raise NotFound("experiment", experiment, f"{name} has: {known}")
        return rec
    running = dep.running(store, name)
    if running is not None and running.experiment_id:
        rec = dep.experiment_record(store, name, running.experiment_id)
        if rec is not None:
            return rec
    past = sorted(dep.experiment_records(store, name), key=lambda r: r.get("started_ts", 0))
    if not past:
        raise NotFound("experiment", name, f"none yet: `mlopsctl ab start {name} --control prod --candidate VERSION`")
    return past[-1]


@app.command("start")
def start(
    name: str = typer.Argument(..., help="Model name."),
    control: str = typer.Option("prod", "--control", help="The alias whose traffic is split (the environment)."),
    candidate: str = typer.Option(..., "--candidate", help="The version (or alias) to try."),
    split: str = typer.Option("90/10", "--split", help="CONTROL/CANDIDATE percentages, adding up to 100."),
    sticky: str | None = typer.Option(
        None, "--sticky", help="A header (e.g. X-User-Id) whose value always gets the same variant."
    ),
    ramp: str | None = typer.Option(
        None,
        "--ramp",
        help="Progressive ramp, e.g. 5,25,50,100: the candidate starts at the first share and moves to the "
        "next each time the guard held for its window. Overrides --split. Default: [experiments] ramp.",
    ),
    reason: str = typer.Option("", "--reason", help="Why: kept in the history."),
    force: bool = typer.Option(
        False, "--force", help="Start even if the candidate takes other columns or types than the control (recorded)."
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """Start an A/B test (or a canary with --ramp) on NAME@CONTROL. A candidate whose signature differs from
    the control's (columns added or dropped, a column of another type) is refused without --force."""
    from mlopsctl.experiments import deployment as dep
    from mlopsctl.experiments.report import planned_rows

    cfg, ecfg = _cfg()
    store = common.store(cfg)
    d = dep.start(
        store,
        name,
        control=control,
        candidate=candidate,
        split=split,
        sticky=sticky,
        ramp=ramp if ramp is not None else (ecfg.ramp or None),
        reason=reason,
        plan=lambda v: planned_rows(store, name, v, ecfg),
        force=force,
    )
    if as_json:
        common.emit_json(d.to_dict())
        return
    e = d.experiment or {}
    c = common.console()
    c.print(
        f"started [bold]{e['id']}[/bold]: {name}@{control} (v{e['control_version']}) "
        f"{d.weight(dep.CONTROL):g} % / candidate v{e['candidate_version']} {d.weight(dep.CANDIDATE):g} %"
        + (f", sticky on {sticky}" if sticky else "")
        + (f", ramp {' → '.join(f'{x:g}' for x in e['ramp'])} %" if e.get("ramp") else "")
    )
    if e.get("planned_per_variant"):
        c.print(f"planned: {e['planned_per_variant']:,} labelled predictions per variant to detect {ecfg.min_effect:g}")
    c.print("servers following the alias switch within their reload interval; `mlopsctl ab status` to follow")


def _status_rows(report: dict[str, Any]) -> list[list[Any]]:
    from mlopsctl.monitoring.report import fmt_num, fmt_pct

    info = report["experiment_info"]
    weights = info.get("weights") or {}
    rows = []
    for v in report["variants"]:
        vname = v["name"]
        metric = v.get(report["metric"]) or {}
        shadow = v.get("role") == "shadow"
        rows.append(
            [
                vname,
                ",".join(f"v{x}" for x in v.get("versions", [])),
                "copy" if shadow else (f"{weights.get(vname, 0):g} %" if weights else ""),
                f"{v.get('requests', 0):,}",
                fmt_pct((v.get("error_rate") or {}).get("value")),
                fmt_num(v.get("p95_ms")),
                f"{v.get('labelled', 0):,}",
                fmt_num(metric.get("value"))
                + (f" [{fmt_num(metric.get('ci_low'))}, {fmt_num(metric.get('ci_high'))}]" if metric else ""),
            ]
        )
    return rows


@app.command("status")
def status(
    name: str = typer.Argument(..., help="Model name."),
    as_json: bool = common.JsonOpt,
) -> None:
    """The running experiment (or the last one): weights, guard, requests and labels per variant, verdict."""
    from mlopsctl.experiments.report import build_report

    cfg, ecfg = _cfg()
    store = common.store(cfg)
    rec = _current_record(store, name, None)
    report = build_report(store, name, rec, ecfg)
    info = report["experiment_info"]
    if as_json:
        common.emit_json({k: report[k] for k in ("experiment_info", "variants", "verdict", "reason", "sample_size")})
        return
    c = common.console()
    state = info["status"]
    c.print(
        f"[bold]{info['id']}[/bold] on {name}@{info['environment']}: [bold]{state}[/bold]; "
        f"control v{info['control']['version']}, candidate v{info['candidate']['version']}, "
        f"running {info['duration_seconds'] / 60:.1f} min" + (f", sticky on {info['sticky']}" if info["sticky"] else "")
    )
    if info["ramp"]:
        step = info.get("step")
        c.print(f"ramp {' → '.join(f'{x:g}' for x in info['ramp'])} %: at step {0 if step is None else step + 1}")
    for entry in info["log"]:
        if entry.get("action") in ("ab_pull_back", "ab_ramp"):
            c.print(f"  {entry['at']}  {entry['action']}: {entry.get('reason', '')}")
    columns = ["variant", "version", "traffic", "requests", "errors", "p95 ms", "labelled", report["metric"]]
    common.table(None, columns, _status_rows(report))
    c.print(f"verdict: [bold]{report['verdict'].replace('_', ' ')}[/bold]: {report['reason']}")


@app.command("report")
def report_cmd(
    name: str = typer.Argument(..., help="Model name."),
    experiment: str | None = typer.Option(None, "--experiment", help="An experiment id (default: the current one)."),
    html: Path | None = typer.Option(None, "--html", help="Also write the self-contained HTML report here."),
    as_json: bool = common.JsonOpt,
) -> None:
    """The analysis: per variant requests, errors, latency, accuracy/F1 or RMSE/MAE with confidence
    intervals; the significance test, the sample size still needed, and the verdict."""
    from mlopsctl.experiments.html import render_html
    from mlopsctl.experiments.report import build_report

    cfg, ecfg = _cfg()
    store = common.store(cfg)
    rec = _current_record(store, name, experiment)
    report = build_report(store, name, rec, ecfg)
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(report), encoding="utf-8")
    if as_json:
        common.emit_json(report)
        return
    c = common.console()
    info = report["experiment_info"]
    c.print(f"[bold]{info['id']}[/bold] ({info['status']}): {report['metric']}, alpha {report['alpha']:g}")
    columns = ["variant", "version", "traffic", "requests", "errors", "p95 ms", "labelled", report["metric"]]
    common.table(None, columns, _status_rows(report))
    test = report.get("test") or {}
    if test.get("p_value") is not None:
        c.print(
            f"{test.get('test')}: candidate − control = {test['diff']:+.4g} "
            f"[{test['ci_low']:+.4g}, {test['ci_high']:+.4g}] (an interval valid at every look), "
            f"p = {test['p_value']:.4g}; {test.get('clusters', 0):,} units by {test.get('cluster_by', 'request')}"
        )
    ss = report.get("sample_size") or {}
    if ss.get("required_per_variant"):
        c.print(
            f"sample size: {ss['required_per_variant']:,} labelled per variant, "
            f"{ss.get('still_needed', 0):,} still needed ({ss.get('basis')})"
        )
    c.print(f"verdict: [bold]{report['verdict'].replace('_', ' ')}[/bold]: {report['reason']}")
    if html is not None:
        c.print(f"HTML report: {html}")


@app.command("conclude")
def conclude(
    name: str = typer.Argument(..., help="Model name."),
    promote: bool = typer.Option(
        False, "--promote", help="Promote the candidate to the control alias (through the gate)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Promote even if the verdict is not 'candidate better' (recorded)."
    ),
    reason: str = typer.Option("", "--reason", help="Why: kept in the history."),
    as_json: bool = common.JsonOpt,
) -> None:
    """End the experiment with its final report; with --promote the candidate becomes the control alias."""
    from mlopsctl.errors import GateRefused
    from mlopsctl.experiments import deployment as dep
    from mlopsctl.experiments.report import build_report
    from mlopsctl.registry.promotion import MirrorFailed, RegistrySettings
    from mlopsctl.registry.promotion import promote as promote_version

    cfg, ecfg = _cfg()
    store = common.store(cfg)
    running = dep.running(store, name)
    if running is None or running.experiment is None:
        raise NotFound("experiment", name, "none is running")
    rec = dep.experiment_record(store, name, str(running.experiment["id"])) or {}
    report = build_report(store, name, rec, ecfg)
    move, unmirrored = None, None
    if promote:
        if report["verdict"] != "candidate_better" and not force:
            raise GateRefused(
                f"not promoting: the verdict is '{report['verdict'].replace('_', ' ')}' ({report['reason']}); "
                "pass --force to promote anyway"
            )
        try:
            move = promote_version(
                store,
                name,
                int(rec["candidate_version"]),
                str(rec["environment"]),
                settings=RegistrySettings.from_config(cfg),
                reason=reason or f"A/B winner of {rec['id']}: {report['reason']}",
                force=force,
            )
        except MirrorFailed as exc:  # the alias moved: end the experiment, then say what is left to do
            move, unmirrored = exc.move, exc
    event = move.event if move is not None else None
    outcome = "promoted" if promote else "concluded"
    done = dep.end(store, name, outcome=outcome, reason=reason or report["reason"], report=report)
    if unmirrored is not None:
        raise unmirrored
    if move is not None and move.mirrored is not None and not as_json:
        common.err_console().print(f"mirrored {move.model}@{move.alias} = v{move.version} to SSM {move.parameter}")
    if as_json:
        common.emit_json({"experiment": done, "promotion": event})
        return
    c = common.console()
    c.print(f"{rec['id']}: {outcome}; verdict [bold]{report['verdict'].replace('_', ' ')}[/bold]: {report['reason']}")
    if event is not None:
        c.print(f"{name}@{rec['environment']}: v{event['from']} → [bold]v{event['to']}[/bold]")
    c.print(f"{name}@{rec['environment']} now serves all traffic with one variant")


@app.command("stop")
def stop(
    name: str = typer.Argument(..., help="Model name."),
    reason: str = typer.Option("", "--reason", help="Why: kept in the history."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Abandon the running experiment: the control alias gets all traffic back at once, no verdict."""
    from mlopsctl.experiments import deployment as dep

    done = dep.end(common.store(), name, outcome="stopped", reason=reason)
    if as_json:
        common.emit_json(done)
        return
    common.console().print(f"{done.get('id')}: stopped; {name}@{done.get('environment')} serves all traffic again")


def _env_option() -> Any:
    return typer.Option(None, "--env", help="The alias whose traffic is copied (default: serving.alias, else prod).")


def _env(env: str | None) -> str:
    cfg = common.config(required=False)
    return env or (cfg.serving.alias if cfg else "prod")


@shadow_app.command("add")
def shadow_add(
    name: str = typer.Argument(..., help="Model name."),
    version: str = typer.Argument(..., help="The version to run as a shadow."),
    env: str | None = _env_option(),
    reason: str = typer.Option("", "--reason", help="Why: kept in the history."),
    force: bool = typer.Option(
        False, "--force", help="Add it even if it takes other columns or types than NAME@ENV's version (recorded)."
    ),
) -> None:
    """Copy the traffic of NAME@ENV to VERSION: answered after the caller's answer, captured, never returned.
    A version whose signature differs from NAME@ENV's is refused without --force."""
    from mlopsctl.experiments import deployment as dep

    environment = _env(env)
    d = dep.add_shadow(common.store(), name, environment, version, reason=reason, force=force)
    common.console().print(f"{name}@{environment}: shadows now {', '.join(s.name for s in d.shadows)}")


@shadow_app.command("remove")
def shadow_remove(
    name: str = typer.Argument(..., help="Model name."),
    version: str = typer.Argument(..., help="The shadow's version."),
    env: str | None = _env_option(),
    reason: str = typer.Option("", "--reason", help="Why: kept in the history."),
) -> None:
    """Stop copying traffic to VERSION."""
    from mlopsctl.experiments import deployment as dep

    environment = _env(env)
    d = dep.remove_shadow(common.store(), name, environment, version, reason=reason)
    common.console().print(f"{name}@{environment}: shadows now {', '.join(s.name for s in d.shadows) or 'none'}")


@shadow_app.command("list")
def shadow_list(name: str = typer.Argument(..., help="Model name."), as_json: bool = common.JsonOpt) -> None:
    """Every deployment of NAME: its variants and shadows."""
    from mlopsctl.experiments import deployment as dep

    docs = dep.deployments(common.store(), name)
    if as_json:
        common.emit_json([d.to_dict() for d in docs])
        return
    rows = [
        [
            d.environment,
            ", ".join(f"{v.name}={v.ref} {v.weight:g}%" for v in d.variants),
            ", ".join(s.name for s in d.shadows),
        ]
        for d in docs
    ]
    common.table(None, ["environment", "variants", "shadows"], rows)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="ab")
    root.add_typer(shadow_app, name="shadow")
