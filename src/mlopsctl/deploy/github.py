"""GitHub Actions workflows for a project: `mlopsctl deploy github` writes, into .github/workflows/,

    ci.yml      every push and pull request: validate the data, the project's lint and tests (when it has
                them), one training into a throwaway store. No cloud access.
    plan.yml    every pull request that touches the Terraform of `mlopsctl deploy aws`: terraform fmt -check,
                init, validate and plan with a read-only role (OIDC), the plan posted on the pull request.
    train.yml   every push to main: validate the data against the store's latest snapshot, train, publish,
                promote to staging through the evaluation gate; then deploy.yml when the alias the service
                follows moved (a manual run can name it).
    deploy.yml  on demand, on a `mlops-promoted` repository dispatch, or called by train.yml: write the image's
                files with `mlopsctl deploy docker`, build, push to ECR, roll the new image out on ECS with
                the task definition's command pointed at the model and alias deployed; then `mlopsctl smoke`
                against the live URL, and when it fails the alias and the service go back to what they were.

AWS is reached with GitHub's OIDC token (no keys stored in GitHub), through repository variables that the
Terraform of `mlopsctl deploy aws` outputs: AWS_REGION, AWS_ROLE_ARN, AWS_PLAN_ROLE_ARN, ECR_REPOSITORY,
ECS_CLUSTER, ECS_SERVICE, MLOPS_STORE, SERVICE_URL. The workflows are checked against GitHub's schema,
their shell steps run where they can, and every mlopsctl command line in them is parsed by the CLI itself
(tests/test_deploy_github.py).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from mlopsctl import __version__
from mlopsctl.config import Config
from mlopsctl.deploy.files import write_files
from mlopsctl.errors import ValidationError

GATE_ALIAS = "staging"
PYTHON_VERSION = "3.11"
REPOSITORY_VARIABLES: tuple[str, ...] = ("AWS_REGION", "AWS_ROLE_ARN", "ECR_REPOSITORY", "ECS_CLUSTER", "ECS_SERVICE")
REPOSITORY_VARIABLES += ("MLOPS_STORE", "SERVICE_URL", "AWS_PLAN_ROLE_ARN")
# optional: MLOPSCTL_SPEC (what pip installs), ECS_CONTAINER
TERRAFORM_VERSION = "1.11.4"  # what plan.yml installs (the configuration needs >= 1.5)
ACTIONS = {
    "checkout": "actions/checkout@v4",
    "setup-python": "actions/setup-python@v5",
    "aws-credentials": "aws-actions/configure-aws-credentials@v4",
    "ecr-login": "aws-actions/amazon-ecr-login@v2",
    "ecs-render": "aws-actions/amazon-ecs-render-task-definition@v1",
    "ecs-deploy": "aws-actions/amazon-ecs-deploy-task-definition@v2",
    "setup-terraform": "hashicorp/setup-terraform@v3",
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


def write_workflows(
    cfg: Config, out: Path | None = None, *, force: bool = False, terraform: Path | None = None
) -> dict[str, Any]:
    """Write ci.yml, plan.yml, train.yml and deploy.yml; what was written, the repository variables they read,
    warnings. ``terraform`` is the folder of `deploy aws`'s files (default: deploy/aws in the project)."""
    from mlopsctl.registry.aliases import ALIAS_RE
    from mlopsctl.registry.versions import NAME_RE

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
    if Path(data).expanduser().is_absolute() or not cfg.data_path().absolute().is_relative_to(repo.absolute()):
        warnings.append(
            f"[data] path {data!r} is outside the repository: runners will not have it "
            "(commit the data, or fetch it in a step before `mlopsctl data validate`)"
        )
    tf = (terraform if terraform is not None else cfg.root / "deploy" / "aws").absolute()
    try:
        tf_dir = tf.relative_to(repo.absolute()).as_posix()
    except ValueError:
        raise ValidationError(
            f"--terraform {terraform or tf}: outside the repository {repo}: pull requests could not plan it",
            [("--terraform", "outside the repository")],
        ) from None
    if not (tf / "versions.tf").is_file():
        warnings.append(f"no Terraform in {tf_dir} yet: `mlopsctl deploy aws --out {tf_dir}` writes it (plan.yml)")
    store = cfg.store.uri if cfg.store.uri.startswith("s3://") else ""
    values = {
        **ACTIONS,
        "python": PYTHON_VERSION,
        "defaults": _defaults(workdir),
        "data": shlex.quote(data),
        "model": cfg.model_name,
        "alias": cfg.serving.alias,
        "model_yaml": _yaml_str(cfg.model_name),
        "alias_yaml": _yaml_str(cfg.serving.alias),
        "gate": GATE_ALIAS,
        "service": cfg.service_name,
        "spec": f"mlopsctl[aws]=={__version__}",
        "store_fallback": f" || '{store}'" if store else "",
        "name_re": NAME_RE.pattern,
        "alias_re": ALIAS_RE,
        "tf_dir": tf_dir,
        "tf_dir_yaml": _yaml_str(tf_dir),
        "tf_paths": _yaml_str(f"{tf_dir}/**"),
        "terraform_version": TERRAFORM_VERSION,
    }
    templates = (("ci.yml", CI), ("plan.yml", PLAN), ("train.yml", TRAIN), ("deploy.yml", DEPLOY))
    files = {name: _fill(text, values) for name, text in templates}
    written = write_files(out, files, force=force)
    return {
        "out": str(out),
        "written": [str(p) for p in written],
        "working_directory": workdir,
        "terraform": tf_dir,
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


# -- what the workflows share -------------------------------------------------------------------------------


def _workflow(about: str, name: str, on: str, jobs: str, *, cloud: bool, group: str) -> str:
    """A workflow's text: the comment, name and triggers given, then what the three share (read-only
    contents, one run at a time per ``group``, bash in the project's folder, the mlopsctl to install;
    with ``cloud`` the OIDC token, the store and the actor, and no run cancelled halfway), then the jobs."""
    oidc = "  id-token: write  # OIDC: configure-aws-credentials assumes vars.AWS_ROLE_ARN\n" if cloud else ""
    store = (
        "  MLOPS_STORE: ${{ vars.MLOPS_STORE<<store_fallback>> }}\n  MLOPS_ACTOR: github-actions/${{ github.actor }}\n"
        if cloud
        else ""
    )
    return f"""\
{about}name: {name}

on:
{on}
permissions:
  contents: read
{oidc}
concurrency:
  group: {group}
  cancel-in-progress: {"false" if cloud else "true"}

<<defaults>>
env:
  # mlopsctl is not on PyPI yet: set the repository variable MLOPSCTL_SPEC to what pip should install
  # (a wheel URL, or "mlopsctl[aws] @ git+https://github.com/OWNER/mlopsctl@TAG"). docs/deploy-github.md
  MLOPSCTL_SPEC: ${{{{ vars.MLOPSCTL_SPEC || '<<spec>>' }}}}
{store}
jobs:
{jobs}"""


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

_AWS = """\
      - name: AWS credentials (OIDC, no stored keys)
        uses: <<aws-credentials>>
        with:
          role-to-assume: ${{ vars.AWS_ROLE_ARN }}
          aws-region: ${{ vars.AWS_REGION }}
"""


def _check_settings(variables: str, extra: str = "") -> str:
    """A step that stops the run, naming the repository variable, when one of ``variables`` is empty."""
    return f"""\
      - name: Check the settings
        run: |
          for v in {variables}; do
            [ -n "${{!v}}" ] || {{ echo "::error::set the repository variable $v"; exit 1; }}
          done
{extra}"""


# -- the workflows ------------------------------------------------------------------------------------------

CI = _workflow(
    "# Lint and test on every push and pull request. Written by `mlopsctl deploy github` (docs/deploy-github.md).\n"
    "# No cloud access: the data is checked on its own and the model trained once into a throwaway store.\n",
    "ci",
    "  push:\n  pull_request:\n",
    """\
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
""",
    cloud=False,
    group="ci-${{ github.ref }}",
)

PLAN = (
    """\
# terraform fmt -check, validate and plan on every pull request that changes the Terraform of `mlopsctl deploy
# aws`, the plan posted on the pull request. Written by `mlopsctl deploy github` (docs/deploy-github.md).
# AWS through GitHub's OIDC token and a read-only role (vars.AWS_PLAN_ROLE_ARN: the github_plan_role_arn
# output); GitHub gives no token to pull requests from forks, so those are not planned. The state comes from
# the backend in versions.tf, image_tag from a committed terraform.tfvars or vars.TF_IMAGE_TAG.
name: plan

on:
  pull_request:
    paths:
      - <<tf_paths>>
      - ".github/workflows/plan.yml"

permissions:
  contents: read
  id-token: write  # OIDC: configure-aws-credentials assumes vars.AWS_PLAN_ROLE_ARN (read-only)
  pull-requests: write  # the plan is posted as a comment

concurrency:
  group: plan-${{ github.event.pull_request.number }}
  cancel-in-progress: true

defaults:
  run:
    shell: bash
    working-directory: <<tf_dir_yaml>>

env:
  TF_IN_AUTOMATION: "1"
  TF_INPUT: "0"

jobs:
  plan:
    name: terraform fmt, validate, plan
    runs-on: ubuntu-latest
    timeout-minutes: 30
    env:
      AWS_REGION: ${{ vars.AWS_REGION }}
      AWS_PLAN_ROLE_ARN: ${{ vars.AWS_PLAN_ROLE_ARN }}
    steps:
      - uses: <<checkout>>
      - uses: <<setup-terraform>>
        with:
          terraform_version: "<<terraform_version>>"
          terraform_wrapper: false
"""
    + _check_settings("AWS_REGION AWS_PLAN_ROLE_ARN")
    + """\
      - name: terraform fmt -check
        id: fmt
        continue-on-error: true
        run: terraform fmt -check -recursive -diff -no-color
      - name: AWS credentials (OIDC, read-only, no stored keys)
        uses: <<aws-credentials>>
        with:
          role-to-assume: ${{ vars.AWS_PLAN_ROLE_ARN }}
          aws-region: ${{ vars.AWS_REGION }}
      - name: terraform init
        run: terraform init -input=false -no-color
      - name: terraform validate
        id: validate
        continue-on-error: true
        run: terraform validate -no-color
      - name: terraform plan
        id: plan
        env:
          TF_IMAGE_TAG: ${{ vars.TF_IMAGE_TAG }}
        run: |
          args=(-input=false -lock=false -no-color -detailed-exitcode -out=tfplan)
          if [ -n "$TF_IMAGE_TAG" ]; then args+=(-var "image_tag=$TF_IMAGE_TAG"); fi
          set +e
          terraform plan "${args[@]}" > "$RUNNER_TEMP/plan.txt" 2>&1
          code=$?
          set -e
          cat "$RUNNER_TEMP/plan.txt"
          echo "exitcode=$code" >> "$GITHUB_OUTPUT"
      - name: Post the plan on the pull request
        if: always() && steps.fmt.outcome != 'skipped'
        env:
          GH_TOKEN: ${{ github.token }}
          GH_REPO: ${{ github.repository }}
          PR: ${{ github.event.pull_request.number }}
          FMT: ${{ steps.fmt.outcome }}
          VALIDATE: ${{ steps.validate.outcome }}
          EXITCODE: ${{ steps.plan.outputs.exitcode }}
        run: |
          case "$EXITCODE" in
            0) result="no changes" ;;
            2) result="changes (below)" ;;
            "") result="not run" ;;
            *) result="failed" ;;
          esac
          {
            echo "### Terraform plan of \\`<<tf_dir>>\\`"
            echo
            echo "fmt: $FMT · validate: ${VALIDATE:-not run} · plan: $result"
            echo
            echo "<details><summary>terraform plan</summary>"
            echo
            echo '```'
            if [ -f "$RUNNER_TEMP/plan.txt" ]; then head -c 60000 "$RUNNER_TEMP/plan.txt"; fi
            echo '```'
            echo "</details>"
          } > "$RUNNER_TEMP/comment.md"
          cat "$RUNNER_TEMP/comment.md" >> "$GITHUB_STEP_SUMMARY"
          gh pr comment "$PR" --edit-last --body-file "$RUNNER_TEMP/comment.md" ||
            gh pr comment "$PR" --body-file "$RUNNER_TEMP/comment.md"
      - name: Fail when fmt, validate or plan failed
        env:
          FMT: ${{ steps.fmt.outcome }}
          VALIDATE: ${{ steps.validate.outcome }}
          EXITCODE: ${{ steps.plan.outputs.exitcode }}
        run: |
          [ "$FMT" = success ] || { echo "::error::terraform fmt -check: run terraform fmt -recursive"; exit 1; }
          [ "$VALIDATE" = success ] || { echo "::error::terraform validate failed"; exit 1; }
          [ "$EXITCODE" = 0 ] || [ "$EXITCODE" = 2 ] || { echo "::error::terraform plan failed"; exit 1; }
"""
)

TRAIN = _workflow(
    "# Train, gate and publish on every push to main. Written by `mlopsctl deploy github` (docs/deploy-github.md).\n"
    "# The store is on S3, reached with GitHub's OIDC token. A gate refusal fails the run: the alias stays where it"
    " was.\n",
    "train",
    """\
  push:
    branches: [main]
  workflow_dispatch:
    inputs:
      alias:
        description: Alias to move to the new version, through the evaluation gate
        type: string
        default: <<gate>>
""",
    """\
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
    + _check_settings("MLOPS_STORE")
    + """\
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
    # the alias the service follows moved: a running service picks the move up by itself; this also
    # rolls out what changed in the image (mlopsctl, mlops.toml)
    if: needs.train.outputs.moved == 'true' && needs.train.outputs.alias == '<<alias>>'
    uses: ./.github/workflows/deploy.yml
    permissions:
      contents: read
      id-token: write
    with:
      model: ${{ needs.train.outputs.model }}
      alias: ${{ needs.train.outputs.alias }}
""",
    cloud=True,
    group="train-${{ github.ref }}",
)

DEPLOY = _workflow(
    """\
# Build the service's image, push it to ECR and roll it out on ECS. Written by `mlopsctl deploy github`
# (docs/deploy-github.md). Runs on demand, on a repository dispatch of type mlops-promoted, and from train.yml.
#   gh workflow run deploy.yml -f model=<<model>> -f alias=<<alias>>
#   gh api repos/OWNER/REPO/dispatches -f event_type=mlops-promoted -f 'client_payload[model]=<<model>>' \\
#     -f 'client_payload[alias]=<<alias>>'
# The image reads the model from the store at start and follows the alias (never --bake here: the task's
# root file system is read-only, so a baked image could not record captures or feedback).
""",
    "deploy",
    """\
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
""",
    """\
  deploy:
    name: build, push, roll out
    runs-on: ubuntu-latest
    timeout-minutes: 45
    env:
      MODEL: ${{ inputs.model || github.event.client_payload.model || '<<model>>' }}
      ALIAS: ${{ inputs.alias || github.event.client_payload.alias || '<<alias>>' }}
      ECR_REPOSITORY: ${{ vars.ECR_REPOSITORY }}
      ECS_CLUSTER: ${{ vars.ECS_CLUSTER }}
      ECS_SERVICE: ${{ vars.ECS_SERVICE }}
      SERVICE_URL: ${{ vars.SERVICE_URL }}
    steps:
"""
    + _INSTALL
    + _AWS
    + _check_settings(
        "MLOPS_STORE ECR_REPOSITORY ECS_CLUSTER ECS_SERVICE SERVICE_URL",
        """\
          # mlopsctl's name rules, before any command line uses them
          [[ "$MODEL" =~ <<name_re>> ]] || { echo "::error::not a model name: $MODEL"; exit 1; }
          [[ "$ALIAS" =~ <<alias_re>> ]] || { echo "::error::not an alias: $ALIAS"; exit 1; }
""",
    )
    + """\
      - name: Write the image's files
        id: files
        run: |
          mlopsctl deploy docker --out "$RUNNER_TEMP/image" --model "$MODEL" --alias "$ALIAS" \\
            --store "$MLOPS_STORE" --json > "$RUNNER_TEMP/files.json"
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
          echo "arn=$arn" >> "$GITHUB_OUTPUT"
      - name: Serve the model and alias deployed
        id: command
        env:
          CONTAINER: ${{ steps.current.outputs.container }}
        run: |
          # The task's command (Terraform's: mlopsctl serve ... --model model_name@model_alias) overrides the
          # image's CMD: name MODEL@ALIAS after its --model. Without a command the image's CMD names it already.
          td="$RUNNER_TEMP/task-definition.json"
          jq --arg c "$CONTAINER" --arg ref "$MODEL@$ALIAS" '.containerDefinitions |= map(
              if .name == $c and ((.command // []) | index("--model")) != null
              then .command[(.command | index("--model")) + 1] = $ref else . end)' "$td" > "$td.new"
          mv "$td.new" "$td"
          echo "command=$(jq -c --arg c "$CONTAINER" \\
            '.containerDefinitions[] | select(.name == $c) | .command // "the image CMD"' "$td")" >> "$GITHUB_OUTPUT"
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
      - name: Smoke tests against the live service
        id: smoke
        run: mlopsctl smoke "$SERVICE_URL" --model "$MODEL" --wait 120s
      - name: Roll back when the smoke tests fail
        if: failure() && steps.smoke.outcome == 'failure'
        env:
          VERSION: ${{ steps.files.outputs.version }}
          PREVIOUS: ${{ steps.current.outputs.arn }}
        run: |
          # the alias goes back to the version before, if it still points at the one this run deployed
          now=$(mlopsctl models show "$MODEL@$ALIAS" --json | jq -r .version)
          if [ -n "$VERSION" ] && [ "$now" = "$VERSION" ]; then
            mlopsctl rollback "$MODEL" --alias "$ALIAS" --reason "smoke tests failed: deploy run $GITHUB_RUN_ID"
          else
            echo "::warning::$MODEL@$ALIAS is v$now, not the v$VERSION this run deployed: the alias is left alone"
          fi
          # the service goes back to the task definition it ran before this run
          aws ecs update-service --cluster "$ECS_CLUSTER" --service "$ECS_SERVICE" \\
            --task-definition "$PREVIOUS" > /dev/null
          aws ecs wait services-stable --cluster "$ECS_CLUSTER" --services "$ECS_SERVICE"
          echo "::error::smoke tests failed: $MODEL@$ALIAS and $ECS_SERVICE are back where they were"
      - name: Summary
        if: always()
        env:
          IMAGE: ${{ steps.image.outputs.image }}
          VERSION: ${{ steps.files.outputs.version }}
          COMMAND: ${{ steps.command.outputs.command }}
          SMOKE: ${{ steps.smoke.outcome }}
        run: |
          {
            echo "### Deployed"
            echo "- $MODEL@$ALIAS (v$VERSION when written), smoke tests: $SMOKE"
            echo "- image: $IMAGE"
            echo "- command: $COMMAND"
            echo "- service: $ECS_SERVICE on $ECS_CLUSTER"
          } >> "$GITHUB_STEP_SUMMARY"
""",
    cloud=True,
    group="deploy-<<service>>",
)

__all__ = ["REPOSITORY_VARIABLES", "TERRAFORM_VERSION", "git_root", "write_workflows"]
