"""`POST /feedback`: ground truth for earlier predictions, joined by request id (`monitoring/feedback.py`).

With a management key set, it needs the key: labels move the live metrics, alerts and retraining. At most
``max_batch_rows`` labels a request; each is checked by field, and a bad one is refused by its index while
the others are stored. A prediction labelled again counts once, with its latest label.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from mlopsctl.serving.live import Outcome
from mlopsctl.serving.management import authorised, management_key
from mlopsctl.serving.responses import error_response, json_response
from mlopsctl.serving.service import Service

_ITEMS = {"$ref": "#/components/schemas/FeedbackItem"}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"oneOf": [_ITEMS, {"type": "array", "items": _ITEMS}]}}},
    }
}


def routes(service: Service) -> APIRouter:
    router = APIRouter(tags=["monitoring"])
    store, capture, metrics, live = service.store, service.capture, service.metrics, service.live
    by_name, first, max_rows = service.by_name, service.first, service.max_rows
    key = management_key(service.settings.project)
    sequence = [0]

    def model_info(name: str, version: int) -> tuple[str, list[Any] | None]:
        cur = by_name[name].current
        if cur is not None and cur[0].version == version:
            return cur[0].task, cur[0].classes
        from mlopsctl.bundle.version import version_at

        mv = version_at(store, name, version)
        return mv.task, mv.classes

    @router.post("/feedback", summary="Ground truth for earlier predictions, by request id", openapi_extra=_BODY)
    async def feedback(request: Request) -> Response:
        from mlopsctl.monitoring.feedback import check_items, store_feedback

        if key:
            denied = authorised(request, key)
            if denied is not None:
                return denied
        if capture is None:
            return error_response(409, "capture_off", [("capture", "capture is off on this server: nothing to join")])
        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return error_response(400, "malformed_json", [("body", str(exc))])
        items = payload if isinstance(payload, list) else [payload]
        if not items:
            return error_response(422, "invalid_input", [("body", "an empty list: send at least one label")])
        if len(items) > max_rows:
            problem = f"{len(items)} labels: at most {max_rows} a request ([serving] max_batch_rows)"
            return error_response(413, "too_many_labels", [("body", problem)])
        result = await run_in_threadpool(check_items, items, capture.lookup, model_info, source="api")
        if result.accepted:
            sequence[0] += 1
            await run_in_threadpool(store_feedback, store, result.accepted, capture.writer, sequence[0])
            outcomes: dict[tuple[str, str], list[Outcome]] = {}
            for rec in result.accepted:
                predicted = capture.prediction(rec["request_id"], rec["row"])
                serving = by_name[rec["model"]].current
                if serving is not None and predicted is not None:  # every task: the live metrics of its own
                    outcomes.setdefault((rec["model"], serving[0].task), []).append(
                        ((rec["request_id"], rec["row"]), rec["time"], rec["label"], predicted)
                    )
                metrics.feedback.labels(rec["model"], "accepted").inc()
            for (name, task), got in outcomes.items():
                live.add_labels(name, task, got)
        if result.rejected:
            metrics.feedback.labels(first.name, "rejected").inc(len(result.rejected))
        body = result.to_dict()
        if not result.accepted:
            unknown = all(r["problem"].startswith("unknown request id") for r in result.rejected)
            return json_response(
                {"error": "no_label_accepted", "detail": result.rejected, **body}, 404 if unknown else 422
            )
        return json_response(body)

    return router
