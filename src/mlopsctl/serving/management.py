"""The management key: who may start retraining, read its runs, and send labels once a key is set.

The routes that need it (`POST /retrain`, `GET /retrain/{id}` in `routes/retrain.py`, and `POST /feedback`
when a key is set) change what production serves, so they need it, sent as
``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. The key comes from the environment
(``MLOPS_API_KEY``) or ``[serving] api_key``; a server without one keeps the retrain routes shut (401 for
everyone). The key is compared in constant time and never written anywhere: not in logs, answers, run
records or the process title.
"""

from __future__ import annotations

import hmac
import os

from fastapi import Request
from starlette.responses import Response

from mlopsctl.serving.responses import error_response

KEY_ENV = "MLOPS_API_KEY"


def management_key(project: str | None) -> str:
    """The key from the environment, else from the project's ``[serving] api_key``; "" when none."""
    key = os.environ.get(KEY_ENV, "")
    if not key and project:
        from mlopsctl.config import load_config

        key = load_config(project).serving.api_key
    return key


def refuse(status: int, error: str, field: str, problem: str) -> Response:
    return error_response(status, error, [(field, problem)])


def authorised(request: Request, key: str) -> Response | None:
    """None when the request carries the key; else the 401 answer (which never echoes what was sent)."""
    if not key:
        return refuse(
            401, "unauthorized", "authorization", f"management endpoints are off: start the server with {KEY_ENV} set"
        )
    sent = request.headers.get("x-api-key", "")
    auth = request.headers.get("authorization", "")
    if not sent and auth[:7].lower() == "bearer ":
        sent = auth[7:].strip()
    if not sent:
        return refuse(401, "unauthorized", "authorization", "send the key as 'Authorization: Bearer <key>'")
    if not hmac.compare_digest(sent.encode(), key.encode()):
        return refuse(401, "unauthorized", "authorization", "the key is not right")
    return None
