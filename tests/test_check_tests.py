"""scripts/check_tests.py finds a test that cannot fail, and accepts every way a test here checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_tests.py"

MODULE = """
import pytest
import numpy as np

def helper_that_checks(x):
    assert x

def test_plain_assert():
    assert 1 + 1 == 2

def test_expects_a_raise():
    with pytest.raises(ValueError):
        int("x")

def test_numpy_assert():
    np.testing.assert_allclose([1.0], [1.0])

def test_through_a_helper():
    helper_that_checks(True)

def test_run_cli_raises_on_failure(tmp_path):
    run_cli("models", "list", cwd=tmp_path)

def test_prints_only():
    print("nothing is checked")

def test_run_cli_unchecked(tmp_path):
    run_cli("models", "list", cwd=tmp_path, check=False)
"""


def test_it_names_the_tests_that_cannot_fail(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(MODULE)
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 1
    named = [line.split(": ")[1].split(" ")[0] for line in out.stdout.splitlines()]
    assert named == ["test_prints_only", "test_run_cli_unchecked"]


def test_the_project_passes() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
