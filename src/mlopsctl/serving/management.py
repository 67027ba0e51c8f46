"""Management endpoints: `POST /retrain` (a pipeline run in the background) and `GET /retrain/{id}`.

They change what production serves, so they need the management key, sent as
``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. The key comes from the environment
(``MLOPS_API_KEY``) or ``[serving] api_key``; a server without one keeps these endpoints
shut (401 for everyone). The key is compared in constant time and never written anywhere:
not in logs, answers, run records or the process title.

A retrain needs the project (its ``mlops.toml``): the server knows it when it was started
in a project folder. `POST /retrain` takes the model's pipeline lock before answering, so a
second request while one runs gets 409 naming the run; then the steps run in a thread and
the answer (202) gives the run id and where to poll.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from mlopsctl.errors import Conflict, MlopsError
from mlopsctl.serving.app import _error, _json

log = logging.getLogger("mlopsctl.serving")
KEY_ENV = "MLOPS_API_KEY"
_FIELDS = {"if": "trigger", "rollout": "rollout", "include_feedback": "include_feedback", "reason": "reason"}


def management_key(project: str | None) -> str:
    """The key from the environment, else from the project's ``[serving] api_key``; "" when none."""
    key = os.environ.get(KEY_ENV, "")
    if not key and project:
        from mlopsctl.config import load_config

        key = load_config(project).serving.api_key
    return key


def _refuse(status: int, error: str, field: str, problem: str) -> Response:
    return _error(status, error, [(field, problem)])


def authorised(request: Request, key: str) -> Response | None:
    """None when the request carries the key; else the 401 answer (which never echoes what was sent)."""
    if not key:
        return _refuse(
            401, "unauthorized", "authorization", f"management endpoints are off: start the server with {KEY_ENV} set"
        )
    sent = request.headers.get("x-api-key", "")
    auth = request.headers.get("authorization", "")
    if not sent and auth[:7].lower() == "bearer ":
        sent = auth[7:].strip()
    if not sent:
        return _refuse(401, "unauthorized", "authorization", "send the key as 'Authorization: Bearer <key>'")
    if not hmac.compare_digest(sent.encode(), key.encode()):
        return _refuse(401, "unauthorized", "authorization", "the key is not right")
    return None


def add_routes(app: FastAPI, store: Any, project: str | None, model: str) -> None:
    """Add `/retrain` to ``app``; ``project`` is the folder of mlops.toml (None: retraining answers 409)."""
    key = management_key(project)

    @app.post("/retrain", tags=["management"], summary="Start a retraining pipeline run (needs the management key)")
    async def retrain(request: Request) -> Response:
        denied = authorised(request, key)
        if denied is not None:
            return denied
        if project is None:
            return _refuse(409, "no_project", "project", "the server was started outside a project: no mlops.toml")
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError as exc:
            return _refuse(400, "malformed_json", "body", str(exc))
        if not isinstance(body, dict):
            return _refuse(422, "invalid_input", "body", 'expected an object such as {"if": "drift"}')
        unknown = sorted(set(body) - set(_FIELDS))
        if unknown:
            return _refuse(422, "invalid_input", unknown[0], f"unknown field: expected {', '.join(_FIELDS)}")
        try:
            pipe, record, lock = await run_in_threadpool(_begin, store, project, body)
        except Conflict as exc:
            return _refuse(409, "pipeline_running", "model", str(exc))
        except MlopsError as exc:
            field = next((p[0] for p in getattr(exc, "problems", [])), "body")
            return _refuse(422, "invalid_input", field, str(exc))
        run_id = record["id"]
        thread = threading.Thread(target=_finish, args=(pipe, record, lock), name=f"mlops-{run_id}", daemon=True)
        thread.start()
        log.info("retraining %s: pipeline run %s started over HTTP", model, run_id)
        return _json({"run_id": run_id, "status": "running", "status_url": f"/retrain/{run_id}"}, 202)

    @app.get("/retrain/{run_id}", tags=["management"], summary="A pipeline run's record (needs the management key)")
    async def retrain_status(run_id: str, request: Request) -> Response:
        denied = authorised(request, key)
        if denied is not None:
            return denied
        from mlopsctl.pipeline import runs

        if len(run_id) > 120 or not all(c.isalnum() or c in "_.-" for c in run_id):
            return _refuse(404, "not_found", "run_id", "a run id is at most 120 letters, digits, '_', '.', '-'")
        try:
            record = await run_in_threadpool(runs.get_run, store, model, run_id)
        except MlopsError as exc:
            return _refuse(404, "not_found", "run_id", str(exc))
        return _json(record)


def _begin(store: Any, project: str, body: dict[str, Any]) -> tuple[Any, dict[str, Any], Any]:
    """The run started (lock taken, record saved): (pipeline, record, lock) for `_finish`."""
    from mlopsctl.config import load_config
    from mlopsctl.pipeline.retrain import Options, Pipeline

    cfg = load_config(Path(project))
    values = {_FIELDS[k]: v for k, v in body.items()}
    values.setdefault("trigger", "always")
    values.setdefault("rollout", cfg.retrain.rollout)
    values["reason"] = str(values.get("reason") or "requested over HTTP (POST /retrain)")
    options = Options(**values)
    pipe = Pipeline(cfg, store, log=lambda line: log.info("retrain: %s", line))
    record, lock = pipe.begin(options)
    return pipe, record, lock


def _finish(pipe: Any, record: dict[str, Any], lock: Any) -> None:
    try:
        pipe.finish(record, lock)
    except MlopsError as exc:  # recorded in the run; the log says how it ended
        log.warning("retrain: %s", exc)
    except Exception:
        log.exception("retrain: pipeline run %s stopped on an unexpected error", record["id"])
