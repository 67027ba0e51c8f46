"""Bring your own model, as a notebook would: your LightGBM pipeline on the adult census data, published with
mlopsctl's Python API, promoted, and served. Run it from anywhere:

    python docs/examples/byo_lightgbm_adult.py [--data ../shared/data/adult/adult.csv] [--workdir DIR] [--port 8011]

It makes its own project folder (an mlops.toml and a store under --workdir), so it touches nothing else.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

import mlopsctl

HERE = Path(__file__).resolve()
DEFAULT_DATA = HERE.parents[3] / "shared" / "data" / "adult" / "adult.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--port", type=int, default=8011)
    args = ap.parse_args()
    project = args.workdir or Path(tempfile.mkdtemp(prefix="byo-adult-"))
    project.mkdir(parents=True, exist_ok=True)

    # 1. your data and your model, in your own code ------------------------------------------------------
    adult = pd.read_csv(args.data, skipinitialspace=True, na_values="?")
    y = (adult.pop("Salary") == ">50K").astype(int).rename("income")
    categorical = [c for c in adult.columns if not pd.api.types.is_numeric_dtype(adult[c])]
    numeric = [c for c in adult.columns if c not in categorical]
    X_train, X_test, y_train, y_test = train_test_split(adult, y, test_size=0.2, random_state=0, stratify=y)
    model = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [("num", "passthrough", numeric), ("cat", OneHotEncoder(handle_unknown="ignore"), categorical)]
                ),
            ),
            ("model", LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=31, verbose=-1)),
        ]
    )
    model.fit(X_train, y_train)

    # 2. a project: where the store is, the model's name, who must approve prod -------------------------
    (project / "mlops.toml").write_text(
        '[project]\nname = "adult"\n[data]\npath = "adult.csv"\ntarget = "income"\n'
        '[registry]\nrequire_approval = []\n[store]\nuri = ".mlops"\n'
    )

    # 3. publish: the held-out rows give the signature, the drift baseline and the holdout metrics ------
    version = mlopsctl.publish(model, X=X_test, y=y_test, project=project, metrics={"my_cv_auc": 0.92})
    print(f"published {version.name} v{version.number}: runtime {version.runtime}, metrics {version.metrics}")
    print(
        f"export check: {version.manifest['export']['n_rows_checked']} rows, "
        f"largest difference {version.manifest['export']['max_abs_diff']:.1e}"
    )

    # 4. promote and serve, as the CLI would ---------------------------------------------------------------
    cli = [sys.executable, "-m", "mlopsctl.cli.main"]
    subprocess.run([*cli, "promote", "adult", str(version.number), "--alias", "prod"], cwd=project, check=True)
    server = subprocess.Popen([*cli, "serve", "--port", str(args.port), "--log-level", "warning"], cwd=project)
    try:
        url = f"http://127.0.0.1:{args.port}"
        for _ in range(300):
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        rows = X_test.iloc[:3].astype(object).where(X_test.iloc[:3].notna(), None).to_dict(orient="records")
        answer = httpx.post(url + "/predict", json={"instances": rows}, timeout=10).json()
        print("served:", answer["predictions"], [round(p["1"], 4) for p in answer["probabilities"]])
        print(
            "yours: ",
            model.predict(X_test.iloc[:3]).tolist(),
            model.predict_proba(X_test.iloc[:3])[:, 1].round(4).tolist(),
        )

        # 5. the same version, loaded locally: the server's validation and runtime, no HTTP --------------
        local = mlopsctl.load("adult@prod", project=project)
        print("local: ", local.predict(X_test.iloc[:3]))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
