"""Hot reload: follow each served model's alias and swap in the version it points to.

A background thread polls the alias pointers (one small read each). When one moves, the
new version is loaded, verified and warmed up in that thread, then switched in with one
reference assignment, so a request sees the old model or the new one, never half of each.
A version that fails to load is reported and the old one keeps serving.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlopsctl import registry
from mlopsctl.serving.loaded import LoadedModel, load
from mlopsctl.serving.metrics import ModelMetrics, ServerMetrics
from mlopsctl.store.base import Store

log = logging.getLogger("mlopsctl.serving")


def release_freed_memory() -> None:
    """Give the heap that building a model freed back to the OS.

    Parsing an ONNX model and building its session frees tens of MB that glibc keeps
    (a 100-tree forest: ~28 MB of the server's resident memory). ctypes drops the GIL
    during the call, so requests go on meanwhile.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


@dataclass
class Slot:
    """One served model: what it follows and what it serves now."""

    name: str
    ref: str | None  # an alias to follow, a pinned version ("3"), or None for the latest version
    current: tuple[LoadedModel, ModelMetrics] | None = None
    last_error: str | None = None
    reloads: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def pinned(self) -> bool:
        return self.ref is not None and self.ref.isdigit()


class Every:
    """A daemon thread calling ``fn`` every ``interval`` seconds until stopped; an exception is logged,
    never fatal to the thread."""

    def __init__(self, name: str, interval: float, fn: Callable[[], Any]) -> None:
        self.name, self.interval, self.fn = name, interval, fn
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.fn()
            except Exception:  # never let the thread die
                log.exception("%s failed", self.name)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class Reloader:
    def __init__(
        self,
        store: Store,
        slots: list[Slot],
        metrics: ServerMetrics,
        *,
        interval: float,
        runtime: str,
        trusted: bool,
    ) -> None:
        self.store, self.slots, self.metrics = store, slots, metrics
        self.interval, self.runtime, self.trusted = interval, runtime, trusted
        self._every = Every("mlops-reload", interval, self.check_all)

    def target_version(self, slot: Slot) -> int | None:
        if slot.pinned:
            return int(slot.ref or 0)
        if slot.ref is None or slot.ref == "latest":
            nums = registry.version_numbers(self.store, slot.name)
            return nums[-1] if nums else None
        state = registry.get_alias(self.store, slot.name, slot.ref)
        return None if state is None else int(state["version"])

    def check(self, slot: Slot) -> bool:
        """Bring ``slot`` to its target version; True if it swapped."""
        with slot.lock:
            try:
                target = self.target_version(slot)
            except Exception as exc:  # the store may be briefly unreachable: keep serving
                slot.last_error = f"cannot read {slot.name}@{slot.ref}: {exc}"
                return False
            if target is None:
                slot.last_error = f"{slot.name}@{slot.ref or 'latest'} does not point to a version yet"
                return False
            previous = slot.current[0] if slot.current else None
            if previous is not None and previous.version == target:
                return False
            try:
                model = load(
                    self.store,
                    slot.name,
                    slot.ref,
                    runtime=self.runtime,
                    trusted=self.trusted,
                    version=target,
                )
            except Exception as exc:
                slot.last_error = f"cannot load {slot.name} v{target}: {exc}"
                self.metrics.reloads.labels(slot.name, "failed").inc()
                log.error("%s", slot.last_error)
                return False
            bound = self.metrics.bind(model, previous)
            slot.current = (model, bound)  # the swap: one reference assignment
            slot.last_error = None
            slot.reloads += 1
            if previous is not None:
                self.metrics.reloads.labels(slot.name, "ok").inc()
                log.info("%s: now serving v%s (was v%s)", slot.name, model.version, previous.version)
            del previous
            release_freed_memory()
            return True

    def check_all(self) -> None:
        for slot in self.slots:
            if not (slot.pinned and slot.current):
                self.check(slot)
        self.metrics.ready.set(1 if all(s.current for s in self.slots) else 0)

    def start(self) -> None:
        self._every.start()

    def stop(self) -> None:
        self._every.stop()

    def status(self) -> list[dict[str, Any]]:
        return [
            {
                "name": s.name,
                "follows": s.ref or "latest",
                "loaded": s.current is not None,
                "version": s.current[0].version if s.current else None,
                "error": s.last_error,
            }
            for s in self.slots
        ]
