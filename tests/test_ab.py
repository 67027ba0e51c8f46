"""A/B tests, canaries and shadows against real `mlopsctl serve` processes on 127.0.0.1.

The store holds wine v1 (random forest, prod), v2 (logistic regression) and v3, trained on
the same wine with one more column (`lot`) that callers do not send: every request it gets
fails with 422, the candidate a guard must pull back.
"""

from __future__ import annotations

import json
import math
import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import WINE_RED, Receiver, run_cli, train_and_publish, wine_rows, write_project

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


@pytest.fixture(scope="module")
def ab_registry(wine_registry: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's wine store plus v3, which needs a column callers never send."""
    import pandas as pd

    root = tmp_path_factory.mktemp("ab")
    store_dir = root / "store"
    shutil.copytree(wine_registry["store_dir"], store_dir)
    df = pd.read_csv(WINE_RED, sep=";")
    df.insert(0, "lot", range(len(df)))
    data = root / "wine-with-lot.csv"
    df.to_csv(data, sep=";", index=False)
    _, _, _, v3 = train_and_publish(
        write_project(root / "lot", data=data, model="logistic_regression", params="{}", store=store_dir)
    )
    assert v3 == 3
    return store_dir


@pytest.fixture
def ab_store(ab_registry: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "store"
    shutil.copytree(ab_registry, dest)
    return dest


def cli(store: Path, *args: str, cwd: Path, check: bool = True) -> Any:
    return run_cli("--store", str(store), *args, cwd=cwd, check=check)


def project(folder: Path, store: Path, extra: str) -> Path:
    """A project folder whose mlops.toml holds the experiment and notify settings the server reads."""
    write_project(folder, store=store)
    with (folder / "mlops.toml").open("a") as f:
        f.write(extra)
    return folder


def wait_for(predicate: Any, timeout: float = 15, every: float = 0.1) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError("condition not met in time")


def variant_of(client: httpx.Client, row: dict[str, float], headers: dict[str, str] | None = None) -> str:
    r = client.post("/predict", json={"features": row}, headers=headers or {})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "x-variant" not in r.headers  # off unless [serving] variant_header asks for it
    return str(body["variant"])


def test_split_sticky_report_and_promotion(ab_store: Path, start_server: Any, tmp_path: Path) -> None:
    store = ab_store
    server = start_server(["--store", str(store), "serve", "--model", "wine@prod", "--reload-interval", "0.25"])
    row = wine_rows(1)[0]
    out = cli(store, "ab", "start", "wine", "--control", "prod", "--candidate", "2", "--split", "70/30",
              "--sticky", "X-User-Id", cwd=tmp_path).stdout  # fmt: skip
    assert "70 % / candidate v2 30 %" in out and "sticky on X-User-Id" in out
    client = httpx.Client(base_url=server.url, timeout=10)
    wait_for(lambda: variant_of(client, row) == "candidate")  # the server switched routes by itself

    # the split, over a few thousand requests: within 5 standard deviations of 30 % (the experiment id
    # salts the hash and is new each run, so these shares are random: 4 sd failed once in CI, 5 sd is 1 in 2 million)
    n = 3000
    counts = Counter(variant_of(client, row) for _ in range(n))
    assert set(counts) == {"control", "candidate"}
    share = counts["candidate"] / n
    assert abs(share - 0.30) < 5 * math.sqrt(0.3 * 0.7 / n), counts

    # sticky keys: every request of a user lands on the same variant; the users split 70/30 too
    users = [f"user-{i}" for i in range(600)]
    first = {u: variant_of(client, row, {"X-User-Id": u}) for u in users}
    for _ in range(2):
        for u in users[:100]:
            assert variant_of(client, row, {"X-User-Id": u}) == first[u]
    user_share = sum(v == "candidate" for v in first.values()) / len(users)
    assert abs(user_share - 0.30) < 5 * math.sqrt(0.3 * 0.7 / len(users)), user_share

    metrics = client.get("/metrics").text
    assert 'variant="candidate"' in metrics and 'variant="control"' in metrics
    assert 'mlops_variant_weight{model="wine",variant="candidate"} 0.3' in metrics  # a share, as every ratio
    assert 'mlops_variant_weight{model="wine",variant="prod"}' not in metrics  # the plain route's gauge is gone

    # labels for what was answered, through the server's /feedback
    import pandas as pd

    df = pd.read_csv(WINE_RED, sep=";").sample(400, random_state=1)
    feedback = []
    for _, r in df.iterrows():
        features = {k: float(v) for k, v in r.items() if k != "quality"}
        body = client.post("/predict", json={"features": features}).json()
        feedback.append({"request_id": body["request_id"], "label": int(r["quality"])})
    assert client.post("/feedback", json=feedback).status_code == 200

    # a restart (stop flushes capture): sticky users keep their variant, it is a hash, not server state
    server.stop()
    server = start_server(["--store", str(store), "serve", "--model", "wine@prod", "--reload-interval", "0.25"])
    client = httpx.Client(base_url=server.url, timeout=10)
    for u in users[:100]:
        assert variant_of(client, row, {"X-User-Id": u}) == first[u]
    server.stop()

    # the report reads the captured requests: every one is there, with its variant
    html = tmp_path / "ab.html"
    report = json.loads(cli(store, "ab", "report", "wine", "--json", "--html", str(html), cwd=tmp_path).stdout)
    by = {v["name"]: v for v in report["variants"]}
    sticky_requests = len(users) + 200 + 100
    total = 1 + n + sticky_requests + len(feedback)  # at least: the first switch-over polls add more
    assert by["control"]["requests"] + by["candidate"]["requests"] >= total
    assert by["control"]["labelled"] + by["candidate"]["labelled"] == len(feedback)
    assert by["control"]["accuracy"]["value"] > by["candidate"]["accuracy"]["value"]  # forest vs linear
    assert report["verdict"] == "control_better", report["reason"]
    assert report["experiment_info"]["weights"] == {"control": 70.0, "candidate": 30.0}
    page = html.read_text()
    assert "<script" not in page and "control better" in page.lower()

    status = cli(store, "ab", "status", "wine", cwd=tmp_path).stdout
    assert "running" in status and "control better" in status

    # promotion needs the verdict: refused here (the control is better), then forced
    refused = cli(store, "ab", "conclude", "wine", "--promote", cwd=tmp_path, check=False)
    assert refused.returncode == 1 and "verdict is 'control better'" in refused.stderr
    done = cli(store, "ab", "conclude", "wine", cwd=tmp_path).stdout
    assert "concluded" in done
    from mlopsctl import registry
    from mlopsctl.experiments import deployment as dep
    from mlopsctl.store import open_store

    s = open_store(str(store))
    assert registry.get_alias(s, "wine", "prod")["version"] == 1  # concluded without promotion
    d, _ = dep.read_deployment(s, "wine", "prod")
    assert d is not None and d.is_plain() and d.experiment is None
    record = dep.experiment_records(s, "wine")[0]
    assert record["status"] == "concluded" and record["report"]["verdict"] == "control_better"
    actions = [e["action"] for e in registry.events(s, "wine")]
    assert "ab_start" in actions and "ab_conclude" in actions


def test_shadow_is_captured_never_returned_and_its_failures_stay_hidden(
    ab_store: Path, start_server: Any, tmp_path: Path
) -> None:
    store = ab_store
    cli(store, "shadow", "add", "wine", "2", cwd=tmp_path)
    cli(store, "shadow", "add", "wine", "3", "--force", cwd=tmp_path)  # v3 fails every request: nobody may notice
    server = start_server(["--store", str(store), "serve", "--model", "wine@prod", "--reload-interval", "0.25"])
    client = httpx.Client(base_url=server.url, timeout=10)
    rows = wine_rows(200)
    ids = []
    for r in rows:
        resp = client.post("/predict", json={"features": r})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["variant"] == "prod" and body["model_version"] == 1
        ids.append(body["request_id"])
    batch = client.post("/predict", json={"instances": rows[:5]})
    assert batch.status_code == 200 and batch.json()["model_version"] == 1

    def shadow_counts() -> dict[str, float]:
        out: dict[str, float] = {}
        for line in client.get("/metrics").text.splitlines():
            if line.startswith("mlops_shadow_requests_total{"):
                labels, value = line.rsplit(" ", 1)
                out[labels] = float(value)
        return out

    counts = wait_for(lambda: (c := shadow_counts()) and sum(c.values()) >= 2 * 201 and c)
    ok = sum(v for k, v in counts.items() if 'variant="shadow-v2"' in k and 'status="200"' in k)
    failed = sum(v for k, v in counts.items() if 'variant="shadow-v3"' in k and 'status="422"' in k)
    assert ok == 201 and failed == 201
    metrics = client.get("/metrics").text
    assert 'variant="shadow-v2"' not in "".join(
        line for line in metrics.splitlines() if line.startswith("mlops_requests_total")
    )  # shadows answer no caller: they are not requests
    server.stop()

    from mlopsctl.monitoring.captured import load_captures
    from mlopsctl.store import open_store

    records = load_captures(open_store(str(store)), "wine")
    by_variant = Counter((r["variant"], r["version"], r["status"]) for r in records)
    assert by_variant[("prod", 1, 200)] == 205
    assert by_variant[("shadow-v2", 2, 200)] == 205  # one per row, the batch's five included
    assert by_variant[("shadow-v3", 3, 422)] == 201  # a failed request is one record
    shadow_ids = {r["request_id"] for r in records if r["variant"] == "shadow-v2"}
    assert set(ids) <= shadow_ids  # the same requests, joined by request id

    cli(store, "shadow", "remove", "wine", "3", cwd=tmp_path)
    listing = cli(store, "shadow", "list", "wine", cwd=tmp_path).stdout
    assert "shadow-v2" in listing and "shadow-v3" not in listing


@pytest.mark.alone  # the route must reach the server within 1 s and carry > 50 requests in 1.5 s
def test_guard_pulls_back_a_failing_candidate_and_notifies(ab_store: Path, start_server: Any, tmp_path: Path) -> None:
    receiver = Receiver()
    folder = project(
        tmp_path / "proj",
        ab_store,
        f"""
[experiments.guard]
window = "20s"
min_requests = 30
interval = "0.5s"
[monitoring.notify]
stdout = false
webhook_url = "{receiver.url}"
""",
    )
    toml = (folder / "mlops.toml").read_text()
    (folder / "mlops.toml").write_text(toml.replace("[serving]\n", "[serving]\nvariant_header = true\n", 1))
    server = start_server(["serve", "--model", "wine@prod", "--reload-interval", "0.25"], cwd=folder)
    cli(ab_store, "ab", "start", "wine", "--candidate", "3", "--split", "50/50", "--force", cwd=folder)
    client = httpx.Client(base_url=server.url, timeout=10)
    row = wine_rows(1)[0]
    statuses: Counter[tuple[int, str]] = Counter()
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            r = client.post("/predict", json={"features": row})
            statuses[(r.status_code, r.headers.get("x-variant", ""))] += 1

    t = threading.Thread(target=traffic)
    t.start()
    try:
        from mlopsctl.experiments import deployment as dep
        from mlopsctl.store import open_store

        s = open_store(str(ab_store))

        def pulled() -> Any:
            d, _ = dep.read_deployment(s, "wine", "prod")
            return d if d and d.experiment and d.experiment["status"] == "pulled_back" else None

        d = wait_for(pulled, timeout=30)
        pulled_at = time.monotonic()
        assert d.weight("candidate") == 0 and d.weight("control") == 100
        assert "error rate" in d.experiment["pulled_back"]["reason"]
        time.sleep(1.0)  # the route reaches the server within its reload interval
        before = statuses.copy()
        time.sleep(1.5)
    finally:
        stop.set()
        t.join()
    after = statuses - before
    assert sum(after.values()) > 50 and set(after) == {(200, "control")}, after
    assert statuses[(422, "candidate")] >= 30  # what the guard saw
    assert time.monotonic() - pulled_at < 10

    from mlopsctl import registry

    pulls = [e for e in registry.events(s, "wine") if e["action"] == "ab_pull_back"]
    assert len(pulls) == 1 and "error rate" in pulls[0]["reason"]
    wait_for(lambda: receiver.bodies, timeout=10)
    assert receiver.bodies[0]["alert"] == "MlopsCanaryPulledBack" and receiver.bodies[0]["model"] == "wine"
    receiver.close()
    status = cli(ab_store, "ab", "status", "wine", cwd=folder).stdout
    assert "pulled_back" in status and "ab_pull_back" in status


@pytest.mark.alone  # each step needs 20 candidate requests (of 10 %) in the guard's 2 s window: ~100 requests/s
def test_ramp_moves_up_only_while_the_guard_holds(ab_store: Path, start_server: Any, tmp_path: Path) -> None:
    folder = project(
        tmp_path / "proj",
        ab_store,
        """
[experiments.guard]
window = "2s"
min_requests = 20
interval = "0.5s"
[monitoring.notify]
stdout = false
""",
    )
    server = start_server(["serve", "--model", "wine@prod", "--reload-interval", "0.25"], cwd=folder)
    out = cli(ab_store, "ab", "start", "wine", "--candidate", "2", "--ramp", "10,50,100", cwd=folder).stdout
    assert "90 % / candidate v2 10 %" in out and "ramp 10 → 50 → 100 %" in out
    client = httpx.Client(base_url=server.url, timeout=10)
    rows = wine_rows(50)
    from mlopsctl.experiments import deployment as dep
    from mlopsctl.store import open_store

    s = open_store(str(ab_store))
    seen: list[float] = []

    def at_full() -> bool:
        for r in rows:
            resp = client.post("/predict", json={"features": r})
            assert resp.status_code == 200, resp.text  # no request fails while the routes switch
        d, _ = dep.read_deployment(s, "wine", "prod")
        assert d is not None and d.experiment is not None
        w = d.weight("candidate")
        if not seen or seen[-1] != w:
            seen.append(w)
        return w == 100

    wait_for(at_full, timeout=40, every=0)
    assert seen[0] == 10 and seen[-1] == 100 and seen == sorted(seen)
    from mlopsctl import registry

    def ramps() -> list[dict[str, Any]]:
        return [e for e in registry.events(s, "wine") if e["action"] == "ab_ramp"]

    # the event is recorded right after the deployment moved
    assert [e["weight"] for e in wait_for(lambda: len(ramps()) >= 2 and ramps())] == [50, 100]
    assert all("guard held" in e["reason"] for e in ramps())
    wait_for(lambda: variant_of(client, rows[0]) == "candidate" and variant_of(client, rows[1]) == "candidate")


def test_bad_commands_are_refused_with_a_clear_message(ab_store: Path, tmp_path: Path) -> None:
    def refused(*args: str) -> str:
        proc = cli(ab_store, *args, cwd=tmp_path, check=False)
        assert proc.returncode != 0, proc.stdout
        return str(proc.stderr)

    assert "adds up to 110, not 100" in refused("ab", "start", "wine", "--candidate", "2", "--split", "90/20")
    assert "expected CONTROL/CANDIDATE" in refused("ab", "start", "wine", "--candidate", "2", "--split", "ninety")
    msg = refused("ab", "start", "wine", "--candidate", "9")
    assert "wine@9" in msg and "versions: v1, v2, v3" in msg
    assert "the control must be an alias" in refused("ab", "start", "wine", "--control", "staging", "--candidate", "2")
    assert "the version prod serves already" in refused("ab", "start", "wine", "--candidate", "1")
    assert "increasing percentages" in refused("ab", "start", "wine", "--candidate", "2", "--ramp", "50,10")
    assert "not an HTTP header name" in refused("ab", "start", "wine", "--candidate", "2", "--sticky", "X User")
    assert "none is running" in refused("ab", "stop", "wine")
    cli(ab_store, "ab", "start", "wine", "--candidate", "2", cwd=tmp_path)
    msg = refused("ab", "start", "wine", "--candidate", "3")
    assert "already has an experiment running" in msg and "ab conclude wine" in msg
    assert "shadows now: none" in refused("shadow", "remove", "wine", "2")
    cli(ab_store, "ab", "stop", "wine", "--reason", "test over", cwd=tmp_path)
    from mlopsctl.experiments import deployment as dep
    from mlopsctl.store import open_store

    s = open_store(str(ab_store))
    assert dep.running(s, "wine") is None
    records = dep.experiment_records(s, "wine")
    assert [r["status"] for r in records] == ["stopped"]


def test_a_candidate_with_other_inputs_is_refused_unless_forced(ab_store: Path, tmp_path: Path) -> None:
    """v3 needs a `lot` column v1 (prod) never gets: `ab start`, `shadow add` and `promote` refuse it naming the
    column (before, `ab start` took it and every request routed to it got 422); --force goes ahead and the
    override is in the history and the experiment record."""
    from mlopsctl import registry
    from mlopsctl.experiments import deployment as dep
    from mlopsctl.registry import history
    from mlopsctl.store import open_store

    store = open_store(str(ab_store))
    for args in (
        ("ab", "start", "wine", "--candidate", "3"),
        ("shadow", "add", "wine", "3"),
        ("promote", "wine", "3", "--alias", "prod"),
    ):
        proc = cli(ab_store, *args, cwd=tmp_path, check=False)
        assert proc.returncode == 1, proc.stdout
        line = proc.stderr.strip()
        assert line.startswith("error:") and "\n" not in line, line
        assert "candidate v3 adds column 'lot'" in line and "--force" in line, line
    assert dep.running(store, "wine") is None and registry.get_alias(store, "wine", "prod")["version"] == 1
    assert dep.deployments(store, "wine") == [] or all(not d.shadows for d in dep.deployments(store, "wine"))
    # v2 takes what v1 takes: no refusal
    cli(ab_store, "shadow", "add", "wine", "2", cwd=tmp_path)

    cli(ab_store, "ab", "start", "wine", "--candidate", "3", "--force", "--reason", "on purpose", cwd=tmp_path)
    running = dep.running(store, "wine")
    assert running is not None and running.experiment is not None
    assert running.experiment["forced"] == ["candidate v3 adds column 'lot'"]
    record = dep.experiment_record(store, "wine", running.experiment["id"])
    assert record is not None and record["forced"] == ["candidate v3 adds column 'lot'"]
    cli(ab_store, "ab", "stop", "wine", cwd=tmp_path)
    cli(ab_store, "shadow", "add", "wine", "3", "--force", cwd=tmp_path)
    cli(ab_store, "promote", "wine", "3", "--alias", "prod", "--force", cwd=tmp_path)
    events = {e["action"]: e for e in history.events(store, "wine") if e.get("version", e.get("to")) == 3}
    for action in ("ab_start", "shadow_add", "promote"):
        assert events[action]["forced"], events[action]
        assert "candidate v3 adds column 'lot'" in " ".join(events[action]["overridden"]), events[action]


def test_callers_cannot_sink_a_canary_with_bad_requests(ab_store: Path) -> None:
    """300 requests with no features from users the candidate serves: both variants refuse them, so they are
    the callers' errors, not the candidate's, and the guard holds. v3 refusing inputs v1 answers (it needs a
    `lot` column) is the candidate's, and the guard counts it."""
    from fastapi.testclient import TestClient

    from mlopsctl.config import GuardSection
    from mlopsctl.experiments import deployment as dep
    from mlopsctl.experiments.guard import judge
    from mlopsctl.serving.app import ServeSettings, create_app
    from mlopsctl.store import open_store

    store = open_store(str(ab_store))
    dep.start(store, "wine", control="prod", candidate="2", split="50/50", sticky="X-User-Id", reason="attack")
    app = create_app(ServeSettings(store_uri=str(ab_store), models=[("wine", "prod")], reload_interval=0.1))
    cfg = GuardSection(min_requests=30)
    with TestClient(app) as c:
        wait_for(lambda: app.app.state.served[0].route.experiment is not None)
        seen: Counter[str] = Counter()
        for i in range(600):
            r = c.post("/predict", json={"features": {}}, headers={"X-User-Id": f"user-{i}"})
            assert r.status_code == 422 and "x-variant" not in r.headers
        for i in range(100):
            seen[variant_of(c, wine_rows(1)[0], {"X-User-Id": f"user-{i}"})] += 1  # type: ignore[arg-type]
        live = app.app.state.live
        stats = live.variant_window("wine", time.time() - 120, time.time())
        control, candidate = stats["control"], stats["candidate"]
        assert candidate.refused > 200 and candidate.errors == 0 and candidate.candidate_only == 0
        assert judge(control, candidate, cfg, 120).action == "hold", judge(control, candidate, cfg, 120)

    # the candidate itself refusing what the control answers is its regression: counted, judged
    dep.end(store, "wine", outcome="stopped", reason="next")
    dep.start(
        store, "wine", control="prod", candidate="3", split="50/50", sticky="X-User-Id", reason="real", force=True
    )
    app = create_app(ServeSettings(store_uri=str(ab_store), models=[("wine", "prod")], reload_interval=0.1))
    with TestClient(app) as c:
        wait_for(lambda: app.app.state.served[0].route.experiment is not None)
        for i in range(200):
            c.post("/predict", json={"features": wine_rows(1)[0]}, headers={"X-User-Id": f"user-{i}"})
        stats = app.app.state.live.variant_window("wine", time.time() - 120, time.time())
        candidate = stats["candidate"]
        assert candidate.candidate_only > 30 and candidate.errors == candidate.candidate_only
        assert judge(stats["control"], candidate, cfg, 120).action == "pull_back"
        assert 'mlops_candidate_refusals_total{model="wine",variant="candidate"}' in c.get("/metrics").text
    assert sum(seen.values()) == 100


def test_capture_records_the_hashed_sticky_key_as_the_unit(ab_store: Path) -> None:
    """Within an experiment with a sticky header, each record carries its caller's unit: the key hashed with
    the experiment id (never the key itself), the same for every request of a caller, absent without the
    header; the A/B analysis then clusters by it."""
    from fastapi.testclient import TestClient

    from mlopsctl.experiments import deployment as dep
    from mlopsctl.monitoring.captured import load_captures
    from mlopsctl.serving.app import ServeSettings, create_app
    from mlopsctl.serving.predict import sticky_unit
    from mlopsctl.store import open_store

    store = open_store(str(ab_store))
    dep.start(store, "wine", control="prod", candidate="2", split="50/50", sticky="X-User-Id", reason="units")
    app = create_app(ServeSettings(store_uri=str(ab_store), models=[("wine", "prod")], reload_interval=0.1))
    ids: dict[str, str] = {}
    with TestClient(app) as c:
        wait_for(lambda: app.app.state.served[0].route.experiment is not None)
        experiment = app.app.state.served[0].route.experiment
        for i in range(40):
            user = f"user-{i % 10}"
            r = c.post("/predict", json={"features": wine_rows(1)[0]}, headers={"X-User-Id": user})
            ids[r.json()["request_id"]] = user
        plain = c.post("/predict", json={"features": wine_rows(1)[0]}).json()["request_id"]
        refused = c.post("/predict", json={"features": {}}, headers={"X-User-Id": "user-3"})
        assert refused.status_code == 422
        ids[refused.headers["x-request-id"]] = "user-3"
    records = {r["request_id"]: r for r in load_captures(store, "wine")}
    assert set(ids) | {plain} <= set(records)
    for request_id, user in ids.items():
        assert records[request_id]["unit"] == sticky_unit(experiment, user.encode())
    assert len({records[r]["unit"] for r in ids}) == 10  # one unit per caller, refused requests included
    assert "unit" not in records[plain]
    assert not any("user-" in json.dumps(r) for r in records.values())  # the key itself is never written
    assert sticky_unit(None, b"user-1") is None and sticky_unit(experiment, None) is None
    assert sticky_unit("other", b"user-1") != sticky_unit(experiment, b"user-1")  # salted by the experiment
