"""`mlopsctl import` (an MLflow model becomes a version) and `mlopsctl export` (a version as an MLflow model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlopsctl.cli import common
from mlopsctl.errors import DataError, ValidationError


def import_model(
    uri: str = typer.Argument(
        ...,
        help="An MLflow model: its folder (or file:// URI), runs:/RUN_ID/PATH or models:/NAME/VERSION|@ALIAS "
        "(those two need the mlflow package, and MLFLOW_TRACKING_URI where MLflow keeps them).",
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Rows the model did not train on (CSV, Parquet, JSON lines), for its signature, drift baseline and, "
        "with the target column, holdout metrics. Required.",
    ),
    target: str | None = typer.Option(None, "--target", help="The target column of --data."),
    name: str | None = typer.Option(None, "--name", help="Model name (default: the project's)."),
    unsafe_pickle: bool = typer.Option(
        False,
        "--unsafe-pickle",
        help="Allow an MLflow model saved as pickle/cloudpickle: opening it runs the code it holds.",
    ),
    as_json: bool = common.JsonOpt,
) -> None:
    """Import an MLflow model (sklearn, xgboost or lightgbm flavour) as the next version of a model.

    It goes through publish with every guarantee of a trained run: stored as skops (never a pickle) and read
    back through the allowlist, ONNX export checked where the model converts, signature, drift baseline and
    metrics from --data, lineage naming the MLflow run and model. XGBoost and LightGBM models are read from
    their own formats and skops files through the allowlist; nothing from the folder runs, except a pickle
    with --unsafe-pickle."""
    import tempfile

    from mlopsctl.bundle.mlflow_format import fetch_model_dir, read_mlflow_model, rows_needed
    from mlopsctl.registry.promotion import RegistrySettings
    from mlopsctl.registry.publishing import publish_run
    from mlopsctl.training.external import record_model

    cfg = common.config(required=False)
    store = common.store(cfg)
    trusted = RegistrySettings.from_config(cfg).trusted_types
    model_name = name or (cfg.model_name if cfg else None)
    if not model_name:
        raise ValidationError("name the model: --name NAME (or run it in a project)", [("name", "required")])
    with tempfile.TemporaryDirectory(prefix="mlopsctl-import-") as tmp:
        folder = fetch_model_dir(uri, Path(tmp))
        if data is None:
            raise ValidationError(f"import needs --data ROWS: {rows_needed(folder)}", [("data", "required")])
        imported = read_mlflow_model(folder, unsafe_pickle=unsafe_pickle, trusted_types=trusted)
    frame, y, target = _rows(cfg, data, target)
    frame = imported.rows_for(frame, str(data))
    run = record_model(
        store,
        imported.model,
        frame,
        y,
        name=model_name,
        target=target,
        primary_metric=cfg.training.primary_metric if cfg else None,
        source=f"mlflow: {uri}",
        trusted_types=trusted,
        root=cfg.root if cfg else None,
        lineage=imported.lineage(uri),
    )
    with common.err_console().status(f"exporting run {run['run_id']} to ONNX and checking it on the holdout…"):
        done = publish_run(store, run, name=model_name, trusted_types=trusted)
    if as_json:
        common.emit_json(done.to_dict() | {"mlflow": imported.lineage(uri)})
        return
    c = common.console()
    c.print(done.describe())
    how = f"{imported.flavor} flavour, {imported.model_class}, {imported.serialization}"
    c.print(f"from MLflow {uri} ({how}{', unpickled' if imported.unpickled else ''})")


def _rows(cfg: Any, data: Path, target: str | None) -> tuple[Any, Any, str | None]:
    """(features, target values or None, target name) from --data, read as every command reads a data file
    (the project's [data] settings)."""
    frame = common.read_file(data, cfg)
    target = target or (cfg.data.target if cfg and cfg.data.target in frame.columns else None)
    if target is None:
        return frame, None, None
    if target not in frame.columns:
        raise DataError(str(data), f"target column not found; columns are: {', '.join(frame.columns)}", column=target)
    y = frame.pop(target)
    return frame, y, target


def export_model(
    ref: str = typer.Argument(..., help="NAME, NAME@ALIAS or NAME@VERSION."),
    fmt: str = typer.Option(..., "--format", help="What to write: mlflow (the only format for now)."),
    out: Path = typer.Option(..., "--out", help="The folder to write: new, or empty."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Write a version as an MLflow model folder that `mlflow models serve -m DIR` serves.

    A bare XGBoost model is written in MLflow's xgboost flavour (XGBoost's own model.ubj); a bare LightGBM
    model in its lightgbm flavour and anything else (a scikit-learn estimator or Pipeline) in its sklearn
    flavour, both as the version's own model.skops, which MLflow reads with skops: no pickle is written. With
    the python_function flavour, the signature, requirements.txt, python_env.yaml and conda.yaml pinning the
    installed libraries. The version's files are checked against its manifest first."""
    from mlopsctl.bundle.mlflow_format import check_format, write_mlflow_model
    from mlopsctl.bundle.ref import ModelRef
    from mlopsctl.bundle.version import open_version
    from mlopsctl.registry.promotion import RegistrySettings

    check_format(fmt)
    cfg = common.config(required=False)
    store = common.store(cfg)
    version = open_version(store, ModelRef.parse(ref), trusted_types=RegistrySettings.from_config(cfg).trusted_types)
    written = write_mlflow_model(version, out)
    if as_json:
        common.emit_json(written)
        return
    common.console().print(
        f"wrote {written['model']} v{written['version']} to {out} as an MLflow model ({written['flavor']} flavour, "
        f"{written['model_file']}); serve it with: mlflow models serve -m {out} --env-manager local"
    )


def register(app: typer.Typer) -> None:
    app.command("import")(import_model)
    app.command("export")(export_model)
