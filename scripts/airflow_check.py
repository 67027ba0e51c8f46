"""Load a DAGs folder with Airflow's own DagBag and, optionally, run DAGs once with `dag.test()`.

Runs in a Python that has apache-airflow installed (`make airflow` makes `.venv-airflow`), not
in mlopsctl's: the DAG's tasks call mlopsctl by its absolute path, as on a real worker.

    .venv-airflow/bin/python scripts/airflow_check.py --dags DIR --home TMPDIR --json OUT [--run DAG_ID]... [--poll S]

Writes to OUT: the Airflow version, the import errors, and for each DAG its schedule, settings and
tasks (upstream/downstream, retries, bash command, environment); for each `--run`, the state of
the DAG run and of each task instance. Airflow's own logs go to standard output and error.
Airflow 2 (2.6 or later) and 3 both work.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any


def _seconds(value: Any) -> float | None:
    return value.total_seconds() if isinstance(value, timedelta) else None


def _schedule(dag: Any) -> Any:
    """The schedule as the DAG file gave it: a cron expression, a preset or None."""
    if hasattr(dag, "schedule"):  # Airflow 3
        return dag.schedule
    return dag.schedule_interval  # Airflow 2


def describe(dag: Any) -> dict[str, Any]:
    tasks = {}
    for task in dag.tasks:
        skip = task.skip_on_exit_code
        tasks[task.task_id] = {
            "operator": type(task).__name__,
            "upstream": sorted(task.upstream_task_ids),
            "downstream": sorted(task.downstream_task_ids),
            "retries": task.retries,
            "retry_delay": _seconds(task.retry_delay),
            "execution_timeout": _seconds(task.execution_timeout),
            "trigger_rule": str(getattr(task.trigger_rule, "value", task.trigger_rule)),
            "bash_command": task.bash_command,
            "env": task.env,
            "append_env": task.append_env,
            "skip_on_exit_code": sorted(skip) if isinstance(skip, list | tuple | set) else skip,
            "doc_md": task.doc_md,
            "owner": task.owner,
        }
    return {
        "dag_id": dag.dag_id,
        "fileloc": dag.fileloc,
        "schedule": _schedule(dag),
        "timetable": type(dag.timetable).__name__,
        "timetable_description": getattr(dag.timetable, "description", None),
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "tags": sorted(dag.tags),
        "doc_md": dag.doc_md,
        "description": dag.description,
        "start_date": dag.start_date.isoformat() if dag.start_date else None,
        "task_ids": [t.task_id for t in dag.tasks],
        "topological": [t.task_id for t in dag.topological_sort()] if hasattr(dag, "topological_sort") else None,
        "tasks": tasks,
    }


def dagbag(folder: str) -> Any:
    import inspect

    try:  # Airflow 3.1+
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2, 3.0
        from airflow.models import DagBag
    if "include_examples" in inspect.signature(DagBag).parameters:  # gone in 3.2 (examples are a bundle)
        return DagBag(dag_folder=folder, include_examples=False)
    return DagBag(dag_folder=folder)


def run(dag: Any, poll: float) -> dict[str, Any]:
    """One DAG run in this process, as `airflow dags test` does: no scheduler, no executor. Between
    two rounds with nothing to run (a skip or a failure spreading to the next task, a retry's delay)
    `dag.test()` of Airflow 3 sleeps 1 s; ``poll`` shortens that wait, nothing else."""
    from unittest import mock

    started = time.monotonic()
    sleep = time.sleep
    with mock.patch("time.sleep", lambda seconds: sleep(min(seconds, poll))):
        dr = dag.test()
    from airflow.utils.session import create_session

    with create_session() as session:
        from airflow.models.dagrun import DagRun

        fresh = session.query(DagRun).filter(DagRun.dag_id == dag.dag_id, DagRun.run_id == dr.run_id).one()
        states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in fresh.get_task_instances()}
        tries = {ti.task_id: ti.try_number for ti in fresh.get_task_instances()}
        state = str(getattr(fresh.state, "value", fresh.state))
    return {
        "run_id": dr.run_id,
        "state": state,
        "tasks": states,
        "tries": tries,
        "seconds": round(time.monotonic() - started, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dags", required=True, help="The DAGs folder.")
    ap.add_argument("--home", required=True, help="AIRFLOW_HOME: a scratch folder (its sqlite DB is made here).")
    ap.add_argument("--json", required=True, help="Where to write the result.")
    ap.add_argument("--run", action="append", default=[], help="Run this DAG once with dag.test() (repeatable).")
    ap.add_argument("--poll", type=float, default=1.0, help="dag.test()'s wait between idle rounds (Airflow: 1 s).")
    args = ap.parse_args()
    home = Path(args.home).absolute()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(args.dags).absolute())
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}")
    os.environ.setdefault("AIRFLOW__CORE__EXECUTOR", "SequentialExecutor" if _major() == 2 else "LocalExecutor")

    t0 = time.monotonic()
    import airflow

    result: dict[str, Any] = {"airflow": airflow.__version__, "python": sys.version.split()[0]}
    if args.run:
        from airflow.utils import db

        db.initdb()  # a fresh sqlite DB from the ORM: seconds, not the migrations
        result["initdb_seconds"] = round(time.monotonic() - t0, 2)
    bag = dagbag(args.dags)
    result["import_errors"] = {str(k): str(v) for k, v in bag.import_errors.items()}
    result["dags"] = {dag_id: describe(dag) for dag_id, dag in bag.dags.items()}
    result["load_seconds"] = round(time.monotonic() - t0, 2)
    result["runs"] = {}
    for dag_id in args.run:
        dag = bag.get_dag(dag_id) if hasattr(bag, "get_dag") else bag.dags[dag_id]
        result["runs"][dag_id] = run(dag, args.poll)
    result["seconds"] = round(time.monotonic() - t0, 2)
    Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    return 0


def _major() -> int:
    from importlib.metadata import version

    return int(version("apache-airflow").split(".")[0])


if __name__ == "__main__":
    sys.exit(main())
