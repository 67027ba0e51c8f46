"""The embedded store: a directory on local disk.

Writes go to a temporary file in the same directory and are renamed into place,
so a reader sees the old bytes or the new ones, never a mix. ``put_if_absent``
uses ``link``, which fails atomically if the target exists; ``compare_and_swap``
holds an exclusive ``flock`` on a per-key lock file while it compares and renames,
so both are safe between processes on one machine.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mlopsctl.errors import Conflict, NotFound
from mlopsctl.store.base import Store, check_key

_LOCKS = ".locks"


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalStore(Store):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _write_tmp(self, path: Path, data: bytes) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            os.unlink(tmp)
            raise
        return tmp

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        lock_path = self.root / _LOCKS / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound("store object", key) from None
        return data, _etag(data)

    def put(self, key: str, data: bytes) -> str:
        path = self._path(key)
        os.replace(self._write_tmp(path, data), path)
        return _etag(data)

    def put_if_absent(self, key: str, data: bytes) -> str:
        path = self._path(key)
        tmp = self._write_tmp(path, data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise Conflict(key, f"{key} already exists") from None
        finally:
            os.unlink(tmp)
        return _etag(data)

    def compare_and_swap(self, key: str, expected_etag: str | None, data: bytes) -> str:
        path = self._path(key)
        with self._lock(key):
            try:
                current: str | None = _etag(path.read_bytes())
            except FileNotFoundError:
                current = None
            if current != expected_etag:
                raise Conflict(key, f"{key} changed since it was read")
            os.replace(self._write_tmp(path, data), path)
        return _etag(data)

    def list(self, prefix: str = "") -> builtins.list[str]:
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.is_dir():
            return []
        out = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if d != _LOCKS]
            for name in filenames:
                if name.startswith(".tmp-"):
                    continue
                key = os.path.relpath(os.path.join(dirpath, name), self.root).replace(os.sep, "/")
                if key.startswith(prefix):
                    out.append(key)
        return sorted(out)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()
