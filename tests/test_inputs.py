"""InputSpec.columns: request rows validated against a signature, every problem named by its field."""

from __future__ import annotations

import math
from typing import Any

import pytest

from mlopsctl.errors import ValidationError
from mlopsctl.serving.inputs import InputSpec

SIGNATURE = {
    "inputs": [
        {"name": "fixed acidity", "kind": "numeric", "dtype": "float", "nullable": False},
        {"name": "alcohol", "kind": "numeric", "dtype": "float", "nullable": True},
        {"name": "colour", "kind": "categorical", "dtype": "string", "nullable": True},
        {"name": "note", "kind": "text", "dtype": "string", "nullable": False},
    ]
}
ROW: dict[str, Any] = {"fixed acidity": 7.4, "alcohol": 9, "colour": "red", "note": "dry"}


def problems(rows: list[Any], prefix: str = "features") -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        InputSpec(SIGNATURE).columns(rows, field_prefix=prefix)
    return list(info.value.problems)


def test_valid_rows_become_columns() -> None:
    spec = InputSpec(SIGNATURE)
    cols = spec.columns([ROW, {**ROW, "alcohol": None, "colour": None}], field_prefix="instances")
    assert cols["fixed acidity"] == [7.4, 7.4]
    assert cols["alcohol"][0] == 9.0 and type(cols["alcohol"][0]) is float
    assert math.isnan(cols["alcohol"][1])
    assert cols["colour"] == ["red", None]
    assert cols["note"] == ["dry", "dry"]


def test_snake_case_alias_is_accepted() -> None:
    row = {"fixed_acidity": 7.4, "alcohol": 9.5, "colour": "red", "note": "dry"}
    assert InputSpec(SIGNATURE).columns([row])["fixed acidity"] == [7.4]


def test_name_and_alias_together_is_refused_even_when_the_count_matches() -> None:
    """Eleven keys for eleven features can still be wrong: one given twice, one left out."""
    row = {"fixed acidity": 7.4, "fixed_acidity": 7.5, "colour": "red", "note": "dry"}
    assert problems([row]) == [
        ("features.fixed acidity", "given more than once (as its name and its snake_case)"),
        ("features.alcohol", "missing field"),
    ]


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"fixed acidity": None}, "features.fixed acidity", "a value is required (the training data had none missing)"),
        ({"fixed acidity": math.nan}, "features.fixed acidity", "a value is required"),
        ({"alcohol": math.inf}, "features.alcohol", "expected a finite number, got infinity"),
        ({"alcohol": -math.inf}, "features.alcohol", "expected a finite number, got infinity"),
        ({"alcohol": True}, "features.alcohol", "expected a number, got a boolean"),
        ({"alcohol": "9.5"}, "features.alcohol", "expected a number, got '9.5'"),
        ({"colour": 3}, "features.colour", "expected a string, got int"),
        ({"note": None}, "features.note", "a value is required"),
        ({"alcohool": 9.5}, "features.alcohool", "unknown field: did you mean 'alcohol'?"),
    ],
)
def test_each_bad_value_is_named(change: dict[str, Any], field: str, problem: str) -> None:
    found = problems([{**ROW, **change}])
    assert found[0][0] == field
    assert found[0][1].startswith(problem)


def test_rows_of_a_batch_are_numbered_and_every_problem_reported() -> None:
    rows = [ROW, "not a row", {**ROW, "alcohol": "x", "colour": 1}]
    assert problems(rows, "instances") == [
        ("instances[1]", "expected an object of features, got a string"),
        ("instances[2].alcohol", "expected a number, got 'x'"),
        ("instances[2].colour", "expected a string, got int"),
    ]


def test_a_single_nullable_nan_is_kept_as_missing() -> None:
    cols = InputSpec(SIGNATURE).columns([{**ROW, "alcohol": math.nan}])
    assert math.isnan(cols["alcohol"][0])
