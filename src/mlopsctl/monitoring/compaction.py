"""Compaction: closed hours of capture JSON lines become one Parquet file each, and the JSON lines go.

Per model and hour (``capture/{model}/{hour}/*.jsonl``, closed ``compact_after`` past its end):

1. the raw objects no part lists yet are read and written as the hour's next part,
   ``capture-parquet/{model}/{day}/{hour}.{part:03d}.parquet`` (zstd; the columns of the model's capture
   table, ``monitoring/capture_schema.py``, so one Glue table reads every part), with **put-if-absent**. Part
   numbers are taken in order, so two compactors at once race for the same key and exactly one wins;
   the loser reads the winner's part, drops the raw objects it lists and tries the next number with
   what is left (usually nothing). A raw object is therefore held by one part at most.
2. The part is read back from the store and its row count and (request id, row) sequence compared
   with the raw records; a mismatch stops here (IntegrityError), nothing deleted.
3. Once the hour ended ``keep_raw_hours`` ago, each raw object a part holds is read again, its ids
   compared with its rows in the part (read back from the store), and only then deleted.

A compactor killed anywhere leaves a state the next run finishes: a part without its deletions (the
readers already skip the raw objects it holds), or some deletions done. Late objects (a write-ahead
replay, a retried flush) in a compacted hour become its next part. Readers: ``monitoring/captured.py``.

One part per hour, not per day: an hour is closed (and its raw objects can go) an hour after it began,
where a day file would have to wait a day or be rewritten every hour; at 300 requests a second an hour
is ~1 million records, a few tens of MB of Parquet, which Athena and DuckDB read well.
"""

from __future__ import annotations

import calendar
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlopsctl.errors import Conflict, IntegrityError, MlopsError, NotFound
from mlopsctl.monitoring import capture_parquet as cp
from mlopsctl.monitoring.capture_schema import CaptureSchema, schema_of
from mlopsctl.monitoring.captured import CAPTURE, capture_hours, compacted_key, get_many, parse_lines
from mlopsctl.store.base import Store

log = logging.getLogger("mlopsctl.compaction")

LEASE_KEY = "leases/capture-compaction.json"


@dataclass
class HourResult:
    model: str
    hour: str
    objects: int = 0  # raw objects written into a new part now
    records: int = 0
    bytes_raw: int = 0  # of those objects
    bytes_parquet: int = 0  # of the part written now
    part: str | None = None  # its key
    deleted: int = 0  # raw objects deleted (held by a part, verified)
    kept: int = 0  # raw objects held by a part, kept until keep_raw_hours has passed
    raced: int = 0  # parts another compactor wrote first


@dataclass
class Summary:
    dry_run: bool
    hours: list[HourResult] = field(default_factory=list)
    stopped: bool = False  # keep_going said stop (a lost lease) before every hour was done
    failed: list[dict[str, str]] = field(default_factory=list)  # hours left as they were: model, hour, error

    def total(self, name: str) -> int:
        return sum(int(getattr(h, name)) for h in self.hours)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "hours": len([h for h in self.hours if h.objects]),  # hours given a new part (or that would be)
            "hours_cleaned": len([h for h in self.hours if h.deleted]),
            "records": self.total("records"),
            "objects": self.total("objects"),
            "bytes_before": self.total("bytes_raw"),
            "bytes_after": self.total("bytes_parquet"),
            "deleted": self.total("deleted"),
            "kept": self.total("kept"),
            "raced": self.total("raced"),
            "stopped": self.stopped,
            "failed": self.failed,
            "parts": [h.part for h in self.hours if h.part],
        }


def hour_end(hour: str) -> float:
    """Epoch seconds at which hour partition ``YYYY-MM-DDTHH`` (UTC) ends."""
    return calendar.timegm(time.strptime(hour, "%Y-%m-%dT%H")) + 3600.0


def closed_hours(
    store: Store, models: list[str] | None, *, now: float, compact_after: float
) -> list[tuple[str, str, list[str], list[str]]]:
    """(model, hour, raw keys, part keys) of every hour that ended ``compact_after`` before ``now``."""
    out = []
    for name in models if models is not None else store.list_dirs(CAPTURE):
        for hour, raw, parts in capture_hours(store, name, until=now - compact_after - 3600):
            if hour_end(hour) + compact_after <= now:
                out.append((name, hour, raw, parts))
    return out


# (store, part key) → the raw objects the part holds. A part never changes once written (put-if-absent, never
# rewritten or deleted), so a long-lived compactor (the server's) need not read an hour's part again on every
# run while keep_raw_hours keeps the hour's JSON lines.
_SOURCES: dict[tuple[str, str], list[tuple[str, int]]] = {}
_SOURCES_LIMIT = 20_000


class _Parts:
    """The parts of one hour, which raw object each row range came from; a part's table read when needed."""

    def __init__(self, store: Store, model: str, hour: str, keys: list[str]) -> None:
        self.store, self.model, self.hour = store, model, hour
        self.keys: list[str] = []
        self.tables: dict[str, Any] = {}
        self.held: dict[str, tuple[str, int, int]] = {}  # raw key → (part, first row, rows)
        for key in keys:
            self.add(key)

    def _table(self, key: str) -> Any:
        if key not in self.tables:
            try:
                self.tables[key] = cp.read(self.store.get(key))
            except ValueError as exc:
                raise IntegrityError(key, problem=f"not a compacted capture table: {exc}") from None
        return self.tables[key]

    def add(self, key: str, table: Any = None) -> None:
        """Count part ``key`` in (NotFound when it does not exist); ``table``: it, just written and read back."""
        if table is not None:
            self.tables[key] = table
        sources = _SOURCES.get((self.store.uri, key))
        if sources is None:
            sources = cp.sources(self._table(key))
            if len(_SOURCES) >= _SOURCES_LIMIT:
                _SOURCES.clear()
            _SOURCES[(self.store.uri, key)] = sources
        self.keys.append(key)
        start = 0
        for src, n in sources:
            self.held.setdefault(src, (key, start, n))
            start += n

    def catch_up(self) -> None:
        """Count the parts written since (numbers are taken in order: the next missing one ends the list)."""
        while True:
            key = compacted_key(self.model, self.hour, len(self.keys))
            if (self.store.uri, key) not in _SOURCES and not self.store.exists(key):
                return
            try:
                self.add(key)
            except NotFound:
                return

    def ids(self, raw_key: str) -> list[tuple[str, int]]:
        """(request id, row) of the rows the part holding ``raw_key`` has for it, read back from the store."""
        part, start, n = self.held[raw_key]
        return cp.ids(self._table(part).slice(start, n))


def _read_raw(store: Store, keys: list[str]) -> tuple[list[dict[str, Any]], list[tuple[str, int]], int]:
    records: list[dict[str, Any]] = []
    sources, size = [], 0
    for key, data in zip(keys, get_many(store, keys), strict=True):
        size += len(data)
        recs = parse_lines(data, key)
        records.extend(recs)
        sources.append((key, len(recs)))
    return records, sources, size


def compact_hour(
    store: Store,
    model: str,
    hour: str,
    raw: list[str],
    parts: list[str],
    *,
    now: float,
    keep_raw: float,
    dry_run: bool = False,
    after_write: Callable[[str], None] | None = None,
    schema: CaptureSchema | None = None,
) -> HourResult:
    """Compact one closed hour (see the module's text). ``after_write``: called with the part's key once it
    is written and verified, before any deletion (tests crash a compactor there). ``schema``: the model's
    capture table (default: from its versions' signatures in the store)."""
    res = HourResult(model, hour)
    held = _Parts(store, model, hour, parts)
    held.catch_up()
    todo = [k for k in raw if k not in held.held]
    written: dict[str, list[tuple[str, int]]] = {}
    while todo:
        try:
            records, sources, size = _read_raw(store, todo)
        except NotFound:  # another compactor deleted one: it had compacted it
            held.catch_up()
            todo = [k for k in todo if k not in held.held and store.exists(k)]
            continue
        if dry_run:
            res.objects, res.records, res.bytes_raw = len(todo), len(records), size
            break
        if schema is None:
            schema = schema_of(store, model)
        body = cp.to_bytes(cp.encode(records, sources, schema))
        key = compacted_key(model, hour, len(held.keys))
        try:
            store.put_if_absent(key, body)
        except Conflict:  # another compactor took this number: what it holds is done, try the rest
            res.raced += 1
            held.catch_up()
            todo = [k for k in todo if k not in held.held]
            continue
        try:
            table = cp.read(store.get(key))
        except (NotFound, ValueError) as exc:
            raise IntegrityError(key, problem=f"unreadable after writing {len(records)} records: {exc}") from None
        if table.num_rows != len(records) or cp.ids(table) != cp.record_ids(records):
            raise IntegrityError(
                key, problem=f"read back {table.num_rows} rows, not the {len(records)} records of {len(todo)} objects"
            )
        held.add(key, table)
        res.objects, res.records, res.bytes_raw, res.bytes_parquet, res.part = (
            len(todo),
            len(records),
            size,
            len(body),
            key,
        )
        start = 0
        for src, n in sources:
            written[src] = cp.record_ids(records[start : start + n])
            start += n
        if after_write is not None:
            after_write(key)
        break
    if dry_run:
        return res
    gone = [k for k in raw if k in held.held]
    if hour_end(hour) + keep_raw > now:
        res.kept = len(gone)
        return res
    verified = []
    for key in gone:
        expected = written.get(key)
        if expected is None:  # compacted by an earlier run: verified again against the raw object
            try:
                expected = cp.record_ids(_read_raw(store, [key])[0])
            except NotFound:
                continue  # deleted meanwhile by another compactor
        if held.ids(key) != expected:
            part = held.held[key][0]
            log.error("compaction: %s does not match its rows in %s; kept", key, part)
            raise IntegrityError(key, problem=f"its request ids are not the rows {part} holds for it; kept")
        verified.append(key)
    _delete_many(store, verified)
    res.deleted += len(verified)
    return res


def _delete_many(store: Store, keys: list[str], threads: int = 16) -> None:
    """Delete verified raw objects, ``threads`` at a time (a delete is a round trip on S3, and a slow
    metadata write on a busy disk)."""
    if len(keys) <= 1:
        for key in keys:
            store.delete(key)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(threads, len(keys)), thread_name_prefix="mlops-delete") as pool:
        list(pool.map(store.delete, keys))


def compact(
    store: Store,
    models: list[str] | None = None,
    *,
    compact_after: float,
    keep_raw: float,
    now: float | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    keep_going: Callable[[], bool] | None = None,
) -> Summary:
    """Compact every closed hour of ``models`` (default: every model with capture), an hour at a time.

    ``progress(done, total)`` after each hour; ``keep_going()`` before each one (the server's lease renewal):
    False stops (``Summary.stopped``), leaving the rest to the next run. An hour that cannot be compacted (a
    JSON-lines object that is not JSON, a part that does not read back) is left as it is and listed in
    ``Summary.failed``; the other hours go on."""
    now = time.time() if now is None else now
    todo = closed_hours(store, models, now=now, compact_after=compact_after)
    summary = Summary(dry_run)
    schemas: dict[str, CaptureSchema] = {}  # read once a run: a part written has the table's columns then
    for i, (model, hour, raw, parts) in enumerate(todo):
        if keep_going is not None and not keep_going():
            summary.stopped = True
            break
        if raw:  # an hour already compacted and cleaned up has nothing to do
            try:
                if model not in schemas and not dry_run:
                    schemas[model] = schema_of(store, model)
                result = compact_hour(
                    store,
                    model,
                    hour,
                    raw,
                    parts,
                    now=now,
                    keep_raw=keep_raw,
                    dry_run=dry_run,
                    schema=schemas.get(model),
                )
            except MlopsError as exc:  # this hour stays as it is; the others go on
                summary.failed.append({"model": model, "hour": hour, "error": str(exc)})
            else:
                summary.hours.append(result)
        if progress is not None:
            progress(i + 1, len(todo))
    return summary


class BackgroundCompactor:
    """The server's compactor (``[monitoring.capture] compact_in_server``): each ``tick`` takes the store's
    compaction lease, compacts while renewing it between hours, and gives it up. Of N replicas (or
    ``--workers N``), one compacts at a time; the lease of one that died is taken over once it expires."""

    def __init__(
        self,
        store: Store,
        *,
        compact_after: float,
        keep_raw: float,
        lease_seconds: float,
        owner: str | None = None,
    ) -> None:
        from mlopsctl.monitoring.captured import writer_id
        from mlopsctl.store.lease import Lease

        self.store, self.compact_after, self.keep_raw = store, compact_after, keep_raw
        self.lease = Lease(store, LEASE_KEY, owner or writer_id(), lease_seconds)
        self.runs = 0
        self.last: dict[str, Any] | None = None

    def tick(self) -> Summary | None:
        """One compaction run if this process gets the lease, else None."""
        if not self.lease.acquire():
            return None
        try:
            summary = compact(
                self.store, compact_after=self.compact_after, keep_raw=self.keep_raw, keep_going=self.lease.renew
            )
        finally:
            self.lease.release()
        self.runs += 1
        self.last = summary.to_dict()
        for failed in summary.failed:
            log.error("compaction of %s %s failed: %s", failed["model"], failed["hour"], failed["error"])
        if summary.hours:
            log.info(
                "compaction: %d hour(s), %d records, %d raw object(s) deleted",
                self.last["hours"],
                self.last["records"],
                self.last["deleted"],
            )
        return summary
