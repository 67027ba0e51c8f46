"""CloudWatch EMF: the lines a real server's metrics give after real requests are valid Embedded Metric
Format, count what happened, and carry exactly the names, namespace and dimensions the alarms and the
dashboard of `mlopsctl deploy aws` read (with the environment its task definition sets)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mlopsctl.monitoring.emf import (
    DIMENSIONS,
    METRICS,
    EmfEmitter,
    emf_lines,
    emf_record,
    figures,
    quantile,
    read_registry,
)
from tests.conftest import run_cli, wine_rows
from tests.test_deploy_aws import PROJECT, Tf, container, default, one

UNITS = {"Seconds", "Microseconds", "Milliseconds", "Bytes", "Count", "Percent", "None", "Count/Second"}


def check_emf(doc: dict[str, Any]) -> None:
    """The EMF specification's rules for one document (what CloudWatch Logs needs to extract the metrics)."""
    meta = doc["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000  # epoch milliseconds
    (directive,) = meta["CloudWatchMetrics"]
    assert 1 <= len(directive["Namespace"]) <= 255
    for dims in directive["Dimensions"]:
        assert 1 <= len(dims) <= 30
        for d in dims:
            assert isinstance(doc[d], str) and doc[d], d  # a dimension's value is a string member of the root
    assert 1 <= len(directive["Metrics"]) <= 100
    for m in directive["Metrics"]:
        assert m["Unit"] in UNITS and isinstance(doc[m["Name"]], int | float), m
    assert set(doc) == {"_aws", *DIMENSIONS, *(m["Name"] for m in directive["Metrics"])}


# -- the functions, on a registry of the server's metric names --------------------------------------------------


def _registry() -> tuple[CollectorRegistry, Any, Any, Any, Any, Any]:
    r = CollectorRegistry()
    requests = Counter("mlops_requests", "", ["model", "version", "variant", "endpoint", "status"], registry=r)
    latency = Histogram("mlops_request_duration_seconds", "", ["model", "variant", "endpoint"], registry=r)
    drift = Gauge("mlops_drift_share", "", ["model"], registry=r)
    accuracy = Gauge("mlops_live_accuracy", "", ["model"], registry=r)
    labelled = Gauge("mlops_live_labelled", "", ["model"], registry=r)
    return r, requests, latency, drift, accuracy, labelled


def test_an_interval_counts_its_own_requests_and_leaves_out_what_has_no_value() -> None:
    r, requests, latency, drift, accuracy, labelled = _registry()
    drift.labels("wine").set(-1)  # no report yet
    requests.labels("wine", "1", "prod", "predict", "200").inc(3)
    before = read_registry(r)
    requests.labels("wine", "1", "prod", "predict", "200").inc(8)
    requests.labels("wine", "1", "prod", "predict", "422").inc(1)
    requests.labels("wine", "1", "prod", "predict", "500").inc(1)
    for seconds in [0.004] * 7 + [0.2]:
        latency.labels("wine", "prod", "predict").observe(seconds)
    (values,) = figures(before, read_registry(r)).values()
    assert (values["Requests"], values["Errors5xx"]) == (10, 1)
    assert 2.5 < values["LatencyP95"] <= 250  # ms: inside the 0.1-0.25 s bucket, where the 95th of 8 lies
    assert "DriftShare" not in values and "LiveAccuracy" not in values
    # a quiet interval is 0 requests, not nothing: the no-invocations alarm needs the zero
    quiet = figures(read_registry(r), read_registry(r))["wine"]
    assert quiet == {"Requests": 0, "Errors5xx": 0}
    # gauges: the latest drift report, live accuracy once there are labels
    drift.labels("wine").set(0.5)
    accuracy.labels("wine").set(0.8)
    labelled.labels("wine").set(0)
    assert "LiveAccuracy" not in figures({}, read_registry(r))["wine"]
    labelled.labels("wine").set(25)
    now = figures({}, read_registry(r))["wine"]
    assert (now["DriftShare"], now["LiveAccuracy"], now["LiveLabelled"]) == (0.5, 0.8, 25)
    # a restarted process: its counters start again from zero, which is what happened since
    restarted = read_registry(_registry()[0])
    assert figures(read_registry(r), restarted) == {}


def test_quantile_is_prometheus_histogram_quantile() -> None:
    buckets = {0.01: 50.0, 0.1: 90.0, 1.0: 100.0, float("inf"): 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.95, buckets) == pytest.approx(0.1 + 0.9 * 0.5)
    assert quantile(0.95, {0.1: 0.0, float("inf"): 0.0}) is None


def test_a_record_is_valid_emf_and_refuses_unknown_names() -> None:
    doc = emf_record({"Requests": 4, "Errors5xx": 0}, service="wine-api", model="wine", timestamp_ms=1_700_000_000_000)
    check_emf(doc)
    assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Service", "Model"]]
    with pytest.raises(ValueError, match="not an EMF metric of mlopsctl: Latency; they are Requests"):
        emf_record({"Latency": 1}, service="s", model="m", timestamp_ms=1)
    (line,) = emf_lines({}, {"wine": read_registry(_registry()[0]).get("wine") or _empty()}, service="s", now=1.7e9)
    assert "\n" not in line and json.loads(line)["_aws"]["Timestamp"] == 1_700_000_000_000


def _empty() -> Any:
    from mlopsctl.monitoring.emf import ModelFigures

    return ModelFigures()


def test_settings_and_environment_turn_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    r = _registry()[0]
    assert EmfEmitter.from_settings(r, {}, default_service="wine", environ={}) is None  # off unless asked
    on = EmfEmitter.from_settings(r, {"enabled": True, "interval_seconds": 30}, default_service="wine", environ={})
    assert on is not None and (on.service, on.namespace, on.interval) == ("wine", "mlopsctl", 30)
    env = {"MLOPS_CLOUDWATCH": "1", "MLOPS_CLOUDWATCH_NAMESPACE": "team/ml", "MLOPS_CLOUDWATCH_SERVICE": "wine-api"}
    e = EmfEmitter.from_settings(r, {"service": "other"}, default_service="wine", environ=env)
    assert e is not None and (e.service, e.namespace) == ("wine-api", "team/ml")
    assert (
        EmfEmitter.from_settings(r, {"enabled": True}, default_service="w", environ={"MLOPS_CLOUDWATCH": "0"}) is None
    )
    with pytest.raises(ValueError, match="namespace"):
        EmfEmitter.from_settings(r, {}, default_service="w", environ={**env, "MLOPS_CLOUDWATCH_NAMESPACE": "a b"})


def test_the_thread_writes_each_interval_and_the_last_one_on_stop() -> None:
    r, requests, *_ = _registry()
    requests.labels("wine", "1", "prod", "predict", "200").inc(0)
    got: list[str] = []
    e = EmfEmitter(r, service="wine", interval=0.05, write=got.append)
    e.start()
    requests.labels("wine", "1", "prod", "predict", "200").inc(2)
    e.stop()
    counted = sum(json.loads(x)["Requests"] for x in got)
    assert counted == 2 and e.lines_written == len(got) >= 1


# -- a real server after real requests, against the Terraform's alarms ------------------------------------------


@pytest.fixture(scope="module")
def terraform(tmp_path_factory: pytest.TempPathFactory) -> Tf:
    """`deploy aws` for a project with every alarm (an accuracy floor set), serving the model `wine`."""
    proj = tmp_path_factory.mktemp("tf")
    toml = PROJECT.replace('name = "Wine_API"', 'name = "wine"').replace(
        "[monitoring.alerts]", "[monitoring.alerts]\naccuracy_min = 0.6\naccuracy_min_samples = 5"
    )
    (proj / "mlops.toml").write_text(toml)
    run_cli("deploy", "aws", "--out", "tf", cwd=proj)
    return Tf(proj / "tf")


def _server_env(tf: Tf) -> dict[str, str]:
    """The EMF settings the task definition gives the server, its variables at their defaults."""
    env = {e["name"]: e["value"] for e in container(tf)["environment"] if e["name"].startswith("MLOPS_CLOUDWATCH")}
    return {k: re.sub(r"\$\{var\.(\w+)\}", lambda m: str(default(tf, m.group(1))), v) for k, v in env.items()}


def _alarmed_metrics(tf: Tf) -> dict[str, dict[str, Any]]:
    """Metric name → how the alarms read it (namespace and dimensions, with variables and locals resolved)."""

    def resolve(value: Any) -> Any:
        if value == "${local.server_metrics}":
            value = tf.locals["server_metrics"]
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, str):
            return re.sub(r"\$\{var\.(\w+)\}", lambda m: str(default(tf, m.group(1))), value)
        return value

    read: dict[str, dict[str, Any]] = {}
    for name, alarm in tf.of_type("aws_cloudwatch_metric_alarm").items():
        specs = [one(q, "metric") for q in alarm.get("metric_query", []) if "metric" in q] or [alarm]
        for spec in specs:
            ns = resolve(spec["namespace"])
            if ns.startswith("AWS/"):
                continue  # the load balancer's own metric (unhealthy hosts)
            read.setdefault(spec["metric_name"], {"alarms": set(), "namespace": ns, "dimensions": set()})
            entry = read[spec["metric_name"]]
            entry["alarms"].add(name)
            entry["dimensions"].add(json.dumps(resolve(spec["dimensions"]), sort_keys=True))
            assert entry["namespace"] == ns
    return read


@pytest.mark.shared_data
def test_a_real_servers_emf_lines_are_what_the_alarms_read(wine_store_copy: Path, terraform: Tf) -> None:
    from mlopsctl.serving.app import create_app
    from mlopsctl.serving.settings import ServeSettings
    from mlopsctl.store import open_store

    store = open_store(str(wine_store_copy))
    store.put_json("drift/wine/latest.json", {"dataset_drift": True, "drifted_share": 0.45, "features": []})
    app = create_app(ServeSettings(store_uri=str(wine_store_copy), models=[("wine", "prod")], reload_interval=60))
    env = _server_env(terraform)
    assert env["MLOPS_CLOUDWATCH"] == "1"
    lines: list[str] = []
    rows = wine_rows(8)
    with TestClient(app) as client:
        emitter = EmfEmitter.from_settings(
            app.metrics.registry, {}, default_service="x", environ=env, write=lines.append
        )
        assert emitter is not None
        emitter.start()
        answers = [client.post("/predict", json={"features": row}).json() for row in rows]
        assert client.post("/predict", json={"features": {"alcohol": "strong"}}).status_code == 422
        # feedback: 4 of 6 labels are what the model said, 2 are another class
        labels = []
        for i, a in enumerate(answers[:6]):
            other = next(c for c in a.get("classes", [3, 4, 5, 6, 7, 8]) if str(c) != str(a["prediction"]))
            labels.append({"request_id": a["request_id"], "label": a["prediction"] if i < 4 else other})
        fed = client.post("/feedback", json=labels)
        assert fed.status_code == 200, fed.text
        (line,) = emitter.tick()
    doc = json.loads(line)
    check_emf(doc)
    assert (doc["Requests"], doc["Errors5xx"]) == (9, 0)  # 8 answered, 1 refused with 422, no failure
    assert 0 < doc["LatencyP95"] < 10_000 and doc["DriftShare"] == 0.45
    assert (doc["LiveLabelled"], doc["LiveAccuracy"]) == (6, pytest.approx(4 / 6))
    assert set(doc) - {"_aws", *DIMENSIONS} == set(METRICS)  # every metric, each once

    # what the alarms read is what the server wrote: names, namespace, dimensions and their values
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    emitted = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    dimensions = json.dumps({d: doc[d] for d in directive["Dimensions"][0]}, sort_keys=True)
    alarmed = _alarmed_metrics(terraform)
    assert set(alarmed) == {"LatencyP95", "Errors5xx", "Requests", "DriftShare", "LiveAccuracy", "LiveLabelled"}
    for name, how in alarmed.items():
        assert name in emitted, name
        assert how["namespace"] == directive["Namespace"] == default(terraform, "metrics_namespace")
        assert how["dimensions"] == {dimensions}, (name, how["dimensions"], dimensions)
    assert json.loads(dimensions) == {"Service": default(terraform, "name"), "Model": default(terraform, "model_name")}
    # the thresholds are in the metrics' units: milliseconds for the latency, shares for drift and accuracy
    assert emitted["LatencyP95"] == "Milliseconds"
    alarms = terraform.of_type("aws_cloudwatch_metric_alarm")
    assert alarms["latency"]["threshold"] == "${var.alarm_p95_latency_ms}"
    assert default(terraform, "alarm_drift_share") == 0.3 < doc["DriftShare"]  # this server's drift would fire it
    # and the dashboard shows the same metrics under the same dimensions
    body = terraform.resource("aws_cloudwatch_dashboard.this")["dashboard_body"]
    assert set(re.findall(r'\[var\.metrics_namespace, "(\w+)"\]', body)) == set(METRICS)
    assert terraform.locals["server_dims"] == ["Service", "${var.name}", "Model", "${var.model_name}"]


@pytest.mark.shared_data
def test_the_server_writes_them_when_its_settings_ask(
    wine_store_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Wired into the server: ServeSettings.cloudwatch ([monitoring.cloudwatch]) starts the emitter with the
    service, and stopping the server writes the last interval on standard output."""
    import dataclasses

    from mlopsctl.serving.app import create_app
    from mlopsctl.serving.settings import ServeSettings

    if "cloudwatch" not in {f.name for f in dataclasses.fields(ServeSettings)}:
        pytest.skip("the server does not run the EMF emitter yet: ServeSettings has no cloudwatch field")
    settings = ServeSettings(store_uri=str(wine_store_copy), models=[("wine", "prod")])
    settings.cloudwatch = {"enabled": True, "service": "wine-api"}  # type: ignore[attr-defined]
    with TestClient(create_app(settings)) as client:
        assert client.post("/predict", json={"features": wine_rows(1)[0]}).status_code == 200
    docs = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith('{"_aws"')]
    assert sum(d["Requests"] for d in docs) == 1 and {d["Service"] for d in docs} == {"wine-api"}
    for d in docs:
        check_emf(d)
