"""`mlopsctl serve` (the HTTP service) and `mlopsctl predict` (a file, locally or against a server)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

from mlopsctl.cli import common
from mlopsctl.errors import DataError


def serve(
    model: list[str] = typer.Option(
        [],
        "--model",
        "-m",
        help="NAME[@ALIAS|@VERSION], repeatable; the first is "
        "also at /predict (default: the project's model @ [serving] alias).",
    ),
    host: str | None = typer.Option(None, "--host", help="Bind address (default from \\[serving], 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Port (default from \\[serving], 8000)."),
    workers: int | None = typer.Option(None, "--workers", help="Worker processes (default 1)."),
    runtime: str | None = typer.Option(
        None, "--runtime", help="auto (ONNX where it passed the parity check) | onnx | sklearn."
    ),
    reload_interval: float | None = typer.Option(
        None, "--reload-interval", help="Seconds between alias checks (hot reload)."
    ),
    log_level: str = typer.Option("info", "--log-level", help="critical | error | warning | info | debug."),
    log_format: str = typer.Option("text", "--log-format", help="text | json (one object a line, for CloudWatch)."),
    access_log: bool = typer.Option(
        False, "--access-log/--no-access-log", help="A line per request (method, path, status); costs ~10 % at c=1."
    ),
    capture: bool = typer.Option(
        True, "--capture/--no-capture", help="Record every prediction in the store (\\[monitoring.capture])."
    ),
    sample_rate: float | None = typer.Option(
        None, "--sample-rate", min=0.0, max=1.0, help="Share of predictions captured (default from config, 1.0)."
    ),
) -> None:
    """Serve models over HTTP: /predict, /invocations (MLflow), /health, /ready, /metrics, /docs."""
    import os

    import uvicorn

    from mlopsctl.serving.app import SETTINGS_ENV, ServeSettings, create_app

    cfg = common.config(required=not model)
    sv = cfg.serving if cfg else None
    refs = [common.split_ref(m) for m in model]  # refused here when ambiguous (wine@v3)
    if not refs and cfg is not None:
        refs = [(cfg.model_name, cfg.serving.alias)]
    settings = ServeSettings(
        store_uri=common.store_uri(cfg),
        models=refs,
        runtime=runtime or (sv.runtime if sv else "auto"),
        reload_interval=reload_interval or (sv.reload_interval_seconds if sv else 2.0),
        max_body_bytes=sv.max_body_bytes if sv else 1_048_576,
        max_batch_rows=sv.max_batch_rows if sv else 10_000,
        trusted_types=list(cfg.registry.trusted_types) if cfg else [],
        capture=_capture_settings(cfg, capture, sample_rate),
        accuracy_window=cfg.monitoring.alerts.accuracy_window if cfg else 3600.0,
        guard=cfg.experiments.guard.model_dump() if cfg else {},
        notify=cfg.monitoring.notify.model_dump() if cfg else {},
        project=str(cfg.root.resolve()) if cfg else None,
        variant_header=bool(sv and sv.variant_header),
        cloudwatch=(
            {**cfg.monitoring.cloudwatch.model_dump(), "service": cfg.monitoring.cloudwatch.service or cfg.service_name}
            if cfg
            else {}
        ),
    )
    if settings.runtime not in ("auto", "onnx", "sklearn"):
        raise DataError("--runtime", f"got {settings.runtime!r}: use auto, onnx or sklearn")
    host = host or (sv.host if sv else "127.0.0.1")
    port = port if port is not None else (sv.port if sv else 8000)
    workers = workers or (sv.workers if sv else 1)
    from mlopsctl.serving.logs import log_config

    try:
        logs = log_config(log_level, log_format, access=access_log)
    except ValueError as exc:
        raise DataError("--log-format" if "format" in str(exc) else "--log-level", str(exc)) from None
    _preflight(settings, host, port)  # a busy port, an unreadable store, a model that is not there: one line
    common.err_console().print(
        f"serving {', '.join(n + '@' + (r or 'latest') for n, r in refs)} from {settings.store_uri} "
        f"on http://{host}:{port} (docs at /docs, {workers} worker(s))"
    )
    kwargs: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": logs,
        "access_log": access_log,
        "timeout_graceful_shutdown": 10,
    }
    if workers > 1:
        import shutil
        import tempfile

        from mlopsctl.serving.metrics import MULTIPROC_ENV

        os.environ[SETTINGS_ENV] = settings.to_json()
        # every worker writes its metrics to files here, and any worker answers /metrics with all of them
        shared = tempfile.mkdtemp(prefix="mlopsctl-metrics-")
        os.environ[MULTIPROC_ENV] = shared
        try:
            uvicorn.run("mlopsctl.serving.app:app_from_env", factory=True, workers=workers, **kwargs)
        finally:
            shutil.rmtree(shared, ignore_errors=True)
    else:
        uvicorn.run(create_app(settings), **kwargs)


def _preflight(settings: Any, host: str, port: int) -> None:
    """What would make the server fail after its banner, refused before it: the port cannot be bound, the
    store cannot be read, a model has no version (a model without its alias yet is served once promoted)."""
    import socket

    from mlopsctl import registry
    from mlopsctl.bundle.ref import ModelRef
    from mlopsctl.errors import MlopsError, NotFound, StoreError
    from mlopsctl.store.base import open_store

    if port:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise DataError(
                    "--port", f"cannot listen on {host}:{port}: {exc.strerror}: pick another --port"
                ) from None
    uri = settings.store_uri
    if "://" not in uri or uri.startswith("file://"):
        folder = Path(uri.removeprefix("file://"))
        if not folder.exists():
            raise NotFound("store", uri, "no such folder: pass --store, or publish a model there first")
        if not folder.is_dir():
            raise StoreError(uri, "is a file, not a store folder")
    try:
        store = open_store(uri)
        names = set(registry.model_names(store))
    except MlopsError as exc:
        raise StoreError(settings.store_uri, f"cannot be read: {exc}") from None
    except OSError as exc:
        raise StoreError(settings.store_uri, f"cannot be read: {exc.strerror or exc}") from None
    for name, ref in settings.models:
        target = ModelRef.of(name, ref)
        if name not in names or not registry.version_numbers(store, name):
            known = ", ".join(sorted(names)) or "none"
            raise NotFound("model", name, f"{settings.store_uri} has no version of it; its models: {known}")
        if target.version is not None:
            registry.resolve(store, name, target.version)  # a pinned version that does not exist: NotFound names it
        elif target.alias is not None and registry.get_alias(store, name, target.alias) is None:
            common.err_console().print(
                f"note: {target} does not point to a version yet: served once it is promoted", markup=False
            )


def _capture_settings(cfg: Any, on: bool, sample_rate: float | None) -> dict[str, Any] | None:
    from mlopsctl.config import CaptureSection

    section = cfg.monitoring.capture.model_dump() if cfg else CaptureSection().model_dump()
    if cfg and section["wal_dir"] and not Path(section["wal_dir"]).expanduser().is_absolute():
        section["wal_dir"] = str(cfg.root.resolve() / section["wal_dir"])  # relative to mlops.toml
    if sample_rate is not None:
        section["sample_rate"] = sample_rate
    return section if on and section["enabled"] else None


def read_rows(
    path: Path, cfg: Any = None, sep: str | None = None, header: bool | None = None, columns: str | None = None
) -> list[dict[str, Any]]:
    """Rows of a JSON file (array of objects, {"instances": [...]}, or JSON lines), or of any other data file
    read as `train` reads one (the project's [data] settings, --sep, --header, --columns), its values the
    strings the file spells (typed later by the model's signature)."""
    if not path.is_file():
        raise DataError(str(path), "file not found")
    if path.suffix.lower() in (".json", ".jsonl", ".ndjson"):
        text = path.read_text(encoding="utf-8-sig")
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            try:
                obj = [json.loads(line) for line in text.splitlines() if line.strip()]
            except json.JSONDecodeError as exc:
                raise DataError(str(path), f"not JSON or JSON lines: {exc}") from None
        if isinstance(obj, dict):
            obj = obj.get("instances", [obj.get("features", obj)])
        if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
            raise DataError(str(path), "expected an array of objects (one per row)")
        rows = obj
    else:
        frame = common.read_file(path, cfg, sep, header, columns, text=True)
        rows = [
            {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
            for r in frame.to_dict("records")
        ]
    if not rows:
        raise DataError(str(path), "no rows")
    return rows


def predict(
    target: str | None = typer.Argument(None, help="NAME[@ALIAS|@VERSION] to run locally (no server)."),
    input_file: Path = typer.Option(..., "--input", "-i", help="CSV, Parquet or JSON rows."),
    url: str | None = typer.Option(None, "--url", help="A running server (its base URL or a predict URL)."),
    target_column: str | None = typer.Option(
        None, "--drop", help="A column to ignore (default: the project's target, \\[data] target, when present)."
    ),
    sep: str | None = common.SepOpt,
    header: bool | None = common.HeaderOpt,
    columns: str | None = common.ColumnsOpt,
    as_json: bool = common.JsonOpt,
) -> None:
    """Predict the rows of a file with a served model (--url) or a registry version, locally. The file is read
    as `train` reads one (the project's \\[data] settings, --sep, --header, --columns); its label is left out."""
    from mlopsctl.serving.inputs import coerce_strings

    project = common.config(required=False)
    rows = read_rows(input_file, project, sep, header, columns)
    dropped = target_column or (project.data.target if project is not None else None)
    if dropped:
        rows = [{k: v for k, v in r.items() if k != dropped} for r in rows]
    if url:
        import httpx

        endpoint = url if url.rstrip("/").endswith("predict") else url.rstrip("/") + "/predict"
        if input_file.suffix.lower() not in (".json", ".jsonl", ".ndjson"):
            rows = coerce_strings(rows, _served_spec(endpoint))
        resp = httpx.post(endpoint, json={"instances": rows}, timeout=60)
        body = resp.json()
        if resp.status_code != 200:
            problems = "; ".join(f"{d['field']}: {d['problem']}" for d in body.get("detail", [])[:5])
            raise DataError(endpoint, f"HTTP {resp.status_code} {body.get('error')}: {problems}")
    else:
        from mlopsctl.serving.loaded import load
        from mlopsctl.serving.predict import native_response, predict_rows

        cfg = common.config(required=target is None)
        ref: str | None
        if target is None:
            assert cfg is not None
            name, ref = cfg.model_name, cfg.serving.alias
        else:
            name, ref = common.split_ref(target)
        model = load(common.store(cfg), name, ref, trusted_types=cfg.registry.trusted_types if cfg else ())
        rows = coerce_strings(rows, model.spec)
        preds, probas = predict_rows(model, rows, field_prefix="rows")
        body = native_response(model, preds, probas, single=False)
    if as_json:
        common.emit_json(body)
        return
    preds = body["predictions"]
    conf = body.get("confidence")
    common.table(
        f"{body['model']} v{body['model_version']}: {len(preds)} prediction(s)",
        ["row", "prediction", *(["confidence"] if conf else [])],
        [[i, p, *([f"{conf[i]:.3f}"] if conf else [])] for i, p in enumerate(preds[:1000])],
    )


def _served_spec(endpoint: str) -> Any:
    """The input signature of the model behind a predict URL, asked of the server itself, so CSV
    values are typed as that model expects (a category "3" stays a string)."""
    import httpx

    from mlopsctl.serving.inputs import InputSpec

    base = endpoint.rstrip("/").removesuffix("/predict")
    info_url = base if "/models/" in base else base + "/models"
    try:
        resp = httpx.get(info_url, timeout=30)
    except httpx.HTTPError as exc:
        raise DataError(info_url, f"cannot reach the server: {exc}") from None
    info = resp.json()
    if resp.status_code != 200:
        raise DataError(info_url, f"HTTP {resp.status_code}: {info.get('detail') or info}")
    model = info["models"][0] if "models" in info else info
    if "inputs" not in model:
        raise DataError(info_url, f"model {model.get('name')} is not loaded: {model.get('error')}")
    return InputSpec({"inputs": model["inputs"]})


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("predict")(predict)
