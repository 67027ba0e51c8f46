"""`mlopsctl deploy docker`: a Dockerfile and a compose stack (API, Prometheus, Alertmanager, Grafana)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlopsctl.cli import common
from mlopsctl.errors import ValidationError


def docker(
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Folder to write into (default: deploy/docker in the project, else here)."
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Model to serve (default: the project's)."),
    alias: str | None = typer.Option(
        None, "--alias", help="Alias the service follows (default: \\[serving] alias, else prod)."
    ),
    bake: bool = typer.Option(
        False,
        "--bake",
        help="Copy the alias's version into the image: no store at run time, no hot reload; captures stay in "
        "the container (compose keeps them in volumes; not for a read-only root such as ECS).",
    ),
    store: str | None = typer.Option(
        None,
        "--store",
        help="Store the service reads and the model is checked in (default: the global --store, "
        "MLOPS_STORE or the project's). Named here, a missing model or alias is an error.",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite the files an earlier run wrote."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Write a Dockerfile (slim, non-root, HEALTHCHECK on /ready) and a compose file with Prometheus,
    Alertmanager and Grafana. Check them with hadolint, promtool and amtool (docs/deploy-docker.md)."""
    from mlopsctl.deploy.docker import write_docker

    cfg = common.config(required=False)
    name = model or (cfg.model_name if cfg else None)
    if not name:
        raise ValidationError("--model: no mlops.toml here, so name the model to serve", [("--model", "required")])
    from mlopsctl.cli.deploy import output_folder, writing

    folder = output_folder(out if out is not None else (cfg.root if cfg else Path(".")) / "deploy" / "docker")
    with writing(folder):
        result = write_docker(
            folder,
            model=name,
            alias=alias or (cfg.serving.alias if cfg else "prod"),
            store_uri=store or common.store_uri(cfg),
            bake=bake,
            force=force,
            strict=store is not None,
            cfg=cfg,
        )
    if print_files(result, as_json):
        return
    from rich.markup import escape

    c = common.console()
    ref = f"{result['model']}@{result['alias']}" + (f" (v{result['version']})" if result["version"] else "")
    source = "baked into the image" if result["baked"] else f"read from {result['image_store']} at start"
    d = escape(result["out"])
    c.print(escape(f"{ref}, {source}. Next:"))
    c.print(f"  cd {d} && docker compose up --build -d     (API on :{result['port']}, Grafana on 127.0.0.1:3000)")
    c.print(f"  hadolint {d}/Dockerfile && promtool check config {d}/prometheus/prometheus.yml")


def print_files(result: dict[str, Any], as_json: bool) -> bool:
    """The JSON result, or one line per file written or kept and per warning; True when JSON was printed
    (the caller has nothing to add). Shared by the deploy commands that write a folder of files."""
    if as_json:
        common.emit_json(result)
        return True
    from rich.markup import escape

    c = common.console()
    for p in result["written"]:
        c.print(f"wrote {escape(str(p))}")
    for p in result.get("kept", []):
        c.print(f"kept {escape(str(p))}")
    for w in result["warnings"]:
        c.print(f"[yellow]warning:[/yellow] {escape(w)}")
    return False


def register(app: typer.Typer) -> None:
    """Add `deploy docker` to the deploy group."""
    app.command("docker")(docker)
