"""The CLI end to end in a temporary folder, as a user types it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import WINE_RED, run_cli, wine_rows

pytestmark = pytest.mark.shared_data


def _json(*args: str, cwd: Path) -> object:
    return json.loads(run_cli(*args, "--json", cwd=cwd).stdout)


@pytest.mark.slow
def test_golden_path(tmp_path: Path) -> None:
    run_cli("init", "wine", "--data", str(WINE_RED), "--target", "quality", cwd=tmp_path)
    proj = tmp_path / "wine"
    toml = (proj / "mlops.toml").read_text()
    assert 'target = "quality"' in toml and 'task = "classification"' in toml
    assert (proj / "README.md").is_file()
    forest, small_forest = "{ n_estimators = 100, max_depth = 12 }", "{ n_estimators = 20, max_depth = 12 }"
    assert f"params = {forest}" in toml
    # the path is tested here, not the model: 2 folds and 20 trees (train, publish and two gated promotions ~5 s less)
    (proj / "mlops.toml").write_text(toml.replace("cv_folds = 5", "cv_folds = 2").replace(forest, small_forest))

    report = _json("data", "validate", str(WINE_RED), cwd=proj)
    assert report["ok"] and report["n_rows"] == 1599
    snap = _json("data", "ingest", str(WINE_RED), cwd=proj)
    assert snap["created"] and len(snap["sha256"]) == 64
    assert _json("data", "ingest", str(WINE_RED), cwd=proj)["created"] is False

    run = _json("train", cwd=proj)
    assert run["data"]["sha256"] == snap["sha256"] and run["metrics"]["holdout"]["accuracy"] > 0.55
    assert [r["run_id"] for r in _json("runs", "list", cwd=proj)] == [run["run_id"]]
    pub = _json("publish", cwd=proj)
    assert pub["version"] == 1 and pub["runtime"] == "onnx"

    refused = run_cli("promote", "wine", "1", "--alias", "prod", cwd=proj, check=False)
    assert refused.returncode == 1 and "requires approval" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    run_cli("approve", "wine", "1", "--reason", "first model", cwd=proj)
    moved = _json("promote", "wine", "1", "--alias", "prod", "--reason", "launch", cwd=proj)
    assert moved["to"] == 1 and moved["from"] is None

    (proj / "mlops.toml").write_text(
        (proj / "mlops.toml")
        .read_text()
        .replace('model = "random_forest"', 'model = "logistic_regression"')
        .replace(f"params = {small_forest}", "params = {}")
    )
    run_cli("train", cwd=proj)
    assert _json("publish", cwd=proj)["version"] == 2
    run_cli("approve", "wine", "2", cwd=proj)
    gate = run_cli("promote", "wine", "2", "--alias", "prod", cwd=proj, check=False)
    assert gate.returncode == 1 and "refused" in gate.stderr and "worse by" in gate.stderr
    forced = _json("promote", "wine", "2", "--alias", "prod", "--force", "--reason", "test", cwd=proj)
    assert forced["forced"] and forced["from"] == 1

    models = _json("models", "list", cwd=proj)
    assert models == [{"name": "wine", "versions": 2, "latest": 2, "aliases": {"prod": 2}}]
    shown = _json("models", "show", "wine@prod", cwd=proj)
    assert shown["version"] == 2 and shown["aliases"] == ["prod"] and shown["approval"]["state"] == "approved"
    assert "model.onnx" in shown["files"]

    rows = tmp_path / "rows.csv"
    rows.write_text("\n".join(WINE_RED.read_text().replace(";", ",").replace('"', "").splitlines()[:6]))
    local = _json("predict", "wine@prod", "--input", str(rows), "--drop", "quality", cwd=proj)
    assert local["model_version"] == 2 and len(local["predictions"]) == 5
    as_json = tmp_path / "rows.json"
    as_json.write_text(json.dumps({"instances": wine_rows(3)}))
    from_json = _json("predict", "wine@2", "--input", str(as_json), cwd=proj)
    assert from_json["predictions"] == local["predictions"][:3]

    back = _json("rollback", "wine", "--alias", "prod", cwd=proj)
    assert (back["from"], back["to"]) == (2, 1)
    history = _json("models", "history", "wine", cwd=proj)
    assert [e["action"] for e in history] == [
        "publish",
        "approved",
        "promote",
        "publish",
        "approved",
        "promote",
        "rollback",
    ]
    text = run_cli("models", "history", "wine", cwd=proj).stdout
    assert "prod: v2 → v1" in text and "launch" in text
    assert run_cli("models", "verify", "wine@prod", cwd=proj).stdout.startswith("wine v1: ")


def test_errors_are_one_line_naming_the_thing(tmp_path: Path) -> None:
    out = run_cli("train", cwd=tmp_path, check=False)
    assert out.returncode == 1 and out.stderr.startswith("error: mlops.toml: file: no project here")
    run_cli("init", "p", "--data", str(WINE_RED), "--target", "quality", cwd=tmp_path)
    proj = tmp_path / "p"
    cfg = proj / "mlops.toml"
    cfg.write_text(cfg.read_text().replace('model = "random_forest"', 'model = "forest"'))
    out = run_cli("train", cwd=proj, check=False)
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: {cfg}: training.model: got 'forest'")
    missing = run_cli("data", "validate", "nope.csv", cwd=tmp_path, check=False)
    assert missing.returncode == 1 and "nope.csv" in missing.stderr and "not found" in missing.stderr
    unknown = run_cli("models", "show", "ghost", cwd=tmp_path, check=False)
    assert unknown.returncode == 1 and "ghost" in unknown.stderr
    bad_target = run_cli("init", "q", "--data", str(WINE_RED), "--target", "qualty", cwd=tmp_path, check=False)
    assert bad_target.returncode == 1 and "'qualty'" in bad_target.stderr and "fixed acidity" in bad_target.stderr


def test_validate_reports_problems_against_the_snapshot(tmp_path: Path) -> None:
    run_cli("init", "p", "--data", str(WINE_RED), "--target", "quality", cwd=tmp_path)
    proj = tmp_path / "p"
    run_cli("data", "ingest", str(WINE_RED), cwd=proj)
    lines = WINE_RED.read_text().splitlines()
    header = lines[0].split(";")
    bad = tmp_path / "bad.csv"
    rows = [";".join(h for h in header if h != '"pH"')]
    for line in lines[1:11]:
        vals = line.split(";")
        del vals[header.index('"pH"')]
        vals[header.index('"alcohol"') - 1] = "99"
        rows.append(";".join(vals))
    bad.write_text("\n".join(rows) + "\n")
    out = run_cli("data", "validate", str(bad), "--json", cwd=proj, check=False)
    assert out.returncode == 1
    problems = {(p["column"], p["check"]): p for p in json.loads(out.stdout)["problems"]}
    assert problems[("pH", "missing_column")]["severity"] == "error"
    assert problems[("alcohol", "out_of_range")]["rows"] == 10


def test_init_from_a_shipped_example_and_help(tmp_path: Path) -> None:
    out = run_cli("init", "bc", "--example", "breast_cancer", "--json", cwd=tmp_path)
    info = json.loads(out.stdout)
    assert info["task"] == "classification" and info["rows"] == 569
    assert (tmp_path / "bc" / "data" / "breast_cancer.csv").is_file()
    for cmd in (
        ["--help"],
        ["train", "--help"],
        ["promote", "--help"],
        ["serve", "--help"],
        ["data", "--help"],
    ):
        assert run_cli(*cmd, cwd=tmp_path).stdout.strip()


def test_every_help_page_keeps_its_bracketed_words() -> None:
    """Rich reads `[serving]` as markup and drops it: every help text must escape it (`\\[serving]`)."""
    import typer.main
    from typer.testing import CliRunner

    from mlopsctl.cli.main import app

    def commands(cmd: Any, path: list[str]) -> list[list[str]]:
        found = [path]
        if hasattr(cmd, "commands"):  # a group (typer wraps its own click)
            for name, sub in cmd.commands.items():
                found += commands(sub, [*path, name])
        return found

    root = typer.main.get_command(app)
    paths = commands(root, [])
    assert len(paths) > 30
    for path in paths:
        out = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"}).output
        assert "()" not in out and "from ," not in out and "from )" not in out, (path, out)
