"""`mlopsctl deploy docker`: the files are checked by the tools that own their formats, and the image's
command is run for real outside a container.

No Docker engine runs here, so nothing is built: hadolint lints the Dockerfile, promtool checks the
Prometheus configuration and rules, amtool the Alertmanager configuration, check-jsonschema the compose
file against the compose specification; pyyaml reads them to check they point at each other (mounts
at files that exist, Prometheus at the API service, Grafana at Prometheus). The baked image's run stage
is replayed in a folder standing for its file system: the wheel the Dockerfile installs is installed,
its COPY lines are copied, and its ENTRYPOINT + CMD start a real server, which its HEALTHCHECK then asks.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mlopsctl.config import NotifySection
from mlopsctl.deploy.docker import PYTHON_IMAGE, alertmanager_config
from mlopsctl.deploy.wheel import dependency_pins
from tests.conftest import refusing_port, run_cli, wine_rows
from tests.s3server import new_bucket, s3_env

pytestmark = pytest.mark.shared_data
DOCS = Path(__file__).resolve().parents[1] / "docs" / "deploy-docker.md"


def _tool(name: str) -> str:
    """A checker beside this Python (the dev extra's hadolint, check-jsonschema) or on PATH (Debian's)."""
    beside = Path(sys.executable).parent / name
    path = str(beside) if beside.exists() else shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (`make system-tools` installs promtool and amtool from Debian)")
    return path


def _run(*cmd: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def deploy(project: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    return dict(json.loads(run_cli("deploy", "docker", *args, "--json", cwd=project, env=env).stdout))


# -- the Dockerfile, read the way Docker reads it (enough of it for these files) ----------------------------


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            word, _, rest = pending.partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions(dockerfile):
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in stage:
        if word == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def copy_sources(dockerfile: Path) -> list[str]:
    """The build context paths a Dockerfile's COPY lines read (a pattern counts as its folder)."""
    out = []
    for word, args in instructions(dockerfile):
        if word == "COPY" and "--from" not in args:
            for src in args.split()[:-1]:
                if not src.startswith("--"):
                    out.append(src.split("/")[0] + "/" if "*" in src else src)
    return sorted(set(out))


def one(stage: list[tuple[str, str]], word: str) -> str:
    found = [args for w, args in stage if w == word]
    assert len(found) == 1, (word, found)
    return found[0]


# -- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def baked(wine_registry: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`deploy docker --bake` of the session's wine project (prod → v1), written once for the module."""
    out = tmp_path_factory.mktemp("baked") / "docker"
    result = deploy(wine_registry["project"], "--out", str(out), "--bake")
    return {**wine_registry, "out": out, "result": result}


@pytest.fixture(scope="module")
def fetched(wine_registry: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`deploy docker` without --bake: the container reads the project's (local) store, mounted."""
    out = tmp_path_factory.mktemp("fetched") / "docker"
    result = deploy(wine_registry["project"], "--out", str(out))
    return {**wine_registry, "out": out, "result": result}


# -- the Dockerfile ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["baked", "fetched"])
def test_dockerfile_lints_clean_and_runs_the_server_as_non_root(kind: str, request: pytest.FixtureRequest) -> None:
    d = request.getfixturevalue(kind)
    dockerfile = d["out"] / "Dockerfile"
    lint = _run(_tool("hadolint"), "--no-color", str(dockerfile))
    assert lint.returncode == 0 and lint.stdout.strip() == "", lint.stdout + lint.stderr
    assert "hadolint ignore" not in dockerfile.read_text()

    build, run = stages(dockerfile)
    args = dict(a.split("=", 1) for w, a in instructions(dockerfile) if w == "ARG" and "=" in a)
    assert args["PYTHON_IMAGE"] == PYTHON_IMAGE == "python:3.11-slim"
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build") and run[0] == ("FROM", "${PYTHON_IMAGE}")
    assert "python -m venv /opt/venv" in one(build, "RUN")
    assert ("COPY", "--from=build /opt/venv /opt/venv") in run
    user = one(run, "USER")
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), user  # a number, not root
    assert one(run, "EXPOSE") == "8080"
    health = one(run, "HEALTHCHECK")
    assert "--start-period=" in health and "/ready" in health
    # /tmp writable under a read-only root (ECS copies the image's /tmp, mode 1777, into its task volume);
    # declared after the last RUN, since Docker drops what a later step writes into a volume
    assert one(run, "VOLUME") == "/tmp"
    words = [w for w, _ in run]
    assert words.index("VOLUME") > max(i for i, w in enumerate(words) if w == "RUN")
    cmd = json.loads(one(run, "CMD"))
    # the whole command in CMD: a task definition's `command` (mlopsctl serve ...) replaces it cleanly
    assert cmd == [
        "mlopsctl",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--model",
        "wine@prod",
    ]
    # what the build sends is what the COPY lines of both Dockerfiles use: .dockerignore keeps exactly those
    sources = copy_sources(dockerfile)
    keep = [x[1:] for x in (d["out"] / ".dockerignore").read_text().splitlines() if x.startswith("!")]
    assert sorted(set(sources) | set(copy_sources(d["out"] / "Dockerfile.train"))) == sorted(keep)
    assert all((d["out"] / s).exists() for s in sources)
    image_env = env_of(run)
    entry = [json.loads(a) for w, a in run if w == "ENTRYPOINT"]
    if kind == "baked":
        assert entry == [["env", "MLOPS_STORE=/srv/mlops/store"]]  # the baked store, whatever the platform sets
        assert "store/" in sources
    else:
        assert entry == [] and image_env["MLOPS_STORE"] == "/srv/mlops/store"  # the mount point
        assert "store/" not in sources


def test_wheel_is_the_running_mlopsctl_and_installs(baked: dict[str, Any], tmp_path: Path) -> None:
    import mlopsctl

    (wheel,) = (baked["out"] / "wheels").glob("*.whl")
    assert wheel.name == f"mlopsctl-{mlopsctl.__version__}-py3-none-any.whl"
    assert f'ARG MLOPSCTL="/tmp/wheels/{wheel.name}[aws]"' in (baked["out"] / "Dockerfile").read_text()
    pkg = Path(mlopsctl.__file__).parent
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for src in pkg.rglob("*.py"):
            if "__pycache__" not in src.parts:
                assert zf.read("mlopsctl/" + src.relative_to(pkg).as_posix()) == src.read_bytes()
        record = zf.read(f"mlopsctl-{mlopsctl.__version__}.dist-info/RECORD").decode()
        metadata = zf.read(f"mlopsctl-{mlopsctl.__version__}.dist-info/METADATA").decode()
    assert not any("__pycache__" in n for n in names)
    assert {line.split(",")[0] for line in record.splitlines()} == names
    assert "Requires-Dist: boto3" in metadata and "Provides-Extra: aws" in metadata
    # the same code gives the same bytes: Docker's layer cache holds
    again = deploy(baked["project"], "--out", str(tmp_path / "again"))
    assert (tmp_path / "again" / "wheels" / wheel.name).read_bytes() == wheel.read_bytes()
    assert again["version"] == 1


def test_constraints_pin_what_is_installed_here(baked: dict[str, Any]) -> None:
    import importlib.metadata as md

    lines = [x for x in (baked["out"] / "constraints.txt").read_text().splitlines() if x and not x.startswith("#")]
    pins = dict(x.split("==") for x in lines)
    names = {n.lower().replace("_", "-") for n in pins}
    assert pins == {k: v for k, v in pins.items() if md.version(k) == v}
    assert {"numpy", "scikit-learn", "onnxruntime", "fastapi", "uvicorn", "boto3", "botocore"} <= names
    assert "mlopsctl" not in names and "pytest" not in names and "hypothesis" not in names  # no dev extra
    assert lines == dependency_pins()


def install_wheel(out: Path, venv: Path) -> Path:
    """The build stage, replayed: the wheel the Dockerfiles install, into ``venv`` (its dependencies are ours)."""
    wheel = str(next((out / "wheels").glob("*.whl")))
    pip = _run(
        sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--target", str(venv), wheel
    )
    assert pip.returncode == 0, pip.stderr
    return venv


# -- the baked image, replayed ---------------------------------------------------------------------------------


def test_baked_image_command_serves_the_version_from_its_own_store(baked: dict[str, Any], tmp_path: Path) -> None:
    """Install the wheel as the build stage does, lay out the run stage's files, run its command."""
    from mlopsctl import registry
    from mlopsctl.store import open_store

    out = baked["out"]
    store_keys = sorted(p.relative_to(out / "store").as_posix() for p in (out / "store").rglob("*") if p.is_file())
    assert "models/wine/aliases/prod.json" in store_keys
    assert {k.split("/")[3] for k in store_keys if "/versions/" in k} == {"1"}  # v1 alone, v2 not copied
    assert not [k for k in store_keys if not k.startswith("models/wine/")]
    baked_store = open_store(str(out / "store"))
    assert registry.verify(baked_store, "wine", 1) and registry.resolve(baked_store, "wine", "prod") == 1

    venv = install_wheel(out, tmp_path / "venv")  # the build stage (dependencies are this venv's)
    root = tmp_path / "root"  # the run stage's file system
    _, run = stages(out / "Dockerfile")

    def here(text: str) -> str:
        return text.replace("/srv/mlops", str(root / "srv" / "mlops"))

    for word, args in run:
        if word == "WORKDIR":
            Path(here(args)).mkdir(parents=True, exist_ok=True)
        if word == "COPY" and "--from" not in args:
            src, dest = args.split()[-2:]
            if (out / src).is_dir():
                shutil.copytree(out / src, here(dest), dirs_exist_ok=True)
            else:
                shutil.copy(out / src, here(dest))
        if word == "RUN" and "mkdir -p /srv/mlops/store/" in args:
            for p in args.split()[2:]:
                Path(here(p)).mkdir(parents=True, exist_ok=True)
    assert (Path(here("/srv/mlops")) / "mlops.toml").is_file()
    line = json.loads(one(run, "ENTRYPOINT")) + json.loads(one(run, "CMD"))
    line = [here(a) for a in line]
    line[line.index("--host") + 1] = "127.0.0.1"  # never bind beyond loopback here
    line[line.index("mlopsctl")] = str(venv / "bin" / "mlopsctl")  # the console script the wheel installs
    env = {**os.environ, **{k: here(v) for k, v in env_of(run).items() if k != "PATH"}, "PYTHONPATH": str(venv)}
    env["MLOPS_STORE"] = str(baked["store_dir"])  # as a task definition sets it: the baked image ignores it
    log = tmp_path / "server.log"
    health = json.loads(one(run, "HEALTHCHECK").split(" CMD ", 1)[1])
    assert health[:2] == ["python", "-c"]

    def start() -> tuple[subprocess.Popen[bytes], list[str], int]:
        with refusing_port() as port:  # bound while probed, so no other test's server takes it meanwhile
            probe = [sys.executable, "-c", health[2].replace(":8080/", f":{port}/")]
            assert _run(*probe).returncode == 1  # nothing listens yet: unhealthy
        line[line.index("--port") + 1] = str(port)
        with log.open("w") as out:  # the child keeps its own descriptor of the log
            server = subprocess.Popen(line, cwd=here("/srv/mlops"), env=env, stdout=out, stderr=subprocess.STDOUT)
        return server, probe, port

    proc, probe, port = start()
    try:
        deadline, relaunched = time.monotonic() + 60, False
        while _run(*probe).returncode != 0:
            if proc.poll() is not None and not relaunched and "address already in use" in log.read_text().lower():
                proc, probe, port = start()  # the port was taken in the instant between: once more on another
                relaunched = True
                continue
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        body = httpx.post(base + "/predict", json={"features": wine_rows(1)[0]}, timeout=10).json()
        assert body["model"] == "wine" and body["model_version"] == 1 and body["variant"] == "prod"
        (info,) = httpx.get(base + "/models", timeout=10).json()["models"]
        assert info["version"] == 1 and info["follows"] == "prod"
        src = subprocess.run(
            [sys.executable, "-c", "import mlopsctl; print(mlopsctl.__file__)"], env=env, capture_output=True, text=True
        )
        assert src.stdout.strip().startswith(str(venv))  # the wheel's code, not this checkout's
    finally:
        proc.terminate()
        proc.wait(15)
    assert "serving wine@prod from " + here("/srv/mlops/store") in log.read_text()


# -- the training image, replayed -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def training(wine_registry: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`deploy docker` in a project whose data, entrypoint-free code and requirements sit inside it."""
    from tests.conftest import WINE_RED, write_project

    root = tmp_path_factory.mktemp("training")
    project = write_project(root / "wine", data=Path("data/red.csv"), params="{ n_estimators = 20 }")
    toml = project / "mlops.toml"  # 20 trees may score a little under v1's 100: let the gate pass them
    toml.write_text(toml.read_text().replace("gate_tolerance = 0.01", "gate_tolerance = 0.2"))
    (project / "data").mkdir()
    shutil.copy(WINE_RED, project / "data" / "red.csv")
    (project / "features.py").write_text("def ratio(x):\n    return x\n")
    (project / "notes.txt").write_text("not code: stays out\n")
    result = deploy(project, "--out", str(root / "docker"))
    return {"project": project, "out": root / "docker", "result": result, "store": wine_registry["store_dir"]}


def test_the_training_image_lints_clean_and_matches_the_server_image(training: dict[str, Any]) -> None:
    out = training["out"]
    train = out / "Dockerfile.train"
    lint = _run(_tool("hadolint"), "--no-color", str(train))
    assert lint.returncode == 0 and lint.stdout.strip() == "", lint.stdout + lint.stderr
    assert "hadolint ignore" not in train.read_text()
    build, run = stages(train)
    serve_build, _ = stages(out / "Dockerfile")
    # the same mlopsctl and the same pins as the server: the ARG, the wheel and constraints.txt
    args = [a for w, a in instructions(train) if w == "ARG"]
    assert args == [a for w, a in instructions(out / "Dockerfile") if w == "ARG"]
    assert "--constraint /tmp/build/constraints.txt" in one(build, "RUN") and ("COPY", "wheels/ /tmp/wheels/") in build
    assert ("COPY", "wheels/ /tmp/wheels/") in serve_build
    user = one(run, "USER")
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user) and one(run, "WORKDIR") == "/srv/project"
    assert json.loads(one(run, "CMD")) == ["mlopsctl", "retrain", "--if", "schedule"]
    assert not [w for w, _ in run if w == "ENTRYPOINT"]  # a task's command replaces the CMD whole
    assert one(run, "VOLUME") == "/tmp" and env_of(run)["HOME"] == "/tmp"
    # the project: mlops.toml, its .py files and its data; nothing else
    assert sorted(p.relative_to(out / "project").as_posix() for p in (out / "project").rglob("*") if p.is_file()) == [
        "data/red.csv",
        "features.py",
        "mlops.toml",
    ]
    assert training["result"]["training"]["project_files"] == ["data/red.csv", "features.py", "mlops.toml"]
    assert not [w for w in training["result"]["warnings"] if "[data]" in w]  # the data is inside the project


def test_the_training_image_command_retrains_and_exits_with_its_code(training: dict[str, Any], tmp_path: Path) -> None:
    """The run stage laid out in a folder (read-only, as the ECS task's root), its CMD run against a store:
    exit 0 and a new version; with broken data, exit 1 and production unchanged."""
    from mlopsctl import registry
    from mlopsctl.store import open_store

    out = training["out"]
    venv = install_wheel(out, tmp_path / "venv")
    _, run = stages(out / "Dockerfile.train")
    store_dir = tmp_path / "store"
    shutil.copytree(training["store"], store_dir)

    def replay(project_files: Path, name: str) -> subprocess.CompletedProcess[str]:
        root = tmp_path / name / "srv" / "project"
        shutil.copytree(project_files, root)
        for path in [root, *root.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)  # a read-only root file system
        line = json.loads(one(run, "CMD"))
        line[0] = str(venv / "bin" / "mlopsctl")
        env = {**os.environ, **env_of(run), "PYTHONPATH": str(venv), "HOME": str(tmp_path)}
        env |= {"PATH": os.environ["PATH"], "MLOPS_STORE": str(store_dir), "TMPDIR": str(tmp_path)}
        return subprocess.run(line, cwd=root, env=env, capture_output=True, text=True, timeout=300)

    store = open_store(str(store_dir))
    latest = registry.resolve(store, "wine", None)
    ok = replay(out / "project", "good")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert registry.resolve(store, "wine", None) == latest + 1  # retrained and published from the image's project

    broken = tmp_path / "broken"
    shutil.copytree(out / "project", broken)
    (broken / "data" / "red.csv").write_text("fixed acidity;quality\n")  # no rows to train on
    prod = registry.resolve(store, "wine", "prod")
    bad = replay(broken, "bad")
    assert bad.returncode == 1 and "error:" in bad.stderr, bad.stdout + bad.stderr
    assert registry.resolve(store, "wine", "prod") == prod


def test_data_outside_the_project_is_said_and_no_project_means_no_training_image(
    fetched: dict[str, Any], tmp_path: Path
) -> None:
    (warning,) = [w for w in fetched["result"]["warnings"] if "[data]" in w]
    assert "is outside the project: the training image does not hold it" in warning
    assert fetched["result"]["training"]["project_files"] == ["mlops.toml"]
    bare = deploy(tmp_path, "--model", "wine", "--store", str(fetched["store_dir"]), "--out", str(tmp_path / "d"))
    assert bare["training"] is None and not (tmp_path / "d" / "Dockerfile.train").exists()
    assert "project/" not in (tmp_path / "d" / ".dockerignore").read_text()


# -- compose and the monitoring files ------------------------------------------------------------------------


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each SOURCE:TARGET[:ro] volume (a source may be ${VAR:-default})."""
    out = []
    for v in service.get("volumes", []):
        src, target = v.removesuffix(":ro").rsplit(":", 1)
        out.append((src, target))
    return out


@pytest.mark.parametrize("kind", ["baked", "fetched"])
def test_compose_file_is_valid_and_its_parts_point_at_each_other(kind: str, request: pytest.FixtureRequest) -> None:
    d = request.getfixturevalue(kind)
    out: Path = d["out"]
    compose_file = out / "compose.yaml"
    check = _run(_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(compose_file))
    assert check.returncode == 0, check.stdout + check.stderr
    doc = yaml.safe_load(compose_file.read_text())
    services = doc["services"]
    assert set(services) == {"api", "prometheus", "alertmanager", "grafana"}
    for name, svc in services.items():
        for src, _ in _mounts(svc):
            if src.startswith("./"):
                assert (out / src).exists(), f"{name} mounts {src}, which is not in {out}"
            elif not src.startswith("${"):
                assert src in doc["volumes"], f"{name}: volume {src} is not declared"
        assert "healthcheck" in svc and svc["restart"] == "unless-stopped"
    api = services["api"]
    assert api["build"] == {"context": "."} and (out / "Dockerfile").is_file()
    assert api["ports"] == ["8080:8080"] and "/ready" in " ".join(api["healthcheck"]["test"])
    env = dict(e.split("=", 1) if "=" in e else (e, None) for e in api["environment"])
    for name in ("prometheus", "alertmanager", "grafana"):
        assert all(p.startswith("127.0.0.1:") for p in services[name]["ports"])  # UIs without login: loopback
    if kind == "baked":
        assert "MLOPS_STORE" not in env and "user" not in api
        assert sorted(t for _, t in _mounts(api)) == ["/srv/mlops/store/capture", "/srv/mlops/store/feedback"]
    else:
        assert env["MLOPS_STORE"] == "/srv/mlops/store"
        ((src, target),) = _mounts(api)
        assert target == "/srv/mlops/store" and src == f"${{MLOPS_STORE_DIR:-{d['store_dir']}}}"
        assert re.fullmatch(r"\$\{MLOPS_UID:-\d+\}:\$\{MLOPS_GID:-\d+\}", api["user"])

    # Prometheus scrapes the API service on its port and alerts through the Alertmanager service
    prom = services["prometheus"]
    assert ("./prometheus", "/etc/prometheus") in _mounts(prom)
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    pcfg = yaml.safe_load((out / "prometheus" / "prometheus.yml").read_text())
    (job,) = pcfg["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["api:8080"]}] and job["metrics_path"] == "/metrics"
    assert pcfg["alerting"]["alertmanagers"] == [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]
    assert "127.0.0.1:9093:9093" in services["alertmanager"]["ports"]
    assert (out / "prometheus" / pcfg["rule_files"][0]).is_file()
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in services["alertmanager"]["command"]
    assert ("./alertmanager", "/etc/alertmanager") in _mounts(services["alertmanager"])

    # Grafana: Prometheus as data source by its service name, the dashboards folder where the provider looks
    graf = services["grafana"]
    mounts = dict(_mounts(graf))
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    ds = yaml.safe_load((out / "grafana/provisioning/datasources/mlopsctl.yml").read_text())
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    prov = yaml.safe_load((out / "grafana/provisioning/dashboards/mlopsctl.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == mounts["./grafana/dashboards"]
    assert json.loads((out / "grafana/dashboards/mlopsctl.json").read_text())["uid"] == "mlopsctl-serving"
    genv = dict(e.split("=", 1) for e in graf["environment"])
    assert (
        genv["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
        and "GRAFANA_ADMIN_PASSWORD" in genv["GF_SECURITY_ADMIN_PASSWORD"]
    )
    assert graf["depends_on"] == {"prometheus": {"condition": "service_healthy"}}
    dotenv = out / ".env"
    assert re.search(r"^GRAFANA_ADMIN_PASSWORD=\S{20,}$", dotenv.read_text(), flags=re.M)
    assert dotenv.stat().st_mode & 0o077 == 0 and {".env", "wheels/", "store/"} <= set(
        (out / ".gitignore").read_text().split()
    )


@pytest.mark.parametrize("kind", ["baked", "fetched"])
def test_prometheus_and_alertmanager_files_pass_their_own_checkers(kind: str, request: pytest.FixtureRequest) -> None:
    out: Path = request.getfixturevalue(kind)["out"]
    config = _run(_tool("promtool"), "check", "config", str(out / "prometheus" / "prometheus.yml"))
    assert config.returncode == 0 and "1 rule files found" in config.stdout + config.stderr, config.stderr
    rules = _run(_tool("promtool"), "check", "rules", str(out / "prometheus" / "mlops-alerts.yml"))
    written = yaml.safe_load((out / "prometheus" / "mlops-alerts.yml").read_text())
    alerts = [r["alert"] for g in written["groups"] for r in g["rules"]]
    assert {"MlopsServerDown", "MlopsNoCapture"} <= set(alerts)  # absence is a signal (issue 17)
    found = f"SUCCESS: {len(alerts)} rules found"  # promtool read every rule the file has
    assert rules.returncode == 0 and found in rules.stdout + rules.stderr, rules.stdout + rules.stderr
    amtool = _run(_tool("amtool"), "check-config", str(out / "alertmanager" / "alertmanager.yml"))
    assert amtool.returncode == 0, amtool.stdout + amtool.stderr
    am = yaml.safe_load((out / "alertmanager" / "alertmanager.yml").read_text())
    assert am["route"]["receiver"] == am["receivers"][0]["name"] and set(am["receivers"][0]) == {"name"}


@pytest.mark.parametrize(("fmt", "key"), [("json", "webhook_configs"), ("slack", "slack_configs")])
def test_alertmanager_receiver_from_notify_settings(fmt: str, key: str, tmp_path: Path) -> None:
    url = "https://hooks.example.com/services/T000/B000/XXXX"
    text, has_url = alertmanager_config(NotifySection(webhook_url=url, webhook_format=fmt))  # type: ignore[arg-type]
    assert has_url and "keep this file out of version control" in text
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    check = _run(_tool("amtool"), "check-config", str(path))
    assert check.returncode == 0, check.stdout + check.stderr
    (receiver,) = yaml.safe_load(text)["receivers"]
    (conf,) = receiver[key]
    assert conf.get("url", conf.get("api_url")) == url and conf["send_resolved"] is True


# -- errors, overwrite, other stores --------------------------------------------------------------------------


def test_refuses_to_overwrite_without_force(fetched: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "d"
    first = deploy(fetched["project"], "--out", str(out))
    password = (out / ".env").read_text()
    (out / "Dockerfile").write_text("FROM scratch\n")
    refused = run_cli("deploy", "docker", "--out", str(out), cwd=fetched["project"], check=False)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "exists: pass --force to overwrite it" in refused.stderr and str(out) in refused.stderr
    assert (out / "Dockerfile").read_text() == "FROM scratch\n"  # nothing written
    again = deploy(fetched["project"], "--out", str(out), "--force")
    assert (out / "Dockerfile").read_text().startswith("# syntax=docker/dockerfile:1")
    assert (out / ".env").read_text() == password and again["kept"] == [str(out / ".env")]
    assert len(again["written"]) == len(first["written"]) - 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nope", "--store", "{store}"], "model not found: nope in store {store} (models there: wine)"),
        (["--alias", "gold", "--store", "{store}"], "alias not found: wine@gold in store {store} (its aliases: prod)"),
        (["--alias", "gold", "--bake"], "alias not found: wine@gold in store {store} (its aliases: prod)"),
        (["--alias", "Prod"], "--alias 'Prod': aliases are lower-case words such as prod, staging, canary"),
        (["--model", "../x"], "--model '../x': names use letters, digits"),
    ],
)
def test_errors_name_the_thing(wine_registry: dict[str, Any], tmp_path: Path, args: list[str], message: str) -> None:
    store = str(wine_registry["store_dir"])
    args = [a.replace("{store}", store) for a in args]
    proc = run_cli("deploy", "docker", "--out", str(tmp_path / "d"), *args, cwd=wine_registry["project"], check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert message.replace("{store}", store) in proc.stderr
    assert not (tmp_path / "d").exists()


def test_missing_alias_in_the_projects_store_is_a_warning(wine_registry: dict[str, Any], tmp_path: Path) -> None:
    """Without --store the service may well start before the first promotion: the files are written."""
    result = deploy(wine_registry["project"], "--out", str(tmp_path / "d"), "--alias", "staging")
    assert result["version"] is None and (tmp_path / "d" / "Dockerfile").is_file()
    (warning,) = [w for w in result["warnings"] if "wine@staging" in w]
    assert warning.startswith("alias not found: wine@staging") and "503 on /ready" in warning


def test_no_project_needs_a_model(tmp_path: Path) -> None:
    proc = run_cli("deploy", "docker", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "--model: no mlops.toml here" in proc.stderr


def test_out_that_is_a_file_is_refused(wine_registry: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "f").write_text("mine\n")
    proc = run_cli("deploy", "docker", "--out", str(tmp_path / "f"), cwd=wine_registry["project"], check=False)
    assert proc.returncode == 1 and f"--out {tmp_path / 'f'}: is a file, not a folder" in proc.stderr
    assert (tmp_path / "f").read_text() == "mine\n"


def test_s3_store_image_reads_s3_and_bakes_from_it(
    wine_registry: dict[str, Any], s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A store on S3 (moto on 127.0.0.1): the image defaults to it and compose passes AWS settings
    through; --bake copies the version out of the bucket."""
    from mlopsctl.store import open_store
    from mlopsctl.store.local import LocalStore

    s3_env(monkeypatch, tmp_path, MLOPS_S3_ENDPOINT_URL=s3_endpoint)
    uri = f"s3://{new_bucket(s3_endpoint)}/team"
    local, dest = LocalStore(str(wine_registry["store_dir"])), open_store(uri)
    for key in local.list("models/wine/"):
        dest.put(key, local.get(key))
    result = deploy(tmp_path, "--model", "wine", "--store", uri, "--out", str(tmp_path / "s3"))
    assert result["version"] == 1 and result["image_store"] == uri and not result["warnings"]
    _, run = stages(tmp_path / "s3" / "Dockerfile")
    assert env_of(run)["MLOPS_STORE"] == uri and "mlops.toml" not in (tmp_path / "s3" / "Dockerfile").read_text()
    api = yaml.safe_load((tmp_path / "s3" / "compose.yaml").read_text())["services"]["api"]
    assert f"MLOPS_STORE=${{MLOPS_STORE:-{uri}}}" in api["environment"]
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "MLOPS_S3_ENDPOINT_URL"} <= set(
        api["environment"]
    )
    assert "volumes" not in api and "user" not in api

    bake = deploy(tmp_path, "--model", "wine", "--store", uri, "--bake", "--out", str(tmp_path / "b"))
    assert bake["version"] == 1 and (tmp_path / "b/store/models/wine/versions/1/model.onnx").is_file()


# -- the command and its docs ---------------------------------------------------------------------------------


def test_help_and_docs_match() -> None:
    from typer.main import get_command
    from typer.testing import CliRunner

    from mlopsctl.cli.main import app

    result = CliRunner().invoke(app, ["deploy", "docker", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    group: Any = get_command(app)
    cmd = group.commands["deploy"].commands["docker"]
    text = DOCS.read_text()
    for param in cmd.params:
        for opt in param.opts:
            if opt.startswith("--"):
                assert opt in result.output and f"`{opt}" in text, opt
    for name in (
        "Dockerfile",
        "compose.yaml",
        "constraints.txt",
        ".dockerignore",
        "alertmanager.yml",
        "hadolint",
        "promtool",
        "amtool",
        "check-jsonschema",
        "/srv/mlops/store",
        "deploy/docker",
        "VOLUME /tmp",
        "Dockerfile.train",
        'CMD ["mlopsctl", "retrain", "--if", "schedule"]',
    ):
        assert name in text, name
    # what --bake means on ECS is said where --bake is explained
    bake = text[text.index("### Where the model comes from") :]
    assert "read-only root" in bake and "deploy.yml" in bake
