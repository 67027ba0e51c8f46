"""`mlopsctl deploy github`: the workflows pass GitHub's schema, hang together (triggers, permissions, step
outputs, the call from train.yml to deploy.yml) and every mlopsctl command line in them parses against the
CLI itself. Nothing here runs GitHub Actions: what the runners do is not simulated."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.main import get_command
from typer.testing import CliRunner

from mlopsctl.cli.main import app
from mlopsctl.deploy.github import ACTIONS, REPOSITORY_VARIABLES
from tests.conftest import WINE_RED, run_cli, write_project

DOCS = Path(__file__).resolve().parents[1] / "docs" / "deploy-github.md"
OPTIONAL_VARIABLES = {"MLOPSCTL_SPEC", "ECS_CONTAINER", "TF_IMAGE_TAG"}
ACTION_OUTPUTS = {ACTIONS["ecs-render"]: {"task-definition"}}


def _checker() -> str:
    beside = Path(sys.executable).parent / "check-jsonschema"
    path = str(beside) if beside.exists() else shutil.which("check-jsonschema")
    if path is None:
        pytest.skip("check-jsonschema is not installed (the dev extra has it)")
    return path


def _on(doc: dict[Any, Any]) -> dict[str, Any]:
    """The triggers: YAML 1.1 reads the key `on` as True."""
    on = doc.get("on", doc.get(True))
    return dict(on)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A git repository holding the wine project in ml/wine (data committed beside it, its Terraform in
    ml/wine/deploy/aws), workflows written."""
    root = tmp_path_factory.mktemp("repo")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    project = write_project(root / "ml" / "wine", data=Path("data/winequality-red.csv"))
    (project / "data").mkdir()
    # the workflows only name the file: a small one of the same shape works without ../shared
    (project / "data" / "winequality-red.csv").write_text("alcohol;pH;quality\n9.4;3.51;5\n9.8;3.2;6\n")
    run_cli("deploy", "aws", cwd=project)
    result = json.loads(run_cli("deploy", "github", "--json", cwd=project).stdout)
    wf = root / ".github" / "workflows"
    docs = {p.stem: yaml.safe_load(p.read_text()) for p in sorted(wf.glob("*.yml"))}
    return {"root": root, "project": project, "result": result, "dir": wf, "docs": docs}


def test_writes_four_workflows_at_the_repository_root(repo: dict[str, Any]) -> None:
    result = repo["result"]
    assert sorted(repo["docs"]) == ["ci", "deploy", "plan", "train"]
    assert result["written"] == [str(repo["dir"] / n) for n in ("ci.yml", "plan.yml", "train.yml", "deploy.yml")]
    assert result["working_directory"] == "ml/wine" and result["warnings"] == []
    assert result["terraform"] == "ml/wine/deploy/aws"
    assert result["repository_variables"] == list(REPOSITORY_VARIABLES)
    for name, doc in repo["docs"].items():
        folder = "ml/wine/deploy/aws" if name == "plan" else "ml/wine"  # plan.yml runs in the Terraform
        assert doc["defaults"] == {"run": {"shell": "bash", "working-directory": folder}}


def test_workflows_pass_githubs_schema(repo: dict[str, Any]) -> None:
    files = sorted(str(p) for p in repo["dir"].glob("*.yml"))
    check = subprocess.run(
        [_checker(), "--builtin-schema", "vendor.github-workflows", *files], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_triggers_and_permissions(repo: dict[str, Any]) -> None:
    ci, train, deploy = (repo["docs"][k] for k in ("ci", "train", "deploy"))
    assert set(_on(ci)) == {"push", "pull_request"} and _on(ci)["push"] is None  # every branch
    plan = repo["docs"]["plan"]
    assert _on(plan) == {"pull_request": {"paths": ["ml/wine/deploy/aws/**", ".github/workflows/plan.yml"]}}
    assert plan["permissions"] == {"contents": "read", "id-token": "write", "pull-requests": "write"}
    assert ci["permissions"] == {"contents": "read"}  # no cloud from CI, so none from a fork's pull request
    assert _on(train)["push"] == {"branches": ["main"]} and "workflow_dispatch" in _on(train)
    assert _on(train)["workflow_dispatch"]["inputs"]["alias"]["default"] == "staging"
    for doc in (train, deploy):
        assert doc["permissions"] == {"contents": "read", "id-token": "write"}
        assert doc["concurrency"]["cancel-in-progress"] is False  # never cut a training or a rollout short
    on = _on(deploy)
    assert set(on) == {"workflow_dispatch", "repository_dispatch", "workflow_call"}
    assert on["repository_dispatch"] == {"types": ["mlops-promoted"]}
    # no bake input: the ECS task's root file system is read-only, a baked image could not record captures
    assert set(on["workflow_dispatch"]["inputs"]) == set(on["workflow_call"]["inputs"]) == {"model", "alias"}
    assert on["workflow_dispatch"]["inputs"]["model"]["default"] == "wine"
    assert on["workflow_call"]["inputs"]["alias"]["default"] == "prod"  # [serving] alias

    # train.yml calls deploy.yml when the alias the service follows moved, with inputs deploy.yml declares
    call = train["jobs"]["deploy"]
    assert call["uses"] == "./.github/workflows/deploy.yml" and call["needs"] == "train"
    assert call["permissions"] == {"contents": "read", "id-token": "write"}
    assert set(call["with"]) <= set(on["workflow_call"]["inputs"])
    assert "needs.train.outputs.alias == 'prod'" in call["if"] and "needs.train.outputs.moved == 'true'" in call["if"]
    outputs = train["jobs"]["train"]["outputs"]
    for ref in re.findall(r"needs\.train\.outputs\.([\w-]+)", json.dumps(call)):
        assert ref in outputs


def _steps(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, step) for name, job in doc["jobs"].items() for step in job.get("steps", [])]


def test_aws_through_oidc_and_repository_variables(repo: dict[str, Any]) -> None:
    for name in ("train", "deploy", "plan"):
        doc = repo["docs"][name]
        (aws,) = [s for _, s in _steps(doc) if s.get("uses") == ACTIONS["aws-credentials"]]
        role = "AWS_PLAN_ROLE_ARN" if name == "plan" else "AWS_ROLE_ARN"  # pull requests: the read-only role
        assert aws["with"] == {"role-to-assume": f"${{{{ vars.{role} }}}}", "aws-region": "${{ vars.AWS_REGION }}"}
        if name != "plan":
            assert doc["env"]["MLOPS_STORE"] == "${{ vars.MLOPS_STORE }}"
    text = "".join(p.read_text() for p in repo["dir"].glob("*.yml"))
    used = set(re.findall(r"vars\.([A-Z_]+)", text))
    assert set(REPOSITORY_VARIABLES) <= used and used <= set(REPOSITORY_VARIABLES) | OPTIONAL_VARIABLES
    assert "secrets." not in text and "AWS_SECRET_ACCESS_KEY" not in text  # no stored keys
    deploy = repo["docs"]["deploy"]
    uses = [s.get("uses") for _, s in _steps(deploy)]
    assert ACTIONS["ecr-login"] in uses and ACTIONS["ecs-render"] in uses and ACTIONS["ecs-deploy"] in uses
    (roll,) = [s for _, s in _steps(deploy) if s.get("uses") == ACTIONS["ecs-deploy"]]
    assert roll["with"]["cluster"] == "${{ vars.ECS_CLUSTER }}" and roll["with"]["service"] == "${{ vars.ECS_SERVICE }}"
    assert roll["with"]["wait-for-service-stability"] is True
    build = next(s["run"] for _, s in _steps(deploy) if s.get("id") == "image")
    assert 'docker build --tag "$image" "$RUNNER_TEMP/image"' in build and 'docker push "$image"' in build
    assert "$GITHUB_RUN_ID" in build  # a new tag each time: ECR repositories with immutable tags accept it


def test_actions_pinned_to_major_versions_and_step_outputs_exist(repo: dict[str, Any]) -> None:
    for name, doc in repo["docs"].items():
        for job_name, job in doc["jobs"].items():
            if "uses" in job:
                assert job["uses"].startswith("./.github/workflows/")
                continue
            assert job["timeout-minutes"] <= 60 and job["runs-on"] == "ubuntu-latest"
            seen: dict[str, dict[str, Any]] = {}
            for step in job["steps"]:
                if "uses" in step:
                    assert re.fullmatch(r"[\w-]+/[\w-]+@v\d+", step["uses"]), step["uses"]
                for sid, out in re.findall(r"steps\.([\w-]+)\.outputs\.([\w-]+)", json.dumps(step)):
                    assert sid in seen, f"{name}/{job_name}: step {sid} is not before {step.get('name')}"
                    earlier = seen[sid]
                    if "run" in earlier:
                        assert f'echo "{out}=' in earlier["run"], f"{name}: step {sid} does not write {out}"
                    else:
                        assert out in ACTION_OUTPUTS[earlier["uses"]]
                if "id" in step:
                    seen[step["id"]] = step
            for out in job.get("outputs", {}).values():
                sid = re.search(r"steps\.([\w-]+)\.", out)
                assert sid and sid.group(1) in seen


# -- every mlopsctl command line is one the CLI accepts ------------------------------------------------------


def _command_lines(run: str) -> list[list[str]]:
    """The mlopsctl invocations in a shell script, as argument lists (a bash array of flags stands for them)."""
    script = run.replace("\\\n", " ")
    found = []
    for line in script.splitlines():
        if line.lstrip().startswith("#"):
            continue  # a comment may name a command; it runs none
        for m in re.finditer(r"(?:^|[\s;&|(])mlopsctl\s(.*)", line):
            tokens = []
            for tok in shlex.split(m.group(1)):
                if tok in (">", "|", "&&", "||", ";", ")") or tok.startswith((">", "2>")):
                    break
                tokens.append(tok)
            found.append(tokens)
    return found


def _is_group(cmd: Any) -> bool:
    return hasattr(cmd, "commands")  # typer carries its own click: no isinstance against click's classes


def _parse(tokens: list[str]) -> tuple[list[str], Any]:
    """Walk the CLI as click would: global options, group names, then the command's own options and
    arguments, each checked against what the command declares."""
    cmd: Any = get_command(app)
    path: list[str] = []
    leaf_args: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if _is_group(cmd) and not tok.startswith("-"):
            assert tok in cmd.commands, f"`mlopsctl {' '.join([*path, tok])}` is not a command"
            cmd = cmd.commands[tok]
            path.append(tok)
            i += 1
            continue
        if tok.startswith("-"):
            params = [p for p in cmd.params if tok in p.opts or tok in p.secondary_opts]
            assert params, f"{tok} is not an option of `mlopsctl {' '.join(path)}`"
            p = params[0]
            takes_value = not (p.param_type_name == "option" and (p.is_flag or p.count))
            if not _is_group(cmd):
                leaf_args += tokens[i : i + 1 + takes_value]
            i += 1 + takes_value
            continue
        leaf_args.append(tok)
        i += 1
    assert not _is_group(cmd), f"`mlopsctl {' '.join(path)}` needs a subcommand"
    cmd.make_context(path[-1], leaf_args)  # arguments and option values: what click itself would accept
    return path, cmd


def test_every_mlopsctl_command_line_is_real(repo: dict[str, Any]) -> None:
    lines = []
    for name, doc in repo["docs"].items():
        for _, step in _steps(doc):
            lines += [(name, tokens) for tokens in _command_lines(step.get("run", ""))]
    used = set()
    for name, tokens in lines:
        path, _ = _parse(tokens)
        used.add((name, " ".join(path)))
        help_ = CliRunner().invoke(app, [*path, "--help"])
        assert help_.exit_code == 0, (name, tokens, help_.output)
    assert used == {
        ("ci", "data validate"),
        ("ci", "train"),
        ("train", "data validate"),
        ("train", "train"),
        ("train", "publish"),
        ("train", "promote"),
        ("deploy", "deploy docker"),
        ("deploy", "smoke"),
        ("deploy", "models show"),
        ("deploy", "rollback"),
    }
    assert not [t for name, t in lines if name == "deploy" and "--bake" in t]  # the image follows the S3 store
    # the data path the workflows validate is the project's, relative to the working directory
    assert ["data", "validate", "data/winequality-red.csv", "--against", "none"] in [t for _, t in lines]


def test_the_parser_catches_what_click_would_refuse() -> None:
    with pytest.raises(AssertionError, match="--alais is not an option"):
        _parse(["promote", "wine", "1", "--alais", "prod"])
    with pytest.raises(AssertionError, match="is not a command"):
        _parse(["deploy", "kubernetes"])
    with pytest.raises(Exception, match="Missing parameter: version"):
        _parse(["promote", "wine"])


# -- the shell steps that need no cloud, run with bash as the runners run them ---------------------------------


def _bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A `run` script as GitHub runs it (`bash --noprofile --norc -eo pipefail`), with only ``env`` and PATH."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _step(doc: dict[str, Any], name: str) -> dict[str, Any]:
    (step,) = [s for _, s in _steps(doc) if s.get("name") == name]
    return step


def test_the_settings_check_names_a_missing_variable_and_refuses_bad_names(repo: dict[str, Any]) -> None:
    deploy, train = repo["docs"]["deploy"], repo["docs"]["train"]
    check = _step(deploy, "Check the settings")["run"]
    good = {"MLOPS_STORE": "s3://team/wine", "ECR_REPOSITORY": "1.dkr.ecr.us-east-1.amazonaws.com/wine"}
    good |= {"ECS_CLUSTER": "wine", "ECS_SERVICE": "wine", "MODEL": "wine", "ALIAS": "prod"}
    good |= {"SERVICE_URL": "http://wine-123.us-east-1.elb.amazonaws.com"}
    assert set(good) - {"MLOPS_STORE"} <= set(deploy["jobs"]["deploy"]["env"])  # what the job sets
    ok = _bash(check, good)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for change, message in [
        ({"ECS_CLUSTER": ""}, "::error::set the repository variable ECS_CLUSTER"),
        ({"MODEL": "../x"}, "::error::not a model name: ../x"),
        ({"MODEL": "wine$(id)"}, "::error::not a model name: wine$(id)"),
        ({"ALIAS": "Prod"}, "::error::not an alias: Prod"),
    ]:
        proc = _bash(check, {**good, **change})
        assert proc.returncode == 1 and message in proc.stdout, (change, proc.stdout, proc.stderr)
    missing = _bash(_step(train, "Check the settings")["run"], {"MLOPS_STORE": ""})
    assert missing.returncode == 1 and "::error::set the repository variable MLOPS_STORE" in missing.stdout


def test_the_task_runs_the_model_and_alias_deployed(repo: dict[str, Any], tmp_path: Path) -> None:
    """The task definition's command (Terraform's, `--model model_name@model_alias`) overrides the image's
    CMD: the step before the render points its --model at what the run deploys. Run on the container
    definition `deploy aws` writes, it gives the command the image of `deploy docker` has for that model
    and alias, one the CLI takes; other containers, and one without a command, are left alone."""
    from tests.test_deploy_aws import Tf, container

    run_cli("deploy", "aws", "--out", str(tmp_path / "tf"), cwd=repo["project"])
    tf = Tf(tmp_path / "tf")
    server = container(tf)
    assert server["name"] == "${local.container_name}" and tf.locals["container_name"] == "server"
    server["name"] = "server"
    defaults = {name: str(v["default"]) for name, v in tf.variables.items() if "default" in v}
    var = re.compile(r"\$\{(?:tostring\()?var\.(\w+)\)?\}")
    terraform_command = [var.sub(lambda m: defaults[m.group(1)], a) for a in server["command"]]
    assert terraform_command[-2:] == ["--model", "wine@prod"]
    sidecar = {"name": "sidecar", "command": ["other", "--model", "keep@me"]}
    task = {
        "family": "wine",
        "containerDefinitions": [{**server, "command": terraform_command}, sidecar, {"name": "bare"}],
    }
    td = tmp_path / "task-definition.json"
    td.write_text(json.dumps(task))

    step = next(s for _, s in _steps(repo["docs"]["deploy"]) if s.get("id") == "command")
    assert step["env"] == {"CONTAINER": "${{ steps.current.outputs.container }}"}
    env = {"RUNNER_TEMP": str(tmp_path), "GITHUB_OUTPUT": str(tmp_path / "out"), "MODEL": "wine", "ALIAS": "staging"}
    proc = _bash(step["run"], {**env, "CONTAINER": "server"})
    assert proc.returncode == 0, proc.stderr
    served, side, bare = json.loads(td.read_text())["containerDefinitions"]
    assert served["command"] == [*terraform_command[:-1], "wine@staging"]
    assert {k: v for k, v in served.items() if k != "command"} == {k: v for k, v in server.items() if k != "command"}
    assert side == sidecar and bare == {"name": "bare"}
    assert (tmp_path / "out").read_text() == f"command={json.dumps(served['command'], separators=(',', ':'))}\n"
    path, _ = _parse(served["command"][1:])
    assert served["command"][0] == "mlopsctl" and path == ["serve"]

    # the image the run builds says the same in its CMD (the same port: [deploy] container_port for both)
    image = tmp_path / "image"
    run_cli("deploy", "docker", "--out", str(image), "--model", "wine", "--alias", "staging", cwd=repo["project"])
    (cmd,) = [line[4:] for line in (image / "Dockerfile").read_text().splitlines() if line.startswith("CMD [")]
    assert json.loads(cmd) == served["command"]

    # a container without a command runs the image's CMD, which names MODEL@ALIAS already
    proc = _bash(step["run"], {**env, "CONTAINER": "bare"})
    assert proc.returncode == 0 and json.loads(td.read_text())["containerDefinitions"][2] == {"name": "bare"}
    assert (tmp_path / "out").read_text().endswith('command="the image CMD"\n')


# -- pull requests: fmt, validate, plan, posted ------------------------------------------------------------------


def _stub(folder: Path, name: str, script: str) -> Path:
    """An executable ``name`` in ``folder`` that logs its arguments to ``folder/name.log`` and runs ``script``."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(f'#!/bin/bash\necho "$*" >> "{folder / (name + ".log")}"\n{script}\n')
    path.chmod(0o755)
    return path


def test_the_plan_workflow_formats_plans_and_posts(repo: dict[str, Any], tmp_path: Path) -> None:
    """plan.yml's steps in order; its fmt step and its posting run here with bash (terraform for real, a
    stand-in for gh); init, validate and plan need AWS and are only read."""
    plan = repo["docs"]["plan"]
    steps = [s.get("name") or s.get("uses") for _, s in _steps(plan)]
    assert steps == [
        ACTIONS["checkout"], ACTIONS["setup-terraform"], "Check the settings", "terraform fmt -check",
        "AWS credentials (OIDC, read-only, no stored keys)", "terraform init", "terraform validate", "terraform plan",
        "Post the plan on the pull request", "Fail when fmt, validate or plan failed",
    ]  # fmt: skip
    run = {s.get("name"): s for _, s in _steps(plan)}
    assert "-detailed-exitcode" in run["terraform plan"]["run"] and "-lock=false" in run["terraform plan"]["run"]
    tf = repo["project"] / "deploy" / "aws"
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not on PATH")
    fmt = subprocess.run(["bash", "-eo", "pipefail", "-c", run["terraform fmt -check"]["run"]], cwd=tf)
    assert fmt.returncode == 0  # what `deploy aws` wrote is formatted
    copy = tmp_path / "tf"
    shutil.copytree(tf, copy)
    (copy / "main.tf").write_text((copy / "main.tf").read_text().replace("  region = var.region", "region=var.region"))
    unformatted = subprocess.run(["bash", "-c", run["terraform fmt -check"]["run"]], cwd=copy, capture_output=True)
    assert unformatted.returncode != 0

    # posting: the plan in a comment (the last one edited, else a new one) and in the run's summary
    bin_dir = tmp_path / "bin"
    _stub(bin_dir, "gh", '[[ "$*" == *--edit-last* ]] && [ -n "$NO_EARLIER" ] && exit 1; exit 0')
    (tmp_path / "plan.txt").write_text("Plan: 3 to add, 1 to change, 0 to destroy.\n")
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}", "RUNNER_TEMP": str(tmp_path), "PR": "7",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"), "FMT": "success", "VALIDATE": "success", "EXITCODE": "2",
    }  # fmt: skip
    post = run["Post the plan on the pull request"]
    assert post["env"]["GH_TOKEN"] == "${{ github.token }}" and post["if"].startswith("always()")
    assert _bash(post["run"], env).returncode == 0
    comment = (tmp_path / "comment.md").read_text()
    assert "### Terraform plan of `ml/wine/deploy/aws`" in comment and "plan: changes (below)" in comment
    assert "Plan: 3 to add, 1 to change, 0 to destroy." in comment and comment in (tmp_path / "summary.md").read_text()
    assert (bin_dir / "gh.log").read_text() == f"pr comment 7 --edit-last --body-file {tmp_path}/comment.md\n"
    assert _bash(post["run"], {**env, "NO_EARLIER": "1"}).returncode == 0
    assert (bin_dir / "gh.log").read_text().splitlines()[-1] == f"pr comment 7 --body-file {tmp_path}/comment.md"
    # the job fails when fmt, validate or the plan did (exit code 2 is "changes", not a failure)
    verdict = run["Fail when fmt, validate or plan failed"]["run"]
    for fmt_, validate, code, ok in [
        ("success", "success", "0", True), ("success", "success", "2", True), ("failure", "success", "0", False),
        ("success", "failure", "0", False), ("success", "success", "1", False),
    ]:  # fmt: skip
        proc = _bash(verdict, {"FMT": fmt_, "VALIDATE": validate, "EXITCODE": code})
        assert (proc.returncode == 0) is ok, (fmt_, validate, code, proc.stdout)


# -- deploy: smoke tests against the live URL, rollback when they fail --------------------------------------


@pytest.mark.shared_data
def test_smoke_tests_gate_the_deployment_and_a_failure_rolls_back(
    repo: dict[str, Any], wine_store_copy: Path, start_server: Any, tmp_path: Path
) -> None:
    """The smoke step runs `mlopsctl smoke` against the service: a real server passes; a broken one fails it,
    and the rollback step moves the alias back (only when it still points at what this run deployed) and the
    service back to the task definition it ran before (aws is a stand-in here; mlopsctl and the store are real)."""
    from mlopsctl import registry
    from mlopsctl.store import open_store
    from tests.test_smoke import _Broken

    deploy = repo["docs"]["deploy"]
    run = {s.get("name"): s for _, s in _steps(deploy)}
    names = list(run)
    assert names.index("Smoke tests against the live service") == names.index("Roll it out on ECS") + 1
    rollback = run["Roll back when the smoke tests fail"]
    assert rollback["if"] == "failure() && steps.smoke.outcome == 'failure'"
    assert rollback["env"] == {
        "VERSION": "${{ steps.files.outputs.version }}",
        "PREVIOUS": "${{ steps.current.outputs.arn }}",
    }

    store = open_store(str(wine_store_copy))
    registry.promote(store, "wine", 2, "prod", reason="this run's version", force=True)  # what the run deployed
    bin_dir = tmp_path / "bin"
    _stub(bin_dir, "aws", "exit 0")
    env = {
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}", "HOME": str(tmp_path),
        "MLOPS_STORE": str(wine_store_copy), "MODEL": "wine", "ALIAS": "prod", "ECS_CLUSTER": "wine",
        "ECS_SERVICE": "wine", "GITHUB_RUN_ID": "42", "PREVIOUS": "arn:aws:ecs:us-east-1:1:task-definition/wine:6",
    }  # fmt: skip
    server = start_server(["--store", str(wine_store_copy), "serve", "--model", "wine@prod"])
    smoke = _bash(run["Smoke tests against the live service"]["run"], {**env, "SERVICE_URL": server.url})
    assert smoke.returncode == 0 and "predict wine" in smoke.stdout, smoke.stderr

    from http.server import ThreadingHTTPServer

    broken = ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    broken.calls = 0  # type: ignore[attr-defined]
    threading.Thread(target=broken.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{broken.server_address[1]}"
        failed = _bash(run["Smoke tests against the live service"]["run"], {**env, "SERVICE_URL": url})
    finally:
        broken.shutdown()
    assert (
        failed.returncode == 1 and "error: smoke predict wine: POST /models/wine/predict answered 500" in failed.stderr
    )

    # the alias moved elsewhere since: left alone, the service still goes back
    other = _bash(rollback["run"], {**env, "VERSION": "1"})
    assert other.returncode == 0 and "::warning::wine@prod is v2, not the v1 this run deployed" in other.stdout
    assert registry.resolve(store, "wine", "prod") == 2
    back = _bash(rollback["run"], {**env, "VERSION": "2"})
    assert back.returncode == 0, back.stderr
    assert registry.resolve(store, "wine", "prod") == 1  # the version before this run's
    (event,) = [e for e in registry.events(store, "wine", limit=1)]
    assert "smoke tests failed: deploy run 42" in str(event)
    calls = (bin_dir / "aws.log").read_text().splitlines()
    update = f"ecs update-service --cluster wine --service wine --task-definition {env['PREVIOUS']}"
    assert calls == [update, "ecs wait services-stable --cluster wine --services wine"] * 2


# -- options, errors and other layouts -------------------------------------------------------------------------


def test_refuses_to_overwrite_without_force(repo: dict[str, Any]) -> None:
    target = repo["dir"] / "train.yml"
    before = target.read_text()
    target.write_text("# mine\n")
    refused = run_cli("deploy", "github", cwd=repo["project"], check=False)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert f"{repo['dir'] / 'ci.yml'} exists: pass --force to overwrite it (and 3 more)" in refused.stderr
    assert target.read_text() == "# mine\n"
    run_cli("deploy", "github", "--force", cwd=repo["project"])
    assert target.read_text() == before


def test_outside_git_with_s3_store_and_data_elsewhere(tmp_path: Path) -> None:
    """No repository: the project is the root; the data path is absolute: a warning; an S3 store in
    mlops.toml is the fallback when the variable is not set; a YAML-looking model name stays a string."""
    project = write_project(tmp_path / "yes", name="yes", data=WINE_RED)
    toml = project / "mlops.toml"
    toml.write_text(re.sub(r'uri = ".*"', 'uri = "s3://team/models"', toml.read_text()))
    result = json.loads(run_cli("deploy", "github", "--json", cwd=project).stdout)
    assert result["out"] == str(project / ".github" / "workflows") and result["working_directory"] == "."
    assert any("not in a git repository" in w for w in result["warnings"])
    assert any(f"path '{WINE_RED}' is outside the repository" in w for w in result["warnings"])
    deploy = yaml.safe_load((project / ".github/workflows/deploy.yml").read_text())
    assert deploy["defaults"] == {"run": {"shell": "bash"}}
    assert deploy["env"]["MLOPS_STORE"] == "${{ vars.MLOPS_STORE || 's3://team/models' }}"
    assert _on(deploy)["workflow_dispatch"]["inputs"]["model"]["default"] == "yes"


def test_out_outside_the_project_repository_is_refused(repo: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "other" / ".github" / "workflows"
    proc = run_cli("deploy", "github", "--out", str(out), cwd=repo["project"], check=False)
    assert proc.returncode == 1 and "is not inside the repository" in proc.stderr and not out.exists()


def test_needs_a_project(tmp_path: Path) -> None:
    proc = run_cli("deploy", "github", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "no project here or above" in proc.stderr


def test_help_and_docs_match() -> None:
    result = CliRunner().invoke(app, ["deploy", "github", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    cmd: Any = get_command(app)
    text = DOCS.read_text()
    for param in cmd.commands["deploy"].commands["github"].params:
        for opt in param.opts:
            if opt.startswith("--"):
                assert opt in result.output and f"`{opt}" in text, opt
    for name in (*REPOSITORY_VARIABLES, *OPTIONAL_VARIABLES, "ci.yml", "train.yml", "deploy.yml", "mlops-promoted"):
        assert name in text, name
    for action in ACTIONS.values():
        assert action in text, action
