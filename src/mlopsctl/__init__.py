"""mlopsctl: from a CSV to a monitored, versioned prediction service.

For notebooks and scripts: ``mlopsctl.publish(model, name=..., X=..., y=...)`` publishes a model you
trained, and ``mlopsctl.load("name@alias")`` loads a version to predict with (see `mlopsctl.api`).
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load", "publish"]


def __getattr__(name: str) -> Any:
    # the API pulls in pandas and scikit-learn: imported when used, so `import mlopsctl` (the CLI, the
    # server) stays light
    if name in ("publish", "load"):
        from mlopsctl import api

        return getattr(api, name)
    raise AttributeError(f"module 'mlopsctl' has no attribute {name!r}")
