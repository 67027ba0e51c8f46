"""Bad input at the command line: every failure is one line naming the file, column or value and the fix.

Each case runs `mlopsctl` as a user would, on small files made here (a few cases use ../shared/data), and
holds the answer to the contract of docs/cli.md: exit 1 (2 for a usage error, and for `drift`), one line
on standard error starting with `error:`, no traceback, no bare exception type, and the thing named.
Then `data validate` and `train` are held to refusing the same data, with the same words, before a fit.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SHARED, WINE_RED, run_cli

RAW = re.compile(r"\b[A-Z]\w*(Error|Exception|Warning)\b:|Traceback|\(run with --debug|\[Errno")

TOML = """[project]
name = "{name}"
[data]
path = "{data}"
target = "{target}"
{data_extra}
[training]
task = "{task}"
model = "{model}"
params = {params}
cv_folds = {cv}
{training_extra}
[registry]
require_approval = []
[store]
uri = "{store}"
"""


def write_toml(folder: Path, data: Path, **kw: Any) -> Path:
    """A project on ``data`` in ``folder``: random forest of 10 trees, 2 folds, unless told otherwise."""
    values = {
        "name": "toy",
        "target": "y",
        "task": "classification",
        "model": "random_forest",
        "params": "{ n_estimators = 10 }",
        "cv": 2,
        "data_extra": "",
        "training_extra": "",
        "store": folder / ".mlops",
        **kw,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mlops.toml").write_text(TOML.format(data=data, **values))
    return folder


def _frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    return pd.DataFrame(
        {
            "x1": x1.round(4),
            "x2": rng.uniform(0, 10, n).round(3),
            "color": rng.choice(["red", "green", "blue"], n),
            "y": np.where(x1 > 0.4, "a", np.where(x1 < -0.4, "b", "c")),
        }
    )


def _files(d: Path) -> dict[str, Path]:
    """The bad (and one good) data files of the cases, by name."""
    d.mkdir(parents=True, exist_ok=True)
    good = _frame()
    files: dict[str, Path] = {}

    def csv(name: str, df: pd.DataFrame) -> None:
        files[name] = d / f"{name}.csv"
        df.to_csv(files[name], index=False)

    def raw(name: str, content: bytes | str, ext: str = ".csv") -> None:
        files[name] = d / f"{name}{ext}"
        if isinstance(content, bytes):
            files[name].write_bytes(content)
        else:
            files[name].write_text(content)

    csv("good", good)
    csv("feature_inf", good.assign(x1=good.x1.where(good.index != 3, np.inf)))
    numeric_y = good.assign(y=good.y.map({"a": 0.0, "b": 1.0, "c": 2.0}))
    csv("target_inf", numeric_y.assign(y=numeric_y.y.where(numeric_y.index != 5, -np.inf)))
    csv("target_nan", good.assign(y=good.y.where(good.index % 10 != 0)))
    csv("all_nan", good.assign(empty=np.nan))
    csv("one_class", good.assign(y="a"))
    csv("rare_class", good.assign(y=["c" if i == 7 else ("a" if i % 2 else "b") for i in range(len(good))]))
    csv("three_rows", good.head(3).assign(y=["a", "b", "c"]))
    n = 3000
    csv(
        "high_cardinality",
        pd.concat([_frame(n, 1), pd.DataFrame({"user": [f"u{i % 1500:04d}" for i in range(n)]})], axis=1),
    )
    # short reviews (3 words, under 30 characters) read as a category of 1,500 levels, not as text
    csv("short_text", pd.DataFrame({"review": [f"r{i} ok fine" for i in range(1500)], "y": ["a", "b"] * 750}))
    lines = good.to_csv(index=False).splitlines()
    lines[10] = "strong," + lines[10].split(",", 1)[1]
    raw("strong", "\n".join(lines) + "\n")
    raw("empty", b"")
    raw("binary", bytes(range(256)) * 16)
    raw("header_only", "x1,x2,y\n")
    raw("dupcols", "a,a,y\n1,2,a\n3,4,b\n")
    raw("ragged", "a,b,y\n1,2,a\n3,4,b,9\n5,6,a\n")
    raw("commas_tsv", good.to_csv(index=False), ".tsv")
    raw("headerless", "\n".join(numeric_y[["x1", "x2", "y"]].to_csv(index=False).splitlines()[1:]) + "\n")
    raw("fb_nocols", "id,truth\nabc,a\n")
    raw("fb_unknown", "request_id,label\nnobody-sent-this,a\n")
    csv("current_missing", good.drop(columns=["x2", "y"]))
    (d / "a_folder.csv").mkdir(exist_ok=True)
    files["a_folder"] = d / "a_folder.csv"
    raw("a_file", "I am a file, not a folder\n", ".txt")
    return files


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The files, a trained and published project (toy v1 at prod) and one project per bad config."""
    from mlopsctl import registry
    from mlopsctl.config import load_config
    from mlopsctl.registry.publishing import publish_run
    from mlopsctl.store import open_store
    from mlopsctl.training.train import train_project

    root = tmp_path_factory.mktemp("cli-errors")
    files = _files(root / "files")
    project = write_toml(root / "toy", files["good"])
    cfg = load_config(project)
    store = open_store(cfg.store_uri())
    run = train_project(cfg, store)
    registry.promote(store, "toy", publish_run(store, run, name="toy").version, "prod", reason="test")
    projects = {
        "feature_inf": write_toml(root / "p-inf", files["feature_inf"]),
        "one_class": write_toml(root / "p-one", files["one_class"]),
        "rare_class": write_toml(root / "p-rare", files["rare_class"], cv=5),
        "high_cardinality": write_toml(
            root / "p-card", files["high_cardinality"], model="hist_gradient_boosting", params="{ max_iter = 10 }"
        ),
        "separator": write_toml(root / "p-sep", files["good"], data_extra='separator = "::"'),
        "unknown_key": write_toml(root / "p-key", files["good"], data_extra="bogus = 1"),
        "test_size": write_toml(root / "p-ts", files["good"], training_extra="test_size = -0.1"),
        "model_task": write_toml(root / "p-mt", files["good"], model="ridge", params="{}"),
        "strong": write_toml(root / "p-strong", files["strong"]),
        "headerless": write_toml(root / "p-hl", files["headerless"]),
    }
    empty = root / "empty"
    empty.mkdir()
    return {"root": root, "files": files, "project": project, "projects": projects, "empty": empty}


@dataclass
class Case:
    args: list[str]
    names: str  # a substring the error line must hold: the file, column or value, or the fix
    where: str = "empty"  # cwd: "empty" (no project), "project", or a key of world["projects"]
    code: int = 1


def F(name: str) -> str:
    return "{" + name + "}"


CASES: dict[str, Case] = {
    # init: names, flags, files
    "init-name-with-space": Case(["init", "my project", "--data", F("good"), "--target", "y"], "'my project'"),
    "init-name-with-slash": Case(["init", "a/b", "--data", F("good"), "--target", "y"], "'a/b'"),
    "init-name-200-chars": Case(["init", "x" * 200, "--data", F("good"), "--target", "y"], "200 characters"),
    "init-name-unicode": Case(["init", "wïne", "--data", F("good"), "--target", "y"], "e.g. 'wine'"),
    "init-name-dotdot": Case(["init", "..", "--data", F("good"), "--target", "y"], "'..'"),
    "init-name-quote": Case(["init", 'wi"ne', "--data", F("good"), "--target", "y"], 'wi"ne'),
    "init-name-is-a-file": Case(
        ["init", "a_file.txt", "--data", F("good"), "--target", "y", "--dir", F("dir")], "is a file"
    ),
    "init-existing-project": Case(
        ["init", "toy", "--data", F("good"), "--target", "y", "--dir", F("root")], "already exists"
    ),
    "init-data-missing": Case(["init", "p", "--data", "nope.csv", "--target", "y"], "nope.csv: file not found"),
    "init-data-directory": Case(["init", "p", "--data", F("a_folder"), "--target", "y"], "is a directory"),
    "init-data-empty": Case(["init", "p", "--data", F("empty"), "--target", "y"], "empty.csv: file is empty"),
    "init-data-binary": Case(["init", "p", "--data", F("binary"), "--target", "y"], "binary"),
    "init-header-only": Case(["init", "p", "--data", F("header_only"), "--target", "y"], "no data rows"),
    "init-duplicate-columns": Case(
        ["init", "p", "--data", F("dupcols"), "--target", "y"], "duplicate column names: 'a'"
    ),
    "init-ragged-line": Case(["init", "p", "--data", F("ragged"), "--target", "y"], "line 3 has 4"),
    "init-target-not-a-column": Case(["init", "p", "--data", F("good"), "--target", "nope"], "column 'nope'"),
    "init-headerless-file": Case(["init", "p", "--data", F("headerless"), "--target", "y"], "no header row"),
    "init-tsv-with-commas": Case(["init", "p", "--data", F("commas_tsv"), "--target", "y"], "rename it to .csv"),
    "init-unknown-task": Case(
        ["init", "p", "--data", F("good"), "--target", "y", "--task", "clustering"], "'clustering'"
    ),
    "init-model-not-for-task": Case(
        ["init", "p", "--data", F("good"), "--target", "y", "--task", "classification", "--model", "ridge"], "'ridge'"
    ),
    # data validate / ingest: what train would refuse, by column
    "validate-feature-inf": Case(["data", "validate", F("feature_inf"), "--target", "y"], "column 'x1'"),
    "validate-target-inf": Case(["data", "validate", F("target_inf"), "--target", "y"], "infinite"),
    "validate-target-nan": Case(["data", "validate", F("target_nan"), "--target", "y"], "no target value"),
    "validate-all-nan-column": Case(["data", "validate", F("all_nan"), "--target", "y"], "column 'empty'"),
    "validate-one-class": Case(["data", "validate", F("one_class"), "--target", "y"], "same target value 'a'"),
    "validate-rare-class": Case(["data", "validate", F("rare_class"), "--target", "y"], "class 'c' has 1 row"),
    "validate-three-rows": Case(["data", "validate", F("three_rows"), "--target", "y"], "cv_folds"),
    "validate-high-cardinality": Case(["data", "validate", F("high_cardinality"), "--target", "y"], "max_categories"),
    "validate-number-column-with-a-word": Case(["data", "validate", F("strong"), "--target", "y"], "'strong'"),
    "validate-text-taken-for-categories": Case(["data", "validate", F("short_text"), "--target", "y"], "text_columns"),
    "validate-target-not-a-column": Case(["data", "validate", F("good"), "--target", "nope"], "column 'nope'"),
    "ingest-feature-inf": Case(["data", "ingest", F("feature_inf"), "--target", "y"], "column 'x1'"),
    "ingest-one-class": Case(["data", "ingest", F("one_class"), "--target", "y"], "same target value"),
    # train: refused before any fit
    "train-feature-inf": Case(["train"], "column 'x1'", "feature_inf"),
    "train-one-class": Case(["train"], "same target value", "one_class"),
    "train-rare-class-cv5": Case(["train"], "5 CV folds", "rare_class"),
    "train-high-cardinality-hgb": Case(["train"], "column 'user'", "high_cardinality"),
    "train-number-column-with-a-word": Case(["train"], "'strong'", "strong"),
    "train-headerless": Case(["train"], "no header row", "headerless"),
    "train-bad-separator": Case(["train"], "separator '::'", "separator"),
    "train-unknown-key": Case(["train"], "data.bogus: unknown key", "unknown_key"),
    "train-negative-test-size": Case(["train"], "training.test_size", "test_size"),
    "train-model-not-for-task": Case(["train"], "'ridge' does not fit task", "model_task"),
    "train-no-project": Case(["train"], "no project here"),
    "runs-show-unknown": Case(["runs", "show", "nope"], "nope", "project"),
    # capture, feedback, performance
    "capture-export-bad-since": Case(["capture", "export", "--since", "yesterday"], "'yesterday'", "project"),
    "capture-export-bad-format": Case(["capture", "export", "--format", "xml"], "'xml'", "project"),
    "capture-export-out-is-a-folder": Case(["capture", "export", "--out", F("dir")], "is a folder", "project"),
    "capture-export-out-under-a-file": Case(
        ["capture", "export", "--out", F("a_file") + "/x.csv"], "is a file", "project"
    ),
    "capture-export-unknown-model": Case(["capture", "export", "ghost"], "models there: toy", "project"),
    "feedback-missing-columns": Case(["feedback", F("fb_nocols")], "missing column(s) request_id, label", "project"),
    "feedback-unknown-request-id": Case(["feedback", F("fb_unknown")], "'nobody-sent-this'", "project"),
    "feedback-binary-file": Case(["feedback", F("binary")], "binary", "project"),
    "performance-unknown-model": Case(["performance", "ghost"], "model not found: ghost", "project"),
    # drift (errors exit 2)
    "drift-bad-since": Case(["drift", "--since", "abc"], "'abc'", "project", 2),
    "drift-current-missing-column": Case(["drift", "--current", F("current_missing")], "'x2'", "project", 2),
    "drift-unknown-version": Case(["drift", "--version", "99"], "toy@99", "project", 2),
    "drift-html-under-a-file": Case(
        ["drift", "--current", F("good"), "--html", F("a_file") + "/r.html"], "--html", "project", 2
    ),
    # monitor
    "monitor-check-bad-every": Case(["monitor", "check", "--every", "often"], "'often'", "project"),
    "monitor-check-bad-url": Case(["monitor", "check", "--url", "not a url", "--no-notify"], "'not a url'", "project"),
    "monitor-stack-bad-target": Case(
        ["monitor", "stack", "--out", F("dir") + "/s", "--target", "no port"], "'no port'"
    ),
    "monitor-rules-out-under-a-file": Case(
        ["monitor", "rules", "--out", F("a_file") + "/r.yml"], "is a file", "project"
    ),
    # ab, cost, pipeline, deploy
    "ab-start-bad-split": Case(["ab", "start", "toy", "--candidate", "1", "--split", "60/60"], "'60/60'", "project"),
    "ab-start-unknown-version": Case(["ab", "start", "toy", "--candidate", "42"], "toy@42", "project"),
    "cost-bad-cpu": Case(["cost", "--no-capture", "--cpu", "3"], "--cpu 3"),
    "cost-bad-since": Case(["cost", "--since", "xx"], "'xx'"),
    "schedule-bad-cron": Case(["pipeline", "schedule", "--cron", "every day"], "'every day'", "project"),
    "schedule-cron-out-of-range": Case(["pipeline", "schedule", "--cron", "61 3 * * *"], "minute 61", "project"),
    "deploy-docker-out-under-a-file": Case(["deploy", "docker", "--out", F("a_file") + "/d"], "is a file", "project"),
    "deploy-aws-out-under-a-file": Case(["deploy", "aws", "--out", F("a_file") + "/d"], "is a file", "project"),
    # usage errors: click's format, exit 2
    "usage-capture-version-not-a-number": Case(["capture", "export", "--version", "x"], "'--version'", "project", 2),
    "usage-ab-start-without-candidate": Case(["ab", "start", "toy"], "--candidate", "project", 2),
}


def _expand(arg: str, world: dict[str, Any], cwd: Path) -> str:
    for name, path in world["files"].items():
        arg = arg.replace(F(name), str(path))
    return arg.replace(F("dir"), str(cwd)).replace(F("root"), str(world["root"]))


def _cwd(case: Case, world: dict[str, Any], tmp_path: Path) -> Path:
    if case.where == "empty":
        return tmp_path
    if case.where == "project":
        return Path(world["project"])
    return Path(world["projects"][case.where])


def assert_one_error_line(proc: subprocess.CompletedProcess[str], code: int, names: str) -> str:
    """The contract of every failure; returns the line."""
    err = proc.stderr
    assert proc.returncode == code, (proc.returncode, err, proc.stdout[-500:])
    assert "Traceback" not in err, err
    if code == 2 and not err.startswith("error:"):  # click's usage error
        assert "Usage:" in err and "Error" in err and names in err, err
        return err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    line = lines[0]
    assert not RAW.search(line), line
    assert len(line) > len("error: ") + 10 and names in line, line
    return line


@pytest.mark.parametrize("case_id", list(CASES))
def test_bad_invocation_is_one_line_naming_the_thing(case_id: str, world: dict[str, Any], tmp_path: Path) -> None:
    case = CASES[case_id]
    (tmp_path / "a_file.txt").write_text("a file\n")
    cwd = _cwd(case, world, tmp_path)
    args = [_expand(a, world, tmp_path) for a in case.args]
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = run_cli(*args, cwd=cwd, check=False)
    assert_one_error_line(proc, case.code, case.names)
    if case_id.startswith("init"):  # a refused init leaves nothing behind
        assert sorted(p.name for p in tmp_path.iterdir()) == before
        assert not (tmp_path / "mlops.toml").exists() and not (tmp_path.parent / "mlops.toml").exists()


# -- data validate and train refuse the same data, with the same words, before any fit ------------------------

SAME = {
    "infinite": ("feature_inf", "x1"),
    "one-class": ("one_class", "y"),
    "rows-per-class": ("rare_class", "y"),
    "cardinality": ("high_cardinality", "user"),
}


@pytest.mark.parametrize(("file", "column"), list(SAME.values()), ids=list(SAME))
def test_validate_flags_and_train_refuses_before_fitting(file: str, column: str, world: dict[str, Any]) -> None:
    project = world["projects"][file]
    data = world["files"][file]
    validated = run_cli("data", "validate", str(data), "--json", cwd=project, check=False)
    assert_one_error_line(validated, 1, f"column {column!r}")
    report = json.loads(validated.stdout)
    (problem,) = [p for p in report["problems"] if p["severity"] == "error"]
    assert problem["column"] == column

    started = time.monotonic()
    trained = run_cli("train", cwd=project, check=False)
    line = assert_one_error_line(trained, 1, problem["detail"])
    assert line == f"error: {data}: column {column!r}: {problem['detail']}"
    assert time.monotonic() - started < 30
    assert not (project / ".mlops" / "runs").exists()  # nothing trained, nothing stored


def test_the_suggested_fixes_make_train_accept(world: dict[str, Any], tmp_path: Path) -> None:
    """Drop the column (cardinality), fewer CV folds (rows per class): what the messages say works."""
    files = world["files"]
    card = write_toml(
        tmp_path / "card",
        files["high_cardinality"],
        model="hist_gradient_boosting",
        params="{ max_iter = 10 }",
        data_extra='drop = ["user"]',
    )
    rare = world["files"]["rare_class"]
    frame = pd.read_csv(rare)
    frame.loc[frame.index[:6], "y"] = "c"  # 7 rows of c: the 7 that 5 folds after a 20 % holdout need
    frame.to_csv(tmp_path / "seven.csv", index=False)
    seven = write_toml(tmp_path / "seven", tmp_path / "seven.csv", cv=5)
    for project in (card, seven):
        assert run_cli("data", "validate", str(load_path(project)), cwd=project).returncode == 0
        run_cli("train", cwd=project)


def load_path(project: Path) -> Path:
    from mlopsctl.config import load_config

    return load_config(project).data_path()


def test_twenty_thousand_levels_are_refused_without_the_allocation(world: dict[str, Any], tmp_path: Path) -> None:
    """The issue's case: 20,000 levels with hist_gradient_boosting (~4.8 GiB dense here) under a 3 GiB cap."""
    n = 40_000
    rng = np.random.default_rng(2)
    data = tmp_path / "users.csv"
    pd.DataFrame(
        {"user": [f"u{i % 20_000:05d}" for i in range(n)], "x": rng.normal(size=n), "y": rng.integers(0, 2, n)}
    ).to_csv(data, index=False)
    project = write_toml(tmp_path / "p", data, model="hist_gradient_boosting", params="{ max_iter = 10 }")

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))

    proc = subprocess.run(
        [sys.executable, "-m", "mlopsctl.cli.main", "train"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=cap,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "200"},
    )
    line = assert_one_error_line(proc, 1, "20,000 distinct values, more than [data] max_categories = 1,000")
    assert 'drop = ["user"]' in line and "hash" in line and "GiB" in line


def test_init_warns_of_what_train_would_refuse_and_writes_a_loadable_config(
    world: dict[str, Any], tmp_path: Path
) -> None:
    from mlopsctl.config import load_config

    proc = run_cli("init", "p", "--data", str(world["files"]["rare_class"]), "--target", "y", cwd=tmp_path)
    assert "warning:" in proc.stderr and "class 'c' has 1 row" in proc.stderr
    assert load_config(tmp_path / "p").data.max_categories == 1000


# -- the shared real data -------------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_wine_with_a_word_among_the_numbers(tmp_path: Path) -> None:
    lines = WINE_RED.read_text().splitlines()
    fields = lines[10].split(";")
    fields[10] = "strong"
    lines[10] = ";".join(fields)
    bad = tmp_path / "wine.csv"
    bad.write_text("\n".join(lines) + "\n")
    proc = run_cli("data", "validate", str(bad), "--target", "quality", cwd=tmp_path, check=False)
    assert_one_error_line(proc, 1, "column 'alcohol'")
    assert "column 'alcohol': 1 of 1599 values is not a number: line 11 'strong'" in proc.stderr  # as an editor counts


@pytest.mark.shared_data
def test_white_wine_with_five_folds_warns_of_the_rare_class_and_the_folds_training_runs(tmp_path: Path) -> None:
    """Class 9 has 5 rows, fewer than 5 folds need after the holdout: training runs 4 folds, so validate warns
    (exit 0) and says so; a class of one row cannot be split at all and is an error (`validate-rare-class`)."""
    white = SHARED / "wine-quality" / "winequality-white.csv"
    proc = run_cli("data", "validate", str(white), "--target", "quality", cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "class '9' has 5 rows" in proc.stdout and "training runs 4 CV folds instead" in proc.stdout
    assert "cv_folds = 4 or fewer" in proc.stdout
    for name, target in (("adult/adult.csv", "Salary"), ("california-housing/housing.csv", "median_house_value")):
        assert run_cli("data", "validate", str(SHARED / name), "--target", target, cwd=tmp_path).returncode == 0


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ('{ n_estimators = "many" }', "The 'n_estimators' parameter of RandomForestClassifier must be an int"),
        ("{ n_estimators = -3 }", "in the range [1, inf). Got -3"),
        ("{ trees = 3 }", "'trees' is not a parameter of RandomForestClassifier; its parameters: bootstrap"),
    ],
    ids=["wrong-type", "out-of-range", "unknown"],
)
def test_training_params_are_checked_by_scikit_learn_before_any_fit(tmp_path: Path, params: str, says: str) -> None:
    from sklearn.datasets import load_wine

    load_wine(as_frame=True).frame.to_csv(tmp_path / "wine.csv", index=False)
    run_cli("init", "p", "--data", str(tmp_path / "wine.csv"), "--target", "target", cwd=tmp_path)
    toml = tmp_path / "p" / "mlops.toml"
    toml.write_text(toml.read_text().replace("params = { n_estimators = 100, max_depth = 12 }", f"params = {params}"))
    proc = run_cli("train", cwd=tmp_path / "p", check=False)
    line = assert_one_error_line(proc, 1, says)
    assert line.startswith("error: [training] params: ") and "ValueError" not in line
    assert not (tmp_path / "p" / ".mlops" / "runs").exists() or not any((tmp_path / "p" / ".mlops" / "runs").iterdir())
