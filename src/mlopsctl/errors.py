"""The few exception types users see.

Each carries the facts its message needs as attributes, so the CLI can print one
clear line and the server can answer with a JSON body naming the field.
"""

from __future__ import annotations


class MlopsError(Exception):
    """Base class: anything mlopsctl raises on purpose."""


class NotFound(MlopsError):
    def __init__(self, what: str, name: str, hint: str = "") -> None:
        self.what, self.name, self.hint = what, name, hint
        msg = f"{what} not found: {name}"
        super().__init__(f"{msg} ({hint})" if hint else msg)


class Conflict(MlopsError):
    """A conditional write lost: the object exists, or changed since it was read."""

    def __init__(self, key: str, message: str = "") -> None:
        self.key = key
        super().__init__(message or f"conflicting write to {key}")


class StoreError(MlopsError):
    """The store (or a service beside it, such as SSM) cannot be used: no such bucket, access denied,
    no credentials, endpoint down."""

    def __init__(self, uri: str, problem: str) -> None:
        self.uri, self.problem = uri, problem
        super().__init__(f"store {uri}: {problem}")


class IntegrityError(MlopsError):
    """A stored file does not match the sha256 its manifest records."""

    def __init__(self, path: str, expected: str = "", actual: str = "", *, problem: str | None = None) -> None:
        self.path, self.expected, self.actual = path, expected, actual
        said = problem or f"expected sha256 {expected[:12]}…, got {actual[:12]}…"
        super().__init__(f"integrity check failed for {path}: {said}")


class UnsafeModel(MlopsError):
    """A model file that must not be loaded: it names a type that is not trusted, points at data outside
    itself, or cannot be read. Nothing from it was run."""

    def __init__(self, path: str, problem: str, type_name: str | None = None) -> None:
        self.path, self.problem, self.type_name = path, problem, type_name
        super().__init__(f"refused to load {path}: {problem}")


class ValidationError(MlopsError):
    """Input that does not fit: config, data or a request. `problems` are (field, problem) pairs."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        self.problems = problems or []
        super().__init__(message)


class ConfigError(ValidationError):
    def __init__(self, path: str, key: str, problem: str) -> None:
        self.path, self.key, self.problem = path, key, problem
        super().__init__(f"{path}: {key}: {problem}", [(key, problem)])


class DataError(ValidationError):
    def __init__(self, path: str, problem: str, column: str | None = None) -> None:
        self.path, self.column, self.problem = path, column, problem
        where = f"{path}: column {column!r}" if column else path
        super().__init__(f"{where}: {problem}", [(column or "", problem)])


class DataErrors(DataError):
    """Several problems of one file, each its own line (one per column): the CLI prints every line."""

    def __init__(self, errors: list[DataError]) -> None:
        first = errors[0]
        super().__init__(first.path, first.problem, first.column)
        self.errors = list(errors)
        self.problems = [pair for e in errors for pair in e.problems]
        self.args = ("\n".join(str(e) for e in errors),)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class GateRefused(MlopsError):
    """Promotion refused by the evaluation gate or the approval rule."""

    def __init__(self, message: str, candidate: float | None = None, current: float | None = None) -> None:
        self.candidate, self.current = candidate, current
        super().__init__(message)
