"""The examples in docs/ are run: the config parses, the request bodies get the documented answers."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from mlopsctl.config import Config, parse_config
from mlopsctl.serving.app import ServeSettings, create_app

DOCS = Path(__file__).resolve().parents[1] / "docs"


def blocks(name: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", (DOCS / name).read_text(), flags=re.S)


def _sections(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every table of the config, from the pydantic model: a section added without docs fails here."""
    out: set[str] = set()
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            out |= {prefix + name} | _sections(kind, prefix + name + ".")
    return out


def test_config_reference_parses_and_names_every_section() -> None:
    (example,) = blocks("config.md", "toml")
    cfg = parse_config(tomllib.loads(example))
    assert cfg.training.tune.trials == 20 and cfg.serving.runtime == "auto"
    documented = set(re.findall(r"^\[([a-z.]+)\]", example, flags=re.M))
    assert documented == _sections(Config) - {"monitoring"}  # [monitoring] has only sub-sections
    assert cfg.deploy.cpu == 0.25 and cfg.deploy.memory == 0.5
    assert cfg.experiments.guard.window == 300 and cfg.experiments.min_effect == 0.02
    assert cfg.monitoring.alerts.accuracy_min is None and cfg.monitoring.alerts.latency_for == 300


@pytest.mark.shared_data
def test_serving_examples(wine_store_copy: Path) -> None:
    found = blocks("serving.md", "json")  # the other protocols' blocks are tested beside them
    (request,) = [b for b in found if b.startswith('{"features"')]
    (error,) = [b for b in found if '"invalid_input"' in b]
    app = create_app(ServeSettings(store_uri=str(wine_store_copy), models=[("wine", "prod")]))
    with TestClient(app) as c:
        body = c.post("/predict", json=json.loads(request)).json()
        assert body["model"] == "wine" and body["prediction"] == 5 and body["variant"] == "prod"
        bad = json.loads(request)
        bad["features"]["alcohol"] = "high"
        del bad["features"]["pH"]
        assert c.post("/predict", json=bad).json()["detail"] == json.loads(error)["detail"]


def test_every_cli_command_is_documented() -> None:
    from mlopsctl.cli.main import app

    text = (DOCS / "cli.md").read_text()
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    names += [g.name or "" for g in app.registered_groups]
    assert names and all(f"`{n}" in text for n in names), names


@pytest.mark.slow
@pytest.mark.shared_data
def test_the_bring_your_own_model_notebook_runs(tmp_path: Path) -> None:
    """docs/examples/byo_lightgbm_adult.py: a LightGBM pipeline on adult, published with the Python API,
    promoted and served; the served answers are the model's own."""
    import subprocess
    import sys

    from tests.conftest import SHARED, free_port

    pytest.importorskip("lightgbm", reason="the [dev] extra installs lightgbm")
    adult = SHARED / "adult" / "adult.csv"
    if not adult.is_file():
        pytest.skip(f"needs {adult}")
    script = DOCS / "examples" / "byo_lightgbm_adult.py"
    out = subprocess.run(
        [
            sys.executable,
            str(script),
            "--data",
            str(adult),
            "--workdir",
            str(tmp_path / "adult"),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = {line.split(":", 1)[0]: line for line in out.stdout.splitlines()}
    assert "published adult v1: runtime onnx" in out.stdout
    import ast

    served = ast.literal_eval("(" + lines["served"].split(":", 1)[1].replace("] [", "], [") + ")")
    yours = ast.literal_eval("(" + lines["yours"].split(":", 1)[1].replace("] [", "], [") + ")")
    assert served[0] == yours[0]  # the labels
    assert served[1] == pytest.approx(yours[1], abs=2e-4)  # probabilities, as printed to 4 places
    assert (tmp_path / "adult" / ".mlops" / "models" / "adult" / "versions" / "1" / "manifest.json").is_file()


@pytest.mark.shared_data
def test_the_same_row_through_each_protocol(wine_store_copy: Path) -> None:
    """docs/serving.md's side-by-side: the curl lines for /predict and /invocations answer the same."""
    text = (DOCS / "serving.md").read_text()
    (block,) = [b for b in blocks("serving.md", "sh") if "/invocations" in b and "tritonclient" in b]
    native = json.loads(block.split("-d '", 1)[1].split("'", 1)[0])
    csv = block.split("--data-binary $'", 1)[1].split("'", 1)[0].encode().decode("unicode_escape")
    assert "Three protocols, side by side" in text
    app = create_app(ServeSettings(store_uri=str(wine_store_copy), models=[("wine", "prod")]))
    with TestClient(app) as c:
        one = c.post("/predict", json=native).json()["prediction"]
        mlflow = c.post("/invocations", content=csv, headers={"content-type": "text/csv"}).json()["predictions"]
        assert mlflow == [one] == [5]
