"""The wire protocols a prediction can arrive in, each a `Protocol`: rows out of a body, an answer out of
predictions, its own error body. `predict.answer` runs every one of them through the same validation,
runner, metrics and capture; a protocol only reads and writes its format.

``endpoint`` names a protocol everywhere it is recorded (the ``endpoint`` label of the request metrics, the
capture records, the shadows' copies): ``predict`` (the native JSON), ``invocations`` (MLflow's scoring
protocol), ``infer`` (the Open Inference Protocol, when added).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mlopsctl.serving.loaded import LoadedModel


class WireProtocol(Protocol):
    name: str

    def rows(self, model: LoadedModel, content_type: str, body: bytes, max_rows: int) -> tuple[list[Any], str, bool]:
        """The body's rows, the field prefix its errors use, and whether it was one row (raises
        ValidationError, or predict.Refused for a status other than 422)."""
        ...

    def answer(
        self, model: LoadedModel, preds: list[Any], probas: Any, single: bool, variant: str, request_id: str
    ) -> dict[str, Any]:
        """The answer's JSON (``processing_time_ms`` is added by the caller where the protocol has it)."""
        ...

    def error(self, status: int, error: str, problems: list[tuple[str, str]], request_id: str) -> bytes:
        """The body of an error answer in this protocol's shape."""
        ...


def protocols() -> dict[str, WireProtocol]:
    """Every protocol by endpoint name."""
    from mlopsctl.serving.protocols.mlflow import MLFLOW
    from mlopsctl.serving.protocols.native import NATIVE
    from mlopsctl.serving.protocols.oip import OIP

    return {p.name: p for p in (NATIVE, MLFLOW, OIP)}
