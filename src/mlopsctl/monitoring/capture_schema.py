"""The capture table of a model: the columns of its compacted Parquet, as Glue, Athena and DuckDB see them.

One schema per model, so that one Glue table reads every hour: the fixed fields every capture record has
(``request_id``, ``time``, ``version``…), ``inputs`` a struct of the model's features (numeric: double;
categorical and text: string) and ``prediction`` typed from the task and classes (regression: double; a
classifier: bigint, string or boolean as its classes are). It is derived from the signatures of the model's
versions, oldest first, and only grows: a feature keeps the type of the first version that took it, a later
version's new features are appended, and an input a version does not take is null in its rows. A value that
does not fit its column's type (an integer in a double column, a feature whose kind a later version changed)
is kept exactly beside the row (``capture_parquet``): readers get back the record the server wrote.

Struct field names are Athena's: lowercase letters, digits and ``_`` (``fixed acidity`` → ``fixed_acidity``);
each field keeps the feature's own name (``key``). A model with no published version has the fixed fields
typed and its inputs and prediction typed per hour from the values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlopsctl.bundle.signature import Signature
from mlopsctl.store.base import Store

INPUTS = "inputs"
PREDICTION = "prediction"
TYPES = ("string", "double", "int64", "bool")
ATHENA = {"string": "string", "double": "double", "int64": "bigint", "bool": "boolean"}
PARTITION = ("day", "string", "the UTC day of the hour (YYYY-MM-DD): the folder of the part, projected by Athena")

# (name, type, what it holds), in the order the server writes a record's keys; inputs and prediction take their
# place from the signature
FIXED: tuple[tuple[str, str, str], ...] = (
    ("request_id", "string", "the request's id (X-Request-Id or generated): feedback joins on it and row"),
    ("time", "double", "when the server answered, seconds since the epoch (UTC)"),
    ("model", "string", "the model's name"),
    ("version", "int64", "the model version that answered"),
    ("variant", "string", "the deployment variant: the alias (prod), an A/B arm, or shadow-… for a shadow's answer"),
    ("endpoint", "string", "the route asked: predict, invocations (MLflow) or infer (Open Inference v2)"),
    ("status", "int64", "HTTP status: 200 answered; 4xx refused (inputs and prediction null, error set)"),
    ("latency_ms", "double", "time to answer the request, milliseconds"),
    ("unit", "string", "the hashed sticky key of a request an experiment routed, else null"),
    ("row", "int64", "the row's index in its request (0 for a one-row request)"),
    (INPUTS, "struct", "the row's features as received, one field per feature of any version"),
    (PREDICTION, "", "the model's answer for the row"),
    ("confidence", "double", "a classifier's highest class probability; null for a regression"),
    ("error", "string", "why the request was refused (status 4xx), else null"),
)


@dataclass(frozen=True)
class Field:
    """One column, or one field of ``inputs``: its name in the table, the record key it holds, its type."""

    name: str
    key: str
    type: str  # string | double | int64 | bool
    doc: str

    @property
    def athena(self) -> str:
        return ATHENA[self.type]

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "key": self.key, "type": self.type, "athena": self.athena, "doc": self.doc}


@dataclass(frozen=True)
class CaptureSchema:
    """A model's capture table. ``inputs`` None: no published version says what they are (typed per hour)."""

    model: str
    columns: tuple[Field, ...]  # top-level, in table order, without inputs; prediction when it is known
    inputs: tuple[Field, ...] | None
    versions: tuple[int, ...] = ()

    @property
    def known(self) -> bool:
        return self.inputs is not None

    def column(self, key: str) -> Field | None:
        return next((f for f in self.columns if f.key == key), None)

    def table_columns(self) -> list[tuple[str, str, str]]:
        """(name, Athena type, what it holds) of every column of the table, in order (no partition column)."""
        out = []
        for name, _, doc in FIXED:
            if name == INPUTS:
                if self.inputs:
                    fields = ",".join(f"{f.name}:{f.athena}" for f in self.inputs)
                    out.append((INPUTS, f"struct<{fields}>", doc))
                continue
            f = self.column(name)
            if f is not None:
                out.append((f.name, f.athena, f.doc))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "table": table_name(self.model),
            "versions": list(self.versions),
            "columns": [
                {"name": n, "athena": t, "doc": d}
                | ({"fields": [f.to_dict() for f in self.inputs or ()]} if n == INPUTS else {})
                | ({"type": c.type} if (c := self.column(n)) is not None else {"type": "struct"})
                for n, t, d in self.table_columns()
            ],
            "partition": {"name": PARTITION[0], "athena": PARTITION[1], "doc": PARTITION[2]},
        }


def athena_name(text: str) -> str:
    """An Athena column (or table) name for ``text``: lowercase letters, digits and ``_``, not starting with a
    digit (``fixed acidity`` → ``fixed_acidity``, ``emp.var.rate`` → ``emp_var_rate``)."""
    name = re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_") or "column"
    return f"c_{name}" if name[0].isdigit() else name


def table_name(model: str) -> str:
    """The model's capture table in Glue and Athena: ``capture_`` and its name (``wine-alcohol`` →
    ``capture_wine_alcohol``)."""
    return "capture_" + athena_name(model)


def _fixed(name: str) -> Field:
    ftype, doc = next((t, d) for n, t, d in FIXED if n == name)
    return Field(name, name, ftype, doc)


def _class_type(classes: Sequence[Any] | None) -> str:
    kinds = {type(c) for c in classes or ()}
    if kinds == {bool}:
        return "bool"
    if kinds == {int}:
        return "int64"
    if kinds and kinds <= {int, float}:
        return "double"
    return "string"  # strings, or classes unknown or mixed (a value of another kind is kept beside the row)


def prediction_type(sig: Signature) -> str:
    return "double" if sig.regression else _class_type(sig.classes)


def from_signatures(model: str, signatures: Sequence[tuple[int, Signature]]) -> CaptureSchema:
    """The table of ``model`` whose versions (number, signature) are given, oldest first."""
    top = [_fixed(n) for n, t, _ in FIXED if t not in ("struct", "")]
    if not signatures:
        return CaptureSchema(model, tuple(top), None)
    inputs: list[Field] = []
    taken: set[str] = set()
    seen: set[str] = set()
    for _, sig in signatures:
        for feat in sig.inputs:
            if feat.name in seen:
                continue
            seen.add(feat.name)
            name, n = athena_name(feat.name), 2
            while name in taken:  # "a b" and "a_b" both in a model: the second is a_b_2
                name, n = f"{athena_name(feat.name)}_{n}", n + 1
            taken.add(name)
            ftype = "double" if feat.numeric else "string"
            inputs.append(Field(name, feat.name, ftype, f"{feat.kind} feature {feat.name!r}"))
    first = signatures[0][1]
    doc = (
        "the predicted value"
        if first.regression
        else f"the predicted class ({', '.join(map(str, first.classes or ()))})"
    )
    pred = Field(PREDICTION, PREDICTION, prediction_type(first), doc)
    at = next(i for i, f in enumerate(top) if f.name == "confidence")
    top.insert(at, pred)
    return CaptureSchema(model, tuple(top), tuple(inputs), tuple(v for v, _ in signatures))


def schema_of(store: Store, model: str) -> CaptureSchema:
    """``model``'s table from the signatures of its published versions (read and checked from the store)."""
    from mlopsctl.bundle.version import version_at
    from mlopsctl.registry.versions import version_numbers

    sigs = [(v, version_at(store, model, v).signature) for v in version_numbers(store, model)]
    return from_signatures(model, sigs)


def ddl(schema: CaptureSchema, location: str, *, database: str = "mlopsctl", first_day: str = "2024-01-01") -> str:
    """Athena's ``CREATE EXTERNAL TABLE`` for the model's compacted capture at ``location``
    (``s3://BUCKET/PREFIX/capture-parquet/MODEL/``), days projected from ``first_day`` to now."""
    location = location.rstrip("/") + "/"
    cols = ",\n".join(f"  `{n}` {t} COMMENT '{_sql_text(d)}'" for n, t, d in schema.table_columns())
    props = {
        **projection(first_day, location),
        "parquet.compression": "ZSTD",
    }
    tbl = ",\n".join(f"  '{k}' = '{v}'" for k, v in props.items())
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{table_name(schema.model)}` (\n{cols}\n)\n"
        f"COMMENT 'mlopsctl capture of model {_sql_text(schema.model)}, compacted by the hour'\n"
        f"PARTITIONED BY (`{PARTITION[0]}` {PARTITION[1]} COMMENT '{_sql_text(PARTITION[2])}')\n"
        f"STORED AS PARQUET\nLOCATION '{location}'\nTBLPROPERTIES (\n{tbl}\n);\n"
    )


def projection(first_day: str, location: str) -> dict[str, str]:
    """The table properties of partition projection on the day folder (Glue's and the DDL's alike)."""
    day = PARTITION[0]
    return {
        "projection.enabled": "true",
        f"projection.{day}.type": "date",
        f"projection.{day}.format": "yyyy-MM-dd",
        f"projection.{day}.range": f"{first_day},NOW",
        f"projection.{day}.interval": "1",
        f"projection.{day}.interval.unit": "DAYS",
        "storage.location.template": location.rstrip("/") + "/${" + day + "}/",
    }


def _sql_text(text: str) -> str:
    return text.replace("'", "''")
