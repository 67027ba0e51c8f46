"""`mlopsctl pipeline airflow`: the DAG file it writes, read three ways.

1. Always: the file compiles, passes `ruff check` and `ruff format --check` with the project's settings,
   and its syntax tree says the step order, the commands (run for real through bash: the quoting and the
   run id in the environment), the options, the schedule and the retries.
2. With Airflow (a Python that has apache-airflow: `MLOPS_AIRFLOW_PYTHON`, else `.venv-airflow/bin/python`
   beside the repository, made by `make airflow`): Airflow's own DagBag loads the folder without import
   errors and reports the tasks, their dependencies, retries and commands.
3. With Airflow and the shared wine data: `dag.test()` runs the DAG's tasks with Airflow itself, no scheduler,
   against a real project whose production is the red-wine forest: a drift check that does not fire skips
   every task, a failing step is retried and fails the run, and a run that fires publishes and promotes.
"""

from __future__ import annotations

import ast
import json
import os
import shlex
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlopsctl import registry
from mlopsctl.config import load_config
from mlopsctl.errors import ValidationError
from mlopsctl.pipeline import runs
from mlopsctl.pipeline.airflow import RUN_ENV, default_mlopsctl, render, spec_for
from mlopsctl.store import open_store
from tests.conftest import WINE_RED, run_cli, write_project

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "scripts" / "airflow_check.py"
RUN_WORD = f"${RUN_ENV}"  # the run id as the shell sees it, after shlex.split


# -- reading the file without Airflow ------------------------------------------------------------------
class DagFile:
    """The generated module, read with `ast`: its constants, the DAG(...) call, the BashOperator(...) call."""

    def __init__(self, path: Path) -> None:
        self.text = path.read_text()
        self.tree = ast.parse(self.text)
        self.consts: dict[str, Any] = {}
        for node in self.tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                try:
                    self.consts[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    self.consts[node.targets[0].id] = node.value  # DOC_MD is an f-string
        (self.with_node,) = [n for n in self.tree.body if isinstance(n, ast.With)]
        self.dag = self.with_node.items[0].context_expr
        assert isinstance(self.dag, ast.Call) and ast.unparse(self.dag.func) == "DAG"
        (self.op,) = [
            n for n in ast.walk(self.with_node) if isinstance(n, ast.Call) and ast.unparse(n.func) == "BashOperator"
        ]

    def dag_kw(self) -> dict[str, Any]:
        """The DAG's keyword arguments, evaluated (timedelta and pendulum as names, the constants by name)."""
        assert isinstance(self.dag, ast.Call)
        env = {"timedelta": timedelta, "pendulum": _Pendulum, **self.consts}
        return {str(k.arg): eval(compile(ast.Expression(k.value), "dag", "eval"), env) for k in self.dag.keywords}

    def op_kw(self) -> dict[str, str]:
        return {str(k.arg): ast.unparse(k.value) for k in self.op.keywords}


class _Pendulum:
    @staticmethod
    def datetime(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        return (*args, *sorted(kwargs.items()))


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--config", str(REPO / "pyproject.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _project(folder: Path, extra: str = "") -> Path:
    project = write_project(folder, store=folder / "store")
    if extra:
        (project / "mlops.toml").write_text((project / "mlops.toml").read_text() + extra)
    return project


@pytest.fixture
def odd_project(tmp_path: Path) -> Path:
    """A project in a folder whose name needs quoting in a shell."""
    return _project(tmp_path / "wine project (it's $HOME)")


def test_the_dag_file_compiles_passes_ruff_and_runs_each_step_with_its_options(odd_project: Path) -> None:
    (odd_project / "in coming").mkdir()
    out = run_cli(
        "pipeline",
        "airflow",
        "--out",
        "../dags",
        "--schedule",
        "30 4 * * *",
        "--if",
        "drift",
        "--current",
        "in coming/red sample.csv",
        "--data",
        "in coming/new.csv",
        "--include-feedback",
        "--rollout",
        "canary",
        "--retries",
        "3",
        "--retry-delay",
        "2m",
        "--timeout",
        "90m",
        "--json",
        cwd=odd_project,
    )
    result = json.loads(out.stdout)
    path = Path(result["path"])
    assert path == odd_project.parent / "dags" / "mlopsctl_retrain_wine.py" and path.is_file()
    assert result["dag_id"] == "mlopsctl_retrain_wine" and result["tasks"] == list(runs.STEPS)
    assert any("the store is a local folder" in w for w in result["warnings"])

    compile(path.read_text(), str(path), "exec")
    lint = _ruff("check", "--no-cache", str(path))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = _ruff("format", "--no-cache", "--check", "--diff", str(path))
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr

    dag = DagFile(path)
    assert dag.consts["STEPS"] == runs.STEPS and dag.consts["EXIT_RUN_ENDED"] == 99
    assert dag.consts["MODEL"] == "wine" and dag.consts["PROJECT"] == str(odd_project)
    assert list(dag.consts["STEP_DOCS"]) == list(runs.STEPS)
    commands = dag.consts["COMMANDS"]
    assert list(commands) == list(runs.STEPS) and commands == result["commands"]
    mlopsctl = default_mlopsctl()
    for step, command in commands.items():
        words = shlex.split(command)
        assert words == [
            *mlopsctl,
            "-C",
            str(odd_project),
            "pipeline",
            "step",
            step,
            "--if",
            "drift",
            "--rollout",
            "canary",
            "--data",
            str(odd_project / "in coming" / "new.csv"),
            "--include-feedback",
            "--current",
            str(odd_project / "in coming" / "red sample.csv"),
            "--run",
            RUN_WORD,
        ], command
        assert command.endswith(f'--run "{RUN_WORD}"')  # quoted: the shell keeps it one word

    kw = dag.dag_kw()
    assert kw["dag_id"] == "mlopsctl_retrain_wine" and kw["schedule"] == "30 4 * * *"
    assert kw["catchup"] is False and kw["max_active_runs"] == 1
    assert kw["start_date"] == (2025, 1, 1, ("tz", "UTC"))
    assert kw["default_args"] == {
        "owner": "mlopsctl",
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "execution_timeout": timedelta(minutes=90),
    }
    assert kw["tags"] == ["mlopsctl", "retraining", "wine"]
    assert "`mlopsctl pipeline step STEP --run RUN_ID`" in ast.unparse(dag.consts["DOC_MD"])
    op = dag.op_kw()
    assert op["task_id"] == "step" and op["bash_command"] == "COMMANDS[step]"
    assert op["env"] == "{'MLOPS_PIPELINE_RUN': '{{ run_id }}'}" and op["append_env"] == "True"
    assert op["skip_on_exit_code"] == "EXIT_RUN_ENDED" and op["doc_md"] == "STEP_DOCS[step]"
    loops = [n for n in ast.walk(dag.with_node) if isinstance(n, ast.comprehension)]
    assert [ast.unparse(c.iter) for c in loops] == ["STEPS"]
    assert "chain(*tasks)" in [ast.unparse(n) for n in ast.walk(dag.with_node) if isinstance(n, ast.Call)]
    # the comment at the top writes the same file again
    again = "\n".join(line[4:] for line in dag.text.splitlines() if line.startswith("#   "))
    words = shlex.split(again.replace("\\\n", " "))
    assert words[len(mlopsctl) + 2 : len(mlopsctl) + 5] == ["pipeline", "airflow", "--out"] and words[-1] == "--force"
    path.write_text("# edited by hand\n")
    rerun = subprocess.run(["bash", "-c", again], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert path.read_text() == dag.text

    # the trigger task's command, run by bash as Airflow runs it: the quoted paths and the run id arrive
    # whole (no production version yet, so the drift trigger fails, naming what it needs)
    airflow_run_id = "scheduled__2026-11-23T04:30:00+00:00"
    env = {**os.environ, RUN_ENV: airflow_run_id}
    done = subprocess.run(
        ["bash", "-c", commands["trigger"]], env=env, cwd="/", capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr
    assert "--if drift needs a version in prod to check" in done.stderr
    store = open_store(str(odd_project / "store"))
    record = runs.get_run(store, "wine", runs.clean_run_id(airflow_run_id))
    assert record["id"] == "scheduled__2026-11-23T04-30-00-00-00" and record["status"] == "failed"
    assert record["options"]["current"] == str(odd_project / "in coming" / "red sample.csv")
    assert record["options"]["include_feedback"] is True and record["options"]["rollout"] == "canary"
    # a later task of a run whose trigger failed must not run: the step says so and exits 1 (retryable)
    later = subprocess.run(["bash", "-c", commands["data"]], env=env, capture_output=True, text=True, timeout=120)
    assert later.returncode == 1 and "step data needs trigger done first" in later.stderr


def test_defaults_are_a_weekly_schedule_trigger_retried_twice_by_this_mlopsctl(tmp_path: Path) -> None:
    project = _project(tmp_path / "wine", extra='\n[retrain]\nlock_stale_after = "2h"\n')
    run_cli("pipeline", "airflow", "--out", str(tmp_path / "dags"), cwd=project)
    dag = DagFile(tmp_path / "dags" / "mlopsctl_retrain_wine.py")
    kw = dag.dag_kw()
    assert kw["schedule"] == "0 3 * * 1"  # Mondays 03:00 UTC
    assert kw["default_args"]["retries"] == 2 and kw["default_args"]["retry_delay"] == timedelta(minutes=5)
    # a step running longer than [retrain] lock_stale_after would lose the pipeline's lock anyway
    assert kw["default_args"]["execution_timeout"] == timedelta(hours=2)
    words = shlex.split(dag.consts["COMMANDS"]["train"])
    # the mlopsctl of this Python's environment, as an absolute path (workers have a short PATH)
    beside = Path(sys.executable).parent / "mlopsctl"
    assert words[0] == str(beside) and os.access(words[0], os.X_OK)
    assert words[1:] == ["-C", str(project), "pipeline", "step", "train", "--if", "schedule", "--run", RUN_WORD]

    # manual runs only, another id, another mlopsctl (a wrapper on the workers, given as a command line)
    run_cli(
        "pipeline",
        "airflow",
        "-o",
        str(tmp_path / "dags"),
        "--schedule",
        "none",
        "--dag-id",
        "wine.manual",
        "--mlopsctl",
        "/opt/ml/bin/python -m mlopsctl.cli.main",
        "--alias",
        "staging",
        "--retries",
        "0",
        "--queue",
        "ml-workers",
        cwd=project,
    )
    manual = DagFile(tmp_path / "dags" / "wine_manual.py")
    kw = manual.dag_kw()
    assert kw["schedule"] is None and kw["dag_id"] == "wine.manual" and kw["default_args"]["retries"] == 0
    assert kw["default_args"]["queue"] == "ml-workers"
    assert "queue" not in dag.dag_kw()["default_args"]
    words = shlex.split(manual.consts["COMMANDS"]["rollout"])
    assert words[:3] == ["/opt/ml/bin/python", "-m", "mlopsctl.cli.main"]
    assert words[-4:] == ["--alias", "staging", "--run", RUN_WORD]


def test_an_existing_file_is_kept_unless_forced(tmp_path: Path) -> None:
    project = _project(tmp_path / "wine")
    dags = tmp_path / "dags"
    run_cli("pipeline", "airflow", "--out", str(dags), cwd=project)
    path = dags / "mlopsctl_retrain_wine.py"
    path.write_text("# edited by hand\n")
    refused = run_cli("pipeline", "airflow", "--out", str(dags), "--if", "always", cwd=project, check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"error: {path} exists: pass --force to replace it"
    assert path.read_text() == "# edited by hand\n"
    run_cli("pipeline", "airflow", "--out", str(dags), "--if", "always", "--force", cwd=project)
    assert "--if always" in DagFile(path).consts["COMMANDS"]["gate"]
    assert [p.name for p in dags.iterdir()] == [path.name]  # no temporary file left beside it


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"schedule": "0 3 * *"}, "--schedule '0 3 * *': expected five fields"),
        ({"schedule": "0 25 * * *"}, "--schedule '0 25 * * *': hour 25 is outside 0–23"),
        ({"schedule": "@often"}, "one of @hourly, @daily, @weekly, @monthly, @quarterly, @yearly"),
        ({"trigger": "sometimes"}, "--if 'sometimes': use one of always, schedule, drift, performance, accuracy"),
        ({"trigger": "accuracy"}, "--if accuracy needs a bound on accuracy in [monitoring.alerts], e.g. min = {"),
        ({"trigger": "rmse"}, "--if rmse: rmse is not a metric of classification models: use --if performance"),
        ({"rollout": "yolo"}, "--rollout 'yolo': use one of direct, canary"),
        ({"current": "red.csv"}, "--current is read by --if drift only, not --if schedule"),
        ({"retries": -1}, "--retries -1: use 0 or more"),
        ({"retry_delay": "soon"}, "--retry-delay 'soon': duration 'soon': expected a number and a unit"),
        ({"timeout": "0s"}, "--timeout '0s': use a positive duration"),
        ({"dag_id": "my dag"}, "--dag-id 'my dag': use letters, digits"),
        ({"data": "/data/{{ ds }}.csv"}, "Airflow would read '{{', '{%' or '{#' in a command as a Jinja template"),
    ],
)
def test_bad_options_are_refused_naming_the_option(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    cfg = load_config(_project(tmp_path / "wine"))
    with pytest.raises(ValidationError) as err:
        spec_for(cfg, **options)
    assert message in str(err.value)


def test_presets_and_cron_are_normalised(tmp_path: Path) -> None:
    cfg = load_config(_project(tmp_path / "wine"))
    assert spec_for(cfg, schedule="@Weekly").schedule == "@weekly"
    assert spec_for(cfg, schedule="  0  3 * *   MON ").schedule == "0 3 * * mon"
    assert spec_for(cfg, schedule="None").schedule is None
    text = render(spec_for(cfg, schedule="*/15 * * * *"))
    assert '    schedule="*/15 * * * *",\n' in text


# -- Airflow itself -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def airflow_python() -> str:
    """A Python with apache-airflow: $MLOPS_AIRFLOW_PYTHON, else .venv-airflow beside the repository."""
    given = os.environ.get("MLOPS_AIRFLOW_PYTHON")
    python = Path(given) if given else REPO / ".venv-airflow" / "bin" / "python"
    if not python.is_file():
        if given:
            pytest.fail(f"MLOPS_AIRFLOW_PYTHON={given}: no such file")
        pytest.skip(
            f"Airflow is not installed: `make airflow` makes {python.parent.parent} "
            "(or set MLOPS_AIRFLOW_PYTHON to a Python that has apache-airflow)"
        )
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('apache-airflow'))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode != 0:
        why = f"{python} has no apache-airflow (`make airflow` installs it): {probe.stderr.strip().splitlines()[-1:]}"
        pytest.fail(why) if given else pytest.skip(why)
    return str(python)


def _airflow(python: str, dags: Path, home: Path, *run: str) -> dict[str, Any]:
    """scripts/airflow_check.py in the Airflow interpreter: the DagBag, and `dag.test()` of each DAG in `run`."""
    out = home / "result.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    args = [python, str(CHECK), "--dags", str(dags), "--home", str(home), "--json", str(out)]
    for dag_id in run:
        args += ["--run", dag_id, "--poll", "0.1"]  # dag.test() waits 1 s per idle round otherwise
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=280)
    log = home / "airflow.log"
    log.write_text(done.stdout + done.stderr)
    assert done.returncode == 0, f"airflow_check failed ({done.returncode}), log in {log}:\n{done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_airflow_dagbag_loads_the_dag_with_its_tasks_and_dependencies(airflow_python: str, tmp_path: Path) -> None:
    project = _project(tmp_path / "wine")
    dags = tmp_path / "dags"
    weekly = json.loads(run_cli("pipeline", "airflow", "--out", str(dags), "--json", cwd=project).stdout)
    run_cli("pipeline", "airflow", "--out", str(dags), "--schedule", "none", "--dag-id", "wine_manual", cwd=project)
    (dags / "broken.py").write_text("# an airflow DAG\nraise RuntimeError('a broken DAG file')\n")

    result = _airflow(airflow_python, dags, tmp_path / "airflow-home")
    # the DagBag's import errors are per file: only the deliberately broken one
    assert list(result["import_errors"]) == [str(dags / "broken.py")], result["import_errors"]
    assert "a broken DAG file" in next(iter(result["import_errors"].values()))
    assert set(result["dags"]) == {"mlopsctl_retrain_wine", "wine_manual"}

    dag = result["dags"]["mlopsctl_retrain_wine"]
    assert dag["fileloc"] == weekly["path"] and dag["schedule"] == "0 3 * * 1"
    assert dag["catchup"] is False and dag["max_active_runs"] == 1
    assert dag["tags"] == ["mlopsctl", "retraining", "wine"] and dag["start_date"].startswith("2025-01-01T00:00:00")
    assert "`mlopsctl pipeline step STEP --run RUN_ID`" in dag["doc_md"] and str(project) in dag["doc_md"]
    assert dag["topological"] == list(runs.STEPS) and sorted(dag["task_ids"]) == sorted(runs.STEPS)
    for i, step in enumerate(runs.STEPS):
        task = dag["tasks"][step]
        assert task["operator"] == "BashOperator"
        assert task["upstream"] == ([runs.STEPS[i - 1]] if i else [])
        assert task["downstream"] == ([runs.STEPS[i + 1]] if i + 1 < len(runs.STEPS) else [])
        assert task["retries"] == 2 and task["retry_delay"] == 300 and task["execution_timeout"] == 6 * 3600
        assert task["trigger_rule"] == "all_success"  # an upstream skip (exit 99) skips it too
        assert task["skip_on_exit_code"] in (99, [99]) and task["append_env"] is True
        assert task["env"] == {RUN_ENV: "{{ run_id }}"}
        assert task["bash_command"] == weekly["commands"][step]
        assert task["doc_md"] and task["owner"] == "mlopsctl"
    assert result["dags"]["wine_manual"]["schedule"] is None
    assert result["dags"]["wine_manual"]["timetable"] == "NullTimetable"


@pytest.mark.slow
@pytest.mark.shared_data
def test_airflow_runs_the_pipeline_skips_on_no_drift_retries_a_failure_and_promotes(
    airflow_python: str, wine_store_copy: Path, tmp_path: Path
) -> None:
    # production is the session's red-wine forest (v1). The project trains a smaller forest, for speed, with a
    # gate that lets it through: the gate is tested in test_pipeline.py, the orchestration here
    project = write_project(tmp_path / "wine", store=wine_store_copy, params="{ n_estimators = 20, max_depth = 8 }")
    toml = project / "mlops.toml"
    toml.write_text(toml.read_text().replace("gate_tolerance = 0.01", "gate_tolerance = 1.0"))
    store = open_store(str(wine_store_copy))
    before = registry.version_numbers(store, "wine")
    red = tmp_path / "red.csv"
    pd.read_csv(WINE_RED, sep=";").drop(columns=["quality"]).sample(800, random_state=2).to_csv(
        red, sep=";", index=False
    )
    dags = tmp_path / "dags"

    def dag(dag_id: str, *options: str) -> None:
        run_cli("pipeline", "airflow", "--out", str(dags), "--dag-id", dag_id, *options, cwd=project)

    dag("calm", "--if", "drift", "--current", str(red))  # red wine arriving at the red model: no drift
    dag("broken", "--if", "always", "--data", str(tmp_path / "missing.csv"), "--retries", "1", "--retry-delay", "1s")
    dag("always", "--if", "always", "--rollout", "direct")

    result = _airflow(airflow_python, dags, tmp_path / "airflow-home", "calm", "broken", "always")
    assert result["import_errors"] == {}
    calm, broken, always = (result["runs"][d] for d in ("calm", "broken", "always"))

    # 1. the trigger exits 99: its task is skipped, not retried, and so is every task after it
    assert calm["tasks"] == dict.fromkeys(runs.STEPS, "skipped"), calm
    assert calm["tries"]["trigger"] == 1 and calm["state"] == "success"
    record = runs.get_run(store, "wine", runs.clean_run_id(calm["run_id"]))
    assert record["status"] == "skipped" and [s["name"] for s in record["steps"]] == ["trigger"]
    assert "no dataset drift" in record["summary"]

    # 2. the data step fails (exit 1): retried once, the run fails, nothing after it runs, production unchanged
    assert broken["state"] == "failed", broken
    assert broken["tasks"]["trigger"] == "success" and broken["tasks"]["data"] == "failed"
    assert broken["tries"]["data"] == 2  # the first try and its retry
    assert {broken["tasks"][s] for s in runs.STEPS[2:]} == {"upstream_failed"}
    record = runs.get_run(store, "wine", runs.clean_run_id(broken["run_id"]))
    assert record["status"] == "failed" and record["error"]["step"] == "data"
    assert "missing.csv" in record["error"]["message"]

    # 3. every step done by its own task: a new version, promoted; the failed run's lock did not block it
    assert always["state"] == "success" and always["tasks"] == dict.fromkeys(runs.STEPS, "success"), always
    record = runs.get_run(store, "wine", runs.clean_run_id(always["run_id"]))
    assert record["status"] == "succeeded" and record["trigger"] == "always"
    assert [s["name"] for s in record["steps"]] == list(runs.STEPS)
    assert all(s["status"] == "done" for s in record["steps"])
    version = next(s for s in record["steps"] if s["name"] == "publish")["outputs"]["version"]
    assert registry.version_numbers(store, "wine") == [*before, version]
    prod = registry.get_alias(store, "wine", "prod")
    assert prod is not None and prod["version"] == version
    promoted = [e for e in registry.events(store, "wine") if e["action"] == "promote"][-1]
    assert record["id"] in promoted["reason"]
    assert not store.exists(runs.lock_key("wine"))
