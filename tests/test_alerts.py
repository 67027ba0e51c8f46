"""Alerts: the Prometheus rules (checked and unit-tested by the real promtool), `monitor check` against
real /metrics endpoints (the server's own metric objects, and a real `mlopsctl serve` process), the
notifiers against a real webhook receiver and moto's SNS, and the Grafana / Prometheus files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import generate_latest

from mlopsctl.config import AlertsSection, NotifySection, parse_config
from mlopsctl.monitoring import alerts, evaluate, scrape
from mlopsctl.monitoring.notify import Event, NotifyError, SnsNotifier, StdoutNotifier, WebhookNotifier, notifiers
from mlopsctl.monitoring.stack import dashboard, write_stack
from mlopsctl.serving.metrics import LATENCY_BUCKETS, ServerMetrics
from mlopsctl.store.local import LocalStore
from tests.conftest import Receiver, refusing_port, run_cli, wine_rows, write_project

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus; CI installs it)"
)


# -- loopback helpers --------------------------------------------------------------------------------


class Exporter:
    """A /metrics endpoint on 127.0.0.1 exporting the server's own metric objects (`ServerMetrics`),
    which the test moves as requests would; ``down`` makes it refuse to answer."""

    def __init__(self) -> None:
        self.metrics = ServerMetrics()
        self.down = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if outer.down:
                    self.send_response(503)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                body = generate_latest(outer.metrics.registry)
                self.send_response(200)
                self.send_header("content-type", "text/plain; version=0.0.4")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def requests(self, status: str, n: int, seconds: float = 0.002, model: str = "wine") -> None:
        self.metrics.requests.labels(model, "1", "prod", "predict", status).inc(n)
        if status == "200":
            for _ in range(n):
                self.metrics.latency.labels(model, "prod", "predict").observe(seconds)

    def restart(self) -> None:
        """The process restarted: every counter starts again from zero."""
        self.metrics = ServerMetrics()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    e = Exporter()
    e.requests("200", 0)  # the server creates its 200 series when a version loads
    yield e
    e.close()


class Collect:
    name = "collect"

    def __init__(self) -> None:
        self.events: list[Event] = []

    def send(self, event: Event) -> None:
        self.events.append(event)


def only(cfg: dict[str, Any]) -> AlertsSection:
    """An alerts section with just the rules given on (the others `false`)."""
    off: dict[str, Any] = {"latency_p95_ms": False, "error_rate": False, "silence_for": False, "drift_share": False}
    off |= {"down_for": False, "capture_for": False}
    return AlertsSection.model_validate({**off, **cfg})


# -- the rules ---------------------------------------------------------------------------------------


def test_defaults_and_turning_rules_off() -> None:
    cfg = AlertsSection()
    assert cfg.rules_on() == ["latency", "errors", "silence", "down", "capture", "drift"]
    doc = alerts.prometheus_rules(cfg, ["wine"])
    by_name = {r["alert"]: r for r in doc["groups"][0]["rules"]}
    assert set(by_name) == {
        "MlopsLatencyHigh",
        "MlopsErrorRateHigh",
        "MlopsNoRequests",
        "MlopsServerDown",
        "MlopsNoCapture",
        "MlopsDatasetDrift",
    }
    # absence: a target down or no server at all (at once), no capture for an hour (a 5m window held 55m)
    assert by_name["MlopsServerDown"]["expr"] == 'up{job="mlopsctl"} == 0 or absent(mlops_ready)'
    assert "for" not in by_name["MlopsServerDown"]
    assert by_name["MlopsNoCapture"]["for"] == "55m" and by_name["MlopsNoCapture"]["expr"] == (
        "sum by (model) (increase(mlops_capture_records_written_total[5m])) == 0"
        ' or absent_over_time(mlops_capture_records_written_total{model="wine"}[5m])'
    )
    assert by_name["MlopsLatencyHigh"]["expr"].endswith("[5m]))) > 0.5") and by_name["MlopsLatencyHigh"]["for"] == "5m"
    assert by_name["MlopsErrorRateHigh"]["expr"].endswith(") > 0.05") and by_name["MlopsErrorRateHigh"]["for"] == "3m"
    # 30 minutes of silence: a 5m window without increase, held 25m; absent metrics count too
    assert (
        by_name["MlopsNoRequests"]["for"] == "25m"
        and 'absent_over_time(mlops_requests_total{model="wine"}[5m])' in (by_name["MlopsNoRequests"]["expr"])
    )
    assert by_name["MlopsDatasetDrift"]["expr"] == "max by (model) (mlops_drift_share) > 0.3"

    toml = {"project": {"name": "w"}, "data": {"path": "x.csv", "target": "y"}}
    toml["monitoring"] = {"alerts": {"latency_p95_ms": False, "silence_for": False, "accuracy_min": 0.7}}
    toml["monitoring"]["alerts"] |= {"down_for": False, "capture_for": False, "min": {"f1_macro": 0.5}}
    on = parse_config(toml).monitoring.alerts
    assert on.min == {"f1_macro": 0.5, "accuracy": 0.7}  # accuracy_min (deprecated) is min.accuracy
    names = [r["alert"] for r in alerts.prometheus_rules(on)["groups"][0]["rules"]]
    assert names == ["MlopsErrorRateHigh", "MlopsDatasetDrift", "MlopsF1MacroLow", "MlopsAccuracyLow"]


def test_histogram_quantile_and_counter_resets_follow_prometheus() -> None:
    inf = float("inf")
    # all 10 observations in (0.5, 1]: linear inside the bucket, as Prometheus interpolates
    assert scrape.histogram_quantile(0.95, {0.25: 0, 0.5: 0, 1.0: 10, inf: 10}) == pytest.approx(0.975)
    assert scrape.histogram_quantile(0.5, {0.1: 5, 1.0: 10, inf: 10}) == pytest.approx(0.1)
    assert scrape.histogram_quantile(0.95, {0.1: 0, 1.0: 1, inf: 10}) == 1.0  # in +Inf: the largest finite bound
    assert scrape.histogram_quantile(0.95, {0.1: 0, inf: 0}) is None  # no observations: NaN in Prometheus
    # a drop is a restart: the new value is all increase; a new series starts at zero
    inc = scrape.series_increase([{"a": 10.0}, {"a": 15.0}, {"a": 3.0, "b": 2.0}, {"a": 4.0, "b": 2.0}])
    assert inc == {"a": 5.0 + 3.0 + 1.0, "b": 2.0}


def test_check_fires_after_the_duration_notifies_once_and_resolves(
    tmp_path: Path, exporter: Exporter, receiver: Receiver
) -> None:
    store = LocalStore(tmp_path / "store")
    cfg = only({"error_rate": 0.1, "error_for": "2m"})
    collect = Collect()
    hooks = [collect, WebhookNotifier(receiver.url)]
    t0 = 1_000_000.0

    def at(dt: float) -> dict[str, Any]:
        return evaluate.check(store, cfg, hooks, urls=[exporter.url], now=t0 + dt)

    def state(result: dict[str, Any]) -> str:
        (row,) = [a for a in result["alerts"] if a["rule"] == "errors"]
        return str(row["state"])

    def traffic() -> None:  # 20 % of the requests fail
        exporter.requests("200", 80)
        exporter.requests("422", 20)

    first = at(0)
    assert first["models"] == ["wine"] and state(first) == "inactive"
    assert [a["no_data"] for a in first["alerts"]] == [True]  # no earlier scrape to take a rate from
    traffic()
    assert state(at(30)) == "pending"
    traffic()
    assert state(at(90)) == "pending"  # held 60s of the 120s
    traffic()
    firing = at(151)
    assert state(firing) == "firing" and firing["firing"] == 1
    assert [(e.status, e.alert, e.model) for e in collect.events] == [("firing", "MlopsErrorRateHigh", "wine")]
    assert collect.events[0].value == pytest.approx(0.2)
    assert len(receiver.bodies) == 1 and receiver.bodies[0]["status"] == "firing"
    assert receiver.bodies[0]["text"].startswith("[FIRING] MlopsErrorRateHigh wine: error rate 20.0%")

    traffic()
    assert state(at(170)) == "firing"
    assert len(collect.events) == 1 and len(receiver.bodies) == 1  # not sent again while it fires

    exporter.requests("200", 900)  # the errors are now under 10 % of the window's requests
    resolved = at(200)
    assert state(resolved) == "inactive" and resolved["firing"] == 0
    assert [e.status for e in collect.events] == ["firing", "resolved"]
    assert [b["status"] for b in receiver.bodies] == ["firing", "resolved"]
    assert {n["notifier"] for n in resolved["notifications"]} == {"collect", "webhook"}
    at(230)
    assert len(collect.events) == 2 and len(receiver.bodies) == 2

    saved = store.get_json(evaluate.state_key("wine"))
    assert saved["alerts"]["errors"]["announced"] == {"collect": "resolved", "webhook": "resolved"}


def test_counter_reset_is_not_a_burst_and_a_failed_webhook_is_retried(
    tmp_path: Path, exporter: Exporter, receiver: Receiver
) -> None:
    store = LocalStore(tmp_path / "store")
    cfg = only({"error_rate": 0.5, "error_for": "0s"})
    hook = WebhookNotifier(receiver.url)
    exporter.requests("422", 1000)
    evaluate.check(store, cfg, [hook], urls=[exporter.url], now=100.0)
    exporter.restart()  # fewer errors than before: a restart, not a negative increase
    exporter.requests("200", 10)
    exporter.requests("422", 2)
    r = evaluate.check(store, cfg, [hook], urls=[exporter.url], now=130.0)
    assert r["alerts"][0]["state"] == "inactive" and r["alerts"][0]["value"] == pytest.approx(2 / 12)

    receiver.status = 500
    exporter.requests("422", 50)
    failed = evaluate.check(store, cfg, [hook], urls=[exporter.url], now=160.0)
    assert failed["firing"] == 1
    assert failed["notifications"][0]["ok"] is False and "HTTP 500" in failed["notifications"][0]["error"]
    receiver.status = 200
    exporter.requests("422", 50)
    retried = evaluate.check(store, cfg, [hook], urls=[exporter.url], now=190.0)
    assert [(n["status"], n["ok"]) for n in retried["notifications"]] == [("firing", True)]
    assert [b["status"] for b in receiver.bodies] == ["firing", "firing"]  # the failed one, then the retry


def test_silence_and_an_unreachable_server(tmp_path: Path, exporter: Exporter) -> None:
    store = LocalStore(tmp_path / "store")
    cfg = only({"silence_for": "10m", "error_rate": 0.05})
    collect = Collect()

    def at(t: float) -> dict[str, dict[str, Any]]:
        r = evaluate.check(store, cfg, [collect], urls=[exporter.url], models=["wine"], now=t)
        return {a["rule"]: a for a in r["alerts"]}

    exporter.requests("200", 5)
    assert at(0)["silence"]["state"] == "inactive"
    assert at(60)["silence"]["state"] == "pending"
    exporter.down = True  # no metrics: the errors rule cannot tell and keeps its state; silence counts on
    down = at(400)
    assert down["errors"]["no_data"] and down["errors"]["state"] == "inactive"
    assert down["silence"]["state"] == "pending"
    assert at(601)["silence"]["state"] == "firing"  # 10 minutes since the last check that saw a request
    assert [e.summary for e in collect.events] == ["no requests for 601s (bound 10m)"]
    exporter.down = False
    exporter.requests("200", 1)
    assert at(620)["silence"]["state"] == "inactive"
    assert [e.status for e in collect.events] == ["firing", "resolved"]

    # a rule turned off while firing resolves
    at(2000)
    assert collect.events[-1].status == "firing"
    cfg = only({"error_rate": 0.05})
    assert at(2030)["silence"]["state"] == "inactive"
    assert collect.events[-1].status == "resolved" and collect.events[-1].rule == "silence"


def test_drift_and_accuracy_rules_read_the_store(tmp_path: Path, exporter: Exporter) -> None:
    store = LocalStore(tmp_path / "store")
    cfg = only({"drift_share": 0.3, "accuracy_min": 0.6, "accuracy_min_samples": 20})
    report: dict[str, Any] = {}
    accuracy: list[tuple[dict[str, Any] | None, int, str | None]] = [(None, 3, "classification")]
    collect = Collect()

    def at(t: float) -> dict[str, dict[str, Any]]:
        r = evaluate.check(
            store,
            cfg,
            [collect],
            urls=[exporter.url],
            now=t,
            drift_fn=lambda s, name: report or None,
            metrics_fn=lambda s, name, window, n: accuracy[-1],
            task_fn=lambda s, name: "classification",
        )
        return {a["rule"]: a for a in r["alerts"]}

    first = at(0)
    assert first["drift"]["no_data"] and first["accuracy"]["no_data"]
    report.update(drifted_share=0.5, dataset_drift=True, version=1)
    accuracy.append(({"accuracy": 0.45}, 40, "classification"))
    both = at(30)
    assert both["drift"]["state"] == "firing" and both["accuracy"]["state"] == "firing"
    assert sorted(e.alert for e in collect.events) == ["MlopsAccuracyLow", "MlopsDatasetDrift"]
    report.update(drifted_share=0.1)
    accuracy.append(({"accuracy": 0.8}, 60, "classification"))
    assert {a["state"] for a in at(60).values()} == {"inactive"}
    assert [e.status for e in collect.events] == ["firing", "firing", "resolved", "resolved"]


@pytest.mark.shared_data
def test_a_regression_model_is_never_judged_by_accuracy(two_models_store: Path, exporter: Exporter) -> None:
    """One server, a classifier and a regression model, a floor on accuracy: the classifier is judged by it,
    the regression model (its task read from the registry) only by its own metrics' bounds."""
    store = LocalStore(two_models_store)
    exporter.requests("200", 3, model="wine-alcohol")
    cfg = only({"min": {"accuracy": 0.6}, "max": {"mae": 0.5}, "min_labels": 1})
    seen: list[str] = []

    def metrics(s: Any, name: str, window: float, n: int) -> tuple[dict[str, Any], int, str]:
        seen.append(name)
        if name == "wine":
            return {"accuracy": 0.1}, 30, "classification"
        return {"rmse": 0.9, "mae": 0.7, "r2": 0.2, "bias": 0.1}, 30, "regression"

    r = evaluate.check(store, cfg, [], urls=[exporter.url], now=50.0, metrics_fn=metrics)
    by = {(a["model"], a["rule"]): a["state"] for a in r["alerts"]}
    assert r["models"] == ["wine", "wine-alcohol"] and sorted(seen) == r["models"]
    assert by == {("wine", "accuracy"): "firing", ("wine-alcohol", "mae"): "firing"}


def test_the_default_drift_source_is_the_latest_report(tmp_path: Path, exporter: Exporter) -> None:
    from mlopsctl.monitoring import drift

    store = LocalStore(tmp_path / "store")
    drift.save_report(store, "wine", {"model": "wine", "version": 1, "drifted_share": 0.6, "dataset_drift": True})
    r = evaluate.check(store, only({"drift_share": 0.3}), [], urls=[exporter.url], now=10.0)
    (row,) = r["alerts"]
    assert row["state"] == "firing" and row["value"] == 0.6 and "v1" in row["note"]


# -- notifiers ---------------------------------------------------------------------------------------


def event(status: str = "firing") -> Event:
    return Event(status, "wine", "errors", "MlopsErrorRateHigh", "critical", "error rate 20.0%", 0.2, 0.05, 1.0)


def test_webhook_slack_format_and_stdout(receiver: Receiver, capsys: pytest.CaptureFixture[str]) -> None:
    WebhookNotifier(receiver.url, fmt="slack").send(event())
    assert receiver.bodies == [{"text": "[FIRING] MlopsErrorRateHigh wine: error rate 20.0%"}]
    StdoutNotifier().send(event("resolved"))
    assert capsys.readouterr().out == "[RESOLVED] MlopsErrorRateHigh wine: error rate 20.0%\n"
    with pytest.raises(NotifyError, match="ConnectError"):
        WebhookNotifier("http://127.0.0.1:9/hook", timeout=1).send(event())


def test_notifiers_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [n.name for n in notifiers(NotifySection())] == ["stdout"]
    monkeypatch.setenv("MLOPS_WEBHOOK_URL", "http://127.0.0.1:1/x")
    cfg = NotifySection(stdout=False, sns_topic_arn="arn:aws:sns:eu-west-1:123456789012:alerts")
    got = notifiers(cfg)
    assert [n.name for n in got] == ["webhook", "sns"] and got[0].url == "http://127.0.0.1:1/x"  # type: ignore[attr-defined]


def test_sns_without_boto3_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "boto3", None)
    with pytest.raises(NotifyError, match=r"pip install 'mlopsctl\[aws\]'"):
        SnsNotifier("arn:aws:sns:us-east-1:123456789012:alerts").send(event())


@pytest.mark.slow
def test_sns_publishes_to_a_topic_on_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (the dev extra has it)")
    boto3 = pytest.importorskip("boto3")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for k, v in {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_ENDPOINT_URL": endpoint,
        }.items():
            monkeypatch.setenv(k, v)
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name="mlops-alerts")["TopicArn"]
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

        SnsNotifier(topic).send(event())
        (msg,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=2)["Messages"]
        envelope = json.loads(msg["Body"])
        assert envelope["Subject"] == "[FIRING] MlopsErrorRateHigh wine: error rate 20.0%"
        body = json.loads(envelope["Message"])
        assert body["status"] == "firing" and body["model"] == "wine" and body["value"] == 0.2

        with pytest.raises(NotifyError, match="NotFound"):
            SnsNotifier(topic.replace("mlops-alerts", "nobody")).send(event())
    finally:
        server.stop()


# -- promtool ----------------------------------------------------------------------------------------


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)


@needs_promtool
@pytest.mark.parametrize(
    "toml",
    [
        {},
        {"accuracy_min": 0.6, "latency_p95_ms": 250, "latency_for": "90s", "silence_for": "1h"},
        {"latency_p95_ms": False, "error_rate": False, "silence_for": False, "drift_share": False},
    ],
)
def test_promtool_check_rules(tmp_path: Path, toml: dict[str, Any]) -> None:
    cfg = AlertsSection.model_validate(toml)
    path = tmp_path / "rules.yml"
    path.write_text(alerts.render_yaml(alerts.prometheus_rules(cfg, ["wine", "iris"]), alerts.RULES_HEADER))
    r = promtool("check", "rules", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(cfg.rules_on())} rules found" in r.stdout


def _alert(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in doc["groups"][0]["rules"] if r["alert"] == name)


def _expect(rule: dict[str, Any], model: str, summary: str) -> dict[str, Any]:
    return {
        "exp_labels": {"model": model, **rule["labels"]},
        "exp_annotations": {"summary": f"{model}: {summary}", "description": rule["annotations"]["description"]},
    }


@needs_promtool
def test_promtool_unit_tests_fire_and_resolve_every_alert(tmp_path: Path) -> None:
    """Synthetic series for each rule: not firing yet (pending or under the bound), firing, resolved."""
    cfg = AlertsSection(accuracy_min=0.6, accuracy_min_samples=50, silence_for="30m")
    doc = alerts.prometheus_rules(cfg, ["wine", "iris"])
    (tmp_path / "rules.yml").write_text(alerts.render_yaml(doc))
    req = 'mlops_requests_total{{model="wine",version="1",variant="prod",endpoint="predict",status="{}"}}'
    bucket = 'mlops_request_duration_seconds_bucket{{model="wine",variant="prod",endpoint="predict",le="{}"}}'

    def case(series: dict[str, str], name: str, checks: list[tuple[str, list[dict[str, Any]]]]) -> dict[str, Any]:
        return {
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "alert_rule_test": [{"eval_time": t, "alertname": name, "exp_alerts": exp} for t, exp in checks],
        }

    # errors: 10 % for ten minutes (fires after 3m), then none
    err = _alert(doc, "MlopsErrorRateHigh")
    errors = case(
        {req.format("200"): "0+90x10 1000+100x20", req.format("422"): "0+10x10 100+0x20"},
        "MlopsErrorRateHigh",
        [("2m", []), ("6m", [_expect(err, "wine", "10% of requests failed (above 5%)")]), ("16m", [])],
    )
    # latency: every request in (0.5s, 1s] for ten minutes (p95 0.975s), then every one in (5ms, 10ms]
    lat = _alert(doc, "MlopsLatencyHigh")
    les = [*(f"{b:g}" for b in LATENCY_BUCKETS), "+Inf"]
    slow = {bucket.format(le): "0+10x30" if le in ("1", "2.5", "5", "+Inf") else "0x30" for le in les}
    for le in les:
        if le not in ("0.0005", "0.001", "0.0025", "0.005") and slow[bucket.format(le)] == "0x30":
            slow[bucket.format(le)] = "0x10 10+10x19"  # the fast requests after minute 10
    latency = case(
        slow,
        "MlopsLatencyHigh",
        [("4m", []), ("8m", [_expect(lat, "wine", "p95 latency 975ms above 500ms")]), ("20m", [])],
    )
    # silence: requests until minute 10, none until 50, then again; iris exports nothing at all
    sil = _alert(doc, "MlopsNoRequests")
    silence = case(
        {req.format("200"): "0+10x10 100+0x40 110+10x20"},
        "MlopsNoRequests",
        [
            ("20m", []),
            ("34m", [_expect(sil, "iris", "no requests for 30m")]),
            ("39m", [_expect(sil, "iris", "no requests for 30m")]),  # wine's last request was at 10m
            ("40m", [_expect(sil, "iris", "no requests for 30m"), _expect(sil, "wine", "no requests for 30m")]),
            ("60m", [_expect(sil, "iris", "no requests for 30m")]),
        ],
    )
    # drift: no report (the gauge absent), a report with 45 % drifted, a newer one with 10 %
    dr = _alert(doc, "MlopsDatasetDrift")
    drift = case(
        {'mlops_drift_share{model="wine"}': "_x5 0.45x10 0.1x10"},
        "MlopsDatasetDrift",
        [("3m", []), ("10m", [_expect(dr, "wine", "45% of features drifted (above 30%)")]), ("20m", [])],
    )
    # accuracy: low but on too few labels, low on enough labels, then fine
    acc = _alert(doc, "MlopsAccuracyLow")
    accuracy = case(
        {'mlops_live_accuracy{model="wine"}': "0.4x5 0.5x10 0.8x10", 'mlops_live_labelled{model="wine"}': "10x5 80x20"},
        "MlopsAccuracyLow",
        [("3m", []), ("10m", [_expect(acc, "wine", "live accuracy 0.500 below 0.6")]), ("20m", [])],
    )
    tests = {"rule_files": ["rules.yml"], "evaluation_interval": "1m"}
    tests["tests"] = [errors, latency, silence, drift, accuracy]  # type: ignore[assignment]
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    r = promtool("test", "rules", str(tmp_path / "tests.yml"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


@needs_promtool
def test_promtool_unit_tests_absence_and_live_metrics_by_task(tmp_path: Path) -> None:
    """A server down and no server at all, a model with no capture, and live metric bounds of both tasks
    (a floor on macro F1, ceilings on RMSE and on |bias|): each fires and resolves under promtool."""
    cfg = only({"down_for": "0s", "capture_for": "10m", "min": {"f1_macro": 0.6}, "max": {"rmse": 0.8, "bias": 0.2}})
    doc = alerts.prometheus_rules(cfg, ["wine"])
    (tmp_path / "rules.yml").write_text(alerts.render_yaml(doc))

    def case(series: dict[str, str], name: str, checks: list[tuple[str, list[dict[str, Any]]]]) -> dict[str, Any]:
        return {
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "alert_rule_test": [{"eval_time": t, "alertname": name, "exp_alerts": exp} for t, exp in checks],
        }

    down = _alert(doc, "MlopsServerDown")
    one_down = {
        "exp_labels": {"job": "mlopsctl", "instance": "b:8000", **down["labels"]},
        "exp_annotations": {
            "summary": "server b:8000 does not answer /metrics",
            "description": down["annotations"]["description"],
        },
    }
    none_left = {
        "exp_labels": down["labels"],
        "exp_annotations": {
            "summary": "no server reports metrics (mlops_ready absent)",
            "description": down["annotations"]["description"],
        },
    }
    servers = case(
        {
            'up{job="mlopsctl",instance="a:8000"}': "1x15",
            'up{job="mlopsctl",instance="b:8000"}': "1x4 0x5 1x5",
            'mlops_ready{job="mlopsctl",instance="a:8000"}': "1x15",
        },
        "MlopsServerDown",
        [("3m", []), ("7m", [one_down]), ("12m", [])],
    )
    gone = case({'mlops_ready{instance="a:8000"}': "1x2"}, "MlopsServerDown", [("1m", []), ("10m", [none_left])])
    cap = _alert(doc, "MlopsNoCapture")
    capture = case(
        {'mlops_capture_records_written_total{model="wine"}': "0+10x10 100x30"},
        "MlopsNoCapture",
        [("12m", []), ("22m", [_expect(cap, "wine", "no prediction captured for 10m")])],
    )
    f1 = _alert(doc, "MlopsF1MacroLow")
    floor = case(
        {'mlops_live_f1_macro{model="wine"}': "0.5x10 0.9x10", 'mlops_live_labelled{model="wine"}': "80x20"},
        "MlopsF1MacroLow",
        [("5m", [_expect(f1, "wine", "live f1 macro 0.500 below 0.6")]), ("15m", [])],
    )
    rmse, bias = _alert(doc, "MlopsRmseHigh"), _alert(doc, "MlopsBiasHigh")
    house = {
        'mlops_live_rmse{model="house"}': "0.5x5 1.2x10",
        'mlops_live_bias{model="house"}': "-0.5x5 0.1x10",
        'mlops_live_labelled{model="house"}': "10x2 100x13",
    }
    ceilings = case(
        house, "MlopsRmseHigh", [("3m", []), ("10m", [_expect(rmse, "house", "live rmse 1.200 above 0.8")])]
    )
    signed = case(
        house,
        "MlopsBiasHigh",
        [("1m", []), ("4m", [_expect(bias, "house", "live |bias| 0.500 above 0.2")]), ("10m", [])],
    )
    tests = {"rule_files": ["rules.yml"], "evaluation_interval": "1m"}
    tests["tests"] = [servers, gone, capture, floor, ceilings, signed]  # type: ignore[assignment]
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    r = promtool("test", "rules", str(tmp_path / "tests.yml"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


# -- the stack files ---------------------------------------------------------------------------------


def server_metric_names() -> set[str]:
    """Every sample name the server can export (counters with _total, histograms with _bucket...)."""
    names = set()
    for family in ServerMetrics().registry.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_count", "_sum")}
        else:
            names.add(family.name)
    return names


def test_dashboard_queries_only_metrics_the_server_exports() -> None:
    doc = json.loads(json.dumps(dashboard(AlertsSection(accuracy_min=0.6))))
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bmlops_[a-z0-9_]+", e)}
    missing = used - server_metric_names()
    assert not missing, f"dashboard queries metrics the server does not export: {missing}"
    wanted = {
        "mlops_requests_total",
        "mlops_request_duration_seconds_bucket",
        "mlops_predictions_total",
        "mlops_model_info",
        "mlops_model_reloads_total",
        "mlops_capture_records_written_total",
        "mlops_capture_dropped_total",
        "mlops_variant_weight",
        "mlops_shadow_requests_total",
    }
    assert wanted <= used
    rules = alerts.prometheus_rules(AlertsSection(accuracy_min=0.6), ["wine"])
    rule_metrics = {m for r in rules["groups"][0]["rules"] for m in re.findall(r"\bmlops_[a-z0-9_]+", r["expr"])}
    assert rule_metrics <= server_metric_names()


@needs_promtool
def test_stack_files_pass_promtool_check_config(tmp_path: Path) -> None:
    written = write_stack(
        tmp_path / "stack", AlertsSection(), targets=["127.0.0.1:8000", "10.0.0.2:8000"], alertmanagers=["am:9093"]
    )
    assert {p.name for p in written} >= {"prometheus.yml", "mlops-alerts.yml", "mlopsctl.json"}
    r = promtool("check", "config", str(tmp_path / "stack" / "prometheus.yml"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 6 rules found" in r.stdout
    json.loads((tmp_path / "stack" / "grafana" / "dashboards" / "mlopsctl.json").read_text())


def test_cli_rules_and_stack(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "mlops.toml").write_text(
        '[project]\nname = "wine"\n[data]\npath = "x.csv"\ntarget = "quality"\n'
        '[monitoring.alerts]\nlatency_p95_ms = false\nerror_for = "10m"\n'
    )
    run_cli("monitor", "rules", "--out", str(tmp_path / "r.yml"), cwd=project)
    doc = yaml.safe_load((tmp_path / "r.yml").read_text())
    rules = doc["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == [
        "MlopsErrorRateHigh",
        "MlopsNoRequests",
        "MlopsServerDown",
        "MlopsNoCapture",
        "MlopsDatasetDrift",
    ]
    assert rules[0]["for"] == "10m" and 'model="wine"' in rules[1]["expr"]
    out = run_cli("monitor", "stack", "--out", str(tmp_path / "s"), "--json", cwd=project)
    assert len(json.loads(out.stdout)["written"]) == 5
    bad = run_cli("monitor", "rules", "--format", "nagios", cwd=project, check=False)
    assert bad.returncode == 1 and "error: --format 'nagios'" in bad.stderr


def test_cli_check_with_no_server_fires_and_notifies(tmp_path: Path, receiver: Receiver) -> None:
    """Before: with nothing on the serving port, `monitor check --once` printed "no model to check" and exited 0.
    Now the project's model is checked anyway, and the dead server fires (exit 1, the webhook told)."""
    with refusing_port() as port:
        project = tmp_path / "p"
        project.mkdir()
        (project / "mlops.toml").write_text(
            '[project]\nname = "wine"\n[data]\npath = "x.csv"\ntarget = "quality"\n'
            f'[serving]\nport = {port}\n[monitoring.notify]\nwebhook_url = "{receiver.url}"\n'
        )
        plain = run_cli("monitor", "check", "--once", cwd=project, check=False)
        assert plain.returncode == 1, plain.stdout + plain.stderr
        assert "no model to check" not in plain.stdout and "MlopsServerDown" in plain.stdout
        assert "[FIRING] MlopsServerDown (servers): 1 server(s) not answering /metrics" in plain.stdout
        assert [(b["alert"], b["status"]) for b in receiver.bodies] == [("MlopsServerDown", "firing")]
        out = run_cli("monitor", "check", "--once", "--json", cwd=project, check=False)
    assert out.returncode == 1
    result = json.loads(out.stdout)
    assert result["models"] == ["wine"]  # the project's model, though no server exported it
    assert result["sources"][0]["ok"] is False and "ConnectError" in result["sources"][0]["error"]
    by_rule = {(a["model"], a["rule"]): a for a in result["alerts"]}
    assert by_rule[("(servers)", "down")]["state"] == "firing" and by_rule[("(servers)", "down")]["value"] == 1
    assert f"127.0.0.1:{port}" in by_rule[("(servers)", "down")]["note"]
    assert by_rule[("wine", "silence")]["state"] == "pending"  # silence counts on from the first check
    assert len(receiver.bodies) == 1  # announced once


# -- a real server -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.shared_data
def test_check_against_a_real_server_and_webhook(
    wine_store_copy: Path, start_server: Any, tmp_path: Path, receiver: Receiver
) -> None:
    """422s from a real `mlopsctl serve` fire the error alert once (webhook and stdout); good traffic resolves it."""
    project = write_project(tmp_path / "wine", store=wine_store_copy)
    with (project / "mlops.toml").open("a") as fh:
        fh.write(
            "[monitoring.alerts]\nlatency_p95_ms = false\nsilence_for = false\ndrift_share = false\n"
            f'error_rate = 0.2\nerror_for = "1s"\n[monitoring.notify]\nwebhook_url = "{receiver.url}"\n'
        )
    server = start_server(["serve"], cwd=project)

    def check() -> tuple[int, dict[str, Any], str]:
        r = run_cli("monitor", "check", "--url", server.url, "--json", cwd=project, check=False)
        assert r.returncode in (0, 1), r.stderr
        return r.returncode, json.loads(r.stdout), r.stderr

    def send(n: int, good: bool) -> None:
        body = {"features": wine_rows(1)[0]} if good else {"features": {"alcohol": "high"}}
        with httpx.Client(base_url=server.url, timeout=10) as c:
            for _ in range(n):
                assert c.post("/predict", json=body).status_code == (200 if good else 422)

    code, first, _ = check()
    assert code == 0 and first["models"] == ["wine"] and first["alerts"][0]["no_data"]
    send(10, good=True)
    send(20, good=False)
    code, pending, _ = check()
    assert code == 0 and pending["alerts"][0]["state"] == "pending"
    time.sleep(1.1)
    code, firing, stderr = check()
    assert code == 1 and firing["alerts"][0]["state"] == "firing"
    assert "[FIRING] MlopsErrorRateHigh wine: error rate" in stderr  # the stdout notifier, on stderr with --json
    assert [(b["status"], b["alert"], b["model"]) for b in receiver.bodies] == [
        ("firing", "MlopsErrorRateHigh", "wine")
    ]
    assert receiver.bodies[0]["value"] == pytest.approx(20 / 30, abs=0.01)

    send(3, good=False)
    code, still, _ = check()
    assert code == 1 and still["notifications"] == [] and len(receiver.bodies) == 1

    send(150, good=True)
    code, resolved, stderr = check()
    assert code == 0 and resolved["alerts"][0]["state"] == "inactive"
    assert [b["status"] for b in receiver.bodies] == ["firing", "resolved"]
    assert "[RESOLVED] MlopsErrorRateHigh wine" in stderr
    code, _, _ = check()
    assert code == 0 and len(receiver.bodies) == 2


def test_docs_examples_are_current(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "alerts.md").read_text()
    (toml,) = re.findall(r"```toml\n(\[monitoring.alerts\].*?)```", text, flags=re.S)
    import tomllib

    cfg = AlertsSection.model_validate(tomllib.loads(toml)["monitoring"]["alerts"])
    assert cfg.min == {"accuracy": 0.6} and cfg.accuracy_min == 0.6 and cfg.latency_for == 300
    (rules,) = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert rules == alerts.render_yaml(alerts.prometheus_rules(AlertsSection(), ["wine"]))
    (result,) = re.findall(r"```json\n(.*?)```", text, flags=re.S)
    documented = json.loads(result)
    real = evaluate.check(
        LocalStore(tmp_path), AlertsSection(), [], urls=["http://127.0.0.1:9"], models=["wine"], timeout=1
    )
    assert set(documented) == set(real) and set(documented["alerts"][0]) == set(real["alerts"][0])


@pytest.mark.slow
@pytest.mark.shared_data
def test_a_server_without_traffic_or_captures_fires_at_the_first_check(
    wine_store_copy: Path, start_server: Any, tmp_path: Path, receiver: Receiver
) -> None:
    """Before: the first check only started the silence clock, and nothing looked at the capture. Now a server
    up longer than silence_for with no request fires at once, and so does a model with nothing captured."""
    project = write_project(tmp_path / "wine", store=wine_store_copy)
    with (project / "mlops.toml").open("a") as fh:
        fh.write(
            "[monitoring.capture]\nflush_interval_seconds = 0.2\n"
            '[monitoring.alerts]\nlatency_p95_ms = false\nerror_rate = false\ndrift_share = false\nsilence_for = "2s"\n'
            f'capture_for = "2s"\n[monitoring.notify]\nwebhook_url = "{receiver.url}"\n'
        )
    server = start_server(["serve"], cwd=project)
    time.sleep(2.2)

    def check() -> tuple[int, dict[tuple[str, str], Any]]:
        r = run_cli("monitor", "check", "--url", server.url, "--json", cwd=project, check=False)
        assert r.returncode in (0, 1), r.stderr
        return r.returncode, {(a["model"], a["rule"]): a for a in json.loads(r.stdout)["alerts"]}

    code, first = check()
    assert code == 1
    assert first[("wine", "silence")]["state"] == "firing" and first[("wine", "capture")]["state"] == "firing"
    assert first[("(servers)", "down")]["state"] == "inactive"
    assert sorted(b["alert"] for b in receiver.bodies) == ["MlopsNoCapture", "MlopsNoRequests"]

    with httpx.Client(base_url=server.url, timeout=10) as c:
        assert c.post("/predict", json={"features": wine_rows(1)[0]}).status_code == 200
    time.sleep(0.6)  # flushed
    code, after = check()
    assert code == 0 and {a["state"] for a in after.values()} == {"inactive"}
    assert sorted((b["alert"], b["status"]) for b in receiver.bodies[2:]) == [
        ("MlopsNoCapture", "resolved"),
        ("MlopsNoRequests", "resolved"),
    ]
