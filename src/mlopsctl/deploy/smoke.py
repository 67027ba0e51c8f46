"""Smoke tests of a running service, from the outside: what `mlopsctl smoke URL` and the deploy workflow run.

Against any address that serves mlopsctl (a laptop, a container, the load balancer of `deploy aws`):

- ``health``: ``GET /health`` answers 200 with status ok (every model loaded, the store readable);
- ``ready``: ``GET /ready`` answers 200 (both wait up to ``wait`` seconds in all, for a service starting);
- ``predict NAME``: for each served model (or the ones asked for), one row made from the signature ``GET
  /models`` gives is sent to ``POST /models/NAME/predict``; the answer is 200 with a prediction by that model;
- ``bad request``: the same row with its first feature's value of the wrong type is refused with a 4xx and
  the JSON error body, naming the feature (never accepted, never a 5xx);
- ``metrics``: ``GET /metrics`` is Prometheus text with the request counter of each model.

Each check gives one line; nothing here changes what the service serves (a prediction is captured like any).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_TIMEOUT = 10.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def example_row(inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row the signature accepts: the middle of each numeric feature's training range (whole for an
    integer one), the first category of a categorical one, a short text for a text one."""
    row: dict[str, Any] = {}
    for f in inputs:
        kind = f.get("kind", "numeric")
        if kind == "categorical" and f.get("categories"):
            row[f["name"]] = f["categories"][0]
        elif kind in ("categorical", "text"):
            row[f["name"]] = "a smoke test of the service"
        else:
            lo, hi = f.get("min"), f.get("max")
            value = (lo + hi) / 2 if lo is not None and hi is not None else lo if lo is not None else 0.0
            row[f["name"]] = round(value) if str(f.get("dtype", "")).startswith("int") else value
    return row


def _wrong_type(inputs: list[dict[str, Any]], row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(feature, row) with one value of the wrong type: text where a number goes, else a number where text goes."""
    numeric = [f["name"] for f in inputs if f.get("kind", "numeric") == "numeric"]
    name = numeric[0] if numeric else inputs[0]["name"]
    return name, {**row, name: "not a number" if numeric else {"not": "a string"}}


def _short(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _problem(r: Any) -> str:
    """The error body's message (or the start of the body), for a failed check's line."""
    try:
        body = r.json()
        return _short(str(body.get("message") or body.get("detail") or body))
    except ValueError:
        return _short(r.text)


class _Run:
    def __init__(self, client: Any, checks: list[Check]) -> None:
        self.client, self.checks = client, checks

    def check(self, name: str, fn: Callable[[], str]) -> bool:
        """Run one check: ``fn`` returns the detail of a pass or raises ``AssertionError`` with what failed."""
        import httpx

        start = time.monotonic()
        try:
            detail, ok = fn(), True
        except AssertionError as exc:
            detail, ok = str(exc), False
        except httpx.HTTPError as exc:
            detail, ok = f"{type(exc).__name__}: {_short(str(exc)) or 'no answer'}", False
        self.checks.append(Check(name, ok, detail, time.monotonic() - start))
        return ok


def run_smoke(
    url: str,
    *,
    models: list[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    wait: float = 0.0,
    transport: Any = None,
) -> list[Check]:
    """The checks against ``url``, in order; each passed or failed with one line of detail."""
    import httpx

    checks: list[Check] = []
    with httpx.Client(base_url=url.rstrip("/"), timeout=timeout, transport=transport) as client:
        run = _Run(client, checks)
        deadline = time.monotonic() + wait
        run.check("health", lambda: _health(client, deadline))
        run.check("ready", lambda: _ready(client, wait, deadline))
        served: dict[str, dict[str, Any]] = {}
        listed = run.check("models", lambda: _models(client, served))
        names = models or list(served)
        first: tuple[str, dict[str, Any]] | None = None
        for name in names if listed else models or []:
            info = served.get(name)

            def predict(name: str = name, info: dict[str, Any] | None = info) -> str:
                return _predict(client, name, info, served)

            if run.check(f"predict {name}", predict):
                first = first or (name, info or {})
        run.check("bad request", lambda: _bad_request(client, first))
        run.check("metrics", lambda: _metrics(client, [n for n in names if n in served]))
    return checks


def _until(deadline: float, attempt: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
    """``attempt()`` again every second or two until ``done`` says so or ``deadline`` passes; the last answer (or
    the last connection error, raised)."""
    import httpx

    while True:
        try:
            answer = attempt()
            if done(answer) or time.monotonic() >= deadline:
                return answer
        except httpx.TransportError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))


def _health(client: Any, deadline: float) -> str:
    r = _until(deadline, lambda: client.get("/health"), lambda r: r.status_code == 200 and _status_ok(r))
    assert r.status_code == 200, f"GET /health answered {r.status_code}: {_problem(r)}"
    body = r.json()
    if not _status_ok(r):
        checks = body.get("checks", {})
        bad = [f"model {n}: {c.get('status')}" for n, c in checks.get("models", {}).items() if c.get("status") != "ok"]
        if checks.get("store", {}).get("status", "ok") != "ok":
            bad.append(f"store: {checks['store'].get('status')} ({_short(str(checks['store'].get('error', '')))})")
        raise AssertionError(f"GET /health says {body.get('status')}: {'; '.join(bad) or body}")
    return f"status ok, up {body.get('uptime_seconds', '?')} s, mlopsctl {body.get('version', '?')}"


def _status_ok(r: Any) -> bool:
    try:
        return r.json().get("status") in (None, "ok")
    except (ValueError, AttributeError):
        return False


def _ready(client: Any, wait: float, deadline: float) -> str:
    r = _until(deadline, lambda: client.get("/ready"), lambda r: r.status_code == 200)
    if r.status_code != 200:
        waited = f" after {wait:g} s" if wait else ""
        try:
            down = [m.get("name") for m in r.json().get("models", []) if not m.get("loaded")]
            why = f"not loaded: {', '.join(map(str, down))}" if down else _problem(r)
        except (ValueError, AttributeError):
            why = _problem(r)
        raise AssertionError(f"GET /ready answered {r.status_code}{waited}: {why}")
    return "every served model is loaded"


def _models(client: Any, served: dict[str, dict[str, Any]]) -> str:
    r = client.get("/models")
    assert r.status_code == 200, f"GET /models answered {r.status_code}: {_problem(r)}"
    for m in r.json().get("models", []):
        served[m["name"]] = m
    assert served, "GET /models lists no model"
    return ", ".join(f"{n} v{m.get('version')}" if m.get("version") else f"{n} (not loaded)" for n, m in served.items())


def _predict(client: Any, name: str, info: dict[str, Any] | None, served: dict[str, dict[str, Any]]) -> str:
    assert info is not None, f"{name} is not served here; served: {', '.join(served) or 'none'}"
    assert info.get("inputs"), f"{name} is not loaded: {info.get('error') or 'no signature in GET /models'}"
    row = example_row(info["inputs"])
    r = client.post(f"/models/{name}/predict", json={"features": row})
    assert r.status_code == 200, f"POST /models/{name}/predict answered {r.status_code}: {_problem(r)}"
    body = r.json()
    assert "prediction" in body or "predictions" in body, f"POST /models/{name}/predict: no prediction in {body}"
    assert body.get("model", name) == name, f"answered by {body.get('model')}, not {name}"
    prediction = body.get("prediction", body.get("predictions"))
    return (
        f"{_short(str(prediction), 40)} from v{body.get('model_version')} in {body.get('processing_time_ms', '?')} ms"
    )


def _bad_request(client: Any, first: tuple[str, dict[str, Any]] | None) -> str:
    row: dict[str, Any]
    if first is None:
        path, feature, row = "/predict", "features", {"features": "not an object"}
    else:
        name, info = first
        feature, bad = _wrong_type(info["inputs"], example_row(info["inputs"]))
        path, row = f"/models/{name}/predict", {"features": bad}
    r = client.post(path, json=row)
    assert 400 <= r.status_code < 500, f"POST {path} with {feature} of the wrong type answered {r.status_code}"
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"POST {path} refused it with {r.status_code} but no JSON error body") from None
    assert isinstance(body, dict) and "error" in body, f"the {r.status_code} body has no error: {_short(str(body))}"
    details = [d for d in body.get("detail") or [] if isinstance(d, dict)]
    named = [d for d in details if feature in str(d.get("field", ""))]
    assert named or not details, f"the {r.status_code} body does not name {feature}: {_short(str(details))}"
    said = f"{named[0].get('field')}: {named[0].get('problem')}" if named else body.get("message", "")
    return f"{r.status_code} {body['error']}: {_short(str(said), 80)}"


def _metrics(client: Any, names: list[str]) -> str:
    from prometheus_client.parser import text_string_to_metric_families

    r = client.get("/metrics")
    assert r.status_code == 200, f"GET /metrics answered {r.status_code}"
    try:
        families = {f.name: f for f in text_string_to_metric_families(r.text)}
    except ValueError as exc:
        raise AssertionError(f"GET /metrics is not Prometheus text: {exc}") from None
    requests = families.get("mlops_requests")
    assert requests is not None, "GET /metrics has no mlops_requests_total: is it an mlopsctl server?"
    counted = {s.labels.get("model") for s in requests.samples}
    missing = [n for n in names if n not in counted]
    assert not missing, f"GET /metrics counts no request of {', '.join(missing)}"
    return f"{len(families)} metric families, requests of {', '.join(sorted(n for n in counted if n))}"
