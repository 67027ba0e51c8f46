"""One scikit-learn Pipeline per task, with all preprocessing inside it.

The pipeline takes a DataFrame of the raw feature columns (numbers as float, categories
and text as str) so that what is served is exactly what was evaluated.
"""

from __future__ import annotations

from typing import Any

from mlopsctl.bundle.task import is_regression
from mlopsctl.errors import ValidationError

MISSING_CATEGORY = "__missing__"

# Defaults that give sane results on the shipped examples; `[training] params` overrides them.
DEFAULTS: dict[str, dict[str, Any]] = {
    "random_forest": {"n_estimators": 100, "n_jobs": -1},
    "hist_gradient_boosting": {"max_iter": 200, "early_stopping": False},
    "logistic_regression": {"max_iter": 2000, "C": 1.0},
    "ridge": {"alpha": 1.0},
    "linear_regression": {},
}

# The search space of `train --tune`, per family.
SEARCH_SPACES: dict[str, dict[str, list[Any]]] = {
    "random_forest": {
        "n_estimators": [100, 200, 300],
        "max_depth": [None, 8, 12, 20],
        "min_samples_leaf": [1, 2, 4],
        "max_features": ["sqrt", 0.5, 1.0],
    },
    "hist_gradient_boosting": {
        "learning_rate": [0.03, 0.05, 0.1, 0.2],
        "max_iter": [100, 200, 400],
        "max_leaf_nodes": [15, 31, 63],
        "l2_regularization": [0.0, 0.1, 1.0],
    },
    "logistic_regression": {"C": [0.01, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]},
    "ridge": {"alpha": [0.01, 0.1, 1.0, 10.0, 100.0]},
    "linear_regression": {"fit_intercept": [True, False]},
}


def estimator(task: str, family: str, params: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

    classes: dict[tuple[str, str], Any] = {
        ("classification", "random_forest"): RandomForestClassifier,
        ("classification", "hist_gradient_boosting"): HistGradientBoostingClassifier,
        ("classification", "logistic_regression"): LogisticRegression,
        ("regression", "random_forest"): RandomForestRegressor,
        ("regression", "hist_gradient_boosting"): HistGradientBoostingRegressor,
        ("regression", "ridge"): Ridge,
        ("regression", "linear_regression"): LinearRegression,
    }
    kind = "regression" if is_regression(task) else "classification"
    cls = classes.get((kind, family))
    if cls is None:
        raise ValidationError(f"model family {family!r} does not fit task {task!r}")
    merged = {**DEFAULTS.get(family, {}), **params}
    if "random_state" in cls().get_params():
        merged.setdefault("random_state", seed)
    known = set(cls().get_params())
    unknown = sorted(set(merged) - known)
    if unknown:
        problem = f"{unknown[0]!r} is not a parameter of {cls.__name__}; its parameters: {', '.join(sorted(known))}"
        raise ValidationError(f"[training] params: {problem}", [("training.params", problem)])
    made = cls(**merged)
    try:
        made._validate_params()  # scikit-learn's own check of each value (types, ranges), before any fit
    except (ValueError, TypeError) as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValidationError(f"[training] params: {problem}", [("training.params", problem)]) from None
    return made


def build_pipeline(task: str, family: str, params: dict[str, Any], features: list[dict[str, Any]], seed: int) -> Any:
    """Preprocessing by feature kind (impute+scale, impute+one-hot, TF-IDF) then the estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [f["name"] for f in features if f["kind"] == "numeric"]
    categorical = [f["name"] for f in features if f["kind"] == "categorical"]
    text = [f["name"] for f in features if f["kind"] == "text"]
    parts: list[tuple[str, Any, Any]] = []
    if numeric:
        parts.append(
            (
                "num",
                Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                numeric,
            )
        )
    if categorical:
        parts.append(
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
                        ("onehot", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                categorical,
            )
        )
    for i, col in enumerate(text):
        # a column name (not a list) hands the vectorizer a 1-D array of strings
        parts.append((f"text{i}", TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True), col))
    if not parts:
        raise ValidationError("no features to train on", [("data.features", "empty")])
    dense = family == "hist_gradient_boosting"
    if dense and text:
        raise ValidationError(
            "hist_gradient_boosting needs dense input and does not suit TF-IDF text features: "
            "use logistic_regression or random_forest",
            [("training.model", family)],
        )
    pre = ColumnTransformer(parts, sparse_threshold=0.0 if dense else 0.3)
    return Pipeline([("pre", pre), ("model", estimator(task, family, params, seed))])
