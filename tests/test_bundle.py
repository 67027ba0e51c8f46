"""The model version's home: the reference grammar, the typed signature, and a version opened from the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlopsctl.bundle.ref import ModelRef, alias_problem
from mlopsctl.bundle.signature import Feature, Signature
from mlopsctl.errors import IntegrityError, NotFound, ValidationError
from tests.conftest import run_cli, wine_rows


@pytest.mark.parametrize(
    ("text", "alias", "version"),
    [("wine", None, None), ("wine@latest", None, None), ("wine@3", None, 3), ("wine@prod", "prod", None)],
    ids=["bare", "latest", "version", "alias"],
)
def test_one_grammar_for_every_reference(text: str, alias: str | None, version: int | None) -> None:
    ref = ModelRef.parse(text)
    assert (ref.name, ref.alias, ref.version) == ("wine", alias, version)
    assert ModelRef.parse(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("wine@v3", "wine@v3 is ambiguous: a version is a plain number, so write wine@3"),
        ("wine@", "nothing after '@'"),
        ("wine@Prod", "aliases are lower-case words"),
        ("wine@0", "versions start at 1"),
        ("bad name@prod", "model name 'bad name'"),
    ],
)
def test_a_reference_that_could_mean_two_things_is_refused_with_the_fix(text: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says.replace("(", r"\(")):
        ModelRef.parse(text)


def test_an_alias_can_never_look_like_a_version() -> None:
    for name in ("3", "v3", "V12", "latest"):
        assert alias_problem(name)
    assert alias_problem("prod") is None and alias_problem("canary-eu") is None


def test_the_signature_is_typed_frozen_and_round_trips() -> None:
    sig = Signature(
        (Feature("alcohol", "numeric", "float", False, 8.4, 14.9), Feature("colour", "categorical", "string", True)),
        "quality",
        "classification",
        (5, 6, 7),
    )
    back = Signature.from_json(sig.to_json())
    assert back == sig and back.names == ["alcohol", "colour"] and back.kinds("numeric") == ["alcohol"]
    with pytest.raises(AttributeError):
        sig.target = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="repeated: alcohol"):
        Signature((Feature("alcohol", "numeric"), Feature("alcohol", "numeric")), "y", "regression")
    with pytest.raises(ValidationError, match="task must be one of"):
        Signature((Feature("a", "numeric"),), "y", "clustering")  # type: ignore[arg-type]
    with pytest.raises(IntegrityError, match=r"signature\.json: not a signature"):
        Signature.from_json(b'{"inputs": [{"name": "a", "kind": "image"}]}')


@pytest.mark.shared_data
def test_two_signatures_differ_in_columns_and_types_named_one_sentence_each() -> None:
    """What `ab start`, `shadow add` and `promote` say when a candidate takes other inputs than the control."""
    v1 = Signature(
        (Feature("alcohol", "numeric"), Feature("colour", "categorical", "string"), Feature("aged", "numeric")),
        "quality",
        "classification",
    )
    v3 = Signature(
        (
            Feature("lot", "numeric", "int"),
            Feature("colour", "categorical", "string"),
            Feature("alcohol", "categorical", "string"),
        ),
        "quality",
        "classification",
    )
    assert v3.differences(v1, name="v3", control_name="v1") == [
        "candidate v3 adds column 'lot'",
        "candidate v3 drops column 'aged' that v1 takes",
        "'alcohol' is a category in v3, a number in v1",
    ]
    text = Signature((Feature("alcohol", "text", "string"),), "quality", "regression")
    one = Signature((Feature("alcohol", "numeric", "int"),), "quality", "classification")
    assert text.differences(one, name="v3", control_name="v1") == [
        "'alcohol' is text in v3, a number in v1",
        "v3 is a regression model, v1 a classification model",
    ]
    # order, ranges and int vs float do not change what a request holds
    same = Signature((Feature("aged", "numeric", "int", min=0), *reversed(v1.inputs[:2])), "quality", "classification")
    assert same.differences(v1) == [] and v1.differences(v1) == []


def test_a_version_opened_from_the_store(wine_registry: dict[str, Any]) -> None:
    from mlopsctl.bundle.version import open_version
    from mlopsctl.store import open_store

    store = open_store(str(wine_registry["store_dir"]))
    v1 = open_version(store, "wine@prod")
    assert (v1.number, v1.task, v1.runtime, v1.primary_metric) == (1, "classification", "onnx", "f1_macro")
    assert v1.classes == [3, 4, 5, 6, 7, 8] and len(v1.signature.names) == 11
    assert sorted(v1.verify()) == sorted(v1.manifest["files"])
    runner = v1.runner()
    rows = wine_rows(3)
    labels, proba = runner.predict({n: [r[n] for r in rows] for n in v1.signature.names})
    assert len(labels) == 3 and proba.shape == (3, 6)
    holdout = v1.holdout()
    assert holdout is not None and v1.score(holdout)["f1_macro"] == pytest.approx(v1.metrics["f1_macro"])
    assert v1.score(holdout.drop(columns=["quality"])) is None  # no target: nothing to score
    assert v1.check_loads()["runtime"] == "onnx"
    assert open_version(store, "wine").number == wine_registry["v2"]
    with pytest.raises(NotFound, match="wine@9"):
        open_version(store, "wine@9")
    with pytest.raises(ValidationError, match="write wine@2"):
        open_version(store, "wine@v2")


@pytest.mark.shared_data
def test_serve_takes_the_same_grammar(wine_store_copy: Path, tmp_path: Path) -> None:
    """`serve --model wine@v3` used to take v3 as an alias that never resolves; now it refuses at start in
    one line, and `wine@2` serves version 2."""
    from fastapi.testclient import TestClient

    from mlopsctl.serving.app import ServeSettings, create_app

    out = run_cli("--store", str(wine_store_copy), "serve", "--model", "wine@v2", cwd=tmp_path, check=False)
    assert out.returncode == 1 and out.stderr.strip().splitlines() == [
        "error: wine@v2 is ambiguous: a version is a plain number, so write wine@2 for version 2 "
        "(an alias cannot be named 'v2')"
    ]
    with pytest.raises(ValidationError, match="write wine@2"):
        create_app(ServeSettings(store_uri=str(wine_store_copy), models=[("wine", "v2")]))
    app = create_app(ServeSettings(store_uri=str(wine_store_copy), models=[("wine", "2")], capture=None))
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 200
        body = client.post("/predict", json={"features": wine_rows(1)[0]}).json()
        assert body["model_version"] == 2 and body["variant"] == "v2"
    assert (
        json.loads(run_cli("--store", str(wine_store_copy), "models", "show", "wine@2", "--json", cwd=tmp_path).stdout)[
            "version"
        ]
        == 2
    )
