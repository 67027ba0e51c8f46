"""`/docs`: Swagger UI from files installed with the server (the fastapi-swagger package), never a CDN.

FastAPI's own page loads Swagger UI from a CDN, which leaves `/docs` blank on a machine without the
internet (a laptop on a plane, a private subnet with no NAT gateway). Here the page, its script and its
stylesheet are served by the server itself, at relative URLs (so a path prefix in front of it works);
Swagger UI 5 reads the OpenAPI 3.1 document `/openapi.json` the server writes. ReDoc is not offered: no
package ships it for offline use.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import Response

_ASSETS = {
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


@cache
def _asset(name: str) -> bytes:
    return resources.files("fastapi_swagger.resources").joinpath(name).read_bytes()


def routes(app: FastAPI) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def swagger_ui() -> Response:
        return get_swagger_ui_html(
            openapi_url="openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url="docs/assets/swagger-ui-bundle.js",
            swagger_css_url="docs/assets/swagger-ui.css",
            swagger_favicon_url="docs/assets/favicon-32x32.png",
            swagger_ui_parameters={"tryItOutEnabled": True, "displayRequestDuration": True},
        )

    @router.get("/docs/assets/{name}")
    async def asset(name: str) -> Response:
        kind = _ASSETS.get(name)
        if kind is None:
            return Response(status_code=404)
        return Response(_asset(name), media_type=kind, headers={"Cache-Control": "public, max-age=86400"})

    return router
