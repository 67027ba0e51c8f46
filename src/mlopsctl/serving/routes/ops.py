"""What operators and load balancers ask: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from mlopsctl.serving.responses import json_response
from mlopsctl.serving.service import Service


def routes(service: Service) -> APIRouter:
    router = APIRouter(tags=["ops"])
    reloader, metrics = service.reloader, service.metrics

    @router.get("/health", summary="Liveness: the process answers")
    async def health() -> Response:
        return json_response({"status": "ok"})

    @router.get("/ready", summary="Readiness: every served model is loaded")
    async def ready() -> Response:
        status = reloader.status()
        ok = all(s["loaded"] for s in status)
        return json_response({"ready": ok, "models": status}, 200 if ok else 503)

    @router.get("/metrics", summary="Prometheus metrics")
    async def prometheus_metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
