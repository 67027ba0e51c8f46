"""The HTTP app factory: routes, error bodies, start-up and shutdown.

Routes: ``POST /predict`` (the first model), ``POST /models/{name}/predict``,
``POST /invocations`` (MLflow), ``POST /feedback``, ``GET /health``, ``/ready``, ``/metrics``,
``/models``, ``/dashboard``, ``/docs``. Errors are JSON bodies that name the field; a 5xx
means a bug.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from mlopsctl import __version__
from mlopsctl.bundle.task import is_regression
from mlopsctl.errors import ValidationError
from mlopsctl.serving.asgi import PredictRoutes
from mlopsctl.serving.predict import error_body
from mlopsctl.serving.reload import Reloader, Route, Served, Slot
from mlopsctl.store.base import open_store

log = logging.getLogger("mlopsctl.serving")
SETTINGS_ENV = "MLOPS_SERVE_SETTINGS"
# request ids read back from the store's capture for POST /feedback (filled only when feedback asks)
FEEDBACK_INDEX_LIMIT = 50_000
# the prediction routes are declared on FastAPI for the docs; PredictRoutes answers them before FastAPI
UNREACHABLE = "answered by PredictRoutes: serve the app that create_app returns, not its .app"


@dataclass
class ServeSettings:
    store_uri: str
    models: list[tuple[str, str | None]]  # (name, alias | version | None for latest)
    runtime: str = "auto"
    reload_interval: float = 2.0
    max_body_bytes: int = 1_048_576
    max_batch_rows: int = 10_000
    trusted_types: list[str] = field(default_factory=list)  # [registry] trusted_types
    # [monitoring.capture] settings (CaptureSection fields); None turns capture off
    capture: dict[str, Any] | None = field(default_factory=dict)
    accuracy_window: float = 3600.0
    guard: dict[str, Any] = field(default_factory=dict)  # [experiments.guard] (GuardSection fields)
    notify: dict[str, Any] = field(default_factory=dict)  # [monitoring.notify] (NotifySection fields)
    project: str | None = None  # the folder of mlops.toml, for POST /retrain
    variant_header: bool = False  # [serving] variant_header: answer with X-Variant

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        d = json.loads(text)
        d["models"] = [tuple(m) for m in d["models"]]
        return cls(**d)


class JSONBytes(Response):
    media_type = "application/json"


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONBytes(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status, headers=headers)


def _error(status: int, error: str, problems: list[tuple[str, str]]) -> Response:
    return JSONBytes(error_body(error, problems), status_code=status)


def create_app(settings: ServeSettings) -> PredictRoutes:
    """The service: the FastAPI app (``.app``) behind the lean prediction routes."""
    from mlopsctl.bundle.ref import ModelRef
    from mlopsctl.serving.metrics import ServerMetrics

    for name, ref in settings.models:
        ModelRef.of(name, ref)  # a reference that names nothing, or is ambiguous (wine@v3), is refused at start
    if settings.trusted_types:
        from mlopsctl.config import allow_code_from

        allow_code_from(settings.project)  # the project's own model code, named in [registry] trusted_types
    store = open_store(settings.store_uri)

    metrics = ServerMetrics()
    slots = [Slot(name, ref) for name, ref in settings.models]
    if not slots:
        raise ValidationError("no model to serve", [("model", "pass --model NAME[@ALIAS]")])
    by_name = {s.name: s for s in slots}
    served = [Served(s.name, s.ref, s, Route.single(s)) for s in slots]
    reloader = Reloader(
        store,
        served,
        metrics,
        interval=settings.reload_interval,
        runtime=settings.runtime,
        trusted_types=tuple(settings.trusted_types),
    )
    limit, max_rows = settings.max_body_bytes, settings.max_batch_rows
    capture = None
    if settings.capture is not None:
        from mlopsctl.config import CaptureSection
        from mlopsctl.monitoring.captured import CapturedIndex
        from mlopsctl.serving.capture import CaptureWriter

        cs = CaptureSection(**settings.capture)
        if cs.enabled:
            others = None
            if cs.feedback_lookback > 0:
                names = [name for name, _ in settings.models]
                others = CapturedIndex(store, names, lookback=cs.feedback_lookback, limit=FEEDBACK_INDEX_LIMIT)
            capture = CaptureWriter(
                store,
                metrics,
                sample_rate=cs.sample_rate,
                buffer_rows=cs.buffer_rows,
                batch_rows=cs.batch_rows,
                flush_interval=cs.flush_interval_seconds,
                recent_requests=cs.recent_requests,
                recent_rows=cs.recent_rows,
                others=others,
                wal_dir=cs.wal_dir or None,
            )
    from mlopsctl.config import GuardSection, NotifySection
    from mlopsctl.experiments.guard import Guard
    from mlopsctl.monitoring.notify import notifiers
    from mlopsctl.serving.live import KEEP_SECONDS, LiveStats
    from mlopsctl.serving.reload import Every
    from mlopsctl.serving.shadow import ShadowRunner

    guard_cfg = GuardSection(**settings.guard)
    live = LiveStats(
        store,
        metrics,
        slots,
        capture,
        accuracy_window=settings.accuracy_window,
        keep_seconds=max(KEEP_SECONDS, guard_cfg.window + 60),
        served=served,
    )
    shadows = ShadowRunner(metrics, capture, max_rows=max_rows)
    guard = Guard(store, served, live, metrics, guard_cfg, notifiers(NotifySection(**settings.notify)))
    guard_every = Every("mlops-guard", guard_cfg.interval, guard.tick)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(reloader.check_all)
        reloader.start()
        if capture is not None:
            capture.start()
        shadows.start()
        await run_in_threadpool(live.start)
        guard_every.start()
        try:
            yield
        finally:
            reloader.stop()
            guard_every.stop()
            live.stop()
            shadows.stop()
            if capture is not None:
                await run_in_threadpool(capture.close)  # the buffer is written before the process exits

    app = FastAPI(
        title="mlopsctl prediction service",
        version=__version__,
        lifespan=lifespan,
        description="Predictions from models in the mlopsctl registry. Models: "
        + ", ".join(f"`{n}@{r or 'latest'}`" for n, r in settings.models),
    )
    app.state.reloader = reloader
    app.state.slots = by_name
    app.state.metrics = metrics
    app.state.capture = capture
    app.state.live = live
    app.state.served = served
    app.state.guard = guard
    app.state.shadows = shadows

    first = slots[0]
    from mlopsctl.serving.management import add_routes, authorised, management_key

    add_routes(app, store, settings.project, first.name)
    management = management_key(settings.project)
    body_doc = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}

    @app.post(
        "/predict",
        tags=["predict"],
        summary=f"Predict with {first.name} (the first served model)",
        openapi_extra=body_doc,
    )
    async def predict() -> Response:
        raise RuntimeError(UNREACHABLE)

    @app.post(
        "/models/{name}/predict",
        tags=["predict"],
        summary="Predict with a named model",
        openapi_extra=body_doc,
    )
    async def predict_named(name: str) -> Response:
        # PredictRoutes answers every served name: a name that gets here is not served
        return _error(404, "not_found", [("name", f"model {name!r} is not served here; served: " + ", ".join(by_name))])

    @app.post(
        "/invocations",
        tags=["mlflow"],
        summary="MLflow scoring protocol (first served model)",
        openapi_extra=body_doc,
    )
    async def invocations() -> Response:
        raise RuntimeError(UNREACHABLE)

    feedback_seq = [0]

    @app.post(
        "/feedback",
        tags=["monitoring"],
        summary="Ground truth for earlier predictions, by request id",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                {"$ref": "#/components/schemas/FeedbackItem"},
                                {"type": "array", "items": {"$ref": "#/components/schemas/FeedbackItem"}},
                            ]
                        }
                    }
                },
            }
        },
    )
    async def feedback(request: Request) -> Response:
        from mlopsctl.monitoring.feedback import check_items, store_feedback

        if management:  # with a management key set, labels need it too: they move live accuracy and retraining
            denied = authorised(request, management)
            if denied is not None:
                return denied
        if capture is None:
            return _error(409, "capture_off", [("capture", "capture is off on this server: no prediction to join")])
        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return _error(400, "malformed_json", [("body", str(exc))])
        items = payload if isinstance(payload, list) else [payload]
        if not items:
            return _error(422, "invalid_input", [("body", "an empty list: send at least one label")])
        if len(items) > max_rows:
            problem = f"{len(items)} labels: at most {max_rows} a request ([serving] max_batch_rows)"
            return _error(413, "too_many_labels", [("body", problem)])

        def info(name: str, version: int) -> tuple[str, list[Any] | None]:
            cur = by_name[name].current
            if cur is not None and cur[0].version == version:
                return cur[0].task, cur[0].classes
            from mlopsctl.bundle.version import version_at

            mv = version_at(store, name, version)
            return mv.task, mv.classes

        result = await run_in_threadpool(check_items, items, capture.lookup, info, source="api")
        if result.accepted:
            feedback_seq[0] += 1
            await run_in_threadpool(store_feedback, store, result.accepted, capture.writer, feedback_seq[0])
            outcomes: dict[str, list[tuple[tuple[str, int], float, bool]]] = {}
            for rec in result.accepted:
                predicted = capture.prediction(rec["request_id"], rec["row"])
                serving = by_name[rec["model"]].current
                if serving is not None and not is_regression(serving[0].task):
                    key = (rec["request_id"], rec["row"])
                    outcomes.setdefault(rec["model"], []).append(
                        (key, rec["time"], str(predicted) == str(rec["label"]))
                    )
                metrics.feedback.labels(rec["model"], "accepted").inc()
            for name, got in outcomes.items():
                live.add_labels(name, got)
        if result.rejected:
            metrics.feedback.labels(first.name, "rejected").inc(len(result.rejected))
        body = result.to_dict()
        if not result.accepted:
            status = 404 if all(r["problem"].startswith("unknown request id") for r in result.rejected) else 422
            return _json({"error": "no_label_accepted", "detail": result.rejected, **body}, status)
        return _json(body)

    @app.get("/dashboard", tags=["monitoring"], summary="Status page (HTML, refreshes itself)")
    async def dashboard() -> Response:
        from mlopsctl.serving.dashboard import page

        return Response(page(), media_type="text/html; charset=utf-8")

    @app.get("/dashboard/data", tags=["monitoring"], summary="The status page's data (JSON)")
    async def dashboard_data() -> Response:
        return _json(live.summary())

    @app.get("/health", tags=["ops"], summary="Liveness: the process answers")
    async def health() -> Response:
        return _json({"status": "ok"})

    @app.get("/ready", tags=["ops"], summary="Readiness: every served model is loaded")
    async def ready() -> Response:
        status = reloader.status()
        ok = all(s["loaded"] for s in status)
        return _json({"ready": ok, "models": status}, 200 if ok else 503)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics")
    async def prometheus_metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/models", tags=["models"], summary="The models served and their versions")
    async def models() -> Response:
        return _json(
            {
                "models": [
                    {
                        **(s.current[0].describe() if s.current else {"name": s.name, "loaded": False}),
                        "follows": s.ref or "latest",
                        "error": s.last_error,
                    }
                    for s in slots
                ]
            }
        )

    @app.get("/models/{name}", tags=["models"], summary="One served model: version, signature, metrics")
    async def model_info(name: str) -> Response:
        slot = by_name.get(name)
        if slot is None or slot.current is None:
            return _error(404, "not_found", [("name", f"model {name!r} is not served or not loaded")])
        return _json(slot.current[0].describe())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        answer = _error(exc.status_code, "http_error", [("path", f"{request.url.path}: {exc.detail}")])
        answer.headers.update(exc.headers or {})  # 405 names the allowed methods (Allow), as HTTP asks
        return answer

    @app.exception_handler(RequestValidationError)
    async def request_error(request: Request, exc: RequestValidationError) -> Response:
        problems = [(".".join(str(x) for x in e["loc"]), e["msg"]) for e in exc.errors()]
        return _error(422, "invalid_input", problems)

    def openapi() -> dict[str, Any]:
        # regenerated on each call: the request schemas follow the versions being served
        from mlopsctl.serving.openapi import document

        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        specs = [s.current[0].spec if s.current is not None else None for s in slots]
        spec = first.current[0].spec if first.current is not None else None
        tasks = [s.current[0].task for s in slots if s.current is not None]
        return document(schema, first=spec, specs=specs, max_rows=max_rows, tasks=tasks, names=list(by_name))

    app.openapi = openapi  # type: ignore[method-assign]
    routes = {"/predict": (served[0], "predict"), "/invocations": (served[0], "invocations")}
    routes.update({f"/models/{s.name}/predict": (s, "predict") for s in served})
    # in front of FastAPI, not inside it as a middleware: its middleware stack costs ~20 µs a request
    return PredictRoutes(
        app,
        routes=routes,
        max_body_bytes=limit,
        max_rows=max_rows,
        capture=capture,
        shadows=shadows,
        metrics=metrics,
        variant_header=settings.variant_header,
    )


def app_from_env() -> PredictRoutes:
    """Factory for `uvicorn --factory` (used with several workers): settings from the environment."""
    text = os.environ.get(SETTINGS_ENV)
    if not text:
        raise RuntimeError(f"{SETTINGS_ENV} is not set")
    return create_app(ServeSettings.from_json(text))
