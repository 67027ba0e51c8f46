"""The append-only history of a model: every publish, alias move and approval.

Each event is its own object, created with put-if-absent under a time-ordered key, so
writers on different machines never contend and nothing is ever rewritten.
"""

from __future__ import annotations

import getpass
import os
import secrets
import socket
from datetime import UTC, datetime
from typing import Any

from mlopsctl.store.base import Store


def actor() -> str:
    """Who is acting: MLOPS_ACTOR, else user@host."""
    if os.environ.get("MLOPS_ACTOR"):
        return os.environ["MLOPS_ACTOR"]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_event_id() -> str:
    """A time-ordered id. Alias moves take it after reading the alias and before swapping it, so
    the order of ids is the order in which the swaps succeeded."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ-") + secrets.token_hex(4)


def record(store: Store, name: str, action: str, event_id: str | None = None, **fields: Any) -> dict[str, Any]:
    event_id = event_id or new_event_id()
    at = datetime.strptime(event_id[:22], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    event = {
        "id": event_id,
        "at": at.isoformat(timespec="milliseconds"),
        "model": name,
        "action": action,
        "actor": fields.pop("actor", None) or actor(),
        **fields,
    }
    store.put_json_if_absent(f"models/{name}/history/{event_id}.json", event)
    return event


def events(store: Store, name: str, *, alias: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Events oldest first (optionally only those moving ``alias``; ``limit`` keeps the newest)."""
    keys = store.list(f"models/{name}/history/")
    out = [store.get_json(k) for k in keys]
    if alias is not None:
        out = [e for e in out if e.get("alias") == alias]
    return out[-limit:] if limit else out
