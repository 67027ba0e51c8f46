"""The prediction routes as a lean ASGI layer in front of FastAPI.

FastAPI's request machinery (routing, dependency solving, response classes) costs more
per request than running the model, so `POST /predict`, `/models/{name}/predict`,
`/invocations` and the Open Inference Protocol's `/v2/models/{name}[/versions/{v}]/infer`
are answered here, straight from the ASGI messages, by the same `predict.answer`
function. Exact paths are one dict lookup; only a POST that misses them is tried as a
versioned `/infer`. Everything else (docs, health, metrics, model info, unknown paths)
goes on to the FastAPI app, which also documents these routes.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from mlopsctl.experiments.deployment import CONTROL
from mlopsctl.serving.capture import CaptureWriter
from mlopsctl.serving.metrics import ServerMetrics
from mlopsctl.serving.predict import PROTOCOLS, Answer, answer, error_body, parse, refusal_bookkeeping, sticky_unit
from mlopsctl.serving.protocols.oip import with_header
from mlopsctl.serving.reload import Route, Served, Slot
from mlopsctl.serving.shadow import ShadowRunner

Scope = dict[str, Any]
_WITH_BODY = ("POST", "PUT", "PATCH", "DELETE")
_V2, _INFER, _VERSIONS = "/v2/models/", "/infer", "/versions/"


class PredictRoutes:
    """An ASGI app: the prediction routes here, everything else passed on to ``app`` (FastAPI)."""

    def __init__(
        self,
        app: Any,
        routes: dict[str, tuple[Served, str]],
        max_body_bytes: int,
        max_rows: int,
        capture: CaptureWriter | None = None,
        shadows: ShadowRunner | None = None,
        metrics: ServerMetrics | None = None,
        variant_header: bool = False,
        versioned: dict[str, Served] | None = None,
    ) -> None:
        self.app = app
        self.versioned = versioned or {}  # name → Served, for /v2/models/{name}/versions/{v}/infer
        self.capture = capture
        self.shadows = shadows
        self.routes = routes
        self.limit = max_body_bytes
        self.max_rows = max_rows
        self.metrics = metrics
        self.variant_header = variant_header  # X-Variant tells a caller its variant: only when asked

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        version = None
        if route is None and scope["type"] == "http" and scope["method"] == "POST":
            route, version = self._versioned(scope["path"])
        if route is None:
            if scope["type"] == "http" and scope["method"] in _WITH_BODY:
                await self._bounded(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        served, endpoint = route
        plan = served.route  # read once: a route swap during this request does not affect it
        sticky, sticky_key = plan.sticky, None
        content_type, request_id, declared = "", "", None
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"x-request-id":
                request_id = value.decode("latin-1")[:128]
            elif key == b"content-length":
                declared = value
            elif key == sticky:
                sticky_key = value
        request_id = request_id or secrets.token_hex(8)
        if endpoint == "infer":  # the binary tensor extension's header travels with the content type
            content_type = self._infer_content_type(scope["headers"], content_type)
        slot = plan.pick(sticky_key) if version is None else self._pinned(plan, sticky_key, version)
        if slot is None:
            await self._version_not_served(send, served, version or "", request_id)
            return
        unit = sticky_unit(plan.experiment, sticky_key)
        body = await self._body(receive, declared)
        if body is None:
            current = slot.current
            after = None
            if current is not None:
                after = refusal_bookkeeping(current, self.capture, request_id, endpoint, 413, t0, "413", unit)
            problem = [("body", f"larger than {self.limit} bytes ([serving] max_body_bytes)")]
            refusal = PROTOCOLS[endpoint].error(413, "body_too_large", problem, request_id)
            result = Answer(413, refusal, None, None, after)
        else:
            result = await answer(slot, endpoint, content_type, request_id, body, self.max_rows, t0, self.capture, unit)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(result.body)).encode()),
            (b"x-request-id", request_id.encode("latin-1")),
        ]
        if result.version is not None:
            headers.append((b"x-model-version", str(result.version).encode()))
        if result.variant is not None and self.variant_header:
            headers.append((b"x-variant", result.variant.encode("latin-1")))
        try:
            await send({"type": "http.response.start", "status": result.status, "headers": headers})
            await send({"type": "http.response.body", "body": result.body})
        finally:  # counted and captured even when the client has gone
            if result.after is not None:
                result.after()
            if plan.experiment and 400 <= result.status < 500 and result.status != 413 and body:
                self._refused_by_candidate(plan, slot, endpoint, content_type, body)
        if plan.shadows and result.status == 200 and self.shadows is not None and body:
            self.shadows.offer(plan.shadows, endpoint, content_type, body, request_id)

    def _versioned(self, path: str) -> tuple[tuple[Served, str] | None, str | None]:
        """``/v2/models/{name}/versions/{v}/infer`` of a served name: its route and the version asked for."""
        if not (path.startswith(_V2) and path.endswith(_INFER)):
            return None, None
        name, sep, version = path[len(_V2) : -len(_INFER)].rpartition(_VERSIONS)
        served = self.versioned.get(name) if sep else None
        return (None, None) if served is None else ((served, "infer"), version)

    @staticmethod
    def _pinned(plan: Route, key: bytes | None, version: str) -> Slot | None:
        """The variant serving ``version``: the one the route picks when it does (an A/A test keeps its
        split), else the first that does; None when no variant serves it. A version is never loaded on
        request: loading takes seconds and memory, and which versions serve is the deployment's to say."""
        slot = plan.pick(key)
        current = slot.current
        if current is not None and str(current[0].version) == version:
            return slot
        for slot in plan.variants:
            current = slot.current
            if current is not None and str(current[0].version) == version:
                return slot
        return None

    @staticmethod
    def _infer_content_type(headers: list[tuple[bytes, bytes]], content_type: str) -> str:
        length = encoding = None
        for key, value in headers:
            if key == b"inference-header-content-length":
                length = value
            elif key == b"content-encoding":
                encoding = value
        return content_type if length is None and encoding is None else with_header(content_type, length, encoding)

    async def _version_not_served(self, send: Any, served: Served, version: str, request_id: str) -> None:
        versions = sorted({str(s.current[0].version) for s in served.route.variants if s.current is not None})
        problem = f"{served.name} version {version!r} is not served here; served: {', '.join(versions) or 'none yet'}"
        body = PROTOCOLS["infer"].error(404, "not_found", [("version", problem)], request_id)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode("latin-1")),
        ]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _refused_by_candidate(self, plan: Route, slot: Slot, endpoint: str, content_type: str, body: bytes) -> None:
        """A variant other than the control refused a request: if the control accepts the same input, count it
        as the candidate's regression (the canary guard judges it); if the control refuses it too, it was the
        caller's bad request and counts against nobody."""
        if self.metrics is None or slot.variant == CONTROL:
            return
        control = next((v for v in plan.variants if v.variant == CONTROL), None)
        current = control.current if control is not None else None
        if current is None:
            return
        model = current[0]
        try:
            rows, prefix, _ = parse(model, endpoint, content_type, body, self.max_rows)
            model.spec.columns(rows, field_prefix=prefix)
        except Exception:  # the control refuses it too (or cannot tell): the caller's, not the candidate's
            return
        self.metrics.candidate_refusals.labels(slot.name, slot.variant or "").inc()

    async def _bounded(self, scope: Scope, receive: Any, send: Any) -> None:
        """Any other request with a body (`/feedback`, `/retrain`, …): read up to the limit, then handed on;
        over it, 413 before the app sees a byte."""
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        body = await self._body(receive, declared)
        if body is None:
            problem = [("body", f"larger than {self.limit} bytes ([serving] max_body_bytes)")]
            data = error_body("body_too_large", problem)
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
            await send({"type": "http.response.start", "status": 413, "headers": headers})
            await send({"type": "http.response.body", "body": data})
            return
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # the app waits for a disconnect, if it waits at all

        await self.app(scope, replay, send)

    async def _body(self, receive: Any, declared: bytes | None) -> bytes | None:
        """The request body, or None once it is over the limit (declared or streamed)."""
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
