"""The measuring tools of serve_bench.py: server processes pinned to a core, wrk runs, /proc readings.

Everything talks to 127.0.0.1 only. A `Server` is a real process started under `taskset`; `Servers`
is a context manager that stops every process it started, also when the benchmark fails.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
SERVER_CORE = "0"
CLIENT_CORE = "1"

# Percentiles straight from wrk's histogram (microseconds), printed as one JSON line by `done`.
_LUA = """wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_JSON {{\\"requests\\": %d, \\"duration_us\\": %d, \\"connect_errors\\": %d, "
    .. "\\"read_errors\\": %d, \\"write_errors\\": %d, \\"status_errors\\": %d, \\"timeouts\\": %d, "
    .. "\\"p50_us\\": %.1f, \\"p90_us\\": %.1f, \\"p99_us\\": %.1f, "
    .. "\\"mean_us\\": %.1f, \\"max_us\\": %.1f}}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def post(port: int, path: str, body: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    """One POST on a fresh connection: (status, body). Raises OSError when nothing listens."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_for_200(
    port: int,
    body: bytes,
    proc: subprocess.Popen[bytes],
    timeout: float,
    poll: float,
    since: float | None = None,
) -> float:
    """Seconds from ``since`` (perf_counter; default now) until ``POST /predict`` answers 200."""
    start = time.perf_counter() if since is None else since
    while True:
        try:
            status, _ = post(port, "/predict", body)
            if status == 200:
                return time.perf_counter() - start
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"server on port {port}: no 200 from POST /predict in {timeout:.0f} s")
        time.sleep(poll)


@dataclass
class Server:
    """One server process on core ``SERVER_CORE``; ``argv`` gets ``{port}`` filled in."""

    key: str
    label: str
    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self) -> float:
        """Spawn the process; returns the perf_counter time just before the spawn."""
        self.port = free_port()
        self.log = self.cwd / f"{self.key}.log"
        cmd = ["taskset", "-c", SERVER_CORE, *(a.replace("{port}", str(self.port)) for a in self.argv)]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(  # taskset execs the server: the pid is the server's
            cmd,
            cwd=self.cwd,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        return t0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log_tail(self, n: int = 20) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


class Servers:
    """Every server the benchmark started, stopped on exit whatever happens."""

    def __init__(self) -> None:
        self.started: list[Server] = []

    def __enter__(self) -> Servers:
        return self

    def add(self, server: Server) -> Server:
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        for s in self.started:
            try:
                s.stop()
            except Exception:
                if s.proc is not None and s.proc.poll() is None:
                    s.proc.kill()

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def write_lua(folder: Path, name: str, body: bytes) -> Path:
    text = body.decode()
    if "]==]" in text:
        raise ValueError("the body cannot sit in a Lua long string")
    path = folder / f"{name}.lua"
    path.write_text(_LUA.format(body=text))
    return path


def run_wrk(port: int, script: Path, connections: int, seconds: int, threads: int = 1) -> dict[str, Any]:
    """One wrk run on core ``CLIENT_CORE``: req/s, p50/p90/p99/mean/max in ms, error counts."""
    cmd = [
        "taskset",
        "-c",
        CLIENT_CORE,
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        f"http://{HOST}:{port}/predict",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "mean_ms": raw["mean_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "requests": raw["requests"],
        "errors": errors,
        "non_2xx": raw["status_errors"],
    }


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` (VmRSS) in MB."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) / 1024 if match else float("nan")


def loaded_libraries(pid: int) -> dict[str, bool]:
    """Which native packages the process has mapped (each one loads .so files when imported)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    packages = ("sklearn", "pandas", "scipy", "onnxruntime", "uvloop", "httptools")
    return {p: f"/{p}/" in maps for p in packages}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_changes(root: Path, *paths: str) -> tuple[str, list[str]]:
    """The commit checked out in ``root`` and the files under ``paths`` with uncommitted changes (read-only)."""

    def git(*args: str) -> str:
        # rstrip, not strip: porcelain lines begin with their status column, which may be a space
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True).stdout.rstrip("\n")

    status = git("status", "--porcelain", "--", *paths)
    return git("rev-parse", "HEAD"), [line[3:] for line in status.splitlines()]
