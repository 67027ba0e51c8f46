"""The storage interface every other part talks to.

Keys are '/'-separated relative paths ("models/wine/aliases/prod.json"). Every
implementation keeps the same promises, proved by one shared test suite:

- ``get`` returns the bytes last written, whole (never a partial write);
- ``put_if_absent`` creates a key exactly once across processes and machines;
- ``compare_and_swap`` replaces a key only if it still holds what the caller read
  (identified by the ``etag`` that ``get_with_etag`` returned), so concurrent
  read-modify-write cycles never lose an update.
"""

from __future__ import annotations

import builtins
import json
from abc import ABC, abstractmethod
from typing import Any

from mlopsctl.errors import Conflict, NotFound


class Store(ABC):
    uri: str

    @abstractmethod
    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and a token that changes whenever they change. Raises NotFound."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> str:
        """Write unconditionally (atomically); returns the new etag."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> str:
        """Create the key; raises Conflict if it exists. Returns the etag."""

    @abstractmethod
    def compare_and_swap(self, key: str, expected_etag: str | None, data: bytes) -> str:
        """Replace the key if its etag is still ``expected_etag`` (None: it must not exist).

        Raises Conflict otherwise. Returns the new etag.
        """

    @abstractmethod
    def list(self, prefix: str = "") -> builtins.list[str]:
        """Keys under ``prefix`` (a folder-like prefix ending in '/' or a plain prefix), sorted."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove a key (used only for scratch objects; versions and history are never deleted)."""

    # -- conveniences built on the primitives; implementations need not override them --

    def get(self, key: str) -> bytes:
        return self.get_with_etag(key)[0]

    def get_json(self, key: str) -> Any:
        return json.loads(self.get(key))

    def get_json_or(self, key: str, default: Any = None) -> Any:
        try:
            return self.get_json(key)
        except NotFound:
            return default

    def put_json(self, key: str, obj: Any) -> str:
        return self.put(key, dumps(obj))

    def put_json_if_absent(self, key: str, obj: Any) -> str:
        return self.put_if_absent(key, dumps(obj))

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        """The distinct next path segments under ``prefix`` (which must end with '/')."""
        seen: dict[str, None] = {}
        for key in self.list(prefix):
            rest = key[len(prefix) :]
            if "/" in rest:
                seen[rest.split("/", 1)[0]] = None
        return sorted(seen)


def get_checked(store: Store, key: str, sha256: str) -> bytes:
    """The object's bytes, refused (IntegrityError naming the key) when missing or not of that sha256."""
    import hashlib

    from mlopsctl.errors import IntegrityError

    try:
        data = store.get(key)
    except NotFound:
        raise IntegrityError(key, sha256, "missing file") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise IntegrityError(key, sha256, actual)
    return data


def dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid store key: {key!r}")
    return key


def open_store(uri: str) -> Store:
    """A store for ``uri``: a local path or ``file://`` path (default), or ``s3://bucket/prefix``.

    Opening does no I/O: an S3 store makes its client (boto3, the ``[aws]`` extra) on first
    use and takes credentials, region and endpoint from the environment (see store/s3.py).
    """
    if uri.startswith("s3://"):
        from mlopsctl.store.s3 import S3Store

        return S3Store.from_uri(uri)
    from mlopsctl.store.local import LocalStore

    return LocalStore(uri.removeprefix("file://"))


__all__ = ["Conflict", "NotFound", "Store", "check_key", "dumps", "get_checked", "open_store"]
