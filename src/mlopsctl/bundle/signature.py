"""A model version's signature: the features it takes (name, kind, type, range or categories), its
target, task and classes. Written once at publish as ``signature.json``; read back only here.

Like scikit-learn's FrozenEstimator, a `Signature` is read-only: built from a schema at publish,
or parsed from the file, and never edited.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mlopsctl.bundle.task import Task, check_task, is_regression
from mlopsctl.errors import IntegrityError, ValidationError

Kind = Literal["numeric", "categorical", "text"]
KINDS: tuple[Kind, ...] = ("numeric", "categorical", "text")


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Kind
    dtype: str = "float"
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None

    @property
    def numeric(self) -> bool:
        return self.kind == "numeric"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "nullable": self.nullable,
            "min": self.min,
            "max": self.max,
            "categories": None if self.categories is None else list(self.categories),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Feature:
        kind = d.get("kind")
        if kind not in KINDS:
            raise ValueError(f"feature {d.get('name')!r}: kind must be one of {', '.join(KINDS)}; got {kind!r}")
        cats = d.get("categories")
        return cls(
            name=str(d["name"]),
            kind=kind,
            dtype=str(d.get("dtype") or ("float" if kind == "numeric" else "string")),
            nullable=bool(d.get("nullable", True)),
            min=None if d.get("min") is None else float(d["min"]),
            max=None if d.get("max") is None else float(d["max"]),
            categories=None if cats is None else tuple(str(c) for c in cats),
        )


@dataclass(frozen=True)
class Signature:
    inputs: tuple[Feature, ...]
    target: str
    task: Task
    classes: tuple[Any, ...] | None = None
    _dict: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_task(self.task)
        if not self.inputs:
            raise ValidationError("a signature needs at least one input feature", [("inputs", "empty")])
        names = [f.name for f in self.inputs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValidationError(f"feature names must be unique; repeated: {', '.join(dup)}", [(dup[0], "repeated")])
        if not is_regression(self.task) and self.classes is not None and len(self.classes) < 2:
            raise ValidationError(
                f"a classifier needs at least two classes; got {list(self.classes)}", [("classes", "fewer than 2")]
            )
        object.__setattr__(self, "_dict", self._as_dict())

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.inputs]

    @property
    def regression(self) -> bool:
        return is_regression(self.task)

    def feature(self, name: str) -> Feature:
        for f in self.inputs:
            if f.name == name:
                return f
        raise KeyError(name)

    def kinds(self, kind: str) -> list[str]:
        """The names of the features of one kind, in order."""
        return [f.name for f in self.inputs if f.kind == kind]

    def same_inputs(self, other: Signature) -> bool:
        """Whether ``other`` takes the same features (names and kinds, in order) and predicts the same target."""
        return [(f.name, f.kind) for f in self.inputs] == [(f.name, f.kind) for f in other.inputs] and (
            self.target == other.target
        )

    def differences(self, control: Signature, *, name: str = "candidate", control_name: str = "control") -> list[str]:
        """How this (a candidate's) signature differs from ``control``'s in what a request must hold, one
        sentence each, naming the columns: columns added or dropped, a column of another kind (a number, a
        category, text, a true/false flag), another target or task. Empty when requests fit both alike
        (column order and training ranges do not matter to a request)."""
        mine, theirs = {f.name: f for f in self.inputs}, {f.name: f for f in control.inputs}
        out = []
        added = [n for n in mine if n not in theirs]
        dropped = [n for n in theirs if n not in mine]
        if added:
            out.append(f"candidate {name} adds {_columns(added)}")
        if dropped:
            out.append(f"candidate {name} drops {_columns(dropped)} that {control_name} takes")
        for n, f in mine.items():
            other = theirs.get(n)
            if other is not None and _type_word(f) != _type_word(other):
                out.append(f"{n!r} is {_type_word(f)} in {name}, {_type_word(other)} in {control_name}")
        if self.target != control.target:
            out.append(f"{name} predicts {self.target!r}, {control_name} predicts {control.target!r}")
        if self.task != control.task:
            out.append(f"{name} is a {self.task} model, {control_name} a {control.task} model")
        return out

    # -- as data ----------------------------------------------------------------------------------
    def _as_dict(self) -> dict[str, Any]:
        return {
            "inputs": [f.to_dict() for f in self.inputs],
            "target": self.target,
            "task": self.task,
            "classes": None if self.classes is None else list(self.classes),
        }

    def to_dict(self) -> dict[str, Any]:
        """The signature as ``signature.json`` holds it (a fresh copy)."""
        out: dict[str, Any] = json.loads(json.dumps(self._dict))
        return out

    def input_dicts(self) -> list[dict[str, Any]]:
        """The features as plain dicts (for the exporters and validators that take JSON)."""
        return [f.to_dict() for f in self.inputs]

    def to_json(self) -> bytes:
        return (json.dumps(self._dict, indent=2, sort_keys=True, default=str) + "\n").encode()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Signature:
        return cls(
            inputs=tuple(Feature.from_dict(f) for f in d["inputs"]),
            target=str(d.get("target") or ""),
            task=check_task(str(d.get("task", "classification"))),
            classes=None if d.get("classes") is None else tuple(d["classes"]),
        )

    @classmethod
    def from_json(cls, data: bytes | str, *, path: str = "signature.json") -> Signature:
        """Parse ``signature.json``; a file that is not one is an IntegrityError naming it."""
        try:
            return cls.from_dict(json.loads(data))
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            raise IntegrityError(path, problem=f"not a signature ({exc})") from None

    @classmethod
    def from_schema(
        cls, schema: Any, features: Sequence[str], task: str, target: str, classes: Any = None
    ) -> Signature:
        """From a dataset schema (``data.schema.Schema``): each feature's kind, type, range and categories."""
        inputs = []
        for name in features:
            c = schema.column(name)
            inputs.append(
                Feature(
                    name=c.name,
                    kind=c.kind,
                    dtype=c.dtype,
                    nullable=bool(c.nullable),
                    min=c.min,
                    max=c.max,
                    categories=None if c.categories is None else tuple(c.categories),
                )
            )
        return cls(tuple(inputs), target, check_task(task), None if classes is None else tuple(classes))


def _type_word(f: Feature) -> str:
    """What a request must send for ``f``, in words."""
    if f.kind == "categorical" and f.dtype == "bool":
        return "a true/false flag"
    return {"numeric": "a number", "categorical": "a category", "text": "text"}[f.kind]


def _columns(names: list[str]) -> str:
    return ("column " if len(names) == 1 else "columns ") + ", ".join(repr(n) for n in names)
