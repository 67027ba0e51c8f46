"""The status page and its data."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from mlopsctl.serving.responses import json_response
from mlopsctl.serving.service import Service


def routes(service: Service) -> APIRouter:
    router = APIRouter(tags=["monitoring"])
    live = service.live

    @router.get("/dashboard", summary="Status page (HTML, refreshes itself)")
    async def dashboard() -> Response:
        from mlopsctl.serving.dashboard import page

        return Response(page(), media_type="text/html; charset=utf-8")

    @router.get("/dashboard/data", summary="The status page's data (JSON)")
    async def dashboard_data() -> Response:
        return json_response(live.summary())

    return router
