"""Hot reload: follow each served model's alias and deployment, swap in what they point to.

A background thread polls the alias pointers and the deployment of each served alias (one
small read each). When an alias moves, the new version is loaded, verified and warmed up in
that thread, then switched in with one reference assignment, so a request sees the old model
or the new one, never half of each. A version that fails to load is reported and the old one
keeps serving.

A deployment (``experiments/deployment.py``) splits the traffic of an alias between variants
(an A/B test) and copies it to shadows. It becomes a `Route`: every variant's slot is loaded
first, then the route is swapped in, again with one assignment. A route that cannot be built
(a version that does not load) is not swapped in; the old one keeps serving and the error is
reported.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlopsctl import registry
from mlopsctl.serving.loaded import LoadedModel, load
from mlopsctl.serving.metrics import ModelMetrics, ServerMetrics
from mlopsctl.store.base import Store

if TYPE_CHECKING:
    from mlopsctl.experiments.deployment import Deployment

log = logging.getLogger("mlopsctl.serving")


TRIM_INTERVAL = 30.0  # seconds between two returns of freed heap to the OS (see release_freed_memory)


def release_freed_memory() -> None:
    """Give the heap that building a model freed back to the OS.

    Parsing an ONNX model and building its session frees tens of MB that glibc keeps
    (a 100-tree forest: ~28 MB of the server's resident memory). Batches predicted in the
    thread pool leave freed memory in each thread's arena too: the reloader calls this every
    ``TRIM_INTERVAL`` seconds (under 0.5 ms a call; after 100-row traffic it took the server
    from 145 to 141 MB). ctypes drops the GIL during the call, so requests go on meanwhile.
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
    variant: str | None = None  # the name responses and capture give it; None: the alias, else "v{version}"
    current: tuple[LoadedModel, ModelMetrics] | None = None
    last_error: str | None = None
    reloads: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def pinned(self) -> bool:
        return self.ref is not None and self.ref.isdigit()

    @property
    def alias(self) -> str | None:
        """The alias this slot follows; None for a pinned version or the latest one."""
        return self.ref if self.ref and not self.pinned and self.ref != "latest" else None

    def variant_name(self, version: int) -> str:
        return self.variant or self.alias or f"v{version}"


BASIS = 10_000  # weights are routed in hundredths of a percent


@dataclass(frozen=True)
class Route:
    """Where one model's requests go: variants by weight, copies to shadows. Never changed, only replaced."""

    variants: tuple[Slot, ...]
    bounds: tuple[int, ...]  # cumulative upper bound of each variant in [0, BASIS)
    shadows: tuple[Slot, ...] = ()
    sticky: bytes | None = None  # lower-case header whose value pins a caller to a variant
    salt: bytes = b""  # the experiment id: a new experiment reshuffles callers
    experiment: str | None = None
    etag: str | None = None  # of the deployment it was built from

    @classmethod
    def single(cls, slot: Slot, shadows: tuple[Slot, ...] = (), etag: str | None = None) -> Route:
        return cls((slot,), (BASIS,), shadows, etag=etag)

    def pick(self, key: bytes | None = None) -> Slot:
        """The variant for one request: by the hash of ``key`` when given (the same key always gets the
        same variant, on any replica, across restarts), else at random by weight."""
        if len(self.variants) == 1:
            return self.variants[0]
        if key:
            digest = hashlib.blake2b(self.salt + b"\0" + key, digest_size=8).digest()
            point = int.from_bytes(digest, "big") % BASIS
        else:
            point = int(random.random() * BASIS)
        for slot, bound in zip(self.variants, self.bounds, strict=True):
            if point < bound:
                return slot
        return self.variants[-1]

    def slots(self) -> list[Slot]:
        return [*self.variants, *self.shadows]


def bounds_for(weights: list[float]) -> tuple[int, ...]:
    """Cumulative bounds in BASIS units for weights in percent (they add up to 100)."""
    out, acc = [], 0.0
    for w in weights:
        acc += w
        out.append(round(acc * BASIS / 100))
    out[-1] = BASIS
    return tuple(out)


@dataclass
class Served:
    """One model name this server answers for: its default slot and its current route."""

    name: str
    ref: str | None
    default: Slot
    route: Route
    last_error: str | None = None
    deployment: Deployment | None = None  # the document ``route`` was built from (the guard reads it)

    @property
    def environment(self) -> str | None:
        """The alias whose deployment this server follows (none for a pinned or latest version)."""
        return self.default.alias


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
        served: list[Served],
        metrics: ServerMetrics,
        *,
        interval: float,
        runtime: str,
        trusted_types: tuple[str, ...] = (),
    ) -> None:
        self.store, self.served, self.metrics = store, served, metrics
        self.slots = [s.default for s in served]
        self.interval, self.runtime, self.trusted_types = interval, runtime, trusted_types
        self._every = Every("mlops-reload", interval, self.check_all)
        self._route_lock = threading.Lock()
        self._trimmed = time.monotonic()
        # the store as the last poll found it (what /health reports, without reading the store itself)
        self.store_error: str | None = None
        self.store_read_at: float | None = None
        for s in served:
            self._weights(s.name, None, s.route)

    def target_version(self, slot: Slot) -> int | None:
        if slot.pinned:
            return int(slot.ref or 0)
        if slot.ref is None or slot.ref == "latest":
            nums = registry.version_numbers(self.store, slot.name)
            return nums[-1] if nums else None
        state = registry.get_alias(self.store, slot.name, slot.ref)
        return None if state is None else int(state["version"])

    def _reuse(self, slot: Slot, version: int) -> LoadedModel | None:
        """A model of ``version`` another slot of the same name already has loaded (models are read-only)."""
        for served in self.served:
            if served.name != slot.name:
                continue
            for other in (served.default, *served.route.slots()):
                cur = other.current
                if other is not slot and cur is not None and cur[0].version == version:
                    return cur[0]
        return None

    def check(self, slot: Slot) -> bool:
        """Bring ``slot`` to its target version; True if it swapped."""
        with slot.lock:
            try:
                target = self.target_version(slot)
            except Exception as exc:  # the store may be briefly unreachable: keep serving
                slot.last_error = f"cannot read {slot.name}@{slot.ref}: {exc}"
                self.store_error = f"{type(exc).__name__}: {exc}"[:300]
                return False
            self.store_error, self.store_read_at = None, time.time()
            if target is None:
                slot.last_error = f"{slot.name}@{slot.ref or 'latest'} does not point to a version yet"
                return False
            previous = slot.current[0] if slot.current else None
            if previous is not None and previous.version == target:
                return False
            model = self._reuse(slot, target)
            if model is None:
                try:
                    model = load(
                        self.store,
                        slot.name,
                        slot.ref,
                        runtime=self.runtime,
                        trusted_types=self.trusted_types,
                        version=target,
                    )
                except Exception as exc:
                    slot.last_error = f"cannot load {slot.name} v{target}: {exc}"
                    self.metrics.reloads.labels(slot.name, "failed").inc()
                    log.error("%s", slot.last_error)
                    return False
            bound = self.metrics.bind(model, slot.variant_name(model.version), previous)
            slot.current = (model, bound)  # the swap: one reference assignment
            slot.last_error = None
            slot.reloads += 1
            if previous is not None:
                self.metrics.reloads.labels(slot.name, "ok").inc()
                log.info("%s: now serving v%s (was v%s)", slot.name, model.version, previous.version)
            else:
                log.info(
                    "%s: serving v%s (%s runtime) as %s",
                    slot.name,
                    model.version,
                    model.runtime,
                    slot.variant_name(model.version),
                )
            del previous
            release_freed_memory()
            return True

    def check_route(self, served: Served) -> bool:
        """Follow the deployment of the served alias; True if the route changed."""
        env = served.environment
        if env is None:
            return False
        from mlopsctl.experiments.deployment import read_deployment

        try:
            doc, etag = read_deployment(self.store, served.name, env)
        except Exception as exc:  # unreachable store or a damaged document: keep the route
            served.last_error = f"cannot read the deployment of {served.name}@{env}: {exc}"
            return False
        if etag == served.route.etag:
            return False
        with self._route_lock:
            old = served.route
            if doc is None or doc.is_plain():
                new = Route.single(served.default, etag=etag)
            else:
                known = {(s.ref, s.variant): s for s in old.slots()}

                def slot(ref: str, variant: str) -> Slot:
                    if ref == env and variant == served.default.variant_name(0):
                        return served.default
                    return known.get((ref, variant)) or Slot(served.name, ref, variant)

                variants = tuple(slot(v.ref, v.name) for v in doc.variants)
                shadows = tuple(slot(v.ref, v.name) for v in doc.shadows)
                for s in (*variants, *shadows):
                    if s.current is None:
                        self.check(s)
                missing = [s for s in (*variants, *shadows) if s.current is None]
                if missing:
                    served.last_error = "; ".join(f"{s.variant}: {s.last_error}" for s in missing)
                    log.error(
                        "%s: deployment not applied, the old route keeps serving: %s", served.name, served.last_error
                    )
                    return False
                new = Route(
                    variants,
                    bounds_for([v.weight for v in doc.variants]),
                    shadows,
                    sticky=doc.sticky.lower().encode("latin-1") if doc.sticky else None,
                    salt=(doc.experiment_id or "").encode(),
                    experiment=doc.experiment_id,
                    etag=etag,
                )
            served.route = new  # the swap: one reference assignment
            served.deployment = doc
            served.last_error = None
            self._weights(served.name, old, new)
            kept = {id(s) for s in (served.default, *new.slots())}
            for s in old.slots():
                if id(s) not in kept and s.current is not None:
                    self.metrics.unbind(s.current[0], s.variant_name(s.current[0].version))
            log.info("%s: route %s", served.name, describe_route(new))
            return True

    def _weights(self, name: str, old: Route | None, new: Route) -> None:
        gauge = self.metrics.variant_weight
        for variant, _ in route_weights(old) if old else []:
            try:
                gauge.remove(name, variant)
            except KeyError:
                pass
        for variant, weight in route_weights(new):
            gauge.labels(name, variant).set(weight / 100)  # a share 0-1, as every other ratio

    def check_all(self) -> None:
        for served in self.served:
            slot = served.default
            if not (slot.pinned and slot.current):
                self.check(slot)
            if slot.current is not None:
                self.check_route(served)
            for s in served.route.slots():
                if s is not slot and not (s.pinned and s.current):
                    self.check(s)
        self.metrics.ready.set(1 if all(s.current for s in self.slots) else 0)
        now = time.monotonic()
        if now - self._trimmed >= TRIM_INTERVAL:
            self._trimmed = now
            release_freed_memory()

    def start(self) -> None:
        self._every.start()

    def stop(self) -> None:
        self._every.stop()

    def status(self) -> list[dict[str, Any]]:
        out = []
        for served in self.served:
            s = served.default
            out.append(
                {
                    "name": s.name,
                    "follows": s.ref or "latest",
                    "loaded": s.current is not None,
                    "version": s.current[0].version if s.current else None,
                    "error": s.last_error or served.last_error,
                    "route": route_status(served.route),
                }
            )
        return out


def route_weights(route: Route) -> list[tuple[str, float]]:
    """(variant name, percent) of each routed variant."""
    out, prev = [], 0
    for slot, bound in zip(route.variants, route.bounds, strict=True):
        out.append((slot.variant or slot.ref or "latest", (bound - prev) / 100))
        prev = bound
    return out


def describe_route(route: Route) -> str:
    versions = [s.current[0].version if s.current else "?" for s in route.slots()]
    parts = [f"{n}=v{v} {w:g}%" for (n, w), v in zip(route_weights(route), versions, strict=False)]
    parts += [f"{s.variant}=v{v}" for s, v in zip(route.shadows, versions[len(route.variants) :], strict=True)]
    return ", ".join(parts)


def route_status(route: Route) -> dict[str, Any]:
    variants = []
    for slot, (_, weight) in zip(route.variants, route_weights(route), strict=True):
        cur = slot.current
        variants.append(
            {
                "variant": slot.variant_name(cur[0].version) if cur else slot.variant,
                "version": cur[0].version if cur else None,
                "weight": weight,
            }
        )
    return {
        "experiment": route.experiment,
        "sticky": route.sticky.decode("latin-1") if route.sticky else None,
        "variants": variants,
        "shadows": [
            {"variant": s.variant, "version": s.current[0].version if s.current else None} for s in route.shadows
        ],
    }
