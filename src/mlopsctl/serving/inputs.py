"""Request validation compiled from a model's input signature.

``InputSpec.columns(rows)`` turns a list of JSON objects into one list per feature, or
raises ValidationError listing every problem with its field (and row, for batches).
Field names with spaces are also accepted in snake_case (``fixed acidity`` as
``fixed_acidity``) where that is unambiguous. It also renders the JSON schema that
``/docs`` shows, so the documentation names the real features and types.
"""

from __future__ import annotations

import math
import re
from typing import Any

from mlopsctl.errors import ValidationError

MAX_PROBLEMS = 50
_REQUIRED = "a value is required (the training data had none missing)"
_INFINITIES = (math.inf, -math.inf)
# numbers are fed to models that compute in float32 (trees, onnxruntime's graphs): beyond it a value is infinity
_LIMIT = 3.4028234663852886e38


_REACH = 1e6  # a number may lie this many times the training range's scale beyond it


def accepted_range(feature: dict[str, Any]) -> tuple[float, float]:
    """The values a numeric feature accepts: the training range widened by a million times its scale (the
    span, or the size of its ends, at least 1), within float32. Far enough for any real extrapolation, near
    enough that no scaler in a model overflows float32, which scikit-learn's trees then refuse."""
    lo, hi = feature.get("min"), feature.get("max")
    if lo is None or hi is None:
        return -_LIMIT, _LIMIT
    scale = max(float(hi) - float(lo), abs(float(lo)), abs(float(hi)), 1.0)
    return max(-_LIMIT, float(lo) - _REACH * scale), min(_LIMIT, float(hi) + _REACH * scale)


def snake(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


class InputSpec:
    def __init__(self, signature: dict[str, Any]) -> None:
        self.features: list[dict[str, Any]] = list(signature["inputs"])
        self.names = [f["name"] for f in self.features]
        self.kinds = {f["name"]: f["kind"] for f in self.features}
        self.nullable = {f["name"]: bool(f.get("nullable")) for f in self.features}
        lookup = {n: n for n in self.names}
        alias_counts: dict[str, int] = {}
        for n in self.names:
            alias_counts[snake(n)] = alias_counts.get(snake(n), 0) + 1
        for n in self.names:
            a = snake(n)
            if a not in lookup and alias_counts[a] == 1:
                lookup[a] = n
        if len(self.features) == 1 and self.features[0]["kind"] == "text" and "text" not in lookup:
            lookup["text"] = self.names[0]  # a one-column text model takes {"text": "..."} whatever the column
        self.lookup = lookup
        self.numeric = [n for n in self.names if self.kinds[n] == "numeric"]
        self.bounds = {f["name"]: accepted_range(f) for f in self.features if f["kind"] == "numeric"}
        # key as sent → (feature, numeric?, nullable?, an alias?, low, high): one dict lookup per value on the hot path
        self._keys = {
            k: (n, self.kinds[n] == "numeric", self.nullable[n], k != n, *self.bounds.get(n, (-_LIMIT, _LIMIT)))
            for k, n in lookup.items()
        }

    # -- the hot path ---------------------------------------------------------------------
    def columns(self, rows: list[Any], *, field_prefix: str = "") -> dict[str, list[Any]]:
        cols: dict[str, list[Any]] = {n: [] for n in self.names}
        problems: list[tuple[str, str]] = []
        keys, nfeat, nan = self._keys, len(self.names), math.nan
        many = len(rows) > 1 or field_prefix not in ("", "features")

        def bad(i: int, field: str, problem: str) -> None:
            problems.append((self._where(i, many, field_prefix) + field, problem))

        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                where = self._where(i, many, field_prefix).rstrip(".") or "body"
                problems.append((where, f"expected an object of features, got {_type(row)}"))
                continue
            seen, aliased = 0, False
            for key, value in row.items():
                info = keys.get(key)
                if info is None:
                    bad(i, str(key), "unknown field: " + self._suggest(str(key)))
                    continue
                name, numeric, nullable, alias, low, high = info
                seen += 1
                aliased = aliased or alias
                if numeric:
                    kind = type(value)
                    if kind is float:
                        if value != value:  # NaN
                            if not nullable:
                                bad(i, key, _REQUIRED)
                                continue
                        elif not low <= value <= high:
                            bad(i, key, self._out_of_range(name, value))
                            continue
                    elif kind is int:
                        value = float(value)
                        if not low <= value <= high:
                            bad(i, key, self._out_of_range(name, value))
                            continue
                    elif value is None:
                        if not nullable:
                            bad(i, key, _REQUIRED)
                            continue
                        value = nan
                    else:
                        bad(i, key, f"expected a number, got {_show(value)}")
                        continue
                elif value is None:
                    if not nullable:
                        bad(i, key, _REQUIRED)
                        continue
                elif type(value) is not str:
                    bad(i, key, f"expected a string, got {_show(value)}")
                    continue
                cols[name].append(value)
            # without a snake_case alias in the row, its keys are distinct names: counting them is enough
            if seen != nfeat or aliased:
                self._count_fields(row, self._where(i, many, field_prefix), problems)
            if len(problems) >= MAX_PROBLEMS:
                break
        if problems:
            shown = "; ".join(f"{f}: {p}" for f, p in problems[:3]) + ("; …" if len(problems) > 3 else "")
            raise ValidationError(f"{len(problems)} problem(s) in the input: {shown}", problems[:MAX_PROBLEMS])
        return cols

    def _out_of_range(self, name: str, value: float) -> str:
        if value in _INFINITIES:
            return "expected a finite number, got infinity"
        low, high = self.bounds.get(name, (-_LIMIT, _LIMIT))
        f = next(f for f in self.features if f["name"] == name)
        if f.get("min") is None or f.get("max") is None:
            return f"{value:.3g} is out of range: numbers are at most ±3.4e38 (the models compute in float32)"
        return (
            f"{value:.6g} is far outside the training range [{f['min']:.6g}, {f['max']:.6g}]: accepted are "
            f"[{low:.3g}, {high:.3g}] (a million times the range's scale around it; beyond, a model's arithmetic "
            "overflows)"
        )

    @staticmethod
    def _where(i: int, many: bool, field_prefix: str) -> str:
        """The field path of row `i`'s fields in error messages (``instances[3].``, ``features.``)."""
        return f"{field_prefix}[{i}]." if many else (f"{field_prefix}." if field_prefix else "")

    def _count_fields(self, row: dict[str, Any], where: str, problems: list[tuple[str, str]]) -> None:
        """Report the features missing from `row`, or given twice (as the name and as its snake_case)."""
        got: dict[str, int] = {}
        for k in row:
            if k in self.lookup:
                got[self.lookup[k]] = got.get(self.lookup[k], 0) + 1
        for n in self.names:
            if n not in got:
                problems.append((where + n, "missing field"))
            elif got[n] > 1:
                problems.append((where + n, "given more than once (as its name and its snake_case)"))

    def _suggest(self, key: str) -> str:
        import difflib

        close = difflib.get_close_matches(key, list(self.lookup), n=1)
        return f"did you mean {close[0]!r}?" if close else f"expected fields are {', '.join(self.names[:20])}"

    # -- documentation --------------------------------------------------------------------
    def row_schema(self) -> dict[str, Any]:
        props: dict[str, Any] = {}
        for f in self.features:
            if f["kind"] == "numeric":
                low, high = accepted_range(f)
                p: dict[str, Any] = {"type": "number", "minimum": low, "maximum": high}
                if f.get("min") is not None:
                    p["description"] = f"training range [{f['min']}, {f['max']}]"
                    p["example"] = f["min"] if f["max"] is None else round((f["min"] + f["max"]) / 2, 4)
            else:
                p = {"type": "string"}
                if f.get("categories"):
                    p["description"] = "seen in training: " + ", ".join(map(str, f["categories"][:20]))
                    p["example"] = f["categories"][0]
                elif f["kind"] == "text":
                    p["example"] = "great product, loved it"
            if f.get("nullable"):
                p = {**p, "type": [p["type"], "null"]}  # OpenAPI 3.1: JSON Schema's own null
            props[f["name"]] = p
        return {"type": "object", "properties": props, "required": self.names, "additionalProperties": False}

    def request_schema(self, max_rows: int | None = None) -> dict[str, Any]:
        row = self.row_schema()
        many: dict[str, Any] = {"type": "array", "items": row, "minItems": 1}
        if max_rows is not None:
            many["maxItems"] = max_rows
        return {
            "oneOf": [
                {
                    "type": "object",
                    "title": "one row",
                    "properties": {"features": row},
                    "required": ["features"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "title": "many rows",
                    "properties": {"instances": many},
                    "required": ["instances"],
                    "additionalProperties": False,
                },
                {**row, "title": "one row, flat"},
            ]
        }


def _type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "…")
    if isinstance(value, bool):
        return "a boolean"
    return _type(value)


def coerce_strings(rows: list[dict[str, Any]], spec: InputSpec) -> list[dict[str, Any]]:
    """Rows read from CSV have every value as a string: turn the numeric features' values into numbers.

    Values that do not parse are left as they are, so validation reports them by field.
    """
    numeric = {k for k, n in spec.lookup.items() if spec.kinds[n] == "numeric"}
    out = []
    for row in rows:
        new = dict(row)
        for key, value in row.items():
            if key in numeric and isinstance(value, str):
                text = value.strip()
                if text == "" or text.lower() in ("na", "nan", "null", "none"):
                    new[key] = None
                else:
                    try:
                        new[key] = float(text)
                    except ValueError:
                        pass
            elif isinstance(value, str) and value == "" and spec.kinds.get(spec.lookup.get(key, ""), "") != "text":
                new[key] = None
        out.append(new)
    return out
