"""athena.tf of `deploy aws`: the capture as SQL tables (Glue catalog) and an Athena workgroup to query them.

- ``aws_glue_catalog_table.capture``: the served model's compacted capture (``PREFIX/capture-parquet/MODEL/``),
  its columns the model's capture table (``monitoring/capture_schema.py``, from its versions' signatures in
  the store when `deploy aws` ran), days projected by Athena (no partitions to add, no crawler to run);
- ``aws_glue_catalog_table.feedback``: the labels (``PREFIX/feedback/HOUR/*.jsonl``), JSON lines projected by
  the hour, every model's in one table;
- ``aws_athena_workgroup.capture``: its results in the bucket (``athena-results/``, encrypted with the key,
  expired by the lifecycle rule), a per-query scan limit;
- ``aws_iam_policy.capture_analyst``: read-only access for the people who query (attach it to their role).

A table per model, not one table with the model as a partition: the models' inputs and predictions have
different columns and types, and a Glue table has one schema. The task role needs nothing: the tables are
metadata over the objects the servers already write.
"""

from __future__ import annotations

import json

from mlopsctl.deploy.aws_variables import aligned
from mlopsctl.monitoring import capture_schema as cs

# the labels as `POST /feedback` and `mlopsctl feedback` store them (monitoring/feedback.py)
FEEDBACK_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("request_id", "string", "the prediction's request id (capture's request_id)"),
    ("row", "bigint", "the prediction's row in its request (capture's row)"),
    ("label", "string", 'the true value as JSON text: a class (5, "<=50K") or a number; cast it to compare'),
    ("time", "double", "when the label was stored, seconds since the epoch (UTC)"),
    ("model", "string", "the model of the prediction"),
    ("version", "bigint", "the version that made the prediction"),
    ("source", "string", "where the label came from: api, or file:NAME"),
    ("new_class", "boolean", "true when the label is a class the version never saw"),
)
FEEDBACK_HOUR = ("hour", "string", "the UTC hour the label was stored (YYYY-MM-DDTHH): its folder")


def _hcl(value: str) -> str:
    """A Terraform string literal (JSON's escapes; ${ and %{ kept literal)."""
    return json.dumps(value, ensure_ascii=False).replace("${", "$${").replace("%{", "%%{")


def _columns(rows: list[tuple[str, str, str]]) -> str:
    """Glue ``columns`` blocks (a comment holds at most 255 characters)."""
    block = "\n    columns {{\n      name    = {}\n      type    = {}\n      comment = {}\n    }}\n"
    return "".join(block.format(_hcl(n), _hcl(t), _hcl(d[:255])) for n, t, d in rows)


def athena_tf(schema: cs.CaptureSchema, first_day: str) -> str:
    """The text of athena.tf for ``schema``'s model; days are projected from ``first_day`` (YYYY-MM-DD)."""
    model = schema.model
    note = ""
    if not schema.known:
        note = (
            f"  # {model} had no published version in the store when `deploy aws` ran: its inputs and prediction\n"
            "  # columns are left out. Publish a version, run `deploy aws --force` again and `terraform apply`.\n"
        )
    location = f"s3://${{local.bucket}}/${{local.store_prefix}}/capture-parquet/{model}"
    projection = cs.projection(first_day, location)
    pairs = [("EXTERNAL", "TRUE"), ("classification", "parquet"), ("parquet.compression", "ZSTD")]
    params = _params([*pairs, *projection.items()])
    hour = FEEDBACK_HOUR[0]
    feedback = "s3://${local.bucket}/${local.store_prefix}/feedback"
    feedback_params = _params(
        [
            ("EXTERNAL", "TRUE"),
            ("classification", "json"),
            ("projection.enabled", "true"),
            (f"projection.{hour}.type", "date"),
            (f"projection.{hour}.format", "yyyy-MM-dd'T'HH"),
            (f"projection.{hour}.range", f"{first_day}T00,NOW"),
            (f"projection.{hour}.interval", "1"),
            (f"projection.{hour}.interval.unit", "HOURS"),
            ("storage.location.template", f"{feedback}/${{{hour}}}/"),
        ]
    )
    return f"""\
# The capture as SQL tables for Athena (docs/monitoring.md has the queries): the served model's compacted
# capture (PREFIX/capture-parquet/{model}/, Parquet by the hour) and the labels (PREFIX/feedback/, JSON lines).
# Partition projection: Athena computes the day (hour) folders from the query's WHERE, nothing to crawl or add.
# One table per model (its inputs and prediction are its own columns): `mlopsctl capture schema NAME
# --format ddl` prints another model's. Projection starts on {first_day}, the day `deploy aws` wrote this.
locals {{
  glue_database = replace(lower(var.name), "-", "_")
}}

resource "aws_glue_catalog_database" "capture" {{
  name        = local.glue_database
  description = "mlopsctl ${{var.name}}: captured predictions and feedback of the store ${{local.store_uri}}"
}}

resource "aws_glue_catalog_table" "capture" {{
{note}  name          = {_hcl(cs.table_name(model))}
  database_name = aws_glue_catalog_database.capture.name
  description   = {_hcl(f"predictions of {model} the servers captured, compacted by the hour (mlopsctl)")}
  table_type    = "EXTERNAL_TABLE"

  parameters = {{
{params}  }}

  partition_keys {{
    name    = {_hcl(cs.PARTITION[0])}
    type    = {_hcl(cs.PARTITION[1])}
    comment = {_hcl(cs.PARTITION[2])}
  }}

  storage_descriptor {{
    location      = "{location}/"
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {{
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    }}
{_columns(schema.table_columns())}  }}
}}

resource "aws_glue_catalog_table" "feedback" {{
  name          = "feedback"
  database_name = aws_glue_catalog_database.capture.name
  description   = "ground-truth labels of captured predictions, every model's (mlopsctl feedback)"
  table_type    = "EXTERNAL_TABLE"

  parameters = {{
{feedback_params}  }}

  partition_keys {{
    name    = {_hcl(FEEDBACK_HOUR[0])}
    type    = {_hcl(FEEDBACK_HOUR[1])}
    comment = {_hcl(FEEDBACK_HOUR[2])}
  }}

  storage_descriptor {{
    location      = "{feedback}/"
    input_format  = "org.apache.hadoop.mapred.TextInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"

    ser_de_info {{
      # Hive's JSON SerDe: reads a number into a string column as its text (AWS advises it over OpenX's)
      serialization_library = "org.apache.hive.hcatalog.data.JsonSerDe"
    }}
{_columns(list(FEEDBACK_COLUMNS))}  }}
}}

resource "aws_athena_workgroup" "capture" {{
  name          = "${{var.name}}-capture"
  description   = "mlopsctl ${{var.name}}: queries over the capture and feedback tables"
  force_destroy = var.force_destroy

  configuration {{
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.athena_bytes_scanned_cutoff

    result_configuration {{
      output_location = "s3://${{aws_s3_bucket.store.id}}/athena-results/"

      encryption_configuration {{
        encryption_option = "SSE_KMS"
        kms_key_arn       = aws_kms_key.this.arn
      }}
    }}
  }}
}}

# Read-only access for the people who query: attach it to their role or group. It reads the capture and the
# labels, runs queries in this workgroup and keeps their results; it writes nothing else.
resource "aws_iam_policy" "capture_analyst" {{
  name        = "${{var.name}}-capture-analyst"
  description = "Query the captured predictions and labels of ${{var.name}} with Athena (read-only)"
  policy      = data.aws_iam_policy_document.capture_analyst.json
}}

data "aws_iam_policy_document" "capture_analyst" {{
  statement {{
    sid = "RunQueries"
    actions = [
      "athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults",
      "athena:StopQueryExecution", "athena:GetWorkGroup", "athena:ListQueryExecutions",
    ]
    resources = [aws_athena_workgroup.capture.arn]
  }}

  statement {{
    sid = "ReadTheCatalog"
    actions = [
      "glue:GetDatabase", "glue:GetDatabases", "glue:GetTable", "glue:GetTables", "glue:GetPartition",
      "glue:GetPartitions",
    ]
    resources = [
      "arn:${{local.partition}}:glue:${{var.region}}:${{local.account_id}}:catalog",
      aws_glue_catalog_database.capture.arn,
      "arn:${{local.partition}}:glue:${{var.region}}:${{local.account_id}}:table/${{aws_glue_catalog_database.capture.name}}/*",
    ]
  }}

  statement {{
    sid     = "ReadCaptureAndFeedback"
    actions = ["s3:GetObject"]
    resources = [
      "${{aws_s3_bucket.store.arn}}/${{local.store_prefix}}/capture-parquet/*",
      "${{aws_s3_bucket.store.arn}}/${{local.store_prefix}}/feedback/*",
    ]
  }}

  statement {{
    sid       = "ListThem"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.store.arn]

    condition {{
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${{local.store_prefix}}/capture-parquet/*", "${{local.store_prefix}}/feedback/*", "athena-results/*"]
    }}
  }}

  statement {{
    sid       = "KeepResults"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = ["${{aws_s3_bucket.store.arn}}/athena-results/*"]
  }}

  statement {{
    sid       = "UseTheKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]
  }}
}}
"""


def _params(pairs: list[tuple[str, str]]) -> str:
    """A table's parameters, aligned as ``terraform fmt`` does; Terraform interpolates the bucket and prefix in
    storage.location.template, Athena the partition (``${day}``, ``${hour}``), kept literal here."""
    quoted = []
    for k, v in pairs:
        text = json.dumps(v, ensure_ascii=False)
        if k == "storage.location.template":
            text = text.replace("/${" + cs.PARTITION[0] + "}", "/$${" + cs.PARTITION[0] + "}")
            text = text.replace("/${" + FEEDBACK_HOUR[0] + "}", "/$${" + FEEDBACK_HOUR[0] + "}")
        else:
            text = _hcl(v)
        quoted.append((json.dumps(k), text))
    return "".join(line + "\n" for line in aligned(quoted, "    "))
