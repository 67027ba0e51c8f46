"""What one POST /predict costs, part by part, in instructions: stable on a shared, noisy machine.

Wall-clock timings of a 100 µs request move by 2-5x when other jobs share the cores; the number of
instructions a request runs does not. This script runs the real server app in process (the lean
ASGI routes, the ONNX runner, capture, metrics: everything but uvicorn's HTTP parsing) under
valgrind's callgrind, once, through phases of N requests each. Between phases it waits while the
driver zeroes callgrind's counters, and after each phase while the driver dumps them, so each dump
holds exactly one phase's N requests (and what the capture writer's thread did for them: every
phase ends with a flush). A phase turns one part off (a no-op in its place), so its instructions
per request, taken from the full server's, are what that part costs:

    full        the server as it runs (capture on)
    nocap       the same app built with capture off (`--no-capture`)
    bare        bench/asgi_const.py: reads the body, answers a constant
    noobserve   ModelMetrics.observe (the Prometheus counters and histogram of an answer)
    nooffer     CaptureWriter.offer (records built and encoded, queued, written by the writer)
    noremember  CaptureWriter.remember (the id → predictions map that /feedback checks)
    norecords   records built and encoded (the writer then writes a few bytes)
    noput       the writer's store.put (LocalStore: temp file, fsync, rename, sha256 etag)
    notoken     secrets.token_hex for the request id

Caveats: valgrind runs what the kernel does (write, fsync) natively, so it is not counted; and it
emulates a CPU without SHA extensions, so the sha256 of each flushed object counts far more than it
costs on a CPU that has them (`noput` overstates). Instructions are not time: a cache miss costs
more than an add. Use it to see where a request's work goes and whether a change removed some.

    bench/request_cost.sh                 # needs valgrind (apt-get install -y valgrind); ~10 min
    bench/request_cost.sh 2000 full,nocap # phases of your choice
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import asgi_const  # noqa: E402
import serve_bench  # noqa: E402

PHASES = ("full", "nocap", "bare", "noobserve", "nooffer", "noremember", "norecords", "noput", "notoken")


def _swap(undo: list[Callable[[], None]], obj: Any, name: str, value: Any) -> None:
    original = vars(obj)[name] if isinstance(obj, type) else getattr(obj, name)
    setattr(obj, name, value)
    undo.append(lambda: setattr(obj, name, original))


def turn_off(phase: str, app: Any) -> Callable[[], None]:
    """Replace the part ``phase`` names with a no-op; returns what puts it back."""
    import mlopsctl.serving.asgi as asgi
    import mlopsctl.serving.capture as capture

    undo: list[Callable[[], None]] = []
    _, metrics = app.app.state.served[0].default.current
    if phase == "noobserve":
        _swap(undo, type(metrics), "observe", lambda self, *a: None)
    elif phase == "nooffer":
        _swap(undo, capture.CaptureWriter, "offer", lambda self, *a, **k: None)
    elif phase == "noremember":
        _swap(undo, capture.CaptureWriter, "remember", lambda self, *a, **k: None)
    elif phase == "norecords":
        _swap(undo, capture.CaptureWriter, "records", staticmethod(lambda *a: []))
        _swap(undo, capture, "encode_lines", lambda records: b"x\n")
    elif phase == "noput":
        _swap(undo, app.capture.store, "put", lambda *a, **k: "etag")
    elif phase == "notoken":

        class FixedIds:
            @staticmethod
            def token_hex(n: int) -> str:
                return "0123456789abcdef"

        _swap(undo, asgi, "secrets", FixedIds)
    return lambda: [u() for u in reversed(undo)]  # type: ignore[func-returns-value]


def main(n: int, phases: list[str], store: Path, sync: Path) -> None:
    from mlopsctl.serving.app import ServeSettings, create_app

    # no store poll and no timed flush inside a phase: under valgrind a phase lasts long enough for several,
    # and their instructions would be counted as the requests' (the writer still flushes every batch_rows)
    quiet: dict[str, Any] = {"store_uri": str(store), "models": [("wine", "prod")], "reload_interval": 3600.0}
    full = create_app(ServeSettings(**quiet, capture={"flush_interval_seconds": 3600.0}))
    nocap = create_app(ServeSettings(**quiet, capture=None))
    body = json.dumps({"features": serve_bench.wine_rows(1)[0]}).encode()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "query_string": b"",
    }
    sent: list[dict[str, Any]] = []
    lifespans: list[asyncio.Future[None]] = []  # kept: a task nobody holds may be collected

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def call(app: Any, times: int) -> None:
        for _ in range(times):
            sent.clear()
            await app(scope, receive, send)

    async def start(app: Any) -> None:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await inbox.put({"type": "lifespan.startup"})

        async def lifespan_send(message: dict[str, Any]) -> None:
            await outbox.put(message)

        lifespans.append(
            asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, lifespan_send))
        )
        await outbox.get()
        while True:  # the model loads in the background
            await call(app, 1)
            if sent and sent[0]["status"] == 200:
                return
            await asyncio.sleep(0.1)

    def handshake(tag: str) -> None:
        (sync / f"{tag}.ready").touch()
        while not (sync / f"{tag}.go").exists():
            time.sleep(0.2)

    async def run() -> None:
        await start(full)
        await start(nocap)
        for app in (full, nocap, asgi_const.app):
            await call(app, 300)  # warm: caches, the model's first calls
        for i, phase in enumerate(phases):
            app = {"nocap": nocap, "bare": asgi_const.app}.get(phase, full)
            put_back = turn_off(phase, full)
            await call(app, 50)
            full.capture.flush()
            handshake(f"{i}a")  # the driver zeroes the counters
            await call(app, n)
            full.capture.flush()  # the writer's share of these requests
            handshake(f"{i}b")  # the driver dumps them
            put_back()
            assert sent[0]["status"] == 200, sent[0]
        os._exit(0)  # the servers' threads need no goodbye

    import uvloop

    uvloop.run(run())


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "--build-store":
        store_dir, _, _ = serve_bench.build_store()
        print(store_dir)
        sys.exit(0)
    main(int(sys.argv[1]), sys.argv[2].split(","), Path(sys.argv[3]), Path(sys.argv[4]))
