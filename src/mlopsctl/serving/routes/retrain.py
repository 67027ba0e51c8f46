"""`POST /retrain` starts a retraining pipeline run as a process of its own; `GET /retrain/{id}` reads it.

Both need the management key (`serving/management.py`). A retrain needs the project (its ``mlops.toml``):
the server knows it when it was started in a project folder. `POST /retrain` takes the model's pipeline
lock and records the run before answering, so a second request while one runs gets 409 naming the run;
then `mlopsctl pipeline finish RUN` runs the steps in a child process (the same run id holds the lock),
so training never shares the server's memory, threads or GIL. The answer (202) gives the run id and
where to poll; the child's lines go to the server's log.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from mlopsctl.errors import Conflict, MlopsError
from mlopsctl.serving.management import authorised, management_key, refuse
from mlopsctl.serving.responses import json_response
from mlopsctl.serving.service import Service

log = logging.getLogger("mlopsctl.serving")
_FIELDS = {"if": "trigger", "rollout": "rollout", "include_feedback": "include_feedback", "reason": "reason"}


def routes(service: Service) -> APIRouter:
    router = APIRouter(tags=["management"])
    store, project, model = service.store, service.settings.project, service.first.name
    key = management_key(project)

    @router.post("/retrain", summary="Start a retraining pipeline run (needs the management key)")
    async def retrain(request: Request) -> Response:
        denied = authorised(request, key)
        if denied is not None:
            return denied
        if project is None:
            return refuse(409, "no_project", "project", "the server was started outside a project: no mlops.toml")
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError as exc:
            return refuse(400, "malformed_json", "body", str(exc))
        if not isinstance(body, dict):
            return refuse(422, "invalid_input", "body", 'expected an object such as {"if": "drift"}')
        unknown = sorted(set(body) - set(_FIELDS))
        if unknown:
            return refuse(422, "invalid_input", unknown[0], f"unknown field: expected {', '.join(_FIELDS)}")
        try:
            run_id = await run_in_threadpool(begin, store, project, body)
        except Conflict as exc:
            return refuse(409, "pipeline_running", "model", str(exc))
        except MlopsError as exc:
            field = next((p[0] for p in getattr(exc, "problems", [])), "body")
            return refuse(422, "invalid_input", field, str(exc))
        start_child(project, run_id)
        log.info("retraining %s: pipeline run %s started over HTTP", model, run_id)
        return json_response({"run_id": run_id, "status": "running", "status_url": f"/retrain/{run_id}"}, 202)

    @router.get("/retrain/{run_id}", summary="A pipeline run's record (needs the management key)")
    async def retrain_status(run_id: str, request: Request) -> Response:
        denied = authorised(request, key)
        if denied is not None:
            return denied
        from mlopsctl.pipeline import runs

        if len(run_id) > 120 or not all(c.isalnum() or c in "_.-" for c in run_id):
            return refuse(404, "not_found", "run_id", "a run id is at most 120 letters, digits, '_', '.', '-'")
        try:
            record = await run_in_threadpool(runs.get_run, store, model, run_id)
        except MlopsError as exc:
            return refuse(404, "not_found", "run_id", str(exc))
        return json_response(record)

    return router


def begin(store: Any, project: str, body: dict[str, Any]) -> str:
    """Take the model's lock and record the run as started; returns its id (the child finishes it)."""
    from mlopsctl.config import load_config
    from mlopsctl.pipeline.retrain import Options, Pipeline

    cfg = load_config(Path(project))
    values = {_FIELDS[k]: v for k, v in body.items()}
    values.setdefault("trigger", "always")
    values.setdefault("rollout", cfg.retrain.rollout)
    values["reason"] = str(values.get("reason") or "requested over HTTP (POST /retrain)")
    record, _ = Pipeline(cfg, store).begin(Options(**values))
    return str(record["id"])


def start_child(project: str, run_id: str) -> None:
    """`mlopsctl pipeline finish RUN` in a process of its own, waited for by a thread (no zombie)."""
    command = [sys.executable, "-m", "mlopsctl.cli.main", "--project", project, "pipeline", "finish", run_id]
    child = subprocess.Popen(command, cwd=project, stdin=subprocess.DEVNULL, start_new_session=True)

    def wait() -> None:
        code = child.wait()
        (log.info if code == 0 else log.warning)("retrain: pipeline run %s ended with exit code %d", run_id, code)
        if code != 0:
            abandoned(project, run_id, code)

    threading.Thread(target=wait, name=f"mlops-{run_id}", daemon=True).start()


def abandoned(project: str, run_id: str, code: int) -> None:
    """A child that died before recording how its run ended (killed, could not start): the run is marked
    failed and its lock given back, so the next retrain need not wait for the lock to go stale."""
    from mlopsctl.config import load_config
    from mlopsctl.pipeline import runs
    from mlopsctl.store.base import open_store

    try:
        cfg = load_config(Path(project))
        store = open_store(cfg.store_uri())
        record = runs.get_run(store, cfg.model_name, run_id)
        if record.get("status") != "running":
            return
        message = f"the pipeline process exited with code {code} before recording an end"
        record.update(status="failed", error={"step": "process", "message": message}, finished_at=runs.now_iso())
        runs.save(store, record)
        held = store.get_json_or(runs.lock_key(cfg.model_name))
        if held is not None and held.get("run") == run_id:
            store.delete(runs.lock_key(cfg.model_name))
    except Exception:  # the record is the store's: never let the waiter thread die on it
        log.exception("retrain: could not record the end of pipeline run %s", run_id)
