"""The server's log: its own events, uvicorn's, and an optional access log, as text or JSON lines.

The server logs what it does at INFO under the ``mlopsctl`` loggers: a model loaded or swapped on
promotion, a route or deployment switch, a shadow that failed, a guard action, a retraining run started
and ended, capture writes that failed or records dropped. `log_config` is the logging configuration
`mlopsctl serve` hands uvicorn (which applies it in every worker): the ``mlopsctl`` and uvicorn loggers at
the chosen level, uvicorn's access log only when asked (it costs ~10 % at one row a request), and one JSON
object a line with ``--log-format json`` (CloudWatch Logs and most collectors parse it as is). No request
body, label or key is ever logged: the lines carry paths, statuses, versions and counts.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

FORMATS = ("text", "json")
LEVELS = ("critical", "error", "warning", "info", "debug")
_SKIP = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "color_message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, status = record.args
            out.update(client=client, method=method, path=path, http=version, status=status)
        out.update({k: v for k, v in record.__dict__.items() if k not in _SKIP and not k.startswith("_")})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def log_config(level: str = "info", fmt: str = "text", *, access: bool = False) -> dict[str, Any]:
    """A `logging.config.dictConfig` for uvicorn's ``log_config``: mlopsctl's events and uvicorn's at ``level``."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}; got {level!r}")
    upper = level.upper()
    text = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if fmt == "json" else {"format": text, "datefmt": "%Y-%m-%dT%H:%M:%S%z"}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "loggers": {
            "mlopsctl": {"handlers": ["default"], "level": upper, "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": upper, "propagate": False},
            "uvicorn.error": {"level": upper},
            "uvicorn.access": {"handlers": ["default"], "level": "INFO" if access else "WARNING", "propagate": False},
        },
    }
