"""The JSON answers of the FastAPI routes: one shape for every error, as the prediction routes answer."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from mlopsctl.serving.predict import error_body


class JSONBytes(Response):
    media_type = "application/json"


def json_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONBytes(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status, headers=headers)


def error_response(status: int, error: str, problems: list[tuple[str, str]]) -> Response:
    """``{"error": ..., "detail": [{"field", "problem"}, ...]}`` with ``status``."""
    return JSONBytes(error_body(error, problems), status_code=status)
