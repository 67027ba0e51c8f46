"""The served models: what they are (`/models`), and the prediction routes as the docs show them.

The prediction routes themselves are answered before FastAPI, by `asgi.PredictRoutes`, straight from the
ASGI messages; they are declared here so `/docs` and `/openapi.json` describe them (`openapi.py` fills in
their bodies from the served signatures). A name that reaches `/models/{name}/predict` here is not served.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from mlopsctl.serving.responses import error_response, json_response
from mlopsctl.serving.service import Service

UNREACHABLE = "answered by PredictRoutes: serve the app that create_app returns, not its .app"
_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}


def routes(service: Service) -> APIRouter:
    router = APIRouter()
    slots, first = service.slots, service.first
    by_name = service.by_name

    @router.post("/predict", tags=["predict"], summary=f"Predict with {first.name} (the first served model)",
                 openapi_extra=_BODY)  # fmt: skip
    async def predict() -> Response:
        raise RuntimeError(UNREACHABLE)

    @router.post("/models/{name}/predict", tags=["predict"], summary="Predict with a named model", openapi_extra=_BODY)
    async def predict_named(name: str) -> Response:
        served = ", ".join(by_name)
        return error_response(404, "not_found", [("name", f"model {name!r} is not served here; served: {served}")])

    @router.post("/invocations", tags=["mlflow"], summary="MLflow scoring protocol (first served model)",
                 openapi_extra=_BODY)  # fmt: skip
    async def invocations() -> Response:
        raise RuntimeError(UNREACHABLE)

    @router.get("/models", tags=["models"], summary="The models served and their versions")
    async def models() -> Response:
        described = [
            {
                **(s.current[0].describe() if s.current else {"name": s.name, "loaded": False}),
                "follows": s.ref or "latest",
                "error": s.last_error,
            }
            for s in slots
        ]
        return json_response({"models": described})

    @router.get("/models/{name}", tags=["models"], summary="One served model: version, signature, metrics")
    async def model_info(name: str) -> Response:
        slot = by_name.get(name)
        if slot is None or slot.current is None:
            return error_response(404, "not_found", [("name", f"model {name!r} is not served or not loaded")])
        return json_response(slot.current[0].describe())

    return router
