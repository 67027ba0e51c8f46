"""The parts a server runs, built once from its settings, started and stopped together.

`Service.build` makes each part from `ServeSettings`: the store, the metrics, one `Slot` per served model
and its `Served` route, the `Reloader` that follows aliases and deployments, the capture writer, the live
statistics, the shadow runner and the canary guard. None of them knows HTTP; the routes (`routes/`) read
them and `app.create_app` puts routes and parts together. `start` runs before the first request (every
model loaded first), `stop` after the last (the capture buffer written out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from mlopsctl.errors import ValidationError
from mlopsctl.serving.capture import CaptureWriter
from mlopsctl.serving.live import LiveStats
from mlopsctl.serving.metrics import ServerMetrics
from mlopsctl.serving.reload import Every, Reloader, Route, Served, Slot
from mlopsctl.serving.settings import ServeSettings
from mlopsctl.serving.shadow import ShadowRunner
from mlopsctl.store.base import Store, open_store

# request ids read back from the store's capture for POST /feedback (filled only when feedback asks)
FEEDBACK_INDEX_LIMIT = 50_000


@dataclass
class Service:
    settings: ServeSettings
    store: Store
    metrics: ServerMetrics
    slots: list[Slot]
    served: list[Served]
    reloader: Reloader
    capture: CaptureWriter | None
    live: LiveStats
    shadows: ShadowRunner
    guard: Any  # experiments.guard.Guard
    guard_every: Every
    emf: Any = None  # monitoring.emf.EmfEmitter when [monitoring.cloudwatch] or MLOPS_CLOUDWATCH asks
    compactor: Every | None = None  # capture compaction when [monitoring.capture] compact_in_server asks

    @property
    def first(self) -> Slot:
        """The model `/predict` and `/invocations` answer for."""
        return self.slots[0]

    @property
    def by_name(self) -> dict[str, Slot]:
        return {s.name: s for s in self.slots}

    @property
    def max_rows(self) -> int:
        return self.settings.max_batch_rows

    @classmethod
    def build(cls, settings: ServeSettings) -> Service:
        from mlopsctl.bundle.ref import ModelRef
        from mlopsctl.config import GuardSection, NotifySection
        from mlopsctl.experiments.guard import Guard
        from mlopsctl.monitoring.notify import notifiers
        from mlopsctl.serving.live import KEEP_SECONDS

        for name, ref in settings.models:
            ModelRef.of(name, ref)  # a reference that names nothing, or is ambiguous (wine@v3), is refused at start
        if not settings.models:
            raise ValidationError("no model to serve", [("model", "pass --model NAME[@ALIAS]")])
        if settings.trusted_types:
            from mlopsctl.config import allow_code_from

            allow_code_from(settings.project)  # the project's own model code, named in [registry] trusted_types
        store = open_store(settings.store_uri)
        metrics = ServerMetrics()
        for name, _ in settings.models:
            metrics.declare(name)
        slots = [Slot(name, ref) for name, ref in settings.models]
        served = [Served(s.name, s.ref, s, Route.single(s)) for s in slots]
        reloader = Reloader(
            store,
            served,
            metrics,
            interval=settings.reload_interval,
            runtime=settings.runtime,
            trusted_types=tuple(settings.trusted_types),
        )
        capture = _capture(settings, store, metrics)
        guard_cfg = GuardSection(**settings.guard)
        live = LiveStats(
            store,
            metrics,
            slots,
            capture,
            accuracy_window=settings.accuracy_window,
            keep_seconds=max(KEEP_SECONDS, guard_cfg.window + 60),
            served=served,
        )
        shadows = ShadowRunner(metrics, capture, max_rows=settings.max_batch_rows)
        guard = Guard(store, served, live, metrics, guard_cfg, notifiers(NotifySection(**settings.notify)))
        guard_every = Every("mlops-guard", guard_cfg.interval, guard.tick)
        from mlopsctl.config import service_slug
        from mlopsctl.monitoring.emf import EmfEmitter

        # this process's own registry, never the merged one of --workers N: each worker sends its own counts
        emf = EmfEmitter.from_settings(
            metrics.registry, settings.cloudwatch, default_service=service_slug(settings.models[0][0])
        )
        return cls(
            settings,
            store,
            metrics,
            slots,
            served,
            reloader,
            capture,
            live,
            shadows,
            guard,
            guard_every,
            emf,
            _compactor(settings, store),
        )

    async def start(self) -> None:
        """Load every model, then start the background parts (before the first request)."""
        await run_in_threadpool(self.reloader.check_all)
        self.reloader.start()
        if self.capture is not None:
            self.capture.start()
        self.shadows.start()
        await run_in_threadpool(self.live.start)
        self.guard_every.start()
        if self.emf is not None:
            self.emf.start()
        if self.compactor is not None:
            self.compactor.start()

    async def stop(self) -> None:
        """Stop the background parts; the capture buffer is written before the process exits."""
        self.reloader.stop()
        self.guard_every.stop()
        if self.compactor is not None:
            self.compactor.stop()
        self.live.stop()
        self.shadows.stop()
        if self.emf is not None:
            self.emf.stop()  # writes the last partial interval
        if self.capture is not None:
            await run_in_threadpool(self.capture.close)
        from mlopsctl.serving.metrics import multiprocess

        if multiprocess():  # this worker's gauges leave the merged view
            import os

            from prometheus_client import multiprocess as mp

            mp.mark_process_dead(os.getpid())


def _compactor(settings: ServeSettings, store: Store) -> Every | None:
    """The background compactor ``[monitoring.capture] compact_in_server`` asks for (one replica at a time)."""
    if settings.capture is None:
        return None
    from mlopsctl.config import CaptureSection
    from mlopsctl.monitoring.compaction import BackgroundCompactor

    cs = CaptureSection(**settings.capture)
    if not cs.compact_in_server:
        return None
    job = BackgroundCompactor(
        store, compact_after=cs.compact_after, keep_raw=cs.keep_raw_hours * 3600, lease_seconds=cs.compact_lease
    )
    return Every("mlops-compact", cs.compact_interval, job.tick)


def _capture(settings: ServeSettings, store: Store, metrics: ServerMetrics) -> CaptureWriter | None:
    """The capture writer ``[monitoring.capture]`` asks for (None when capture is off)."""
    if settings.capture is None:
        return None
    from mlopsctl.config import CaptureSection
    from mlopsctl.monitoring.captured import CapturedIndex

    cs = CaptureSection(**settings.capture)
    if not cs.enabled:
        return None
    others = None
    if cs.feedback_lookback > 0:
        names = [name for name, _ in settings.models]
        others = CapturedIndex(store, names, lookback=cs.feedback_lookback, limit=FEEDBACK_INDEX_LIMIT)
    return CaptureWriter(
        store,
        metrics,
        sample_rate=cs.sample_rate,
        buffer_rows=cs.buffer_rows,
        batch_rows=cs.batch_rows,
        flush_interval=cs.flush_interval_seconds,
        recent_requests=cs.recent_requests,
        recent_rows=cs.recent_rows,
        others=others,
        wal_dir=cs.wal_dir or None,
    )
