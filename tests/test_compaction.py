"""Capture compaction: JSON lines → Parquet, races, a killed compactor, the lease, and the codec's round trip.

Every test runs on the local store and on the S3 store against moto's server on 127.0.0.1 (as
tests/test_store.py does). The compactors that race are real `mlopsctl capture compact` processes; the
killed one is a real process stopped with SIGKILL between writing its Parquet and deleting anything.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlopsctl.errors import NotFound
from mlopsctl.monitoring import capture_parquet as cp
from mlopsctl.monitoring.captured import (
    COMPACTED,
    CapturedIndex,
    capture_hours,
    capture_key,
    encode_lines,
    load_captures,
)
from mlopsctl.monitoring.compaction import BackgroundCompactor, compact, compact_hour
from mlopsctl.store import Store, open_store
from mlopsctl.store.lease import Lease
from mlopsctl.store.s3 import S3Store
from tests.s3server import new_bucket, s3_env

HOUR = 3600.0


@pytest.fixture(params=["local", "s3"])
def new_store(request: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], Store]:
    n = itertools.count()
    if request.param == "local":
        return lambda: open_store(str(tmp_path / f"store{next(n)}"))
    endpoint = request.getfixturevalue("s3_endpoint")
    s3_env(monkeypatch, tmp_path)
    monkeypatch.setenv("MLOPS_S3_ENDPOINT_URL", endpoint)
    bucket = new_bucket(endpoint)
    return lambda: S3Store(bucket, f"team/store{next(n)}", endpoint_url=endpoint)


@pytest.fixture
def store(new_store: Callable[[], Store]) -> Store:
    return new_store()


def write_capture(
    store: Store, *, hours: int, writers: int = 3, objects: int = 2, rows: int = 20, start: float | None = None
) -> list[str]:
    """Raw capture of model "m" in the servers' layout: per hour, ``writers`` × ``objects`` JSON-lines objects.
    Requests of one row and of three rows, a failed one, shadows. Returns every request id (with repeats
    for multi-row requests)."""
    rng = random.Random(7)
    t0 = start if start is not None else (time.time() // HOUR - hours - 24) * HOUR
    ids: list[str] = []
    for h, w, o in itertools.product(range(hours), range(writers), range(objects)):
        recs: list[dict[str, Any]] = []
        while len(recs) < rows:
            t = t0 + h * HOUR + rng.random() * (HOUR - 1)
            rid = f"r{h}-{w}-{o}-{len(recs)}"
            base = {"request_id": rid, "time": t, "model": "m", "version": 1 + (len(recs) % 2)}
            base |= {"variant": "prod", "endpoint": "predict", "status": 200, "latency_ms": round(rng.random(), 3)}
            if len(recs) % 7 == 3:
                recs.append({**base, "status": 422, "row": 0, "inputs": None, "prediction": None, "error": "bad"})
                ids.append(rid)
                continue
            n = 3 if len(recs) % 5 == 0 else 1
            for i in range(n):
                x = {"x": rng.random(), "c": rng.choice(["red", "white"])}
                recs.append({**base, "row": i, "inputs": x, "prediction": rng.randint(3, 8), "confidence": 0.5})
                ids.append(rid)
        recs.sort(key=lambda r: r["time"])
        store.put(capture_key("m", recs[0]["time"], f"host-{w}-abc", h * objects + o + 1), encode_lines(recs))
    return ids


def request_rows(store: Store) -> Counter[tuple[str, int]]:
    return Counter((r["request_id"], r["row"]) for r in load_captures(store, "m"))


def held_sources(store: Store) -> Counter[str]:
    """How many parts hold each raw key."""
    held: Counter[str] = Counter()
    for key in store.list(COMPACTED):
        held.update(src for src, _ in cp.sources(cp.read(store.get(key))))
    return held


def raw_keys(store: Store) -> list[str]:
    return [k for k in store.list("capture/") if k.endswith(".jsonl")]


# -- the codec ------------------------------------------------------------------------------------------------

_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),  # what orjson (the capture writer) writes
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
_record = st.fixed_dictionaries(
    {"request_id": st.text(min_size=1, max_size=4), "row": st.integers(0, 5), "time": st.floats(0, 2e9)},
    optional={
        "inputs": st.one_of(st.none(), st.dictionaries(st.sampled_from(["a", "b c", "d"]), _scalar)),
        "prediction": st.one_of(_scalar, st.lists(st.integers(), max_size=2)),
        "confidence": _scalar,
        "error": _scalar,
    },
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_record, min_size=1, max_size=12))
def test_parquet_gives_back_the_very_records(records: list[dict[str, Any]]) -> None:
    table = cp.read(cp.to_bytes(cp.encode(records, [("k", len(records))])))
    back = cp.decode(table)
    assert back == records
    assert [list(r) for r in back] == [list(r) for r in records]  # key order too
    assert [list(r["inputs"]) for r in back if r.get("inputs")] == [
        list(r["inputs"]) for r in records if r.get("inputs")
    ]
    assert cp.ids(table) == cp.record_ids(records)


def test_typed_columns_for_sql_engines(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    store = open_store(str(tmp_path / "s"))
    write_capture(store, hours=1, writers=1, objects=1)
    compact(store, compact_after=0, keep_raw=0)
    (key,) = store.list(COMPACTED)
    schema = pq.read_schema(store.root / key)  # type: ignore[attr-defined]
    assert str(schema.field("time").type) == "double" and str(schema.field("version").type) == "int64"
    assert str(schema.field("inputs").type) == "struct<x: double, c: string>"
    assert pq.ParquetFile(store.root / key).metadata.row_group(0).column(0).compression == "ZSTD"  # type: ignore[attr-defined]


# -- compaction ------------------------------------------------------------------------------------------------


def test_compaction_keeps_every_record_and_shrinks_the_bytes(store: Store) -> None:
    ids = write_capture(store, hours=3)
    before = load_captures(store, "m")
    dry = compact(store, compact_after=900, keep_raw=0, dry_run=True).to_dict()
    assert dry["records"] == len(ids) and dry["objects"] == 18 and not store.list(COMPACTED)
    out = compact(store, compact_after=900, keep_raw=0).to_dict()
    assert out["hours"] == 3 and out["records"] == len(ids) and out["deleted"] == 18
    assert out["bytes_after"] < out["bytes_before"] / 2
    assert raw_keys(store) == [] and len(store.list(COMPACTED)) == 3
    assert load_captures(store, "m") == before
    assert compact(store, compact_after=900, keep_raw=0).to_dict()["records"] == 0  # nothing left to do


def test_raw_objects_stay_until_keep_raw_hours_and_readers_never_double_them(store: Store) -> None:
    write_capture(store, hours=2, writers=2, objects=1)
    before = load_captures(store, "m")
    now = time.time()
    kept = compact(store, compact_after=900, keep_raw=10 * 86400, now=now).to_dict()
    assert kept["deleted"] == 0 and kept["kept"] == 4 and len(raw_keys(store)) == 4
    assert load_captures(store, "m") == before  # Parquet and raw both there: each record once
    later = compact(store, compact_after=900, keep_raw=10 * 86400, now=now + 11 * 86400).to_dict()
    assert later["records"] == 0 and later["deleted"] == 4 and raw_keys(store) == []
    assert load_captures(store, "m") == before


def test_an_hour_not_closed_is_left_alone(store: Store) -> None:
    now = time.time()
    write_capture(store, hours=1, writers=1, objects=1, start=now // HOUR * HOUR)
    assert compact(store, compact_after=900, keep_raw=0, now=now).to_dict()["records"] == 0
    assert len(raw_keys(store)) == 1 and not store.list(COMPACTED)


def test_a_late_object_becomes_the_hours_next_part(store: Store) -> None:
    write_capture(store, hours=1, writers=1, objects=2)
    compact(store, compact_after=900, keep_raw=10 * 86400)
    parts = capture_hours(store, "m")[0][2]
    late = load_captures(store, "m")[:2]
    late = [{**r, "request_id": "late-" + r["request_id"]} for r in late]
    store.put(capture_key("m", late[0]["time"], "host-late-abc", 1), encode_lines(late))
    assert len(load_captures(store, "m")) == 40 + 2
    out = compact(store, compact_after=900, keep_raw=0).to_dict()
    assert out["records"] == 2 and out["parts"] == [parts[0].replace(".000.", ".001.")] and out["deleted"] == 3
    assert request_rows(store).most_common(1)[0][1] == 1 and len(request_rows(store)) == 42


class _RivalFirst(Store):
    """The store as one compactor sees it, while another one wins the race: right before this compactor's
    first put-if-absent of a part, the rival compacts the same hour to the end (real store, real writes)."""

    def __init__(self, inner: Store, rival: Callable[[], Any]) -> None:
        self.inner, self.rival, self.uri = inner, rival, inner.uri

    def put_if_absent(self, key: str, data: bytes) -> str:
        if self.rival is not None and key.endswith(".parquet"):
            rival, self.rival = self.rival, None
            rival()
        return self.inner.put_if_absent(key, data)

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        return self.inner.get_with_etag(key)

    def put(self, key: str, data: bytes) -> str:
        return self.inner.put(key, data)

    def compare_and_swap(self, key: str, expected_etag: str | None, data: bytes) -> str:
        return self.inner.compare_and_swap(key, expected_etag, data)

    def list(self, prefix: str = "") -> list[str]:
        return self.inner.list(prefix)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


class _Counting(_RivalFirst):
    """The store, counting the compacted parts read."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner, lambda: None)
        self.parts_read = 0

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        self.parts_read += key.endswith(".parquet")
        return self.inner.get_with_etag(key)


def test_hours_kept_for_retention_are_not_read_again_on_every_run(store: Store) -> None:
    write_capture(store, hours=3, writers=1, objects=2)
    counting = _Counting(store)
    first = compact(counting, compact_after=900, keep_raw=10 * 86400).to_dict()
    assert first["parts"] and first["kept"] == 6 and counting.parts_read == 3  # each part read back once
    again = compact(counting, compact_after=900, keep_raw=10 * 86400).to_dict()
    assert again["records"] == 0 and again["kept"] == 6 and counting.parts_read == 3  # nothing read again
    done = compact(counting, compact_after=900, keep_raw=0).to_dict()
    assert done["deleted"] == 6 and counting.parts_read == 6  # read back (again) before deleting


def test_the_compactor_that_loses_the_race_writes_nothing_twice(store: Store) -> None:
    ids = write_capture(store, hours=1)
    (hour, raw, parts) = capture_hours(store, "m")[0]
    now = time.time()

    def rival() -> None:  # another compactor, from listing to deleting, between our read and our write
        compact_hour(store, "m", hour, raw, parts, now=now, keep_raw=0, after_write=lambda _: None)

    loser = compact_hour(_RivalFirst(store, rival), "m", hour, raw, parts, now=now, keep_raw=0)
    assert loser.raced == 1 and loser.part is None and loser.records == 0
    assert len(store.list(COMPACTED)) == 1 and raw_keys(store) == []
    assert sorted(request_rows(store).values()) == [1] * len(ids)


def _compactor_process(env: dict[str, str], store_uri: str, cwd: Path) -> subprocess.Popen[str]:
    args = ["--store", store_uri, "capture", "compact", "--keep-raw-hours", "0", "--json"]
    return subprocess.Popen(
        [sys.executable, "-m", "mlopsctl.cli.main", *args],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_compactor_processes_at_once_keep_every_request_once(store: Store, tmp_path: Path) -> None:
    ids = write_capture(store, hours=24, writers=3, objects=2, rows=10)
    expected = Counter((r["request_id"], r["row"]) for r in load_captures(store, "m"))
    assert sum(expected.values()) == len(ids)
    procs = [_compactor_process({}, store.uri, tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    results = [json.loads(o) for o, _ in outs]
    assert sum(r["records"] for r in results) == len(ids)  # each record compacted by exactly one of them
    assert sum(r["deleted"] for r in results) >= 24 * 6 and raw_keys(store) == []
    assert request_rows(store) == expected  # every (request id, row) once
    held = held_sources(store)
    assert len(held) == 24 * 6 and set(held.values()) == {1}  # every raw object in exactly one part


def test_the_command_says_what_it_did(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    store = open_store(str(tmp_path / "s"))
    ids = write_capture(store, hours=2, writers=1, objects=2)
    cli = ["--store", store.uri, "capture", "compact"]
    dry = run_cli(*cli, "--dry-run", cwd=tmp_path).stdout
    assert f"would compact 2 hour(s): {len(ids)} records, 4 object(s)" in dry and "of JSON lines" in dry
    assert not store.list(COMPACTED) and len(raw_keys(store)) == 4
    done = run_cli(*cli, cwd=tmp_path).stdout  # keep_raw_hours: 24 by default, the hours are older
    assert f"compacted 2 hour(s): {len(ids)} records," in done and "of Parquet (" in done
    assert "4 raw object(s) deleted in 2 hour(s)" in done and raw_keys(store) == []
    bad = run_cli(*cli, "--model", "ghost", cwd=tmp_path, check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "ghost" in bad.stderr
    neg = run_cli(*cli, "--keep-raw-hours", "-1", cwd=tmp_path, check=False)
    assert neg.returncode == 2 and "--keep-raw-hours" in neg.stderr


def test_an_hour_with_an_object_that_is_not_json_lines_is_left_and_named(tmp_path: Path) -> None:
    from mlopsctl.errors import DataError
    from tests.conftest import run_cli

    store = open_store(str(tmp_path / "s"))
    write_capture(store, hours=2, writers=1, objects=1)
    (bad, *_), second = raw_keys(store), raw_keys(store)[1]
    store.put(bad, store.get(bad) + b"{not json\n")
    proc = run_cli("--store", store.uri, "capture", "compact", "--keep-raw-hours", "0", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "compacted 1 hour(s)" in proc.stdout
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: 1 hour(s) left as they were") and bad in line and "line 21: not JSON" in line
    assert raw_keys(store) == [bad] and not store.exists(second)  # the other hour compacted and cleaned up
    with pytest.raises(DataError, match="line 21: not JSON"):
        load_captures(store, "m")


# -- a compactor killed between the Parquet and the deletions ------------------------------------------------


def _compact_then_hang(store: Store, marker: str) -> None:
    """In a child process: compact, and stop dead after the first part is written (before any delete)."""

    def hang(key: str) -> None:
        Path(marker).write_text(key)
        time.sleep(600)

    (hour, raw, parts) = capture_hours(store, "m")[0]
    compact_hour(store, "m", hour, raw, parts, now=time.time(), keep_raw=0, after_write=hang)


def test_a_compactor_killed_after_writing_its_parquet_is_finished_by_the_next(store: Store, tmp_path: Path) -> None:
    ids = write_capture(store, hours=2, writers=3, objects=2, rows=15)
    expected = request_rows(store)
    marker = tmp_path / "written"
    ctx = mp.get_context("fork" if not isinstance(store, S3Store) else "spawn")
    child = ctx.Process(target=_compact_then_hang, args=(store, str(marker)))
    child.start()
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the compactor never wrote its part"
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    assert child.exitcode == -signal.SIGKILL
    # the half state: the part is there, every raw object too; readers see each record once
    assert store.list(COMPACTED) == [marker.read_text()] and len(raw_keys(store)) == 12
    assert request_rows(store) == expected
    first = cp.read(store.get(marker.read_text())).num_rows
    out = compact(store, compact_after=900, keep_raw=0).to_dict()
    assert out["deleted"] == 12 and out["records"] == len(ids) - first  # the other hour; none of the first
    assert raw_keys(store) == [] and request_rows(store) == expected
    assert set(held_sources(store).values()) == {1}


# -- readers beyond load_captures ------------------------------------------------------------------------------


def test_feedback_lookup_finds_ids_in_compacted_hours(store: Store) -> None:
    now = time.time()
    write_capture(store, hours=3, writers=1, objects=1, start=(now // HOUR - 3) * HOUR)
    compact(store, compact_after=0, keep_raw=0, now=(now // HOUR - 1) * HOUR + 1)  # two hours compacted; one not
    assert len(store.list(COMPACTED)) == 2 and len(raw_keys(store)) == 1
    index = CapturedIndex(store, ["m"], lookback=6 * HOUR, min_refresh=0)
    for h in range(3):
        hit = index.get(f"r{h}-0-0-0")
        assert hit is not None and hit[0] == "m" and len(hit[2]) == 3  # a request of three rows
    assert index.get(f"r{0}-0-0-3") is None  # a failed request is no prediction to label
    assert index.objects_read == 3  # two parts and one raw object, each once


def test_readers_survive_a_compactor_deleting_under_them(store: Store) -> None:
    write_capture(store, hours=1, writers=1, objects=2)
    expected = request_rows(store)
    hours = capture_hours(store, "m")
    compact(store, compact_after=900, keep_raw=0)
    with pytest.raises(NotFound):
        store.get(hours[0][1][0])
    import mlopsctl.monitoring.captured as captured

    real = captured.capture_hours
    stale = iter([hours])  # the listing a reader made before the compactor ran
    captured.capture_hours = lambda *a, **k: next(stale, None) or real(*a, **k)  # type: ignore[assignment]
    try:
        assert request_rows(store) == expected
    finally:
        captured.capture_hours = real


# -- the lease and the server's compactor ------------------------------------------------------------------------


def test_one_lease_holder_at_a_time_and_a_stale_lease_is_taken_over(store: Store) -> None:
    a, b = Lease(store, "leases/x.json", "a", 0.5), Lease(store, "leases/x.json", "b", 0.5)
    assert a.acquire() and not b.acquire()
    assert a.renew() and not b.acquire()
    time.sleep(0.7)  # a stopped renewing (died): its lease expires
    assert b.acquire() and not a.renew()  # taken over; a learns it lost it
    b.release()
    assert a.acquire()
    holder = a.holder()
    assert holder is not None and holder["owner"] == "a"


def _race_for_lease(store: Store, name: str, barrier: Any, out: Any) -> None:
    barrier.wait(60)
    out.put((name, Lease(store, "leases/race.json", name, 60).acquire()))


def test_racing_processes_get_one_lease(store: Store) -> None:
    ctx = mp.get_context("fork" if not isinstance(store, S3Store) else "spawn")
    barrier, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_race_for_lease, args=(store, f"p{i}", barrier, out)) for i in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert sum(won for _, won in results) == 1


def test_background_compactors_take_turns(store: Store) -> None:
    ids = write_capture(store, hours=2, writers=2, objects=1)
    one = BackgroundCompactor(store, compact_after=900, keep_raw=0, lease_seconds=60, owner="replica-1")
    two = BackgroundCompactor(store, compact_after=900, keep_raw=0, lease_seconds=60, owner="replica-2")
    assert one.lease.acquire()  # replica 1 is compacting (holds the lease)
    assert two.tick() is None and store.list(COMPACTED) == []  # replica 2 waits its turn
    one.lease.release()
    done = two.tick()
    assert done is not None and done.to_dict()["records"] == len(ids) and raw_keys(store) == []
    assert one.tick() is not None and one.last is not None and one.last["records"] == 0


def test_the_servers_compactor_logs_an_hour_it_cannot_compact(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    write_capture(store, hours=1, writers=1, objects=1)
    (bad,) = raw_keys(store)
    store.put(bad, b"[1, 2]\n")
    job = BackgroundCompactor(store, compact_after=900, keep_raw=0, lease_seconds=60)
    with caplog.at_level("ERROR", logger="mlopsctl.compaction"):
        done = job.tick()
    assert done is not None and done.failed and raw_keys(store) == [bad]
    assert any(bad in r.getMessage() and "not an object" in r.getMessage() for r in caplog.records)
