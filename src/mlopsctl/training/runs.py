"""Stored training runs: ``runs/{run_id}/``, written once, each file hash-checked when it is read back.

A run folder holds the fitted model (``model.skops``), the holdout it was scored on
(``holdout.parquet``), the drift reference (``reference.parquet``, ``baseline.json``) and, written
last, ``run.json``: params, lineage, metrics, signature, and the sha256 and size of every other file.
A run is complete iff ``run.json`` exists. Reading a file checks it against ``run.json`` as a
version's files are checked against its manifest, so a model file swapped in a run folder is
refused before anything reads it; the model itself is rebuilt only through the allowlist
(`mlopsctl.bundle.safety`).
"""

from __future__ import annotations

import getpass
import hashlib
import io
import platform
import secrets
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlopsctl import __version__
from mlopsctl.bundle import keys
from mlopsctl.errors import IntegrityError, NotFound
from mlopsctl.store.base import Store, get_checked

RUN_ID_CHARS = set("0123456789abcdefghijklmnopqrstuvwxyz-")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def git_info(folder: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def package_versions(extra: Iterable[str] = ()) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "mlopsctl": __version__}
    for pkg in ("scikit-learn", "numpy", "pandas", "skops", "skl2onnx", "onnxruntime", *extra):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def parquet(df: Any) -> bytes:
    buf = io.BytesIO()
    df = df.copy(deep=False)
    df.attrs = {}  # where a frame was read from (data.read) stays out of the store's files
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def save_run(store: Store, run: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
    """Write the run's files, then ``run.json`` with their sha256 (last: it marks the run complete)."""
    prefix = f"runs/{run['run_id']}/"
    entries = {}
    for fname, data in sorted(files.items()):
        store.put_if_absent(prefix + fname, data)
        entries[fname] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    run["files"] = entries
    store.put_json_if_absent(prefix + keys.RUN, run)
    return run


def read_run_file(store: Store, run: dict[str, Any], fname: str) -> bytes:
    """One file of a run, checked against the sha256 ``run.json`` records for it."""
    path = f"runs/{run['run_id']}/{fname}"
    entry = (run.get("files") or {}).get(fname)
    if entry is None:
        if run.get("files") is None:
            raise IntegrityError(path, problem="its run predates file hashes: train it again to publish it")
        raise NotFound("file", path, f"run {run['run_id']} has no {fname}")
    return get_checked(store, path, entry["sha256"])


def run_model(store: Store, run: dict[str, Any], *, trusted_types: Iterable[str] = ()) -> Any:
    """The run's fitted model, from its checked ``model.skops`` through the allowlist."""
    from mlopsctl.bundle.safety import load_skops

    data = read_run_file(store, run, keys.MODEL_SKOPS)
    return load_skops(data, name=f"runs/{run['run_id']}/{keys.MODEL_SKOPS}", trusted_types=trusted_types)


def run_frame(store: Store, run: dict[str, Any], fname: str) -> Any:
    import pandas as pd

    return pd.read_parquet(io.BytesIO(read_run_file(store, run, fname)))


def list_runs(store: Store) -> list[dict[str, Any]]:
    runs = [store.get_json_or(f"runs/{rid}/{keys.RUN}") for rid in store.list_dirs("runs/")]
    return sorted((r for r in runs if r), key=lambda r: r["run_id"], reverse=True)


def get_run(store: Store, run_id: str | None = None) -> dict[str, Any]:
    """A run by id (or unique prefix); None means the newest."""
    if run_id is not None and (not run_id or len(run_id) > 64 or not set(run_id) <= RUN_ID_CHARS):
        raise NotFound("run", repr(run_id)[:70], "run ids look like 20261207-110000-a1b2c3")
    if run_id is not None and len(run_id) >= 22:  # a whole id: one read, not a listing
        run = store.get_json_or(f"runs/{run_id}/{keys.RUN}")
        if run is not None:
            return dict(run)
    runs = list_runs(store)
    if not runs:
        raise NotFound("run", run_id or "(any)", "train one with `mlopsctl train`")
    if run_id is None:
        return runs[0]
    hits = [r for r in runs if r["run_id"].startswith(run_id)]
    if len(hits) != 1:
        raise NotFound("run", run_id, "ambiguous prefix" if hits else "see `mlopsctl runs list`")
    return hits[0]
