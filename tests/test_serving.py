"""The prediction service in process: protocols, every bad input, metrics, docs, several models."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlopsctl import __version__, registry
from mlopsctl.serving.app import ServeSettings, create_app
from mlopsctl.store import open_store
from tests.conftest import wine_rows

pytestmark = pytest.mark.shared_data


@pytest.fixture
def client(wine_store_copy: Path) -> Iterator[TestClient]:
    app = create_app(
        ServeSettings(
            store_uri=str(wine_store_copy),
            models=[("wine", "prod")],
            reload_interval=0.2,
            max_body_bytes=64 * 1024,
            max_batch_rows=100,
        )
    )
    with TestClient(app) as c:
        yield c


def _problems(resp: Any) -> dict[str, str]:
    body = resp.json()
    assert body["error"] and isinstance(body["detail"], list)
    return {d["field"]: d["problem"] for d in body["detail"]}


def test_single_row_prediction(client: TestClient) -> None:
    row = wine_rows(1)[0]
    r = client.post("/predict", json={"features": row})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["prediction"] in [3, 4, 5, 6, 7, 8]
    assert set(body["probabilities"]) == {"3", "4", "5", "6", "7", "8"}
    assert abs(sum(body["probabilities"].values()) - 1) < 1e-5
    assert body["confidence"] == max(body["probabilities"].values())
    assert body["model"] == "wine" and body["model_version"] == 1 and body["variant"] == "prod"
    assert len(body["request_id"]) >= 16 and body["processing_time_ms"] > 0
    assert r.headers["x-request-id"] == body["request_id"]


def test_batch_matches_single_rows_and_the_local_model(client: TestClient, wine_store_copy: Path) -> None:
    from mlopsctl.serving.loaded import load

    rows = wine_rows(20)
    batch = client.post("/predict", json={"instances": rows}).json()
    singles = [client.post("/predict", json={"features": r}).json()["prediction"] for r in rows]
    assert batch["predictions"] == singles
    local = load(open_store(str(wine_store_copy)), "wine", "prod", runtime="sklearn")
    cols = local.spec.columns(rows)
    assert local.runner.predict(cols)[0] == batch["predictions"]


def test_request_id_is_taken_from_the_header(client: TestClient) -> None:
    r = client.post("/predict", json={"features": wine_rows(1)[0]}, headers={"X-Request-ID": "abc-123"})
    assert r.json()["request_id"] == "abc-123"


def test_snake_case_names_are_accepted(client: TestClient) -> None:
    row = {k.replace(" ", "_"): v for k, v in wine_rows(1)[0].items()}
    r = client.post("/predict", json={"features": row})
    assert r.status_code == 200, r.text


# bodies are built from a real row inside the test (reading the data at collection would fail without it)
@pytest.mark.parametrize(
    ("make_body", "field", "words"),
    [
        (lambda r: {"features": {"alcohol": 9.4}}, "features.fixed acidity", "missing field"),
        (lambda r: {"features": {**r, "colour": "red"}}, "features.colour", "unknown field"),
        (lambda r: {"features": {**r, "alcohol": "high"}}, "features.alcohol", "expected a number, got 'high'"),
        (lambda r: {"features": {**r, "alcohol": None}}, "features.alcohol", "a value is required"),
        (lambda r: {"features": {**r, "alcohol": True}}, "features.alcohol", "expected a number"),
        (lambda r: {"features": {**r, "alcohol": [1]}}, "features.alcohol", "expected a number"),
        (lambda r: {"features": [1, 2]}, "features", "expected an object"),
        (lambda r: {"instances": []}, "instances", "non-empty array"),
        (lambda r: {"instances": [r, {"alcohol": 1}]}, "instances[1].pH", "missing field"),
        (lambda r: {"rows": []}, "rows", "unknown field"),  # a flat row: the field is named
        (lambda r: {"features": r, "extra": 1}, "extra", "unknown field"),
        (lambda r: [1, 2, 3], "body", "expected an object"),
        (lambda r: {"instances": [r] * 101}, "instances", "at most 100"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(client: TestClient, make_body: Any, field: str, words: str) -> None:
    r = client.post("/predict", json=make_body(wine_rows(1)[0]))
    assert r.status_code == 422, r.text
    problems = _problems(r)
    assert field in problems, problems
    assert words in problems[field]


def test_every_problem_is_reported_at_once(client: TestClient) -> None:
    row = {**wine_rows(1)[0], "alcohol": "x", "pH": "y"}
    del row["density"]
    assert set(_problems(client.post("/predict", json={"features": row}))) == {
        "features.alcohol",
        "features.pH",
        "features.density",
    }


@pytest.mark.parametrize(
    ("raw", "status", "error"),
    [
        (b"", 422, "invalid_input"),
        (b"{not json", 400, "malformed_json"),
        (b'{"features": {"alcohol": NaN}}', 400, "malformed_json"),
        (b"\xff\xfe", 400, "malformed_json"),
    ],
)
def test_malformed_bodies(client: TestClient, raw: bytes, status: int, error: str) -> None:
    r = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == status and r.json()["error"] == error


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    r = client.post("/predict", content=b" " * (65 * 1024), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"


def test_server_keeps_serving_after_bad_input(client: TestClient) -> None:
    for raw in [b"{", b"[]", b'{"features": 1}']:
        client.post("/predict", content=raw)
    assert client.post("/predict", json={"features": wine_rows(1)[0]}).status_code == 200


def test_mlflow_invocations_formats(client: TestClient) -> None:
    rows = wine_rows(3)
    expected = client.post("/predict", json={"instances": rows}).json()["predictions"]
    cols = list(rows[0])
    bodies = [
        {"dataframe_split": {"columns": cols, "data": [[r[c] for c in cols] for r in rows]}},
        {"dataframe_records": rows},
        {"instances": rows},
        {"inputs": {c: [r[c] for r in rows] for c in cols}},
    ]
    for body in bodies:
        r = client.post("/invocations", json=body)
        assert r.status_code == 200, (body, r.text)
        assert r.json()["predictions"] == expected
    csv_body = ",".join(cols) + "\n" + "\n".join(",".join(str(r[c]) for c in cols) for r in rows)
    r = client.post("/invocations", content=csv_body, headers={"content-type": "text/csv"})
    assert r.status_code == 200 and r.json()["predictions"] == expected
    r = client.post("/invocations", content="alcohol\nhigh\n", headers={"content-type": "text/csv"})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"  # MLflow's error body
    r = client.post("/invocations", json={"dataframe_split": {"columns": cols, "data": [[1]]}})
    assert r.status_code == 400 and r.json()["error_code"] == "BAD_REQUEST" and r.json()["message"]
    assert "dataframe_split.data[0]" in {d["field"]: d["problem"] for d in r.json()["detail"]}


def test_health_ready_models(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["time"].endswith("+00:00") and health["uptime_seconds"] >= 0
    assert health["checks"]["models"] == {"wine": {"status": "ok", "version": 1}}
    assert health["checks"]["store"]["status"] == "ok" and health["checks"]["store"]["last_read"]
    assert client.get("/ping").status_code == 200 and client.get("/version").text == __version__
    ready = client.get("/ready").json()
    assert ready["ready"] and ready["models"][0]["version"] == 1
    models = client.get("/models").json()["models"]
    assert models[0]["name"] == "wine" and models[0]["runtime"] == "onnx" and models[0]["follows"] == "prod"
    assert client.get("/models/wine").json()["version"] == 1
    assert client.get("/models/nope").status_code == 404


def test_metrics_count_requests_latency_and_classes(client: TestClient) -> None:
    client.post("/predict", json={"instances": wine_rows(4)})
    client.post("/predict", json={"features": {"alcohol": "x"}})
    text = client.get("/metrics").text
    assert 'mlops_requests_total{endpoint="predict",model="wine",status="200",variant="prod",version="1"} 1.0' in text
    assert 'mlops_requests_total{endpoint="predict",model="wine",status="422",variant="prod",version="1"} 1.0' in text
    assert 'mlops_request_duration_seconds_count{endpoint="predict",model="wine",variant="prod"} 1.0' in text
    assert 'mlops_prediction_rows_total{model="wine",version="1"} 4.0' in text
    assert 'mlops_model_info{alias="prod",model="wine"' in text
    counts = [line for line in text.splitlines() if line.startswith("mlops_predictions_total{")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in counts) == 4.0
    start = next(line for line in text.splitlines() if line.startswith("process_start_time_seconds "))
    assert 0 < time.time() - float(start.split()[1]) < 3600  # the process collector: uptime for `cost --url`


def test_docs_show_the_real_feature_names(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schema = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    row = schema["oneOf"][0]["properties"]["features"]
    assert row["properties"]["fixed acidity"]["type"] == "number"
    assert "alcohol" in row["required"] and row["additionalProperties"] is False
    assert client.get("/docs").status_code == 200


def test_unknown_path_and_method_are_json(client: TestClient) -> None:
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error"]
    assert client.get("/predict").status_code == 405


def test_hot_reload_in_process(client: TestClient, wine_store_copy: Path) -> None:
    import time

    store = open_store(str(wine_store_copy))
    registry.promote(store, "wine", 2, "prod", force=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if client.post("/predict", json={"features": wine_rows(1)[0]}).json()["model_version"] == 2:
            break
        time.sleep(0.05)
    assert client.get("/ready").json()["models"][0]["version"] == 2
    assert 'mlops_model_reloads_total{model="wine",result="ok"} 1.0' in client.get("/metrics").text


def test_not_ready_until_the_alias_exists(wine_store_copy: Path) -> None:
    app = create_app(ServeSettings(store_uri=str(wine_store_copy), models=[("wine", "staging")], reload_interval=0.1))
    with TestClient(app) as c:
        assert c.get("/ready").status_code == 503
        r = c.post("/predict", json={"features": wine_rows(1)[0]})
        assert r.status_code == 503 and r.json()["error"] == "not_ready"
        registry.promote(open_store(str(wine_store_copy)), "wine", 1, "staging")
        import time

        deadline = time.monotonic() + 10
        while c.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.post("/predict", json={"features": wine_rows(1)[0]}).status_code == 200


def test_several_models_at_once(wine_store_copy: Path) -> None:
    app = create_app(ServeSettings(store_uri=str(wine_store_copy), models=[("wine", "1"), ("wine2", None)]))
    # wine2 does not exist: wine still serves, readiness says which is missing
    with TestClient(app) as c:
        assert c.post("/predict", json={"features": wine_rows(1)[0]}).status_code == 200
        assert c.post("/models/wine/predict", json={"features": wine_rows(1)[0]}).status_code == 200
        assert c.post("/models/wine2/predict", json={"features": wine_rows(1)[0]}).status_code == 503
        assert c.post("/models/zzz/predict", json={"features": wine_rows(1)[0]}).status_code == 404
        ready = c.get("/ready")
        assert ready.status_code == 503 and json.dumps(ready.json()).count("wine2") >= 1


def test_sklearn_runtime_serves_the_same_answers(wine_store_copy: Path) -> None:
    rows = wine_rows(10)
    answers = {}
    for runtime in ("onnx", "sklearn"):
        app = create_app(ServeSettings(store_uri=str(wine_store_copy), models=[("wine", "prod")], runtime=runtime))
        with TestClient(app) as c:
            body = c.post("/predict", json={"instances": rows}).json()
            assert c.get("/models").json()["models"][0]["runtime"] == runtime
            answers[runtime] = body["predictions"]
    assert answers["onnx"] == answers["sklearn"]


def test_regression_and_classification_served_together(two_models_store: Path) -> None:
    app = create_app(
        ServeSettings(store_uri=str(two_models_store), models=[("wine-alcohol", "prod"), ("wine", "prod")])
    )
    rows = wine_rows(5)
    with TestClient(app) as c:
        reg_rows = [{k: v for k, v in r.items() if k != "alcohol"} | {"quality": 5.0} for r in rows]
        body = c.post("/predict", json={"instances": reg_rows}).json()
        assert body["model"] == "wine-alcohol" and "probabilities" not in body
        assert all(isinstance(p, float) and 8 < p < 15 for p in body["predictions"])
        one = c.post("/models/wine-alcohol/predict", json={"features": reg_rows[0]}).json()
        assert one["prediction"] == pytest.approx(body["predictions"][0])
        assert c.post("/models/wine/predict", json={"instances": rows}).json()["model"] == "wine"
        # each model validates against its own signature
        assert c.post("/predict", json={"features": rows[0]}).status_code == 422
        text = c.get("/metrics").text
        buckets = [line for line in text.splitlines() if line.startswith('mlops_predictions_total{class="le_')]
        assert sum(float(b.rsplit(" ", 1)[1]) for b in buckets) == 6.0
        names = {m["name"]: m for m in c.get("/models").json()["models"]}
        assert names["wine-alcohol"]["task"] == "regression" and names["wine"]["runtime"] == "onnx"
        spec = c.get("/openapi.json").json()
        # one path per served model, each with its own body (a templated path could not pair them)
        bodies = {
            name: spec["paths"][f"/models/{name}/predict"]["post"]["requestBody"]["content"]["application/json"]
            for name in ("wine", "wine-alcohol")
        }
        rows_of = {n: b["schema"]["oneOf"][0]["properties"]["features"]["properties"] for n, b in bodies.items()}
        assert "alcohol" in rows_of["wine"] and "alcohol" not in rows_of["wine-alcohol"]
        assert "/models/{name}/predict" not in spec["paths"]


def test_a_bundle_without_onnx_is_served_by_scikit_learn(two_models_store: Path) -> None:
    app = create_app(ServeSettings(store_uri=str(two_models_store), models=[("wine-sk", None), ("wine", "1")]))
    rows = wine_rows(8)
    with TestClient(app) as c:
        models = {m["name"]: m for m in c.get("/models").json()["models"]}
        assert models["wine-sk"]["runtime"] == "sklearn" and models["wine"]["runtime"] == "onnx"
        sk = c.post("/predict", json={"instances": rows}).json()["predictions"]
        assert sk == c.post("/models/wine/predict", json={"instances": rows}).json()["predictions"]


def test_the_fastapi_routes_behind_the_prediction_layer_are_for_the_docs_only(wine_store_copy: Path) -> None:
    app = create_app(ServeSettings(store_uri=str(wine_store_copy), models=[("wine", "prod")]))
    with TestClient(app.app) as c, pytest.raises(RuntimeError, match="PredictRoutes"):
        c.post("/predict", json={"features": wine_rows(1)[0]})


def test_a_flat_body_is_one_row_and_a_text_model_takes_text(client: TestClient, tmp_path: Path) -> None:
    """The seeds' shapes: ``{"alcohol": 9.4, ...}`` is one row on /predict; a one-column text model takes
    ``{"text": "..."}`` whatever its column is called. A flat body with a wrong field names it."""
    row = wine_rows(1)[0]
    flat = client.post("/predict", json=row)
    assert flat.status_code == 200, flat.text
    assert flat.json()["prediction"] == client.post("/predict", json={"features": row}).json()["prediction"]
    bad = client.post("/predict", json={**row, "colour": "red"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "colour"

    from mlopsctl.serving.inputs import InputSpec

    spec = InputSpec({"inputs": [{"name": "sentence", "kind": "text", "nullable": False}]})
    assert spec.columns([{"text": "great film"}]) == {"sentence": ["great film"]}
    assert spec.columns([{"sentence": "dull"}]) == {"sentence": ["dull"]}
