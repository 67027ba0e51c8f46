"""Validation: every problem a table has, on its own or against a reference schema.

This module owns the checks run on data before it is trained on, scored or
compared: empty tables, missing and extra columns, values of the wrong type,
missing values, values outside the training range, categories never seen in
training, constant columns and a missing or incomplete target. Checks never stop
at the first problem: the report lists them all, each naming the column, the
check, how many rows it affects and example values.

Severity follows what the pipelines can absorb: they impute missing values and
tolerate unseen categories and out-of-range values (warnings), but they cannot
use a missing column, text in a numeric column or a row without a target (errors).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pandas as pd

from mlopsctl.data.schema import ColumnSchema, Schema, category_key
from mlopsctl.errors import ValidationError

Check = Literal[
    "missing_column",
    "extra_column",
    "wrong_type",
    "nulls",
    "out_of_range",
    "unseen_category",
    "empty",
    "constant",
    "target",
]
Severity = Literal["error", "warning"]
_EXAMPLES = 5


@dataclass
class Problem:
    column: str
    check: Check
    rows: int
    detail: str
    severity: Severity

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = f"column {self.column!r}" if self.column else "table"
        return f"{self.severity}: {where}: {self.check}: {self.detail}"


@dataclass
class ValidationReport:
    n_rows: int
    n_columns: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem is an error (warnings allowed)."""
        return not self.errors

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def for_column(self, column: str) -> list[Problem]:
        return [p for p in self.problems if p.column == column]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "n_rows": self.n_rows,
            "n_columns": self.n_columns,
            "n_errors": len(self.errors),
            "n_warnings": len(self.warnings),
            "problems": [p.to_dict() for p in self.problems],
        }

    def raise_for_errors(self, source: str = "data") -> None:
        """Raise ValidationError listing every error (field = column), if there is any."""
        if self.errors:
            lines = "; ".join(f"{p.column or 'table'}: {p.detail}" for p in self.errors)
            raise ValidationError(
                f"{source}: {len(self.errors)} validation error(s): {lines}",
                [(p.column, p.detail) for p in self.errors],
            )


def validate(
    df: pd.DataFrame,
    schema: Schema | None = None,
    *,
    target: str | None = None,
    max_null_rate: float = 0.5,
) -> ValidationReport:
    """Check ``df`` on its own, or against ``schema`` (the reference data's schema).

    ``target`` names a column that must be present and complete. With a schema and
    no ``target``, the schema's target is checked only if the data has it, so
    scoring data without labels validates cleanly.
    """
    report = ValidationReport(n_rows=len(df), n_columns=df.shape[1])
    add = report.problems.append
    columns = [str(c) for c in df.columns]
    data = df.set_axis(columns, axis=1)
    if len(df) == 0:
        add(Problem("", "empty", 0, "the table has no rows", "error"))

    required_target = target
    target = target if target is not None else (schema.target if schema else None)
    if required_target is not None and required_target not in columns:
        add(
            Problem(
                required_target,
                "target",
                0,
                f"target column is missing; columns are: {', '.join(columns)}",
                "error",
            )
        )

    if schema is None:
        for name in columns:
            _check_plain(data[name], name, report, is_target=name == target, max_null_rate=max_null_rate)
        return report

    for col in schema.features:
        if col.name not in columns:
            add(
                Problem(
                    col.name,
                    "missing_column",
                    0,
                    f"expected by the schema ({col.kind}, {col.dtype}) but not in the data",
                    "error",
                )
            )
    known = set(schema.names) | ({target} if target else set())
    for name in columns:
        if name not in known:
            add(Problem(name, "extra_column", 0, "not in the schema; it will be ignored", "warning"))
        elif name in schema:
            _check_against(
                data[name], schema.column(name), report, is_target=name == target, max_null_rate=max_null_rate
            )
        else:  # the target, named by the caller but absent from the schema
            _check_plain(data[name], name, report, is_target=True, max_null_rate=max_null_rate)
    return report


def _check_plain(s: pd.Series, name: str, report: ValidationReport, *, is_target: bool, max_null_rate: float) -> None:
    _check_nulls(s, name, report, nullable=True, is_target=is_target, max_null_rate=max_null_rate)
    present = s.dropna()
    if len(s) >= 2 and not present.empty and present.nunique() == 1:
        report.problems.append(Problem(name, "constant", len(s), f"every value is {_show(present.iloc[0])}", "warning"))


def _check_against(
    s: pd.Series, col: ColumnSchema, report: ValidationReport, *, is_target: bool, max_null_rate: float
) -> None:
    add = report.problems.append
    _check_nulls(s, col.name, report, nullable=col.nullable, is_target=is_target, max_null_rate=max_null_rate)
    present = s.dropna()
    if present.empty:
        return
    if col.kind == "numeric":
        if pd.api.types.is_numeric_dtype(present.dtype):
            numbers = present.astype("float64")
        else:
            numbers = pd.to_numeric(present, errors="coerce")
            bad = present[numbers.isna()]
            if not bad.empty:
                add(
                    Problem(
                        col.name,
                        "wrong_type",
                        len(bad),
                        f"{len(bad)} values are not numbers, e.g. {_examples(bad)}",
                        "error",
                    )
                )
            numbers = numbers.dropna()
        if col.min is not None and col.max is not None and not numbers.empty:
            outside = numbers[(numbers < col.min) | (numbers > col.max)]
            if not outside.empty:
                add(
                    Problem(
                        col.name,
                        "out_of_range",
                        len(outside),
                        f"{len(outside)} values outside the training range [{_num(col.min)}, "
                        f"{_num(col.max)}] (min seen {_num(numbers.min())}, max seen {_num(numbers.max())})",
                        "warning",
                    )
                )
    elif col.kind == "categorical" and col.categories is not None:
        keys = present.map(category_key)
        unseen = keys[~keys.isin(set(col.categories))]
        if not unseen.empty:
            add(
                Problem(
                    col.name,
                    "unseen_category",
                    len(unseen),
                    f"{len(unseen)} rows have categories not seen in training: {_examples(unseen)}",
                    "warning",
                )
            )


def _check_nulls(
    s: pd.Series,
    name: str,
    report: ValidationReport,
    *,
    nullable: bool,
    is_target: bool,
    max_null_rate: float,
) -> None:
    n, nulls = len(s), int(s.isna().sum())
    if n == 0 or nulls == 0:
        return
    add = report.problems.append
    if is_target:
        add(Problem(name, "target", nulls, f"{nulls} of {n} rows have no target value", "error"))
    elif nulls == n:
        add(Problem(name, "nulls", nulls, f"all {n} values are missing", "error"))
    elif not nullable:
        add(
            Problem(
                name,
                "nulls",
                nulls,
                f"{nulls} of {n} values are missing; the reference data had none (they will be imputed)",
                "warning",
            )
        )
    elif nulls / n > max_null_rate:
        add(
            Problem(
                name,
                "nulls",
                nulls,
                f"{nulls} of {n} values are missing ({nulls / n:.0%}, above {max_null_rate:.0%})",
                "warning",
            )
        )


def _examples(values: pd.Series) -> str:
    """The most frequent values with their counts: "'x' (3), 'y' (1)" (up to five)."""
    counts = values.astype(str).value_counts()
    shown = ", ".join(f"{v!r} ({c})" for v, c in counts.head(_EXAMPLES).items())
    more = len(counts) - _EXAMPLES
    return shown + (f" and {more} more" if more > 0 else "")


def _show(v: Any) -> str:
    key = category_key(v)
    return repr(key) if isinstance(v, str) else key


def _num(v: Any) -> str:
    return repr(float(v))


__all__ = ["Problem", "ValidationReport", "validate"]
