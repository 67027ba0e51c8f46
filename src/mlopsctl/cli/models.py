"""`mlopsctl publish|promote|rollback|approve|reject` and `mlopsctl models list|show|history|verify`."""

from __future__ import annotations

from typing import Any

import typer

from mlopsctl.cli import common

models_app = typer.Typer(no_args_is_help=True, help="The registry: versions, aliases, history.")


def _settings(cfg: Any) -> Any:
    from mlopsctl.registry.promotion import RegistrySettings

    return RegistrySettings.from_config(cfg)


def publish(
    run_id: str | None = typer.Argument(None, help="Run id or prefix (default: the newest run)."),
    name: str | None = typer.Option(None, "--name", help="Model name (default: the run's)."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Write an immutable model version from a run: skops model, checked ONNX export, signature,
    baseline, metrics and a manifest of sha256s."""
    from mlopsctl.registry.publishing import publish_run
    from mlopsctl.training.runs import get_run

    cfg = common.config(required=False)
    store = common.store(cfg)
    run = get_run(store, run_id)
    with common.err_console().status(f"exporting run {run['run_id']} to ONNX and checking it on the holdout…"):
        done = publish_run(store, run, name=name, trusted_types=_settings(cfg).trusted_types)
    if as_json:
        common.emit_json(done.to_dict())
        return
    common.console().print(done.describe())


def _said_mirror(move: Any, quiet: bool) -> None:
    if move.mirrored is not None and not quiet:
        common.err_console().print(f"mirrored {move.model}@{move.alias} = v{move.version} to SSM {move.parameter}")


def promote(
    name: str = typer.Argument(..., help="Model name."),
    version: str = typer.Argument(..., help="Version number (or an alias to copy from)."),
    alias: str = typer.Option("prod", "--alias", help="The alias to move."),
    reason: str = typer.Option("", "--reason", help="Why: kept in the history."),
    force: bool = typer.Option(False, "--force", help="Override the gate or the approval rule (recorded)."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Move an alias to a version through the evaluation gate (compare-and-swap, recorded)."""
    from mlopsctl import registry
    from mlopsctl.registry.promotion import promote as promote_version

    cfg = common.config(required=False)
    store = common.store(cfg)
    v = registry.resolve(store, name, version)
    move = promote_version(store, name, v, alias, settings=_settings(cfg), reason=reason, force=force)
    _said_mirror(move, as_json)
    if as_json:
        common.emit_json(move.to_dict())
        return
    c = common.console()
    event = move.event
    if event is None:
        c.print(f"{name}@{alias} already points to v{v}")
        return
    c.print(f"{name}@{alias}: v{event['from'] or '-'} → [bold]v{v}[/bold]  ({event['gate']['message']})")
    if event["forced"]:
        c.print(f"[yellow]forced[/yellow] past: {'; '.join(event['overridden'])}")


def rollback(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Option("prod", "--alias", help="The alias to move back."),
    reason: str = typer.Option("", "--reason", help="Why: kept in the history."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Point an alias back at the version it pointed to before its last promotion."""
    from mlopsctl.registry.promotion import rollback as rollback_alias

    cfg = common.config(required=False)
    store = common.store(cfg)
    move = rollback_alias(store, name, alias, settings=_settings(cfg), reason=reason)
    _said_mirror(move, as_json)
    event = move.event or {}
    if as_json:
        common.emit_json(event | {"ssm": move.mirrored})
        return
    common.console().print(f"{name}@{alias}: v{event['from']} → [bold]v{event['to']}[/bold] (rolled back)")


def _mark(state: str) -> Any:
    def command(
        name: str = typer.Argument(..., help="Model name."),
        version: str = typer.Argument(..., help="Version number."),
        reason: str = typer.Option("", "--reason", help="Why: kept in the history."),
        as_json: bool = common.JsonOpt,
    ) -> None:
        from mlopsctl import registry

        store = common.store()
        v = registry.resolve(store, name, version)
        doc = registry.set_approval(store, name, v, state, reason)
        if as_json:
            common.emit_json({"model": name, "version": v, **doc})
        else:
            common.console().print(f"{name} v{v}: {state}")

    command.__doc__ = f"Mark a version {state} (config can require approval before an alias)."
    return command


@models_app.command("list")
def models_list(as_json: bool = common.JsonOpt) -> None:
    """Every model: versions, latest, aliases."""
    from mlopsctl import registry

    store = common.store()
    out: list[dict[str, Any]] = []
    for name in registry.model_names(store):
        nums = registry.version_numbers(store, name)
        al = {a: s["version"] for a, s in registry.aliases(store, name).items()}
        out.append({"name": name, "versions": len(nums), "latest": nums[-1] if nums else None, "aliases": al})
    if as_json:
        common.emit_json(out)
        return
    common.table(
        "models",
        ["model", "versions", "latest", "aliases"],
        [
            [
                m["name"],
                m["versions"],
                m["latest"],
                ", ".join(f"{a}→v{v}" for a, v in sorted(m["aliases"].items())),
            ]
            for m in out
        ],
    )


@models_app.command("show")
def models_show(
    ref: str = typer.Argument(..., help="NAME, NAME@VERSION or NAME@ALIAS."), as_json: bool = common.JsonOpt
) -> None:
    """A version: manifest, metrics, lineage, export check, approval and the aliases on it."""
    from mlopsctl import registry

    store = common.store()
    name, r = common.split_ref(ref)
    v = registry.resolve(store, name, r)
    man = registry.manifest(store, name, v)
    al = sorted(a for a, s in registry.aliases(store, name).items() if s["version"] == v)
    info = {**man, "aliases": al, "approval": registry.approval(store, name, v)}
    if as_json:
        common.emit_json(info)
        return
    c = common.console()
    c.print(f"[bold]{name} v{v}[/bold]  aliases: {', '.join(al) or '-'}  approval: {info['approval']['state']}")
    c.print(
        f"run {man.get('run_id')}  task {man.get('task')}  family {man.get('family')}  "
        f"data {str(man.get('data_sha256'))[:12]}  commit {str(man.get('git_commit') or '-')[:10]}"
    )
    c.print(f"created {man['created_at']} by {man['created_by']}  runtime {man.get('runtime')}")
    common.table(None, ["metric", "holdout"], [[k, v2] for k, v2 in (man.get("metrics") or {}).items()])
    common.table(
        None,
        ["file", "sha256", "bytes"],
        [[f, e["sha256"][:16], e["size"]] for f, e in sorted(man["files"].items())],
    )


@models_app.command("history")
def models_history(
    name: str = typer.Argument(..., help="Model name."),
    alias: str | None = typer.Option(None, "--alias", help="Only moves of this alias."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Every publish, promotion, rollback and approval, oldest first."""
    from mlopsctl import registry

    evs = registry.events(common.store(), name, alias=alias)
    if as_json:
        common.emit_json(evs)
        return

    def what(e: dict[str, Any]) -> str:
        if e["action"] in ("promote", "rollback"):
            return f"{e['alias']}: v{e['from'] or '-'} → v{e['to']}" + (" (forced)" if e.get("forced") else "")
        return f"v{e.get('version')}"

    common.table(
        f"history of {name}",
        ["when", "action", "what", "who", "reason"],
        [[e["at"], e["action"], what(e), e["actor"], e.get("reason", "")] for e in evs],
    )


@models_app.command("mirror")
def models_mirror(
    name: str = typer.Argument(..., help="Model name."),
    alias: list[str] = typer.Option([], "--alias", help="Alias to mirror (default: \\[registry] ssm_aliases)."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Write the SSM parameters of \\[registry] ssm_parameter from the aliases in the store (idempotent)."""
    from mlopsctl.errors import ValidationError
    from mlopsctl.registry.mirror import from_config

    cfg = common.config(required=False)
    mirror = from_config(cfg)
    if mirror is None:
        raise ValidationError(
            'no SSM mirror is configured: set [registry] ssm_parameter, e.g. "/mlopsctl/{model}/{alias}"',
            [("registry.ssm_parameter", "empty")],
        )
    store = common.store(cfg)
    wanted = alias or mirror.aliases
    mirror.aliases = list(dict.fromkeys([*mirror.aliases, *wanted]))
    out = {a: mirror.sync(store, name, a) for a in wanted}
    if as_json:
        common.emit_json(out)
        return
    c = common.console()
    for a, value in out.items():
        where = mirror.parameter(name, a)
        c.print(f"{where}: " + (f"v{value['version']}" if value else f"{name}@{a} does not exist; nothing written"))


@models_app.command("verify")
def models_verify(ref: str = typer.Argument(..., help="NAME[@VERSION|@ALIAS].")) -> None:
    """Check every file of a version against its manifest's sha256."""
    from mlopsctl import registry

    store = common.store()
    name, r = common.split_ref(ref)
    v = registry.resolve(store, name, r)
    checked = registry.verify(store, name, v)
    common.console().print(f"{name} v{v}: {len(checked)} files match their sha256")


def register(app: typer.Typer) -> None:
    app.command("publish")(publish)
    app.command("promote")(promote)
    app.command("rollback")(rollback)
    app.command("approve")(_mark("approved"))
    app.command("reject")(_mark("rejected"))
    app.add_typer(models_app, name="models")
