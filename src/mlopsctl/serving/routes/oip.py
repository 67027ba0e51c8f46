"""The Open Inference Protocol's other routes: server metadata and health, model metadata and readiness.

``/v2/models/{name}[/versions/{v}]/infer`` itself is answered before FastAPI, by `asgi.PredictRoutes`, as
``/predict`` is; it is declared here for the docs, and a name that reaches it here is not served. A
version in a path is one a variant of the model's route serves now (`/versions/2` while an A/B test runs
v1 against v2); any other is a 404 that lists the served ones. Errors are ``{"error": "<message>"}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.responses import Response

from mlopsctl import __version__
from mlopsctl.serving.protocols.oip import error_document, model_metadata
from mlopsctl.serving.reload import Served, Slot
from mlopsctl.serving.responses import json_response
from mlopsctl.serving.service import Service

EXTENSIONS = ["binary_tensor_data"]  # inputs only: outputs are always JSON tensors
_INFER_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}


def install(app: FastAPI, service: Service) -> None:
    """Add the routes to ``app`` and their bodies to its OpenAPI document (after ``app.openapi`` is set)."""
    app.include_router(routes(service))
    inner = app.openapi

    def openapi() -> dict[str, Any]:
        from mlopsctl.serving.openapi import oip_document

        served = [(s.name, s.default.current[0] if s.default.current else None, versions(s)) for s in service.served]
        return oip_document(inner(), served, max_rows=service.max_rows)

    app.openapi = openapi  # type: ignore[method-assign]


def routes(service: Service) -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["open inference protocol"])
    by_name = {s.name: s for s in service.served}

    @router.get("", summary="Server metadata: name, version, extensions")
    async def server_metadata() -> Response:
        return json_response({"name": "mlopsctl", "version": __version__, "extensions": EXTENSIONS})

    @router.get("/health/live", summary="Liveness: the server answers")
    async def live() -> Response:
        return json_response({"live": True})

    @router.get("/health/ready", summary="Readiness: every served model is loaded (else 503)")
    async def ready() -> Response:
        waiting = [s.name for s in service.slots if s.current is None]
        if waiting:
            return _error(503, f"not loaded yet: {', '.join(waiting)}", {"ready": False})
        return json_response({"ready": True})

    @router.get("/models/{name}", summary="Model metadata: inputs and outputs with datatypes and shapes")
    async def metadata(name: str) -> Response:
        return _metadata(by_name, name, None)

    @router.get("/models/{name}/versions/{version}", summary="Model metadata of a version being served")
    async def version_metadata(name: str, version: str) -> Response:
        return _metadata(by_name, name, version)

    @router.get("/models/{name}/ready", summary="Model readiness: 200 once loaded, else 503")
    async def model_ready(name: str) -> Response:
        return _ready(by_name, name, None)

    @router.get("/models/{name}/versions/{version}/ready", summary="Readiness of a version being served")
    async def version_ready(name: str, version: str) -> Response:
        return _ready(by_name, name, version)

    @router.post("/models/{name}/infer", summary="Inference (Open Inference Protocol)", openapi_extra=_INFER_BODY)
    async def infer(name: str) -> Response:
        return _error(404, _unknown(by_name, name))

    @router.post("/models/{name}/versions/{version}/infer", summary="Inference with a version being served",
                 openapi_extra=_INFER_BODY)  # fmt: skip
    async def version_infer(name: str, version: str) -> Response:
        return _error(404, _unknown(by_name, name))

    return router


def versions(served: Served) -> list[str]:
    """The versions the model's route serves now, as the protocol spells versions (strings)."""
    return sorted({str(s.current[0].version) for s in served.route.variants if s.current is not None}, key=int)


def _slot(by_name: dict[str, Served], name: str, version: str | None) -> Slot | Response:
    """The slot a path names, or the 404/503 answer."""
    served = by_name.get(name)
    if served is None:
        return _error(404, _unknown(by_name, name))
    if version is None:
        if served.default.current is None:
            return _error(503, served.default.last_error or f"{name} is loading", {"name": name, "ready": False})
        return served.default
    for slot in served.route.variants:
        if slot.current is not None and str(slot.current[0].version) == version:
            return slot
    listed = ", ".join(versions(served)) or "none yet"
    return _error(404, f"{name} version {version!r} is not served here; served: {listed}")


def _metadata(by_name: dict[str, Served], name: str, version: str | None) -> Response:
    slot = _slot(by_name, name, version)
    if isinstance(slot, Response):
        return slot
    assert slot.current is not None
    return json_response(model_metadata(slot.current[0], versions(by_name[name])))


def _ready(by_name: dict[str, Served], name: str, version: str | None) -> Response:
    slot = _slot(by_name, name, version)
    return slot if isinstance(slot, Response) else json_response({"name": name, "ready": True})


def _unknown(by_name: dict[str, Served], name: str) -> str:
    return f"model {name!r} is not served here; served: {', '.join(by_name)}"


def _error(status: int, message: str, extra: dict[str, Any] | None = None) -> Response:
    body = error_document("not_found" if status == 404 else "not_ready", [("model", message)])
    return json_response({**body, **(extra or {})}, status)
