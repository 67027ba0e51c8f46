"""Shadow traffic: a copy of each answered request goes to the shadow variants, after the answer.

The request path only appends the raw request to a bounded queue once its response has been
sent (a full queue drops the copy and counts it). One background thread parses it again and
runs each shadow's model; the shadows' answers are captured (variant ``shadow-v{N}``) and
counted, never returned, and whatever a shadow does (an error, a crash) stays in this
thread. Capture is handed back to the event loop, the only thread that queues records.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Any

from mlopsctl.errors import ValidationError
from mlopsctl.serving.predict import Refused, parse, predict_columns

if TYPE_CHECKING:
    from mlopsctl.serving.capture import CaptureWriter
    from mlopsctl.serving.metrics import ServerMetrics
    from mlopsctl.serving.reload import Slot

log = logging.getLogger("mlopsctl.shadow")


class ShadowRunner:
    def __init__(
        self, metrics: ServerMetrics, capture: CaptureWriter | None, *, max_rows: int, capacity: int = 1000
    ) -> None:
        self.metrics, self.capture, self.max_rows, self.capacity = metrics, capture, max_rows, capacity
        self.queue: deque[tuple[Any, ...]] = deque()
        self.done = 0
        self.failed = 0
        self.dropped = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def offer(self, shadows: tuple[Slot, ...], endpoint: str, content_type: str, body: bytes, request_id: str) -> None:
        """Queue a copy of an answered request (called after the response was sent)."""
        if len(self.queue) >= self.capacity:
            self.dropped += 1
            self.metrics.shadow_dropped.labels(shadows[0].name).inc()
            return
        self.queue.append((shadows, endpoint, content_type, body, request_id))
        self._wake.set()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mlops-shadow", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            while self.queue:
                item = self.queue.popleft()
                for slot in item[0]:
                    self.run_one(slot, *item[1:])

    def run_one(self, slot: Slot, endpoint: str, content_type: str, body: bytes, request_id: str) -> int:
        """Answer the copy with ``slot``'s model; returns the status it got (never raises)."""
        current = slot.current
        if current is None:
            return 503
        model, mm = current
        t0 = time.perf_counter()
        cols = preds = probas = None
        note = None
        try:
            rows, prefix, _ = parse(model, endpoint, content_type, body, self.max_rows)
            cols, preds, probas = predict_columns(model, rows, prefix)
            status = 200
        except ValidationError as exc:
            status, note = 422, str(exc)[:500]
        except Refused as exc:
            status, note = exc.status, exc.note
        except Exception as exc:  # a shadow's failure never reaches the caller
            log.warning("shadow %s v%s failed on %s: %r", slot.variant, model.version, request_id, exc)
            status, note = 500, repr(exc)[:500]
        elapsed = time.perf_counter() - t0
        variant = mm.variant
        self.metrics.shadow_requests.labels(model.name, variant, str(model.version), str(status)).inc()
        self.metrics.shadow_latency.labels(model.name, variant).observe(elapsed)
        if status == 200:
            self.done += 1
        else:
            self.failed += 1
        if self.capture is not None and self._loop is not None:
            args = (model, request_id, endpoint, status, elapsed, cols, preds, probas, note, variant)
            try:
                self._loop.call_soon_threadsafe(partial(self.capture.offer, remember=False), *args)
            except RuntimeError:  # the loop is closed: the server is going down
                pass
        return status

    def status(self) -> dict[str, Any]:
        return {"queued": len(self.queue), "done": self.done, "failed": self.failed, "dropped": self.dropped}
