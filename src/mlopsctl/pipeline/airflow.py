"""An Airflow DAG for the retraining pipeline: one BashOperator per step, each calling mlopsctl.

The DAG file is plain Python written from here (no template file). Each task runs
``mlopsctl -C PROJECT pipeline step STEP OPTIONS --run "$MLOPS_PIPELINE_RUN"`` with Airflow's
run id in ``MLOPS_PIPELINE_RUN`` (set through the task's environment, so no run id reaches the
shell as text). Exit 99 (the run ended: skipped by its trigger, stopped by the gate, awaiting
approval) marks the task skipped, and the tasks after it are skipped in turn; exit 1 fails the
task and Airflow retries it (the step runs again; a step already done is not). Every word of
the commands is quoted with ``shlex.quote`` when the file is written; the file imports from
Airflow 3 (``airflow.sdk``, the standard provider) or else from Airflow 2 (2.6 or later).
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from mlopsctl.config import Config, parse_duration, prometheus_duration
from mlopsctl.errors import ValidationError
from mlopsctl.pipeline.retrain import ROLLOUTS, TRIGGERS, trigger_bounds
from mlopsctl.pipeline.runs import STEPS
from mlopsctl.pipeline.schedule import default_mlopsctl

EXIT_ENDED = 99  # `mlopsctl pipeline step`: the run ended at or before this step
RUN_ENV = "MLOPS_PIPELINE_RUN"  # the task's environment variable holding Airflow's run id
DEFAULT_SCHEDULE = "0 3 * * 1"  # Mondays 03:00 UTC
DEFAULT_TRIGGER = "schedule"
# Airflow's own presets (`@once` and `@continuous` make no sense for a retraining job)
PRESETS = ("@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")
_DAG_ID = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")
LINE_LENGTH = 120

STEP_DOCS = {
    "trigger": "Decides whether to retrain (`--if`); not firing skips the rest.",
    "data": "Reads and validates the training data against production's schema; stores a snapshot.",
    "train": "Trains the project's config on that snapshot (a normal training run, with lineage).",
    "evaluate": "Scores the new model and production on the rows production never trained on.",
    "gate": "The primary metric and gate_tolerance: a worse model stops the run here (the rest is skipped).",
    "publish": "Publishes a new immutable version (the same one again on a retry).",
    "rollout": "Promotes it (direct) or starts a guarded A/B canary; an alias needing approval ends here.",
}


@dataclass
class DagSpec:
    """Everything the DAG file says; ``options`` and ``mlopsctl`` are argv words (quoted when written)."""

    dag_id: str
    model: str
    project: str  # absolute
    schedule: str | None  # None: manual runs only
    options: list[str]
    mlopsctl: list[str]
    retries: int = 2
    retry_delay: float = 300.0  # seconds
    timeout: float = 6 * 3600.0  # seconds, each task's execution_timeout
    queue: str | None = None  # the workers' queue (e.g. the Celery workers that have mlopsctl)
    tags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def command(self, step: str) -> str:
        """The shell command of one step's task (the run id comes from the task's environment)."""
        words = [*self.mlopsctl, "-C", self.project, "pipeline", "step", step, *self.options]
        # the run id last, so the command never ends in `.sh` (Airflow would load that as a template file)
        return shlex.join(words) + f' --run "${RUN_ENV}"'

    @property
    def file_name(self) -> str:
        return re.sub(r"[^A-Za-z0-9_]", "_", self.dag_id) + ".py"


def check_schedule(text: str) -> str | None:
    """``none`` (manual runs only), one of Airflow's presets, or a five-field cron expression."""
    from mlopsctl.pipeline.schedule import check_cron

    cleaned = " ".join(text.split())
    if cleaned.lower() == "none":
        return None
    if cleaned.startswith("@"):
        if cleaned.lower() not in PRESETS:
            choices = ", ".join(PRESETS)
            raise ValidationError(
                f"--schedule {text!r}: use none, a cron expression (e.g. {DEFAULT_SCHEDULE!r}) or one of {choices}",
                [("--schedule", f"none, five cron fields or one of {choices}")],
            )
        return cleaned.lower()
    try:
        return check_cron(cleaned)
    except ValidationError as exc:
        problem = exc.problems[0][1] if exc.problems else str(exc)
        raise ValidationError(f"--schedule {text!r}: {problem}", [("--schedule", problem)]) from None


def _duration(option: str, text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ValidationError(f"{option} {text!r}: {exc}", [(option, "e.g. 30s, 5m, 1h")]) from None
    return seconds


def _path(text: str) -> str:
    """A file the workers read: absolute (they do not run in this folder); URIs as they are."""
    return text if "://" in text else os.path.abspath(Path(text).expanduser())


def spec_for(
    cfg: Config,
    *,
    schedule: str = DEFAULT_SCHEDULE,
    trigger: str = DEFAULT_TRIGGER,
    rollout: str | None = None,
    data: str | None = None,
    include_feedback: bool = False,
    current: str | None = None,
    alias: str = "prod",
    retries: int = 2,
    retry_delay: str = "5m",
    timeout: str | None = None,
    mlopsctl: str | None = None,
    dag_id: str | None = None,
    queue: str | None = None,
) -> DagSpec:
    """The DAG for this project, its options checked here rather than at 03:00 on a worker."""
    if trigger not in TRIGGERS:
        raise ValidationError(f"--if {trigger!r}: use one of {', '.join(TRIGGERS)}", [("--if", ", ".join(TRIGGERS))])
    if rollout is not None and rollout not in ROLLOUTS:
        raise ValidationError(
            f"--rollout {rollout!r}: use one of {', '.join(ROLLOUTS)}", [("--rollout", ", ".join(ROLLOUTS))]
        )
    if trigger not in ("always", "schedule", "drift"):
        trigger_bounds(cfg, trigger)
    if current is not None and trigger != "drift":
        raise ValidationError(f"--current is read by --if drift only, not --if {trigger}", [("--current", trigger)])
    if retries < 0:
        raise ValidationError(f"--retries {retries}: use 0 or more", [("--retries", "0 or more")])
    name = dag_id or f"mlopsctl_retrain_{cfg.model_name}"
    if not _DAG_ID.match(name):
        raise ValidationError(
            f"--dag-id {name!r}: use letters, digits, '_', '.' and '-' (at most 250)",
            [("--dag-id", "letters, digits, _ . -")],
        )
    options = ["--if", trigger]
    if rollout:
        options += ["--rollout", rollout]
    if data:
        options += ["--data", _path(data)]
    if include_feedback:
        options.append("--include-feedback")
    if current:
        options += ["--current", _path(current)]
    if alias != "prod":
        options += ["--alias", alias]
    command = shlex.split(mlopsctl) if mlopsctl else default_mlopsctl()
    if not command:
        raise ValidationError("--mlopsctl is empty: give the path of mlopsctl on the workers", [("--mlopsctl", "")])
    spec = DagSpec(
        dag_id=name,
        model=cfg.model_name,
        project=str(cfg.root.resolve()),
        schedule=check_schedule(schedule),
        options=options,
        mlopsctl=command,
        retries=retries,
        retry_delay=_duration("--retry-delay", retry_delay),
        timeout=_duration("--timeout", timeout) if timeout else cfg.retrain.lock_stale_after,
        tags=["mlopsctl", "retraining", cfg.model_name],
        queue=queue or None,
    )
    if spec.timeout <= 0:
        raise ValidationError(f"--timeout {timeout!r}: use a positive duration", [("--timeout", "e.g. 2h")])
    for word in [*spec.mlopsctl, spec.project, *spec.options]:
        if any(mark in word for mark in ("{{", "{%", "{#")):  # Airflow renders bash_command with Jinja
            raise ValidationError(
                f"{word!r}: Airflow would read '{{{{', '{{%' or '{{#' in a command as a Jinja template; "
                "use a path without them",
                [("path", word)],
            )
    exe = Path(spec.mlopsctl[0])
    if not (exe.is_absolute() and exe.is_file() and os.access(exe, os.X_OK)):
        spec.warnings.append(
            f"{spec.mlopsctl[0]} is not an executable file here: the Airflow workers need mlopsctl at that path"
        )
    if "://" not in cfg.store_uri():
        spec.warnings.append(
            f"the store is a local folder ({cfg.store_uri()}): the Airflow workers must see it at that path "
            "(an s3:// store suits workers on other machines)"
        )
    return spec


# -- rendering ---------------------------------------------------------------------------------------
def _py(text: str) -> str:
    """A Python string literal quoted as `ruff format` quotes it: double quotes, unless the text holds
    more double than single quotes."""
    quote = "'" if text.count('"') > text.count("'") else '"'
    parts = []
    for ch in text:
        if ch in ("\\", quote):
            parts.append("\\" + ch)
        elif ch.isprintable():
            parts.append(ch)
        else:
            parts.append(repr(ch)[1:-1])  # \n, \t, \x00, \u2028
    return quote + "".join(parts) + quote


def _timedelta(seconds: float) -> str:
    s = round(seconds)
    for unit, size in (("weeks", 604800), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if s and s % size == 0:
            return f"timedelta({unit}={s // size})"
    return f"timedelta(seconds={s})"


def regenerate_command(spec: DagSpec, out: str) -> str:
    """The `mlopsctl pipeline airflow` line that writes this file again."""
    words = [*spec.mlopsctl, "-C", spec.project, "pipeline", "airflow", "--out", out]
    words += ["--schedule", spec.schedule or "none", *spec.options]
    words += ["--retries", str(spec.retries), "--retry-delay", prometheus_duration(spec.retry_delay)]
    words += ["--timeout", prometheus_duration(spec.timeout), "--dag-id", spec.dag_id]
    words += ["--mlopsctl", shlex.join(spec.mlopsctl)]
    words += ["--queue", spec.queue] if spec.queue else []
    words.append("--force")
    return shlex.join(words)


def render(spec: DagSpec, out: str = "DAGS_FOLDER") -> str:
    """The DAG file's text: valid Python, clean under `ruff check` and `ruff format` (line length 120)."""
    schedule = "None" if spec.schedule is None else _py(spec.schedule)
    queue = f'\n        "queue": {_py(spec.queue)},' if spec.queue else ""
    commands = [f"    {_py(step)}: {_py(spec.command(step))}," for step in STEPS]
    docs = [f"    {_py(step)}: {_py(STEP_DOCS[step])}," for step in STEPS]
    again = [f"#   {part}" for part in _wrap_shell(regenerate_command(spec, out).replace("\n", " "), LINE_LENGTH - 4)]
    head = "\n".join(
        [
            f'"""Airflow DAG: the mlopsctl retraining pipeline of {spec.model}."""',
            "",
            "# Written by `mlopsctl pipeline airflow`. Write it again rather than edit it:",
            *again,
        ]
    )
    body = f'''
from __future__ import annotations

from datetime import timedelta

import pendulum

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG, chain
except ImportError:  # Airflow 2 (2.6 or later)
    from airflow import DAG
    from airflow.models.baseoperator import chain
    from airflow.operators.bash import BashOperator

MODEL = {_py(spec.model)}
PROJECT = {_py(spec.project)}
STEPS = ({", ".join(_py(s) for s in STEPS)})
EXIT_RUN_ENDED = {EXIT_ENDED}  # skipped by its trigger, stopped by the gate, awaiting approval: skip the rest
# each step's command; the options are read by the trigger step and kept in the run, the later steps repeat them
COMMANDS = {{
{chr(10).join(commands)}
}}
STEP_DOCS = {{
{chr(10).join(docs)}
}}

DOC_MD = f"""
### Retraining pipeline of the mlopsctl model `{{MODEL}}`

trigger → data → train → evaluate → gate → publish → rollout: each task runs one step of the same
pipeline run, `mlopsctl pipeline step STEP --run RUN_ID`, in the mlopsctl project `{{PROJECT}}`.
The run id is Airflow's (`:` and `+` become `-`); its record, step by step, is shown by
`mlopsctl -C {{PROJECT}} pipeline show RUN_ID`.

- exit 0: the step is done (a retried task whose step was done before does nothing);
- exit {{EXIT_RUN_ENDED}}: the run ended at or before this step (the trigger did not fire, the gate stopped it,
  the alias awaits approval): the task is skipped, and so are the tasks after it;
- exit 1: the step failed and Airflow retries it; production is touched only by `rollout`.

One run per model at a time: the store's lock refuses a second pipeline of `{{MODEL}}` (also one started
by `mlopsctl retrain`), and `max_active_runs=1` keeps Airflow from starting one.
"""

with DAG(
    dag_id={_py(spec.dag_id)},
    description={_py(f"mlopsctl retraining of {spec.model}: " + " → ".join(STEPS))},
    schedule={schedule},
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={{
        "owner": "mlopsctl",
        "retries": {spec.retries},
        "retry_delay": {_timedelta(spec.retry_delay)},
        "execution_timeout": {_timedelta(spec.timeout)},{queue}
    }},
    tags=[{", ".join(_py(t) for t in spec.tags)}],
    doc_md=DOC_MD,
) as dag:
    tasks = [
        BashOperator(
            task_id=step,
            bash_command=COMMANDS[step],
            env={{{_py(RUN_ENV)}: "{{{{ run_id }}}}"}},
            append_env=True,  # PATH, credentials and MLOPS_* of the worker, plus the run id
            skip_on_exit_code=EXIT_RUN_ENDED,
            doc_md=STEP_DOCS[step],
        )
        for step in STEPS
    ]
    chain(*tasks)  # trigger >> data >> ... >> rollout
'''
    text = head + "\n" + body
    if any(len(line) > LINE_LENGTH for line in text.splitlines()):
        # long paths make long lines; a noqa at their end would break the shell lines in the comment
        text = text.replace("\n\nfrom __future__", "\n\n# ruff: noqa: E501\n\nfrom __future__", 1)
    return text


def _wrap_shell(command: str, width: int) -> list[str]:
    """A long shell line cut between words (an option stays with its value), each part but the last
    ending in `` \\``."""
    chunks: list[str] = []
    for word in map(shlex.quote, shlex.split(command)):
        if chunks and chunks[-1].startswith("-") and " " not in chunks[-1] and not word.startswith("-"):
            chunks[-1] += " " + word
        else:
            chunks.append(word)
    lines: list[str] = []
    line = ""
    for chunk in chunks:
        if line and len(line) + 1 + len(chunk) > width - 2:
            lines.append(line + " \\")
            line = chunk
        else:
            line = f"{line} {chunk}" if line else chunk
    lines.append(line)
    return lines


def write(spec: DagSpec, out: Path, *, force: bool = False) -> Path:
    """Write the DAG file into the DAGs folder ``out`` (created); refuse to replace a file unless ``force``.
    The file appears whole (written beside it, then renamed), as Airflow may parse the folder at any time."""
    out = Path(os.path.abspath(out))
    path = out / spec.file_name
    if path.exists() and not force:
        raise ValidationError(f"{path} exists: pass --force to replace it", [("--out", str(path))])
    out.mkdir(parents=True, exist_ok=True)
    text = render(spec, str(out))
    compile(text, str(path), "exec")  # a bug here, not a broken DAG in the scheduler
    tmp = out / f".{spec.file_name}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
