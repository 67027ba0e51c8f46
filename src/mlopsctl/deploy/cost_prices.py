"""The price tables `mlopsctl cost` reads: one TOML file per region in ``deploy/prices/``, overridable.

A table (see ``prices/us-east-1.toml``) has ``region``, ``region_name``, ``currency`` and ``as_of`` at
the top, and one section per service. A section names where its numbers come from (``source``: a URL
or a list of them) and holds:

- prices: ``vcpu_hour = { price = 0.04048, unit = "vCPU-hour" }``;
- facts that are not prices: ``lcu_processed_gb = { value = 1, unit = "GB processed per hour per LCU" }``;
- ``instances``: named instance types, each with ``price``, ``unit``, ``vcpu``, ``memory_gb`` and, when
  burstable, ``baseline_vcpu`` (the CPU it sustains).

``--prices FILE`` is merged over the built-in table of the region: the same shape, only the keys it
changes (a bare number replaces a price or value and keeps its unit). A key the table does not have
is an error naming the valid ones, so is a negative number or a different unit. New instance types
may be added. A file whose ``region`` has no built-in table must be complete: then it prices that
region on its own.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mlopsctl.errors import ValidationError

TOP_KEYS = ("region", "region_name", "currency", "as_of")
INSTANCE_KEYS = ("price", "unit", "vcpu", "memory_gb", "baseline_vcpu")
REFERENCE_REGION = "us-east-1"  # the shape a complete table for another region must have


@dataclass(frozen=True)
class Instance:
    name: str
    price: float
    unit: str
    vcpu: float
    memory_gb: float
    baseline_vcpu: float | None = None

    @property
    def sustained_vcpu(self) -> float:
        """The CPU it can run at all day: its baseline when burstable, else all of it."""
        return self.vcpu if self.baseline_vcpu is None else self.baseline_vcpu

    def describe(self) -> str:
        burst = f", burstable, {self.baseline_vcpu:g} vCPU baseline" if self.baseline_vcpu is not None else ""
        return f"{self.name} ({self.vcpu:g} vCPU, {self.memory_gb:g} GB{burst})"


@dataclass
class PriceTable:
    region: str
    region_name: str
    currency: str
    as_of: str
    sections: dict[str, dict[str, Any]]
    files: list[str] = field(default_factory=list)
    overridden: list[str] = field(default_factory=list)
    override_as_of: str | None = None

    def _leaf(self, section: str, key: str) -> dict[str, Any]:
        leaf = self.sections[section][key]
        assert isinstance(leaf, dict), (section, key)
        return leaf

    def price(self, section: str, key: str) -> float:
        return float(self._leaf(section, key)["price"])

    def unit(self, section: str, key: str) -> str:
        return str(self._leaf(section, key)["unit"])

    def value(self, section: str, key: str) -> float:
        return float(self._leaf(section, key)["value"])

    def instances(self, section: str) -> list[Instance]:
        out = []
        for name, e in self.sections[section].get("instances", {}).items():
            base = e.get("baseline_vcpu")
            out.append(
                Instance(
                    name,
                    float(e["price"]),
                    str(e["unit"]),
                    float(e["vcpu"]),
                    float(e["memory_gb"]),
                    None if base is None else float(base),
                )
            )
        return out

    def sources(self) -> dict[str, list[str]]:
        return {name: _as_list(s.get("source")) for name, s in self.sections.items()}

    def summary(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "region_name": self.region_name,
            "currency": self.currency,
            "as_of": self.as_of,
            "files": self.files,
            "overridden": self.overridden,
            "override_as_of": self.override_as_of,
            "sources": self.sources(),
        }


def _as_list(source: Any) -> list[str]:
    if source is None:
        return []
    return [source] if isinstance(source, str) else [str(s) for s in source]


def _prices_dir() -> Any:
    return resources.files("mlopsctl.deploy") / "prices"


def builtin_regions() -> list[str]:
    """The regions with a price table shipped in the package."""
    return sorted(p.name.removesuffix(".toml") for p in _prices_dir().iterdir() if p.name.endswith(".toml"))


def builtin_table_text(region: str) -> str:
    return str((_prices_dir() / f"{region}.toml").read_text(encoding="utf-8"))


def _problem(where: str, key: str, problem: str) -> ValidationError:
    return ValidationError(f"{where}: {key}: {problem}", [(key, problem)])


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _date(v: Any) -> str:
    return v.isoformat() if isinstance(v, dt.date) else str(v)


def check_table(raw: dict[str, Any], where: str) -> None:
    """A complete table: the top keys, a source for every section, a unit and a non-negative number for
    every price or fact, and every field of every instance type."""
    for key in TOP_KEYS:
        if key not in raw:
            raise _problem(where, key, "missing: a table gives " + ", ".join(TOP_KEYS))
    for name, section in raw.items():
        if name in TOP_KEYS:
            continue
        if not isinstance(section, dict):
            raise _problem(where, name, f"unknown key: a table's top level has {', '.join(TOP_KEYS)} and sections")
        if not _as_list(section.get("source")):
            raise _problem(where, f"{name}.source", "missing: every section names where its prices come from")
        for key, leaf in section.items():
            dotted = f"{name}.{key}"
            if key == "source":
                continue
            if key == "instances":
                if not isinstance(leaf, dict) or not leaf:
                    raise _problem(where, dotted, "expected a table of instance types")
                for inst, entry in leaf.items():
                    _check_instance(entry, f"{dotted}.{inst}", where, complete=True)
                continue
            _check_leaf(leaf, dotted, where)


def _check_leaf(leaf: Any, dotted: str, where: str) -> None:
    if not isinstance(leaf, dict) or "unit" not in leaf or ("price" in leaf) == ("value" in leaf):
        raise _problem(where, dotted, 'expected { price = NUMBER, unit = "…" } or { value = NUMBER, unit = "…" }')
    kind = "price" if "price" in leaf else "value"
    _check_number(leaf[kind], f"{dotted}.{kind}" if kind == "value" else dotted, where)


def _check_number(v: Any, dotted: str, where: str) -> None:
    if not _number(v):
        raise _problem(where, dotted, f"expected a number, got {v!r}")
    if v < 0:
        raise _problem(where, dotted, f"{v:g} is negative: prices and values are 0 or more")


def _check_instance(entry: Any, dotted: str, where: str, *, complete: bool) -> None:
    if not isinstance(entry, dict):
        raise _problem(where, dotted, "expected a table with " + ", ".join(INSTANCE_KEYS))
    for key, v in entry.items():
        if key not in INSTANCE_KEYS:
            raise _problem(where, f"{dotted}.{key}", f"unknown key: an instance type has {', '.join(INSTANCE_KEYS)}")
        if key != "unit":
            _check_number(v, f"{dotted}.{key}", where)
    if complete:
        missing = [k for k in INSTANCE_KEYS[:4] if k not in entry]
        if missing:
            raise _problem(where, dotted, f"missing {', '.join(missing)}")
        if entry["vcpu"] <= 0 or entry["memory_gb"] <= 0:
            raise _problem(where, dotted, "vcpu and memory_gb must be positive")


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _problem(str(path), "file", "not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise _problem(str(path), "syntax", str(exc)) from None


def merge(base: dict[str, Any], override: dict[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    """``override`` laid over ``base``; returns the merged table and the dotted keys that changed."""
    out = copy.deepcopy(base)
    changed: list[str] = []
    sections = [k for k in base if k not in TOP_KEYS]
    for name, section in override.items():
        if name in TOP_KEYS:
            if name == "region" and section != base[name]:
                raise _problem(
                    where,
                    name,
                    f"the file prices {section!r}, the estimate is for {base[name]!r}: pass --region {section}",
                )
            if name == "currency" and section != base[name]:
                raise _problem(
                    where,
                    name,
                    f"{section!r} differs from the table it overrides ({base[name]!r}): "
                    "a table in another currency must be complete, for a region without a built-in table",
                )
            continue  # region_name and as_of describe the file; as_of is reported as the override's date
        if name not in base:
            raise _problem(
                where, name, f"unknown key: use one of {', '.join(TOP_KEYS)} or a section: {', '.join(sections)}"
            )
        if not isinstance(section, dict):
            raise _problem(where, name, "expected a table")
        for key, leaf in section.items():
            dotted = f"{name}.{key}"
            if key == "source":
                out[name]["source"] = leaf
                continue
            if key not in base[name]:
                valid = ", ".join(k for k in base[name] if k != "source")
                raise _problem(where, dotted, f"unknown key: {name} has {valid}")
            if key == "instances":
                changed += _merge_instances(out[name]["instances"], leaf, dotted, where)
                continue
            out[name][key] = _merge_leaf(base[name][key], leaf, dotted, where)
            changed.append(dotted)
    return out, changed


def _merge_leaf(base: dict[str, Any], leaf: Any, dotted: str, where: str) -> dict[str, Any]:
    kind = "price" if "price" in base else "value"
    if _number(leaf) or isinstance(leaf, bool):
        leaf = {kind: leaf}
    if not isinstance(leaf, dict):
        raise _problem(where, dotted, f"expected a number or {{ {kind} = NUMBER, unit = {base['unit']!r} }}")
    unknown = set(leaf) - {kind, "unit"}
    if unknown:
        raise _problem(where, f"{dotted}.{sorted(unknown)[0]}", f"unknown key: {dotted} has {kind} and unit")
    if "unit" in leaf and leaf["unit"] != base["unit"]:
        raise _problem(where, f"{dotted}.unit", f"{leaf['unit']!r} differs from the table's {base['unit']!r}")
    if kind not in leaf:
        raise _problem(where, dotted, f"missing {kind}")
    _check_number(leaf[kind], dotted, where)
    return {**base, kind: leaf[kind]}


def _merge_instances(out: dict[str, Any], override: Any, dotted: str, where: str) -> list[str]:
    if not isinstance(override, dict):
        raise _problem(where, dotted, "expected a table of instance types")
    changed = []
    for name, entry in override.items():
        new = name not in out
        _check_instance(entry, f"{dotted}.{name}", where, complete=new)
        if not new and "unit" in entry and entry["unit"] != out[name]["unit"]:
            raise _problem(
                where, f"{dotted}.{name}.unit", f"{entry['unit']!r} differs from the table's {out[name]['unit']!r}"
            )
        out[name] = {**out.get(name, {}), **entry}
        changed.append(f"{dotted}.{name}")
    return changed


def _check_complete(raw: dict[str, Any], reference: dict[str, Any], where: str) -> None:
    check_table(raw, where)
    for name, section in reference.items():
        if name in TOP_KEYS:
            continue
        if name not in raw:
            raise _problem(where, name, "missing: a table for a region without a built-in one must be complete")
        for key in section:
            if key not in raw[name]:
                raise _problem(where, f"{name}.{key}", "missing: a table for a new region must be complete")
        extra = sorted(set(raw[name]) - set(section))
        if extra:
            raise _problem(where, f"{name}.{extra[0]}", f"unknown key: {name} has {', '.join(section)}")
    extra = sorted(set(raw) - set(reference))
    if extra:
        raise _problem(where, extra[0], "unknown key: not a section of the price table")


def load_prices(region: str, override: str | Path | None = None) -> PriceTable:
    """The price table for ``region``, with ``override`` (a TOML file) merged over it."""
    regions = builtin_regions()
    extra = _read(Path(override)) if override is not None else None
    where = str(override)
    if region in regions:
        raw = tomllib.loads(builtin_table_text(region))
        files = [f"built-in prices/{region}.toml"]
        changed: list[str] = []
        if extra is not None:
            raw, changed = merge(raw, extra, where)
            files.append(where)
    elif extra is not None and extra.get("region") == region:
        _check_complete(extra, tomllib.loads(builtin_table_text(REFERENCE_REGION)), where)
        raw, files, changed = extra, [where], []
        extra = None
    else:
        raise ValidationError(
            f"--region {region}: no price table for it: use {' or '.join(regions)} "
            f"(or give a complete table with region = {region!r} in --prices FILE)",
            [("--region", f"expected one of {', '.join(regions)}")],
        )
    check_table(raw, where if override is not None else files[0])
    return PriceTable(
        region=str(raw["region"]),
        region_name=str(raw["region_name"]),
        currency=str(raw["currency"]),
        as_of=_date(raw["as_of"]),
        sections={k: v for k, v in raw.items() if k not in TOP_KEYS},
        files=files,
        overridden=changed,
        override_as_of=_date(extra["as_of"]) if extra is not None and "as_of" in extra else None,
    )
