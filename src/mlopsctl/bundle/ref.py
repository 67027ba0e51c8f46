"""How a model version is named: one grammar for the CLI, the server, the pipeline and the Python API.

    wine            the latest version
    wine@latest     the same
    wine@3          version 3
    wine@prod       whatever the alias prod points to

``wine@v3`` is refused, with the fix: versions are plain numbers, and an alias may never look
like a version (``v3``, ``3``, ``latest``), so no reference can mean two things.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlopsctl.errors import ValidationError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_VERSIONISH = re.compile(r"^[vV]\d+$")


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValidationError(
            f"model name {name!r}: use letters, digits, '_', '-', '.' (64 at most, a letter or digit first)",
            [("model", "letters, digits, '_', '-', '.'")],
        )
    return name


def alias_problem(alias: str) -> str | None:
    """Why ``alias`` cannot name an alias (None when it can)."""
    if alias == "latest" or alias.isdigit() or _VERSIONISH.match(alias):
        return f"{alias!r} reads as a version; aliases are words such as prod, staging, canary"
    if not ALIAS_RE.match(alias):
        return f"{alias!r}: aliases are lower-case words (a-z, 0-9, '_', '-') such as prod, staging, canary"
    return None


def check_alias(alias: str) -> str:
    problem = alias_problem(alias)
    if problem:
        raise ValidationError(f"alias {problem}", [("alias", problem)])
    return alias


@dataclass(frozen=True)
class ModelRef:
    """A model name with an alias, a version, or neither (the latest version)."""

    name: str
    alias: str | None = None
    version: int | None = None

    def __post_init__(self) -> None:
        check_model_name(self.name)
        if self.alias is not None and self.version is not None:
            raise ValueError("a reference names an alias or a version, not both")
        if self.alias is not None:
            check_alias(self.alias)
        if self.version is not None and self.version < 1:
            raise ValidationError(f"{self.name}@{self.version}: versions start at 1", [("version", "below 1")])

    @property
    def latest(self) -> bool:
        return self.alias is None and self.version is None

    @property
    def selector(self) -> str | None:
        """What follows the ``@``: the alias, the version as digits, or None for the latest."""
        return self.alias if self.alias is not None else (None if self.version is None else str(self.version))

    def __str__(self) -> str:
        return self.name if self.latest else f"{self.name}@{self.selector}"

    @classmethod
    def parse(cls, text: str, *, default: str | None = None) -> ModelRef:
        """``NAME``, ``NAME@ALIAS``, ``NAME@VERSION`` or ``NAME@latest``; ``default`` is what a bare NAME
        selects (an alias, digits or None for the latest)."""
        name, sep, rest = str(text).partition("@")
        if sep and not rest:
            raise ValidationError(
                f"{text!r}: nothing after '@': write {name}@ALIAS or {name}@VERSION", [("model", "empty selector")]
            )
        return cls.of(name, rest if sep else default)

    @classmethod
    def of(cls, name: str, selector: str | int | None) -> ModelRef:
        """A reference from a name and what would follow its ``@`` (an alias, a version, or None)."""
        if selector is None or selector == "latest":
            return cls(name)
        if isinstance(selector, int) and not isinstance(selector, bool):
            return cls(name, version=selector)
        text = str(selector)
        if text.isdigit():
            return cls(name, version=int(text))
        if _VERSIONISH.match(text):
            raise ValidationError(
                f"{name}@{text} is ambiguous: a version is a plain number, so write {name}@{text[1:]} "
                f"for version {text[1:]} (an alias cannot be named {text!r})",
                [("model", f"write {name}@{text[1:]}")],
            )
        problem = alias_problem(text)
        if problem:
            raise ValidationError(f"{name}@{text}: {problem}", [("model", problem)])
        return cls(name, alias=text)
