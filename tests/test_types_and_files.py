"""Types are a contract, and every command reads a file the same way (issue 17, items 3 and 4).

- A numeric column with a word in it ("strong" among the 1,599 alcohol values of red wine) stays numeric;
  `data validate` and `train` refuse the file with one line per column naming the lines and values, unless
  ``[data] coerce`` reads them as missing; a snapshot's types hold every later file to them.
- The file options (separator, header, ``--columns``) work alike in `train`, `data validate`, `drift
  --current`, `predict --input`, `feedback` and `retrain --data`: a headerless text project can check
  and score its own file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SENTIMENT, WINE_RED, run_cli, write_project

AMAZON = SENTIMENT / "amazon_cells_labelled.txt"


def _red_with(tmp_path: Path, name: str, changes: dict[tuple[int, str], str]) -> Path:
    """Red wine with some values replaced, by (file line, column): line 1 is the header."""
    lines = WINE_RED.read_text().splitlines()
    header = [h.strip('"') for h in lines[0].split(";")]
    for (line, column), value in changes.items():
        fields = lines[line - 1].split(";")
        fields[header.index(column)] = value
        lines[line - 1] = ";".join(fields)
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _errors(proc: object) -> list[str]:
    lines = str(getattr(proc, "stderr", "")).strip().splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), lines
    assert "Traceback" not in str(getattr(proc, "stderr", ""))
    return lines


# -- the inference rule ---------------------------------------------------------------------------------------


def test_a_column_of_numbers_with_a_few_words_is_numeric_and_names_them() -> None:
    from mlopsctl.data.schema import CODES_MAX, infer_schema, not_numbers

    numbers = [f"{9 + i / 100:.2f}" for i in range(95)]
    s = pd.Series([*numbers, "strong", "n/a", "strong", "x", "y"])  # 95 % numbers
    bad = not_numbers(s)
    assert bad is not None and (bad.n_bad, bad.n_present) == (5, 100)
    assert bad.positions == (95, 96, 97, 98, 99) and bad.values == ("strong", "n/a", "strong", "x", "y")
    column = infer_schema(pd.DataFrame({"alcohol": s})).column("alcohol")
    assert (column.kind, column.dtype, column.min, column.max) == ("numeric", "float", 9.0, 9.94)
    # one more word (94 %): a category of mostly numbers, not a numeric column with typos
    fewer = pd.Series([*numbers[:94], "strong", "n/a", "strong", "x", "y", "z"])
    assert not_numbers(fewer) is None and infer_schema(pd.DataFrame({"a": fewer})).column("a").kind == "categorical"
    # a small set of codes with a word among them is a category
    codes = pd.Series([str(1 + i % (CODES_MAX - 1)) for i in range(199)] + ["unknown"])  # 20 distinct values
    assert not_numbers(codes) is None and infer_schema(pd.DataFrame({"c": codes})).column("c").kind == "categorical"
    # ...unless something says the column is numeric
    assert not_numbers(codes, numeric=True) is not None
    assert not_numbers(pd.Series([1.0, np.nan])) is None and not_numbers(pd.Series(["a", "b"])) is None


def test_rows_are_named_by_the_line_an_editor_shows(tmp_path: Path) -> None:
    """Header = line 1; blank lines and a quoted value over two lines are counted as an editor counts them."""
    from mlopsctl.data.read import read_table, row_places
    from mlopsctl.data.schema import not_numbers

    body = ["x,note", "1.5,plain", "", '2.5,"two\nlines"', *[f"{3 + i / 10},n" for i in range(40)], "strong,late"]
    path = tmp_path / "f.csv"
    path.write_text("\n".join(body) + "\n")
    df = read_table(path)
    bad = not_numbers(df["x"])
    assert bad is not None and bad.positions == (42,)
    assert row_places(df["x"], bad.positions) == ["line 46"]
    assert body[-1] == "strong,late"
    jsonl = tmp_path / "f.jsonl"
    jsonl.write_text('{"x": 1.5}\n\n' + "".join(f'{{"x": {i}.5}}\n' for i in range(30)) + '{"x": "strong"}\n')
    frame = read_table(jsonl)
    assert row_places(frame, [31]) == ["line 33"]
    parquet = tmp_path / "f.parquet"
    frame.astype({"x": str}).to_parquet(parquet)
    assert row_places(read_table(parquet), [31]) == ["data row 32"]  # no lines in Parquet: the data row


# -- item 3: the CLI -----------------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_data_validate_refuses_one_word_among_the_alcohol_values(tmp_path: Path) -> None:
    """Before: `data validate red_bad.csv --against none` said ok."""
    _red_with(tmp_path, "red_bad.csv", {(12, "alcohol"): "strong"})
    proc = run_cli("data", "validate", "red_bad.csv", "--against", "none", cwd=tmp_path, check=False)
    assert proc.returncode == 1, proc.stdout
    (line,) = _errors(proc)
    assert line.startswith("error: red_bad.csv: column 'alcohol': 1 of 1599 values is not a number: line 12 'strong'")
    assert '[data] coerce = ["alcohol"]' in line
    report = json.loads(
        run_cli("data", "validate", "red_bad.csv", "--against", "none", "--json", cwd=tmp_path, check=False).stdout
    )
    (problem,) = report["problems"]
    assert (problem["column"], problem["check"], problem["rows"], problem["severity"]) == (
        "alcohol",
        "wrong_type",
        1,
        "error",
    )


@pytest.mark.shared_data
def test_train_refuses_a_line_per_column_unless_coerced(tmp_path: Path) -> None:
    """Before: `train --data red_bad.csv` exited 0 with alcohol a categorical string."""
    bad = _red_with(
        tmp_path, "red_bad.csv", {(12, "alcohol"): "strong", (30, "pH"): "acidic", (31, "pH"): "?!", (40, "pH"): "low"}
    )
    folder = write_project(tmp_path / "p", data=bad, params="{ n_estimators = 10 }")
    proc = run_cli("train", "--data", str(bad), cwd=folder, check=False)
    assert proc.returncode == 1, proc.stdout
    assert _errors(proc) == [
        f"error: {bad}: column 'pH': 3 of 1599 values are not numbers: line 30 'acidic', line 31 '?!', line 40 "
        """'low': the column holds numbers (fix these values or leave them empty; [data] coerce = ["pH"] reads them """
        "as missing; if the column is a category, list it in [data] categorical_columns)",
        f"error: {bad}: column 'alcohol': 1 of 1599 values is not a number: line 12 'strong': the column holds numbers "
        """(fix these values or leave them empty; [data] coerce = ["alcohol"] reads them as missing; if the column """
        "is a category, list it in [data] categorical_columns)",
    ]
    assert not (folder / ".mlops" / "runs").exists()  # nothing trained

    toml = (folder / "mlops.toml").read_text()
    (folder / "mlops.toml").write_text(
        toml.replace('target = "quality"', 'target = "quality"\ncoerce = ["alcohol", "pH"]')
    )
    proc = run_cli("train", "--data", str(bad), "--json", cwd=folder)
    warned = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert warned == [
        f"warning: {bad}: column 'pH': 3 of 1599 values are not numbers: line 30 'acidic', line 31 '?!', line 40 "
        "'low': read as missing ([data] coerce)",
        f"warning: {bad}: column 'alcohol': 1 of 1599 values is not a number: line 12 'strong': read as missing "
        "([data] coerce)",
    ]
    run = json.loads(proc.stdout)
    kinds = {f["name"]: f["kind"] for f in run["signature"]["inputs"]}
    assert kinds["alcohol"] == kinds["pH"] == "numeric"
    # a coerce entry that names no column is refused like text_columns' (a typo would coerce nothing)
    typo = 'target = "quality"\ncoerce = ["alcohl", "alcohol", "pH"]'
    (folder / "mlops.toml").write_text(toml.replace('target = "quality"', typo))
    (line,) = _errors(run_cli("train", cwd=folder, check=False))
    assert "column 'alcohl': named in [data] coerce but not a column of the data" in line


@pytest.mark.shared_data
def test_a_snapshots_types_hold_every_later_file(tmp_path: Path) -> None:
    """Before: a snapshot took alcohol as a category and later validations accepted the bad file."""
    store = tmp_path / "store"
    bad = _red_with(tmp_path, "red_bad.csv", {(12, "alcohol"): "strong"})
    folder = write_project(tmp_path / "p", data=bad, store=store)
    toml = (folder / "mlops.toml").read_text()
    (folder / "mlops.toml").write_text(toml.replace('target = "quality"', 'target = "quality"\ncoerce = ["alcohol"]'))
    snap = json.loads(run_cli("data", "ingest", str(bad), "--json", cwd=folder).stdout)
    alcohol = next(c for c in snap["schema"]["columns"] if c["name"] == "alcohol")
    assert (alcohol["kind"], alcohol["dtype"], alcohol["null_rate"]) == ("numeric", "float", 1 / 1599)

    # outside the project (no coerce): the latest snapshot's schema is the reference
    other = tmp_path / "elsewhere"
    other.mkdir()
    proc = run_cli("--store", str(store), "data", "validate", str(bad), cwd=other, check=False)
    assert proc.returncode == 1 and "against the latest snapshot's schema" in proc.stdout
    (line,) = _errors(proc)
    assert f"error: {bad}: column 'alcohol': 1 of 1599 values is not a number: line 12 'strong'" in line
    # a number column turned text
    df = pd.read_csv(WINE_RED, sep=";")
    df["alcohol"] = np.where(df["alcohol"] > 10, "high", "low")
    words = tmp_path / "words.csv"
    df.to_csv(words, sep=";", index=False)
    proc = run_cli("--store", str(store), "data", "validate", str(words), cwd=other, check=False)
    (line,) = _errors(proc)
    assert line.startswith(f"error: {words}: column 'alcohol': 1599 of 1599 values are not numbers: line 2 'low'")
    # the same file on its own is a category column: fine
    assert (
        run_cli("--store", str(store), "data", "validate", str(words), "--against", "none", cwd=other).returncode == 0
    )


# -- item 4: one reader ---------------------------------------------------------------------------------------


def test_file_options_apply_the_project_then_the_flags(tmp_path: Path) -> None:
    from mlopsctl.data.read import FileOptions, read_data

    path = tmp_path / "h.txt"
    path.write_text("good phone\t1\nbad, very bad\t0\n")
    o = FileOptions(columns=("text", "label"), target="label")
    assert read_data(path, o).to_dict("list") == {"text": ["good phone", "bad, very bad"], "label": [1, 0]}
    # the same rows with a header naming the columns, or without the target, or without either
    (tmp_path / "head.txt").write_text("text\tlabel\ngood phone\t1\n")
    assert list(read_data(tmp_path / "head.txt", o).columns) == ["text", "label"]
    (tmp_path / "x.txt").write_text("good phone\nbad, very bad\nugly; broken | awful\n")
    assert read_data(tmp_path / "x.txt", o)["text"].tolist() == ["good phone", "bad, very bad", "ugly; broken | awful"]
    # flags over the project: another separator and other names
    semi = tmp_path / "s.csv"
    semi.write_text("1;2\n3;4\n")
    flagged = read_data(semi, o.but(sep=";", columns="a,b"))
    assert flagged.to_dict("list") == {"a": [1, 3], "b": [2, 4]}
    assert read_data(semi, FileOptions().but(sep=";", header=True)).columns.tolist() == ["1", "2"]
    with pytest.raises(Exception, match=r"3 names given \(a, b, c"):
        read_data(semi, o.but(sep=";", columns="a,b,c"))
    # values as the file spells them, for a caller that types them by a signature
    codes = tmp_path / "c.csv"
    codes.write_text("code,n\n03,1.5\n10,2\n")
    assert read_data(codes, text=True).to_dict("list") == {"code": ["03", "10"], "n": ["1.5", "2"]}


@pytest.mark.shared_data
@pytest.mark.slow
def test_a_headerless_text_project_checks_and_scores_its_own_file(tmp_path: Path) -> None:
    """Before: `drift --current` and `predict --input` on the file the project trained on failed with
    "missing column 'text'"."""
    data = tmp_path / "amazon.txt"
    data.write_bytes(AMAZON.read_bytes())
    run_cli("init", "amz", "--data", str(data), "--target", "label", "--columns", "text,label", cwd=tmp_path)
    folder = tmp_path / "amz"
    toml = (folder / "mlops.toml").read_text().replace("cv_folds = 5", "cv_folds = 2")
    (folder / "mlops.toml").write_text(toml.replace('require_approval = ["prod"]', "require_approval = []"))
    run = json.loads(run_cli("train", "--json", cwd=folder).stdout)
    run_cli("publish", run["run_id"], cwd=folder)
    run_cli("promote", "amz", "1", "--alias", "prod", cwd=folder)

    assert "ok" in run_cli("data", "validate", str(data), "--against", "none", cwd=folder).stdout
    drift = run_cli("drift", "--current", str(data), "--json", cwd=folder, check=False)
    assert drift.returncode == 0, drift.stderr  # 2 was the error
    assert json.loads(drift.stdout)["current_rows"] == 1000
    scored = json.loads(run_cli("predict", "--input", str(data), "--json", cwd=folder).stdout)
    assert len(scored["predictions"]) == 1000 and set(scored["predictions"]) == {0, 1}
    # the sentences alone (no label column), and a file with a header
    texts = tmp_path / "texts.txt"
    texts.write_text("Great phone, works well.\nBroke in a day; terrible.\n")
    two = json.loads(run_cli("predict", "--input", str(texts), "--json", cwd=folder).stdout)
    assert two["predictions"] == [1, 0]
    headed = tmp_path / "headed.tsv"
    headed.write_text("text\nGreat phone, works well.\n")
    assert json.loads(run_cli("predict", "--input", str(headed), "--json", cwd=folder).stdout)["predictions"] == [1]
    # a headerless feedback file, named by the flag (the project's columns are for its data files)
    fb = tmp_path / "fb.csv"
    fb.write_text("nobody-sent-this,1\n")
    proc = run_cli("feedback", str(fb), "--columns", "request_id,label", cwd=folder, check=False)
    assert proc.returncode == 1 and "'nobody-sent-this'" in proc.stderr and "missing column" not in proc.stderr
    # retrain on the same headerless file
    retrained = run_cli("retrain", "--data", str(data), "--rollout", "direct", "--json", cwd=folder)
    assert json.loads(retrained.stdout)["status"] == "succeeded"


@pytest.mark.shared_data
def test_the_flags_read_a_file_the_project_would_not(wine_store_copy: Path, tmp_path: Path) -> None:
    """A headerless, pipe-separated copy of red wine: `data validate` and `drift --current` read it with
    --sep, --no-header and --columns; without them the columns are col_0… and drift refuses it by name."""
    df = pd.read_csv(WINE_RED, sep=";")
    path = tmp_path / "red.txt"
    df.to_csv(path, sep="|", index=False, header=False)
    names = ",".join(df.columns)
    flags = ("--sep", "|", "--no-header", "--columns", names)
    checked = run_cli("data", "validate", str(path), "--against", "none", *flags, cwd=tmp_path)
    assert "1599 rows × 12 columns" in checked.stdout and "ok" in checked.stdout
    store = ("--store", str(wine_store_copy))
    drift = run_cli(*store, "drift", "wine", "--current", str(path), "--json", *flags, cwd=tmp_path, check=False)
    assert drift.returncode in (0, 1), drift.stderr
    assert json.loads(drift.stdout)["current_rows"] == 1599
    bare = run_cli(*store, "drift", "wine", "--current", str(path), cwd=tmp_path, check=False)
    assert bare.returncode == 2 and "missing column" in bare.stderr, bare.stderr
