"""Hostile model files: nothing read from the store or a run folder ever runs code.

Each hostile file, if it ran, would write a marker file. Every one is refused with one line naming the file
and the type (or the tensor, or the metadata key), on every path that loads a model: publish, the gate
inside promote, serve with either runtime, predict, drift and retraining's evaluation. The marker is never
written. The store is built from scikit-learn's own breast cancer data, so this suite needs nothing else.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import shutil
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlopsctl.bundle import keys
from mlopsctl.bundle.safety import (
    TRUSTED_TYPES,
    check_onnx,
    check_trusted_types,
    load_skops,
    onnx_external_tensors,
    refusal,
)
from mlopsctl.errors import GateRefused, IntegrityError, UnsafeModel
from tests.conftest import run_cli

# -- building hostile skops files by hand (the format is a zip holding schema.json) -------------------------


def _json_node(value: Any) -> dict[str, Any]:
    return {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode", "content": json.dumps(value)}


def _tuple(*items: dict[str, Any]) -> dict[str, Any]:
    return {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": list(items)}


def _call(module: str, fn: str, *args: dict[str, Any]) -> dict[str, Any]:
    """skops' constructor node: on load it calls ``module.fn(*args)``."""
    return {"__class__": fn, "__module__": module, "__loader__": "ConstructorFromReduceNode", "content": _tuple(*args)}


def _skops(tree: dict[str, Any], extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("schema.json", json.dumps({**tree, "protocol": 2, "_skops_version": "0.16.0"}))
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return buf.getvalue()


def _write_marker_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('code ran')"


class _Evil:
    """Unpickling it runs code (what a pickle inside a model file would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (_write_marker_code(self.marker),))


def _hostile_skops(marker: Path) -> dict[str, Callable[[], bytes]]:
    code = _json_node(_write_marker_code(marker))

    def object_array() -> bytes:
        # an ndarray node whose .npy holds a pickled object array: numpy refuses it without allow_pickle
        arr = np.empty(1, dtype=object)
        arr[0] = _Evil(marker)
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=True)
        node = {"__class__": "ndarray", "__module__": "numpy", "__loader__": "NdArrayNode", "type": "numpy"}
        return _skops({**node, "file": "0.npy"}, {"0.npy": buf.getvalue()})

    def numpy_call() -> bytes:
        # an ndarray node of a "class" that is really a function: skops would call it with the array
        buf = io.BytesIO()
        np.save(buf, np.array([1.0]), allow_pickle=False)
        node = {"__class__": "system", "__module__": "os", "__loader__": "NdArrayNode", "type": "numpy"}
        return _skops({**node, "file": "0.npy"}, {"0.npy": buf.getvalue()})

    return {
        "builtins.exec": lambda: _skops(_call("builtins", "exec", code)),
        "builtins.eval": lambda: _skops(_call("builtins", "eval", _json_node(f"exec({_write_marker_code(marker)!r})"))),
        "builtins.getattr": lambda: _skops(_call("builtins", "getattr", _json_node("x"), _json_node("__class__"))),
        "operator.attrgetter": lambda: _skops(_call("operator", "attrgetter", _json_node("__globals__"))),
        "os.system": lambda: _skops(_call("os", "system", _json_node(f"touch {marker}"))),
        "numpy object array": object_array,
        "os.system as an array class": numpy_call,
        "sklearn prefix trap": lambda: _skops(_call("sklearn.utils", "_exec_trap", code)),
    }


# -- a small project trained on scikit-learn's breast cancer data, published, in prod ---------------------


@pytest.fixture(scope="module")
def cancer(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from sklearn.datasets import load_breast_cancer

    root = tmp_path_factory.mktemp("hostile")
    frame = load_breast_cancer(as_frame=True).frame.iloc[:, [0, 1, 2, 3, 4, 5, -1]]
    frame.to_csv(root / "cancer.csv", index=False)
    (root / "mlops.toml").write_text(
        f"""[project]
name = "cancer"
[data]
path = "{root / "cancer.csv"}"
target = "target"
[training]
model = "logistic_regression"
cv_folds = 2
[store]
uri = "{root / "store"}"
"""
    )
    from mlopsctl import registry
    from mlopsctl.config import load_config
    from mlopsctl.registry.publishing import publish_run
    from mlopsctl.store import open_store
    from mlopsctl.training.train import train_project

    cfg = load_config(root)
    store = open_store(cfg.store_uri())
    run = train_project(cfg, store)
    v1 = publish_run(store, run).version
    registry.promote(store, "cancer", v1, "prod")
    return {"root": root, "run": run, "v1": v1}


@pytest.fixture
def project(cancer: dict[str, Any], tmp_path: Path) -> Iterator[Path]:
    """A private copy of the project and its store."""
    dest = tmp_path / "project"
    shutil.copytree(cancer["root"], dest)
    toml = (dest / "mlops.toml").read_text().replace(str(cancer["root"]), str(dest))
    (dest / "mlops.toml").write_text(toml)
    yield dest


def _store(project: Path) -> Any:
    from mlopsctl.store import open_store

    return open_store(str(project / "store"))


def _tampered_version(project: Path, replace: dict[str, bytes]) -> int:
    """A new version, copied from v1 with files replaced and the manifest rewritten to match them: what an
    attacker who can write the store makes. Returns its number."""
    store = _store(project)
    src = project / "store" / "models" / "cancer" / "versions" / "1"
    v = max(int(p.name) for p in src.parent.iterdir()) + 1
    dst = src.parent / str(v)
    shutil.copytree(src, dst)
    man = json.loads((dst / "manifest.json").read_text())
    for fname, data in replace.items():
        (dst / fname).write_bytes(data)
        man["files"][fname] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    man["version"], man["run_id"] = v, f"tampered-{v}"
    (dst / "manifest.json").write_text(json.dumps(man))
    assert store.exists(f"models/cancer/versions/{v}/manifest.json")
    return v


def _real_skops_with(marker: Path, project: Path) -> bytes:
    """v1's real model file, one parameter swapped for a call to exec (the realistic tampering)."""
    data = (project / "store" / "models" / "cancer" / "versions" / "1" / "model.skops").read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        files = {n: z.read(n) for n in z.namelist()}
    schema = json.loads(files["schema.json"])
    node = schema["content"]["content"]["steps"]["content"][-1]["content"][1]["content"]["content"]
    node["max_iter"] = _call("builtins", "exec", _json_node(_write_marker_code(marker)))
    files["schema.json"] = json.dumps(schema).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, d in files.items():
            z.writestr(n, d)
    return buf.getvalue()


# -- the loader itself ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [
        "builtins.exec",
        "builtins.eval",
        "builtins.getattr",
        "operator.attrgetter",
        "os.system",
        "numpy object array",
        "os.system as an array class",
        "sklearn prefix trap",
    ],
)
def test_every_hostile_skops_file_is_refused_and_runs_nothing(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    data = _hostile_skops(marker)[kind]()
    with pytest.raises(UnsafeModel) as info:
        load_skops(data, name="models/x/versions/1/model.skops")
    message = str(info.value)
    assert message.startswith("refused to load models/x/versions/1/model.skops: ") and "\n" not in message
    if kind != "numpy object array":
        assert kind.split(" ")[0] in message  # the type is named
    assert not marker.exists()


def test_the_allowlist_is_exact_names_and_never_a_prefix() -> None:
    assert all(refusal(t) is None for t in TRUSTED_TYPES)
    assert not any(t.endswith(".") or "*" in t for t in TRUSTED_TYPES)
    for name in ("builtins.exec", "os.system", "operator.attrgetter", "subprocess.Popen", "numpy.lib.npyio.load"):
        assert refusal(name)
        with pytest.raises(ValueError, match="can never be trusted"):
            check_trusted_types([name])
    with pytest.raises(ValueError, match="not an exact name"):
        check_trusted_types(["features.*"])
    assert check_trusted_types(["features.add_ratio"]) == ("features.add_ratio",)


def test_a_project_cannot_trust_its_way_into_exec(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    data = _hostile_skops(marker)["builtins.exec"]()
    with pytest.raises(UnsafeModel, match=r"builtins\.exec.*reaches the interpreter"):
        load_skops(data, trusted_types=["builtins.exec"])
    assert not marker.exists()


def test_a_file_that_is_not_skops_is_refused_in_one_line() -> None:
    for data in (b"", b"not a zip", pickle.dumps({"a": 1})):
        with pytest.raises(UnsafeModel, match=r"^refused to load model\.skops: not a readable skops file"):
            load_skops(data)


def test_config_refuses_blanket_trust_and_dangerous_names(tmp_path: Path) -> None:
    from mlopsctl.config import parse_config
    from mlopsctl.errors import ConfigError

    base = {"project": {"name": "p"}, "data": {"path": "d.csv", "target": "y"}}
    with pytest.raises(ConfigError, match=r"registry\.trusted: trusted = true is no longer accepted"):
        parse_config({**base, "registry": {"trusted": True}})
    with pytest.raises(ConfigError, match="can never be trusted"):
        parse_config({**base, "registry": {"trusted_types": ["os.system"]}})
    cfg = parse_config({**base, "registry": {"trusted_types": ["features.add_ratio"]}})
    assert cfg.registry.trusted_types == ["features.add_ratio"]


# -- ONNX files ------------------------------------------------------------------------------------------------


def _onnx_with_external(location: str) -> bytes:
    from onnx import TensorProto, helper

    t = helper.make_tensor("w", TensorProto.FLOAT, [4], vals=[0, 0, 0, 0])
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "16")):
        e = t.external_data.add()
        e.key, e.value = k, v
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], [t])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


@pytest.mark.parametrize("location", ["../../../../../etc/passwd", "/etc/passwd", "mlops.toml", "model.skops"])
def test_an_onnx_graph_pointing_at_external_data_is_refused(location: str) -> None:
    data = _onnx_with_external(location)
    assert onnx_external_tensors(data) == ["w"]
    with pytest.raises(UnsafeModel, match=r"^refused to load model\.onnx: tensor 'w' points at external data"):
        check_onnx(data)


def test_the_external_data_scan_agrees_with_onnx_on_real_graphs(project: Path) -> None:
    """The light scan (the server never imports onnx) finds what onnx itself finds: nothing in a real export,
    the tensor in a graph whose initializer, node attribute or subgraph points outside."""
    import onnx
    from onnx import TensorProto, helper
    from onnx.external_data_helper import uses_external_data

    real = (project / "store" / "models" / "cancer" / "versions" / "1" / "model.onnx").read_bytes()
    assert onnx_external_tensors(real) == []
    check_onnx(real)
    # a Constant node's tensor attribute, inside an If's subgraph
    t = helper.make_tensor("inner", TensorProto.FLOAT, [1], vals=[0.0])
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", "secret.bin"
    const = helper.make_node("Constant", [], ["c"], value=t)
    out = helper.make_tensor_value_info("c", TensorProto.FLOAT, [1])
    branch = helper.make_graph([const], "branch", [], [out])
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    node = helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch)
    model = helper.make_model(helper.make_graph([node], "g", [cond], [y]), opset_imports=[helper.make_opsetid("", 18)])
    assert uses_external_data(model.graph.node[0].attribute[0].g.node[0].attribute[0].t)
    assert onnx_external_tensors(model.SerializeToString()) == ["inner", "inner"]
    # a feature named "location" puts the key's bytes in a clean graph: the full walk runs and finds nothing
    x = helper.make_tensor_value_info("location", TensorProto.FLOAT, [1])
    clean = helper.make_model(
        helper.make_graph([helper.make_node("Identity", ["location"], ["y"])], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 18)],
    ).SerializeToString()
    assert b"\x0a\x08location" in clean and onnx_external_tensors(clean) == []
    assert onnx.load_from_string(real) is not None


def test_a_pickle_in_the_onnx_metadata_is_refused_and_never_unpickled(project: Path, tmp_path: Path) -> None:
    import onnx

    from mlopsctl.bundle.runners import OnnxRunner

    marker = tmp_path / "MARKER"
    real = (project / "store" / "models" / "cancer" / "versions" / "1" / "model.onnx").read_bytes()
    model = onnx.load_from_string(real)
    for prop in model.metadata_props:
        if prop.key == keys.META_INPUTS:
            prop.value = pickle.dumps(_Evil(marker), protocol=0).decode("latin-1")
    data = model.SerializeToString()
    features = [{"name": f"f{i}", "kind": "numeric"} for i in range(6)]
    with pytest.raises(UnsafeModel, match=r"^refused to load x/model\.onnx: metadata 'mlopsctl\.inputs' is not JSON"):
        OnnxRunner(data, features, "classification", [0, 1], name="x/model.onnx")
    assert not marker.exists()


# -- every path that loads a model --------------------------------------------------------------------------


@pytest.fixture
def hostile_version(project: Path, tmp_path: Path) -> tuple[Path, int, Path]:
    """(project, version, marker): a version whose model.skops calls exec, manifest rewritten to match."""
    marker = tmp_path / "MARKER"
    v = _tampered_version(project, {keys.MODEL_SKOPS: _real_skops_with(marker, project)})
    return project, v, marker


def test_the_gate_refuses_a_hostile_version_before_any_move(hostile_version: tuple[Path, int, Path]) -> None:
    from mlopsctl import registry
    from mlopsctl.registry.promotion import promote

    project, v, marker = hostile_version
    store = _store(project)
    with pytest.raises(
        GateRefused, match=rf"cancer v{v} would not load: refused to load .*model\.skops: type builtins\.exec"
    ):
        promote(store, "cancer", v, "prod", force=True)
    assert registry.get_alias(store, "cancer", "prod")["version"] == 1
    assert not marker.exists()


def test_serving_refuses_a_hostile_version_with_either_runtime(hostile_version: tuple[Path, int, Path]) -> None:
    from fastapi.testclient import TestClient

    from mlopsctl.serving.app import ServeSettings, create_app
    from mlopsctl.serving.loaded import load

    project, v, marker = hostile_version
    store = _store(project)
    with pytest.raises(UnsafeModel, match=r"type builtins\.exec"):
        load(store, "cancer", str(v), runtime="sklearn")
    # the default runtime serves the checked ONNX graph and never rebuilds the tampered model file
    assert load(store, "cancer", str(v)).runtime == "onnx"
    settings = ServeSettings(
        store_uri=str(project / "store"), models=[("cancer", str(v))], runtime="sklearn", capture=None
    )
    with TestClient(create_app(settings)) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        error = client.get("/models").json()["models"][0]["error"]
        assert "refused to load" in error and "builtins.exec" in error
    assert not marker.exists()


def test_the_cli_refuses_in_one_line(hostile_version: tuple[Path, int, Path]) -> None:
    project, v, marker = hostile_version
    for args in (["promote", "cancer", str(v), "--alias", "staging"], ["models", "verify", f"cancer@{v}"]):
        proc = run_cli(*args, cwd=project, check=False)
        if args[0] == "models":  # verify checks the sha256 only: the files match the rewritten manifest
            assert proc.returncode == 0
            continue
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "refused to load" in lines[0] and "builtins.exec" in lines[0], proc.stderr
    assert not marker.exists()


def test_drift_and_retraining_evaluation_refuse_a_hostile_production(hostile_version: tuple[Path, int, Path]) -> None:
    import pandas as pd

    from mlopsctl.pipeline.evaluate import fresh_holdout_scores
    from mlopsctl.serving.loaded import load

    project, v, marker = hostile_version
    store = _store(project)
    run = json.loads((project / "store" / "models" / "cancer" / "versions" / "1" / "run.json").read_text())
    with pytest.raises(UnsafeModel, match=r"builtins\.exec"):
        fresh_holdout_scores(store, "cancer", run["run_id"], v)
    with pytest.raises(UnsafeModel, match=r"builtins\.exec"):
        load(store, "cancer", None, version=v, runtime="sklearn")  # `drift --predict` on the sklearn runtime
    assert isinstance(pd.DataFrame(), pd.DataFrame)
    assert not marker.exists()


def test_publish_checks_the_run_folder(project: Path, cancer: dict[str, Any], tmp_path: Path) -> None:
    """A model file swapped in a run folder is caught by its hash; with run.json rewritten to match, by the
    allowlist. Nothing is published either way, and the CLI says so in one line."""
    from mlopsctl.registry.publishing import publish_run
    from mlopsctl.training.runs import get_run

    marker = tmp_path / "MARKER"
    store = _store(project)
    run_dir = project / "store" / "runs" / cancer["run"]["run_id"]
    # a second run: the first is already published as v1 (publishing it again would not read the folder)
    run2 = json.loads((run_dir / "run.json").read_text())
    run2["run_id"] = run2["run_id"][:-6] + "ffffff"
    dir2 = run_dir.parent / run2["run_id"]
    shutil.copytree(run_dir, dir2)
    hostile = _real_skops_with(marker, project)
    (dir2 / "model.skops").write_bytes(hostile)
    (dir2 / "run.json").write_text(json.dumps(run2))
    with pytest.raises(IntegrityError, match=r"runs/.*/model\.skops: expected sha256"):
        publish_run(store, get_run(store, run2["run_id"]))
    proc = run_cli("publish", run2["run_id"], cwd=project, check=False)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1 and "model.skops" in proc.stderr

    run2["files"]["model.skops"] = {"sha256": hashlib.sha256(hostile).hexdigest(), "size": len(hostile)}
    (dir2 / "run.json").write_text(json.dumps(run2))
    with pytest.raises(UnsafeModel, match=r"runs/.*/model\.skops: type builtins\.exec"):
        publish_run(store, get_run(store, run2["run_id"]))
    assert not marker.exists()
    assert not (project / "store" / "models" / "cancer" / "by-run" / f"{run2['run_id']}.json").exists()


def test_promote_refuses_a_version_whose_onnx_does_not_open(project: Path) -> None:
    """A corrupted model.onnx (manifest rewritten to match) passes `models verify` but not the gate."""
    from mlopsctl.registry.promotion import promote

    v = _tampered_version(project, {keys.MODEL_ONNX: b"\x08\x07garbage"})
    with pytest.raises(GateRefused, match=rf"cancer v{v} would not load: refused to load .*model\.onnx"):
        promote(_store(project), "cancer", v, "staging", force=True)


def test_promote_refuses_a_version_with_a_file_that_differs(project: Path) -> None:
    from mlopsctl.registry.promotion import promote

    path = project / "store" / "models" / "cancer" / "versions" / "1" / "model.onnx"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(GateRefused, match=r"cancer v1 would not load: integrity check failed for .*model\.onnx"):
        promote(_store(project), "cancer", 1, "staging")
