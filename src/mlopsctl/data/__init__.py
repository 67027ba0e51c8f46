"""Data: reading files, inferring schemas, validating, and versioned dataset snapshots.

- ``read``: CSV/TSV/text, Parquet and JSON into one normalised DataFrame;
- ``schema``: column kinds, types, ranges and categories inferred from reference data;
- ``validate``: every problem a table has, on its own or against a schema;
- ``snapshot``: content-addressed datasets in the store (hash, profile, ingest, load).

This package reads and checks data; it does not train (no scikit-learn here).
"""

from mlopsctl.data.read import read_records, read_table
from mlopsctl.data.schema import ColumnSchema, Schema, infer_schema
from mlopsctl.data.snapshot import (
    DatasetSnapshot,
    dataset_hash,
    ingest,
    list_snapshots,
    load_snapshot,
    profile,
)
from mlopsctl.data.validate import Problem, TrainingRules, ValidationReport, validate

__all__ = [
    "ColumnSchema",
    "DatasetSnapshot",
    "Problem",
    "Schema",
    "TrainingRules",
    "ValidationReport",
    "dataset_hash",
    "infer_schema",
    "ingest",
    "list_snapshots",
    "load_snapshot",
    "profile",
    "read_records",
    "read_table",
    "validate",
]
