"""`make demo`: the whole loop on a dataset that ships with scikit-learn, printed as it goes.

init → validate → ingest → train → publish → approve → promote → serve → predict →
train a second model → publish → promote through the gate (hot reload) → bad input →
rollback → history → metrics → feedback → A/B test → drift → alert rules → retraining →
deployment files and cost. Everything runs in ./demo-workspace on the local store.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "demo-workspace"
PROJECT = WORK / "demo"
BIN = Path(sys.executable).parent / "mlopsctl"


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def mlopsctl(*args: str, cwd: Path = PROJECT, check: bool = True) -> str:
    print(f"$ mlopsctl {' '.join(args)}", flush=True)
    proc = subprocess.run(
        [str(BIN), *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "110"}
    )
    out = (proc.stdout + proc.stderr).rstrip()
    if out:
        print(out, flush=True)
    if check and proc.returncode != 0:
        sys.exit(f"demo failed: mlopsctl {' '.join(args)} exited {proc.returncode}")
    return proc.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_version(url: str, row: dict, version: int, timeout: float = 15) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if httpx.post(url + "/predict", json={"features": row}).json().get("model_version") == version:
            return time.monotonic() - start
        time.sleep(0.1)
    sys.exit(f"demo failed: the server did not switch to v{version} in {timeout}s")


def main() -> None:
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir()

    say("1. A project from a CSV (scikit-learn's breast cancer data, written as the CSV you would bring)")
    mlopsctl("init", "demo", "--example", "breast_cancer", cwd=WORK)
    cfg = PROJECT / "mlops.toml"
    cfg.write_text(cfg.read_text().replace("reload_interval_seconds = 2", "reload_interval_seconds = 0.5"))

    say("2. Validate and snapshot the data (content-addressed)")
    mlopsctl("data", "validate", "data/breast_cancer.csv")
    mlopsctl("data", "ingest", "data/breast_cancer.csv")

    say("3. Train a random forest: cross-validation, holdout metrics, lineage")
    mlopsctl("train")
    mlopsctl("runs", "list")

    say("4. Publish v1 (skops + ONNX checked against scikit-learn on the holdout), approve, promote to prod")
    mlopsctl("publish")
    mlopsctl("approve", "demo", "1", "--reason", "reviewed the metrics")
    mlopsctl("promote", "demo", "1", "--alias", "prod", "--reason", "first release")

    say("5. Serve prod on 127.0.0.1 and ask it for a prediction")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (WORK / "server.log").open("w")
    server = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port), "--log-level", "warning"],
        cwd=PROJECT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        t0 = time.monotonic()
        while True:
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() - t0 > 30:
                sys.exit("demo failed: the server did not start; see demo-workspace/server.log")
            time.sleep(0.05)
        print(f"server ready in {time.monotonic() - t0:.2f}s at {url} (OpenAPI docs at {url}/docs)")
        import csv

        with (PROJECT / "data" / "breast_cancer.csv").open() as fh:
            first = next(csv.DictReader(fh))
        row = {k: float(v) for k, v in first.items() if k != "target"}
        print(f'$ POST {url}/predict  {{"features": {{"mean radius": {row["mean radius"]}, ... 30 features}}}}')
        print(json.dumps(httpx.post(url + "/predict", json={"features": row}).json(), indent=2))

        say("6. Train a second model (logistic regression), publish v2 and promote it through the gate")
        cfg.write_text(
            cfg.read_text()
            .replace('model = "random_forest"', 'model = "logistic_regression"')
            .replace("params = { n_estimators = 100, max_depth = 12 }", "params = {}")
        )
        mlopsctl("train")
        mlopsctl("publish")
        mlopsctl("approve", "demo", "2")
        mlopsctl("promote", "demo", "2", "--alias", "prod", "--reason", "better macro F1")
        took = wait_for_version(url, row, 2)
        print(f"the running server now answers with v2 ({took:.2f}s after the promotion, no restart)")
        print(json.dumps(httpx.post(url + "/predict", json={"features": row}).json(), indent=2))

        say("7. Bad input gets a 4xx naming the field; the server keeps serving")
        bad = {**row, "mean radius": "large"}
        del bad["worst area"]
        resp = httpx.post(url + "/predict", json={"features": bad})
        print(f"HTTP {resp.status_code}: {json.dumps(resp.json())}")

        say("8. Roll production back: the alias moves back, the server follows")
        mlopsctl("rollback", "demo", "--alias", "prod", "--reason", "demo rollback")
        took = wait_for_version(url, row, 1)
        print(f"serving v1 again {took:.2f}s after the rollback")

        say("9. The record: models, history of every move, metrics")
        mlopsctl("models", "list")
        mlopsctl("models", "history", "demo")
        metrics = httpx.get(url + "/metrics").text
        for line in metrics.splitlines():
            if line.startswith(("mlops_requests_total", "mlops_model_info")):
                print(line)

        say("10. Monitoring: every prediction is captured; ground truth comes back as feedback")
        import pandas as pd

        data = pd.read_csv(PROJECT / "data" / "breast_cancer.csv")
        sample = data.sample(200, random_state=1)
        answers = httpx.post(
            url + "/predict", json={"instances": sample.drop(columns=["target"]).to_dict(orient="records")}
        ).json()
        labels = [
            {"request_id": answers["request_id"], "row": i, "label": int(t)} for i, t in enumerate(sample["target"])
        ]
        answer = httpx.post(url + "/feedback", json=labels).json()
        print(f"200 rows predicted in one request; POST /feedback with their true labels: {answer}")
        print(f"status page: {url}/dashboard")

        say("11. A/B test: v2 as the candidate against prod (v1), 50/50, each user pinned to one variant")
        mlopsctl("ab", "start", "demo", "--control", "prod", "--candidate", "2", "--split", "50/50",
                 "--sticky", "X-User-Id", "--reason", "does v2 beat v1 on live traffic?")  # fmt: skip
        t0 = time.monotonic()
        while httpx.post(url + "/predict", json={"features": row}).json()["variant"] == "prod":
            if time.monotonic() - t0 > 15:
                sys.exit("demo failed: the server did not pick up the experiment")
            time.sleep(0.1)
        seen: dict[str, int] = {}
        labels = []
        features = data.drop(columns=["target"]).to_dict(orient="records")
        for i, (feats, truth) in enumerate(zip(features, data["target"], strict=True)):
            got = httpx.post(url + "/predict", json={"features": feats}, headers={"X-User-Id": f"user-{i % 150}"})
            body = got.json()
            seen[body["variant"]] = seen.get(body["variant"], 0) + 1
            labels.append({"request_id": body["request_id"], "label": int(truth)})
        httpx.post(url + "/feedback", json=labels)
        print(f"{len(features)} requests from 150 users: {seen}; each got its true label back as feedback")
    finally:
        server.terminate()
        server.wait(10)
    print("(the server flushed its capture buffer on shutdown)")
    mlopsctl("performance", "demo", "--since", "1h", "--window", "1h")
    mlopsctl("capture", "export", "demo", "--since", "1h", "--out", "captured.csv")
    mlopsctl("ab", "report", "demo", "--html", "ab-report.html")
    mlopsctl("ab", "conclude", "demo", "--reason", "demo over")
    print(f"A/B report: {PROJECT / 'ab-report.html'}; the experiment is concluded, prod stays on v1")

    say("12. Drift: live inputs against the training baseline (exit 1 means drift)")
    mlopsctl("drift", "demo", "--since", "1h", "--html", "drift-live.html", check=False)
    shifted = data.drop(columns=["target"]).sample(300, random_state=2)
    for col in [c for c in shifted.columns if c.startswith("mean ")]:  # 10 of the 30 features
        shifted[col] = shifted[col] * 1.3
    shifted.to_csv(PROJECT / "shifted.csv", index=False)
    mlopsctl("drift", "demo", "--current", "shifted.csv", "--html", "drift-shifted.html", check=False)
    print(f"reports: {PROJECT / 'drift-live.html'}, {PROJECT / 'drift-shifted.html'} (self-contained pages)")

    say("13. Alert rules for Prometheus, from [monitoring.alerts]")
    mlopsctl("monitor", "rules", "--format", "prometheus", "--out", "alerts.yml")
    print((PROJECT / "alerts.yml").read_text()[:600] + "…")

    say("14. Retraining: drift in the inputs triggers the pipeline; the new model goes out as a canary")
    mlopsctl("retrain", "--if", "drift", "--current", "shifted.csv", "--reason", "the inputs shifted")
    mlopsctl("pipeline", "runs")
    mlopsctl("ab", "status", "demo")
    mlopsctl("pipeline", "schedule", "--cron", "0 3 * * 1", "--if", "drift")
    print("(that line, with --install, runs the same check every Monday at 03:00)")

    say("15. Your own model: a pipeline trained in your own code, published with the Python API")
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import train_test_split

    import mlopsctl as api  # the Python API (the `mlopsctl` function here runs the CLI)

    X, y = data.drop(columns=["target"]), data["target"]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    own = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(X_train, y_train)
    print("model = HistGradientBoostingClassifier(max_iter=100).fit(X_train, y_train)   # your code")
    print("version = mlopsctl.publish(model, X=X_test, y=y_test, project='demo')")
    version = api.publish(own, X=X_test, y=y_test, project=PROJECT)
    check = version.manifest["export"]
    print(
        f"→ {version.name} v{version.number}: runtime {version.runtime} (ONNX checked on {check['n_rows_checked']} "
        f"rows, largest difference {check['max_abs_diff']:.1e}), holdout accuracy {version.metrics['accuracy']:.3f}"
    )
    local = api.load(f"demo@{version.number}", project=PROJECT)
    print(f"mlopsctl.load('demo@{version.number}').predict(X_test[:5]) = {local.predict(X_test.iloc[:5])}")
    mlopsctl("models", "show", f"demo@{version.number}")

    say("16. Deployment files and the monthly bill")
    mlopsctl("deploy", "docker", "--out", "deploy/docker")
    mlopsctl("deploy", "aws", "--out", "deploy/aws")
    mlopsctl("cost")
    say(f"Done. Everything is in {PROJECT} (store: {PROJECT / '.mlops'})")


if __name__ == "__main__":
    main()
