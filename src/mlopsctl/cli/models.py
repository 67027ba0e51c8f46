"""`mlopsctl publish|promote|rollback|approve|reject` and `mlopsctl models list|show|history|verify`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlopsctl.cli import common
from mlopsctl.errors import DataError, ValidationError

models_app = typer.Typer(no_args_is_help=True, help="The registry: versions, aliases, history.")


def _settings(cfg: Any) -> Any:
    from mlopsctl.registry.promotion import RegistrySettings

    return RegistrySettings.from_config(cfg)


def publish(
    run_id: str | None = typer.Argument(None, help="Run id or prefix (default: the newest run)."),
    name: str | None = typer.Option(None, "--name", help="Model name (default: the run's, or the project's)."),
    model_file: Path | None = typer.Option(
        None, "--model", help="Publish a model trained elsewhere: a .skops file (or .joblib/.pkl with --unsafe-pickle)."
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="With --model: rows it did not train on (CSV, Parquet, JSON lines), for its signature, "
        "drift baseline and, with the target column, holdout metrics.",
    ),
    target: str | None = typer.Option(None, "--target", help="With --model: the target column of --data."),
    unsafe_pickle: bool = typer.Option(
        False, "--unsafe-pickle", help="Allow a joblib/pickle --model file: opening it runs the code it holds."
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """Write an immutable model version from a run (or a model file): skops model, checked ONNX export,
    signature, baseline, metrics and a manifest of sha256s."""
    from mlopsctl.registry.publishing import publish_run
    from mlopsctl.training.runs import get_run

    cfg = common.config(required=False)
    store = common.store(cfg)
    settings = _settings(cfg)
    if model_file is not None:
        if run_id is not None:
            raise ValidationError("give a run id or --model FILE, not both", [("run_id", "with --model")])
        run = _record_model_file(cfg, store, model_file, data, target, name, unsafe_pickle, settings)
    elif data is not None or target is not None or unsafe_pickle:
        raise ValidationError("--data, --target and --unsafe-pickle go with --model FILE", [("model", "missing")])
    else:
        run = get_run(store, run_id)
    with common.err_console().status(f"exporting run {run['run_id']} to ONNX and checking it on the holdout…"):
        done = publish_run(store, run, name=name, trusted_types=settings.trusted_types)
    if as_json:
        common.emit_json(done.to_dict())
        return
    common.console().print(done.describe())


def _record_model_file(
    cfg: Any,
    store: Any,
    path: Path,
    data: Path | None,
    target: str | None,
    name: str | None,
    unsafe_pickle: bool,
    settings: Any,
) -> dict[str, Any]:
    """A model file and rows, recorded as a run (`training.external`)."""
    from mlopsctl.training.external import read_model_file, record_model

    model_name = name or (cfg.model_name if cfg else None)
    if not model_name:
        raise ValidationError("name the model: --name NAME (or run it in a project)", [("name", "required")])
    if data is None:
        raise ValidationError(
            "--model needs --data ROWS: the rows give the signature, the drift baseline and the metrics",
            [("data", "required with --model")],
        )
    model = read_model_file(path, unsafe_pickle=unsafe_pickle, trusted_types=settings.trusted_types)
    frame = common.read_file(data, cfg)  # as every command reads a data file (the project's [data] settings)
    target = target or (cfg.data.target if cfg and cfg.data.target in frame.columns else None)
    y = None
    if target is not None:
        if target not in frame.columns:
            raise DataError(
                str(data), f"target column not found; columns are: {', '.join(frame.columns)}", column=target
            )
        y = frame.pop(target)
    expected = getattr(model, "feature_names_in_", None)
    if expected is not None:
        missing = [str(c) for c in expected if str(c) not in frame.columns]
        if missing:
            raise DataError(
                str(data), f"the model takes column(s) the file lacks: {', '.join(missing[:5])}", column=missing[0]
            )
        frame = frame[[str(c) for c in expected]]
    return record_model(
        store,
        model,
        frame,
        y,
        name=model_name,
        target=target,
        primary_metric=cfg.training.primary_metric if cfg else None,
        source=f"file: {path.name} with rows from {data}",
        trusted_types=settings.trusted_types,
        root=cfg.root if cfg else None,
        lineage={"model_file": str(path.resolve()), "model_file_sha256": _sha256(path), "unsafe_pickle": unsafe_pickle},
    )


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _said_mirror(move: Any, quiet: bool) -> None:
    if move.mirrored is not None and not quiet:
        common.err_console().print(f"mirrored {move.model}@{move.alias} = v{move.version} to SSM {move.parameter}")


def promote(
    name: str = typer.Argument(..., help="Model name."),
    version: str = typer.Argument(..., help="Version number (or an alias to copy from)."),
    alias: str = typer.Option("prod", "--alias", help="The alias to move."),
    reason: str = typer.Option("", "--reason", help="Why: kept in the history."),
    force: bool = typer.Option(
        False, "--force", help="Override the gate, the approval rule or a signature that differs (recorded)."
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """Move an alias to a version through the evaluation gate (compare-and-swap, recorded). A version whose
    signature differs from the alias's version (columns, types) is refused without --force."""
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
