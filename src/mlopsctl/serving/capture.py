"""The capture writer: every answered prediction recorded in the store, off the request path.

The request path calls ``CaptureWriter.offer``, which encodes the request's records as JSON
lines (a few µs a row) and appends the bytes to the batch of its model and hour, under a lock
held for that append only (nothing touches the disk). A background thread takes the batches
every ``flush_interval`` seconds, or as soon as ``batch_rows`` records wait, and writes one
JSON-lines object per model and hour partition:
``capture/{model}/{YYYY-MM-DDTHH}/{writer}-{seq}.jsonl`` (``monitoring/captured.py`` reads
them). The writer name is unique per process, so replicas never write the same object.
When the buffer is full new records are dropped and counted; on shutdown it is flushed.

The thread only swaps the batches out, joins bytes and writes them: its Python work does not
grow with the records, because whatever Python the writer runs holds the GIL while the event
loop waits. Were it to build the records itself (~10 µs a record), at 3,000 requests a second
the p99 latency at concurrency 8 went from 9 ms to over 100 ms (`bench/`). What is left is the
file writes themselves: on a server held to one core they share it with the event loop, which
puts ~1% of single-row requests at concurrency 1 at 0.3–2 ms instead of ~0.1 ms: p99 0.65 ms,
against 0.31 ms with ``--no-capture`` (`bench/RESULTS.md`).

The writer also remembers the last ``recent_requests`` request ids it answered (10,000 by
default, about 2 MB) with their predictions, at most ``recent_rows`` predictions in all
(100,000: a batch of 10,000 rows no longer pins 10,000 times as much memory as one row), so
``POST /feedback`` can tell a label for a known prediction from one for an unknown id; older
ids, and other replicas' ones, are looked up in the store's capture (``CapturedIndex``).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from mlopsctl.monitoring.captured import CapturedIndex, capture_key, encode_lines, writer_id
from mlopsctl.store.base import Store

if TYPE_CHECKING:
    from mlopsctl.serving.loaded import LoadedModel
    from mlopsctl.serving.metrics import ServerMetrics

log = logging.getLogger("mlopsctl.capture")


class CaptureWriter:
    def __init__(
        self,
        store: Store,
        metrics: ServerMetrics,
        *,
        sample_rate: float = 1.0,
        buffer_rows: int = 100_000,
        batch_rows: int = 2_000,
        flush_interval: float = 5.0,
        recent_requests: int = 10_000,
        recent_rows: int = 100_000,
        others: CapturedIndex | None = None,
        wal_dir: str | None = None,
    ) -> None:
        self.store, self.metrics = store, metrics
        self.sample_rate = sample_rate
        self.capacity, self.batch_rows, self.flush_interval = buffer_rows, batch_rows, flush_interval
        self.writer = writer_id()
        # (model, hour since the epoch) → [time of its first record, JSON lines of each request, rows]
        self._batches: dict[tuple[str, int], list[Any]] = {}
        self._batch_lock = threading.Lock()  # the request path appends, the writer swaps the dict out
        self.added = 0  # rows queued since start (request thread)
        self.drained = 0  # rows taken off the queue since start (writer thread)
        self.recent: dict[str, tuple[str, int, list[Any]]] = {}  # id -> (model, version, preds)
        self._recent_order: deque[str] = deque()  # the ids in `recent`, oldest first
        self.recent_limit = recent_requests
        self.recent_row_limit = recent_rows
        self._recent_rows = 0  # predictions held in `recent`
        self.others = others  # what the other replicas captured, for feedback on their predictions
        self.written = 0
        self.dropped = 0
        self.failed_writes = 0
        self._seq = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flush_lock = threading.Lock()
        self._retry: list[tuple[str, str, bytes, int]] = []  # (model, key, data, records) not yet written
        self.wal_dir = wal_dir
        self._wal: WriteAhead | None = None
        self._wal_done: list[Path] = []  # write-ahead files whose records are all taken by a flush
        self.recovered = 0  # records dead processes left in wal_dir, written at start
        self._drop_logged = -60.0

    # -- the request path ---------------------------------------------------------------------
    def offer(
        self,
        model: LoadedModel,
        request_id: str,
        endpoint: str,
        status: int,
        latency: float,
        cols: dict[str, list[Any]] | None,
        preds: list[Any] | None,
        probas: Any = None,
        error: str | None = None,
        variant: str | None = None,
        *,
        remember: bool = True,
        unit: str | None = None,
    ) -> None:
        """Queue one request: its records (one per row), encoded. ``unit``: the hashed sticky key of a request
        routed by an experiment (A/B analysis clusters its rows by it), else None.

        Never blocks, never raises into the request: the records encoded, one tuple appended, a few
        counters.
        """
        if status == 200 and remember:
            self.remember(request_id, model.name, model.version, preds or [])
        if self.sample_rate < 1.0 and random.random() >= self.sample_rate:
            return
        n = len(preds) if preds is not None else 1
        if self.added - self.drained + n > self.capacity:
            self.dropped += n
            self.metrics.capture_dropped.labels(model.name).inc(n)
            now = time.monotonic()
            if now - self._drop_logged >= 60:  # at most a line a minute, however many are dropped
                self._drop_logged = now
                log.warning(
                    "capture: buffer full (%d records): dropping; %d dropped so far", self.capacity, self.dropped
                )
            return
        self.added += n  # written only here (one thread: the event loop); drained only by the writer
        variant = variant or model.alias or f"v{model.version}"
        t = time.time()
        data = encode_lines(
            self.records(model, request_id, t, endpoint, status, latency, cols, preds, probas, error, variant, unit)
        )
        where = (model.name, int(t // 3600))
        with self._batch_lock:
            if self._wal is not None:
                self._wal.append(data)  # one write, no fsync: a dead process's lines stay with the kernel
            batch = self._batches.get(where)
            if batch is None:
                self._batches[where] = [t, [data], n]
            else:
                batch[1].append(data)
                batch[2] += n
        if self.added - self.drained >= self.batch_rows:
            self._wake.set()

    @staticmethod
    def records(
        model: LoadedModel,
        request_id: str,
        t: float,
        endpoint: str,
        status: int,
        latency: float,
        cols: dict[str, list[Any]] | None,
        preds: list[Any] | None,
        probas: Any,
        error: str | None,
        variant: str,
        unit: str | None = None,
    ) -> list[dict[str, Any]]:
        """The capture records of one request: one per row."""
        base: dict[str, Any] = {
            "request_id": request_id,
            "time": t,
            "model": model.name,
            "version": model.version,
            "variant": variant,
            "endpoint": endpoint,
            "status": status,
            "latency_ms": round(latency * 1000, 3),
        }
        if unit is not None:
            base["unit"] = unit
        if cols is None or preds is None:
            return [{**base, "row": 0, "inputs": None, "prediction": None, "error": error}]
        names = model.spec.names
        conf = [max(p) for p in probas.tolist()] if probas is not None else None  # Python floats, as JSON has them
        out = []
        for i, p in enumerate(preds):
            rec = {**base, "row": i, "inputs": {k: cols[k][i] for k in names}, "prediction": p}
            if conf is not None:
                rec["confidence"] = conf[i]
            out.append(rec)
        return out

    def remember(self, request_id: str, name: str, version: int, preds: list[Any]) -> None:
        """Note a request this process answered, for `POST /feedback` (done by `offer` unless told not to)."""
        if self.recent_limit <= 0 or self.recent_row_limit <= 0:
            return
        recent, order = self.recent, self._recent_order
        before = recent.get(request_id)
        if before is None:
            order.append(request_id)
        else:  # a client may send one X-Request-Id twice: it keeps its first place
            self._recent_rows -= len(before[2])
        recent[request_id] = (name, version, preds)
        self._recent_rows += len(preds)
        # the oldest go first, past either limit; the newest request stays, however many rows it has
        while len(order) > self.recent_limit or (self._recent_rows > self.recent_row_limit and len(order) > 1):
            gone = recent.pop(order.popleft(), None)
            if gone is not None:
                self._recent_rows -= len(gone[2])

    def _known(self, request_id: str) -> tuple[str, int, list[Any]] | None:
        hit = self.recent.get(request_id)
        if hit is None and self.others is not None:
            hit = self.others.get(request_id)  # answered by another replica (blocking: call off the loop)
        return hit

    def lookup(self, request_id: str) -> tuple[str, int, int] | None:
        """(model, version, rows) of a request this process, or another replica (from the store),
        answered recently, else None."""
        hit = self._known(request_id)
        return None if hit is None else (hit[0], hit[1], len(hit[2]))

    def prediction(self, request_id: str, row: int) -> Any:
        hit = self._known(request_id)
        return None if hit is None else hit[2][row]

    # -- the background writer ------------------------------------------------------------------
    def start(self) -> None:
        if self.wal_dir and self._wal is None:
            self.recovered = recover_write_ahead(self.wal_dir, self.store)
            self._wal = WriteAhead(self.wal_dir, self.writer)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mlops-capture", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # never let the thread die; the records stay queued
                log.exception("capture flush failed")

    def flush(self) -> int:
        """Write out everything queued now; returns the number of records written."""
        with self._flush_lock:
            done = self._write_retries()  # earlier batches first, in their order
            with self._batch_lock:
                batches, self._batches = self._batches, {}
                if self._wal is not None and batches:
                    self._wal_done.append(self._wal.rotate())
            for (name, _), (first_time, chunks, n) in sorted(batches.items(), key=lambda kv: kv[1][0]):
                self.drained += n
                self._seq += 1
                key = capture_key(name, first_time, self.writer, self._seq)
                data = b"".join(chunks)
                chunks.clear()
                try:
                    self.store.put(key, data)
                except Exception as exc:
                    self.failed_writes += 1
                    log.error("capture: cannot write %s (%d records, kept): %s", key, n, exc)
                    self._retry.append((name, key, data, n))
                    continue
                done += n
                self.metrics.capture_written.labels(name).inc(n)
            self.written += done
            if not self._retry:  # every record of the closed write-ahead files is in the store
                for path in self._wal_done:
                    path.unlink(missing_ok=True)
                self._wal_done.clear()
            return done

    def _write_retries(self) -> int:
        """Batches whose write failed are tried again (same key) while they fit in the buffer's capacity."""
        done, keep, held = 0, [], 0
        for name, key, data, n in self._retry:
            try:
                self.store.put(key, data)
            except Exception:
                self.failed_writes += 1
                if held + n <= self.capacity:
                    keep.append((name, key, data, n))
                    held += n
                else:
                    self.dropped += n
                    self.metrics.capture_dropped.labels(name).inc(n)
                continue
            done += n
            self.metrics.capture_written.labels(name).inc(n)
        self._retry = keep
        return done

    def close(self) -> None:
        """Stop the thread and write what is left (called on server shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()
        if self._wal is not None and not self._retry:
            self._wal.close()  # empty once flushed: removed
            self._wal = None

    def status(self) -> dict[str, Any]:
        return {
            "writer": self.writer,
            "queued": self.added - self.drained,
            "written": self.written,
            "dropped": self.dropped,
            "failed_writes": self.failed_writes,
            "sample_rate": self.sample_rate,
            "write_ahead": self.wal_dir or None,
            "recovered": self.recovered,
        }


# -- the write-ahead file -----------------------------------------------------------------------------------


class WriteAhead:
    """The capture buffer's optional write-ahead file (``[monitoring.capture] wal_dir``).

    Each request's lines are appended to a local file as they are queued: one ``write`` on the request's
    bookkeeping path, no fsync. A flush starts a new file and deletes the old one once its records are in
    the store. A process that dies (kill -9, the OOM killer) leaves its file behind, and the kernel still
    holds what it wrote; the next server started with the same ``wal_dir`` on the same host writes those
    records to the store (`recover_write_ahead`). It protects against the process dying, not the machine:
    a power cut loses what the page cache held.
    """

    def __init__(self, folder: str | os.PathLike[str], writer: str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.writer = writer
        self._seq = 0
        self._file: Any = None
        self.path = self._open()

    def _open(self) -> Path:
        self._seq += 1
        path = self.folder / f"{self.writer}.{self._seq:06d}.wal"
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 (held open until rotate or close)
        return path

    def append(self, data: bytes) -> None:
        self._file.write(data)

    def rotate(self) -> Path:
        """Start a new file; returns the closed one (to delete once its records are in the store)."""
        done = self.path
        self._file.close()
        self.path = self._open()
        return done

    def close(self) -> None:
        self._file.close()
        if self.path.exists() and self.path.stat().st_size == 0:
            self.path.unlink()


def _alive(writer: str) -> bool:
    """Whether the process that owns a write-ahead file still runs (it is then not ours to replay)."""
    host = "".join(c if c.isalnum() or c in "-." else "-" for c in socket.gethostname())[:40] or "host"
    rest = writer[len(host) + 1 :] if writer.startswith(host + "-") else None
    if rest is None:
        return True  # another host's file (a shared folder): leave it to that host
    pid_text = rest.split("-", 1)[0]
    if not pid_text.isdigit():
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # our pid, another writer name: a process before us (pid 1 in a container) that died
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a live pid may have been reused by something else (an empty command line: starting, keep it)
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return not command or b"mlopsctl" in command


def recover_write_ahead(folder: str | os.PathLike[str], store: Store) -> int:
    """Write the records dead processes left in ``folder`` to the store, then delete their files.

    Keys are made from the file's name and the record group (model and hour), and written with
    put-if-absent, so a recovery that stops half-way and runs again writes nothing twice. A torn last
    line (the process died inside a write) is skipped. Returns the number of records written."""
    from mlopsctl.errors import Conflict

    root = Path(folder)
    if not root.is_dir():
        return 0
    total = 0
    for path in sorted(root.glob("*.wal")):
        writer, _, seq = path.name.removesuffix(".wal").rpartition(".")
        if not writer or _alive(writer):
            continue
        groups: dict[tuple[str, int], list[bytes]] = {}
        firsts: dict[tuple[str, int], float] = {}
        for line in path.read_bytes().splitlines():
            try:
                rec = orjson.loads(line)
                where = (str(rec["model"]), int(float(rec["time"]) // 3600))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
            groups.setdefault(where, []).append(line + b"\n")
            firsts.setdefault(where, float(rec["time"]))
        for i, (where, lines) in enumerate(sorted(groups.items())):
            key = capture_key(where[0], firsts[where], f"{writer}-wal{seq}", i + 1)
            try:
                store.put_if_absent(key, b"".join(lines))
            except Conflict:
                continue  # written by a recovery that stopped before deleting the file
            total += len(lines)
        log.warning("capture: wrote %d records a stopped process left in %s", sum(map(len, groups.values())), path)
        path.unlink(missing_ok=True)
    return total
