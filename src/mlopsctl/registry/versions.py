"""Immutable, numbered model versions.

A version's number is claimed with put-if-absent on ``versions/{n}/claim.json``, so two
publishes at once get two numbers. Files are written next, and ``manifest.json`` (the
sha256 and size of every file) last: a version is complete iff its manifest exists.
Nothing under ``versions/{n}/`` is written again. Approval state lives outside the bundle.
A run becomes one version however often, and however concurrently, it is published: its
``by-run/{run_id}.json`` record is claimed with put-if-absent before anything is written, and
other publishes of the run wait for the claimer's version.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from mlopsctl.bundle.ref import NAME_RE, ModelRef
from mlopsctl.errors import Conflict, NotFound
from mlopsctl.registry import history
from mlopsctl.store.base import Store, dumps, get_checked


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


RUN_CLAIM_STALE_AFTER = 600.0  # seconds: a run claim older than this, with no version, belongs to a dead publish
RUN_CLAIM_WAIT = 900.0  # how long a publish waits for another one publishing the same run


def _run_key(name: str, run_id: str) -> str:
    return f"models/{name}/by-run/{run_id}.json"


def version_of_run(store: Store, name: str, run_id: str) -> int | None:
    """The version ``run_id`` was published as (None when it was not, or not completely)."""
    done = store.get_json_or(_run_key(name, run_id))
    if (
        done
        and done.get("version") is not None
        and store.exists(_vprefix(name, int(done["version"])) + "manifest.json")
    ):
        return int(done["version"])
    return None


def claim_run(
    store: Store, name: str, run_id: str, *, wait: float = RUN_CLAIM_WAIT, poll: float = 0.2
) -> tuple[int | None, str | None]:
    """Take the right to publish ``run_id`` as a version of ``name`` (put-if-absent on its by-run record).

    Returns ``(version, None)`` when the run is published already (by an earlier or a concurrent publish,
    which this waits for), or ``(None, etag)`` when this caller holds the claim and must publish."""
    key = _run_key(name, run_id)
    deadline = time.monotonic() + wait
    while True:
        try:
            raw, etag = store.get_with_etag(key)
        except NotFound:
            try:
                return None, store.put_if_absent(key, _claim_doc())
            except Conflict:
                continue
        doc = json.loads(raw)
        if doc.get("version") is not None:
            version = int(doc["version"])
            if store.exists(_vprefix(name, version) + "manifest.json"):
                return version, None
        if time.time() - float(doc.get("claimed_at_epoch") or 0.0) > RUN_CLAIM_STALE_AFTER:
            try:  # the claimer died: take it over
                return None, store.compare_and_swap(key, etag, _claim_doc())
            except Conflict:
                continue
        if time.monotonic() > deadline:
            raise Conflict(
                key,
                f"run {run_id} is being published as {name} by {doc.get('by')} since {doc.get('at')}; "
                f"try again later (a claim older than {RUN_CLAIM_STALE_AFTER:.0f} s is taken over)",
            )
        time.sleep(poll)


def _claim_doc() -> bytes:
    return dumps({"version": None, "by": history.actor(), "at": history.now(), "claimed_at_epoch": time.time()})


def release_run_claim(store: Store, name: str, run_id: str, etag: str) -> None:
    """Give up a claim that did not become a version (the publish failed), so another may publish the run."""
    key = _run_key(name, run_id)
    try:
        raw, now = store.get_with_etag(key)
    except NotFound:
        return
    if now == etag and json.loads(raw).get("version") is None:
        store.delete(key)


def publish(
    store: Store, name: str, files: dict[str, bytes], summary: dict[str, Any], *, run_claim: str | None = None
) -> tuple[int, bool]:
    """Write a new version. Returns (version, created). A run publishes as one version: a run already
    published returns its version, and concurrent publishes of one run wait for the one that claimed it.
    ``run_claim`` is the etag of a claim the caller took with `claim_run`."""
    check_name(name)
    run_id = summary.get("run_id")
    if run_id and run_claim is None:
        done, run_claim = claim_run(store, name, run_id)
        if done is not None:
            return done, False
    try:
        version = _write_version(store, name, files, summary)
    except BaseException:
        if run_id and run_claim is not None:
            release_run_claim(store, name, run_id, run_claim)
        raise
    if run_id and run_claim is not None:
        record = dumps({"version": version, "by": history.actor(), "at": history.now()})
        try:
            store.compare_and_swap(_run_key(name, run_id), run_claim, record)
        except Conflict:
            pass  # taken over as stale while this publish ran long: both versions stand, theirs is the run's
    history.record(store, name, "publish", version=version, run_id=run_id, actor=history.actor())
    return version, True


def _write_version(store: Store, name: str, files: dict[str, bytes], summary: dict[str, Any]) -> int:
    who, at = history.actor(), history.now()
    existing = version_numbers(store, name, complete_only=False)
    version = (existing[-1] if existing else 0) + 1
    while True:
        try:
            store.put_json_if_absent(
                _vprefix(name, version) + "claim.json", {"run_id": summary.get("run_id"), "by": who, "at": at}
            )
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
    return version


def read_files(store: Store, name: str, version: int, only: list[str] | None = None) -> dict[str, bytes]:
    """The bundle's files, each checked against the manifest's sha256 (a mismatch names the file)."""
    man = manifest(store, name, version)
    wanted = only if only is not None else list(man["files"])
    out: dict[str, bytes] = {}
    for fname in wanted:
        entry = man["files"].get(fname)
        if entry is None:
            continue
        out[fname] = get_checked(store, _vprefix(name, version) + fname, entry["sha256"])
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
    """A version number from ``3``, ``"3"``, an alias name, ``"latest"`` or None (latest); ``"v3"`` is
    refused with the fix (`mlopsctl.bundle.ref`)."""
    return resolve_ref(store, ModelRef.of(name, ref))


def resolve_ref(store: Store, ref: ModelRef) -> int:
    """The version number a reference names now (NotFound lists what exists)."""
    name = check_name(ref.name)
    if ref.version is not None:
        manifest(store, name, ref.version)
        return ref.version
    if ref.alias is None:
        nums = version_numbers(store, name)
        if not nums:
            raise NotFound("model", name, "publish a run first: `mlopsctl publish`")
        return nums[-1]
    from mlopsctl.registry.aliases import get_alias

    state = get_alias(store, name, ref.alias)
    if state is None:
        raise NotFound("alias", str(ref), "see `mlopsctl models show " + name + "`")
    return int(state["version"])
