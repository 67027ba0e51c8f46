"""Drift: the statistics equal scipy's, the verdicts are right on real data, the CLI and its reports."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from mlopsctl.errors import DataError
from mlopsctl.monitoring.baseline import build_baseline
from mlopsctl.monitoring.checks import (
    OOV_RISE,
    FeatureDrift,
    Measured,
    judge,
    measure_categorical,
    measure_numeric,
    measure_text,
)
from mlopsctl.monitoring.drift import (
    PREDICTION,
    DriftSettings,
    Reference,
    detect,
    latest_report,
    report_keys,
    save_report,
)
from mlopsctl.monitoring.report import render_html
from mlopsctl.monitoring.sketch import CategoricalSketch, NumericSketch, TextSketch, f32
from mlopsctl.monitoring.twosample import (
    PSI_EPSILON,
    Sorted,
    adjust,
    compare_numeric,
    ks_2samp_sorted,
    psi,
    psi_edges,
)
from mlopsctl.store.local import LocalStore
from tests.conftest import HOUSING, SENTIMENT, WINE_RED, WINE_WHITE, run_cli

RNG = np.random.default_rng(20251123)


def _reference(frame: pd.DataFrame, kinds: dict[str, str], task: str = "classification") -> Reference:
    features = [{"name": n, "kind": k} for n, k in kinds.items()]
    X = frame[list(kinds)]
    if PREDICTION in frame.columns:
        preds = frame[PREDICTION]
    else:
        preds = pd.Series([0.0 if task == "regression" else "a"] * len(frame))
    return Reference(features, frame, task, build_baseline(X, features, preds, task), "m", 1)


def _judged(m: Measured | None) -> FeatureDrift | None:
    """One feature's checks judged alone (no correction), at p < 0.05 and the default effect."""
    return None if m is None else judge(m, [c.p_value for c in m.checks], 0.05, 0.2)


def categorical_drift(name: str, ref: Any, cur: Any, known: set[str] | None = None) -> FeatureDrift | None:
    return _judged(measure_categorical(name, CategoricalSketch.of(ref), cur, 0.1, known))


def numeric_drift(name: str, ref: Any, cur: Any) -> FeatureDrift | None:
    return _judged(measure_numeric(name, NumericSketch.of(ref), cur, 0.1))


def _wine(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep=";")


WINE_FEATURES = [
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
]


def _wine_reference(frame: pd.DataFrame) -> Reference:
    ref = frame[WINE_FEATURES].assign(**{PREDICTION: frame["quality"].to_numpy()})
    return _reference(ref, dict.fromkeys(WINE_FEATURES, "numeric"))


# -- the statistics equal scipy's ----------------------------------------------------------------


SAMPLES = {
    "small": (lambda: RNG.normal(size=40), lambda: RNG.normal(0.3, size=65)),
    "ties": (lambda: RNG.integers(0, 6, size=300).astype(float), lambda: RNG.integers(0, 7, size=450).astype(float)),
    "equal sizes": (lambda: RNG.normal(size=500), lambda: RNG.normal(size=500)),
    "exact at the limit": (lambda: RNG.normal(size=5000), lambda: RNG.normal(0.05, size=10_000)),
    "asymptotic just past it": (lambda: RNG.normal(size=5000), lambda: RNG.normal(0.02, size=10_001)),
    "asymptotic large, ties": (
        lambda: RNG.normal(size=100_000).round(2),
        lambda: RNG.normal(0.01, 1.02, size=300_000).round(2),
    ),
    "asymptotic, identical": (lambda: np.arange(20_000.0), lambda: np.arange(20_000.0)),
}


@pytest.mark.parametrize("case", list(SAMPLES))
def test_ks_and_wasserstein_equal_scipy(case: str) -> None:
    make_a, make_b = SAMPLES[case]
    a, b = make_a(), make_b()
    c = compare_numeric(Sorted.of(a), Sorted.of(b))
    want = stats.ks_2samp(a, b)
    assert c.statistic == float(want.statistic)
    np.testing.assert_allclose(c.p_value, want.pvalue, rtol=1e-12, atol=0)
    np.testing.assert_allclose(c.wasserstein, stats.wasserstein_distance(a, b), rtol=1e-12)
    assert c.method == ("exact" if max(a.size, b.size) <= 10_000 else "asymp")


def test_ks_ignores_missing_values_like_scipy_omit() -> None:
    a, b = RNG.normal(size=12_000), RNG.normal(0.1, size=11_000)
    a[::7], b[::5] = np.nan, np.inf
    d, p, _ = ks_2samp_sorted(Sorted.of(a), Sorted.of(b))
    want = stats.ks_2samp(a[np.isfinite(a)], b[np.isfinite(b)])
    assert d == float(want.statistic)
    np.testing.assert_allclose(p, want.pvalue, rtol=1e-12)
    assert Sorted.of(a).missing == len(a[::7])


@pytest.mark.parametrize("n_ref,n_cur,levels", [(200, 300, 2), (5000, 800, 6), (3000, 200_000, 12)])
def test_chi_square_equals_scipy_on_the_same_table(n_ref: int, n_cur: int, levels: int) -> None:
    cats = [f"c{i}" for i in range(levels)]
    ref = pd.Series(RNG.choice(cats, size=n_ref, p=np.linspace(1, 2, levels) / np.linspace(1, 2, levels).sum()))
    cur = pd.Series(RNG.choice([*cats, "new"], size=n_cur))
    r = categorical_drift("x", ref, cur, set(cats))
    assert r is not None
    table = pd.crosstab(
        np.r_[np.zeros(n_ref), np.ones(n_cur)], pd.concat([ref, cur], ignore_index=True).to_numpy()
    ).to_numpy()
    want = stats.chi2_contingency(table)
    np.testing.assert_allclose(r.statistic, want.statistic, rtol=1e-12)
    np.testing.assert_allclose(r.p_value, want.pvalue, rtol=1e-12)
    assert r.details["dof"] == want.dof
    assert r.details["unseen"] == ["new"]


def test_chi_square_with_two_categories_uses_yates_as_scipy_does() -> None:
    ref = pd.Series(["a"] * 60 + ["b"] * 40)
    cur = pd.Series(["a"] * 45 + ["b"] * 55)
    r = categorical_drift("x", ref, cur)
    assert r is not None
    want = stats.chi2_contingency([[60, 40], [45, 55]])
    assert r.statistic == pytest.approx(want.statistic, rel=1e-12)
    assert r.p_value == pytest.approx(want.pvalue, rel=1e-12)


def test_categories_are_matched_by_key_not_by_type() -> None:
    ref = pd.Series([1, 2, 2, 3] * 20)
    cur = pd.Series(["1", 2.0, "2", 3.0] * 20, dtype=object)
    r = categorical_drift("x", ref, cur)
    assert r is not None and r.statistic == 0 and r.p_value == 1 and r.details["unseen"] == []


def test_psi_bins_are_reference_deciles_with_an_epsilon_for_empty_bins() -> None:
    ref = Sorted.of(np.arange(1000.0))
    edges = psi_edges(ref)
    assert edges.tolist() == [99.0, 199.0, 299.0, 399.0, 499.0, 599.0, 699.0, 799.0, 899.0]
    counts = ref.counts(edges)
    assert counts.tolist() == [100] * 10
    assert psi(counts / 1000, counts / 1000) == 0
    # a current sample entirely above the reference: nine empty bins, a finite PSI
    c = compare_numeric(ref, Sorted.of(np.arange(2000.0, 2500.0)))
    assert c.psi_current[-1] == 1.0 and np.isfinite(c.psi)
    expected = 9 * (PSI_EPSILON - 0.1) * np.log(PSI_EPSILON / 0.1) + (1 - 0.1) * np.log(1 / 0.1)
    assert c.psi == pytest.approx(expected)
    # a feature with few distinct values gets fewer bins, one per distinct cut point
    flags = Sorted.of(np.r_[np.zeros(700), np.ones(300)])
    assert psi_edges(flags).tolist() == [0.0, 1.0]


def test_corrections() -> None:
    p = [0.01, 0.04, 0.03, 0.2]
    assert adjust(p, "none") == p
    assert adjust(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.8])
    # Holm: sorted 0.01·4, 0.03·3, 0.04·2, 0.2·1, made monotone
    assert adjust(p, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.2])
    np.testing.assert_allclose(adjust(p, "fdr_bh"), stats.false_discovery_control(p, method="bh"))
    with pytest.raises(ValueError, match="fdr_bh"):
        adjust(p, "fdr")


def test_correction_changes_the_verdict() -> None:
    n = 400
    rng = np.random.default_rng(0)  # its own generator: the module's RNG depends on which tests ran before
    ref = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(10)})
    cur = ref.sample(frac=1, random_state=1).reset_index(drop=True) + 0.0
    cur["x0"] = rng.normal(0.18, size=n)  # a small shift: p ≈ 0.01
    reference = _reference(ref, {c: "numeric" for c in ref.columns})
    plain = detect(reference, cur, DriftSettings(p_value=0.05, correction="none"))
    strict = detect(reference, cur, DriftSettings(p_value=0.05, correction="bonferroni"))
    x0 = next(f for f in plain.features if f.name == "x0")
    assert x0.p_value is not None and 0.005 < x0.p_value * 10 / 10 < 0.05 and x0.drifted
    x0s = next(f for f in strict.features if f.name == "x0")
    assert x0s.p_value_adjusted == pytest.approx(min(1.0, x0.p_value * 10)) and not x0s.drifted


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=30, max_size=300),
    st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=30, max_size=300),
)
def test_identical_samples_never_drift(values: list[float], cats: list[str]) -> None:
    n = min(len(values), len(cats))
    frame = pd.DataFrame({"x": values[:n], "c": cats[:n]})
    report = detect(_reference(frame, {"x": "numeric", "c": "categorical"}), frame)
    assert not report.dataset_drift and report.n_drifted == 0
    assert all(f.statistic == 0 and f.psi == 0 for f in report.features)


# -- bad input ------------------------------------------------------------------------------------


def _small_reference() -> Reference:
    frame = pd.DataFrame({"a": RNG.normal(size=100), "b": RNG.normal(size=100), "c": ["x", "y"] * 50})
    return _reference(frame, {"a": "numeric", "b": "numeric", "c": "categorical"})


def test_missing_columns_are_named() -> None:
    with pytest.raises(DataError, match=r"missing columns 'a', 'c'"):
        detect(_small_reference(), pd.DataFrame({"b": np.zeros(50)}), source={"kind": "file", "path": "f.csv"})


def test_values_that_are_not_numbers_are_named() -> None:
    cur = pd.DataFrame({"a": ["1.5", "high"] * 25, "b": np.zeros(50), "c": ["x"] * 50})
    with pytest.raises(DataError, match=r"column 'a': values that are not numbers: 'high'") as err:
        detect(_small_reference(), cur)
    assert err.value.column == "a"
    both = cur.assign(b=["?x"] * 50)
    with pytest.raises(DataError, match=r"numeric columns with values that are not numbers: 'a': 'high'; 'b': '\?x'"):
        detect(_small_reference(), both)


def test_too_few_rows_is_an_error_not_a_verdict() -> None:
    cur = pd.DataFrame({"a": [1.0] * 5, "b": [1.0] * 5, "c": ["x"] * 5})
    with pytest.raises(DataError, match=r"5 rows: a drift test needs at least 30"):
        detect(_small_reference(), cur)
    assert detect(_small_reference(), cur, DriftSettings(min_rows=5)).current_rows == 5


def test_a_feature_with_no_values_now_is_drifted_and_sorts_first() -> None:
    cur = pd.DataFrame({"a": RNG.normal(size=60), "b": [None] * 60, "c": ["x", "y"] * 30})
    report = detect(_small_reference(), cur)
    first = report.features[0]
    assert (first.name, first.test, first.drifted, first.missing_current) == ("b", "all_missing", True, 1.0)


# -- real data ------------------------------------------------------------------------------------


@pytest.mark.shared_data
@pytest.mark.parametrize("seed", range(5))
def test_two_halves_of_red_wine_do_not_drift(seed: int) -> None:
    red = _wine(WINE_RED)
    a = red.sample(frac=0.5, random_state=seed)
    b = red.drop(a.index)
    report = detect(_wine_reference(a), b.rename(columns={"quality": PREDICTION}))
    assert not report.dataset_drift, report.drifted_features
    assert report.n_drifted <= 2  # at p < 0.05, about one in twenty features drifts by chance


@pytest.mark.shared_data
def test_red_versus_white_wine_drifts_on_the_features_that_differ() -> None:
    red, white = _wine(WINE_RED), _wine(WINE_WHITE)
    report = detect(_wine_reference(red), white.rename(columns={"quality": PREDICTION}))
    assert report.dataset_drift and report.drifted_share > 0.8
    by_name = {f.name: f for f in report.features}
    for name in ("total sulfur dioxide", "residual sugar", "chlorides", "free sulfur dioxide", "volatile acidity"):
        f = by_name[name]
        assert f.drifted and f.psi is not None and f.psi > 0.2 and f.p_value is not None and f.p_value < 1e-100
    # these differ the most: they lead the report; alcohol differs the least
    assert {f.name for f in report.features[:5]} >= {"total sulfur dioxide", "chlorides"}
    assert report.features[-1].name == "alcohol"
    # each equals scipy on the same samples, compared at float32 precision (the reference is exact: 1,599 rows)
    for name in WINE_FEATURES:
        a, b = f32(red[name].to_numpy()), f32(white[name].to_numpy())
        want = stats.ks_2samp(a, b)
        assert by_name[name].statistic == float(want.statistic)
        np.testing.assert_allclose(by_name[name].p_value, want.pvalue, rtol=1e-12)
        np.testing.assert_allclose(by_name[name].distance, stats.wasserstein_distance(a, b), rtol=1e-12)


@pytest.mark.shared_data
def test_housing_categories_chi_square_and_an_unseen_category() -> None:
    housing = pd.read_csv(HOUSING)
    kinds = {c: "numeric" for c in housing.columns if c not in ("ocean_proximity", "median_house_value")}
    kinds["ocean_proximity"] = "categorical"
    ref_rows = housing[housing.ocean_proximity != "ISLAND"].sample(5000, random_state=3)
    reference = _reference(ref_rows, kinds, task="regression")
    # a random sample of the rest (ISLAND included): the categories do not drift, the island is named
    cur = housing.drop(ref_rows.index).sample(8000, random_state=4)
    cur = pd.concat([cur, housing[housing.ocean_proximity == "ISLAND"]])
    report = detect(reference, cur)
    ocean = next(f for f in report.features if f.name == "ocean_proximity")
    assert ocean.test == "chi2" and ocean.details["unseen"] == ["ISLAND"]
    # ISLAND (5 current rows, none in the reference) is expected 2.9 times in the smaller sample: with the next
    # rarest category (NEAR BAY) it makes one pooled bin, and scipy gets the same pooled table
    assert ocean.details["pooled"] == ["NEAR BAY", "ISLAND"]
    pooled = pd.concat([ref_rows.ocean_proximity, cur.ocean_proximity], ignore_index=True).replace(
        {"ISLAND": "pooled", "NEAR BAY": "pooled"}
    )
    table = pd.crosstab(np.r_[np.zeros(len(ref_rows)), np.ones(len(cur))], pooled.to_numpy())
    want = stats.chi2_contingency(table.to_numpy())
    np.testing.assert_allclose([ocean.statistic, ocean.p_value], [want.statistic, want.pvalue], rtol=1e-12)
    assert ocean.psi is not None and 0 < ocean.psi < 0.2 and not report.dataset_drift
    # inland districts only: the categories drift, and so do the coordinates
    inland = housing[housing.ocean_proximity == "INLAND"].sample(3000, random_state=5)
    shifted = detect(reference, inland)
    names = {f.name for f in shifted.features if f.drifted}
    assert {"ocean_proximity", "longitude", "median_income"} <= names and shifted.dataset_drift


def _sentences(name: str) -> pd.DataFrame:
    from mlopsctl.data.read import read_table

    return read_table(SENTIMENT / f"{name}_labelled.txt", names=["text", "label"], header=False)


@pytest.mark.shared_data
def test_sentiment_text_length_and_vocabulary() -> None:
    amazon = _sentences("amazon_cells")
    half = amazon.sample(frac=0.5, random_state=7)
    rest = amazon.drop(half.index)
    reference = _reference(half.assign(**{PREDICTION: half.label}), {"text": "text"})
    same = detect(reference, rest.rename(columns={"label": PREDICTION}))
    t = same.features[0]
    assert t.kind == "text" and t.test == "length_ks+oov" and not t.drifted
    assert abs(t.details["oov_rise"]) < OOV_RISE  # new sentences bring new words, as many as expected
    assert t.details["oov_current"] > 0.1
    imdb = _sentences("imdb")
    other = detect(reference, imdb)
    t2 = other.features[0]
    assert t2.drifted and t2.details["oov_rise"] > 2 * OOV_RISE and other.dataset_drift
    assert t2.p_value is not None and t2.p_value < 1e-6  # movie reviews are longer too


def test_text_vocabulary_is_the_reference_words() -> None:
    ref = pd.Series(["the cat sat on the mat", "a dog ran in the park"] * 30)
    r = _judged(
        measure_text("t", TextSketch.of(ref), pd.Series(["quantum chromodynamics lattice gauge theory"] * 40), 0.1)
    )
    assert r is not None and r.details["oov_current"] == 1.0 and r.drifted


def test_numeric_result_shape_and_chart() -> None:
    r = numeric_drift("x", RNG.normal(size=500), RNG.normal(1, size=400))
    assert r is not None
    d = r.to_dict()
    for key in ("statistic", "p_value", "threshold", "drifted", "psi", "distance", "severity", "chart"):
        assert key in d
    assert d["chart"]["type"] == "histogram" and len(d["chart"]["edges"]) == 31
    assert sum(d["chart"]["reference"]) == pytest.approx(1) and sum(d["chart"]["current"]) == pytest.approx(1)
    few = numeric_drift("q", RNG.integers(3, 9, 500).astype(float), RNG.integers(3, 10, 500).astype(float))
    assert few is not None and few.chart["type"] == "bars" and few.chart["labels"][0] == "3"


# -- saved reports and HTML ------------------------------------------------------------------------


def test_save_and_read_the_latest_report(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    frame = pd.DataFrame({"x": RNG.normal(size=100)})
    first = detect(_reference(frame, {"x": "numeric"}), frame)
    k1 = save_report(store, "m", first)
    shifted = detect(_reference(frame, {"x": "numeric"}), frame + 3)
    k2 = save_report(store, "m", shifted)
    assert re.fullmatch(r"drift/m/\d{4}-\d\d-\d\dT\d{6}\.\d{6}Z\.json", k1) and k1 != k2
    assert report_keys(store, "m") == sorted([k1, k2])
    latest = latest_report(store, "m")
    assert latest is not None and latest["dataset_drift"] is True and latest["drifted_share"] == 1.0
    assert latest["version"] == 1 and latest["created_at"].endswith("+00:00")
    assert json.loads(store.get(k1))["dataset_drift"] is False
    assert latest_report(store, "other") is None


def test_html_report_is_self_contained_escaped_and_sorted() -> None:
    n = 300
    ref = pd.DataFrame(
        {
            "<b>tag</b>": RNG.normal(size=n),
            "mild": RNG.normal(size=n),
            "strong": RNG.normal(size=n),
            "city": RNG.choice(["a", "b"], n),
            PREDICTION: RNG.choice(["yes", "no"], n),
        }
    )
    cur = ref.assign(strong=RNG.normal(3, size=n), mild=RNG.normal(0.4, size=n), city=["<script>"] * n)
    kinds = {"<b>tag</b>": "numeric", "mild": "numeric", "strong": "numeric", "city": "categorical"}
    doc = detect(_reference(ref, kinds), cur).to_dict()
    page = render_html(doc)
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#)""", page)  # only in-page links
    assert "Dataset drift: YES" in page
    assert "&lt;b&gt;tag&lt;/b&gt;" in page and "<b>tag</b>" not in page and "&lt;script&gt;" in page
    names = [f["name"] for f in doc["features"]]
    assert names[-1] == "<b>tag</b>" and set(names[:3]) == {"strong", "mild", "city"}
    sections = [page.index(f'id="f-{i}"') for i in range(len(names))]
    assert sections == sorted(sections)
    for i, name in enumerate(names):
        from html import escape

        assert f'id="f-{i}"><h2>{escape(name)}' in page
    assert page.count("<svg") == len(names) + 1  # one chart per feature and the prediction


# -- the CLI ----------------------------------------------------------------------------------------


def _csv(tmp_path: Path, name: str, frame: pd.DataFrame) -> Path:
    p = tmp_path / name
    frame.to_csv(p, index=False)
    return p


@pytest.mark.shared_data
@pytest.mark.slow
def test_cli_file_no_drift_and_drift(wine_store_copy: Path, tmp_path: Path) -> None:
    red = run_cli(
        "--store", str(wine_store_copy), "drift", "wine", "--current", str(WINE_RED), cwd=tmp_path, check=False
    )
    assert red.returncode == 0, red.stderr
    assert "no dataset drift: 0 of 11 features drifted" in red.stdout and "(prediction)" in red.stdout
    out = tmp_path / "white.html"
    white = run_cli(
        "--store",
        str(wine_store_copy),
        "drift",
        "wine",
        "--current",
        str(WINE_WHITE),
        "--html",
        str(out),
        "--json",
        cwd=tmp_path,
        check=False,
    )
    assert white.returncode == 1, white.stderr
    doc = json.loads(white.stdout)
    assert doc["dataset_drift"] is True and doc["version"] == 1 and doc["alias"] == "prod"
    assert doc["source"] == {"kind": "file", "path": str(WINE_WHITE)} and doc["current_rows"] == 4898
    assert doc["prediction"]["test"] == "chi2" and doc["saved"] is None  # a file run is not saved by default
    assert "total sulfur dioxide" in doc["drifted_features"] and "quality" not in {f["name"] for f in doc["features"]}
    page = out.read_text()
    assert "Dataset drift: YES" in page and "https://" not in page


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "case,expect",
    [
        ("missing", r"missing column 'alcohol'"),
        ("zero rows", r"no data rows"),
        ("not numbers", r"column 'pH'.*'acidic'"),
        ("few rows", r"5 rows: a drift test needs at least 30"),
    ],
)
def test_cli_bad_input_exits_2_naming_the_column(wine_store_copy: Path, tmp_path: Path, case: str, expect: str) -> None:
    red = _wine(WINE_RED).head(200)
    if case == "missing":
        frame = red.drop(columns=["alcohol"])
    elif case == "zero rows":
        frame = red.head(0)
    elif case == "not numbers":
        frame = red.astype({"pH": object})
        frame.loc[3, "pH"] = "acidic"
    else:
        frame = red.head(5)
    path = _csv(tmp_path, "bad.csv", frame)
    proc = run_cli("--store", str(wine_store_copy), "drift", "wine", "--current", str(path), cwd=tmp_path, check=False)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and re.search(expect, lines[0]), lines
    assert "Traceback" not in proc.stderr


@pytest.mark.shared_data
@pytest.mark.slow
def test_cli_reads_captured_predictions_and_saves_the_report(wine_store_copy: Path, tmp_path: Path) -> None:
    from mlopsctl.monitoring.captured import capture_key, encode_lines

    store = LocalStore(wine_store_copy)
    white = _wine(WINE_WHITE).sample(400, random_state=1)
    now = time.time()
    records: list[dict[str, Any]] = [
        {
            "request_id": f"r{i}",
            "row": 0,
            "time": now - 60 + i * 0.1,
            "model": "wine",
            "version": 1,
            "variant": "prod",
            "endpoint": "predict",
            "status": 200,
            "latency_ms": 0.3,
            "inputs": {k: float(v) for k, v in row.items() if k != "quality"},
            "prediction": int(row["quality"]),
            "confidence": 0.6,
        }
        for i, (_, row) in enumerate(white.iterrows())
    ]
    failed = {**records[0], "request_id": "bad", "status": 422, "inputs": None, "error": "invalid_input"}
    other_version = {**records[1], "request_id": "v2", "version": 2}
    old = {**records[2], "request_id": "old", "time": now - 7200}
    store.put(capture_key("wine", now, "host-1-abc", 0), encode_lines([*records[:200], failed, other_version]))
    store.put(capture_key("wine", now, "host-2-def", 0), encode_lines(records[200:]))
    store.put(capture_key("wine", now - 7200, "host-1-abc", 0), encode_lines([old]))

    proc = run_cli(
        "--store", str(wine_store_copy), "drift", "wine", "--since", "1h", "--json", cwd=tmp_path, check=False
    )
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["source"]["kind"] == "captured" and doc["source"]["window"] == "1h"
    assert doc["current_rows"] == 400 and doc["dataset_drift"] is True
    assert doc["prediction"] is not None and doc["saved"].startswith("drift/wine/")
    latest = latest_report(store, "wine")
    assert latest is not None and latest["created_at"] == doc["created_at"] and latest["version"] == 1
    assert latest["drifted_share"] == doc["drifted_share"] and latest["dataset_drift"] is True

    v2 = run_cli("--store", str(wine_store_copy), "drift", "wine", "--version", "2", cwd=tmp_path, check=False)
    assert v2.returncode == 2 and "1 row: a drift test needs at least 30" in v2.stderr  # only v2's own records
    none = run_cli("--store", str(wine_store_copy), "drift", "wine", "--since", "1s", cwd=tmp_path, check=False)
    assert none.returncode == 2 and "no predictions of wine v1 captured in the last 1s" in none.stderr
