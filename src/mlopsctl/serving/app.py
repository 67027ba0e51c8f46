"""The HTTP app: the service's parts, the routes over them, error bodies and the OpenAPI document.

`create_app` builds the parts (`service.Service`: store, models, reloader, capture, live statistics,
shadows, guard), adds the routes (`routes/`: ops, models, feedback, dashboard, retrain) to a FastAPI app
whose lifespan starts and stops the parts, and puts the lean prediction routes (`asgi.PredictRoutes`:
``POST /predict``, ``/models/{name}/predict``, ``/invocations``) in front of it. Errors are JSON bodies
that name the field; a 5xx means a bug.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from mlopsctl import __version__
from mlopsctl.serving.asgi import PredictRoutes
from mlopsctl.serving.responses import error_response
from mlopsctl.serving.service import Service
from mlopsctl.serving.settings import SETTINGS_ENV, ServeSettings

log = logging.getLogger("mlopsctl.serving")
__all__ = ["SETTINGS_ENV", "ServeSettings", "app_from_env", "create_app"]


def create_app(settings: ServeSettings) -> PredictRoutes:
    """The service: the FastAPI app (``.app``) behind the lean prediction routes."""
    from mlopsctl.serving.routes import dashboard, docs, feedback, models, oip, ops, retrain

    service = Service.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="mlopsctl prediction service",
        version=__version__,
        lifespan=lifespan,
        description="Predictions from models in the mlopsctl registry. Models: "
        + ", ".join(f"`{n}@{r or 'latest'}`" for n, r in settings.models),
        docs_url=None,  # served by routes/docs.py from installed files: FastAPI's page loads from a CDN
        redoc_url=None,
    )
    for part in (models, ops, feedback, dashboard, retrain):
        app.include_router(part.routes(service))
    app.include_router(docs.routes(app))
    _state(app, service)
    _errors(app)
    _openapi(app, service)
    oip.install(app, service)  # the Open Inference Protocol's /v2 routes, and their part of the OpenAPI document
    routes = {"/predict": (service.served[0], "predict"), "/invocations": (service.served[0], "invocations")}
    routes.update({f"/models/{s.name}/predict": (s, "predict") for s in service.served})
    routes.update({f"/v2/models/{s.name}/infer": (s, "infer") for s in service.served})
    # in front of FastAPI, not inside it as a middleware: its middleware stack costs ~20 µs a request
    return PredictRoutes(
        app,
        routes=routes,
        max_body_bytes=settings.max_body_bytes,
        max_rows=settings.max_batch_rows,
        capture=service.capture,
        shadows=service.shadows,
        metrics=service.metrics,
        variant_header=settings.variant_header,
        versioned={s.name: s for s in service.served},  # /v2/models/{name}/versions/{v}/infer
    )


def _state(app: FastAPI, service: Service) -> None:
    """The parts, where tests and tools look for them (``app.state``)."""
    app.state.service = service
    app.state.reloader = service.reloader
    app.state.slots = service.by_name
    app.state.metrics = service.metrics
    app.state.capture = service.capture
    app.state.live = service.live
    app.state.served = service.served
    app.state.guard = service.guard
    app.state.shadows = service.shadows


def _errors(app: FastAPI) -> None:
    """FastAPI's own errors in the one error body."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        answer = error_response(exc.status_code, "http_error", [("path", f"{request.url.path}: {exc.detail}")])
        answer.headers.update(exc.headers or {})  # 405 names the allowed methods (Allow), as HTTP asks
        return answer

    @app.exception_handler(RequestValidationError)
    async def request_error(request: Request, exc: RequestValidationError) -> Response:
        problems = [(".".join(str(x) for x in e["loc"]), e["msg"]) for e in exc.errors()]
        return error_response(422, "invalid_input", problems)


def _openapi(app: FastAPI, service: Service) -> None:
    """The OpenAPI document, regenerated on each call: the request schemas follow the versions being served."""
    from mlopsctl.serving.openapi import document

    def openapi() -> dict[str, Any]:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        slots = service.slots
        specs = [s.current[0].spec if s.current is not None else None for s in slots]
        first = service.first.current[0].spec if service.first.current is not None else None
        tasks = [s.current[0].task for s in slots if s.current is not None]
        names = [s.name for s in slots]
        return document(schema, first=first, specs=specs, max_rows=service.max_rows, tasks=tasks, names=names)

    app.openapi = openapi  # type: ignore[method-assign]


def app_from_env() -> PredictRoutes:
    """Factory for `uvicorn --factory` (used with several workers): settings from the environment."""
    text = os.environ.get(SETTINGS_ENV)
    if not text:
        raise RuntimeError(f"{SETTINGS_ENV} is not set")
    return create_app(ServeSettings.from_json(text))
