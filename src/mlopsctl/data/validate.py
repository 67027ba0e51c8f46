"""Validation: every problem a table has, on its own or against a reference schema.

This module owns the checks run on data before it is trained on, scored or
compared: empty tables, missing and extra columns, values of the wrong type,
missing values, infinite numbers, values outside the training range, categories
never seen in training, constant columns and a missing, incomplete or
single-valued target. Given the project's `TrainingRules` it also checks what
training needs of the data: enough rows of every class for the holdout and the
CV folds, and categorical features with no more levels than one-hot encoding can
hold. Checks never stop at the first problem: the report lists them all, each
naming the column, the check, how many rows it affects and example values.

Severity follows what the pipelines can absorb: they impute missing values and
tolerate unseen categories and out-of-range values (warnings), but they cannot
use a missing column, text in a numeric column, an infinite number or a row
without a target (errors).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlopsctl.data.read import describe_not_numbers
from mlopsctl.data.schema import ColumnSchema, Kind, Schema, category_key, column_dtype, infer_kind, not_numbers
from mlopsctl.errors import DataError, DataErrors, ValidationError

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
    "infinite",
    "classes",
    "rows",
    "cardinality",
]
Severity = Literal["error", "warning"]
_EXAMPLES = 5
_REGRESSION = "regression"


@dataclass(frozen=True)
class TrainingRules:
    """What training asks of its data beyond what any table needs, from the project's config.

    A classification target needs enough rows of every class for a stratified holdout of ``test_size``
    and ``cv_folds`` CV folds on the rest; a categorical feature may have at most ``max_categories``
    levels (None: unbounded, e.g. for an entrypoint that encodes its own way).
    """

    task: str = "classification"
    cv_folds: int = 5
    test_size: float = 0.2
    max_categories: int | None = 1000
    model: str = ""
    text_columns: tuple[str, ...] = ()
    categorical_columns: tuple[str, ...] = ()
    coerce: tuple[str, ...] = ()

    @classmethod
    def of(cls, config: Any) -> TrainingRules:
        """The rules of a project's `Config` (its [training] and [data] sections)."""
        t, d = config.training, config.data
        return cls(
            task=t.task,
            cv_folds=t.cv_folds,
            test_size=t.test_size,
            max_categories=None if t.entrypoint else d.max_categories,
            model="" if t.entrypoint else t.model,
            text_columns=tuple(d.text_columns or ()),
            categorical_columns=tuple(d.categorical_columns or ()),
            coerce=tuple(d.coerce),
        )

    @property
    def folds(self) -> int:
        """CV folds actually run (0 and 1 turn cross-validation off)."""
        return self.cv_folds if self.cv_folds >= 2 else 0

    def rows_needed(self) -> int:
        """Rows of each class (or, for regression, in all) that the holdout split and the CV folds need."""
        if not self.folds:
            return 2
        return max(2, math.ceil(self.folds / (1 - self.test_size) - 1e-9))

    def folds_possible(self, rows: int) -> int:
        """The most CV folds ``rows`` rows of a class allow (below 2: none)."""
        return math.floor(rows * (1 - self.test_size) + 1e-9)

    def kind_of(self, s: pd.Series, name: str) -> Kind:
        if name in self.text_columns:
            return "text"
        if name in self.categorical_columns:
            return "categorical"
        return infer_kind(s, column_dtype(s))


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

    def refusal(self, source: str, how: str = "") -> DataError:
        """What a command refuses the data with: a line for each column holding values that are not numbers
        (a type error names its column and lines, whatever else is wrong), then the first other error with
        how many more there are and where they are listed (``how``, e.g. "listed above")."""
        typed = [p for p in self.errors if p.check == "wrong_type"]
        others = [p for p in self.errors if p.check != "wrong_type"]
        lines = [DataError(source, p.detail, column=p.column or None) for p in typed]
        if others:
            more = len(others) - 1
            where = f" {how}" if how else f": `mlopsctl data validate {source}` lists them"
            tail = f" (and {more} more error(s){where})" if more else ""
            lines.append(DataError(source, others[0].detail + tail, column=others[0].column or None))
        return lines[0] if len(lines) == 1 else DataErrors(lines)

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
    rules: TrainingRules | None = None,
) -> ValidationReport:
    """Check ``df`` on its own, or against ``schema`` (the reference data's schema).

    ``target`` names a column that must be present, complete, finite and hold more than one value. With a
    schema and no ``target``, the schema's target is checked only if the data has it, so scoring data without
    labels validates cleanly. ``rules`` (with ``target``) add what training needs: rows per class for the
    holdout and CV folds, and bounded categorical levels.
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
                f"target column is missing; columns are: {', '.join(columns)}{headerless_hint(columns)}",
                "error",
            )
        )
    training = rules if required_target in columns else None

    if schema is None:
        for name in columns:
            _check_plain(
                data[name], name, report, is_target=name == target, max_null_rate=max_null_rate, rules=training
            )
    else:
        _check_schema(data, schema, report, target=target, max_null_rate=max_null_rate)
    if required_target is not None and required_target in columns:
        _check_target_values(data[required_target], required_target, report)
        if training is not None:
            _check_training(data, required_target, schema, training, report)
    return report


def headerless_hint(columns: list[str]) -> str:
    """What to add to "column not found" when the reader named the columns col_0, col_1… (no header row)."""
    if columns and all(c == f"col_{i}" for i, c in enumerate(columns)):
        return " (the file has no header row: name its columns with [data] columns, or `init --columns a,b,…`)"
    return ""


def _check_schema(
    data: pd.DataFrame, schema: Schema, report: ValidationReport, *, target: str | None, max_null_rate: float
) -> None:
    add = report.problems.append
    columns = list(data.columns)
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


def _check_plain(
    s: pd.Series,
    name: str,
    report: ValidationReport,
    *,
    is_target: bool,
    max_null_rate: float,
    rules: TrainingRules | None = None,
) -> None:
    _check_nulls(s, name, report, nullable=True, is_target=is_target, max_null_rate=max_null_rate)
    _check_infinite(s, name, report, is_target=is_target)
    present = s.dropna()
    if not (is_target and rules is not None and rules.task != _REGRESSION):  # a class may be any string
        _check_numbers(s, name, report, rules)
    if len(s) >= 2 and not present.empty and present.nunique() == 1 and not is_target:
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
            numbers = pd.to_numeric(present.astype(object), errors="coerce")
            bad = not_numbers(s, numeric=True)
            if bad is not None:
                said = describe_not_numbers(s, bad)
                add(
                    Problem(
                        col.name,
                        "wrong_type",
                        bad.n_bad,
                        f"{said}: the reference data {_number_fix(col.name)}",
                        "error",
                    )
                )
            numbers = numbers.dropna()
        _check_infinite(numbers, col.name, report, is_target=is_target)
        numbers = numbers[np.isfinite(numbers.to_numpy(dtype="float64"))]
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


def _check_infinite(s: pd.Series, name: str, report: ValidationReport, *, is_target: bool) -> None:
    """inf and -inf: no model can fit them and imputation does not replace them."""
    if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
        return
    values = s.to_numpy(dtype="float64", na_value=np.nan)
    where = np.flatnonzero(np.isinf(values))
    if where.size == 0:
        return
    what = _count(int(where.size), "target value" if is_target else "value")
    fix = "fix those rows or remove them" if is_target else "replace them with numbers or leave them empty (imputed)"
    report.problems.append(
        Problem(
            name,
            "infinite",
            int(where.size),
            f"{what} infinite (inf or -inf), first in data row {int(where[0]) + 1}: {fix}",
            "error",
        )
    )


def _check_numbers(s: pd.Series, name: str, report: ValidationReport, rules: TrainingRules | None) -> None:
    """A numeric column with a few words in it ("strong" among the alcohol values): a typo that would turn a
    number into a category. An error naming the values and their lines, unless the project says the column is
    text or a category (the rule: `data.schema.not_numbers`)."""
    if rules is not None and name in (*rules.text_columns, *rules.categorical_columns):
        return
    bad = not_numbers(s)
    if bad is None:
        return
    said = describe_not_numbers(s, bad)
    report.problems.append(Problem(name, "wrong_type", bad.n_bad, f"{said}: the column {_number_fix(name)}", "error"))


def _number_fix(name: str) -> str:
    return (
        f"holds numbers (fix these values or leave them empty; [data] coerce = [{json.dumps(name)}] reads them as "
        "missing; if the column is a category, list it in [data] categorical_columns)"
    )


def _check_target_values(s: pd.Series, name: str, report: ValidationReport) -> None:
    """A target with one value has nothing to learn (and a classifier cannot be fitted on one class)."""
    present = s.dropna()
    if pd.api.types.is_numeric_dtype(present.dtype) and not pd.api.types.is_bool_dtype(present.dtype):
        present = present[np.isfinite(present.to_numpy(dtype="float64"))]
    if present.empty:
        return
    keys = present.map(category_key)
    if keys.nunique() == 1:
        report.problems.append(
            Problem(
                name,
                "target",
                len(present),
                f"every row has the same target value {_show(present.iloc[0])}: there is nothing to learn (a "
                "classifier needs at least two classes): check the target column, or add rows with other values",
                "error",
            )
        )


def _check_training(
    data: pd.DataFrame, target: str, schema: Schema | None, rules: TrainingRules, report: ValidationReport
) -> None:
    named = (
        ("text_columns", rules.text_columns),
        ("categorical_columns", rules.categorical_columns),
        ("coerce", rules.coerce),
    )
    for key, names in named:
        for name in names:
            if name not in data.columns:
                detail = f"named in [data] {key} but not a column of the data; columns are: {', '.join(data.columns)}"
                report.problems.append(Problem(name, "missing_column", 0, detail, "error"))
    y = data[target].dropna()
    if pd.api.types.is_numeric_dtype(y.dtype) and not pd.api.types.is_bool_dtype(y.dtype):
        y = y[np.isfinite(y.to_numpy(dtype="float64"))]
    if rules.task == _REGRESSION:
        _check_rows(len(y), target, rules, report)
    else:
        _check_classes(y.map(category_key).value_counts(), target, rules, report)
    if rules.max_categories is None:
        return
    for name in data.columns:
        if name == target:
            continue
        s = data[name]
        if schema is not None and name in schema:
            kind = schema.column(name).kind
        else:
            kind = rules.kind_of(s, name)
        if kind == "categorical":
            _check_levels(s, name, len(data), rules, report)


def _check_rows(n: int, target: str, rules: TrainingRules, report: ValidationReport) -> None:
    needed = rules.rows_needed()
    if n >= needed:
        return
    report.problems.append(
        Problem(
            target,
            "rows",
            n,
            f"{n} row(s) with a target value: {_split(rules)} need at least {needed}: add rows"
            + (" or lower [training] cv_folds" if rules.folds else ""),
            "error",
        )
    )


def _check_classes(counts: pd.Series, target: str, rules: TrainingRules, report: ValidationReport) -> None:
    if len(counts) < 2:
        return  # one class (or none) is reported by _check_target_values
    add = report.problems.append
    needed = rules.rows_needed()
    small = counts[counts < needed].sort_values()
    # a class of one row cannot be split into a holdout and a training part: an error. Above that, training
    # runs as many CV folds as the rarest class allows (a warning says how many)
    severity: Severity = "error" if int(small.min() if not small.empty else needed) < 2 else "warning"
    if not small.empty:
        shown = ", ".join(f"class {k!r} has {v} row{'s' if v != 1 else ''}" for k, v in small.head(_EXAMPLES).items())
        if len(small) > _EXAMPLES:
            shown += f" and {len(small) - _EXAMPLES} more classes have fewer than {needed}"
        possible = rules.folds_possible(int(small.iloc[0]))
        fixes = [f"add rows of {'this class' if len(small) == 1 else 'these classes'}"]
        if rules.folds and possible >= 2:
            fixes.append(f"set [training] cv_folds = {possible} or fewer")
        elif rules.folds and int(small.iloc[0]) >= 2:
            fixes.append("set [training] cv_folds = 0 (no cross-validation)")
        fixes.append("or remove or merge the rare classes")
        fewer = rules.folds_possible(int(small.iloc[0]))
        said = (
            f"{shown}: {_split(rules)} need at least {needed} rows of each class: {', '.join(fixes)}"
            if severity == "error"
            else f"{shown}: fewer than the {needed} rows of each class that {_split(rules)} need: training runs "
            f"{max(2, fewer)} CV folds instead ({', '.join(fixes)} to run them all)"
        )
        add(Problem(target, "classes", int(small.sum()), said, severity))
    n = int(counts.sum())
    holdout = math.ceil(n * rules.test_size - 1e-9)
    if holdout < len(counts):
        add(
            Problem(
                target,
                "classes",
                n,
                f"the holdout ([training] test_size = {rules.test_size:g} of {n} rows = {holdout}) cannot hold a row "
                f"of each of the {len(counts)} classes: add rows or raise test_size",
                "error",
            )
        )


def _check_levels(s: pd.Series, name: str, n_rows: int, rules: TrainingRules, report: ValidationReport) -> None:
    assert rules.max_categories is not None
    levels = int(s.dropna().map(category_key).nunique())
    if levels <= rules.max_categories:
        return
    memory = ""
    if rules.model == "hist_gradient_boosting":  # dense float64: the fit on the training rows, the largest
        gib = n_rows * (1 - rules.test_size) * levels * 8 / 2**30
        memory = f" (hist_gradient_boosting holds them dense: about {gib:.1f} GiB)"
    report.problems.append(
        Problem(
            name,
            "cardinality",
            n_rows,
            f"{levels:,} distinct values, more than [data] max_categories = {rules.max_categories:,}: one-hot "
            f"encoding would make a column of each{memory}. Drop it ([data] drop = [{json.dumps(name)}]), hash or "
            "group it into fewer values, list it in [data] text_columns if it is free text, or raise max_categories",
            "error",
        )
    )


def _count(n: int, noun: str) -> str:
    """ "1 value is", "3 values are"."""
    return f"{n} {noun} is" if n == 1 else f"{n} {noun}s are"


def _split(rules: TrainingRules) -> str:
    holdout = f"a {rules.test_size:.0%} holdout ([training] test_size)"
    if not rules.folds:
        return holdout
    return f"{holdout} and {rules.folds} CV folds ([training] cv_folds) on the rest"


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
        add(Problem(name, "target", nulls, f"{nulls} of {n} rows have no target value: fill or remove them", "error"))
    elif nulls == n:
        fix = f"drop the column ([data] drop = [{json.dumps(name)}]) or fill it"
        add(Problem(name, "nulls", nulls, f"all {n} values are missing: {fix}", "error"))
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


__all__ = ["Problem", "TrainingRules", "ValidationReport", "headerless_hint", "validate"]
