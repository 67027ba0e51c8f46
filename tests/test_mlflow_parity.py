"""MLflow scoring-server parity: one corpus of requests, sent to a real `mlflow models serve` and to `mlopsctl serve`.

The wine forest is exported with `mlopsctl export --format mlflow` and served by MLflow from the side venv (`make
mlflow`, MLOPS_MLFLOW_PYTHON), beside `mlopsctl serve` of the same version. Every case of `CASES` (MLflow's request
forms: dataframe_split, dataframe_records, instances, inputs, params, CSV with and without pandas' index, Parquet;
and its error cases) goes to both: the same status, the same predictions where 200, MLflow's error body
(``{"error_code", "message"}``) from both where not. A case marked with a difference (``diff``) is one mlopsctl
makes on purpose: the test checks each side answers as docs/serving.md says, and that the docs name it.
MLflow's own client (`ScoringServerClient`: wait_server_ready, invoke, get_version) runs unmodified against
`mlopsctl serve`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import WINE_RED, free_port, needs_shared, run_cli

pytestmark = [needs_shared, pytest.mark.shared_data, pytest.mark.slow]

DOCS = Path(__file__).resolve().parents[1] / "docs" / "serving.md"
JSON, CSV, PARQUET = "application/json", "text/csv", "application/vnd.apache.parquet"
MLFLOW_CODES = {"BAD_REQUEST", "INVALID_PARAMETER_VALUE", "INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE"}


class Case(NamedTuple):
    id: str
    content_type: str | None  # None: no Content-Type header at all
    body: bytes
    diff: str | None = None  # a difference docs/serving.md lists (its key), with each side's status below
    mlflow: int | None = None
    ours: int | None = None
    like: str | None = None  # a case whose MLflow predictions mlopsctl's answer here must equal


def _frame() -> pd.DataFrame:
    """20 rows the model did not train on (the wine store trains on all rows; these are in range and real)."""
    return pd.read_csv(WINE_RED, sep=";").drop(columns=["quality"]).iloc[1000:1020].reset_index(drop=True)


def _json(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _parquet(frame: pd.DataFrame, **kwargs: Any) -> bytes:
    out = io.BytesIO()
    frame.to_parquet(out, **kwargs)
    return out.getvalue()


def _csv(frame: pd.DataFrame, **kwargs: Any) -> bytes:
    return str(frame.to_csv(**kwargs)).encode()


def corpus(df: pd.DataFrame) -> list[Case]:
    cols = list(df.columns)
    recs = df.to_dict(orient="records")
    split = df.to_dict(orient="split", index=False)
    one = recs[0]
    without = [{k: v for k, v in r.items() if k != "alcohol"} for r in recs]
    text = df.astype({"alcohol": object})
    snake = [{k.replace(" ", "_"): v for k, v in r.items()} for r in recs]
    return [
        # -- JSON: the four forms, as pandas and MLflow's client write them
        Case("split", JSON, _json({"dataframe_split": split})),
        Case("split-with-index", JSON, _json({"dataframe_split": df.to_dict(orient="split")})),  # ScoringServerClient
        Case("split-df-to-json", JSON, b'{"dataframe_split": %s}' % df.iloc[3:].to_json(orient="split").encode()),
        Case("split-columns-reordered", JSON, _json({"dataframe_split": df[cols[::-1]].to_dict(orient="split")})),
        Case("split-extra-column", JSON, _json({"dataframe_split": df.assign(colour="red").to_dict(orient="split")})),
        Case("records", JSON, _json({"dataframe_records": recs})),
        Case("records-extra-column", JSON, _json({"dataframe_records": [{**r, "colour": "red"} for r in recs]})),
        Case("records-integers", JSON, _json({"dataframe_records": [{k: int(v) for k, v in r.items()} for r in recs]})),
        Case("instances-records", JSON, _json({"instances": recs})),
        Case("instances-columns", JSON, _json({"instances": df.to_dict(orient="list")})),
        Case("instances-one-row", JSON, _json({"instances": one})),
        Case("inputs-records", JSON, _json({"inputs": recs})),
        Case("inputs-columns", JSON, _json({"inputs": df.to_dict(orient="list")})),
        Case("inputs-one-row", JSON, _json({"inputs": one})),
        Case("params", JSON, _json({"dataframe_split": split, "params": {"threshold": 0.3}})),
        Case("params-not-an-object", JSON, _json({"dataframe_records": recs, "params": 5})),
        Case("other-top-level-key", JSON, _json({"dataframe_split": split, "metadata": {"source": "test"}})),
        Case("json-charset", JSON + "; charset=utf-8", _json({"instances": recs})),
        # -- CSV and Parquet
        Case("csv", CSV, _csv(df, index=False)),
        Case("csv-with-index", CSV, _csv(df)),
        Case("csv-index-without-header", CSV, _csv(df, index_label=False)),
        Case("csv-columns-reordered", CSV, _csv(df[cols[::-1]], index=False)),
        Case("csv-extra-column", CSV, _csv(df.assign(colour="red"), index=False)),
        Case("csv-crlf", CSV, _csv(df, index=False, lineterminator="\r\n")),
        Case("csv-bom", CSV, b"\xef\xbb\xbf" + _csv(df, index=False)),
        Case("csv-charset", CSV + "; charset=utf-8", _csv(df, index=False)),
        Case("parquet", PARQUET, _parquet(df)),
        Case("parquet-with-index", PARQUET, _parquet(df.iloc[5:])),
        Case("parquet-without-index", PARQUET, _parquet(df, index=False)),
        Case("parquet-extra-column", PARQUET, _parquet(df.assign(colour="red"))),
        Case("parquet-float32", PARQUET, _parquet(df.astype("float32"))),
        Case("parquet-int32", PARQUET, _parquet(df.astype({"free sulfur dioxide": "int32"}))),
        # -- errors: the body is not a table MLflow reads
        Case("not-json", JSON, b"{not json"),
        Case("empty-body", JSON, b""),
        Case("not-utf8", JSON, b'{"instances": "\xff"}'),
        Case("top-level-array", JSON, _json(recs)),
        Case("no-form", JSON, _json({"data": split["data"]})),
        Case("empty-object", JSON, b"{}"),
        Case("two-forms", JSON, _json({"dataframe_split": split, "instances": recs})),
        Case("llm-key", JSON, _json({"dataframe_split": split, "input": "hello"})),
        Case("split-not-an-object", JSON, _json({"dataframe_split": split["data"]})),
        Case("split-unknown-key", JSON, _json({"dataframe_split": {**split, "orient": "split"}})),
        Case("split-no-columns", JSON, _json({"dataframe_split": {"data": split["data"]}})),
        Case("split-short-row", JSON, _json({"dataframe_split": {"columns": cols, "data": [[7.4]]}})),
        Case("split-index-length", JSON, _json({"dataframe_split": {**split, "index": [0]}})),
        Case("split-no-rows", JSON, _json({"dataframe_split": {"columns": cols, "data": []}})),
        Case("records-an-object", JSON, _json({"dataframe_records": one})),
        Case("records-arrays", JSON, _json({"dataframe_records": split["data"]})),
        Case("records-none", JSON, _json({"dataframe_records": []})),
        Case("instances-arrays", JSON, _json({"instances": split["data"]})),
        Case("inputs-unequal-columns", JSON, _json({"inputs": {**df.to_dict(orient="list"), "alcohol": [9.5]}})),
        Case("inputs-values", JSON, _json({"inputs": [1.0, 2.0]})),
        Case("csv-empty", CSV, b""),
        Case("csv-header-only", CSV, (",".join(cols) + "\n").encode()),
        Case("csv-long-row", CSV, _csv(df, index=False) + b",".join([b"1"] * 12) + b"\n"),
        Case("csv-semicolons", CSV, _csv(df, index=False, sep=";")),
        Case("csv-not-utf8", CSV, _csv(df, index=False) + b"\xff\n"),
        Case("parquet-garbage", PARQUET, b"PAR1 and then not Parquet"),
        Case("parquet-sent-as-json", JSON, _parquet(df)),
        # -- errors: a table that does not fit the signature
        Case("records-missing-column", JSON, _json({"dataframe_records": without})),
        Case("records-snake-case-names", JSON, _json({"dataframe_records": snake})),
        Case("records-a-word", JSON, _json({"dataframe_records": [{**one, "alcohol": "high"}]})),
        Case("records-beyond-float32", JSON, _json({"dataframe_records": [{**one, "alcohol": 1e300}]})),
        Case("instances-one-row-missing-column", JSON, _json({"instances": [recs[0], without[1]]})),
        Case("csv-missing-column", CSV, _csv(df.drop(columns=["alcohol"]), index=False)),
        Case("csv-a-word", CSV, _csv(text.assign(alcohol="high"), index=False)),
        Case("parquet-missing-column", PARQUET, _parquet(df.drop(columns=["alcohol"]))),
        Case("parquet-strings", PARQUET, _parquet(df.astype({"alcohol": str}))),
    ]


def differences(df: pd.DataFrame) -> list[Case]:
    """The cases where mlopsctl answers otherwise on purpose: (id, content type, body, the key docs/serving.md lists
    it under, MLflow's status, mlopsctl's status[, the case whose MLflow predictions mlopsctl's must equal])."""
    recs = df.to_dict(orient="records")
    one, cols, data = recs[0], list(df.columns), df.to_dict(orient="split")["data"]
    text = df.astype({"alcohol": object})
    lacking = {k: v for k, v in recs[1].items() if k != "alcohol"}
    numbered = {"dataframe_split": {"columns": [*cols, 7], "data": [[*r, 1] for r in data]}}
    int64 = _parquet(df.astype({"free sulfur dioxide": "int64"}))
    spec: list[tuple[Any, ...]] = [
        ("records-null", JSON, _json({"dataframe_records": [{**one, "alcohol": None}]}), "missing-values", 200, 400),
        ("records-nan-literal", JSON, b'{"dataframe_records": [%s, "alcohol": NaN}]}' % _json(one)[:-1],
         "missing-values", 200, 400),
        ("records-one-lacks-a-column", JSON, _json({"dataframe_records": [one, lacking]}), "missing-values", 200, 400),
        ("csv-empty-cell", CSV, _csv(text.assign(alcohol=""), index=False), "missing-values", 200, 400),
        ("csv-short-row", CSV, _csv(df, index=False) + b"7.4,0.7\n", "missing-values", 200, 400),
        ("parquet-null", PARQUET, _parquet(df.assign(alcohol=[None] + [9.5] * (len(df) - 1))),
         "missing-values", 200, 400),
        ("records-number-in-quotes", JSON, _json({"dataframe_records": [{**one, "alcohol": "9.5"}]}),
         "json-number-types", 200, 400),
        ("records-boolean", JSON, _json({"dataframe_records": [{**one, "alcohol": True}]}),
         "json-number-types", 200, 400),
        ("records-far-outside-range", JSON, _json({"dataframe_records": [{**one, "alcohol": 1e10}]}),
         "far-outside-range", 200, 400),
        ("split-number-column-name", JSON, _json(numbered), "non-string-columns", 200, 400),
        ("inputs-value-among-arrays", JSON, _json({"inputs": {**df.iloc[:2].to_dict(orient="list"), "alcohol": 9.5}}),
         "no-broadcast", 200, 400),
        ("parquet-int64", PARQUET, int64, "parquet-int64", 400, 200, "parquet-int32"),
        ("media-type-case", "Application/JSON", _json({"instances": recs}), "media-type-case", 415, 200,
         "instances-records"),
        ("no-content-type", None, _json({"instances": recs}), "no-content-type", 500, 200, "instances-records"),
        ("form-urlencoded", "application/x-www-form-urlencoded", _json({"instances": recs}), "415-body", 415, 415),
        ("text-plain", "text/plain", _json({"instances": recs}), "415-body", 415, 415),
        ("charset-latin-1", JSON + "; charset=latin-1", _json({"instances": recs}), "415-body", 415, 415),
        ("other-parameter", JSON + "; format=pandas-split", _json({"instances": recs}), "415-body", 415, 415),
    ]  # fmt: skip
    return [Case(*c) for c in spec]


# -- the side venv and MLflow's server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlflow_python() -> str:
    """The side venv's Python, which has mlflow and mlopsctl (editable): $MLOPS_MLFLOW_PYTHON."""
    given = os.environ.get("MLOPS_MLFLOW_PYTHON")
    if not given:
        pytest.skip(
            "MLOPS_MLFLOW_PYTHON is not set: `make mlflow` makes .venv-mlflow (mlflow and mlopsctl), then "
            "MLOPS_MLFLOW_PYTHON=.venv-mlflow/bin/python (make test sets it)"
        )
    python = Path(given).absolute()  # not resolve(): the venv's python is a symlink to the system one
    if not python.is_file():
        pytest.fail(f"MLOPS_MLFLOW_PYTHON={given}: no such file")
    return str(python)


def _env(python: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "MLFLOW_"))}
    return {**env, "PATH": str(Path(python).parent) + os.pathsep + env.get("PATH", "")}  # MLflow runs `uvicorn`


@contextlib.contextmanager
def mlflow_serve(python: str, model: Path, logs: Path) -> Iterator[str]:
    """`mlflow models serve -m MODEL --env-manager local` on 127.0.0.1 in its own process group (MLflow starts
    uvicorn as a child), ended as a whole; its URL once /ping answers."""
    port, log = free_port(), logs / "mlflow-serve.log"
    args = [str(Path(python).parent / "mlflow"), "models", "serve", "-m", str(model), "--env-manager", "local"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*args, "-h", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(python),
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"mlflow models serve exited with {proc.returncode}:\n{log.read_text()}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/ping", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"mlflow models serve not ready in 90 s:\n{log.read_text()}"
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture(scope="module")
def exported(wine_registry: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private copy of the wine store (the server captures into it) and wine@prod (the forest) exported as an
    MLflow model folder."""
    root = tmp_path_factory.mktemp("parity")
    store = root / "store"
    shutil.copytree(wine_registry["store_dir"], store)
    run_cli("--store", str(store), "export", "wine@prod", "--format", "mlflow", "--out", str(root / "mlflow"), cwd=root)
    return {"root": root, "store": store, "model": root / "mlflow"}


# -- the corpus -----------------------------------------------------------------------------------------------


def _send(url: str, case: Case) -> httpx.Response:
    headers = {} if case.content_type is None else {"content-type": case.content_type}
    return httpx.post(url + "/invocations", content=case.body, headers=headers, timeout=60)


def _mlflow_error(r: httpx.Response) -> dict[str, Any]:
    """The body of an error answer, checked to be MLflow's shape."""
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body, dict) and body.get("error_code") in MLFLOW_CODES, body
    assert isinstance(body.get("message"), str) and body["message"], body
    return body


def _same_predictions(theirs: list[Any], ours: list[Any]) -> None:
    assert len(theirs) == len(ours)
    if all(isinstance(v, (int, float)) for v in [*theirs, *ours]):
        np.testing.assert_allclose(np.asarray(ours, float), np.asarray(theirs, float), rtol=0, atol=1e-6)
    else:
        assert ours == theirs


def check_case(case: Case, mlflow: httpx.Response, ours: httpx.Response, like: httpx.Response | None) -> None:
    if case.diff is not None:
        assert (mlflow.status_code, ours.status_code) == (case.mlflow, case.ours), (mlflow.text[:300], ours.text)
        if ours.status_code != 200:
            _mlflow_error(ours)
        elif like is not None:
            _same_predictions(like.json()["predictions"], ours.json()["predictions"])
        if case.diff == "415-body":
            assert mlflow.headers["content-type"].startswith("text/plain"), mlflow.headers  # MLflow's own sentence
        return
    assert ours.status_code == mlflow.status_code, (mlflow.text[:300], ours.text[:300])
    if mlflow.status_code == 200:
        assert ours.headers["content-type"] == "application/json"
        _same_predictions(mlflow.json()["predictions"], ours.json()["predictions"])
    else:
        _mlflow_error(mlflow)
        body = _mlflow_error(ours)
        assert body["detail"] and body["request_id"] == ours.headers["x-request-id"], body


def test_the_corpus_answers_as_mlflow_does(
    exported: dict[str, Path], mlflow_python: str, start_server: Callable[..., Any], tmp_path: Path
) -> None:
    """Every case: the same status as `mlflow models serve`, the same predictions, MLflow's error body; the
    differences are the documented ones, each answered as the docs say."""
    cases = corpus(_frame()) + differences(_frame())
    assert len({c.id for c in cases}) == len(cases), "case ids are unique"
    ours = start_server(["--store", str(exported["store"]), "serve", "-m", "wine@prod"], wait=False)
    with mlflow_serve(mlflow_python, exported["model"], tmp_path) as mlflow_url:
        ours.wait_ready()
        answers = {c.id: (_send(mlflow_url, c), _send(ours.url, c)) for c in cases}
    failures = {}
    for case in cases:
        try:
            like = answers[case.like][0] if case.like else None
            check_case(case, *answers[case.id], like)
        except AssertionError as exc:
            failures[case.id] = str(exc)[:600]
    assert not failures, json.dumps(failures, indent=1)
    assert sum(1 for m, _ in answers.values() if m.status_code == 200) >= 30  # the corpus is mostly answers
    documented = DOCS.read_text()
    missing = sorted({c.diff for c in cases if c.diff and f"`{c.diff}`" not in documented})
    assert not missing, f"differences from MLflow that {DOCS.name} does not list: {missing}"


# -- MLflow's own client --------------------------------------------------------------------------------------

CLIENT = """
import json
import sys

import pandas as pd
from mlflow.pyfunc.scoring_server.client import ScoringServerClient

port, csv_path = sys.argv[1], sys.argv[2]
rows = pd.read_csv(csv_path)
client = ScoringServerClient("127.0.0.1", int(port))
client.wait_server_ready(timeout=30)
out = {
    "version": client.get_version(),
    "predict": client.invoke(rows).get_predictions(predictions_format="ndarray").tolist(),
    "with_params": client.invoke(rows, params={"threshold": 0.3}).get_predictions().iloc[:, 0].tolist(),
    "from_records": client.invoke(rows.to_dict(orient="records")).get_predictions().iloc[:, 0].tolist(),
}
try:
    client.invoke(rows.drop(columns=["alcohol"]))
except Exception as exc:
    out["refused"] = str(exc)
print(json.dumps(out))
"""


def test_mlflow_scoring_server_client_against_mlopsctl_serve(
    exported: dict[str, Path], mlflow_python: str, start_server: Callable[..., Any], tmp_path: Path
) -> None:
    """MLflow's ScoringServerClient, unmodified, from the side venv: wait_server_ready (/ping), invoke a DataFrame
    (with params, and as records), get_version; a refusal is MLflow's error body with 400."""
    from mlopsctl import __version__

    server = start_server(["--store", str(exported["store"]), "serve", "-m", "wine@prod"], wait=False)
    rows = _frame()
    rows.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "client.py").write_text(textwrap.dedent(CLIENT))
    port = server.url.rsplit(":", 1)[1]
    done = subprocess.run(
        [mlflow_python, str(tmp_path / "client.py"), port, str(tmp_path / "rows.csv")],
        cwd=tmp_path, env=_env(mlflow_python), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    expected = httpx.post(server.url + "/predict", json={"instances": rows.to_dict(orient="records")}).json()
    assert out["predict"] == out["with_params"] == out["from_records"] == expected["predictions"]
    assert out["version"] == __version__
    refused = out["refused"]
    assert "error code 400" in refused and '"error_code":"INVALID_PARAMETER_VALUE"' in refused, refused
    assert "missing 1 of the model's 11 features: 'alcohol'" in refused, refused
