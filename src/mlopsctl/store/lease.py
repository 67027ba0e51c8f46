"""A lease: one holder at a time of a named job across processes and machines, kept in the store.

The lease is one JSON object ``{"owner", "expires", "taken"}``. Taking it is a put-if-absent when there
is none and a compare-and-swap on the etag read when the one there has expired (or is ours), so of two
takers exactly one wins; the holder renews it (compare-and-swap again) while it works and gives it up
when done. A holder that dies stops renewing, and its lease is taken over once ``expires`` has passed.
Expiry is wall-clock time: the lease's length must be much longer than the clocks' disagreement.
"""

from __future__ import annotations

import json
import time
from typing import Any

from mlopsctl.errors import Conflict, NotFound
from mlopsctl.store.base import Store


class Lease:
    def __init__(self, store: Store, key: str, owner: str, seconds: float) -> None:
        self.store, self.key, self.owner, self.seconds = store, key, owner, seconds
        self.etag: str | None = None  # set while held

    def _body(self, expires: float) -> bytes:
        return json.dumps({"owner": self.owner, "expires": expires, "taken": time.time()}).encode()

    def holder(self) -> dict[str, Any] | None:
        """The lease as stored (owner, expires), or None when there is none."""
        try:
            return dict(json.loads(self.store.get(self.key)))
        except NotFound:
            return None

    def acquire(self) -> bool:
        """Take the lease if free, expired or already ours; False when someone else holds it."""
        try:
            data, etag = self.store.get_with_etag(self.key)
        except NotFound:
            data, etag = b"", None
        if etag is not None:
            try:
                held = json.loads(data)
                owner, expires = held["owner"], float(held["expires"])
            except (ValueError, KeyError, TypeError):
                owner, expires = None, 0.0  # unreadable: treated as expired, and replaced
            if owner != self.owner and expires > time.time():
                return False
        try:
            self.etag = self.store.compare_and_swap(self.key, etag, self._body(time.time() + self.seconds))
        except Conflict:
            self.etag = None
            return False
        return True

    def renew(self) -> bool:
        """Push the expiry on; False (and no longer held) when someone took it over meanwhile."""
        if self.etag is None:
            return False
        try:
            self.etag = self.store.compare_and_swap(self.key, self.etag, self._body(time.time() + self.seconds))
        except Conflict:
            self.etag = None
            return False
        return True

    def release(self) -> None:
        """Give the lease up (it stays in the store, expired), unless someone took it over."""
        if self.etag is None:
            return
        try:
            self.store.compare_and_swap(self.key, self.etag, self._body(0.0))
        except Conflict:
            pass
        self.etag = None
