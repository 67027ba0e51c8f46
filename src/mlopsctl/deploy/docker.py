"""The service in containers: `mlopsctl deploy docker --out DIR` writes, for a person to read and review,

    DIR/Dockerfile              two stages: a virtualenv built from wheels, copied onto python:3.11-slim;
                                a non-root user, HEALTHCHECK on /ready, `mlopsctl serve` as the command
    DIR/Dockerfile.train        in a project: the same virtualenv and the project (mlops.toml, its .py files,
                                the data inside it), `mlopsctl retrain` as the command: exits with its code
    DIR/project/                what Dockerfile.train copies
    DIR/.dockerignore           only what the image needs goes to the build
    DIR/wheels/mlopsctl-*.whl   the mlopsctl running this command, packed as a wheel (wheel.py; not on PyPI yet)
    DIR/constraints.txt         the versions of its dependencies installed here (`pip --constraint`)
    DIR/mlops.toml              the project's configuration (serving, capture, guard settings), when there is one
    DIR/store/                  --bake: the alias's version and the alias, as a local store inside the image
    DIR/compose.yaml            the API, Prometheus, Alertmanager and Grafana
    DIR/.env                    GRAFANA_ADMIN_PASSWORD, random (kept when it exists)
    DIR/.gitignore              leaves .env, wheels/ and store/ out of git
    DIR/prometheus/             prometheus.yml (scrapes api:PORT) and the alert rules of `monitor rules`
    DIR/alertmanager/           alertmanager.yml: one route, one receiver ([monitoring.notify] webhook_url)
    DIR/grafana/                datasource and dashboard provisioning, the dashboard

Nothing here runs Docker: the files are checked with hadolint, promtool, amtool and the compose
schema (tests/test_deploy_docker.py), and the image's command is run outside a container there.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mlopsctl.config import AlertsSection, Config, NotifySection
from mlopsctl.deploy.files import check_model_ref, service_name, write_files
from mlopsctl.deploy.wheel import constraints_txt, mlopsctl_wheel
from mlopsctl.errors import MlopsError, NotFound
from mlopsctl.store.base import Store, open_store

PYTHON_IMAGE = "python:3.11-slim"
PROMETHEUS_IMAGE = "prom/prometheus:v2.55.1"
ALERTMANAGER_IMAGE = "prom/alertmanager:v0.27.0"
GRAFANA_IMAGE = "grafana/grafana:11.3.1"
APP_DIR = "/srv/mlops"  # the image's working folder: mlops.toml, and the store when baked or mounted
STORE_DIR = f"{APP_DIR}/store"
UID = 10001
BAKED_WRITES = ("capture", "feedback")  # what a server writes into a baked store: kept in volumes by compose
GITIGNORE = (
    "# written by `mlopsctl deploy docker`: the Grafana password stays on this machine, and what\n"
    "# the command makes again (the wheel, a baked store) stays out of git\n.env\nwheels/\nstore/\n"
)


def write_docker(
    out: Path,
    *,
    model: str,
    alias: str = "prod",
    store_uri: str,
    bake: bool = False,
    force: bool = False,
    strict: bool = False,
    cfg: Config | None = None,
) -> dict[str, Any]:
    """Write the files; what was written, the version the alias points to (None if unknown) and warnings.

    ``strict`` (a store named on purpose, or ``bake``): a model or alias missing from the store is an
    error; otherwise a warning, since the service may start before the first promotion.
    """
    check_model_ref(model, alias)
    strict = strict or bake
    port = cfg.deploy.container_port if cfg else 8080
    service = service_name(cfg, model)
    warnings: list[str] = []
    store = open_store(store_uri)
    version = _check_model(store, model, alias, strict, warnings)

    files: dict[str, bytes | str] = {}
    wheel_name, wheel = mlopsctl_wheel()
    files[f"wheels/{wheel_name}"] = wheel
    files["constraints.txt"] = constraints_txt()
    if cfg is not None:
        files["mlops.toml"] = (cfg.root / "mlops.toml").read_bytes()
    local_store = None if bake or store_uri.startswith("s3://") else Path(store_uri.removeprefix("file://")).absolute()
    image_store = STORE_DIR if bake or local_store else store_uri
    training = None
    if cfg is not None:
        project, training = training_files(cfg, warnings)
        files.update({f"project/{rel}": data for rel, data in project.items()})
        files["Dockerfile.train"] = dockerfile_train(
            model=model, wheel=wheel_name, image_store=STORE_DIR if local_store or bake else store_uri
        )
    files["Dockerfile"] = dockerfile(
        model=model,
        alias=alias,
        port=port,
        wheel=wheel_name,
        image_store=image_store,
        bake=bake,
        with_config=cfg is not None,
    )
    files[".dockerignore"] = dockerignore(bake=bake, with_config=cfg is not None, training=cfg is not None)
    files[".gitignore"] = GITIGNORE
    files["compose.yaml"] = compose(service=service, port=port, store_uri=store_uri, local_store=local_store, bake=bake)
    notify = cfg.monitoring.notify if cfg else NotifySection()
    am_text, has_url = alertmanager_config(notify)
    files["alertmanager/alertmanager.yml"] = am_text
    if has_url:
        warnings.append("alertmanager/alertmanager.yml holds the webhook URL: keep it out of version control")
    files.update(_monitoring_files(cfg.monitoring.alerts if cfg else AlertsSection(), model, port))

    out = Path(out)
    written = write_files(out, files, force=force, also=[out / "store"] if bake else [])
    for old in (out / "project").rglob("*") if (out / "project").is_dir() else []:
        if old.is_file() and old.relative_to(out).as_posix() not in files:
            old.unlink()  # an earlier run's project file that is gone now: not into the image
    for old in (out / "wheels").glob("mlopsctl-*.whl"):
        if old.name != wheel_name:
            old.unlink()  # an earlier version's wheel: only one goes into the image
    if bake:
        assert version is not None  # strict: a missing alias was an error
        shutil.rmtree(out / "store", ignore_errors=True)
        written += bake_store(store, model, alias, version, out / "store")
    env_file, kept = out / ".env", []
    if env_file.exists():
        kept.append(env_file)
    else:
        env_file.write_text(
            "# Read by `docker compose` in this folder; keep it out of version control.\n"
            f"GRAFANA_ADMIN_PASSWORD={secrets.token_urlsafe(18)}\n"
        )
        env_file.chmod(0o600)
        written.append(env_file)
    return {
        "out": str(out),
        "model": model,
        "alias": alias,
        "version": version,
        "baked": bake,
        "store": store_uri,
        "image_store": image_store,
        "image": f"{service}:latest",
        "training": training,
        "port": port,
        "written": [str(p) for p in written],
        "kept": [str(p) for p in kept],
        "warnings": warnings,
    }


def _check_model(store: Store, model: str, alias: str, strict: bool, warnings: list[str]) -> int | None:
    """The version ``model@alias`` points to; a missing one is an error when strict, else a warning."""
    from mlopsctl import registry

    try:
        names = registry.model_names(store)
        if model not in names:
            hint = f"models there: {', '.join(names)}" if names else "the store has no models yet"
            raise NotFound("model", f"{model} in store {store.uri}", hint)
        state = registry.get_alias(store, model, alias)
        if state is None:
            have = sorted(registry.aliases(store, model))
            hint = f"its aliases: {', '.join(have)}" if have else "no alias yet: `mlopsctl promote` a version first"
            raise NotFound("alias", f"{model}@{alias} in store {store.uri}", hint)
        return int(state["version"])
    except MlopsError as exc:
        if strict:
            raise
        warnings.append(f"{exc}; the service answers 503 on /ready until it is there")
        return None


def bake_store(store: Store, model: str, alias: str, version: int, dest: Path) -> list[Path]:
    """Copy one version (each file checked against its manifest) and the alias into a local store at ``dest``.

    The alias keeps no earlier versions (they are not copied): rollback happens by deploying another image.
    """
    from mlopsctl import registry
    from mlopsctl.store.local import LocalStore

    files = registry.read_files(store, model, version)
    prefix = f"models/{model}/versions/{version}/"
    target = LocalStore(dest)
    keys = []
    for name, data in files.items():
        target.put(prefix + name, data)
        keys.append(prefix + name)
    for extra in ("claim.json", "manifest.json"):
        try:
            target.put(prefix + extra, store.get(prefix + extra))
            keys.append(prefix + extra)
        except NotFound:
            pass  # claim.json is informational (manifest.json exists: read_files read it)
    state = registry.get_alias(store, model, alias) or {}
    doc = {**state, "version": version, "stack": [], "baked": True}
    alias_key = f"models/{model}/aliases/{alias}.json"
    target.put_json(alias_key, doc)
    keys.append(alias_key)
    registry.verify(target, model, version)
    return [dest / k for k in keys]


# -- the image ------------------------------------------------------------------------------------------


def _healthcheck(port: int) -> list[str]:
    # python:3.11-slim has no curl or wget: urllib raises on a 503 (or no answer), so the exit code is 1
    code = f"import urllib.request as u; u.urlopen('http://127.0.0.1:{port}/ready', timeout=4)"
    return ["python", "-c", code]


def dockerfile(
    *, model: str, alias: str, port: int, wheel: str, image_store: str, bake: bool, with_config: bool
) -> str:
    """The Dockerfile: build stage (a venv from the wheel), run stage (slim, non-root, health-checked)."""
    spec = f"/tmp/wheels/{wheel}[aws]"
    # the whole command line in CMD, so that a task definition's `command` (`mlopsctl serve ...`) replaces it
    cmd = ["mlopsctl", "serve", "--host", "0.0.0.0", "--port", str(port), "--model", f"{model}@{alias}"]
    if bake:
        source = (
            f"# The model is baked in: {STORE_DIR} holds {model}@{alias} (one version). The entrypoint sets\n"
            "# MLOPS_STORE to it over any the platform passes: nothing outside is read, the version never changes.\n"
            f"# Captures and feedback are written there too: mount volumes on {STORE_DIR}/capture and /feedback\n"
            "# (compose does). On a read-only root file system (ECS) they cannot be written: use a store there."
        )
    else:
        source = (
            "# The model is fetched from the store at start (MLOPS_STORE; s3://... needs AWS credentials, e.g. a task\n"
            f"# role) and followed: a promotion or rollback of {model}@{alias} reaches the service in seconds."
        )
    lines = [
        "# syntax=docker/dockerfile:1",
        f"# The prediction service for {model}@{alias}, written by `mlopsctl deploy docker` (docs/deploy-docker.md).",
        "#   build:  docker build -t IMAGE .          check:  hadolint Dockerfile",
        source,
        "",
        f"ARG PYTHON_IMAGE={PYTHON_IMAGE}",
        "",
        "# -- build: a virtualenv with mlopsctl and its dependencies, pinned by constraints.txt",
        "FROM ${PYTHON_IMAGE} AS build",
        "# The wheel of the mlopsctl that wrote this file. From an index instead:",
        "#   docker build --build-arg MLOPSCTL='mlopsctl[aws]==VERSION' .",
        f'ARG MLOPSCTL="{spec}"',
        "ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
        "COPY wheels/ /tmp/wheels/",
        "COPY constraints.txt /tmp/constraints.txt",
        'RUN python -m venv /opt/venv && /opt/venv/bin/pip install --constraint /tmp/constraints.txt "${MLOPSCTL}"',
        "",
        "# -- run: the virtualenv on a clean slim image, as an unprivileged user",
        "FROM ${PYTHON_IMAGE}",
        "ENV PATH=/opt/venv/bin:$PATH \\",
        "    PYTHONUNBUFFERED=1 \\",
        "    PYTHONDONTWRITEBYTECODE=1 \\",
        f"    MLOPS_STORE={image_store}",
        f"RUN groupadd --system --gid {UID} mlops \\",
        f" && useradd --system --no-log-init --uid {UID} --gid mlops --home-dir {APP_DIR} --shell /usr/sbin/nologin"
        " mlops \\",
        f" && mkdir -p {APP_DIR} && chown mlops:mlops {APP_DIR}",
        "COPY --from=build /opt/venv /opt/venv",
        f"WORKDIR {APP_DIR}",
    ]
    if with_config:
        lines.append(f"COPY --chown={UID}:{UID} mlops.toml {APP_DIR}/mlops.toml")
    if bake:
        lines.append(f"COPY --chown={UID}:{UID} store/ {STORE_DIR}/")
    lines += ["# mlops, by number: Kubernetes' runAsNonRoot and others can check it is not root", f"USER {UID}:{UID}"]
    if bake:
        # the folders the server writes into, made here so that volumes mounted on them belong to mlops
        lines.append("RUN mkdir -p " + " ".join(f"{STORE_DIR}/{d}" for d in BAKED_WRITES))
    lines += [
        "# a writable /tmp under a read-only root file system (docker run --read-only, ECS): the volume starts",
        "# as a copy of the image's /tmp (mode 1777), so the mlops user can write there",
        "VOLUME /tmp",
        f"EXPOSE {port}",
        "HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \\",
        f"  CMD {json.dumps(_healthcheck(port))}",
    ]
    if bake:
        lines.append(f"ENTRYPOINT {json.dumps(['env', 'MLOPS_STORE=' + STORE_DIR])}")
    lines += [f"CMD {json.dumps(cmd)}", ""]
    return "\n".join(lines)


def dockerignore(*, bake: bool, with_config: bool, training: bool = False) -> str:
    """.dockerignore: everything out, then back in what the Dockerfiles' COPY lines use."""
    keep = ["wheels/", "constraints.txt"] + (["mlops.toml"] if with_config else []) + (["store/"] if bake else [])
    keep += ["project/"] if training else []
    return "# Only these go to the build (the monitoring files, .env and the rest stay out).\n*\n" + "".join(
        f"!{k}\n" for k in keep
    )


# -- the training image ------------------------------------------------------------------------------------------

TRAIN_DIR = "/srv/project"  # the training image's working folder: the project
DATA_LIMIT = 512 * 1024 * 1024  # a data file larger than this is not copied into the image (a warning says so)


def training_files(cfg: Config, warnings: list[str]) -> tuple[dict[str, bytes], dict[str, Any]]:
    """What the training image holds of the project: mlops.toml, its top-level .py files (an entrypoint, the
    functions of [registry] trusted_types), requirements.txt, and the data file when it is inside the project.
    Returns the files (path in the project → bytes) and a summary for the command's result."""
    root = cfg.root.absolute()
    files: dict[str, bytes] = {"mlops.toml": (root / "mlops.toml").read_bytes()}
    for path in sorted(root.glob("*.py")) + sorted(root.glob("requirements.txt")):
        files[path.name] = path.read_bytes()
    data = cfg.data_path().absolute()
    if not data.is_relative_to(root) or Path(cfg.data.path).expanduser().is_absolute():
        warnings.append(
            f"[data] path {cfg.data.path!r} is outside the project: the training image does not hold it "
            "(make it a path inside the project, or give `retrain --data` a path the task can read)"
        )
    elif not data.is_file():
        warnings.append(f"[data] path {cfg.data.path!r} does not exist: the training image cannot hold it")
    elif data.stat().st_size > DATA_LIMIT:
        warnings.append(f"[data] path {cfg.data.path!r} is over {DATA_LIMIT >> 20} MB: not copied into the image")
    else:
        files[data.relative_to(root).as_posix()] = data.read_bytes()
    if cfg.training.entrypoint:
        module = cfg.training.entrypoint.split(":")[0]
        name = module if module.endswith(".py") else module.replace(".", "/") + ".py"
        if name not in files and (root / name).is_file():
            files[name] = (root / name).read_bytes()
    summary = {"dockerfile": "Dockerfile.train", "project_files": sorted(files), "command": TRAIN_COMMAND}
    return files, summary


TRAIN_COMMAND = ["mlopsctl", "retrain", "--if", "schedule"]


def dockerfile_train(*, model: str, wheel: str, image_store: str) -> str:
    """Dockerfile.train: the server's build stage, then the project and `mlopsctl retrain` as an unprivileged user."""
    spec = f"/tmp/wheels/{wheel}[aws]"
    lines = [
        "# syntax=docker/dockerfile:1",
        f"# Retraining of {model}, written by `mlopsctl deploy docker` (docs/deploy-docker.md): `mlopsctl retrain`",
        "# in the project, exiting with its code (0: rolled out, skipped or waiting for approval; 1: gated or failed).",
        "# The same mlopsctl and pinned versions as the server's image (wheels/, constraints.txt).",
        "#   build:  docker build -f Dockerfile.train -t IMAGE:train-TAG .     check:  hadolint Dockerfile.train",
        "#   run:    docker run --rm -e MLOPS_STORE=s3://BUCKET/PREFIX IMAGE:train-TAG",
        "#           (another trigger: ... IMAGE:train-TAG mlopsctl retrain --if drift)",
        "",
        f"ARG PYTHON_IMAGE={PYTHON_IMAGE}",
        "",
        "# -- build: the virtualenv of the server's image, and the project's requirements.txt if it has one",
        "FROM ${PYTHON_IMAGE} AS build",
        f'ARG MLOPSCTL="{spec}"',
        "ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
        "COPY wheels/ /tmp/wheels/",
        "# constraints.txt always, requirements.txt when the project has one (the pattern may match nothing)",
        "COPY constraints.txt project/requirements*.txt /tmp/build/",
        "RUN python -m venv /opt/venv \\",
        ' && /opt/venv/bin/pip install --constraint /tmp/build/constraints.txt "${MLOPSCTL}" \\',
        " && if [ -f /tmp/build/requirements.txt ]; then \\",
        "      /opt/venv/bin/pip install --constraint /tmp/build/constraints.txt -r /tmp/build/requirements.txt; fi",
        "",
        "# -- run: the project as an unprivileged user; the store comes from MLOPS_STORE",
        "FROM ${PYTHON_IMAGE}",
        "ENV PATH=/opt/venv/bin:$PATH \\",
        "    PYTHONUNBUFFERED=1 \\",
        "    PYTHONDONTWRITEBYTECODE=1 \\",
        "    HOME=/tmp \\",
        f"    MLOPS_STORE={image_store}",
        f"RUN groupadd --system --gid {UID} mlops \\",
        f" && useradd --system --no-log-init --uid {UID} --gid mlops --home-dir {TRAIN_DIR} --shell /usr/sbin/nologin"
        " mlops",
        "COPY --from=build /opt/venv /opt/venv",
        f"WORKDIR {TRAIN_DIR}",
        f"COPY --chown={UID}:{UID} project/ {TRAIN_DIR}/",
        f"USER {UID}:{UID}",
        "# training writes its scratch files to /tmp: writable under a read-only root file system (ECS)",
        "VOLUME /tmp",
        "# the whole command in CMD, so that a task's `command` (mlopsctl retrain --if drift) replaces it",
        f"CMD {json.dumps(TRAIN_COMMAND)}",
        "",
    ]
    return "\n".join(lines)


# -- compose and the monitoring stack -------------------------------------------------------------------


def compose(*, service: str, port: int, store_uri: str, local_store: Path | None, bake: bool) -> str:
    """compose.yaml: the API (its store as the image reads it: S3 with the shell's AWS settings, the local
    store mounted, or the baked one with volumes for what it records) and the monitoring services."""
    from mlopsctl.monitoring.alerts import render_yaml

    check = ["CMD", *_healthcheck(port)]
    env = ["MLOPS_ACTOR=compose/" + service]
    volumes: list[str] = []
    api: dict[str, Any] = {"build": {"context": "."}, "image": f"{service}:latest", "restart": "unless-stopped"}
    if bake:
        volumes = [f"{d}:{STORE_DIR}/{d}" for d in BAKED_WRITES]
    elif local_store is not None:
        env.append(f"MLOPS_STORE={STORE_DIR}")
        volumes = [f"${{MLOPS_STORE_DIR:-{local_store}}}:{STORE_DIR}"]
        uid = os.getuid() if hasattr(os, "getuid") and os.getuid() else UID
        gid = os.getgid() if hasattr(os, "getgid") and os.getgid() else UID
        # the server writes captures into the mounted folder: run as its owner
        api["user"] = f"${{MLOPS_UID:-{uid}}}:${{MLOPS_GID:-{gid}}}"
    else:
        env.append(f"MLOPS_STORE=${{MLOPS_STORE:-{store_uri}}}")
        # AWS credentials and region from the shell that runs compose (an S3-compatible endpoint too)
        env += [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "AWS_PROFILE",
            "MLOPS_S3_ENDPOINT_URL",
        ]
    api |= {
        "ports": [f"{port}:{port}"],
        "environment": env,
        "healthcheck": {"test": check, "interval": "15s", "timeout": "5s", "retries": 3, "start_period": "60s"},
        "stop_grace_period": "15s",
    }
    if volumes:
        api["volumes"] = volumes

    def wget(url: str) -> dict[str, Any]:
        return {"test": ["CMD", "wget", "-q", "-O", "/dev/null", url], "interval": "15s", "timeout": "5s", "retries": 5}

    services = {
        "api": api,
        "prometheus": {
            "image": PROMETHEUS_IMAGE,
            "restart": "unless-stopped",
            "command": [
                "--config.file=/etc/prometheus/prometheus.yml",
                "--storage.tsdb.path=/prometheus",
                "--storage.tsdb.retention.time=15d",
            ],
            "volumes": ["./prometheus:/etc/prometheus:ro", "prometheus-data:/prometheus"],
            "ports": ["127.0.0.1:9090:9090"],
            "depends_on": {"api": {"condition": "service_started"}, "alertmanager": {"condition": "service_started"}},
            "healthcheck": wget("http://127.0.0.1:9090/-/ready"),
        },
        "alertmanager": {
            "image": ALERTMANAGER_IMAGE,
            "restart": "unless-stopped",
            "command": ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"],
            "volumes": ["./alertmanager:/etc/alertmanager:ro", "alertmanager-data:/alertmanager"],
            "ports": ["127.0.0.1:9093:9093"],
            "healthcheck": wget("http://127.0.0.1:9093/-/ready"),
        },
        "grafana": {
            "image": GRAFANA_IMAGE,
            "restart": "unless-stopped",
            "environment": [
                "GF_SECURITY_ADMIN_PASSWORD=${GRAFANA_ADMIN_PASSWORD:?set GRAFANA_ADMIN_PASSWORD (see .env)}",
                "GF_AUTH_ANONYMOUS_ENABLED=true",
                "GF_AUTH_ANONYMOUS_ORG_ROLE=Viewer",
                "GF_USERS_ALLOW_SIGN_UP=false",
                "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH=/var/lib/grafana/dashboards/mlopsctl.json",
            ],
            "volumes": [
                "./grafana/provisioning:/etc/grafana/provisioning:ro",
                "./grafana/dashboards:/var/lib/grafana/dashboards:ro",
                "grafana-data:/var/lib/grafana",
            ],
            "ports": ["127.0.0.1:3000:3000"],
            "depends_on": {"prometheus": {"condition": "service_healthy"}},
            "healthcheck": wget("http://127.0.0.1:3000/api/health"),
        },
    }
    named = ["prometheus-data", "alertmanager-data", "grafana-data"] + (list(BAKED_WRITES) if bake else [])
    doc = {"name": service, "services": services, "volumes": {v: {} for v in named}}
    header = (
        "# The service and its monitoring, written by `mlopsctl deploy docker` (docs/deploy-docker.md).\n"
        "#   docker compose up --build -d    API :PORT, Grafana 127.0.0.1:3000, Prometheus :9090, Alertmanager :9093\n"
        "# Grafana: anonymous viewers; admin with GRAFANA_ADMIN_PASSWORD from .env."
    ).replace(":PORT", f":{port}")
    return render_yaml(doc, header)


def alertmanager_config(notify: NotifySection) -> tuple[str, bool]:
    """alertmanager.yml: one route to one receiver; (text, whether it holds a webhook URL).

    The URL is ``[monitoring.notify] webhook_url`` (or MLOPS_WEBHOOK_URL) when this runs, the one
    `mlopsctl monitor check` notifies: Slack's format gets a Slack receiver, JSON a webhook one (which
    receives Alertmanager's own JSON). Without one the receiver sends nothing; alerts show at :9093.
    """
    from mlopsctl.monitoring.alerts import render_yaml

    url = os.environ.get("MLOPS_WEBHOOK_URL") or notify.webhook_url
    receiver: dict[str, Any] = {"name": "mlopsctl"}
    if url and notify.webhook_format == "slack":
        receiver["slack_configs"] = [
            {
                "api_url": url,
                "send_resolved": True,
                "title": "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}",
                "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}",
            }
        ]
    elif url:
        receiver["webhook_configs"] = [{"url": url, "send_resolved": True}]
    doc = {
        "route": {
            "receiver": "mlopsctl",
            "group_by": ["alertname", "model"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
        },
        "receivers": [receiver],
    }
    header = "# Alertmanager configuration written by `mlopsctl deploy docker` (docs/deploy-docker.md).\n"
    if url:
        header += "# The receiver's URL is [monitoring.notify] webhook_url: keep this file out of version control."
    else:
        header += (
            "# No [monitoring.notify] webhook_url was set: the receiver sends nothing (alerts show on :9093).\n"
            "# To be told, give it a webhook_configs: [{url: https://..., send_resolved: true}] or a slack_configs."
        )
    return render_yaml(doc, header), bool(url)


def _monitoring_files(alerts: AlertsSection, model: str, port: int) -> dict[str, bytes]:
    """prometheus/, grafana/: the files of `monitor stack`, aimed at the compose services."""
    from mlopsctl.monitoring.stack import write_stack

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_stack(
            root,
            alerts,
            targets=[f"api:{port}"],
            model_names=[model],
            alertmanagers=["alertmanager:9093"],
            prometheus_url="http://prometheus:9090",
        )
        out = {}
        for path in sorted(root.rglob("*")):
            if path.is_file():
                rel = path.relative_to(root).as_posix()
                out[rel if rel.startswith("grafana/") else "prometheus/" + rel] = path.read_bytes()
    return out
