"""Tests for mlopsctl.data: reading, schema inference, validation and dataset snapshots.

Real-data tests read ../shared/data (marked ``shared_data``, skipped when absent);
the rest build small frames and files in tmp_path.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlopsctl.data import (
    DatasetSnapshot,
    Schema,
    dataset_hash,
    infer_schema,
    ingest,
    list_snapshots,
    load_snapshot,
    profile,
    read_records,
    read_table,
    validate,
)
from mlopsctl.errors import Conflict, DataError, IntegrityError, NotFound
from mlopsctl.store.local import LocalStore

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WINE_RED = DATA / "wine-quality" / "winequality-red.csv"
HOUSING = DATA / "california-housing" / "housing.csv"
ADULT = DATA / "adult" / "adult.csv"
SENTIMENT = [DATA / "sentiment" / f for f in ("amazon_cells_labelled.txt", "imdb_labelled.txt", "yelp_labelled.txt")]


def _need_data() -> None:
    if not DATA.is_dir():
        pytest.skip(f"shared datasets not found at {DATA} (they live next to the repo in shared/data)")


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    _need_data()
    return read_table(WINE_RED)


@pytest.fixture(scope="module")
def housing() -> pd.DataFrame:
    _need_data()
    return read_table(HOUSING)


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    _need_data()
    return read_table(ADULT)


@pytest.fixture(scope="module")
def wine_schema(wine: pd.DataFrame) -> Schema:
    return infer_schema(wine, "quality")


@pytest.fixture(scope="module")
def housing_schema(housing: pd.DataFrame) -> Schema:
    return infer_schema(housing, "median_house_value")


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def _write_jsonl(df: pd.DataFrame, path: Path) -> Path:
    # json.dumps writes floats with repr, so values round-trip exactly (pandas' to_json rounds).
    lines = [json.dumps({k: _py(v) for k, v in rec.items()}) for rec in df.to_dict("records")]
    return _write(path, "\n".join(lines) + "\n")


def _py(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    return v.item() if hasattr(v, "item") else v


def _only(problems: list[Any], check: str, column: str) -> Any:
    found = [p for p in problems if p.check == check and p.column == column]
    assert len(found) == 1, f"expected one {check} problem on {column!r}, got {problems}"
    return found[0]


# -- reading the real datasets ---------------------------------------------------------------


@pytest.mark.shared_data
def test_wine_red_semicolons_and_quoted_header(wine: pd.DataFrame) -> None:
    assert wine.shape == (1599, 12)
    assert list(wine.columns)[:3] == ["fixed acidity", "volatile acidity", "citric acid"]
    assert wine.columns[-1] == "quality"
    assert all(pd.api.types.is_numeric_dtype(t) for t in wine.dtypes)
    assert wine["quality"].dtype == np.int64
    assert wine.isna().sum().sum() == 0


@pytest.mark.shared_data
@pytest.mark.parametrize("path", SENTIMENT, ids=lambda p: p.stem)
def test_sentiment_reads_every_line_as_text_and_label(path: Path) -> None:
    _need_data()
    df = read_table(path, names=["text", "label"])
    assert df.shape == (1000, 2)
    assert list(df.columns) == ["text", "label"]
    assert set(df["label"]) == {0, 1}
    assert (df["label"] == 1).sum() == 500
    assert df["text"].notna().all()
    assert not df["text"].str.contains("\t").any()  # no two lines merged by a stray quote
    plain = read_table(path)  # no header detected: positional names
    assert list(plain.columns) == ["col_0", "col_1"]
    assert len(plain) == 1000


@pytest.mark.shared_data
def test_housing_missing_bedrooms_and_categorical_proximity(housing: pd.DataFrame) -> None:
    assert housing.shape == (20640, 10)
    assert int(housing["total_bedrooms"].isna().sum()) == 207
    assert housing.isna().sum().sum() == 207
    assert set(housing["ocean_proximity"]) == {"<1H OCEAN", "INLAND", "ISLAND", "NEAR BAY", "NEAR OCEAN"}


@pytest.mark.shared_data
def test_adult_question_marks_are_missing_and_padding_is_stripped(adult: pd.DataFrame) -> None:
    assert adult.shape == (32561, 15)
    assert adult.columns[0] == "age" and adult.columns[-1] == "Salary"
    assert not any(c != c.strip() for c in adult.columns)
    assert int(adult["workclass"].isna().sum()) == 1836
    assert int(adult["occupation"].isna().sum()) == 1843
    assert int(adult["native-country"].isna().sum()) == 583
    for col in adult.select_dtypes(exclude="number").columns:
        values = adult[col].dropna()
        assert not values.str.startswith(" ").any(), col
        assert not values.str.endswith(" ").any(), col
        assert not (values == "?").any(), col
    assert adult["age"].dtype == np.int64
    assert set(adult["Salary"]) == {"<=50K", ">50K"}


# -- reading: formats, detection and errors --------------------------------------------------


def test_header_detection_on_text_only_files(tmp_path: Path) -> None:
    with_header = read_table(_write(tmp_path / "a.csv", "color,size\nred,big\nblue,small\n"))
    assert list(with_header.columns) == ["color", "size"] and len(with_header) == 2
    without = read_table(_write(tmp_path / "b.csv", "red,big\nblue,small\nred,big\n"))
    assert list(without.columns) == ["col_0", "col_1"] and len(without) == 3


def test_explicit_sep_header_and_names(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.txt", "x|y\n1|2\n3|4\n")
    assert read_table(path).to_dict("list") == {"x": [1, 3], "y": [2, 4]}
    assert list(read_table(path, sep="|", header=False).columns) == ["col_0", "col_1"]
    named = read_table(path, header=True, names=["a", "b"])
    assert named.to_dict("list") == {"a": [1, 3], "b": [2, 4]}
    with pytest.raises(DataError, match="3 names given"):
        read_table(path, names=["a", "b", "c"])


def test_quoted_fields_and_padding(tmp_path: Path) -> None:
    path = _write(tmp_path / "q.csv", ' "name" , note,val\n"Smith, J","said ""hi""", 3 \n"Doe, A", ? ,4\n')
    df = read_table(path)
    assert list(df.columns) == ["name", "note", "val"]
    assert df["name"].tolist() == ["Smith, J", "Doe, A"]
    assert df["note"].iloc[0] == 'said "hi"' and pd.isna(df["note"].iloc[1])
    assert df["val"].tolist() == [3, 4] and pd.api.types.is_integer_dtype(df["val"])


def test_tsv_with_unbalanced_quotes(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.tsv", 'He said "wow\t1\nplain "quoted" words\t0\nlast\t1\n')
    df = read_table(path, names=["text", "label"])
    assert df["text"].tolist() == ['He said "wow', 'plain "quoted" words', "last"]


def test_json_formats_and_records(tmp_path: Path) -> None:
    lines = read_table(_write(tmp_path / "a.jsonl", '{"a": 1, "b": "x"}\n\n{"a": 2, "c": null}\n'))
    assert list(lines.columns) == ["a", "b", "c"]
    assert lines["a"].tolist() == [1, 2] and pd.isna(lines["b"].iloc[1])
    array = read_table(_write(tmp_path / "a.json", '[{"a": 1.5, "b": "?"}, {"a": "2", "b": " y "}]'))
    assert array["a"].tolist() == [1.5, 2.0]  # a quoted number is a number
    assert pd.isna(array["b"].iloc[0]) and array["b"].iloc[1] == "y"
    as_lines = read_table(_write(tmp_path / "l.json", '{"a": 1}\n{"a": 2}\n'))
    assert as_lines["a"].tolist() == [1, 2]
    assert read_records([{"x": 1, "y": True}, {"x": 2, "y": False}])["y"].dtype == bool
    with pytest.raises(DataError, match="nested"):
        read_records([{"x": [1, 2]}])
    with pytest.raises(DataError, match="zero rows"):
        read_records([])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "empty"),
        ("blank.csv", b"\n\n  \n", "empty"),
        ("header.csv", b"a,b\n", "no data rows"),
        ("dupes.csv", b"a,b,a\n1,2,3\n", "duplicate column names"),
        ("ragged.csv", b"a,b\n1,2,3\n", "header has 2 names"),
        ("garbage.csv", bytes(range(256)) * 8, "binary"),
        ("latin1.csv", "name\ncafé\n".encode("latin-1"), "not UTF-8"),
        ("garbage.parquet", b"not a parquet file at all", "Parquet"),
        ("bad.jsonl", b'{"a": 1}\n{oops\n', "line 2"),
        ("object.json", b'{"a": 1}', "single object"),
        ("data.xlsx", b"PK\x03\x04", "unknown file type"),
    ],
)
def test_bad_files_raise_data_error_naming_the_path(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = _write(tmp_path / name, content)
    with pytest.raises(DataError, match=message) as info:
        read_table(path)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)


def test_random_bytes_raise_data_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "noise.data", os.urandom(4096))
    with pytest.raises(DataError) as info:
        read_table(path)
    assert str(path) in str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found") as info:
        read_table(tmp_path / "nope.csv")
    assert info.value.path == str(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="directory"):
        read_table(tmp_path)


# -- schema ----------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_schema_of_wine(wine_schema: Schema) -> None:
    assert wine_schema.target == "quality"
    assert len(wine_schema.features) == 11 and "quality" not in wine_schema.feature_names
    assert all(c.kind == "numeric" and c.dtype == "float" for c in wine_schema.features)
    quality = wine_schema.column("quality")
    assert (quality.role, quality.kind, quality.dtype, quality.min, quality.max) == (
        "target",
        "numeric",
        "int",
        3,
        8,
    )
    assert not quality.nullable and quality.null_rate == 0.0
    with pytest.raises(KeyError, match="'colour' is not in the schema"):
        wine_schema.column("colour")


@pytest.mark.shared_data
def test_schema_of_housing_adult_and_sentiment(housing_schema: Schema, adult: pd.DataFrame) -> None:
    prox = housing_schema.column("ocean_proximity")
    assert prox.kind == "categorical" and prox.dtype == "string"
    assert prox.categories == ["<1H OCEAN", "INLAND", "ISLAND", "NEAR BAY", "NEAR OCEAN"]
    beds = housing_schema.column("total_bedrooms")
    assert beds.nullable and beds.null_rate == pytest.approx(207 / 20640)
    assert housing_schema.column("median_house_value").kind == "numeric"

    adult_schema = infer_schema(adult, "Salary")
    kinds = {c.name: c.kind for c in adult_schema.columns}
    assert [n for n, k in kinds.items() if k == "numeric"] == [
        "age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week",
    ]  # fmt: skip
    assert sum(k == "categorical" for k in kinds.values()) == 9
    assert adult_schema.column("Salary").categories == ["<=50K", ">50K"]
    assert adult_schema.column("workclass").nullable

    sentiment = read_table(SENTIMENT[0], names=["text", "label"])
    s_schema = infer_schema(sentiment, "label")
    assert s_schema.column("text").kind == "text" and s_schema.column("text").categories is None
    assert s_schema.column("label").kind == "numeric"


def test_schema_overrides_bools_and_category_cap() -> None:
    df = pd.DataFrame(
        {
            "zip": [10, 20, 10, 30],
            "flag": [True, False, True, True],
            "code": ["a", "b", "c", "d"],
            "many": [f"v{i}" for i in range(4)],
            "y": [0.5, 1.5, 2.5, 3.5],
        }
    )
    schema = infer_schema(df, "y", categorical_columns=["zip"], text_columns=["code"], max_categories=3)
    assert schema.column("zip").kind == "categorical" and schema.column("zip").categories == [
        "10",
        "20",
        "30",
    ]
    assert schema.column("flag").kind == "categorical" and schema.column("flag").dtype == "bool"
    assert schema.column("flag").categories == ["false", "true"]
    assert schema.column("code").kind == "text"
    assert schema.column("many").kind == "categorical" and schema.column("many").categories is None
    assert schema.feature_names == ["zip", "flag", "code", "many"]
    with pytest.raises(DataError, match="target column not found; columns are: zip, flag") as info:
        infer_schema(df, "price")
    assert info.value.column == "price"
    with pytest.raises(DataError, match="not there"):
        infer_schema(df, text_columns=["nope"])


def test_schema_round_trips_through_json() -> None:
    df = pd.DataFrame({"a": [1.0, None, 3.0], "b": ["x", "y", "x"], "t": [1, 0, 1]})
    schema = infer_schema(df, "t")
    again = Schema.from_dict(json.loads(json.dumps(schema.to_dict())))
    assert again == schema
    with pytest.raises(DataError, match="kind"):
        Schema.from_dict({"columns": [{"name": "a", "kind": "image", "dtype": "float"}]})


# -- validation ------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_clean_data_validates(wine: pd.DataFrame, wine_schema: Schema, housing: pd.DataFrame) -> None:
    report = validate(wine, wine_schema)
    assert report.ok and report.problems == []
    assert (report.n_rows, report.n_columns) == (1599, 12)
    assert validate(wine, target="quality").problems == []
    scoring = wine.drop(columns=["quality"])  # no labels: fine unless the target is asked for
    assert validate(scoring, wine_schema).ok
    assert not validate(scoring, wine_schema, target="quality").ok
    assert validate(housing, target="median_house_value").ok  # 1 % missing bedrooms is under the limit


@pytest.mark.shared_data
def test_each_problem_names_column_check_and_rows(
    wine: pd.DataFrame, wine_schema: Schema, housing: pd.DataFrame, housing_schema: Schema
) -> None:
    dropped = validate(wine.drop(columns=["pH"]), wine_schema)
    p = _only(dropped.problems, "missing_column", "pH")
    assert p.severity == "error" and not dropped.ok

    typed = wine.astype({"alcohol": object})
    typed.loc[[3, 7, 9], "alcohol"] = "high"
    p = _only(validate(typed, wine_schema).problems, "wrong_type", "alcohol")
    assert (p.rows, p.severity) == (3, "error") and "'high'" in p.detail

    ranged = wine.copy()
    ranged.loc[:3, "alcohol"] = 100.0
    ranged.loc[4, "alcohol"] = 1.0
    p = _only(validate(ranged, wine_schema).problems, "out_of_range", "alcohol")
    alcohol = wine_schema.column("alcohol")
    assert (p.rows, p.severity) == (5, "warning")
    assert p.detail == (
        f"5 values outside the training range [{alcohol.min!r}, {alcohol.max!r}] (min seen 1.0, max seen 100.0)"
    )

    unseen = housing.copy()
    unseen.loc[:2, "ocean_proximity"] = "ON MARS"
    unseen.loc[3, "ocean_proximity"] = "LAKE"
    p = _only(validate(unseen, housing_schema).problems, "unseen_category", "ocean_proximity")
    assert (p.rows, p.severity) == (4, "warning")
    assert "'ON MARS' (3)" in p.detail and "'LAKE' (1)" in p.detail

    nulls = wine.copy()
    nulls["sulphates"] = np.nan
    p = _only(validate(nulls, wine_schema).problems, "nulls", "sulphates")
    assert (p.rows, p.severity) == (1599, "error")
    p = _only(validate(nulls).problems, "nulls", "sulphates")
    assert (p.rows, p.severity) == (1599, "error")


@pytest.mark.shared_data
def test_every_problem_is_reported_at_once(wine: pd.DataFrame, wine_schema: Schema) -> None:
    bad = wine.drop(columns=["density"]).astype({"pH": object})
    bad.loc[:9, "pH"] = "n/a"
    bad.loc[:1, "chlorides"] = 5.0
    bad.loc[:4, "citric acid"] = np.nan
    bad.loc[:5, "quality"] = np.nan
    bad["comment"] = "x"
    report = validate(bad, wine_schema)
    found = {(p.check, p.column, p.rows, p.severity) for p in report.problems}
    assert found == {
        ("missing_column", "density", 0, "error"),
        ("wrong_type", "pH", 10, "error"),
        ("out_of_range", "chlorides", 2, "warning"),
        ("nulls", "citric acid", 5, "warning"),
        ("target", "quality", 6, "error"),
        ("extra_column", "comment", 0, "warning"),
    }
    assert len(report.errors) == 3 and len(report.warnings) == 3 and not report.ok
    assert json.loads(json.dumps(report.to_dict()))["n_errors"] == 3


def test_validation_without_schema() -> None:
    df = pd.DataFrame(
        {"a": [1.0, 2.0, None, None, None], "b": ["k"] * 5, "y": [1, None, 0, 1, 0], "z": [7, None, 7, 7, 7]}
    )
    report = validate(df, target="y")
    found = {(p.check, p.column, p.rows, p.severity) for p in report.problems}
    assert found == {
        ("nulls", "a", 3, "warning"),
        ("constant", "b", 5, "warning"),
        ("constant", "z", 5, "warning"),
        ("target", "y", 1, "error"),
    }
    missing = validate(df, target="label")
    assert _only(missing.problems, "target", "label").severity == "error"
    empty = validate(df.iloc[:0])
    assert _only(empty.problems, "empty", "").severity == "error" and not empty.ok


def test_validation_of_request_like_data_against_a_schema() -> None:
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"], "y": [0, 1, 0]})
    schema = infer_schema(train, "y")
    request = pd.DataFrame({"x": ["2.5", None], "c": [None, "a"]})  # numbers as text are fine
    p = _only(validate(request, schema).problems, "nulls", "x")
    assert (p.rows, p.severity) == (1, "warning")
    assert _only(validate(request, schema).problems, "nulls", "c").rows == 1
    with pytest.raises(Exception, match="validation error"):
        validate(request.drop(columns=["x"]), schema).raise_for_errors("request")


# -- snapshots -------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_hash_is_stable_across_formats(wine: pd.DataFrame, tmp_path: Path) -> None:
    expected = dataset_hash(wine)
    wine.to_parquet(tmp_path / "w.parquet", index=False)
    assert dataset_hash(read_table(tmp_path / "w.parquet")) == expected
    assert dataset_hash(read_table(_write_jsonl(wine, tmp_path / "w.jsonl"))) == expected
    wine.to_csv(tmp_path / "w.csv", index=False)
    assert dataset_hash(read_table(tmp_path / "w.csv")) == expected
    assert dataset_hash(wine.astype({"quality": "float64"})) == expected  # values, not dtypes

    changed = wine.copy()
    changed["pH"] = changed["pH"].where(changed.index != 800, changed["pH"] + 0.01)
    assert dataset_hash(changed) != expected
    assert dataset_hash(wine.iloc[::-1]) != expected
    assert dataset_hash(wine.rename(columns={"pH": "ph"})) != expected


@pytest.mark.shared_data
def test_hash_is_stable_for_mixed_data_with_missing_values(adult: pd.DataFrame, tmp_path: Path) -> None:
    part = adult.iloc[:2000]
    part.to_parquet(tmp_path / "a.parquet", index=False)
    assert dataset_hash(read_table(tmp_path / "a.parquet")) == dataset_hash(part)
    assert dataset_hash(read_table(_write_jsonl(part, tmp_path / "a.jsonl"))) == dataset_hash(part)


@pytest.mark.shared_data
def test_profile_is_plain_json(housing: pd.DataFrame, housing_schema: Schema) -> None:
    prof = profile(housing, housing_schema)
    text = json.dumps(prof, allow_nan=False)  # no NaN, no numpy types
    assert json.loads(text) == prof
    beds = prof["columns"]["total_bedrooms"]
    assert (beds["count"], beds["nulls"]) == (20640 - 207, 207)
    assert set(beds["quantiles"]) == {"p1", "p5", "p25", "p50", "p75", "p95", "p99"}
    assert beds["min"] <= beds["quantiles"]["p50"] <= beds["max"]
    prox = prof["columns"]["ocean_proximity"]
    assert prox["n_unique"] == 5 and sum(prox["top"].values()) == 20640
    assert prof["columns"]["median_house_value"]["role"] == "target"


def test_profile_of_text_and_empty_columns() -> None:
    df = pd.DataFrame({"t": ["good movie indeed", "bad", None], "e": [np.nan, np.nan, np.nan]})
    schema = infer_schema(df, text_columns=["t"])
    prof = profile(df, schema)
    json.dumps(prof, allow_nan=False)
    assert prof["columns"]["t"]["tokens"]["max"] == 3.0
    assert prof["columns"]["e"]["mean"] is None and prof["columns"]["e"]["nulls"] == 3


@pytest.mark.shared_data
def test_ingest_is_idempotent_and_loads_by_prefix(wine: pd.DataFrame, store: LocalStore) -> None:
    snap, created = ingest(store, wine, source=str(WINE_RED), target="quality")
    assert created and snap.sha256 == dataset_hash(wine)
    assert (snap.n_rows, snap.n_columns, snap.target) == (1599, 12, "quality")
    assert snap.created_at.endswith("Z")
    folder = f"datasets/{snap.sha256}/"
    assert store.list(folder) == [folder + n for n in ("data.parquet", "profile.json", "schema.json", "snapshot.json")]
    assert Schema.from_dict(store.get_json(folder + "schema.json")) == snap.schema

    again, created = ingest(store, wine.copy(), source="elsewhere.csv", target="quality")
    assert not created and again == snap

    df, loaded = load_snapshot(store, snap.sha256[:8])
    assert loaded == snap and dataset_hash(df) == snap.sha256
    pd.testing.assert_frame_equal(df, wine, check_dtype=False)
    assert DatasetSnapshot.from_dict(json.loads(json.dumps(snap.to_dict()))) == snap


def test_list_and_prefix_lookup(store: LocalStore) -> None:
    first, _ = ingest(store, pd.DataFrame({"a": [1, 2]}), source="one", target=None)
    second, _ = ingest(store, pd.DataFrame({"a": [1, 3]}), source="two", target="a")
    assert [s.sha256 for s in list_snapshots(store)] == [second.sha256, first.sha256]
    for bad in ("abc", "zzzzzzzz", "0" * 64):
        with pytest.raises(NotFound):
            load_snapshot(store, bad)
    # Two snapshots sharing a prefix: the prefix is ambiguous.
    for tail in ("0" * 58, "1" * 58):
        store.put_json(f"datasets/abcdef{tail}/snapshot.json", first.to_dict())
    with pytest.raises(NotFound, match="ambiguous"):
        load_snapshot(store, "abcdef")


def test_ingest_completes_a_partial_one_and_survives_a_race(store: LocalStore) -> None:
    df = pd.DataFrame({"x": [1.5, 2.5], "c": ["a", "b"]})
    snap, _ = ingest(store, df, source="s", target=None)
    store.delete(f"datasets/{snap.sha256}/snapshot.json")  # as if the first ingest died before the end
    assert list_snapshots(store) == []
    again, created = ingest(store, df, source="s", target=None)
    assert created and again.sha256 == snap.sha256

    class Racing(LocalStore):
        """Another process writes snapshot.json just before we do."""

        def put_if_absent(self, key: str, data: bytes) -> str:
            if key.endswith("snapshot.json") and not self.exists(key):
                super().put_if_absent(key, data)
                raise Conflict(key)
            return super().put_if_absent(key, data)

    racing = Racing(store.root / "race")
    won, created = ingest(racing, df, source="s", target=None)
    assert not created and won.sha256 == snap.sha256


def test_ingest_checks_target_and_load_checks_integrity(store: LocalStore) -> None:
    df = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(DataError, match="target column not found"):
        ingest(store, df, source="s", target="y")
    snap, _ = ingest(store, df, source="s", target=None)
    other = pd.DataFrame({"x": [1.0, 2.5]})
    store.put(f"datasets/{snap.sha256}/data.parquet", other.to_parquet(index=False))
    with pytest.raises(IntegrityError):
        load_snapshot(store, snap.sha256)


@st.composite
def _frames(draw: st.DrawFn) -> pd.DataFrame:
    n_rows = draw(st.integers(min_value=1, max_value=8))
    kinds = draw(st.lists(st.sampled_from(["int", "float", "text"]), min_size=1, max_size=4))
    data: dict[str, Any] = {}
    for i, kind in enumerate(kinds):
        if kind == "int":
            data[f"c{i}"] = draw(st.lists(st.integers(-(2**62), 2**62), min_size=n_rows, max_size=n_rows))
        elif kind == "float":
            data[f"c{i}"] = draw(st.lists(st.floats(allow_nan=True), min_size=n_rows, max_size=n_rows))
        else:
            data[f"c{i}"] = draw(st.lists(st.none() | st.text(max_size=10), min_size=n_rows, max_size=n_rows))
    return pd.DataFrame(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_frames())
def test_hash_survives_parquet_round_trip(df: pd.DataFrame) -> None:
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    back = pd.read_parquet(io.BytesIO(buf.getvalue()))
    assert dataset_hash(back) == dataset_hash(df)
    as_object = df.astype(object)  # same values held as Python objects
    assert dataset_hash(as_object) == dataset_hash(df)
