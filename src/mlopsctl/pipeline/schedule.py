"""A crontab line that runs `mlopsctl retrain` on a schedule, and installing it with `crontab`.

The line runs in the project folder with the absolute path of this mlopsctl, appends its
output to ``retrain.log`` there, and ends with a marker comment naming the project, so
installing again replaces the line instead of adding a second one, and ``--remove`` finds it.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from mlopsctl.errors import MlopsError, ValidationError

# field: (low, high, names)
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_ITEM = re.compile(r"^(?P<range>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>\d+))?$")


def _bad(cron: str, problem: str) -> ValidationError:
    return ValidationError(f"--cron {cron!r}: {problem}", [("cron", problem)])


def check_cron(cron: str) -> str:
    """The expression, normalised (single spaces, lower case); refused with the field and its range."""
    text = " ".join(cron.lower().split())
    if text.startswith("@"):
        if text not in _MACROS:
            raise _bad(cron, f"unknown macro: use one of {', '.join(_MACROS)} or five fields")
        return text
    parts = text.split(" ")
    if len(parts) != 5:
        raise _bad(cron, f"expected five fields (minute hour day-of-month month day-of-week), got {len(parts)}")
    for part, (field, low, high, names) in zip(parts, _FIELDS, strict=True):
        for item in part.split(","):
            m = _ITEM.match(item)
            if not m:
                raise _bad(cron, f"{field} {item!r} is not a value, a range, a list or a step such as */15")
            if m.group("step") is not None and int(m.group("step")) == 0:
                raise _bad(cron, f"{field} {item!r}: a step of 0")
            if m.group("range") == "*":
                continue
            for value in m.group("range").split("-"):
                number = names.index(value) + (1 if field == "month" else 0) if value in names else None
                if number is None:
                    if not value.isdigit():
                        hint = f" or {names[0]}–{names[-1]}" if names else ""
                        raise _bad(cron, f"{field} {value!r} is not a number from {low} to {high}{hint}")
                    number = int(value)
                if not low <= number <= high:
                    raise _bad(cron, f"{field} {number} is outside {low}–{high}")
    return text


def marker(project: Path) -> str:
    return f"# mlopsctl retrain {project}"


def default_mlopsctl() -> list[str]:
    """The running mlopsctl as an absolute command: the script beside this Python, else the one
    named in argv[0], else the one on PATH, else ``python -m mlopsctl.cli.main``."""
    beside = Path(sys.executable).parent / "mlopsctl"
    if beside.is_file():
        return [str(beside.absolute())]
    argv0 = Path(sys.argv[0])
    if argv0.name == "mlopsctl" and argv0.is_file():
        return [str(argv0.absolute())]
    found = shutil.which("mlopsctl")
    if found:
        return [str(Path(found).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "mlopsctl.cli.main"]


def mlopsctl_command() -> str:
    """The running mlopsctl as one shell word or more (cron's PATH is short)."""
    return " ".join(map(shlex.quote, default_mlopsctl()))


def cron_line(cron: str, project: Path, args: list[str], *, command: str | None = None) -> str:
    project = project.resolve()
    run = " ".join([command or mlopsctl_command(), "retrain", *map(shlex.quote, args)])
    log = shlex.quote(str(project / "retrain.log"))
    body = f"cd {shlex.quote(str(project))} && {run} >> {log} 2>&1".replace("%", "\\%")  # % is a newline to cron
    return f"{check_cron(cron)} {body} {marker(project)}"


def _crontab(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("crontab")
    if exe is None:
        raise MlopsError("crontab is not installed here (Debian: apt-get install cron); print the line and add it")
    return subprocess.run([exe, *args], input=stdin, capture_output=True, text=True, timeout=30)


def installed(user: str | None = None) -> list[str]:
    """The user's crontab lines ([] when they have none)."""
    got = _crontab([*(["-u", user] if user else []), "-l"])
    if got.returncode != 0:
        if "no crontab" in got.stderr.lower():
            return []
        raise MlopsError(f"crontab -l failed: {got.stderr.strip()}")
    return got.stdout.splitlines()


def install(line: str | None, project: Path, user: str | None = None) -> int:
    """Put ``line`` in the crontab in place of this project's (None: only remove it); how many lines went."""
    tag = marker(project.resolve())
    lines = installed(user)
    kept = [x for x in lines if not x.rstrip().endswith(tag)]
    new = kept + ([line] if line else [])
    got = _crontab([*(["-u", user] if user else []), "-"], stdin="\n".join(new) + "\n" if new else "")
    if got.returncode != 0:
        raise MlopsError(f"crontab refused the new table: {got.stderr.strip()}")
    return len(lines) - len(kept)
