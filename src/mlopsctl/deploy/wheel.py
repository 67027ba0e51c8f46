"""The running mlopsctl as a wheel, and the versions of its dependencies as pip constraints.

mlopsctl is not on PyPI yet, so `deploy docker` puts the mlopsctl that runs it into the image:
``mlopsctl_wheel`` packs the installed package (an editable install packs the source tree) without
a build backend or network, byte for byte the same for the same code; ``constraints_txt`` pins what
is installed here, so the image gets what was tested here.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

from mlopsctl.errors import ValidationError

_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def mlopsctl_wheel() -> tuple[str, bytes]:
    """(file name, bytes) of the running mlopsctl as a pure-Python wheel: its package folder and its
    installed metadata.

    Works the same for an editable install (the source tree) and a regular one (site-packages), needs
    no build backend and no network, and is byte-for-byte the same for the same code (fixed timestamps),
    so Docker's layer cache holds while nothing changed.
    """
    import importlib.metadata as md

    import mlopsctl

    try:
        dist = md.distribution("mlopsctl")
    except md.PackageNotFoundError:
        raise ValidationError(
            "mlopsctl is not installed as a package, so it cannot be packed into the image: `pip install -e .`",
            [("mlopsctl", "not installed")],
        ) from None
    version = dist.version
    info = f"mlopsctl-{version}.dist-info"
    pkg = Path(mlopsctl.__file__).parent
    entries: list[tuple[str, bytes]] = []
    for path in sorted(pkg.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            entries.append(("mlopsctl/" + path.relative_to(pkg).as_posix(), path.read_bytes()))
    metadata = dist.read_text("METADATA") or f"Metadata-Version: 2.1\nName: mlopsctl\nVersion: {version}\n"
    scripts = dist.read_text("entry_points.txt") or "[console_scripts]\nmlopsctl = mlopsctl.cli.main:main\n"
    wheel_meta = f"Wheel-Version: 1.0\nGenerator: mlopsctl deploy docker ({version})\nRoot-Is-Purelib: true\n"
    entries += [
        (f"{info}/METADATA", metadata.encode()),
        (f"{info}/WHEEL", (wheel_meta + "Tag: py3-none-any\n").encode()),
        (f"{info}/entry_points.txt", scripts.encode()),
        (f"{info}/top_level.txt", b"mlopsctl\n"),
    ]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in entries) + f"{info}/RECORD,,\n"
    entries.append((f"{info}/RECORD", record.encode()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
    return f"mlopsctl-{version}-py3-none-any.whl", buf.getvalue()


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_pins(root: str = "mlopsctl", extras: Iterable[str] = ("aws",)) -> list[str]:
    """``name==version`` of every installed distribution ``root[extras]`` needs, found by walking the
    installed metadata (markers other than ``extra`` are not evaluated: a pin for a package the image
    does not need is harmless in a constraints file, which never installs anything)."""
    import importlib.metadata as md

    done: dict[str, set[str]] = {}
    pins: dict[str, str] = {}
    queue: list[tuple[str, set[str]]] = [(root, {_norm(e) for e in extras})]
    while queue:
        name, want = queue.pop()
        key = _norm(name)
        if key in done and want <= done[key]:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        done[key] = done.get(key, set()) | want
        if key != _norm(root):
            pins[key] = f"{dist.metadata['Name']}=={dist.version}"
        for req in dist.requires or []:
            m = _REQ.match(req)
            if not m:
                continue
            marker = req.split(";", 1)[1] if ";" in req else ""
            extra = _EXTRA.search(marker)
            if extra and _norm(extra.group(1)) not in done[key]:
                continue
            sub = {_norm(e) for e in (m.group(2) or "").split(",") if e.strip()}
            queue.append((m.group(1), sub))
    return [pins[k] for k in sorted(pins)]


def constraints_txt() -> str:
    """constraints.txt: a header saying where the pins come from, then ``dependency_pins()``."""
    import platform

    head = (
        "# The versions installed where `mlopsctl deploy docker` ran "
        f"(Python {platform.python_version()}, {platform.system()} {platform.machine()}).\n"
        "# pip --constraint: the image gets what was tested here. Empty this file to take the newest.\n"
    )
    return head + "".join(p + "\n" for p in dependency_pins())
