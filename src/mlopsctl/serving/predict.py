"""The hot path: validated rows in, predictions out, in one short function.

Every protocol (native, MLflow) turns its body into a list of row objects, calls
``predict_rows`` and formats what it returns. Nothing here touches the disk.
"""

from __future__ import annotations

from typing import Any

from mlopsctl.errors import ValidationError
from mlopsctl.serving.loaded import LoadedModel


def predict_rows(model: LoadedModel, rows: list[Any], *, field_prefix: str = "") -> tuple[list[Any], Any]:
    """Predictions for ``rows`` and class probabilities per row (None for regression)."""
    cols = model.spec.columns(rows, field_prefix=field_prefix)
    return model.runner.predict(cols)


def native_rows(payload: Any, max_rows: int) -> tuple[list[Any], bool, str]:
    """The rows of a `/predict` body: ``{"features": {...}}`` (single) or ``{"instances": [...]}``."""
    if not isinstance(payload, dict):
        raise ValidationError("body", [("body", 'expected an object with "features" or "instances"')])
    if "features" in payload and "instances" not in payload:
        extra = [k for k in payload if k != "features"]
        if extra:
            raise ValidationError("body", [(k, 'unknown field: expected only "features"') for k in extra])
        return [payload["features"]], True, "features"
    if "instances" in payload and "features" not in payload:
        extra = [k for k in payload if k != "instances"]
        if extra:
            raise ValidationError("body", [(k, 'unknown field: expected only "instances"') for k in extra])
        rows = payload["instances"]
        if not isinstance(rows, list) or not rows:
            raise ValidationError("body", [("instances", "expected a non-empty array of objects")])
        if len(rows) > max_rows:
            raise ValidationError("body", [("instances", f"{len(rows)} rows: at most {max_rows} per request")])
        return rows, False, "instances"
    raise ValidationError("body", [("body", 'expected exactly one of "features" (one row) or "instances" (many rows)')])


def native_response(model: LoadedModel, preds: list[Any], probas: Any, single: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if probas is not None and model.classes is not None:
        keys = [str(c) for c in model.classes]
        # probabilities come from float32 graphs: 7 significant digits is what they hold
        prob_dicts = [{k: round(float(x), 7) for k, x in zip(keys, p, strict=True)} for p in probas]
        conf = [max(d.values()) for d in prob_dicts]
        if single:
            out = {"prediction": preds[0], "probabilities": prob_dicts[0], "confidence": conf[0]}
        else:
            out = {"predictions": preds, "probabilities": prob_dicts, "confidence": conf}
    else:
        out = {"prediction": preds[0]} if single else {"predictions": preds}
    out["model"] = model.name
    out["model_version"] = model.version
    out["variant"] = model.alias or f"v{model.version}"
    return out
