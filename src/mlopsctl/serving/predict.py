"""The hot path: validated rows in, predictions out, in one short function.

Every protocol (native, MLflow) turns its body into a list of row objects, calls
``predict_rows`` and formats what it returns. Nothing here touches the disk.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from starlette.concurrency import run_in_threadpool

from mlopsctl.errors import ValidationError
from mlopsctl.serving.loaded import LoadedModel
from mlopsctl.serving.protocols import protocols

log = logging.getLogger("mlopsctl.serving")
PROTOCOLS = protocols()

if TYPE_CHECKING:
    from mlopsctl.serving.capture import CaptureWriter
    from mlopsctl.serving.metrics import ModelMetrics
    from mlopsctl.serving.reload import Slot


def predict_rows(model: LoadedModel, rows: list[Any], *, field_prefix: str = "") -> tuple[list[Any], Any]:
    """Predictions for ``rows`` and class probabilities per row (None for regression)."""
    cols = model.spec.columns(rows, field_prefix=field_prefix)
    return model.runner.predict(cols)


def predict_columns(
    model: LoadedModel, rows: list[Any], field_prefix: str
) -> tuple[dict[str, list[Any]], list[Any], Any]:
    """As ``predict_rows``, also returning the validated columns (what capture records)."""
    cols = model.spec.columns(rows, field_prefix=field_prefix)
    preds, probas = model.runner.predict(cols)
    return cols, preds, probas


def native_rows(payload: Any, max_rows: int) -> tuple[list[Any], bool, str]:
    """The rows of a `/predict` body: ``{"features": {...}}`` (one row), ``{"instances": [...]}``, or a flat
    object of the features themselves (one row: ``{"alcohol": 9.4, ...}``, ``{"text": "..."}``)."""
    if not isinstance(payload, dict):
        raise ValidationError("body", [("body", 'expected an object with "features" or "instances"')])
    if "features" not in payload and "instances" not in payload:
        return [payload], True, ""  # a flat row: validation names any field that is not a feature
    if "features" in payload and "instances" not in payload:
        extra = [k for k in payload if k != "features"]
        if extra:
            raise ValidationError("body", [(k, 'unknown field: expected only "features"') for k in extra])
        return [payload["features"]], True, "features"
    if "instances" in payload and "features" not in payload:
        extra = [k for k in payload if k != "instances"]
        if extra:
            raise ValidationError("body", [(k, 'unknown field: expected only "instances"') for k in extra])
        rows = payload["instances"]
        if not isinstance(rows, list) or not rows:
            raise ValidationError("body", [("instances", "expected a non-empty array of objects")])
        if len(rows) > max_rows:
            raise ValidationError("body", [("instances", f"{len(rows)} rows: at most {max_rows} per request")])
        return rows, False, "instances"
    raise ValidationError("body", [("body", 'expected exactly one of "features" (one row) or "instances" (many rows)')])


def native_response(
    model: LoadedModel, preds: list[Any], probas: Any, single: bool, variant: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if probas is not None and model.classes is not None:
        keys = model.class_keys
        # numpy scalars: orjson (OPT_SERIALIZE_NUMPY) prints float32 as 0.97, not 0.9700000286102295
        if single:
            p = probas[0]
            out = {
                "prediction": preds[0],
                "probabilities": dict(zip(keys, p, strict=True)),
                "confidence": p[p.argmax()],
            }
        else:
            prob_dicts = [dict(zip(keys, p, strict=True)) for p in probas]
            out = {"predictions": preds, "probabilities": prob_dicts, "confidence": list(probas.max(axis=1))}
    else:
        out = {"prediction": preds[0]} if single else {"predictions": preds}
    out["model"] = model.name
    out["model_version"] = model.version
    out["variant"] = variant or model.alias or f"v{model.version}"
    return out


# -- one request, whatever carried it ---------------------------------------------------------

INLINE_ROWS = 64  # larger batches (or any scikit-learn model) run in a worker thread


class Answer(NamedTuple):
    status: int
    body: bytes
    version: int | None
    variant: str | None = None
    # the request's bookkeeping (metrics, capture), for the caller to run once the answer is sent
    after: Callable[[], None] | None = None


def error_body(error: str, problems: list[tuple[str, str]], request_id: str | None = None) -> bytes:
    body: dict[str, Any] = {"error": error, "detail": [{"field": f, "problem": p} for f, p in problems]}
    if request_id:
        body["request_id"] = request_id
    return orjson.dumps(body)


class Refused(Exception):
    """A request that cannot be answered: its status, error code and problems."""

    def __init__(self, status: int, error: str, problems: list[tuple[str, str]], note: str) -> None:
        self.status, self.error, self.problems, self.note = status, error, problems, note
        super().__init__(note)


def json_payload(content_type: str, body: bytes, *, csv: bool = False) -> Any:
    """A JSON body, parsed. Any content type is read as JSON (curl sends form-urlencoded by default), except
    multipart and (where the protocol does not take it) CSV."""
    if content_type.startswith(("multipart/", "text/csv")):
        also = " or text/csv" if csv else ""
        problems = [("content-type", f"{content_type!r}: send application/json{also}")]
        raise Refused(415, "unsupported_media_type", problems, "415")
    if not body:
        raise ValidationError("body", [("body", "empty body: expected a JSON object")])
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refused(400, "malformed_json", [("body", str(exc))], "400") from None


def parse(
    model: LoadedModel, endpoint: str, content_type: str, body: bytes, max_rows: int
) -> tuple[list[Any], str, bool]:
    """The rows of a request body in the protocol ``endpoint`` names, the field prefix for errors, and
    whether it was a single row."""
    return PROTOCOLS[endpoint].rows(model, content_type, body, max_rows)


def sticky_unit(experiment: str | None, sticky_key: bytes | None) -> str | None:
    """The unit an experiment's rows are clustered by: the caller's sticky key, hashed with the experiment id
    (the raw key, a user id, is never written), or None outside an experiment or without the header."""
    if not experiment or not sticky_key:
        return None
    return hashlib.blake2b(experiment.encode() + b"\0" + sticky_key, digest_size=8).hexdigest()


def refusal_bookkeeping(
    current: tuple[LoadedModel, ModelMetrics],
    capture: CaptureWriter | None,
    request_id: str,
    endpoint: str,
    status: int,
    t0: float,
    note: str,
    unit: str | None = None,
) -> Callable[[], None]:
    """What a refused request leaves behind, to run once its answer is sent: the error counted, the
    request captured (without inputs)."""
    model, mm = current
    elapsed = time.perf_counter() - t0

    def after() -> None:
        mm.error(endpoint, status)
        if capture is not None:
            capture.offer(model, request_id, endpoint, status, elapsed, None, None, None, note, mm.variant, unit=unit)

    return after


async def answer(
    slot: Slot,
    endpoint: str,
    content_type: str,
    request_id: str,
    body: bytes,
    max_rows: int,
    t0: float,
    capture: CaptureWriter | None = None,
    unit: str | None = None,
) -> Answer:
    """Parse, validate, predict and format one request to ``slot`` (``endpoint``: predict | invocations).

    Its bookkeeping, the metrics and the capture records, is left to the caller (``Answer.after``), to run
    once the answer is sent: it then overlaps with the client reading the answer. What must be known
    before the answer leaves (the request id, for feedback sent at once) is recorded here. ``unit`` goes
    into the capture records (`sticky_unit`)."""
    current = slot.current  # read once: a swap during this request does not affect it
    if current is None:
        problem = slot.last_error or f"{slot.name} is loading"
        return Answer(503, PROTOCOLS[endpoint].error(503, "not_ready", [("model", problem)], request_id), None)
    model, mm = current
    refused: Refused | None = None
    try:
        rows, prefix, single = parse(model, endpoint, content_type, body, max_rows)
        if model.runtime == "onnx" and len(rows) <= INLINE_ROWS:
            cols, preds, probas = predict_columns(model, rows, prefix)
        else:
            cols, preds, probas = await run_in_threadpool(predict_columns, model, rows, prefix)
    except ValidationError as exc:
        refused = Refused(422, "invalid_input", exc.problems or [("body", str(exc))], str(exc)[:500])
    except Refused as exc:
        refused = exc
    except Exception as exc:  # a bug or a broken model: a 500 that names the request, the server goes on
        log.exception("%s v%s: request %s failed", model.name, model.version, request_id)
        refused = Refused(
            500, "internal_error", [("model", f"{type(exc).__name__}: the model failed")], repr(exc)[:500]
        )
    protocol = PROTOCOLS[endpoint]
    if refused is not None:
        counted = refusal_bookkeeping(current, capture, request_id, endpoint, refused.status, t0, refused.note, unit)
        body_out = protocol.error(refused.status, refused.error, refused.problems, request_id)
        return Answer(refused.status, body_out, model.version, mm.variant, counted)
    out = protocol.answer(model, preds, probas, single, mm.variant, request_id)
    elapsed = time.perf_counter() - t0
    out["processing_time_ms"] = round(elapsed * 1000, 3)
    if capture is not None:
        capture.remember(request_id, model.name, model.version, preds)  # feedback may follow the answer at once

    def after() -> None:
        mm.observe(endpoint, elapsed, preds)
        if capture is not None:
            variant = mm.variant
            capture.offer(
                model, request_id, endpoint, 200, elapsed, cols, preds, probas, None, variant, remember=False, unit=unit
            )

    return Answer(200, orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY), model.version, mm.variant, after)
