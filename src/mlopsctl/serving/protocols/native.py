"""mlopsctl's own JSON: ``{"features": {...}}``, ``{"instances": [...]}`` or a flat object of the features;
answers with the prediction(s), probabilities and confidence, the version, variant and request id."""

from __future__ import annotations

from typing import Any

from mlopsctl.serving.loaded import LoadedModel


class NativeProtocol:
    name = "predict"

    def rows(self, model: LoadedModel, content_type: str, body: bytes, max_rows: int) -> tuple[list[Any], str, bool]:
        from mlopsctl.serving.predict import json_payload, native_rows

        rows, single, prefix = native_rows(json_payload(content_type, body), max_rows)
        return rows, prefix, single

    def answer(
        self, model: LoadedModel, preds: list[Any], probas: Any, single: bool, variant: str, request_id: str
    ) -> dict[str, Any]:
        from mlopsctl.serving.predict import native_response

        out = native_response(model, preds, probas, single, variant)
        out["request_id"] = request_id
        return out

    def error(self, status: int, error: str, problems: list[tuple[str, str]], request_id: str) -> bytes:
        from mlopsctl.serving.predict import error_body

        return error_body(error, problems, request_id)


NATIVE = NativeProtocol()
