"""Drift at width: hundreds of numeric columns, float32 frames, a bounded HTML page, progress, and the fast
paths (float32 sort, one-pass sketch CDF) equal to the plain per-column definitions."""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlopsctl.monitoring.baseline import build_baseline
from mlopsctl.monitoring.drift import PREDICTION, DriftReport, Reference, detect
from mlopsctl.monitoring.report import CHARTS, charted, render_html
from mlopsctl.monitoring.sketch import NumericSketch, f32
from mlopsctl.monitoring.twosample import Sorted, adjust, compare_to_sketch, ks_statistic
from tests.conftest import WINE_RED, run_cli

N_REF, N_CUR, WIDTH = 10_000, 20_000, 300
# column → mean shift in standard deviations: KS D grows with it, so the charts must follow this order
SHIFTED = {7: 0.3, 40: 0.4, 41: 0.5, 99: 0.7, 150: 0.9, 151: 1.1, 200: 1.3, 250: 1.6, 299: 2.0}


def _block(n: int, current: bool) -> pd.DataFrame:
    rng = np.random.default_rng([18, int(current)])
    block = np.asfortranarray(rng.standard_normal((n, WIDTH), dtype=np.float32))
    if current:
        for j, shift in SHIFTED.items():
            block[:, j] += np.float32(shift)
    return pd.DataFrame(block, columns=[f"c{j:03d}" for j in range(WIDTH)], copy=False)


@pytest.fixture(scope="module")
def wide() -> tuple[Reference, pd.DataFrame, DriftReport]:
    ref = _block(N_REF, current=False)
    feats = [{"name": c, "kind": "numeric"} for c in ref.columns]
    preds = np.random.default_rng(3).choice(["a", "b"], N_REF)
    baseline = json.loads(json.dumps(build_baseline(ref, feats, preds, "classification")))  # as stored
    reference = Reference(feats, None, "classification", baseline, "wide", 1)
    cur = _block(N_CUR, current=True)
    cur[PREDICTION] = np.random.default_rng(4).choice(["a", "b"], N_CUR)
    return reference, cur, detect(reference, cur)


def test_a_wide_report_flags_the_shifted_columns_only(wide: tuple[Reference, pd.DataFrame, DriftReport]) -> None:
    _, _, report = wide
    assert set(report.drifted_features) == {f"c{j:03d}" for j in SHIFTED}
    assert report.n_features == WIDTH and not report.dataset_drift  # 9 of 300: below the share


def test_the_html_stays_small_lists_every_drifted_feature_and_charts_the_largest_effects(
    wide: tuple[Reference, pd.DataFrame, DriftReport],
) -> None:
    _, _, report = wide
    doc = report.to_dict()
    page = render_html(doc)
    per_feature_before = 11_000  # a chart and a statistics table per feature: about 11 kB each
    assert len(page.encode()) < 800_000 < WIDTH * per_feature_before
    assert page.count("<svg") == CHARTS + 1  # the charted features and the prediction
    table = page[page.index("<h2>Features, most severe first") : page.index('class="legend"')]
    assert table.count("<tr>") == WIDTH + 1  # every feature is a row of the overview, the header too
    for name in report.drifted_features:
        assert f'<a href="#f-{[f.name for f in report.features].index(name)}">{escape(name)}</a>' in table
    with_chart = [int(i) for i in re.findall(r'<section class="card feature" id="f-(\d+)"', page)]
    assert with_chart == sorted(with_chart) and len(with_chart) == CHARTS
    sev = [f["severity"] for f in doc["features"]]
    without = [i for i in range(WIDTH) if i not in with_chart]
    assert min(sev[i] for i in with_chart) >= max(sev[i] for i in without)
    # the largest shifts are the largest effects, and come first
    by_shift = sorted(SHIFTED, key=lambda j: -SHIFTED[j])
    assert [doc["features"][i]["name"] for i in with_chart[: len(SHIFTED)]] == [f"c{j:03d}" for j in by_shift]
    assert f"the other {WIDTH - CHARTS:,} are in this table only" in page


def test_charted_takes_the_largest_severities_in_report_order() -> None:
    feats = [{"severity": s} for s in (5.0, 0.1, 9.0, 0.1, 0.2, None)]
    assert charted(feats, 3) == [0, 2, 4]
    assert charted(feats, 0) == [] and charted(feats, 10) == list(range(6))
    page = render_html({"features": [{"name": f"f{i}", **f} for i, f in enumerate(feats)]}, charts=2)
    assert page.count('<section class="card feature"') == 2 and 'href="#f-1"' not in page and "f1" in page


def test_wide_float32_frame_equals_the_per_column_path(wide: tuple[Reference, pd.DataFrame, DriftReport]) -> None:
    """Each column tested alone, as float64, gives the same statistics; the wide report's adjusted p-values
    are Holm over all of them."""
    reference, cur, report = wide
    by_name = {f.name: f for f in report.features}
    alone = []
    for f in reference.features[:40]:
        one = Reference([f], None, "classification", reference.baseline, "wide", 1)
        r = detect(one, cur[[f["name"]]].astype(np.float64)).features[0]
        w = by_name[f["name"]]
        for key in ("statistic", "p_value", "effect", "psi", "distance", "severity", "n_current", "chart"):
            assert getattr(w, key) == getattr(r, key), (f["name"], key)
        assert w.details == r.details
        alone.append(r)
    family = [by_name[f.name].tests[0].p_value for f in report.features]
    holm = dict(zip([f.name for f in report.features], adjust(family, "holm"), strict=True))
    for r in alone:
        assert by_name[r.name].p_value_adjusted == holm[r.name]


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(1).normal(size=5000),
        np.random.default_rng(2).normal(size=5000).astype(np.float32),
        np.array([1e39, -1e300, 3.4028235e38, 1.0, np.nan, np.inf, -np.inf, 0.1, -0.0, 0.0]),
        np.array([np.inf, -np.inf, np.nan, 1.5, 1e-50, -0.0, 0.0, 3.4028234e38, 0.1]),
        np.array([2**60 + 1, 3, -(2**55) - 7, 0], dtype=np.int64),
        np.array([True, False, True]),
        np.array([0.1, None, "2.5"], dtype=object),
        np.random.default_rng(3).integers(0, 5, 3000).astype(np.float64),
    ],
    ids=["float64", "float32", "beyond float32", "inf and nan", "large int64", "bool", "object", "ties"],
)
def test_the_float32_sort_is_the_f32_values_sorted(values: Any) -> None:
    fast, plain = Sorted.of_f32(values), Sorted.of(f32(np.asarray(values, dtype=np.float64)))
    assert fast.values.dtype == np.float64 and fast.missing == plain.missing
    np.testing.assert_array_equal(fast.values, plain.values)


@pytest.mark.parametrize("n_ref, distinct", [(50_000, None), (50_000, 40), (800, None)], ids=["sketch", "few", "exact"])
def test_sketch_comparison_equals_its_definition(n_ref: int, distinct: int | None) -> None:
    """KS and Wasserstein against a sketch: the sketch's CDF (binary search) minus the current ECDF at every
    distinct value of both, as defined, without the one-pass merge."""
    rng = np.random.default_rng(n_ref)
    ref_values, cur_values = rng.normal(size=n_ref), rng.normal(0.05, 1.1, size=30_000)
    if distinct:
        ref_values, cur_values = np.round(ref_values * distinct / 8), np.round(cur_values * distinct / 8)
    ref, cur = NumericSketch.of(ref_values), Sorted.of_f32(cur_values)
    points = np.union1d(ref.values, cur.values)
    gaps = ref.cdf(points) - np.searchsorted(cur.values, points, side="right") / cur.n
    c = compare_to_sketch(ref, cur)
    assert c.statistic == ks_statistic(gaps)
    np.testing.assert_allclose(c.wasserstein, np.sum(np.abs(gaps[:-1]) * np.diff(points)), rtol=1e-12)


def test_progress_is_called_once_per_feature(wide: tuple[Reference, pd.DataFrame, DriftReport]) -> None:
    reference, cur, _ = wide
    one = Reference(reference.features[:25], None, "classification", reference.baseline, "wide", 1)
    seen: list[tuple[int, int]] = []
    detect(one, cur, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 25) for i in range(1, 26)]


@pytest.mark.shared_data
@pytest.mark.parametrize("env, shown", [({}, False), ({"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1"}, True)])
def test_cli_progress_only_on_a_terminal_and_never_with_json(
    wine_store_copy: Path, tmp_path: Path, env: dict[str, str], shown: bool
) -> None:
    args = ("--store", str(wine_store_copy), "drift", "wine", "--current", str(WINE_RED), "--no-predict")
    plain = run_cli(*args, cwd=tmp_path, env=env, check=False)
    assert plain.returncode in (0, 1), plain.stderr
    assert ("testing 11 features" in plain.stderr) is shown
    quiet = run_cli(*args, "--json", cwd=tmp_path, env=env, check=False)
    assert "testing" not in quiet.stderr and json.loads(quiet.stdout)["n_features"] == 11


def test_the_report_is_the_same_whatever_the_number_of_threads(
    wide: tuple[Reference, pd.DataFrame, DriftReport],
) -> None:
    reference, cur, report = wide
    docs = [report.to_dict(), detect(reference, cur, workers=1).to_dict(), detect(reference, cur, workers=4).to_dict()]
    for d in docs:
        del d["created_at"], d["elapsed_s"]
    assert docs[0] == docs[1] == docs[2]


def test_the_terminal_table_lists_every_drifted_feature_and_says_how_many_more(
    wide: tuple[Reference, pd.DataFrame, DriftReport],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlopsctl.cli.drift import TABLE_ROWS, _print

    monkeypatch.setenv("COLUMNS", "200")
    _, _, report = wide
    _print(report, None, None)
    out = capsys.readouterr().out
    listed = [f.name for f in report.features if re.search(rf"\b{f.name}\b", out)]
    assert listed == [f.name for f in report.features[:TABLE_ROWS]]
    assert set(report.drifted_features) <= set(listed)
    assert f"… and {WIDTH - TABLE_ROWS} more features without drift" in out


def test_a_wide_parquet_file_reads_as_it_was_written_and_tests_the_same(
    wide: tuple[Reference, pd.DataFrame, DriftReport], tmp_path: Path
) -> None:
    """The reader keeps float32 columns float32 (no widened copy) and the values as written, so the
    report on the file equals the report on the frame."""
    from mlopsctl.data.read import read_data

    reference, cur, report = wide
    path = tmp_path / "wide.parquet"
    written = cur.assign(city=pd.Series(["a", None] * (len(cur) // 2), dtype=object), n=np.arange(len(cur)))
    written.to_parquet(path, index=False)
    back = read_data(path)
    assert list(back.columns) == list(written.columns)
    assert (back.dtypes.iloc[:WIDTH] == np.float32).all() and back["n"].dtype == np.int64
    pd.testing.assert_frame_equal(back[cur.columns[:WIDTH]], cur[cur.columns[:WIDTH]])
    assert back["city"].isna().sum() == len(cur) // 2 and set(back["city"].dropna()) == {"a"}
    on_file = detect(reference, back).to_dict()
    doc = report.to_dict()
    for d in (on_file, doc):
        del d["created_at"], d["elapsed_s"]
    assert on_file == doc
