"""Pipeline runs in the store, and the lock that lets one run per model at a time.

``pipelines/{model}/runs/{id}.json`` is the record of a run: trigger, options, each step with
its outputs or its error, and the outcome. Only the process holding the model's lock writes it.

``pipelines/{model}/lock.json`` names the run in progress. It is taken by compare-and-swap
(absent, or held by a run that stopped refreshing it for ``stale_after`` seconds: a crashed
process), refreshed at every step, and released at the end. A second pipeline for the model
is refused with the run that holds it.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from mlopsctl.errors import Conflict, NotFound
from mlopsctl.registry import history
from mlopsctl.store.base import Store, dumps

STEPS = ("trigger", "data", "train", "evaluate", "gate", "publish", "rollout")
# how a run ended: succeeded (rolled out), skipped (the trigger did not fire), gated (the new model
# was not good enough), awaiting_approval (published; the alias needs approval), failed (a step failed)
ENDED = ("succeeded", "skipped", "gated", "awaiting_approval", "failed")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    return "p-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)


def clean_run_id(run_id: str) -> str:
    """A scheduler's run id as a store key part: ``scheduled__2026-11-23T03:00:00+00:00`` →
    ``scheduled__2026-11-23T03-00-00-00-00``."""
    import re

    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id).strip("-.")[:120]
    if not cleaned:
        raise ValueError(f"run id {run_id!r} has no letters or digits")
    return cleaned


def run_key(model: str, run_id: str) -> str:
    return f"pipelines/{model}/runs/{run_id}.json"


def lock_key(model: str) -> str:
    return f"pipelines/{model}/lock.json"


def save(store: Store, record: dict[str, Any]) -> None:
    store.put(run_key(record["model"], record["id"]), dumps(record))


def get_run(store: Store, model: str, run_id: str) -> dict[str, Any]:
    rec = store.get_json_or(run_key(model, run_id))
    if rec is None:
        known = [r["id"] for r in list_runs(store, model)[:5]]
        raise NotFound("pipeline run", f"{model}/{run_id}", "latest: " + (", ".join(known) or "none"))
    return dict(rec)


def list_runs(store: Store, model: str) -> list[dict[str, Any]]:
    """The model's pipeline runs, newest first: by their start to the millisecond, then by id (an id has the
    second only, and two runs can start in one second: its random suffix would order them by chance)."""
    found = [(key, dict(store.get_json(key))) for key in store.list(f"pipelines/{model}/runs/")]
    found.sort(key=lambda kr: (str(kr[1].get("started_at") or ""), kr[0]), reverse=True)
    return [record for _, record in found]


def models_with_runs(store: Store) -> list[str]:
    return store.list_dirs("pipelines/")


class Lock:
    """The model's pipeline lock, held by one run."""

    def __init__(self, store: Store, model: str, run_id: str, *, stale_after: float) -> None:
        self.store, self.model, self.run_id, self.stale_after = store, model, run_id, stale_after
        self.key = lock_key(model)
        self.etag: str | None = None

    def _doc(self, step: str) -> bytes:
        return dumps({"run": self.run_id, "step": step, "refreshed": time.time(), "by": history.actor()})

    def acquire(self) -> None:
        try:
            raw, etag = self.store.get_with_etag(self.key)
            held: dict[str, Any] | None = json.loads(raw)
        except NotFound:
            held, etag = None, None
        if held is not None and held.get("run") != self.run_id:
            age = time.time() - float(held.get("refreshed", 0))
            if age < self.stale_after:
                raise Conflict(
                    self.key,
                    f"a retraining pipeline for {self.model} is running: {held.get('run')} "
                    f"(step {held.get('step')}, by {held.get('by')}, {age:.0f}s since its last step); "
                    "wait for it to end",
                )
        try:
            self.etag = self.store.compare_and_swap(self.key, etag, self._doc("start"))
        except Conflict:
            raise Conflict(self.key, f"another retraining pipeline for {self.model} took the lock just now") from None

    def refresh(self, step: str) -> None:
        try:
            self.etag = self.store.compare_and_swap(self.key, self.etag, self._doc(step))
        except Conflict:
            raise Conflict(
                self.key, f"lost the pipeline lock of {self.model} (it went stale and another run took it)"
            ) from None

    def release(self) -> None:
        try:
            raw, etag = self.store.get_with_etag(self.key)
        except NotFound:
            return
        if json.loads(raw).get("run") == self.run_id and etag == self.etag:
            self.store.delete(self.key)
