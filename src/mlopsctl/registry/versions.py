"""Immutable, numbered model versions.

A version's number is claimed with put-if-absent on ``versions/{n}/claim.json``, so two
publishes at once get two numbers. Files are written next, and ``manifest.json`` (the
sha256 and size of every file) last: a version is complete iff its manifest exists.
Nothing under ``versions/{n}/`` is written again. Approval state lives outside the bundle.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from mlopsctl.errors import Conflict, IntegrityError, NotFound
from mlopsctl.registry import history
from mlopsctl.store.base import Store, dumps

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise NotFound("model", name, "names use letters, digits, '_', '-', '.'")
    return name


def _vprefix(name: str, version: int) -> str:
    return f"models/{name}/versions/{version}/"


def model_names(store: Store) -> list[str]:
    return store.list_dirs("models/")


def version_numbers(store: Store, name: str, *, complete_only: bool = True) -> list[int]:
    nums = sorted(int(v) for v in store.list_dirs(f"models/{name}/versions/") if v.isdigit())
    if complete_only:
        nums = [n for n in nums if store.exists(_vprefix(name, n) + "manifest.json")]
    return nums


def manifest(store: Store, name: str, version: int) -> dict[str, Any]:
    check_name(name)
    m = store.get_json_or(_vprefix(name, version) + "manifest.json")
    if m is None:
        known = version_numbers(store, name)
        hint = f"versions: {', '.join(map(str, known))}" if known else "no versions published"
        raise NotFound("model version", f"{name}@{version}", hint)
    return dict(m)


def publish(store: Store, name: str, files: dict[str, bytes], summary: dict[str, Any]) -> tuple[int, bool]:
    """Write a new version. Returns (version, created). Publishing a run twice returns its version."""
    check_name(name)
    run_id = summary.get("run_id")
    if run_id:
        done = store.get_json_or(f"models/{name}/by-run/{run_id}.json")
        if done and store.exists(_vprefix(name, done["version"]) + "manifest.json"):
            return int(done["version"]), False
    who, at = history.actor(), history.now()
    existing = version_numbers(store, name, complete_only=False)
    version = (existing[-1] if existing else 0) + 1
    while True:
        try:
            store.put_json_if_absent(_vprefix(name, version) + "claim.json", {"run_id": run_id, "by": who, "at": at})
            break
        except Conflict:
            version += 1
    prefix = _vprefix(name, version)
    entries = {}
    for fname, data in sorted(files.items()):
        store.put_if_absent(prefix + fname, data)
        entries[fname] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    man = {"name": name, "version": version, "created_at": at, "created_by": who, "files": entries, **summary}
    store.put_json_if_absent(prefix + "manifest.json", man)
    if run_id:
        try:
            store.put_json_if_absent(f"models/{name}/by-run/{run_id}.json", {"version": version})
        except Conflict:
            pass  # the same run published concurrently: both versions stand, the first is the run's
    history.record(store, name, "publish", version=version, run_id=run_id, actor=who)
    return version, True


def read_files(store: Store, name: str, version: int, only: list[str] | None = None) -> dict[str, bytes]:
    """The bundle's files, each checked against the manifest's sha256 (a mismatch names the file)."""
    man = manifest(store, name, version)
    wanted = only if only is not None else list(man["files"])
    out: dict[str, bytes] = {}
    for fname in wanted:
        entry = man["files"].get(fname)
        if entry is None:
            continue
        path = _vprefix(name, version) + fname
        try:
            data = store.get(path)
        except NotFound:
            raise IntegrityError(path, entry["sha256"], "missing file") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != entry["sha256"]:
            raise IntegrityError(path, entry["sha256"], actual)
        out[fname] = data
    return out


def verify(store: Store, name: str, version: int) -> list[str]:
    """Check every file of a version; returns the names checked (raises IntegrityError)."""
    return list(read_files(store, name, version))


def approval(store: Store, name: str, version: int) -> dict[str, Any]:
    return dict(store.get_json_or(f"models/{name}/approvals/{version}.json", {"state": "pending"}))


def set_approval(store: Store, name: str, version: int, state: str, reason: str = "") -> dict[str, Any]:
    manifest(store, name, version)  # must exist
    key = f"models/{name}/approvals/{version}.json"
    who, at = history.actor(), history.now()
    while True:
        try:
            _, etag = store.get_with_etag(key)
        except NotFound:
            etag = None
        doc = {"state": state, "by": who, "at": at, "reason": reason}
        try:
            store.compare_and_swap(key, etag, dumps(doc))
            break
        except Conflict:
            continue
    history.record(store, name, state, version=version, reason=reason, actor=who)
    return doc


def resolve(store: Store, name: str, ref: str | int | None) -> int:
    """A version number from ``3``, ``"3"``, ``"v3"``, an alias name, ``"latest"`` or None (latest)."""
    check_name(name)
    if ref is None or ref == "latest":
        nums = version_numbers(store, name)
        if not nums:
            raise NotFound("model", name, "publish a run first: `mlopsctl publish`")
        return nums[-1]
    if isinstance(ref, int) or str(ref).isdigit() or re.fullmatch(r"v\d+", str(ref)):
        v = int(str(ref).lstrip("v"))
        manifest(store, name, v)
        return v
    from mlopsctl.registry.aliases import get_alias

    state = get_alias(store, name, str(ref))
    if state is None:
        raise NotFound("alias", f"{name}@{ref}", "see `mlopsctl models show " + name + "`")
    return int(state["version"])
