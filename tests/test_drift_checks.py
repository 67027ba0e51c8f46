"""One concern each: the reference sketch, effect sizes, float32 input, missing values, pooled categories,
PSI on a near-constant reference, the text vocabulary check, and the prediction reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlopsctl.monitoring.baseline import build_baseline
from mlopsctl.monitoring.checks import OOV_RISE
from mlopsctl.monitoring.drift import PREDICTION, DriftSettings, Reference, detect
from mlopsctl.monitoring.sketch import KNOTS, NumericSketch, TextSketch, f32
from mlopsctl.monitoring.twosample import Sorted, compare_to_sketch, pooled_chi_square
from tests.conftest import SENTIMENT
from tests.test_drift_null import Data, load, reference

RNG = np.random.default_rng(20261207)


def _reference(frame: pd.DataFrame, kinds: dict[str, str], predictions: object = None) -> Reference:
    features = [{"name": c, "kind": k} for c, k in kinds.items()]
    preds = np.zeros(len(frame)) if predictions is None else predictions
    return Reference(features, None, "regression", build_baseline(frame, features, preds, "regression"), "m", 1)


# -- the sketch -----------------------------------------------------------------------------------------


def test_a_sketch_is_the_column_when_it_has_few_values_and_within_its_error_otherwise() -> None:
    few = RNG.integers(0, 500, 50_000).astype(float)
    exact = NumericSketch.of(few)
    assert exact.exact and exact.n == 50_000 and np.array_equal(exact.sample(), np.sort(few))
    many = RNG.lognormal(size=1_000_000)
    sk = NumericSketch.of(many)
    assert sk.values.size <= KNOTS + 2 and 0 < sk.error <= 1 / KNOTS
    points = np.quantile(many, np.linspace(0, 1, 5001))
    truth = np.searchsorted(np.sort(f32(many)), f32(points), side="right") / many.size
    gap = truth - sk.cdf(f32(points))
    assert gap.min() >= 0 and gap.max() <= sk.error  # below the true CDF, by at most the stated error
    back = NumericSketch.from_dict(sk.to_dict())  # through JSON: the same sketch
    assert np.array_equal(back.values, sk.values) and np.array_equal(back.cum, sk.cum) and back.error == sk.error


def test_against_an_exact_sketch_ks_is_scipys() -> None:
    ref, cur = RNG.normal(size=3000).round(2), RNG.normal(0.1, size=2000).round(2)
    c = compare_to_sketch(NumericSketch.of(ref), Sorted.of(f32(cur)))
    want = stats.ks_2samp(f32(ref), f32(cur))
    assert c.statistic == float(want.statistic) and c.p_value == pytest.approx(want.pvalue, rel=1e-12)
    big = RNG.normal(size=300_000)  # not exact: D within the error, the p-value from D − error
    c = compare_to_sketch(NumericSketch.of(big), Sorted.of(f32(cur)))
    want = stats.ks_2samp(f32(big), f32(cur))
    assert abs(c.statistic - want.statistic) <= c.sketch_error and c.p_value >= want.pvalue


def test_a_million_rows_see_a_tiny_shift_and_do_not_call_it_drift() -> None:
    """1M training rows, 1M current rows shifted by 0.01 sd: the test sees it (p < 0.05), the effect (KS D
    ≈ 0.004) is far under 0.1, so it is not drift; a 0.3 sd shift is."""
    ref = _reference(pd.DataFrame({"x": RNG.normal(size=1_000_000)}), {"x": "numeric"})
    tiny = detect(ref, pd.DataFrame({"x": RNG.normal(0.01, size=1_000_000)})).features[0]
    assert tiny.p_value is not None and tiny.p_value < 0.05 and not tiny.drifted and tiny.effect is not None
    assert tiny.effect < 0.01
    big = detect(ref, pd.DataFrame({"x": RNG.normal(0.3, size=1_000_000)})).features[0]
    assert big.drifted and big.effect is not None and big.effect > 0.1


# -- what used to give false drift ---------------------------------------------------------------------


@pytest.mark.shared_data
def test_float32_input_is_not_drift() -> None:
    wine = load("wine")
    order = np.random.default_rng(1).permutation(len(wine.rows))
    ref = reference(wine, order[:1119])
    rest = wine.rows.iloc[order[1119:]]
    as64 = detect(ref, rest, DriftSettings(correction="none", effect=0.0))
    as32 = detect(ref, rest.astype("float32"), DriftSettings(correction="none", effect=0.0))
    assert [(f.name, f.statistic, f.p_value) for f in as32.features] == [
        (f.name, f.statistic, f.p_value) for f in as64.features
    ]
    assert as32.n_drifted == 0


@pytest.mark.shared_data
def test_newly_missing_values_are_drift() -> None:
    wine = load("wine")
    order = np.random.default_rng(5).permutation(len(wine.rows))
    ref = reference(wine, order[:1000])
    cur = wine.rows.iloc[order[1000:]].copy()
    cur.loc[cur.sample(frac=0.6, random_state=2).index, "alcohol"] = np.nan
    alcohol = next(f for f in detect(ref, cur).features if f.name == "alcohol")
    ks, missing = alcohol.tests
    assert not ks.drifted and ks.p_value > 0.05  # the values that are left look as before
    assert missing.test == "missing" and missing.drifted and missing.effect == pytest.approx(0.6, abs=0.01)
    assert alcohol.drifted and alcohol.missing_current == pytest.approx(0.6, abs=0.01)


@pytest.mark.shared_data
def test_rare_categories_are_pooled_so_native_country_holds_its_level_at_100_rows() -> None:
    """adult native-country (41 countries, most rare) at 100 rows, no correction and no effect size: the
    chi-square alone flagged 20 % of null samples; pooled, it holds 5 %."""
    adult = load("adult")
    country = Data(adult.rows[["native-country"]], {"native-country": "categorical"})
    order = np.random.default_rng(3).permutation(len(country.rows))
    ref = reference(country, order[:22_000])
    pool = order[22_000:]
    rng = np.random.default_rng(4)
    plain = DriftSettings(correction="none", effect=0.0)
    flagged = [detect(ref, country.rows.iloc[rng.choice(pool, 100, replace=False)], plain) for _ in range(300)]
    assert np.mean([r.n_drifted > 0 for r in flagged]) <= 0.06
    assert flagged[0].features[0].details["n_pooled"] > 30


def test_pooling_keeps_a_new_category_that_takes_over() -> None:
    t = pooled_chi_square(["Male", "Female"], [21_790, 0], [0, 300])  # expected 4.1 Female rows: Fisher, 2 bins
    assert t.labels == ["Male", "Female"] and t.method == "fisher" and t.p_value < 1e-100


@pytest.mark.shared_data
def test_psi_cannot_read_zero_on_a_constant_reference() -> None:
    """bank emp.var.rate is 1.1 in every early row; later rows are all below it: KS D = 1 and PSI large."""
    bank = load("bank")
    ref = reference(bank, np.arange(5000))
    rate = next(f for f in detect(ref, bank.rows.iloc[-2000:]).features if f.name == "emp.var.rate")
    assert rate.statistic == 1.0 and rate.psi is not None and rate.psi > 10 and rate.psi_drifted


# -- text ---------------------------------------------------------------------------------------------


def _sentences(name: str) -> pd.DataFrame:
    from mlopsctl.data.read import read_table

    return read_table(SENTIMENT / f"{name}_labelled.txt", names=["sentence", "label"], header=False)


@pytest.mark.shared_data
def test_the_vocabulary_check_fires_with_a_large_training_set() -> None:
    """SST-2's 67,349 training phrases: its top-5,000 vocabulary leaves words out, and the expected rate
    counts them once (Good–Turing), so other reviews' new words still show: Amazon and Yelp rise past 0.05
    above it; held-out SST-2 sentences and IMDb (movie reviews too) do not."""
    sst = pd.read_csv(SENTIMENT / "sst-2" / "train.tsv", sep="\t", quoting=3)
    dev = pd.read_csv(SENTIMENT / "sst-2" / "dev.tsv", sep="\t", quoting=3)
    sketch = TextSketch.of(sst.sentence)
    assert len(sketch.vocabulary) == 5000 and 0.05 < sketch.expected_oov < 0.2
    ref = _reference(sst[["sentence"]], {"sentence": "text"})

    def oov(frame: pd.DataFrame) -> object:
        return next(c for c in detect(ref, frame[["sentence"]]).features[0].tests if c.test == "oov")

    for other in ("amazon_cells", "yelp"):
        check = oov(_sentences(other).sample(300, random_state=0))
        assert check.drifted and check.effect > OOV_RISE, (other, check)
    for same in (dev, _sentences("imdb").sample(300, random_state=0)):
        check = oov(same)
        assert not check.drifted and check.effect < OOV_RISE, check


# -- the prediction -----------------------------------------------------------------------------------


def test_prediction_reference_is_out_of_sample_when_published_so() -> None:
    frame = pd.DataFrame({"x": RNG.normal(size=500)})
    features = [{"name": "x", "kind": "numeric"}]
    baseline = build_baseline(frame, features, ["a"] * 400 + ["b"] * 100, "classification", prediction_source="holdout")
    assert baseline["format"] == 2 and baseline["predictions"]["source"] == "holdout"
    ref = Reference(features, None, "classification", baseline, "m", 1)
    cur = frame.assign(**{PREDICTION: ["a"] * 390 + ["b"] * 110})
    report = detect(ref, cur)
    assert report.prediction is not None and not report.prediction.drifted
    assert report.prediction.details["reference"] == "holdout"
    assert not any("training rows" in n for n in report.notes)
