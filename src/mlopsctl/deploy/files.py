"""What the deploy commands share: the model and alias they are given, the service's name, and writing
a folder of files that never overwrites an earlier run's without ``--force``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from mlopsctl.config import Config, service_slug
from mlopsctl.errors import ValidationError


def check_model_ref(model: str, alias: str) -> None:
    """``--model`` and ``--alias`` by the registry's own rules, before any file or shell line uses them."""
    from mlopsctl.registry.aliases import ALIAS_RE
    from mlopsctl.registry.versions import NAME_RE

    if not NAME_RE.match(model):
        raise ValidationError(
            f"--model {model!r}: names use letters, digits, '_', '-', '.', start with a letter or digit, 64 at most",
            [("--model", "expected a registry name such as wine")],
        )
    if not re.match(ALIAS_RE, alias) or alias == "latest":
        raise ValidationError(
            f"--alias {alias!r}: aliases are lower-case words such as prod, staging, canary (not latest)",
            [("--alias", "expected a lower-case alias such as prod")],
        )


def service_name(cfg: Config | None, model: str) -> str:
    """The name of the service's resources: the project's (``Config.service_name``), else the model's
    name made one by the same rule (lower case, dashes, a letter first, 28 at most)."""
    return cfg.service_name if cfg is not None else service_slug(model)


def write_files(
    out: Path, files: Mapping[str, bytes | str], *, force: bool, also: Iterable[Path] = (), note: str = ""
) -> list[Path]:
    """Write ``files`` (path under ``out`` → content) and return their paths.

    Without ``force``, when one of them (or a path in ``also``) exists, nothing is written and the
    error names the first; ``note`` ends its message.
    """
    if out.exists() and not out.is_dir():
        raise ValidationError(f"--out {out}: is a file, not a folder", [("--out", "expected a folder")])
    taken = [out / rel for rel in files if (out / rel).exists()] + [p for p in also if p.exists()]
    if taken and not force:
        more = f" (and {len(taken) - 1} more)" if taken[1:] else ""
        raise ValidationError(
            f"{taken[0]} exists: pass --force to overwrite it{more}{note}",
            [("--force", f"{p} exists") for p in taken],
        )
    written = []
    for rel, data in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data)
        else:
            path.write_bytes(data)
        written.append(path)
    return written
