"""The Open Inference Protocol v2 (KServe, Triton, MLServer, Seldon).

Triton's own `tritonclient.http`, unmodified, against a real `mlopsctl serve` on 127.0.0.1: health, server
and model metadata, `infer` from numpy arrays (FP64, FP32, INT64; JSON and binary tensors) giving what
`/predict` gives for the same rows, BYTES for a text model, the errors clients see, an A/B experiment
routing `/infer` by its sticky header, and the capture records. The protocol's edge cases in process.
"""

from __future__ import annotations

import gzip
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import SENTIMENT, WINE_RED, train_and_publish, wine_rows

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]
httpclient = pytest.importorskip("tritonclient.http", reason="the [dev] extra installs tritonclient[http]")
from tritonclient.utils import InferenceServerException, np_to_triton_dtype  # noqa: E402

# the arrays a Triton user sends: (numpy type, as binary tensors after the JSON rather than in it)
NUMPY_CASES = [(np.float64, False), (np.float64, True), (np.float32, True), (np.int64, False)]


def triton(server: Any) -> Any:
    return httpclient.InferenceServerClient(server.url.removeprefix("http://"))


def tensors(rows: list[dict[str, Any]], dtype: Any, binary: bool) -> list[Any]:
    """One [N, 1] input per feature, as a Triton user builds them from numpy."""
    out = []
    for name in rows[0]:
        array = np.array([[r[name]] for r in rows], dtype=dtype)
        tensor = httpclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        out.append(tensor.set_data_from_numpy(array, binary_data=binary))
    return out


def status_of(call: Any) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as info:
        call()
    return str(info.value.status()), str(info.value.message())


def test_tritonclient_health_metadata_and_infer_match_predict(two_models_store: Path, start_server: Any) -> None:
    server = start_server(["--store", str(two_models_store), "serve", "-m", "wine@prod", "-m", "wine-alcohol@prod"])
    client, http = triton(server), httpx.Client(base_url=server.url, timeout=10)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("wine") and client.is_model_ready("wine", "1")
    assert not client.is_model_ready("wine", "2") and not client.is_model_ready("nope")
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]

    rows = wine_rows(8)
    meta = client.get_model_metadata("wine")
    assert meta["versions"] == ["1"] and meta["platform"] == "onnx_onnxv1"
    assert meta["inputs"] == [{"name": n, "datatype": "FP64", "shape": [-1, 1]} for n in rows[0]]
    assert meta["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP32", "shape": [-1, 6]},
        {"name": "classes", "datatype": "INT64", "shape": [6]},
    ]
    assert client.get_model_metadata("wine", "1") == meta

    # the same rows as numpy arrays of each type, in JSON and as binary tensors: /predict's answers
    for i, (dtype, as_bytes) in enumerate(NUMPY_CASES):
        sent = [{k: np.array(v, dtype=dtype).item() for k, v in r.items()} for r in rows]
        expected = http.post("/predict", json={"instances": sent}).json()
        result = client.infer("wine", tensors(sent, dtype, as_bytes), request_id=f"oip-{i}")
        assert result.as_numpy("predict").tolist() == expected["predictions"], dtype
        classes = result.as_numpy("classes").tolist()
        assert classes == [3, 4, 5, 6, 7, 8]
        proba = np.array([[p[str(c)] for c in classes] for p in expected["probabilities"]], dtype=np.float32)
        assert result.as_numpy("predict_proba").dtype == np.float32
        assert np.array_equal(result.as_numpy("predict_proba"), proba)
        answer = result.get_response()
        assert answer["id"] == f"oip-{i}" and answer["model_name"] == "wine" and answer["model_version"] == "1"
        assert answer["parameters"]["variant"] == "prod" and answer["parameters"]["request_id"]

    # the version in the path, and one requested output (binary asked for: JSON tensors come back, read alike)
    wanted = [httpclient.InferRequestedOutput("predict_proba", binary_data=True)]
    pinned = client.infer("wine", tensors(rows, np.float64, True), model_version="1", outputs=wanted)
    assert [o["name"] for o in pinned.get_response()["outputs"]] == ["predict_proba"]
    assert pinned.as_numpy("predict_proba").shape == (8, 6)

    # a regression: one output, its values as /models/NAME/predict gives them
    import pandas as pd

    frame = pd.read_csv(WINE_RED, sep=";").drop(columns=["alcohol"]).head(5)
    reg_rows = [{k: float(v) for k, v in r.items()} for r in frame.to_dict(orient="records")]
    reg_meta = client.get_model_metadata("wine-alcohol")
    assert reg_meta["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    assert {i["name"]: i["datatype"] for i in reg_meta["inputs"]}["quality"] == "INT64"  # an int column
    values = client.infer("wine-alcohol", tensors(reg_rows, np.float64, True)).as_numpy("predict").tolist()
    assert values == http.post("/models/wine-alcohol/predict", json={"instances": reg_rows}).json()["predictions"]

    # errors: the status and the server's message, as the client raises them
    good = tensors(rows[:1], np.float64, False)
    status, message = status_of(lambda: client.infer("nope", good))
    assert status == "404" and "not served here; served: wine, wine-alcohol" in message
    status, message = status_of(lambda: client.infer("wine", good, model_version="2"))
    assert status == "404" and "version '2' is not served here; served: 1" in message
    text = httpclient.InferInput("alcohol", [1, 1], "BYTES").set_data_from_numpy(np.array([[b"high"]], dtype=object))
    status, message = status_of(lambda: client.infer("wine", [*good[:-1], text]))
    assert status == "400" and "inputs.alcohol.datatype: 'BYTES': a number input takes FP16, FP32" in message
    two = tensors(rows[:2], np.float64, False)
    status, message = status_of(lambda: client.infer("wine", [*good[:-1], two[-1]]))
    assert status == "400" and "inputs.alcohol.shape: 2 rows, where fixed acidity has 1" in message
    raw = http.post("/v2/models/wine/infer", json={"inputs": [{"name": "pH", "datatype": "FP64", "shape": [1, 2],
                                                               "data": [3.1, 3.2]}]})  # fmt: skip
    assert raw.status_code == 400 and raw.json()["error"].startswith("inputs.pH.shape: expected [N] or [N, 1]")
    assert client.is_server_ready()  # still serving

    # capture: every answered /infer row, with the values the model saw
    server.stop()
    from mlopsctl.monitoring.captured import load_captures
    from mlopsctl.store import open_store

    records = [r for r in load_captures(open_store(str(two_models_store)), "wine") if r["endpoint"] == "infer"]
    answered = [r for r in records if r["status"] == 200]
    assert len(answered) == 4 * 8 + 8 and Counter(r["status"] for r in records)[400] == 3  # the 404s ran no model
    assert answered[0]["inputs"] == rows[0] and answered[0]["variant"] == "prod"


def test_a_text_model_takes_bytes(tmp_path: Path, start_server: Any) -> None:
    project = tmp_path / "sentiment"
    project.mkdir()
    (project / "mlops.toml").write_text(
        f"""
[project]
name = "sentiment"
[data]
path = "{SENTIMENT / "amazon_cells_labelled.txt"}"
target = "label"
columns = ["text", "label"]
header = false
[training]
task = "text-classification"
model = "logistic_regression"
cv_folds = 2
[store]
uri = "{tmp_path / "store"}"
"""
    )
    train_and_publish(project)
    server = start_server(["--store", str(tmp_path / "store"), "serve", "-m", "sentiment"])
    client = triton(server)
    meta = client.get_model_metadata("sentiment")
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1, 1]}]
    texts = ["great, loved it", "terrible, broke in a day", "works as described", "ünïcode is fine ✓"]
    expected = httpx.post(server.url + "/predict", json={"instances": [{"text": t} for t in texts]}).json()
    for as_bytes in (True, False):
        tensor = httpclient.InferInput("text", [len(texts), 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=object), binary_data=as_bytes)
        result = client.infer("sentiment", [tensor])
        assert result.as_numpy("predict").tolist() == expected["predictions"]
        ones = result.as_numpy("predict_proba")[:, result.as_numpy("classes").tolist().index(1)]
        assert ones[0] > 0.5 > ones[1]


def test_an_ab_experiment_routes_infer_by_its_sticky_header(wine_store_copy: Path, start_server: Any) -> None:
    from mlopsctl.experiments import deployment as dep
    from mlopsctl.monitoring.captured import load_captures
    from mlopsctl.store import open_store

    store = open_store(str(wine_store_copy))
    dep.start(store, "wine", control="prod", candidate="2", split="50/50", sticky="X-User-Id", reason="oip")
    server = start_server(["--store", str(wine_store_copy), "serve", "-m", "wine@prod"])
    client = triton(server)
    inputs = tensors(wine_rows(1), np.float64, True)

    def infer(user: str, version: str = "") -> tuple[str, str]:
        answer = client.infer("wine", inputs, model_version=version, headers={"X-User-Id": user}).get_response()
        return answer["model_version"], answer["parameters"]["variant"]

    users = [f"user-{i}" for i in range(40)]
    first = {u: infer(u) for u in users}
    assert {u: infer(u) for u in users} == first  # sticky: each user keeps the variant
    assert set(first.values()) == {("1", "control"), ("2", "candidate")}
    assert {infer(u, "2") for u in users} == {("2", "candidate")}  # the path's version wins over the split
    assert client.get_model_metadata("wine")["versions"] == ["1", "2"]
    assert status_of(lambda: client.infer("wine", inputs, model_version="3"))[0] == "404"

    server.stop()
    records = [r for r in load_captures(store, "wine") if r["endpoint"] == "infer"]
    assert len(records) == 3 * len(users)
    assert Counter(r["variant"] for r in records[: 2 * len(users)]) == Counter([v for _, v in first.values()] * 2)


# -- the protocol's edge cases, in process ---------------------------------------------------------------


@pytest.fixture(scope="module")
def client(wine_registry: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A server on a copy of the session's wine store (other modules copy the session's store: nothing is
    written to it), no capture."""
    import shutil

    from fastapi.testclient import TestClient

    from mlopsctl.serving.app import ServeSettings, create_app

    store = tmp_path_factory.mktemp("oip") / "store"
    shutil.copytree(wine_registry["store_dir"], store)
    settings = ServeSettings(store_uri=str(store), models=[("wine", "prod")], max_batch_rows=10, capture=None)
    with TestClient(create_app(settings)) as c:
        yield c


# red wine's first row: the parametrized bodies below are built when the module is collected, also in a clone
# without ../shared (where every test here skips: they need the trained wine model)
FIRST_ROW = {"fixed acidity": 7.4, "volatile acidity": 0.7, "citric acid": 0.0, "residual sugar": 1.9,
             "chlorides": 0.076, "free sulfur dioxide": 11.0, "total sulfur dioxide": 34.0, "density": 0.9978,
             "pH": 3.51, "sulphates": 0.56, "alcohol": 9.4}  # fmt: skip


def body(rows: int = 1, **change: Any) -> dict[str, Any]:
    """A good request for ``rows`` wine rows, FP64 [N, 1] tensors; ``change`` replaces tensors' fields by name."""
    data = wine_rows(rows) if WINE_RED.is_file() else [dict(FIRST_ROW) for _ in range(rows)]
    inputs = [{"name": n, "datatype": "FP64", "shape": [rows, 1], "data": [r[n] for r in data]} for n in data[0]]
    for tensor in inputs:
        tensor.update(change.get(tensor["name"], {}))
    return {"inputs": inputs}


def without(name: str) -> dict[str, Any]:
    b = body()
    b["inputs"] = [t for t in b["inputs"] if t["name"] != name]
    return b


def binary(extra: bytes = b"") -> tuple[bytes, dict[str, str]]:
    """The body as tritonclient sends binary tensors: the JSON, then each tensor's little-endian bytes."""
    b = body()
    raw = b""
    for tensor in b["inputs"]:
        chunk = struct.pack("<d", tensor.pop("data")[0])
        tensor["parameters"] = {"binary_data_size": len(chunk)}
        raw += chunk
    head = httpx.Request("POST", "/", json=b).content
    return head + raw + extra, {"Inference-Header-Content-Length": str(len(head))}


def test_what_the_spec_allows_is_taken(client: Any) -> None:
    ok = client.post("/v2/models/wine/infer", json=body(3)).json()
    flat = body(3, alcohol={"shape": [3]})
    nested = body(3, pH={"data": [[r["pH"]] for r in wine_rows(3)]})
    ints = body(3, density={"datatype": "UINT8", "data": [1, 1, 1]})
    for variant in (flat, nested, {**body(3), "id": "x", "parameters": {"binary_data_output": True}}):
        r = client.post("/v2/models/wine/infer", json=variant)
        assert r.status_code == 200 and r.json()["outputs"][:2] == ok["outputs"][:2], r.text
    assert client.post("/v2/models/wine/infer", json=ints).status_code == 200
    content, headers = binary()
    r = client.post("/v2/models/wine/infer", content=content, headers=headers)
    one = client.post("/v2/models/wine/infer", json=body(1)).json()
    assert r.status_code == 200 and r.json()["outputs"] == one["outputs"]
    snake = body(1)
    snake["inputs"][0]["name"] = "fixed_acidity"  # the snake_case names /predict takes
    assert client.post("/v2/models/wine/infer", json=snake).json()["outputs"] == one["outputs"]
    counted = [ln for ln in client.get("/metrics").text.splitlines() if ln.startswith("mlops_requests_total{")]
    assert any('endpoint="infer"' in ln and 'status="200"' in ln and float(ln.split()[-1]) > 0 for ln in counted)


@pytest.mark.parametrize(
    ("request_body", "status", "field"),
    [
        (b"{not json", 400, "body"),
        ([1, 2], 400, "body"),
        ({"inputs": []}, 400, "inputs"),
        ({**body(), "colour": "red"}, 400, "colour"),
        ({**body(), "id": 42}, 400, "id"),
        ({"inputs": [*body()["inputs"], {"name": "lot", "datatype": "FP64", "shape": [1], "data": [1]}]}, 400,
         "inputs[11].name"),
        ({"inputs": [*body()["inputs"], body()["inputs"][0]]}, 400, "inputs.fixed acidity"),
        (without("pH"), 400, "inputs.pH"),
        (body(alcohol={"datatype": "BOOL", "data": [True]}), 400, "inputs.alcohol.datatype"),
        (body(alcohol={"datatype": ["FP64"]}), 400, "inputs.alcohol.datatype"),
        (body(alcohol={"extra": 1}), 400, "inputs.alcohol.extra"),
        (body(alcohol={"shape": [1, 2]}), 400, "inputs.alcohol.shape"),
        (body(alcohol={"shape": []}), 400, "inputs.alcohol.shape"),
        (body(**{"fixed acidity": {"shape": None, "parameters": {}}}), 400, "inputs.fixed acidity.shape"),
        (body(alcohol={"shape": [1], "data": [[9.4]]}), 400, "inputs.alcohol.data"),
        (body(alcohol={"data": [9.4, 9.5]}), 400, "inputs.alcohol.data"),
        (body(alcohol={"data": ["9.4"]}), 400, "inputs.alcohol.data"),
        (body(alcohol={"datatype": "INT64", "data": [9.5]}), 400, "inputs.alcohol.data"),
        (body(alcohol={"datatype": "INT8", "data": [300]}), 400, "inputs.alcohol.data"),
        (body(alcohol={"parameters": {"binary_data_size": 8}}), 400, "inputs.alcohol.parameters.binary_data_size"),
        (body(11), 400, "inputs.fixed acidity.shape"),
        ({**body(), "outputs": [{"name": "labels"}]}, 400, "outputs[0].name"),
        ({**body(), "outputs": [{"name": "predict", "parameters": {"classification": 2}}]}, 400,
         "outputs[0].parameters.classification"),
        (body(alcohol={"data": [1e30]}), 422, "row[0].alcohol"),
        (body(alcohol={"data": [None]}), 422, "row[0].alcohol"),
    ],
    ids=["not-json", "not-an-object", "no-inputs", "unknown-field", "id-not-string", "unknown-input", "twice",
         "missing-input", "bool-for-number", "datatype-list", "unknown-tensor-field", "shape-2-columns", "shape-scalar",
         "first-shape-null", "nested-for-1d", "too-many-values", "string-for-number", "fraction-for-int", "int8-range",
         "binary-size-without-header", "too-many-rows", "unknown-output", "classification", "out-of-range",
         "null-not-nullable"],
)  # fmt: skip
def test_a_bad_request_names_its_field(client: Any, request_body: Any, status: int, field: str) -> None:
    if isinstance(request_body, bytes):
        r = client.post("/v2/models/wine/infer", content=request_body)
    else:
        r = client.post("/v2/models/wine/infer", json=request_body)
    assert r.status_code == status, r.text
    error = r.json()
    assert isinstance(error["error"], str) and error["detail"][0]["field"] == field, error
    assert error["error"].startswith(field) and error["request_id"] == r.headers["x-request-id"]


def test_binary_bodies_and_encodings_that_are_refused(client: Any) -> None:
    content, headers = binary(extra=b"\0" * 3)
    r = client.post("/v2/models/wine/infer", content=content, headers=headers)
    assert r.status_code == 400 and "3 bytes after the JSON" in r.json()["error"]
    content, headers = binary()
    r = client.post("/v2/models/wine/infer", content=content, headers={"Inference-Header-Content-Length": "99999"})
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "inference-header-content-length"
    gz = gzip.compress(httpx.Request("POST", "/", json=body()).content)
    r = client.post("/v2/models/wine/infer", content=gz, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 415 and "send the body uncompressed" in r.json()["error"]
    r = client.post("/v2/models/wine/infer", content=b"--x\r\n", headers={"Content-Type": "multipart/form-data"})
    assert r.status_code == 415
    assert client.get("/v2/models/wine/infer").status_code == 405
    r = client.get("/v2/models/nope/ready")
    assert r.status_code == 404 and "not served here" in r.json()["error"]


def test_flags_categories_and_integer_ranges() -> None:
    """A boolean feature takes BOOL (JSON or one byte each) or BYTES "true"/"false"; null stands for a missing
    value; integer types are range-checked in JSON."""
    from mlopsctl.serving.inputs import InputSpec
    from mlopsctl.serving.predict import Refused
    from mlopsctl.serving.protocols.oip import OIP, with_header

    signature = {"inputs": [
        {"name": "member", "kind": "categorical", "dtype": "bool", "nullable": False},
        {"name": "age", "kind": "numeric", "dtype": "int", "nullable": True, "min": 18, "max": 90},
        {"name": "city", "kind": "categorical", "dtype": "string", "nullable": True},
    ]}  # fmt: skip
    model: Any = SimpleNamespace(spec=InputSpec(signature), classes=None, name="m", runtime="onnx")

    def rows(inputs: list[dict[str, Any]], tail: bytes | None = None) -> list[Any]:
        """The rows of a request; ``tail``: binary tensor data after the JSON."""
        raw = httpx.Request("POST", "/", json={"inputs": inputs}).content
        content_type = with_header("", None if tail is None else str(len(raw)).encode(), None)
        return OIP.rows(model, content_type, raw + (tail or b""), 100)[0]

    age = {"name": "age", "datatype": "INT16", "shape": [2], "data": [40, None]}
    city = {"name": "city", "datatype": "BYTES", "shape": [2, 1], "data": [["Lyon"], [None]]}
    got = rows([{"name": "member", "datatype": "BOOL", "shape": [2, 1], "data": [True, False]}, age, city])
    assert got == [{"member": "true", "age": 40, "city": "Lyon"}, {"member": "false", "age": None, "city": None}]
    as_text = rows([{"name": "member", "datatype": "BYTES", "shape": [2], "data": ["false", "true"]}, age, city])
    assert [r["member"] for r in as_text] == ["false", "true"]
    sizes = {"parameters": {"binary_data_size": 2}}
    flags = {"name": "member", "datatype": "BOOL", "shape": [2], **sizes}
    assert [r["member"] for r in rows([flags, age, city], b"\x01\x00")] == ["true", "false"]
    lyon = struct.pack("<I", 4) + b"Lyon" + struct.pack("<I", 5) + b"Paris"
    named = {"name": "city", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(lyon)}}
    member = {"name": "member", "datatype": "BOOL", "shape": [2], "data": [True, True]}
    assert [r["city"] for r in rows([member, age, named], lyon)] == ["Lyon", "Paris"]
    with pytest.raises(Refused, match="out of UINT8's range"):
        rows([member, {**age, "datatype": "UINT8", "data": [-1, 20]}, city])


def test_the_documented_example_answers_as_documented(client: Any) -> None:
    import json
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / "serving.md").read_text()
    (curl,) = [b for b in re.findall(r"```sh\n(.*?)```", text, flags=re.S) if "/v2/models/wine/infer" in b]
    (answer,) = [b for b in re.findall(r"```json\n(.*?)```", text, flags=re.S) if '"model_name"' in b]
    request = json.loads(curl.split("-d '", 1)[1].rsplit("'", 1)[0])
    got, documented = client.post("/v2/models/wine/infer", json=request).json(), json.loads(answer)
    assert {k: got[k] for k in ("model_name", "model_version", "id", "outputs")} == {
        k: documented[k] for k in ("model_name", "model_version", "id", "outputs")
    }
    (error,) = [b for b in re.findall(r"```json\n(.*?)```", text, flags=re.S) if '"invalid_request"' in b]
    request["inputs"][-1] = {"name": "alcohol", "datatype": "BYTES", "shape": [1, 1], "data": ["high"]}
    refused = client.post("/v2/models/wine/infer", json=request)
    assert refused.status_code == 400
    assert {k: refused.json()[k] for k in ("error", "code", "detail")} == {
        k: json.loads(error)[k] for k in ("error", "code", "detail")
    }
