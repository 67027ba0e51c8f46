"""MLflow model directories: read one into a fitted model without running its code, write a version as one.

An MLflow model is a folder with an ``MLmodel`` YAML file naming its flavours and the file each one
loads. `read_mlflow_model` takes the sklearn, xgboost and lightgbm flavours (the layout of MLflow
`MLFLOW_LAYOUT`, as ``mlflow.<flavour>.save_model`` writes it):

- xgboost: the booster in XGBoost's own format (``model.ubj``, ``.json``), read by ``load_model`` of
  the scikit-learn class the flavour names (a bare ``Booster`` becomes an XGBClassifier or an
  XGBRegressor by its objective);
- lightgbm: a ``Booster`` in LightGBM's model text, read by ``lightgbm.Booster(model_file=...)`` and
  rebuilt as an LGBMClassifier or LGBMRegressor by its objective; an LGBMClassifier/LGBMRegressor,
  which MLflow saves as skops (or pickle);
- sklearn: a skops file (``serialization_format: skops``) through `safety.load_skops`, the project's
  allowlist (never the ``skops_trusted_types`` the file lists for itself); a pickle or cloudpickle
  file only when the caller passes ``unsafe_pickle`` (opening it runs the code it holds).

``MLmodel`` is parsed with ``yaml.safe_load`` and each path it names must stay inside the folder. A
``runs:/`` or ``models:/`` URI is downloaded with MLflow's own client (`fetch_model_dir`), which must
then be installed; a local folder needs no MLflow.

`write_mlflow_model` writes a version as the folder ``mlflow models serve -m DIR`` serves: a bare
XGBoost estimator in the xgboost flavour (``model.ubj``), a bare LightGBM estimator in the lightgbm
flavour (``model.skops``, MLflow's layout for the scikit-learn API), anything else in the sklearn
flavour (``model.skops``), each with the python_function flavour, the signature, ``requirements.txt``,
``python_env.yaml`` and ``conda.yaml`` pinning the installed libraries. Nothing written is a pickle.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mlopsctl.errors import DataError, UnsafeModel, ValidationError

MLMODEL = "MLmodel"
FORMATS = ("mlflow",)
FLAVORS = ("xgboost", "lightgbm", "sklearn")  # in the order one is chosen when an MLmodel has several
MLFLOW_LAYOUT = "3.17.2"  # the MLflow whose save_model layout is read and written here (and the tests run)
PICKLE_FORMATS = ("pickle", "cloudpickle")
_MAX_MLMODEL_BYTES = 1 << 20
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")

_XGB_CLASSES = {
    "xgboost.sklearn.XGBClassifier": "XGBClassifier",
    "xgboost.sklearn.XGBRegressor": "XGBRegressor",
    "xgboost.sklearn.XGBRFClassifier": "XGBRFClassifier",
    "xgboost.sklearn.XGBRFRegressor": "XGBRFRegressor",
    "xgboost.core.Booster": None,
}
_LGB_SKLEARN = ("lightgbm.sklearn.LGBMClassifier", "lightgbm.sklearn.LGBMRegressor")
_LGB_BOOSTER = "lightgbm.basic.Booster"
_LGB_CLASSIFIER_OBJECTIVES = ("binary", "multiclass", "softmax", "multiclassova", "multiclass_ova", "ova", "ovr")
_LGB_RANKING_OBJECTIVES = ("lambdarank", "rank_xendcg", "xendcg", "xe_ndcg", "xe_ndcg_mart", "xendcg_mart")
_CHECK_ROWS = 200


@dataclass(frozen=True)
class MlflowModel:
    """A model read from an MLflow model folder, and what its ``MLmodel`` says about it."""

    model: Any  # a fitted estimator with predict (and predict_proba for a classifier)
    flavor: str  # the flavour it was read from: sklearn, xgboost or lightgbm
    flavors: tuple[str, ...]  # every flavour the MLmodel lists
    model_class: str  # the class MLflow saved, e.g. xgboost.sklearn.XGBClassifier or lightgbm.basic.Booster
    serialization: str  # skops, pickle, cloudpickle, ubj, json, xgb or lightgbm-text
    model_file: str  # the file read, relative to the folder
    model_sha256: str
    inputs: tuple[str, ...] | None  # the columns the MLflow signature names, in order
    example_columns: tuple[str, ...] | None  # the columns of the saved input example
    example_rows: int | None
    run_id: str | None
    model_id: str | None
    mlflow_version: str | None
    unpickled: bool
    booster: Any = field(default=None, repr=False)  # the library's Booster when the estimator was rebuilt from it

    def feature_names(self) -> list[str] | None:
        """The columns the model takes, in order: the MLflow signature's, the input example's, or the model's own."""
        if self.inputs:
            return list(self.inputs)
        if self.example_columns:
            return list(self.example_columns)
        names = _feature_names_in(self.model)
        return None if names is None else [str(c) for c in names]

    def lineage(self, uri: str) -> dict[str, Any]:
        """What the version's run records of where the model came from."""
        return {
            "mlflow_uri": uri,
            "mlflow_run_id": self.run_id or _run_id_of(uri),
            "mlflow_model_id": self.model_id,
            "mlflow_flavors": list(self.flavors),
            "mlflow_flavor": self.flavor,
            "mlflow_version": self.mlflow_version,
            "model_class": self.model_class,
            "serialization_format": self.serialization,
            "model_file": self.model_file,
            "model_file_sha256": self.model_sha256,
            "unsafe_pickle": self.unpickled,
        }

    def rows_for(self, frame: Any, where: str) -> Any:
        """The columns of ``frame`` (rows read from ``where``) the model takes, in its order; a DataError names
        the first one missing. A model rebuilt from a Booster is checked to predict as the Booster on them."""
        names = self.feature_names()
        if names is not None and self.flavor == "lightgbm":
            # LightGBM keeps a column "fixed acidity" as "fixed_acidity" (and never checks the names it is given)
            spaced = {str(c).replace(" ", "_"): str(c) for c in frame.columns}
            names = [n if n in frame.columns else spaced.get(n, n) for n in names]
        if names is not None:
            missing = [c for c in names if c not in frame.columns]
            if missing:
                raise DataError(
                    where,
                    f"the model takes column(s) the file lacks: {', '.join(missing[:5])}",
                    column=missing[0],
                )
            frame = frame[names]
        if self.booster is not None:
            _check_rebuilt(self, frame.iloc[:_CHECK_ROWS], where)
        return frame


def rows_needed(directory: Path) -> str:
    """Why an import needs rows, naming what the model's input example holds (read from MLmodel alone: the
    model itself is not opened)."""
    columns, rows = _example(directory, read_mlmodel(directory))
    why = "the rows give the signature, the drift baseline and, with --target, the metrics the gate compares"
    if columns:
        cols = ", ".join(columns[:6]) + (", …" if len(columns) > 6 else "")
        why += f" (the MLflow input example's {rows or 0} row(s) of {cols} name the columns, too few to be the data)"
    return why


# -- where the folder is --------------------------------------------------------------------------------


def local_dir(uri: str) -> Path | None:
    """The folder a local path or ``file://`` URI names (an ``MLmodel`` file's folder), or None for a URI
    that must be downloaded (``runs:/``, ``models:/``, ``s3://``…)."""
    text = str(uri)
    if text.startswith("file:"):
        parsed = urlparse(text)
        path = Path(unquote(parsed.path))
    elif _URI_SCHEME.match(text) and not re.match(r"^[A-Za-z]:[\\/]", text):
        return None
    else:
        path = Path(text).expanduser()
    return path.parent if path.name == MLMODEL and path.is_file() else path


def fetch_model_dir(uri: str, workdir: Path) -> Path:
    """The local folder of the MLflow model ``uri`` names: a local folder as it is, anything else downloaded
    into ``workdir`` by ``mlflow.artifacts.download_artifacts`` (the tracking and registry URIs are MLflow's
    own settings: ``MLFLOW_TRACKING_URI``, ``MLFLOW_REGISTRY_URI``)."""
    path = local_dir(uri)
    if path is not None:
        if not path.exists():
            raise DataError(str(uri), "no such folder")
        if not path.is_dir():
            raise DataError(str(uri), f"not an MLflow model folder (a folder holding {MLMODEL})")
        return path
    try:
        import mlflow.artifacts
    except ImportError:
        raise ValidationError(
            f"{uri} needs the mlflow package to download it: pip install mlflow-skinny, or give the model's directory",
            [("uri", "mlflow not installed")],
        ) from None
    try:
        got = mlflow.artifacts.download_artifacts(artifact_uri=str(uri), dst_path=str(workdir))
    except Exception as exc:  # MlflowException and the artifact stores' own errors
        raise DataError(str(uri), f"MLflow could not download it ({type(exc).__name__}: {_first_line(exc)})") from None
    found = Path(got)
    return found.parent if found.name == MLMODEL else found


def _run_id_of(uri: str) -> str | None:
    m = re.match(r"^runs:/([^/]+)", str(uri))
    return m.group(1) if m else None


# -- reading --------------------------------------------------------------------------------------------


def read_mlmodel(directory: Path) -> dict[str, Any]:
    """``MLmodel`` as data (``yaml.safe_load``: YAML tags that build objects are refused)."""
    import yaml

    path = directory / MLMODEL
    where = str(path)
    if not path.is_file():
        raise DataError(str(directory), f"not an MLflow model folder: it has no {MLMODEL} file")
    if path.stat().st_size > _MAX_MLMODEL_BYTES:
        raise DataError(where, f"{path.stat().st_size} bytes: too large for an MLmodel file")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(where, f"not YAML ({type(exc).__name__}: {_first_line(exc)})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("flavors"), dict):
        raise DataError(where, "no 'flavors' mapping: not an MLmodel file")
    return doc


def read_mlflow_model(
    directory: Path, *, unsafe_pickle: bool = False, trusted_types: Iterable[str] = ()
) -> MlflowModel:
    """The model in an MLflow model folder, read without running code from it (except a pickle, only with
    ``unsafe_pickle``). Raises DataError naming the file or field, UnsafeModel for a refused type."""
    doc = read_mlmodel(directory)
    flavors = tuple(str(f) for f in doc["flavors"])
    flavor = next((f for f in FLAVORS if f in doc["flavors"]), None)
    if flavor is None:
        raise _bad(
            directory,
            "flavors",
            f"{', '.join(flavors) or '(none)'}: mlopsctl imports the {', '.join(FLAVORS)} flavours",
        )
    conf = doc["flavors"][flavor]
    if not isinstance(conf, dict):
        raise _bad(directory, f"flavors.{flavor}", "not a mapping")
    trusted = tuple(trusted_types)
    if flavor == "xgboost":
        read = _read_xgboost(directory, conf)
    elif flavor == "lightgbm":
        read = _read_lightgbm(directory, conf, unsafe_pickle, trusted)
    else:
        read = _read_sklearn(directory, conf, unsafe_pickle, trusted)
    example_columns, example_rows = _example(directory, doc)
    return MlflowModel(
        model=read["model"],
        flavor=flavor,
        flavors=flavors,
        model_class=read["model_class"],
        serialization=read["serialization"],
        model_file=read["file"],
        model_sha256=read["sha256"],
        inputs=_signature_inputs(doc, directory),
        example_columns=example_columns,
        example_rows=example_rows,
        run_id=_text(doc.get("run_id")),
        model_id=_text(doc.get("model_id")) or _text(doc.get("model_uuid")),
        mlflow_version=_text(doc.get("mlflow_version")),
        unpickled=read["serialization"] in PICKLE_FORMATS,
        booster=read.get("booster"),
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _bad(directory: Path, key: str, problem: str) -> DataError:
    """A DataError naming the MLmodel file and the field in it: ``…/MLmodel: flavors.sklearn.data: problem``."""
    return DataError(f"{directory / MLMODEL}: {key}", problem)


def _inside(directory: Path, relative: Any, key: str) -> Path:
    """``directory / relative`` for a path the MLmodel names, refused when it leaves the folder."""
    if not isinstance(relative, str) or not relative:
        raise _bad(directory, key, "names no file")
    base = directory.resolve()
    path = (directory / relative).resolve()
    if Path(relative).is_absolute() or not path.is_relative_to(base):
        raise _bad(directory, key, f"{relative!r} points outside the model's folder")
    if not path.is_file():
        raise _bad(directory, key, f"{relative!r}: no such file in the model's folder")
    return path


def _require(module: str, flavor: str) -> Any:
    """``module`` imported, or one line saying the flavour needs it (XGBoost and LightGBM are optional)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValidationError(
            f"the MLflow {flavor} flavour needs the {module} package: pip install {module}", [("flavor", flavor)]
        ) from None


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _load_pickle(path: Path, fmt: str, unsafe_pickle: bool, advice: str) -> Any:
    where = str(path)
    if not unsafe_pickle:
        raise DataError(
            where,
            f"a {fmt} file runs code when it is opened: pass --unsafe-pickle if you made it yourself "
            f"(it is stored as skops; the store never holds a pickle), or {advice}",
        )
    import pickle

    try:
        with path.open("rb") as f:
            return pickle.load(f)  # the user asked for it, for a file of their own (cloudpickle writes pickles)
    except Exception as exc:
        raise DataError(where, f"could not unpickle it: {type(exc).__name__}: {_first_line(exc)}") from None


def _read_sklearn(
    directory: Path, conf: Mapping[str, Any], unsafe_pickle: bool, trusted: tuple[str, ...]
) -> dict[str, Any]:
    from mlopsctl.bundle.safety import load_skops

    path = _inside(directory, conf.get("pickled_model"), "flavors.sklearn.pickled_model")
    fmt = str(conf.get("serialization_format") or "pickle")  # MLflow's own default when the key is absent
    data = path.read_bytes()
    if fmt == "skops":
        model = load_skops(data, name=str(path), trusted_types=trusted)
    elif fmt in PICKLE_FORMATS:
        model = _load_pickle(
            path, fmt, unsafe_pickle, 'save it with mlflow.sklearn.save_model(..., serialization_format="skops")'
        )
    else:
        raise _bad(
            directory, "flavors.sklearn.serialization_format", f"{fmt!r}: expected skops, {', '.join(PICKLE_FORMATS)}"
        )
    _check_predicts(model, path)
    return {
        "model": model,
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "serialization": fmt,
        "file": path.relative_to(directory.resolve()).as_posix(),
        "sha256": _sha256(data),
    }


def _read_xgboost(directory: Path, conf: Mapping[str, Any]) -> dict[str, Any]:
    model_class = str(conf.get("model_class") or "xgboost.core.Booster")  # MLflow's default before 1.22
    if model_class not in _XGB_CLASSES:
        raise _bad(
            directory, "flavors.xgboost.model_class", f"{model_class!r}: mlopsctl imports {', '.join(_XGB_CLASSES)}"
        )
    xgboost = _require("xgboost", "xgboost")
    path = _inside(directory, conf.get("data"), "flavors.xgboost.data")
    data = path.read_bytes()
    name = _XGB_CLASSES[model_class]
    try:
        if name is None:  # a bare Booster: the scikit-learn class its objective calls for
            objective = json.loads(xgboost.Booster(model_file=str(path)).save_config())["learner"]["objective"]["name"]
            name = _xgb_class_for(str(objective), str(path))
        model = getattr(xgboost, name)()
        model.load_model(str(path))  # XGBoost's own JSON/UBJSON reader
    except (xgboost.core.XGBoostError, ValueError, KeyError, OSError) as exc:
        raise DataError(str(path), f"XGBoost could not read it ({type(exc).__name__}: {_first_line(exc)})") from None
    return {
        "model": model,
        "model_class": model_class,
        "serialization": str(conf.get("model_format") or path.suffix.lstrip(".")),
        "file": path.relative_to(directory.resolve()).as_posix(),
        "sha256": _sha256(data),
    }


def _xgb_class_for(objective: str, where: str) -> str:
    if objective.startswith(("binary:", "multi:")):
        return "XGBClassifier"
    if objective.startswith(("reg:", "count:", "survival:")):
        return "XGBRegressor"
    raise DataError(where, f"a Booster with objective {objective!r}: mlopsctl imports classifiers and regressors")


def _read_lightgbm(
    directory: Path, conf: Mapping[str, Any], unsafe_pickle: bool, trusted: tuple[str, ...]
) -> dict[str, Any]:
    from mlopsctl.bundle.safety import load_skops

    model_class = str(conf.get("model_class") or _LGB_BOOSTER)  # MLflow's default before 1.23
    if model_class not in (_LGB_BOOSTER, *_LGB_SKLEARN):
        raise _bad(
            directory,
            "flavors.lightgbm.model_class",
            f"{model_class!r}: mlopsctl imports {_LGB_BOOSTER}, " + ", ".join(_LGB_SKLEARN),
        )
    _require("lightgbm", "lightgbm")
    path = _inside(directory, conf.get("data"), "flavors.lightgbm.data")
    data = path.read_bytes()
    booster = None
    if model_class == _LGB_BOOSTER:
        model, booster = _lightgbm_from_text(path, data)
        fmt = "lightgbm-text"
    else:
        fmt = str(conf.get("serialization_format") or "cloudpickle")  # MLflow's default when the key is absent
        if fmt == "skops":
            model = load_skops(data, name=str(path), trusted_types=trusted)
        elif fmt in PICKLE_FORMATS:
            model = _load_pickle(
                path, fmt, unsafe_pickle, 'save it with mlflow.lightgbm.save_model(..., serialization_format="skops")'
            )
        else:
            raise _bad(
                directory,
                "flavors.lightgbm.serialization_format",
                f"{fmt!r}: expected skops, {', '.join(PICKLE_FORMATS)}",
            )
    _check_predicts(model, path)
    out = {
        "model": model,
        "model_class": model_class,
        "serialization": fmt,
        "file": path.relative_to(directory.resolve()).as_posix(),
        "sha256": _sha256(data),
    }
    if booster is not None:
        out["booster"] = booster
    return out


def _lightgbm_from_text(path: Path, data: bytes) -> tuple[Any, Any]:
    """An LGBMClassifier or LGBMRegressor around the Booster in LightGBM's model text (its objective says
    which), set up as ``fit`` leaves one; `MlflowModel.rows_for` checks it predicts as the Booster."""
    import lightgbm
    import numpy as np

    where = str(path)
    header = data[:65536].decode("utf-8", "replace")
    found = re.search(r"^objective=(\S+)", header, flags=re.M)
    if not found:
        raise DataError(where, "no 'objective=' line: not a LightGBM model text file")
    objective = found.group(1)
    if objective in _LGB_RANKING_OBJECTIVES:
        raise DataError(where, f"a Booster with objective {objective!r}: mlopsctl imports classifiers and regressors")
    try:
        booster = lightgbm.Booster(model_file=str(path))  # LightGBM's own text parser
    except lightgbm.basic.LightGBMError as exc:
        raise DataError(where, f"LightGBM could not read it ({_first_line(exc)})") from None
    names = booster.feature_name()
    n_features = booster.num_feature()
    n_trees = booster.current_iteration()
    if objective in _LGB_CLASSIFIER_OBJECTIVES:
        from sklearn.preprocessing import LabelEncoder

        n_classes = max(2, int(booster.num_model_per_iteration()))
        model: Any = lightgbm.LGBMClassifier(objective=objective, n_estimators=n_trees)
        labels = np.arange(n_classes)
        model._le = LabelEncoder().fit(labels)
        model._classes = model._le.classes_
        model._n_classes = n_classes
        model._class_map = {int(c): int(c) for c in labels}
    else:
        model = lightgbm.LGBMRegressor(objective=objective, n_estimators=n_trees)
    model._Booster = booster
    model._objective = objective
    model._n_features = n_features
    model._n_features_in = n_features
    model._fitted_with_feature_names = not all(n == f"Column_{i}" for i, n in enumerate(names))
    model._evals_result = {}
    model._best_iteration = booster.best_iteration
    model._best_score = booster.best_score
    model._class_weight = None
    model.fitted_ = True
    return model, booster


def _check_rebuilt(m: MlflowModel, rows: Any, where: str) -> None:
    import numpy as np

    raw = np.asarray(m.booster.predict(rows), dtype=np.float64)
    model = m.model
    if hasattr(model, "classes_"):
        proba = np.asarray(model.predict_proba(rows), dtype=np.float64)
        got = proba[:, 1] if raw.ndim == 1 else proba
    else:
        got = np.asarray(model.predict(rows), dtype=np.float64)
    if got.shape != raw.shape or not np.allclose(got, raw, rtol=1e-9, atol=1e-12, equal_nan=True):
        raise ValidationError(
            f"{where}: the {type(model).__name__} rebuilt from the LightGBM Booster in {m.model_file} predicts "
            "differently from the Booster on these rows",
            [("model", "rebuilt from Booster")],
        )


def _check_predicts(model: Any, path: Path) -> None:
    if not callable(getattr(model, "predict", None)):
        raise UnsafeModel(str(path), f"holds a {type(model).__name__}, not a model with predict()")


def _signature_inputs(doc: Mapping[str, Any], directory: Path) -> tuple[str, ...] | None:
    """The column names of a column-based MLflow signature (None without one, or for a tensor signature)."""
    sig = doc.get("signature")
    if not isinstance(sig, dict) or sig.get("inputs") is None:
        return None
    raw = sig["inputs"]
    try:
        inputs = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise _bad(directory, "signature.inputs", "not JSON") from None
    if not isinstance(inputs, list) or not inputs:
        return None
    names = [c.get("name") if isinstance(c, dict) else None for c in inputs]
    if any(not isinstance(n, str) for n in names):
        return None  # a tensor signature, or unnamed columns: nothing to match rows by
    return tuple(str(n) for n in names)


def _example(directory: Path, doc: Mapping[str, Any]) -> tuple[tuple[str, ...] | None, int | None]:
    """(columns, rows) of the saved input example when it is a DataFrame, else (None, None)."""
    info = doc.get("saved_input_example_info")
    if not isinstance(info, dict) or info.get("type") != "dataframe":
        return None, None
    try:
        path = _inside(directory, info.get("artifact_path"), "saved_input_example_info.artifact_path")
        example = json.loads(path.read_text(encoding="utf-8"))
    except (DataError, ValueError, OSError):
        return None, None  # the example is a convenience: the model reads without it
    if isinstance(example, dict) and isinstance(example.get("columns"), list):
        rows = example.get("data")
        return tuple(str(c) for c in example["columns"]), len(rows) if isinstance(rows, list) else None
    if isinstance(example, list) and example and isinstance(example[0], dict):
        return tuple(str(c) for c in example[0]), len(example)
    return None, None


def _feature_names_in(model: Any) -> Any:
    try:
        return getattr(model, "feature_names_in_", None)
    except Exception:  # LightGBM raises AttributeError-like errors when fitted without names
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


# -- writing --------------------------------------------------------------------------------------------


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValidationError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}", [("format", fmt)])
    return fmt


def write_mlflow_model(version: Any, out: Path) -> dict[str, Any]:
    """Write ``version`` (a `ModelVersion`) as an MLflow model folder at ``out``, which must not exist or be
    empty. The files are written beside it and moved into place last: a failure leaves no half folder."""
    import shutil
    import uuid

    from mlopsctl.bundle import keys

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValidationError(
            f"--out {out}: exists and is not empty; give a new or empty folder", [("out", "not empty")]
        )
    estimator = version.estimator()  # verified against the manifest, rebuilt through the allowlist
    skops_bytes = version.file(keys.MODEL_SKOPS)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.tmp"
    work.mkdir()
    try:
        summary = _write(version, estimator, skops_bytes, work)
        if out.exists():
            out.rmdir()
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return {"out": str(out), **summary}


def _write(version: Any, estimator: Any, skops_bytes: bytes, work: Path) -> dict[str, Any]:
    import platform
    import uuid
    from datetime import UTC, datetime

    import yaml

    flavor = _export_flavor(estimator)
    types = _skops_types(skops_bytes, version)
    if flavor == "xgboost":
        model_file = "model.ubj"
        estimator.save_model(str(work / model_file))  # XGBoost's own format, as mlflow.xgboost writes it
        conf: dict[str, Any] = {
            "code": None,
            "data": model_file,
            "model_class": _class_name(estimator),
            "model_format": "ubj",
            "xgb_version": _version_of("xgboost"),
        }
        pyfunc: dict[str, Any] = {"loader_module": "mlflow.xgboost", "data": model_file}
        serialization = "ubj"
    elif flavor == "lightgbm":
        model_file = "model.skops"  # mlflow.lightgbm saves the scikit-learn API as skops
        (work / model_file).write_bytes(skops_bytes)
        conf = {
            "code": None,
            "data": model_file,
            "lgb_version": _version_of("lightgbm"),
            "model_class": _class_name(estimator),
            "serialization_format": "skops",
            "skops_trusted_types": types,
        }
        pyfunc = {"loader_module": "mlflow.lightgbm", "data": model_file}
        serialization = "skops"
    else:
        model_file = "model.skops"
        (work / model_file).write_bytes(skops_bytes)
        conf = {
            "code": None,
            "pickled_model": model_file,
            "serialization_format": "skops",
            "sklearn_version": _version_of("sklearn"),
            "skops_trusted_types": types or None,
        }
        pyfunc = {"loader_module": "mlflow.sklearn", "model_path": model_file, "predict_fn": "predict"}
        serialization = "skops"
    python = platform.python_version()
    pyfunc |= {"env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}, "python_version": python}
    mlflow_version = _mlflow_version()
    sig = version.signature
    manifest_files = version.manifest.get("files", {})
    mlmodel: dict[str, Any] = {
        "flavors": {"python_function": pyfunc, flavor: conf},
        "metadata": {
            "mlopsctl_model": version.name,
            "mlopsctl_version": version.number,
            "mlopsctl_run_id": version.run_id,
            "mlopsctl_model_skops_sha256": (manifest_files.get("model.skops") or {}).get("sha256"),
        },
        "mlflow_version": mlflow_version,
        "model_size_bytes": (work / model_file).stat().st_size,
        "model_uuid": uuid.uuid4().hex,
        "signature": mlflow_signature(sig),
        "utc_time_created": str(datetime.now(UTC).replace(tzinfo=None)),
    }
    (work / MLMODEL).write_text(yaml.safe_dump(mlmodel, default_flow_style=False))
    requirements = _requirements(flavor, types, mlflow_version)
    (work / "requirements.txt").write_text("\n".join(requirements))
    (work / "python_env.yaml").write_text(
        yaml.safe_dump(
            {"python": python, "build_dependencies": _build_dependencies(), "dependencies": ["-r requirements.txt"]},
            sort_keys=False,
            default_flow_style=False,
        )
    )
    pip = _version_of("pip")
    conda = {
        "name": "mlflow-env",
        "channels": ["conda-forge"],
        "dependencies": [f"python={python}", f"pip<={pip}" if pip else "pip", {"pip": requirements}],
    }
    (work / "conda.yaml").write_text(yaml.safe_dump(conda, default_flow_style=False))
    return {
        "model": version.name,
        "version": version.number,
        "flavor": flavor,
        "serialization": serialization,
        "model_file": model_file,
        "mlflow_version": mlflow_version,
        "files": sorted(p.name for p in work.iterdir()),
        "requirements": requirements,
    }


def _export_flavor(estimator: Any) -> str:
    """xgboost or lightgbm for a bare estimator of those libraries, sklearn for anything else (a Pipeline too)."""
    root = type(estimator).__module__.split(".", 1)[0]
    return root if root in ("xgboost", "lightgbm") else "sklearn"


def _class_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _skops_types(data: bytes, version: Any) -> list[str]:
    """The types skops needs told to trust in ``model.skops`` (MLflow passes them to ``skops.io.load``); a type
    from the project's own code is refused: MLflow could not import it."""
    import skops.io as sio

    from mlopsctl.bundle.safety import TRUSTED_TYPES

    types = sorted(sio.get_untrusted_types(data=data))
    own = [t for t in types if t not in TRUSTED_TYPES]
    if own:
        raise ValidationError(
            f"{version.name} v{version.number} holds {own[0]}, from the project's own code ([registry] "
            "trusted_types): an MLflow model would need that code beside it; export takes models made only of "
            "scikit-learn, XGBoost and LightGBM types",
            [("model", own[0])],
        )
    return types


def mlflow_signature(sig: Any) -> dict[str, Any]:
    """An MLflow column signature from a version's: numbers as double (mlopsctl feeds every number as a float,
    so a column MLflow typed long would refuse 3.5 where mlopsctl takes it), categories and text as string."""

    def kind(f: Any) -> str:
        if f.kind == "numeric":
            return "double"
        return "boolean" if f.dtype == "bool" else "string"

    inputs = [{"type": kind(f), "name": f.name, "required": True} for f in sig.inputs]
    if sig.regression:
        output = "double"
    else:
        classes = list(sig.classes or [])
        output = (
            "long" if classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes) else "string"
        )
    return {
        "inputs": json.dumps(inputs),
        "outputs": json.dumps([{"type": output, "required": True}]),
        "params": None,
    }


def _requirements(flavor: str, types: list[str], mlflow_version: str) -> list[str]:
    """``requirements.txt`` as MLflow writes it: mlflow first, then the libraries the model needs, pinned to the
    installed versions under the names pip installed them by (xgboost-cpu where that is the installed one)."""
    modules = {"sklearn"} | ({"skops"} if flavor != "xgboost" else set())
    libraries = {t.split(".", 1)[0] for t in types} | {flavor}
    modules |= {m for m in ("xgboost", "lightgbm") if m in libraries}
    pins = sorted(f"{dist}=={version}" for dist, version in (_installed(m) for m in modules) if version)
    return [f"mlflow=={mlflow_version}", *pins]


def _installed(module: str) -> tuple[str, str | None]:
    """(the distribution that provides ``module``, its version), e.g. ("scikit-learn", "1.9.1") for sklearn."""
    import importlib.metadata as md

    dists = _distributions().get(module) or [module]
    for dist in dists:
        try:
            return dist, md.version(dist)
        except md.PackageNotFoundError:
            continue
    return dists[0], None


@functools.cache
def _distributions() -> Mapping[str, list[str]]:
    import importlib.metadata as md

    return md.packages_distributions()


def _version_of(module: str) -> str | None:
    return _installed(module)[1]


def _build_dependencies() -> list[str]:
    import importlib.metadata as md

    out = []
    for package in ("pip", "setuptools", "wheel"):
        try:
            out.append(f"{package}=={md.version(package)}")
        except md.PackageNotFoundError:
            out.append(package)
    return out


def _mlflow_version() -> str:
    """The installed MLflow's version (without importing it: that takes seconds), else `MLFLOW_LAYOUT`."""
    import importlib.metadata as md

    for dist in ("mlflow", "mlflow-skinny"):
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            continue
    return MLFLOW_LAYOUT
