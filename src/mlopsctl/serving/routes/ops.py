"""What operators and load balancers ask: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from mlopsctl import __version__
from mlopsctl.serving.responses import error_response, json_response
from mlopsctl.serving.service import Service


def routes(service: Service) -> APIRouter:
    router = APIRouter(tags=["ops"])
    reloader, metrics = service.reloader, service.metrics

    started = time.time()

    @router.get("/health", summary="Liveness: the process answers, with each check's state")
    async def health() -> Response:
        """Cheap: what the reloader last saw (it polls the store every reload interval), never a store read.
        Always 200 while the process answers; ``status`` is ``degraded`` when a check is not ok. `/ready` is
        the load balancer's probe."""
        now = time.time()
        checks: dict[str, Any] = {
            s.name: {
                "status": "ok" if s.current is not None else "not_loaded",
                "version": s.current[0].version if s.current is not None else None,
                **({"error": s.last_error} if s.last_error else {}),
            }
            for s in service.slots
        }
        read_at = reloader.store_read_at
        store = {
            "status": "ok" if reloader.store_error is None and read_at is not None else "unreachable",
            "uri": service.settings.store_uri,
            "last_read": None if read_at is None else _iso(read_at),
            **({"error": reloader.store_error} if reloader.store_error else {}),
        }
        ok = store["status"] == "ok" and all(c["status"] == "ok" for c in checks.values())
        body = {
            "status": "ok" if ok else "degraded",
            "time": _iso(now),
            "uptime_seconds": round(now - started, 1),
            "version": __version__,
            "checks": {"models": checks, "store": store},
        }
        return json_response(body)

    @router.get("/ping", summary="MLflow's liveness probe: 200 once the first model is loaded, else 404")
    async def ping() -> Response:
        if service.first.current is None:
            return error_response(404, "not_ready", [("model", f"{service.first.name} is not loaded yet")])
        return json_response({"status": "ok"})

    @router.get("/version", summary="The server's version (MLflow's scoring-server route)")
    async def version() -> Response:
        return Response(__version__.encode(), media_type="text/plain; charset=utf-8")

    @router.get("/ready", summary="Readiness: every served model is loaded")
    async def ready() -> Response:
        status = reloader.status()
        ok = all(s["loaded"] for s in status)
        return json_response({"ready": ok, "models": status}, 200 if ok else 503)

    @router.get("/metrics", summary="Prometheus metrics")
    async def prometheus_metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")
