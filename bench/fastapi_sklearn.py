"""Context: the FastAPI + scikit-learn endpoint a user typically writes by hand.

pydantic body → pandas DataFrame → ``pipeline.predict_proba``, in a sync endpoint (FastAPI runs it in its
thread pool, as it should for blocking work). The pipeline is the run's own ``model.skops``, loaded with
mlopsctl's safe loader from the path in ``$BENCH_SKOPS``. Served by `uvicorn fastapi_sklearn:app`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI, HTTPException
from wine_schema import PredictRequest

from mlopsctl.bundle.safety import load_skops

pipeline = load_skops(Path(os.environ["BENCH_SKOPS"]).read_bytes())
classes = [int(c) for c in pipeline.classes_]
app = FastAPI()


@app.post("/predict")
def predict(body: PredictRequest) -> dict[str, Any]:
    rows = [body.features] if body.features is not None else body.instances
    if not rows:
        raise HTTPException(422, "send features or instances")
    frame = pd.DataFrame([r.model_dump(by_alias=True) for r in rows])
    proba = pipeline.predict_proba(frame)
    labels = [classes[i] for i in proba.argmax(axis=1)]
    probs = [dict(zip(map(str, classes), p.tolist(), strict=True)) for p in proba]
    if body.features is not None:
        return {"prediction": labels[0], "probabilities": probs[0]}
    return {"predictions": labels, "probabilities": probs}
