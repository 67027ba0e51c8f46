"""MLflow models in and out, against the real `mlflow` (a side venv: `make mlflow`, MLOPS_MLFLOW_PYTHON).

In: a scikit-learn Pipeline, an XGBoost and two LightGBM models (the scikit-learn API, saved as skops, and a
Booster, saved as LightGBM's model text) are trained by the real libraries on the shared data and saved by
``mlflow.<flavour>.save_model`` / ``log_model`` in the side venv; `mlopsctl import` makes each a version
from its folder, a ``runs:/`` or a ``models:/`` URI, and the version predicts as the library model did.
A pickled Pipeline is refused without --unsafe-pickle and imported with it.

Out: `mlopsctl export NAME@prod --format mlflow` of a Pipeline version and an XGBoost one is served by a real
``mlflow models serve`` and read by ``mlflow.pyfunc.load_model``, both giving mlopsctl's own predictions.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import HOUSING, WINE_RED, free_port, needs_shared, run_cli

pytestmark = [needs_shared, pytest.mark.shared_data, pytest.mark.slow]
pytest.importorskip("xgboost", reason="the [dev] extra installs xgboost-cpu")
pytest.importorskip("lightgbm", reason="the [dev] extra installs lightgbm")

ROWS = 40  # rows the predictions are compared on


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
    probe = _side(str(python), "-c", "import mlflow, mlopsctl; print(mlflow.__version__)", cwd=Path.cwd())
    assert probe.returncode == 0, f"{python} lacks mlflow or mlopsctl (`make mlflow`): {probe.stderr[-500:]}"
    return str(python)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "MLFLOW_"))}
    return {**env, "COLUMNS": "200", **(extra or {})}


def _side(python: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, *args], cwd=cwd, env=_env(env), capture_output=True, text=True, timeout=240, check=False
    )


def _side_script(python: str, code: str, folder: Path, env: dict[str, str] | None = None) -> Any:
    """Run ``code`` with the side venv's Python in ``folder``; it writes its answer to out.json."""
    script = folder / "script.py"
    script.write_text(textwrap.dedent(code))
    done = _side(python, str(script), cwd=folder, env=env)
    assert done.returncode == 0, f"{script} failed:\n{done.stderr[-4000:]}"
    return json.loads((folder / "out.json").read_text())


def _side_cli(
    python: str, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`mlopsctl ARGS` run by the side venv, where mlflow is importable (runs:/ and models:/ URIs)."""
    return _side(python, "-m", "mlopsctl.cli.main", *args, cwd=cwd, env=env)


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


# -- in -------------------------------------------------------------------------------------------------

SAVE_MODELS = """
import json
import lightgbm as lgb
import mlflow
import pandas as pd
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBRegressor

wine = pd.read_csv({wine!r}, sep=";")
wine_y = wine.pop("quality")
housing = pd.read_csv({housing!r}).drop(columns=["ocean_proximity"])
housing_y = housing.pop("median_house_value")
wine.iloc[1000:].assign(quality=wine_y.iloc[1000:]).to_csv("wine-holdout.csv", index=False)
housing.iloc[6000:8000].assign(median_house_value=housing_y.iloc[6000:8000]).to_csv("housing-holdout.csv", index=False)
wine_rows, housing_rows = wine.iloc[1000:1000 + {rows}], housing.iloc[6000:6000 + {rows}]

pipeline = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(max_iter=2000))])
pipeline.fit(wine.iloc[:1000], wine_y.iloc[:1000])
xgb = XGBRegressor(n_estimators=40, max_depth=5, n_jobs=1).fit(housing.iloc[:6000], housing_y.iloc[:6000])
lgbm = lgb.LGBMClassifier(n_estimators=40, verbose=-1, n_jobs=1).fit(wine.iloc[:1000], wine_y.iloc[:1000])
booster = lgb.train(
    {{"objective": "regression", "verbose": -1, "num_threads": 1}},
    lgb.Dataset(housing.iloc[:6000], housing_y.iloc[:6000]),
    num_boost_round=40,
)
requirements = ["scikit-learn", "skops", "xgboost", "lightgbm"]  # given: MLflow would infer them in a subprocess

mlflow.sklearn.save_model(pipeline, "pipeline", input_example=wine.head(3), pip_requirements=requirements)
mlflow.sklearn.save_model(pipeline, "pipeline-pickle", serialization_format="pickle", pip_requirements=requirements)
mlflow.lightgbm.save_model(booster, "booster", pip_requirements=requirements)
with mlflow.start_run() as run:
    mlflow.xgboost.log_model(xgb, name="model", pip_requirements=requirements)
    mlflow.lightgbm.log_model(lgbm, name="lgbm", registered_model_name="wine-lgbm", pip_requirements=requirements)
MlflowClient().set_registered_model_alias("wine-lgbm", "champion", 1)

layout = {{
    d: open(f"{{d}}/MLmodel").read() for d in ("pipeline", "pipeline-pickle", "booster")
}}
json.dump(
    {{
        "run_id": run.info.run_id,
        "mlflow": mlflow.__version__,
        "layout": layout,
        "pipeline": {{"predict": pipeline.predict(wine_rows).tolist(),
                      "proba": pipeline.predict_proba(wine_rows).tolist()}},
        "lgbm": {{"predict": lgbm.predict(wine_rows).tolist(), "proba": lgbm.predict_proba(wine_rows).tolist()}},
        "xgb": {{"predict": xgb.predict(housing_rows).tolist()}},
        "booster": {{"predict": booster.predict(housing_rows).tolist()}},
    }},
    open("out.json", "w"),
)
"""


@pytest.fixture(scope="module")
def saved(mlflow_python: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The models saved by MLflow in the side venv (folders, a run and a registered model in a sqlite
    tracking store), the holdout files and the libraries' own predictions."""
    folder = tmp_path_factory.mktemp("mlflow-saved")
    tracking = {"MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
    code = SAVE_MODELS.format(wine=str(WINE_RED), housing=str(HOUSING), rows=ROWS)
    out = _side_script(mlflow_python, code, folder, env=tracking)
    return {"folder": folder, "env": tracking, "store": folder / "store", **out}


def _wine_rows() -> pd.DataFrame:
    return pd.read_csv(WINE_RED, sep=";").drop(columns=["quality"]).iloc[1000 : 1000 + ROWS]


def _housing_rows() -> pd.DataFrame:
    return pd.read_csv(HOUSING).drop(columns=["ocean_proximity", "median_house_value"]).iloc[6000 : 6000 + ROWS]


def _check_predictions(store: Path, name: str, rows: pd.DataFrame, expected: dict[str, Any]) -> Any:
    """The version's model (as stored: skops, through the allowlist) predicts as the library's to 1e-6; the
    served runtime (ONNX where the export passed its check) to the export's float32 tolerance."""
    import mlopsctl

    stored = mlopsctl.load(f"{name}@1", store=str(store), runtime="sklearn")
    served = mlopsctl.load(f"{name}@1", store=str(store))
    if "proba" in expected:
        np.testing.assert_allclose(stored.predict_proba(rows), expected["proba"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(served.predict_proba(rows), expected["proba"], rtol=0, atol=1e-4)
        assert stored.predict(rows) == expected["predict"]
    else:
        np.testing.assert_allclose(stored.predict(rows), expected["predict"], rtol=1e-6)
        np.testing.assert_allclose(served.predict(rows), expected["predict"], rtol=1e-5)
    return stored


def test_mlflow_layout_is_the_one_read_and_written(saved: dict[str, Any]) -> None:
    """The facts the module relies on, as this MLflow writes them: skops by default, pickle when asked, a Booster
    as LightGBM's text."""
    import yaml

    from mlopsctl.bundle.mlflow_format import MLFLOW_LAYOUT

    assert saved["mlflow"] == MLFLOW_LAYOUT
    pipeline, pickled, booster = (
        yaml.safe_load(saved["layout"][d]) for d in ("pipeline", "pipeline-pickle", "booster")
    )
    assert pipeline["flavors"]["sklearn"]["serialization_format"] == "skops"
    assert pipeline["flavors"]["sklearn"]["pickled_model"] == "model.skops"
    assert pickled["flavors"]["sklearn"]["serialization_format"] == "pickle"
    lightgbm = booster["flavors"]["lightgbm"]
    assert (lightgbm["data"], lightgbm["model_class"]) == ("model.lgb", "lightgbm.basic.Booster")


def test_import_a_folder_without_mlflow_installed(saved: dict[str, Any], tmp_path: Path) -> None:
    """The Pipeline's folder (skops) and the Booster's (model text) are imported by the main venv, which has
    no mlflow: a local folder needs none. The versions predict as the library models did."""
    store, folder = saved["store"], saved["folder"]
    out = json.loads(
        run_cli(
            "--store", str(store), "import", str(folder / "pipeline"), "--data", str(folder / "wine-holdout.csv"),
            "--target", "quality", "--name", "wine-pipeline", "--json", cwd=tmp_path,
        ).stdout
    )  # fmt: skip
    assert out["version"] == 1 and out["flavor"] == "sklearn" and out["task"] == "classification"
    assert out["mlflow"]["serialization_format"] == "skops" and not out["mlflow"]["unsafe_pickle"]
    assert out["mlflow"]["mlflow_flavors"] == ["python_function", "sklearn"] and out["runtime"] == "onnx"
    _check_predictions(store, "wine-pipeline", _wine_rows(), saved["pipeline"])

    done = run_cli(
        "--store", str(store), "import", f"file://{folder / 'booster'}", "--data", str(folder / "housing-holdout.csv"),
        "--target", "median_house_value", "--name", "housing-booster", cwd=tmp_path,
    )  # fmt: skip
    assert "published housing-booster v1" in done.stdout and "lightgbm.basic.Booster" in done.stdout
    model = _check_predictions(store, "housing-booster", _housing_rows(), saved["booster"])
    assert type(model.version.estimator()).__name__ == "LGBMRegressor"
    shown = json.loads(
        run_cli("--store", str(store), "models", "show", "housing-booster@1", "--json", cwd=tmp_path).stdout
    )
    assert "model.skops" in shown["files"]
    assert not any(f.endswith((".pkl", ".lgb", ".ubj")) for f in shown["files"])


def test_import_runs_and_models_uris(saved: dict[str, Any], mlflow_python: str, tmp_path: Path) -> None:
    """runs:/ (an XGBRegressor) and models:/NAME@ALIAS (an LGBMClassifier saved as skops) are downloaded with
    MLflow's client in the side venv, and carry the MLflow run in their lineage; without mlflow, one line."""
    store, folder, env = saved["store"], saved["folder"], saved["env"]
    run_uri = f"runs:/{saved['run_id']}/model"
    got = _side_cli(
        mlflow_python, "--store", str(store), "import", run_uri, "--data", str(folder / "housing-holdout.csv"),
        "--target", "median_house_value", "--name", "housing-xgb", "--json", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    out = json.loads(got.stdout)
    assert out["flavor"] == "xgboost" and out["mlflow"]["mlflow_run_id"] == saved["run_id"]
    assert out["mlflow"]["model_class"] == "xgboost.sklearn.XGBRegressor" and out["mlflow"]["mlflow_uri"] == run_uri
    _check_predictions(store, "housing-xgb", _housing_rows(), saved["xgb"])

    got = _side_cli(
        mlflow_python, "--store", str(store), "import", "models:/wine-lgbm@champion", "--data",
        str(folder / "wine-holdout.csv"), "--target", "quality", "--name", "wine-lgbm", "--json", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    out = json.loads(got.stdout)
    assert out["flavor"] == "lightgbm" and out["mlflow"]["serialization_format"] == "skops"
    assert out["mlflow"]["mlflow_run_id"] == saved["run_id"]
    _check_predictions(store, "wine-lgbm", _wine_rows(), saved["lgbm"])
    run = json.loads(run_cli("--store", str(store), "models", "show", "wine-lgbm", "--json", cwd=tmp_path).stdout)
    assert run["run_id"] and run["flavor"] == "lightgbm"

    no_mlflow = subprocess.run([sys.executable, "-c", "import mlflow"], capture_output=True, check=False)
    if no_mlflow.returncode != 0:  # the main venv has no mlflow: a URI needs it, a folder does not
        refused = run_cli(
            "--store", str(store), "import", run_uri, "--name", "x", "--data", "x.csv", cwd=tmp_path, check=False
        )
        line = _one_line_error(refused)
        assert f"{run_uri} needs the mlflow package to download it: pip install mlflow-skinny" in line


def test_a_pickle_is_imported_only_with_unsafe_pickle(saved: dict[str, Any], tmp_path: Path) -> None:
    store, folder = saved["store"], saved["folder"]
    args = [
        "--store",
        str(store),
        "import",
        str(folder / "pipeline-pickle"),
        "--data",
        str(folder / "wine-holdout.csv"),
    ]
    args += ["--target", "quality", "--name", "wine-pickled"]
    line = _one_line_error(run_cli(*args, cwd=tmp_path, check=False))
    assert "pipeline-pickle/model.pkl" in line and "runs code when it is opened" in line and "--unsafe-pickle" in line
    assert not (store / "models" / "wine-pickled").exists()

    out = json.loads(run_cli(*args, "--unsafe-pickle", "--json", cwd=tmp_path).stdout)
    assert out["version"] == 1 and out["mlflow"]["unsafe_pickle"] and out["mlflow"]["serialization_format"] == "pickle"
    stored = store / "models" / "wine-pickled" / "versions" / "1"
    assert "model.skops" in {p.name for p in stored.iterdir()} and not list(stored.glob("*.pkl"))
    _check_predictions(store, "wine-pickled", _wine_rows(), saved["pipeline"])


def test_import_refusals_are_one_line(saved: dict[str, Any], tmp_path: Path) -> None:
    store, folder = saved["store"], saved["folder"]
    base = ["--store", str(store), "import"]
    no_rows = _one_line_error(run_cli(*base, str(folder / "pipeline"), "--name", "x", cwd=tmp_path, check=False))
    assert "import needs --data ROWS" in no_rows and "input example's 3 row(s) of fixed acidity" in no_rows
    wrong = tmp_path / "wrong.csv"
    pd.read_csv(folder / "wine-holdout.csv").drop(columns=["alcohol"]).to_csv(wrong, index=False)
    lacking = _one_line_error(
        run_cli(*base, str(folder / "pipeline"), "--data", str(wrong), "--name", "x", cwd=tmp_path, check=False)
    )
    assert "column 'alcohol'" in lacking and "lacks" in lacking
    nothing = _one_line_error(
        run_cli(*base, str(tmp_path), "--data", str(wrong), "--name", "x", cwd=tmp_path, check=False)
    )
    assert "has no MLmodel file" in nothing
    escape = tmp_path / "escape"
    escape.mkdir()
    (escape / "MLmodel").write_text("flavors:\n  sklearn:\n    pickled_model: ../../etc/passwd\n")
    outside = _one_line_error(
        run_cli(*base, str(escape), "--data", str(wrong), "--name", "x", cwd=tmp_path, check=False)
    )
    assert "MLmodel: flavors.sklearn.pickled_model: '../../etc/passwd' points outside the model's folder" in outside
    (escape / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: my_code\n")
    custom = _one_line_error(
        run_cli(*base, str(escape), "--data", str(wrong), "--name", "x", cwd=tmp_path, check=False)
    )
    assert "flavors: python_function: mlopsctl imports the xgboost, lightgbm, sklearn flavours" in custom


# -- out ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def mlflow_servers(python: str, models: dict[str, Path], logs: Path) -> Iterator[dict[str, str]]:
    """`mlflow models serve -m MODEL --env-manager local` on 127.0.0.1 for each model, started together: their
    URLs once /ping answers. Each runs in its own process group (MLflow starts uvicorn as a child), ended as a
    whole in the finally."""
    bin_dir = str(Path(python).parent)  # MLflow starts `uvicorn` by name, as from an activated venv
    env = _env({"PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")})
    procs: dict[str, tuple[subprocess.Popen[bytes], str, Path]] = {}
    try:
        for name, model in models.items():
            port, log = free_port(), logs / f"mlflow-serve-{name}.log"
            args = [f"{bin_dir}/mlflow", "models", "serve", "-m", str(model), "--env-manager", "local"]
            with log.open("w") as out:
                proc = subprocess.Popen(
                    [*args, "-h", "127.0.0.1", "-p", str(port)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            procs[name] = (proc, f"http://127.0.0.1:{port}", log)
        deadline = time.monotonic() + 90
        for proc, url, log in procs.values():
            while True:
                assert proc.poll() is None, f"mlflow models serve exited with {proc.returncode}:\n{log.read_text()}"
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url + "/ping", timeout=2).status_code == 200:
                        break
                assert time.monotonic() < deadline, f"mlflow models serve not ready in 90 s:\n{log.read_text()}"
                time.sleep(0.2)
        yield {name: url for name, (_, url, _) in procs.items()}
    finally:
        for proc, _, _ in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, _, _ in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


PYFUNC = """
import json
import mlflow.pyfunc
import pandas as pd

out = {{}}
for name, rows in {cases!r}.items():
    model = mlflow.pyfunc.load_model(name)
    split = json.loads(rows)
    frame = pd.DataFrame(split["data"], columns=split["columns"])
    out[name] = {{"predict": pd.Series(model.predict(frame)).tolist(), "flavors": list(model.metadata.flavors)}}
json.dump(out, open("out.json", "w"))
"""


def test_export_is_served_by_mlflow(mlflow_python: str, tmp_path: Path) -> None:
    """A Pipeline version and a bare XGBoost one, exported and served by `mlflow models serve`: /invocations
    and mlflow.pyfunc answer what mlopsctl predicts for the same rows."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder
    from xgboost import XGBRegressor

    import mlopsctl
    from mlopsctl import registry
    from mlopsctl.store import open_store

    store = tmp_path / "store"
    wine = pd.read_csv(WINE_RED, sep=";")
    wine_y = wine.pop("quality")
    forest = Pipeline(
        [("impute", SimpleImputer()), ("model", RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0))]
    ).fit(wine.iloc[:1000], wine_y.iloc[:1000])
    housing = pd.read_csv(HOUSING)
    housing_y = housing.pop("median_house_value")
    numeric = housing.drop(columns=["ocean_proximity"])
    xgb = XGBRegressor(n_estimators=40, max_depth=5, n_jobs=1).fit(numeric.iloc[:6000], housing_y.iloc[:6000])
    onehot = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["ocean_proximity"])], remainder="passthrough"
    )
    categorical = Pipeline([("pre", onehot), ("model", XGBRegressor(n_estimators=20, n_jobs=1))])
    categorical.fit(housing.iloc[:6000], housing_y.iloc[:6000])
    cases = {
        "wine": (forest, wine.iloc[1000:], wine_y.iloc[1000:]),
        "housing": (xgb, numeric.iloc[6000:8000], housing_y.iloc[6000:8000]),
        "housing-cat": (categorical, housing.iloc[6000:8000], housing_y.iloc[6000:8000]),
    }
    opened = open_store(str(store))
    for name, (model, X, y) in cases.items():
        v = mlopsctl.publish(model, name=name, X=X, y=y, store=str(store))
        registry.promote(opened, name, v.number, "prod", reason="test")

    out = tmp_path / "exported"
    written = {}
    for name in cases:
        got = run_cli("--store", str(store), "export", f"{name}@prod", "--format", "mlflow", "--out", str(out / name),
                      "--json", cwd=tmp_path)  # fmt: skip
        written[name] = json.loads(got.stdout)
    assert written["wine"]["flavor"] == "sklearn" and written["housing"]["flavor"] == "xgboost"
    assert written["housing-cat"]["flavor"] == "sklearn"
    assert not list(out.rglob("*.pkl")), "nothing exported is a pickle"
    requirements = (out / "housing" / "requirements.txt").read_text().splitlines()
    assert requirements[0].startswith("mlflow==") and any(r.startswith("xgboost") for r in requirements)
    assert "python: " in (out / "wine" / "python_env.yaml").read_text()

    rows = {
        "wine": wine.iloc[1000 : 1000 + ROWS],
        "housing": numeric.iloc[6000 : 6000 + ROWS],
        "housing-cat": housing.iloc[6000 : 6000 + ROWS],
    }
    ours = {name: mlopsctl.load(f"{name}@prod", store=str(store)) for name in cases}
    exact = {name: mlopsctl.load(f"{name}@prod", store=str(store), runtime="sklearn") for name in cases}
    split = {name: r.to_json(orient="split", index=False) for name, r in rows.items()}

    pyfunc = _side_script(mlflow_python, PYFUNC.format(cases={str(out / n): s for n, s in split.items()}), tmp_path)
    with mlflow_servers(mlflow_python, {name: out / name for name in cases}, tmp_path) as urls:
        served = {name: _invocations(urls[name], json.loads(split[name])) for name in cases}
    for name in cases:
        answer = pyfunc[str(out / name)]["predict"]
        if name == "wine":
            assert served[name] == answer == ours[name].predict(rows[name]) == exact[name].predict(rows[name])
        else:
            np.testing.assert_allclose(served[name], exact[name].predict(rows[name]), rtol=1e-6)
            np.testing.assert_allclose(answer, exact[name].predict(rows[name]), rtol=1e-6)
            np.testing.assert_allclose(served[name], ours[name].predict(rows[name]), rtol=1e-5)

    again = run_cli("--store", str(store), "export", "wine@prod", "--format", "mlflow", "--out", str(out / "wine"),
                    cwd=tmp_path, check=False)  # fmt: skip
    assert "exists and is not empty" in _one_line_error(again)
    other = run_cli("--store", str(store), "export", "wine@prod", "--format", "onnx", "--out", str(tmp_path / "o"),
                    cwd=tmp_path, check=False)  # fmt: skip
    assert "--format must be one of mlflow; got 'onnx'" in _one_line_error(other)


def _invocations(url: str, split: dict[str, Any]) -> list[Any]:
    """MLflow's scoring protocol: a dataframe_split body, {"predictions": [...]} back."""
    answer = httpx.post(url + "/invocations", json={"dataframe_split": split}, timeout=60)
    assert answer.status_code == 200, answer.text
    predictions: list[Any] = answer.json()["predictions"]
    return predictions
