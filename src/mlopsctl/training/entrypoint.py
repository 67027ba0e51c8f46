"""Your own training code: ``[training] entrypoint = "train.py:build"``.

``build`` is a function in the project that returns a scikit-learn-API estimator (any Pipeline,
ColumnTransformer, XGBoost or LightGBM model) taking the raw feature columns as a DataFrame. It takes
no argument, or one: the parameters (``[training] params``, and each trial's during ``train --tune``,
whose search space is ``[training.tune] space``). `mlopsctl train` keeps what it owns: the validated
snapshot, the split, cross-validation, the holdout metrics, and the lineage, which records the
entrypoint's file and its sha256 beside the data's sha256 and the git commit. An estimator returned
already fitted is used as it is (no CV, no fit; the run says so): mlopsctl cannot know which rows it
saw, so its holdout metrics may flatter it.

The entrypoint is the project's own code and runs in the `train` process, as the team's notebook
would; nothing from the store is ever imported.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsctl.errors import ConfigError, ValidationError

KEY = "training.entrypoint"


@dataclass(frozen=True)
class Entrypoint:
    spec: str  # as written: "train.py:build" or "package.module:build"
    file: Path
    function: str
    sha256: str
    takes_params: bool
    build: Callable[..., Any]

    def lineage(self) -> dict[str, Any]:
        return {"entrypoint": self.spec, "file": str(self.file), "sha256": self.sha256}

    def estimator(self, params: dict[str, Any]) -> Any:
        """A new estimator from ``build`` (with ``params`` when it takes them)."""
        if params and not self.takes_params:
            raise ValidationError(
                f"[training] params (or a tuning trial) set {', '.join(sorted(params))}, but {self.spec} takes "
                "no argument: give it one, e.g. def build(params): ...",
                [(KEY, "takes no params")],
            )
        try:
            made = self.build(dict(params)) if self.takes_params else self.build()
        except Exception as exc:
            raise ValidationError(
                f"{self.spec} raised {type(exc).__name__}: {exc}", [(KEY, type(exc).__name__)]
            ) from exc
        for method in ("fit", "predict"):
            if not callable(getattr(made, method, None)):
                raise ValidationError(
                    f"{self.spec} returned a {type(made).__name__}, which has no {method}(): return an estimator "
                    "or a Pipeline",
                    [(KEY, f"no {method}")],
                )
        return made


def load_entrypoint(spec: str, root: Path) -> Entrypoint:
    """Import ``spec`` ("file.py:function" relative to the project folder, or "module:function")."""
    source, sep, function = spec.partition(":")
    if not sep or not source or not function.isidentifier():
        raise ConfigError("mlops.toml", KEY, f"got {spec!r}: expected FILE.py:FUNCTION or MODULE:FUNCTION")
    folder = str(root.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)  # the file may import its neighbours, as it does in the team's notebook
    if source.endswith(".py"):
        path = (root / source).resolve()
        if not path.is_file():
            raise ConfigError("mlops.toml", KEY, f"{path} not found")
        name = f"mlopsctl_entrypoint_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ConfigError("mlops.toml", KEY, f"{path} cannot be imported")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            raise ConfigError("mlops.toml", KEY, f"importing {path} raised {type(exc).__name__}: {exc}") from None
    else:
        try:
            module = importlib.import_module(source)
        except Exception as exc:
            raise ConfigError("mlops.toml", KEY, f"importing {source} raised {type(exc).__name__}: {exc}") from None
        path = Path(getattr(module, "__file__", "") or source)
    build = getattr(module, function, None)
    if not callable(build):
        raise ConfigError("mlops.toml", KEY, f"{source} has no function {function!r}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
    return Entrypoint(spec, path, function, digest, _takes_params(build), build)


def _takes_params(fn: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    required = [
        p
        for p in params
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(required) > 1:
        raise ValidationError(
            f"{getattr(fn, '__name__', 'build')} takes {len(required)} arguments: it takes none, or the params",
            [(KEY, "too many arguments")],
        )
    return bool(params) and params[0].kind in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )


def is_fitted(estimator: Any) -> bool:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except (NotFittedError, TypeError):
        return False
    return True
