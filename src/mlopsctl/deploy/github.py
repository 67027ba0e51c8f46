"""GitHub Actions workflows for a project: `mlopsctl deploy github` writes, into .github/workflows/,

    ci.yml      every push and pull request: validate the data, the project's lint and tests (when it has
                them), one training into a throwaway store. No cloud access.
    train.yml   every push to main: validate the data against the store's latest snapshot, train, publish,
                promote to staging through the evaluation gate; then deploy.yml when the alias the service
                follows moved (a manual run can name it).
    deploy.yml  on demand, on a `mlops-promoted` repository dispatch, or called by train.yml: write the image's
                files with `mlopsctl deploy docker`, build, push to ECR, roll the new image out on ECS.

AWS is reached with GitHub's OIDC token (no keys stored in GitHub), through repository variables that the
Terraform of `mlopsctl deploy aws` outputs: AWS_REGION, AWS_ROLE_ARN, ECR_REPOSITORY, ECS_CLUSTER,
ECS_SERVICE, MLOPS_STORE. The workflows are checked against GitHub's schema, and every mlopsctl command
line in them against the CLI itself, by tests/test_deploy_github.py.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from mlopsctl import __version__
from mlopsctl.config import Config
from mlopsctl.errors import ValidationError

GATE_ALIAS = "staging"
PYTHON_VERSION = "3.11"
REPOSITORY_VARIABLES = ("AWS_REGION", "AWS_ROLE_ARN", "ECR_REPOSITORY", "ECS_CLUSTER", "ECS_SERVICE", "MLOPS_STORE")
# optional: MLOPSCTL_SPEC (what pip installs), MLOPS_BAKE, ECS_CONTAINER, SERVICE_URL
ACTIONS = {
    "checkout": "actions/checkout@v4",
    "setup-python": "actions/setup-python@v5",
    "aws-credentials": "aws-actions/configure-aws-credentials@v4",
    "ecr-login": "aws-actions/amazon-ecr-login@v2",
    "ecs-render": "aws-actions/amazon-ecs-render-task-definition@v1",
    "ecs-deploy": "aws-actions/amazon-ecs-deploy-task-definition@v2",
}


def git_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` with a .git (folder or file)."""
    here = start.absolute()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return None


def _yaml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar


def write_workflows(cfg: Config, out: Path | None = None, *, force: bool = False) -> dict[str, Any]:
    """Write ci.yml, train.yml and deploy.yml; what was written, the repository variables they read, warnings."""
    project = cfg.root.absolute()
    repo = git_root(project)
    warnings: list[str] = []
    if out is None:
        out = (repo or project) / ".github" / "workflows"
    elif Path(out).absolute().parent.name == ".github":
        repo = Path(out).absolute().parent.parent  # the repository the workflows are written for
    out = Path(out)
    if repo is None:
        repo = project
        warnings.append(f"{project} is not in a git repository: the workflows assume it is the repository's root")
    try:
        workdir = project.relative_to(repo.absolute()).as_posix()
    except ValueError:
        raise ValidationError(
            f"--out {out}: the project {project} is not inside the repository {repo} the workflows are for",
            [("--out", "outside the project's repository")],
        ) from None
    data = cfg.data.path
    data_abs = cfg.data_path().absolute()
    if Path(data).expanduser().is_absolute() or not data_abs.is_relative_to(repo.absolute()):
        warnings.append(
            f"[data] path {data!r} is outside the repository: runners will not have it "
            "(commit the data, or fetch it in a step before `mlopsctl data validate`)"
        )
    store = cfg.store.uri if cfg.store.uri.startswith("s3://") else ""
    values = {
        "workdir": workdir,
        "data": shlex.quote(data),
        "model": cfg.model_name,
        "alias": cfg.serving.alias,
        "service": cfg.service_name,
        "spec": f"mlopsctl[aws]=={__version__}",
        "store": store,
    }
    files = {
        "ci.yml": ci_workflow(values),
        "train.yml": train_workflow(values),
        "deploy.yml": deploy_workflow(values),
    }
    taken = [out / name for name in files if (out / name).exists()]
    if taken and not force:
        raise ValidationError(
            f"{taken[0]} exists: pass --force to overwrite it" + (f" (and {len(taken) - 1} more)" if taken[1:] else ""),
            [("--force", f"{p} exists") for p in taken],
        )
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        (out / name).write_text(text)
        written.append(out / name)
    return {
        "out": str(out),
        "written": [str(p) for p in written],
        "working_directory": workdir,
        "repository_variables": list(REPOSITORY_VARIABLES),
        "warnings": warnings,
    }


def _fill(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace(f"<<{key}>>", value)
    assert "<<" not in template, template[template.index("<<") :][:40]
    return template


def _defaults(workdir: str) -> str:
    lines = ["defaults:", "  run:", "    shell: bash"]
    if workdir != ".":
        lines.append(f"    working-directory: {_yaml_str(workdir)}")
    return "\n".join(lines) + "\n"


_INSTALL = """\
      - uses: <<checkout>>
      - uses: <<setup-python>>
        with:
          python-version: "<<python>>"
      - name: Install mlopsctl
        run: |
          python -m pip install --upgrade pip
          python -m pip install "$MLOPSCTL_SPEC"
"""

_SPEC = """\
  # mlopsctl is not on PyPI yet: set the repository variable MLOPSCTL_SPEC to what pip should install
  # (a wheel URL, or "mlopsctl[aws] @ git+https://github.com/OWNER/mlopsctl@TAG"). docs/deploy-github.md
  MLOPSCTL_SPEC: ${{ vars.MLOPSCTL_SPEC || '<<spec>>' }}
"""

_AWS = """\
      - name: AWS credentials (OIDC, no stored keys)
        uses: <<aws-credentials>>
        with:
          role-to-assume: ${{ vars.AWS_ROLE_ARN }}
          aws-region: ${{ vars.AWS_REGION }}
"""


def _common(values: dict[str, str]) -> dict[str, str]:
    return {**values, **ACTIONS, "python": PYTHON_VERSION, "defaults": _defaults(values["workdir"])}


def ci_workflow(values: dict[str, str]) -> str:
    text = (
        """\
# Lint and test on every push and pull request. Written by `mlopsctl deploy github` (docs/deploy-github.md).
# No cloud access: the data is checked on its own and the model trained once into a throwaway store.
name: ci

on:
  push:
  pull_request:

permissions:
  contents: read

concurrency:
  group: ci-${{ github.ref }}
  cancel-in-progress: true

<<defaults>>
env:
"""
        + _SPEC
        + """
jobs:
  check:
    name: validate, lint, test, train
    runs-on: ubuntu-latest
    timeout-minutes: 30
    steps:
"""
        + _INSTALL
        + """\
          if [ -f requirements.txt ]; then python -m pip install -r requirements.txt; fi
      - name: Validate the data
        run: mlopsctl data validate <<data>> --against none
      - name: Lint (ruff, when the project configures it)
        run: |
          if [ -f ruff.toml ] || [ -f .ruff.toml ] || grep -qs '^\\[tool\\.ruff' pyproject.toml; then
            python -m pip install ruff
            ruff check .
          else
            echo "no ruff configuration: lint skipped"
          fi
      - name: Tests (pytest, when the project has a tests folder)
        run: |
          if [ -d tests ]; then
            python -m pip install pytest
            python -m pytest -q
          else
            echo "no tests folder: tests skipped"
          fi
      - name: Train once into a throwaway store
        run: mlopsctl --store "$RUNNER_TEMP/mlops-store" train
"""
    )
    return _fill(text, _common(values))


def train_workflow(values: dict[str, str]) -> str:
    store = values["store"]
    text = (
        """\
# Train, gate and publish on every push to main. Written by `mlopsctl deploy github` (docs/deploy-github.md).
# The store is on S3, reached with GitHub's OIDC token. A gate refusal fails the run: the alias stays where it was.
name: train

on:
  push:
    branches: [main]
  workflow_dispatch:
    inputs:
      alias:
        description: Alias to move to the new version, through the evaluation gate
        type: string
        default: <<gate>>

permissions:
  contents: read
  id-token: write  # OIDC: configure-aws-credentials assumes vars.AWS_ROLE_ARN

concurrency:
  group: train-${{ github.ref }}
  cancel-in-progress: false

<<defaults>>
env:
"""
        + _SPEC
        + """\
  MLOPS_STORE: ${{ vars.MLOPS_STORE<<store_fallback>> }}
  MLOPS_ACTOR: github-actions/${{ github.actor }}

jobs:
  train:
    name: train, publish, promote through the gate
    runs-on: ubuntu-latest
    timeout-minutes: 60
    outputs:
      model: ${{ steps.publish.outputs.model }}
      version: ${{ steps.publish.outputs.version }}
      alias: ${{ steps.promote.outputs.alias }}
      moved: ${{ steps.promote.outputs.moved }}
    steps:
"""
        + _INSTALL
        + _AWS
        + """\
      - name: Check the settings
        run: |
          [ -n "$MLOPS_STORE" ] || { echo "::error::set the repository variable MLOPS_STORE (s3://...)"; exit 1; }
      - name: Validate the data against the latest snapshot's schema
        run: mlopsctl data validate <<data>>
      - name: Train
        id: train
        run: |
          mlopsctl train --json > "$RUNNER_TEMP/run.json"
          echo "run_id=$(jq -r .run_id "$RUNNER_TEMP/run.json")" >> "$GITHUB_OUTPUT"
      - name: Publish
        id: publish
        env:
          RUN_ID: ${{ steps.train.outputs.run_id }}
        run: |
          mlopsctl publish "$RUN_ID" --json > "$RUNNER_TEMP/published.json"
          echo "model=$(jq -r .model "$RUNNER_TEMP/published.json")" >> "$GITHUB_OUTPUT"
          echo "version=$(jq -r .version "$RUNNER_TEMP/published.json")" >> "$GITHUB_OUTPUT"
      - name: Promote through the gate
        id: promote
        env:
          MODEL: ${{ steps.publish.outputs.model }}
          VERSION: ${{ steps.publish.outputs.version }}
          ALIAS: ${{ inputs.alias || '<<gate>>' }}
        run: |
          echo "alias=$ALIAS" >> "$GITHUB_OUTPUT"
          mlopsctl promote "$MODEL" "$VERSION" --alias "$ALIAS" --reason "CI run $GITHUB_RUN_ID on $GITHUB_SHA" \\
            --json > "$RUNNER_TEMP/promoted.json"
          echo "moved=$(jq -r 'if .unchanged then "false" else "true" end' "$RUNNER_TEMP/promoted.json")" \\
            >> "$GITHUB_OUTPUT"
      - name: Summary
        if: always()
        env:
          MODEL: ${{ steps.publish.outputs.model }}
          VERSION: ${{ steps.publish.outputs.version }}
          ALIAS: ${{ steps.promote.outputs.alias }}
          MOVED: ${{ steps.promote.outputs.moved }}
          RUN_ID: ${{ steps.train.outputs.run_id }}
        run: |
          {
            echo "### Trained"
            echo "- run: ${RUN_ID:-none}"
            echo "- published: ${MODEL:-none} v${VERSION:-none}"
            echo "- ${ALIAS:-alias}: moved=${MOVED:-no (refused or not reached)}"
          } >> "$GITHUB_STEP_SUMMARY"

  deploy:
    name: deploy the new version
    needs: train
    # the alias the service follows moved: ship it (a pointer move reaches a running service by itself;
    # this also rolls out a new image, and a baked one needs it)
    if: needs.train.outputs.moved == 'true' && needs.train.outputs.alias == '<<alias>>'
    uses: ./.github/workflows/deploy.yml
    permissions:
      contents: read
      id-token: write
    with:
      model: ${{ needs.train.outputs.model }}
      alias: ${{ needs.train.outputs.alias }}
"""
    )
    fallback = f" || '{store}'" if store else ""
    return _fill(text, {**_common(values), "gate": GATE_ALIAS, "store_fallback": fallback})


def deploy_workflow(values: dict[str, str]) -> str:
    store = values["store"]
    text = (
        """\
# Build the service's image, push it to ECR and roll it out on ECS. Written by `mlopsctl deploy github`
# (docs/deploy-github.md). Runs on demand, on a repository dispatch of type mlops-promoted, and from train.yml.
#   gh workflow run deploy.yml -f model=<<model>> -f alias=<<alias>>
#   gh api repos/OWNER/REPO/dispatches -f event_type=mlops-promoted -f 'client_payload[model]=<<model>>' \\
#     -f 'client_payload[alias]=<<alias>>'
name: deploy

on:
  workflow_dispatch:
    inputs:
      model:
        description: Model to serve
        type: string
        default: <<model_yaml>>
      alias:
        description: Alias the service follows
        type: string
        default: <<alias_yaml>>
      bake:
        description: Copy the version into the image instead of reading the store at start
        type: boolean
        default: false
  repository_dispatch:
    types: [mlops-promoted]
  workflow_call:
    inputs:
      model:
        type: string
        default: <<model_yaml>>
      alias:
        type: string
        default: <<alias_yaml>>
      bake:
        type: boolean
        default: false

permissions:
  contents: read
  id-token: write  # OIDC: configure-aws-credentials assumes vars.AWS_ROLE_ARN

concurrency:
  group: deploy-<<service>>
  cancel-in-progress: false

<<defaults>>
env:
"""
        + _SPEC
        + """\
  MLOPS_STORE: ${{ vars.MLOPS_STORE<<store_fallback>> }}
  MLOPS_ACTOR: github-actions/${{ github.actor }}

jobs:
  deploy:
    name: build, push, roll out
    runs-on: ubuntu-latest
    timeout-minutes: 45
    env:
      MODEL: ${{ inputs.model || github.event.client_payload.model || '<<model>>' }}
      ALIAS: ${{ inputs.alias || github.event.client_payload.alias || '<<alias>>' }}
      BAKE: ${{ inputs.bake || github.event.client_payload.bake || vars.MLOPS_BAKE == 'true' }}
      ECR_REPOSITORY: ${{ vars.ECR_REPOSITORY }}
      ECS_CLUSTER: ${{ vars.ECS_CLUSTER }}
      ECS_SERVICE: ${{ vars.ECS_SERVICE }}
    steps:
"""
        + _INSTALL
        + _AWS
        + """\
      - name: Check the settings
        run: |
          for v in MLOPS_STORE ECR_REPOSITORY ECS_CLUSTER ECS_SERVICE; do
            [ -n "${!v}" ] || { echo "::error::set the repository variable $v"; exit 1; }
          done
          [[ "$MODEL" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ ]] || { echo "::error::not a model name: $MODEL"; exit 1; }
          [[ "$ALIAS" =~ ^[a-z][a-z0-9_-]{0,31}$ ]] || { echo "::error::not an alias: $ALIAS"; exit 1; }
      - name: Write the image's files
        id: files
        run: |
          bake=()
          if [ "$BAKE" = "true" ]; then bake=(--bake); fi
          mlopsctl deploy docker --out "$RUNNER_TEMP/image" --model "$MODEL" --alias "$ALIAS" \\
            --store "$MLOPS_STORE" "${bake[@]}" --json > "$RUNNER_TEMP/files.json"
          echo "version=$(jq -r .version "$RUNNER_TEMP/files.json")" >> "$GITHUB_OUTPUT"
      - name: Log in to ECR
        uses: <<ecr-login>>
      - name: Build and push the image
        id: image
        run: |
          image="$ECR_REPOSITORY:git-${GITHUB_SHA::12}-run-$GITHUB_RUN_ID-$GITHUB_RUN_ATTEMPT"
          docker build --tag "$image" "$RUNNER_TEMP/image"
          docker push "$image"
          echo "image=$image" >> "$GITHUB_OUTPUT"
      - name: Read the service's task definition
        id: current
        env:
          ECS_CONTAINER: ${{ vars.ECS_CONTAINER }}
        run: |
          arn=$(aws ecs describe-services --cluster "$ECS_CLUSTER" --services "$ECS_SERVICE" \\
            --query 'services[0].taskDefinition' --output text)
          aws ecs describe-task-definition --task-definition "$arn" --query taskDefinition \\
            | jq 'del(.taskDefinitionArn, .revision, .status, .requiresAttributes, .compatibilities,
                      .registeredAt, .registeredBy, .deregisteredAt)' > "$RUNNER_TEMP/task-definition.json"
          container="${ECS_CONTAINER:-$(jq -r '.containerDefinitions[0].name' "$RUNNER_TEMP/task-definition.json")}"
          echo "container=$container" >> "$GITHUB_OUTPUT"
      - name: Put the new image in the task definition
        id: render
        uses: <<ecs-render>>
        with:
          task-definition: ${{ runner.temp }}/task-definition.json
          container-name: ${{ steps.current.outputs.container }}
          image: ${{ steps.image.outputs.image }}
      - name: Roll it out on ECS
        uses: <<ecs-deploy>>
        with:
          task-definition: ${{ steps.render.outputs.task-definition }}
          cluster: ${{ vars.ECS_CLUSTER }}
          service: ${{ vars.ECS_SERVICE }}
          wait-for-service-stability: true
      - name: Check the service answers
        if: vars.SERVICE_URL != ''
        env:
          SERVICE_URL: ${{ vars.SERVICE_URL }}
        run: |
          curl --fail --silent --show-error --retry 10 --retry-delay 6 --retry-all-errors "$SERVICE_URL/ready"
          curl --fail --silent --show-error "$SERVICE_URL/models/$MODEL" | jq '{name, version, alias}'
      - name: Summary
        env:
          IMAGE: ${{ steps.image.outputs.image }}
          VERSION: ${{ steps.files.outputs.version }}
        run: |
          {
            echo "### Deployed"
            echo "- $MODEL@$ALIAS (v$VERSION when written; baked: $BAKE)"
            echo "- image: $IMAGE"
            echo "- service: $ECS_SERVICE on $ECS_CLUSTER"
          } >> "$GITHUB_STEP_SUMMARY"
"""
    )
    fallback = f" || '{store}'" if store else ""
    return _fill(
        text,
        {
            **_common(values),
            "store_fallback": fallback,
            "model_yaml": _yaml_str(values["model"]),
            "alias_yaml": _yaml_str(values["alias"]),
        },
    )


__all__ = ["REPOSITORY_VARIABLES", "git_root", "write_workflows"]
