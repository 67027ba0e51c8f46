"""The wine request body as a user would declare it in pydantic (11 features, aliases for spaces).

Shared by the two hand-written FastAPI baselines (fastapi_const.py, fastapi_sklearn.py).
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Wine(BaseModel):
    fixed_acidity: float = Field(alias="fixed acidity")
    volatile_acidity: float = Field(alias="volatile acidity")
    citric_acid: float = Field(alias="citric acid")
    residual_sugar: float = Field(alias="residual sugar")
    chlorides: float
    free_sulfur_dioxide: float = Field(alias="free sulfur dioxide")
    total_sulfur_dioxide: float = Field(alias="total sulfur dioxide")
    density: float
    pH: float
    sulphates: float
    alcohol: float


class PredictRequest(BaseModel):
    """One row (``features``) or many (``instances``), like mlopsctl's `/predict`."""

    features: Wine | None = None
    instances: list[Wine] | None = None
