"""Baseline: a FastAPI endpoint that validates the wine row with pydantic and returns a constant.

What any FastAPI service pays per request before it runs a model: routing, body parsing, pydantic
validation and JSON serialisation of a small answer. Served by `uvicorn fastapi_const:app`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from wine_schema import PredictRequest

app = FastAPI()
ANSWER: dict[str, Any] = {"prediction": 5, "confidence": 0.5}


@app.post("/predict")
async def predict(body: PredictRequest) -> dict[str, Any]:
    return ANSWER
