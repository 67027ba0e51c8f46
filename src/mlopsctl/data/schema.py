"""Schemas: what each column of a dataset is, inferred once from reference data.

This module owns the column model every other part relies on: the kind of a
column (numeric, categorical, text), its stored type, whether it had missing
values, its range or category set, and which column is the target. Validation
compares new data against a schema; training and serving read the feature list
and kinds from it. Schemas are plain JSON through ``to_dict``/``from_dict``.

Inference rules (explicit ``text_columns``/``categorical_columns`` win):

- int and float columns are numeric (``dtype`` "int" or "float");
- bool columns are categorical with ``dtype`` "bool" and categories
  ``["false", "true"]``, since a flag is a two-level category, not a quantity;
- a string/object column whose values are mostly numbers is numeric (``dtype`` "float"): at least
  ``NUMBER_SHARE`` (95 %) of its present values parse as numbers and it is not a small set of codes
  (at most ``CODES_MAX`` = 20 distinct values, every number whole, such as 1, 2, 3, "x"). The values
  that do not parse are typos, found by ``not_numbers``: validation refuses them (naming their lines)
  unless ``[data] coerce`` reads them as missing;
- other string/object columns are text when their values average at least 4
  whitespace-separated tokens, or when they are mostly unique (> 50 %) and
  average more than 30 characters; otherwise categorical (``dtype`` "string").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from mlopsctl.errors import DataError

Kind = Literal["numeric", "categorical", "text"]
DType = Literal["float", "int", "bool", "string"]
Role = Literal["feature", "target"]

KINDS: tuple[Kind, ...] = ("numeric", "categorical", "text")
DTYPES: tuple[DType, ...] = ("float", "int", "bool", "string")
ROLES: tuple[Role, ...] = ("feature", "target")

NUMBER_SHARE = 0.95  # a text column this share of whose present values are numbers is a numeric column
CODES_MAX = 20  # ...unless it has at most this many distinct values, all whole numbers or words: codes
_SAMPLE = 200  # values looked at first: a column whose first ones are mostly words is not parsed whole
_EXAMPLES = 5
_TEXT_MIN_TOKENS = 4.0
_TEXT_MIN_UNIQUE = 0.5
_TEXT_MIN_LENGTH = 30.0
_SOURCE = "dataframe"  # what DataError names when there is no file


@dataclass
class ColumnSchema:
    name: str
    kind: Kind
    dtype: DType
    nullable: bool
    null_rate: float
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    role: Role = "feature"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "nullable": self.nullable,
            "null_rate": self.null_rate,
            "min": self.min,
            "max": self.max,
            "categories": list(self.categories) if self.categories is not None else None,
            "role": self.role,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnSchema:
        try:
            name = str(d["name"])
            kind, dtype, role = d["kind"], d["dtype"], d.get("role", "feature")
        except (KeyError, TypeError) as e:
            raise DataError("schema", f"column entry is missing {e}") from None
        for value, allowed, what in ((kind, KINDS, "kind"), (dtype, DTYPES, "dtype"), (role, ROLES, "role")):
            if value not in allowed:
                raise DataError("schema", f"{what} {value!r} is not one of {', '.join(allowed)}", column=name)
        cats = d.get("categories")
        return cls(
            name=name,
            kind=cast(Kind, kind),
            dtype=cast(DType, dtype),
            nullable=bool(d.get("nullable", True)),
            null_rate=float(d.get("null_rate", 0.0)),
            min=_opt_float(d.get("min")),
            max=_opt_float(d.get("max")),
            categories=[str(c) for c in cats] if cats is not None else None,
            role=cast(Role, role),
        )


@dataclass
class Schema:
    columns: list[ColumnSchema] = field(default_factory=list)
    target: str | None = None

    @property
    def features(self) -> list[ColumnSchema]:
        return [c for c in self.columns if c.role == "feature"]

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.features]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSchema:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"column {name!r} is not in the schema; columns are: {', '.join(self.names)}")

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.columns)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "columns": [c.to_dict() for c in self.columns]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schema:
        if not isinstance(d, dict) or not isinstance(d.get("columns"), list):
            raise DataError("schema", "expected an object with a 'columns' list")
        schema = cls(columns=[ColumnSchema.from_dict(c) for c in d["columns"]], target=d.get("target"))
        if schema.target is not None and schema.target not in schema:
            raise DataError("schema", "target is not among the columns", column=schema.target)
        return schema


def infer_schema(
    df: pd.DataFrame,
    target: str | None = None,
    *,
    text_columns: list[str] | None = None,
    categorical_columns: list[str] | None = None,
    max_categories: int = 50,
) -> Schema:
    """The schema of ``df``, with ``target`` (if given) marked as the target column."""
    available = [str(c) for c in df.columns]
    if target is not None and target not in available:
        raise DataError(_SOURCE, f"target column not found; columns are: {', '.join(available)}", column=target)
    text = set(text_columns or ())
    cats = set(categorical_columns or ())
    unknown = sorted((text | cats) - set(available))
    if unknown:
        raise DataError(
            _SOURCE,
            f"[data] text_columns or categorical_columns names a column that is not there; "
            f"columns are: {', '.join(available)}",
            column=unknown[0],
        )
    both = sorted(text & cats)
    if both:
        raise DataError(_SOURCE, "column is listed both as text and as categorical", column=both[0])

    columns = []
    for col in df.columns:
        name = str(col)
        forced: Kind | None = "text" if name in text else "categorical" if name in cats else None
        columns.append(
            infer_column(
                df[col],
                name,
                forced=forced,
                max_categories=max_categories,
                role="target" if name == target else "feature",
            )
        )
    return Schema(columns=columns, target=target)


def infer_column(
    s: pd.Series, name: str, *, forced: Kind | None = None, max_categories: int = 50, role: Role = "feature"
) -> ColumnSchema:
    """One column's schema (see the module docstring for the rules)."""
    n = len(s)
    nulls = int(s.isna().sum())
    dtype = column_dtype(s)
    kind = forced or infer_kind(s, dtype)
    if kind == "numeric" and dtype == "string":  # numbers with typos: the numbers are what it holds
        dtype = "float"
    col = ColumnSchema(
        name=name, kind=kind, dtype=dtype, nullable=nulls > 0, null_rate=nulls / n if n else 0.0, role=role
    )
    present = s.dropna()
    if kind == "numeric":
        numbers = pd.to_numeric(present, errors="coerce").dropna()
        if not numbers.empty:
            col.min, col.max = float(numbers.min()), float(numbers.max())
    elif kind == "categorical":
        levels = sorted({category_key(v) for v in present.tolist()})
        col.categories = levels if len(levels) <= max_categories else None
    return col


def column_dtype(s: pd.Series) -> DType:
    if pd.api.types.is_bool_dtype(s.dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(s.dtype):
        return "int"
    if pd.api.types.is_float_dtype(s.dtype):
        return "float"
    return "string"


def category_key(value: Any) -> str:
    """The string a category value is known by, identical for 3, 3.0, "3" and numpy scalars.

    Integer-valued floats drop their ".0" because a column of ints turns float as
    soon as one value is missing; booleans are lower-case like JSON's.
    """
    if isinstance(value, str):
        return value
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # numpy scalar -> Python scalar
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class NotNumbers:
    """The values of a numeric column that are not numbers: how many, of how many present, and the first
    few with their positions in the column (0-based; `data.read.row_places` turns them into file lines)."""

    n_bad: int
    n_present: int
    positions: tuple[int, ...]
    values: tuple[str, ...]


def not_numbers(s: pd.Series, *, numeric: bool = False) -> NotNumbers | None:
    """The values of ``s`` that are not numbers, when ``s`` is a numeric column with some (None otherwise).

    ``s`` is numeric by the inference rule (module docstring: ``NUMBER_SHARE`` of its values are numbers and
    it is not a small set of codes), or because ``numeric`` says so (a schema or ``[data] coerce`` does).
    """
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        return None
    present = s.notna().to_numpy()
    n_present = int(present.sum())
    if n_present == 0:
        return None
    if not numeric:
        head = s[present][:_SAMPLE]
        parsed_head = pd.to_numeric(head.astype(object), errors="coerce")
        if int(parsed_head.notna().sum()) < NUMBER_SHARE * len(head) - 1:
            return None  # mostly words from the start: not worth parsing a long column
    numbers = pd.to_numeric(s.astype(object), errors="coerce")
    bad = present & numbers.isna().to_numpy()
    n_bad = int(bad.sum())
    if n_bad == 0:
        return None
    if not numeric:
        if n_present - n_bad < NUMBER_SHARE * n_present:
            return None
        parsed = numbers.dropna().to_numpy(dtype="float64")
        whole = bool(((parsed == parsed.round()) | ~np.isfinite(parsed)).all())
        if whole and s[present].astype(str).nunique() <= CODES_MAX:
            return None
    where = np.flatnonzero(bad)[:_EXAMPLES]
    values = s.iloc[where].astype(str).tolist()
    return NotNumbers(n_bad, n_present, tuple(int(i) for i in where), tuple(values))


def infer_kind(s: pd.Series, dtype: DType) -> Kind:
    """The kind of a column with no override (see the module docstring for the rules)."""
    if dtype in ("int", "float"):
        return "numeric"
    if dtype == "bool":
        return "categorical"
    present = s.dropna()
    if present.empty:
        return "categorical"
    if not_numbers(s) is not None:
        return "numeric"
    strings = present.astype(str)
    tokens = float(strings.str.count(r"\S+").mean())
    length = float(strings.str.len().mean())
    unique = strings.nunique() / len(strings)
    if tokens >= _TEXT_MIN_TOKENS or (unique > _TEXT_MIN_UNIQUE and length > _TEXT_MIN_LENGTH):
        return "text"
    return "categorical"


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


__all__ = [
    "CODES_MAX",
    "NUMBER_SHARE",
    "ColumnSchema",
    "NotNumbers",
    "Schema",
    "category_key",
    "column_dtype",
    "infer_column",
    "infer_kind",
    "infer_schema",
    "not_numbers",
]
