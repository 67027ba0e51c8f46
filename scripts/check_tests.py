"""Fail on a test that cannot fail: a `test_*` function with no assertion and no expected raise.

A test counts as checking something when its body (or a helper it calls, defined in the same test module
or in tests/conftest.py, followed one level deep) holds an `assert`, a `pytest.raises` / `pytest.warns` /
`pytest.fail`, a call to a function whose name starts with `assert` (``np.testing.assert_allclose``), or a
call to `run_cli` without ``check=False`` (it raises on a non-zero exit). Run by `make lint`:

    python scripts/check_tests.py [tests/]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PYTEST_CHECKS = {"raises", "warns", "fail", "deprecated_call"}
RAISING_HELPERS = {"run_cli"}  # helpers that raise unless told check=False


def _call_name(node: ast.Call) -> str:
    f = node.func
    if isinstance(f, ast.Attribute):
        return f.attr
    if isinstance(f, ast.Name):
        return f.id
    return ""


def _checks_itself(fn: ast.AST) -> bool:
    for node in ast.walk(fn):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            name = _call_name(node)
            f = node.func
            on_pytest = isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "pytest"
            if on_pytest and name in PYTEST_CHECKS:
                return True
            if name.startswith("assert"):
                return True
            if name in RAISING_HELPERS and not any(
                k.arg == "check" and isinstance(k.value, ast.Constant) and k.value.value is False for k in node.keywords
            ):
                return True
    return False


def _called(fn: ast.AST) -> set[str]:
    return {_call_name(n) for n in ast.walk(fn) if isinstance(n, ast.Call)}


def check(folder: Path) -> list[str]:
    conftest = folder / "conftest.py"
    shared: dict[str, ast.AST] = {}
    if conftest.is_file():
        tree = ast.parse(conftest.read_text())
        shared = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    bad = []
    for path in sorted(folder.rglob("test_*.py")):
        tree = ast.parse(path.read_text())
        funcs = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        helpers = {**shared, **funcs}
        for name, fn in funcs.items():
            if not name.startswith("test_"):
                continue
            if _checks_itself(fn):
                continue
            if any(h in helpers and h != name and _checks_itself(helpers[h]) for h in _called(fn)):
                continue
            bad.append(f"{path}:{fn.lineno}: {name} has no assertion and expects no raise: it cannot fail")
    return bad


def main() -> int:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "tests"
    bad = check(folder)
    for line in bad:
        print(line)
    if bad:
        print(f"{len(bad)} test(s) that cannot fail", file=sys.stderr)
        return 1
    print(f"every test in {folder} asserts something")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
