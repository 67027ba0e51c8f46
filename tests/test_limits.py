"""Bounded everything: every route refuses a body over the limit with 413, `/feedback` takes the management
key when one is set and at most max_batch_rows labels, labels out of range are 4xx naming the field (never a
500 that loses the batch), and a prediction labelled many times counts once everywhere."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlopsctl.serving.app import ServeSettings, create_app
from mlopsctl.store import open_store
from tests.conftest import wine_rows

pytestmark = pytest.mark.shared_data
FAST = {"flush_interval_seconds": 0.2, "feedback_lookback": 0}


def _app(store_dir: Path, **settings: Any) -> Any:
    return create_app(
        ServeSettings(store_uri=str(store_dir), models=[("wine", "prod")], capture=dict(FAST), **settings)
    )


def _predict(c: TestClient, n: int) -> list[str]:
    return [c.post("/predict", json={"features": row}).json()["request_id"] for row in wine_rows(n)]


def test_every_route_with_a_body_has_the_limit(wine_store_copy: Path) -> None:
    with TestClient(_app(wine_store_copy, max_body_bytes=4096)) as c:
        ids = _predict(c, 1)
        big = [{"request_id": ids[0], "label": 5}] * 400  # ~16 kB
        for path in ("/feedback", "/retrain", "/models/wine", "/no-such-route"):
            r = c.post(path, json=big)
            assert r.status_code == 413, (path, r.status_code, r.text)
            assert r.json()["error"] == "body_too_large" and r.json()["detail"][0]["field"] == "body"
        assert c.post("/predict", json={"instances": wine_rows(40)}).status_code == 413
        # each prediction protocol says so in its own error shape
        mlflow = c.post("/invocations", json={"dataframe_records": wine_rows(40)})
        assert mlflow.status_code == 413 and mlflow.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
        assert "max_body_bytes" in mlflow.json()["message"]
        rows = wine_rows(40) * 5
        tensors = [{"name": k, "datatype": "FP64", "shape": [200], "data": [r[k] for r in rows]} for k in rows[0]]
        oip = c.post("/v2/models/wine/infer", json={"inputs": tensors})
        assert oip.status_code == 413 and "max_body_bytes" in oip.json()["error"]
        assert c.post("/feedback", json={"request_id": ids[0], "label": 5}).status_code == 200  # small ones pass
        assert c.get("/health").status_code == 200


def test_feedback_takes_at_most_max_batch_rows_labels(wine_store_copy: Path) -> None:
    with TestClient(_app(wine_store_copy, max_batch_rows=5)) as c:
        ids = _predict(c, 6)
        too_many = c.post("/feedback", json=[{"request_id": i, "label": 5} for i in ids])
        assert too_many.status_code == 413 and "at most 5" in too_many.json()["detail"][0]["problem"]
        assert c.post("/feedback", json=[{"request_id": i, "label": 5} for i in ids[:5]]).json()["accepted"] == 5


def test_feedback_needs_the_management_key_when_one_is_set(
    wine_store_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_API_KEY", "s3cret-key")
    with TestClient(_app(wine_store_copy)) as c:
        ids = _predict(c, 1)
        label = {"request_id": ids[0], "label": 5}
        assert c.post("/feedback", json=label).status_code == 401
        wrong = c.post("/feedback", json=label, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "s3cret" not in wrong.text
        assert c.post("/feedback", json=label, headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
        assert c.post("/feedback", json=label, headers={"X-API-Key": "s3cret-key"}).status_code == 200
        assert c.post("/predict", json={"features": wine_rows(1)[0]}).status_code == 200  # predictions stay open


@pytest.mark.parametrize(
    ("label", "problem"),
    [
        (1e308, "out of range"),
        (99999999999999999999, "out of range"),
        ("x" * 300, "at most 256"),
        ({"class": 5}, "got dict"),
        ([5], "got list"),
        (True, "got bool"),
    ],
    ids=["1e308", "20-digit", "long-string", "object", "list", "bool"],
)
def test_a_label_out_of_range_is_refused_by_field_and_the_rest_of_the_batch_stands(
    wine_store_copy: Path, label: Any, problem: str
) -> None:
    with TestClient(_app(wine_store_copy)) as c:
        ids = _predict(c, 2)
        r = c.post("/feedback", json=[{"request_id": ids[0], "label": label}, {"request_id": ids[1], "label": 6}])
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["accepted"] == 1 and body["rejected"][0]["field"] == "label"
        assert problem in body["rejected"][0]["problem"]
        long_id = c.post("/feedback", json={"request_id": "r" * 129, "label": 5})
        assert long_id.status_code == 422 and long_id.json()["detail"][0]["field"] == "request_id"


def test_a_regression_label_of_1e308_is_a_number_and_is_kept(two_models_store: Path) -> None:
    app = create_app(
        ServeSettings(store_uri=str(two_models_store), models=[("wine-alcohol", "prod")], capture=dict(FAST))
    )
    with TestClient(app) as c:
        row = {k: v for k, v in wine_rows(1)[0].items() if k != "alcohol"} | {"quality": 5.0}
        answer = c.post("/predict", json={"features": row})
        assert answer.status_code == 200, answer.text
        rid = answer.json()["request_id"]
        assert c.post("/feedback", json={"request_id": rid, "label": 1e308}).json()["accepted"] == 1
        inf = c.post("/feedback", content=b'{"request_id": "%s", "label": 1e999}' % rid.encode())
        assert inf.status_code in (400, 422)


def test_a_prediction_labelled_eight_times_counts_once_everywhere(wine_store_copy: Path) -> None:
    from mlopsctl.monitoring.performance import performance

    with TestClient(_app(wine_store_copy)) as c:
        ids = _predict(c, 2)
        predicted = c.post("/predict", json={"features": wine_rows(1)[0]}).json()
        rid, wrong = predicted["request_id"], 3 if predicted["prediction"] != 3 else 4
        for label in [wrong] * 7 + [predicted["prediction"]]:  # seven wrong labels, then the right one
            assert c.post("/feedback", json={"request_id": rid, "label": label}).json()["accepted"] == 1
        metrics = c.get("/metrics").text
        time.sleep(0.5)
    gauge = {
        line.split("{")[0]: float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith(('mlops_live_accuracy{model="wine"}', 'mlops_live_labelled{model="wine"}'))
    }
    assert gauge == {"mlops_live_accuracy": 1.0, "mlops_live_labelled": 1.0}
    report = performance(open_store(str(wine_store_copy)), "wine", since=time.time() - 3600, window=600)
    (v1,) = report["versions"]
    assert v1["labelled"] == 1 and v1["live"]["accuracy"] == 1.0 and len(ids) == 2


def test_requests_that_used_to_answer_500_are_4xx_naming_the_field(
    wine_store_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_API_KEY", "k")
    auth = {"Authorization": "Bearer k"}
    names = list(wine_rows(1)[0])
    with TestClient(_app(wine_store_copy, max_body_bytes=1_048_576), raise_server_exceptions=False) as c:
        field = "x" * (140 * 1024)
        csv_body = (",".join(names) + "\n" + ",".join(["1"] * (len(names) - 1) + [field]) + "\n").encode()
        r = c.post("/invocations", content=csv_body, headers={"content-type": "text/csv"})
        assert 400 <= r.status_code < 500 and r.json()["detail"][0]["field"] == "row 1", r.text
        split = {"dataframe_split": {"columns": [1, *names[1:]], "data": [list(wine_rows(1)[0].values())]}}
        r = c.post("/invocations", json=split)
        assert r.status_code == 400 and r.json()["detail"][0]["field"] == "dataframe_split.columns[0]", r.text
        for run_id in ("a%00b", "r" * 500, "a%20b"):
            r = c.get(f"/retrain/{run_id}", headers=auth)
            assert r.status_code == 404 and r.json()["detail"][0]["field"] == "run_id", (run_id, r.text)
        assert c.post("/predict", json={"features": wine_rows(1)[0]}).status_code == 200


def test_a_number_far_outside_the_training_range_is_refused_by_field(wine_store_copy: Path) -> None:
    """A million times the range's scale beyond it is accepted (extrapolation); beyond, a scaler in a model
    would overflow float32 and scikit-learn's trees refuse infinity: 422 naming the field, on every runtime."""
    with TestClient(_app(wine_store_copy)) as c:
        row = wine_rows(1)[0]
        assert c.post("/predict", json={"features": {**row, "alcohol": 1e6}}).status_code == 200
        r = c.post("/predict", json={"features": {**row, "alcohol": 1e16}})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "features.alcohol"
        assert "far outside the training range [8.4, 14.9]" in r.json()["detail"][0]["problem"]
        r = c.post("/predict", json={"features": {**row, "density": 10**400}})  # JSON's big integers too
        assert r.status_code in (400, 422)
