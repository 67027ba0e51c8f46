"""The retraining pipeline, run as a user runs it (`mlopsctl retrain` in a subprocess) on wine data.

Production is the session's red-wine forest (v1). White wine arriving at it is the simulated
drift; a one-tree stump is the worse model; a bad data file and a running experiment are the
failing steps.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from mlopsctl import registry
from mlopsctl.experiments import deployment as dep
from mlopsctl.pipeline import runs
from mlopsctl.store import open_store
from tests.conftest import WINE_RED, WINE_WHITE, run_cli, wine_rows, write_project

pytestmark = pytest.mark.shared_data

FAST_FOREST = "{ n_estimators = 30, max_depth = 10 }"


def _project(
    tmp_path: Path, store: Path, params: str = FAST_FOREST, data: Path = WINE_RED, *, open_gate: bool = False
) -> Path:
    """open_gate: a gate_tolerance of 1.0 lets the small forest through the gate against v1 (100 trees), in the
    tests of step-by-step runs, failures and resumption, and the webhook: training a forest as large as v1's only to
    pass the gate cost ~5 s a run. The gate's verdicts are tested with the default tolerance (a worse model, the
    loop)."""
    folder = write_project(tmp_path / "wine", store=store, params=params, data=data)
    if open_gate:
        toml = folder / "mlops.toml"
        toml.write_text(toml.read_text().replace("gate_tolerance = 0.01", "gate_tolerance = 1.0"))
    return folder


def _retrain(project: Path, *args: str, check: bool = True) -> tuple[Any, dict[str, Any]]:
    out = run_cli("retrain", *args, "--json", cwd=project, check=check)
    return out, (json.loads(out.stdout) if out.stdout.strip() else {})


def _versions(store: Path) -> list[int]:
    return registry.version_numbers(open_store(str(store)), "wine")


@pytest.mark.slow
def test_white_wine_drift_retrains_publishes_and_canaries(
    wine_store_copy: Path, wine_registry: dict[str, Any], tmp_path: Path
) -> None:
    red, white = pd.read_csv(WINE_RED, sep=";"), pd.read_csv(WINE_WHITE, sep=";")
    arriving = tmp_path / "arriving-white.csv"
    white.drop(columns=["quality"]).sample(800, random_state=1).to_csv(arriving, sep=";", index=False)
    both = tmp_path / "red-and-white.csv"
    pd.concat([red, white]).to_csv(both, sep=";", index=False)
    project = _project(tmp_path, wine_store_copy)
    before = _versions(wine_store_copy)

    # red wine arriving at the red model: no drift, nothing happens
    calm = tmp_path / "red.csv"
    red.drop(columns=["quality"]).sample(800, random_state=2).to_csv(calm, sep=";", index=False)
    _, skipped = _retrain(project, "--if", "drift", "--current", str(calm), "--data", str(both))
    assert skipped["status"] == "skipped" and [s["name"] for s in skipped["steps"]] == ["trigger"]
    assert _versions(wine_store_copy) == before

    _, record = _retrain(project, "--if", "drift", "--current", str(arriving), "--data", str(both))
    assert record["status"] == "succeeded", record
    steps = {s["name"]: s for s in record["steps"]}
    assert list(steps) == list(runs.STEPS) and all(s["status"] == "done" for s in steps.values())
    drift = steps["trigger"]["outputs"]["drift"]
    assert drift["dataset_drift"] and "total sulfur dioxide" in drift["drifted_features"]
    assert steps["data"]["outputs"]["rows"] == len(red) + len(white)
    ev = steps["evaluate"]["outputs"]
    # fresh holdout: the white rows and the red rows v1 held out, never the rows v1 trained on
    assert ev["fresh_rows"] < ev["holdout_rows"] and ev["fresh_rows"] > 0.7 * ev["holdout_rows"]
    assert "never trained on" in ev["method"]
    assert ev["candidate_score"] > ev["current_score"] + 0.05  # red-only v1 is poor on white wine
    version = steps["publish"]["outputs"]["version"]
    assert _versions(wine_store_copy) == [*before, version]
    assert steps["rollout"]["outputs"]["rollout"] == "canary"

    store = open_store(str(wine_store_copy))
    running = dep.running(store, "wine")
    assert running is not None and running.experiment is not None
    assert running.experiment["id"] == steps["rollout"]["outputs"]["experiment"]
    assert running.weight(dep.CANDIDATE) == 10 and registry.get_alias(store, "wine", "prod")["version"] == 1
    events = [e for e in registry.events(store, "wine") if e["action"] == "ab_start"]
    assert events and record["id"] in events[-1]["reason"] and "drift on" in events[-1]["reason"]

    listed = run_cli("pipeline", "runs", cwd=project).stdout
    assert record["id"] in listed and "succeeded" in listed and skipped["id"] in listed and "skipped" in listed
    shown = run_cli("pipeline", "show", record["id"], cwd=project).stdout
    assert all(name in shown for name in runs.STEPS)


@pytest.mark.slow
def test_the_loop_closes_white_wine_served_labelled_then_retrained_from_capture(
    wine_store_copy: Path, tmp_path: Path, start_server: Any
) -> None:
    """White wine reaches the red-wine server; its true qualities come back as feedback; `retrain --if
    drift --include-feedback` finds the drift in what was captured and learns from the labelled rows."""
    project = _project(tmp_path, wine_store_copy, params="{ n_estimators = 100 }")
    server = start_server(["serve"], cwd=project)
    white = pd.read_csv(WINE_WHITE, sep=";").sample(400, random_state=3)
    rows = white.drop(columns=["quality"]).to_dict(orient="records")
    labels = []
    for i in range(0, len(rows), 50):
        r = httpx.post(server.url + "/predict", json={"instances": rows[i : i + 50]}, headers={"x-request-id": f"w{i}"})
        assert r.status_code == 200
        labels += [{"request_id": f"w{i}", "row": j, "label": int(q)} for j, q in enumerate(white.quality[i : i + 50])]
    fed = httpx.post(server.url + "/feedback", json=labels)
    assert fed.status_code == 200 and fed.json()["accepted"] == 400, fed.json()["rejected"][:3]
    server.stop()  # flushes the capture

    _, record = _retrain(project, "--if", "drift", "--include-feedback")
    assert record["status"] == "succeeded", record
    steps = {s["name"]: s["outputs"] for s in record["steps"]}
    assert steps["trigger"]["drift"]["dataset_drift"] and steps["trigger"]["drift"]["current_rows"] == 400
    assert (steps["data"]["rows"], steps["data"]["feedback_rows"]) == (1599 + 400, 400)
    assert steps["evaluate"]["candidate_score"] > steps["evaluate"]["current_score"]
    assert steps["rollout"]["rollout"] == "canary"

    # the accuracy rule: v1's live accuracy on the labelled white wine is far below 0.9
    dep.end(open_store(str(wine_store_copy)), "wine", outcome="stopped", reason="next: the accuracy trigger")
    (project / "mlops.toml").write_text(
        (project / "mlops.toml").read_text() + "\n[monitoring.alerts]\naccuracy_min = 0.9\n"
    )
    _, by_accuracy = _retrain(project, "--if", "accuracy", "--include-feedback", "--rollout", "direct")
    trigger = by_accuracy["steps"][0]["outputs"]
    assert trigger["fired"] and trigger["labelled"] == 400 and trigger["accuracy"] < 0.9
    assert trigger["summary"].startswith("live accuracy 0.") and "on 400 labels < 0.9" in trigger["summary"]
    assert by_accuracy["status"] == "succeeded"
    promoted = by_accuracy["steps"][-2]["outputs"]["version"]
    assert registry.get_alias(open_store(str(wine_store_copy)), "wine", "prod")["version"] == promoted


def test_a_worse_model_is_stopped_by_the_gate_with_both_numbers(wine_store_copy: Path, tmp_path: Path) -> None:
    project = _project(tmp_path, wine_store_copy, params="{ n_estimators = 1, max_depth = 1 }")
    before = _versions(wine_store_copy)
    out, record = _retrain(project, "--rollout", "direct", check=False)
    assert out.returncode == 1
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("error: the gate stopped it: f1_macro (higher is better) of the new model = 0.")
    assert "vs v1 = 0." in line and "never trained on" in line
    assert record["status"] == "gated" and [s["name"] for s in record["steps"]][-1] == "gate"
    assert _versions(wine_store_copy) == before
    assert registry.get_alias(open_store(str(wine_store_copy)), "wine", "prod")["version"] == 1


@pytest.mark.slow
def test_failed_steps_leave_production_serving_and_resume_without_a_second_version(
    wine_store_copy: Path, tmp_path: Path, start_server: Any
) -> None:
    project = _project(tmp_path, wine_store_copy, open_gate=True)
    store = open_store(str(wine_store_copy))
    server = start_server(["--store", str(wine_store_copy), "serve", "-m", "wine@prod", "--reload-interval", "0.5"])

    def served() -> int:
        r = httpx.post(server.url + "/predict", json={"features": wine_rows(1)[0]}, timeout=10)
        assert r.status_code == 200
        return int(r.json()["model_version"])

    # 1. the data step fails on a bad file: nothing trained, nothing published
    bad = tmp_path / "bad.csv"
    frame = pd.read_csv(WINE_RED, sep=";")
    frame["alcohol"] = frame["alcohol"].astype(object)
    frame.loc[3, "alcohol"] = "strong"
    frame.to_csv(bad, sep=";", index=False)
    before = _versions(wine_store_copy)
    out, record = _retrain(project, "--data", str(bad), check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: pipeline {record['id']} failed at step data: ")
    assert (
        f"{bad}: column 'alcohol': " in out.stderr
        and "(production unchanged; `mlopsctl retrain --resume` continues from data)" in (out.stderr)
    )
    assert record["status"] == "failed" and record["error"]["step"] == "data"
    assert _versions(wine_store_copy) == before and served() == 1

    # 2. the rollout fails (an experiment already runs on the model): published once, prod untouched
    dep.start(store, "wine", control="prod", candidate="2", split="50/50", reason="someone else's test")
    out, record = _retrain(project, check=False)
    assert out.returncode == 1 and record["error"]["step"] == "rollout", out.stderr
    assert "failed at step rollout" in out.stderr and "ab stop" in out.stderr
    published = _versions(wine_store_copy)
    assert len(published) == len(before) + 1
    assert registry.get_alias(store, "wine", "prod")["version"] == 1

    # 3. resumed after the experiment ends: the same version, from the step that failed
    dep.end(store, "wine", outcome="stopped", reason="make room")
    _, resumed = _retrain(project, "--resume")
    assert resumed["id"] == record["id"] and resumed["status"] == "succeeded" and resumed["resumed"]
    assert _versions(wine_store_copy) == published  # no second version for the same training run
    assert [s["name"] for s in resumed["steps"]] == list(runs.STEPS)
    assert dep.running(store, "wine") is not None
    time.sleep(1.5)  # the server polls the deployment every 0.5 s
    answers = Counter(served() for _ in range(80))
    new = published[-1]
    assert set(answers) <= {1, new} and answers[1] >= 55, answers  # the control keeps ~90 %, the canary ~10 %

    nothing = run_cli("retrain", "--resume", cwd=project, check=False)
    assert nothing.returncode == 1 and "the last run is succeeded: nothing to resume" in nothing.stderr


def test_a_second_pipeline_is_refused_and_a_stale_lock_is_taken_over(wine_store_copy: Path, tmp_path: Path) -> None:
    project = _project(tmp_path, wine_store_copy)
    store = open_store(str(wine_store_copy))
    held = {"run": "p-20261123T000000Z-abcdef", "step": "train", "refreshed": time.time(), "by": "ci@runner"}
    store.put_json(runs.lock_key("wine"), held)
    out = run_cli("retrain", "--if", "drift", "--current", str(WINE_RED), cwd=project, check=False)
    assert out.returncode == 1
    assert out.stderr.strip().startswith(
        "error: a retraining pipeline for wine is running: p-20261123T000000Z-abcdef (step train, by ci@runner, "
    )
    store.put_json(runs.lock_key("wine"), held | {"refreshed": time.time() - 7 * 3600})  # its process died
    red = tmp_path / "red.csv"
    pd.read_csv(WINE_RED, sep=";").drop(columns=["quality"]).sample(800, random_state=2).to_csv(
        red, sep=";", index=False
    )
    _, record = _retrain(project, "--if", "drift", "--current", str(red))
    assert record["status"] == "skipped" and not store.exists(runs.lock_key("wine"))


def test_trigger_and_option_errors_name_the_setting(wine_store_copy: Path, tmp_path: Path) -> None:
    project = _project(tmp_path, wine_store_copy)
    out = run_cli("retrain", "--if", "accuracy", cwd=project, check=False)
    assert out.returncode == 1 and "needs a bound on accuracy in [monitoring.alerts], e.g. min = { accuracy" in (
        out.stderr
    )
    out = run_cli("retrain", "--if", "sometimes", cwd=project, check=False)
    assert out.returncode == 1
    assert "--if 'sometimes': use one of always, schedule, drift, performance, accuracy, f1_macro" in out.stderr
    out = run_cli("retrain", "--rollout", "yolo", cwd=project, check=False)
    assert out.returncode == 1 and "--rollout 'yolo': use one of direct, canary" in out.stderr
    toml = (project / "mlops.toml").read_text() + "\n[monitoring.alerts]\naccuracy_min = 0.6\n"
    (project / "mlops.toml").write_text(toml)
    _, record = _retrain(project, "--if", "accuracy")
    assert record["status"] == "skipped" and "fewer than 50: no verdict" in record["summary"]
    _, record = _retrain(project, "--if", "drift")  # nothing captured: a quiet model is skipped, not failed
    assert record["status"] == "skipped"
    assert (
        record["summary"]
        == "0 inputs of v1 captured in the last 1d, fewer than 30 ([monitoring.drift] min_rows): no verdict"
    )


def test_pipeline_step_runs_one_step_at_a_time_with_scheduler_exit_codes(wine_store_copy: Path, tmp_path: Path) -> None:
    project = _project(tmp_path, wine_store_copy, open_gate=True)
    airflow_id = "scheduled__2026-11-23T03:00:00+00:00"

    def step(name: str, *extra: str) -> Any:
        return run_cli("pipeline", "step", name, "--run", airflow_id, *extra, cwd=project, check=False)

    early = step("train")
    assert early.returncode == 1 and "does not exist: its first step is trigger" in early.stderr
    assert step("trigger", "--rollout", "direct").returncode == 0
    assert step("evaluate").returncode == 1  # data and train first
    for name in ("data", "train", "train", "evaluate", "gate", "publish"):  # train twice: a retried task
        assert step(name).returncode == 0, name
    store = open_store(str(wine_store_copy))
    record = runs.get_run(store, "wine", runs.clean_run_id(airflow_id))
    assert record["status"] == "running" and store.exists(runs.lock_key("wine"))  # held between tasks
    assert [s["name"] for s in record["steps"]] == list(runs.STEPS[:-1])
    version = record["steps"][-1]["outputs"]["version"]
    assert step("rollout").returncode == 0
    record = runs.get_run(store, "wine", runs.clean_run_id(airflow_id))
    assert record["status"] == "succeeded" and not store.exists(runs.lock_key("wine"))
    assert registry.get_alias(store, "wine", "prod")["version"] == version
    assert step("rollout").returncode == 99  # the run has ended: a late task is skipped

    calm = tmp_path / "red.csv"
    pd.read_csv(WINE_RED, sep=";").drop(columns=["quality"]).sample(800, random_state=2).to_csv(calm, sep=";")
    quiet = run_cli(
        "pipeline", "step", "trigger", "--run", "r2", "--if", "drift", "--current", str(calm), cwd=project, check=False
    )
    assert quiet.returncode == 99 and "r2: skipped: no dataset drift" in quiet.stderr  # downstream tasks skip
    skipped = run_cli("pipeline", "step", "data", "--run", "r2", cwd=project, check=False)
    assert skipped.returncode == 99 and "has ended: skipped" in skipped.stderr


def test_schedule_prints_and_installs_one_crontab_line(tmp_path: Path, wine_store_copy: Path) -> None:
    import os
    import shutil
    import subprocess

    project = _project(tmp_path, wine_store_copy)
    line = run_cli("pipeline", "schedule", "--cron", "0  3 * * MON", "--if", "drift", cwd=project).stdout.strip()
    assert line.startswith("0 3 * * mon cd ") and "retrain --if drift --rollout canary >> " in line
    assert line.endswith(f"2>&1 # mlopsctl retrain {project.resolve()}")
    for cron, words in [
        ("0 3 * *", "expected five fields"),
        ("61 3 * * *", "minute 61 is outside 0–59"),
        ("0 3 * * funday", "day of week 'funday' is not a number from 0 to 7 or sun–sat"),
        ("*/0 * * * *", "a step of 0"),
        ("@sometimes", "unknown macro"),
    ]:
        out = run_cli("pipeline", "schedule", "--cron", cron, cwd=project, check=False)
        assert out.returncode == 1 and words in out.stderr, (cron, out.stderr)

    if shutil.which("crontab") is None or os.geteuid() != 0:
        pytest.skip("installing needs Debian's cron (`make test` installs it as root) and root for a throwaway user")
    user = "mlopsctl-cron-test"
    subprocess.run(["useradd", "--system", "--no-create-home", user], capture_output=True)  # exists: fine
    subprocess.run(["crontab", "-u", user, "-r"], capture_output=True)
    subprocess.run(["crontab", "-u", user, "-"], input="15 * * * * echo keep me\n", text=True, check=True)
    for cron in ("0 3 * * 1", "30 4 * * *"):  # the second replaces the first
        run_cli("pipeline", "schedule", "--cron", cron, "--install", "--user", user, cwd=project)
    table = subprocess.run(["crontab", "-u", user, "-l"], capture_output=True, text=True, check=True).stdout
    assert table.splitlines()[0] == "15 * * * * echo keep me"
    assert [x for x in table.splitlines() if "mlopsctl retrain" in x] == [
        line.replace("0 3 * * mon", "30 4 * * *").replace("--if drift", "--if schedule")
    ]
    run_cli("pipeline", "schedule", "--cron", "@daily", "--remove", "--user", user, cwd=project)
    table = subprocess.run(["crontab", "-u", user, "-l"], capture_output=True, text=True, check=True).stdout
    assert table.splitlines() == ["15 * * * * echo keep me"]
    subprocess.run(["crontab", "-u", user, "-r"], capture_output=True)


def test_retrain_webhook_needs_the_key_runs_in_the_background_and_never_logs_the_key(
    wine_store_copy: Path, tmp_path: Path, start_server: Any
) -> None:
    project = _project(tmp_path, wine_store_copy, open_gate=True)
    key = "s3cr3t-management-key-0123456789"
    server = start_server(["serve"], cwd=project, env={"MLOPS_API_KEY": key})
    url = server.url + "/retrain"
    assert httpx.post(url).status_code == 401
    wrong = httpx.post(url, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["detail"][0]["field"] == "authorization"
    bad = httpx.post(url, json={"if": "sometimes"}, headers={"X-API-Key": key})
    assert bad.status_code == 422 and "use one of always" in bad.text
    unknown = httpx.post(url, json={"when": "now"}, headers={"X-API-Key": key})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["field"] == "when"

    auth = {"Authorization": f"Bearer {key}"}
    started = httpx.post(url, json={"rollout": "direct", "reason": "hook test"}, headers=auth)
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    again = httpx.post(url, json={}, headers=auth)
    assert again.status_code == 409 and run_id in again.text  # one pipeline per model
    assert httpx.get(f"{url}/{run_id}").status_code == 401
    deadline = time.time() + 120
    while time.time() < deadline:
        record = httpx.get(f"{url}/{run_id}", headers=auth).json()
        if record["status"] != "running":
            break
        time.sleep(0.5)
    assert record["status"] == "succeeded", record
    assert record["process"]["pid"] != server.proc.pid  # trained in a process of its own, not in the server
    version = record["steps"][-2]["outputs"]["version"]
    time.sleep(1.5)  # the server reloads prod within its 0.5 s poll
    r = httpx.post(server.url + "/predict", json={"features": wine_rows(1)[0]})
    assert r.json()["model_version"] == version
    assert httpx.get(f"{url}/p-nope", headers=auth).status_code == 404
    server.stop()
    assert key not in server.log.read_text()
    assert key not in json.dumps(runs.get_run(open_store(str(wine_store_copy)), "wine", run_id))


def test_a_server_without_a_key_keeps_management_shut(wine_store_copy: Path, tmp_path: Path, start_server: Any) -> None:
    project = _project(tmp_path, wine_store_copy)
    server = start_server(["serve"], cwd=project, env={"MLOPS_API_KEY": ""})
    r = httpx.post(server.url + "/retrain", headers={"Authorization": "Bearer anything"})
    assert r.status_code == 401 and "start the server with MLOPS_API_KEY set" in r.text
