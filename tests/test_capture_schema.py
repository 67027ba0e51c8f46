"""The capture table: one schema per model from its signatures, the parts written with it (every hour alike,
the records read back exactly), `mlopsctl capture schema` (table, JSON, Athena DDL) and the Glue table
`deploy aws` writes, whose columns and projection are the DDL's."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlopsctl.bundle.signature import Feature, Signature
from mlopsctl.monitoring import capture_parquet as cp
from mlopsctl.monitoring import capture_schema as cs
from mlopsctl.monitoring.captured import COMPACTED, capture_key, encode_lines, load_captures
from mlopsctl.monitoring.compaction import compact
from mlopsctl.store import open_store
from tests.conftest import run_cli, wine_rows

HOUR = 3600.0


def sig(features: list[tuple[str, str]], task: str = "classification", classes: Any = (3, 4, 5)) -> Signature:
    feats = tuple(Feature(n, k, "float" if k == "numeric" else "string") for n, k in features)  # type: ignore[arg-type]
    return Signature(feats, "y", task, None if task == "regression" else tuple(classes))  # type: ignore[arg-type]


SCHEMA = cs.from_signatures(
    "m", [(1, sig([("a", "numeric"), ("b c", "categorical")])), (2, sig([("pH", "numeric"), ("a", "categorical")]))]
)


def arrow_types(table: Any) -> dict[str, str]:
    """Column → type, inputs' fields included, of a part as written (without the reader's own columns)."""
    out = {}
    for f in table.schema:
        if f.name in (cp.LAYOUT, cp.EXTRA):
            continue
        if f.name == "inputs":
            out.update({f"inputs.{c.name}": str(c.type) for c in f.type})
        else:
            out[f.name] = str(f.type)
    return out


def expected_types(schema: cs.CaptureSchema) -> dict[str, str]:
    arrow = {"string": "string", "double": "double", "int64": "int64", "bool": "bool"}
    out = {f.name: arrow[f.type] for f in schema.columns}
    out.update({f"inputs.{f.name}": arrow[f.type] for f in schema.inputs or ()})
    return out


# -- the schema ------------------------------------------------------------------------------------------------


def test_the_table_grows_with_versions_and_keeps_each_features_first_type() -> None:
    assert [(f.name, f.key, f.type) for f in SCHEMA.inputs or ()] == [
        ("a", "a", "double"),  # v2 made it categorical: it stays double, v2's strings are kept beside
        ("b_c", "b c", "string"),
        ("ph", "pH", "double"),
    ]
    assert SCHEMA.versions == (1, 2) and SCHEMA.column("prediction") == cs.Field(
        "prediction", "prediction", "int64", "the predicted class (3, 4, 5)"
    )
    clash = cs.from_signatures("m", [(1, sig([("a b", "numeric"), ("a_b", "numeric"), ("A-B", "text")]))])
    assert [f.name for f in clash.inputs or ()] == ["a_b", "a_b_2", "a_b_3"]
    assert (
        cs.athena_name("2nd place") == "c_2nd_place" and cs.table_name("wine-alcohol.v2") == "capture_wine_alcohol_v2"
    )


@pytest.mark.parametrize(
    ("task", "classes", "athena"),
    [
        ("regression", None, "double"),
        ("classification", (3, 4, 5), "bigint"),
        ("classification", ("<=50K", ">50K"), "string"),
        ("text-classification", ("negative", "positive"), "string"),
        ("classification", (False, True), "boolean"),
        ("classification", (0.5, 1.5), "double"),
        ("classification", (1, "b"), "string"),
    ],
    ids=["regression", "int-classes", "str-classes", "text", "bool-classes", "float-classes", "mixed-classes"],
)
def test_the_prediction_is_typed_from_the_task_and_classes(task: str, classes: Any, athena: str) -> None:
    schema = cs.from_signatures("m", [(1, sig([("x", "numeric")], task, classes))])
    assert dict((n, t) for n, t, _ in schema.table_columns())["prediction"] == athena


def test_a_model_with_no_version_has_the_fixed_columns() -> None:
    schema = cs.from_signatures("m", [])
    assert not schema.known and schema.column("prediction") is None
    assert [n for n, _, _ in schema.table_columns()] == [n for n, t, _ in cs.FIXED if t not in ("struct", "")]


# -- the parts -------------------------------------------------------------------------------------------------

_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
)
_record = st.fixed_dictionaries(
    {"request_id": st.text(min_size=1, max_size=4), "row": st.integers(0, 5), "time": st.floats(0, 2e9)},
    optional={
        "version": _scalar,
        "status": st.sampled_from([200, 422, 200.0, "200"]),
        "inputs": st.one_of(st.none(), st.dictionaries(st.sampled_from(["a", "b c", "pH", "extra"]), _scalar)),
        "prediction": st.one_of(_scalar, st.lists(st.integers(-5, 5), max_size=2)),
        "confidence": _scalar,
        "error": _scalar,
        "other": _scalar,
    },
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_record, min_size=1, max_size=12))
def test_parts_have_the_tables_types_whatever_the_values_and_give_back_the_records(
    records: list[dict[str, Any]],
) -> None:
    table = cp.read(cp.to_bytes(cp.encode(records, [("k", len(records))], SCHEMA)))
    assert arrow_types(table) == expected_types(SCHEMA)  # every hour alike, whatever it held
    back = cp.decode(table)
    assert back == records
    assert [list(r) for r in back] == [list(r) for r in records]
    assert [list(r["inputs"]) for r in back if isinstance(r.get("inputs"), dict)] == [
        list(r["inputs"]) for r in records if isinstance(r.get("inputs"), dict)
    ]
    assert cp.ids(table) == cp.record_ids(records)
    assert cp.columns(table, ["prediction", "version"]) == {
        k: [r.get(k) for r in records] for k in ("prediction", "version")
    }


def test_a_value_of_another_type_is_cast_for_sql_where_nothing_is_lost() -> None:
    records = [
        {"request_id": "r", "row": 0, "time": 1.0, "inputs": {"a": 9, "b c": "red", "pH": 3.2}, "prediction": 5.0},
        {"request_id": "s", "row": 0, "time": 2.0, "inputs": {"a": "high", "b c": 7, "pH": None}, "prediction": "x"},
    ]
    table = cp.encode(records, [("k", 2)], SCHEMA)
    inputs = table.column("inputs").combine_chunks()
    assert inputs.field("a").to_pylist() == [9.0, None]  # an int in a double column: 9.0 for SQL; "high": null
    assert inputs.field("b_c").to_pylist() == ["red", "7"]  # a number in a string column: its JSON text
    assert table.column("prediction").to_pylist() == [5, None]
    assert cp.decode(table) == records  # and the exact values back from _extra


def test_an_hour_with_no_value_of_a_column_keeps_its_type() -> None:
    failed = [{"request_id": "r", "row": 0, "time": 1.0, "status": 422, "inputs": None, "prediction": None}]
    answered = [{"request_id": "s", "row": 0, "time": 2.0, "status": 200, "inputs": {"a": 1.5}, "prediction": 4}]
    a = cp.encode(failed, [("k", 1)], SCHEMA)
    b = cp.encode(answered, [("k", 1)], SCHEMA)
    assert a.schema.remove_metadata() == b.schema.remove_metadata()
    assert str(a.schema.field("confidence").type) == "double" and str(a.schema.field("prediction").type) == "int64"
    assert cp.decode(a) == failed and cp.decode(b) == answered


def test_a_format_1_part_still_reads() -> None:
    """A part written before the table's schema (no _extra, inputs named as the features) reads as before."""
    import pyarrow as pa

    inputs = pa.StructArray.from_arrays([pa.array([1.5]), pa.array(["x"])], names=["fixed acidity", "c"])
    table = pa.Table.from_arrays(
        [pa.array(["r"]), pa.array([0]), inputs, pa.array(['"5"']), pa.array([0], type=pa.int32())],
        names=["request_id", "row", "inputs", "prediction", "_layout"],
    ).replace_schema_metadata(
        {
            cp.META_FORMAT: b"1",
            cp.META_SOURCES: b'[["k", 1]]',
            cp.META_LAYOUTS: b'[[["request_id", "row", "inputs", "prediction"], ["fixed acidity", "c"]]]',
            cp.META_JSON: b'["prediction"]',
        }
    )
    back = cp.decode(cp.read(cp.to_bytes(table)))
    assert back == [{"request_id": "r", "row": 0, "inputs": {"fixed acidity": 1.5, "c": "x"}, "prediction": "5"}]


# -- the wine store: compaction, the command, deploy aws ---------------------------------------------------------


def _wine_capture(store_dir: Path) -> list[dict[str, Any]]:
    """Two hours of wine capture, a day old: answered rows (one with an integer for a number), a failed request."""
    store = open_store(str(store_dir))
    t0 = (time.time() // HOUR - 26) * HOUR
    rows = wine_rows(6)
    rows[2] = {**rows[2], "alcohol": 11}  # a client sent an integer: read back as the integer
    records: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        t = t0 + i * 1000.0
        base = {"request_id": f"w{i}", "time": t, "model": "wine", "version": 1 + i % 2, "variant": "prod"}
        base |= {"endpoint": "predict", "status": 200, "latency_ms": 0.4}
        records.append({**base, "row": 0, "inputs": row, "prediction": 5 + i % 2, "confidence": 0.6})
    records.append(
        {"request_id": "bad", "time": t0 + 5, "model": "wine", "version": 1, "variant": "prod", "endpoint": "predict"}
        | {"status": 422, "latency_ms": 0.1, "row": 0, "inputs": None, "prediction": None, "error": "alcohol: …"}
    )
    records.sort(key=lambda r: r["time"])
    for hour in (0, 1):
        chunk = [r for r in records if t0 + hour * HOUR <= r["time"] < t0 + (hour + 1) * HOUR]
        store.put(capture_key("wine", chunk[0]["time"], "host-1-abc", hour + 1), encode_lines(chunk))
    return records


@pytest.mark.shared_data
def test_compacted_wine_parts_have_the_models_table(wine_store_copy: Path) -> None:
    import pyarrow.parquet as pq

    records = _wine_capture(wine_store_copy)
    store = open_store(str(wine_store_copy))
    compact(store, compact_after=0, keep_raw=0)
    parts = sorted(k for k in store.list(COMPACTED) if k.endswith(".parquet"))
    assert len(parts) == 2
    schema = cs.schema_of(store, "wine")
    assert schema.versions == (1, 2) and (schema.inputs or ())[0] == cs.Field(
        "fixed_acidity", "fixed acidity", "double", "numeric feature 'fixed acidity'"
    )
    for key in parts:  # the hour with the failed request and the one without: the same columns, typed
        table = pq.read_table(wine_store_copy / key)
        assert arrow_types(table) == expected_types(schema)
    assert load_captures(store, "wine") == records  # the integer 11 included


@pytest.fixture
def wine_project(wine_store_copy: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "mlops.toml").write_text(
        f'[project]\nname = "wine"\n[data]\npath = "x.csv"\ntarget = "quality"\n[store]\nuri = "{wine_store_copy}"\n'
    )
    return folder


def ddl_columns(text: str) -> list[tuple[str, str]]:
    """(name, type) of each column of a CREATE EXTERNAL TABLE, read from its text."""
    body = text[text.index("(\n") + 2 : text.index("\n)\n")]
    cols = []
    for line in body.split(",\n"):
        m = re.fullmatch(r"  `(\w+)` (\S+) COMMENT '((?:[^']|'')*)'", line)
        assert m, line
        cols.append((m.group(1), m.group(2)))
    return cols


def ddl_properties(text: str) -> dict[str, str]:
    body = text[text.index("TBLPROPERTIES (\n") + 16 : text.rindex("\n);")]
    return dict(re.findall(r"  '([^']+)' = '([^']*)'", body))


@pytest.mark.shared_data
def test_the_command_prints_the_table_as_text_json_and_ddl(wine_project: Path) -> None:
    text = run_cli("capture", "schema", cwd=wine_project).stdout
    assert "capture_wine (versions: v1, v2)" in text
    assert re.search(r"inputs\.fixed_acidity\s+│ double\s+│ numeric feature 'fixed acidity'", text)
    assert re.search(r"prediction\s+│ bigint\s+│ the predicted class \(3, 4, 5, 6, 7, 8\)", text)
    assert re.search(r"day\s+│ string\s+│ .*\(partition\)", text)
    doc = json.loads(run_cli("capture", "schema", "wine", "--format", "json", cwd=wine_project).stdout)
    assert doc["table"] == "capture_wine" and doc["partition"]["name"] == "day"
    ddl = run_cli(
        "capture", "schema", "-f", "ddl", "--first-day", "2026-11-01", "--database", "wine_api", cwd=wine_project
    ).stdout
    assert ddl.startswith("CREATE EXTERNAL TABLE IF NOT EXISTS `wine_api`.`capture_wine` (\n")
    assert ddl_columns(ddl) == [(c["name"], c["athena"]) for c in doc["columns"]]
    inputs = next(c for c in doc["columns"] if c["name"] == "inputs")
    assert inputs["athena"] == "struct<" + ",".join(f"{f['name']}:{f['athena']}" for f in inputs["fields"]) + ">"
    assert "PARTITIONED BY (`day` string COMMENT" in ddl and "\nSTORED AS PARQUET\n" in ddl
    assert ddl.count("(") == ddl.count(")") and ddl.rstrip().endswith(";")
    props = ddl_properties(ddl)
    assert props["projection.day.range"] == "2026-11-01,NOW" and props["projection.day.type"] == "date"
    location = "s3://BUCKET/PREFIX/capture-parquet/wine/"
    assert f"LOCATION '{location}'" in ddl and props["storage.location.template"] == location + "${day}/"


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "error: model not found: nope in store"),
        (["wine", "--format", "yaml"], "error: --format: got 'yaml': use table, json or ddl"),
        (["wine", "-f", "ddl", "--first-day", "1 Nov"], "error: --first-day: got '1 Nov': a day as YYYY-MM-DD"),
        (["wine", "-f", "ddl", "--location", "/tmp/x"], "error: --location: got '/tmp/x': an S3 folder"),
    ],
    ids=["unknown-model", "format", "first-day", "location"],
)
def test_bad_input_is_one_line(wine_project: Path, args: list[str], message: str) -> None:
    proc = run_cli("capture", "schema", *args, cwd=wine_project, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith(message), proc.stderr


@pytest.mark.shared_data
def test_deploy_aws_writes_the_glue_table_of_the_ddl(wine_project: Path) -> None:
    """The Terraform table's columns are the capture schema's, its projection the DDL's; the workgroup keeps its
    results encrypted in the bucket; the feedback table reads the labels' JSON lines by the hour."""
    from tests.test_deploy_aws import Tf, one

    run_cli("deploy", "aws", cwd=wine_project)
    tf = Tf(wine_project / "deploy" / "aws")
    table = tf.resource("aws_glue_catalog_table.capture")
    doc = json.loads(run_cli("capture", "schema", "wine", "-f", "json", cwd=wine_project).stdout)
    sd = one(table, "storage_descriptor")
    assert [(c["name"], c["type"]) for c in sd["columns"]] == [(c["name"], c["athena"]) for c in doc["columns"]]
    assert table["name"] == "capture_wine" and table["table_type"] == "EXTERNAL_TABLE"
    assert sd["location"] == "s3://${local.bucket}/${local.store_prefix}/capture-parquet/wine/"
    assert one(sd, "ser_de_info")["serialization_library"].endswith("ParquetHiveSerDe")
    assert one(table, "partition_keys") | {"comment": ""} == {"name": "day", "type": "string", "comment": ""}
    today = time.strftime("%Y-%m-%d", time.gmtime())
    ddl = run_cli("capture", "schema", "wine", "-f", "ddl", "--first-day", today, cwd=wine_project).stdout
    props = ddl_properties(ddl)
    params = table["parameters"]
    for key, value in props.items():
        if key == "storage.location.template":
            assert value == "s3://BUCKET/PREFIX/capture-parquet/wine/${day}/"
            assert params[key] == "s3://${local.bucket}/${local.store_prefix}/capture-parquet/wine/$${day}/"
        else:
            assert params[key] == value, key
    assert tf.locals["glue_database"] == '${replace(lower(var.name), "-", "_")}'
    feedback = one(tf.resource("aws_glue_catalog_table.feedback"), "storage_descriptor")
    assert [c["name"] for c in feedback["columns"]][:3] == ["request_id", "row", "label"]
    fb = tf.resource("aws_glue_catalog_table.feedback")["parameters"]
    assert fb["projection.hour.format"] == "yyyy-MM-dd'T'HH" and fb["projection.hour.interval.unit"] == "HOURS"
    results = one(one(tf.resource("aws_athena_workgroup.capture"), "configuration"), "result_configuration")
    assert results["output_location"] == "s3://${aws_s3_bucket.store.id}/athena-results/"
    assert one(results, "encryption_configuration")["encryption_option"] == "SSE_KMS"
    reads = {"s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"}
    for statement in tf.data("aws_iam_policy_document.capture_analyst")["statement"]:  # writes only query results
        writes = {a for a in statement["actions"] if a.startswith("s3:")} - reads
        assert not writes or statement["resources"] == ["${aws_s3_bucket.store.arn}/athena-results/*"], statement
        assert not [a for a in statement["actions"] if "Delete" in a]


def test_deploy_aws_without_a_published_version_writes_the_fixed_columns(tmp_path: Path) -> None:
    from tests.test_deploy_aws import Tf, one

    (tmp_path / "mlops.toml").write_text('[project]\nname = "wine"\n[data]\npath = "x.csv"\ntarget = "quality"\n')
    proc = run_cli("deploy", "aws", cwd=tmp_path)
    assert "athena.tf: wine in store" in " ".join(proc.stderr.split()) and "fixed columns only" in proc.stderr
    sd = one(Tf(tmp_path / "deploy" / "aws").resource("aws_glue_catalog_table.capture"), "storage_descriptor")
    fixed = cs.from_signatures("wine", []).table_columns()
    assert [(c["name"], c["type"]) for c in sd["columns"]] == [(n, t) for n, t, _ in fixed]
