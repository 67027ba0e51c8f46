"""Time Evidently's DataDriftPreset on the drift benchmark's data. Run by ``drift_bench.py``, in a
Python that has Evidently installed (it is not a dependency of mlopsctl):

    /tmp/evvenv/bin/python bench/drift_evidently.py REFERENCE.parquet CURRENT.parquet --repeats 3

Prints one JSON line: Evidently's version and the seconds per run, for its default tests (for more
than 1,000 rows: normed Wasserstein distance for numbers, Jensen–Shannon distance for categories) and
with the same tests as mlopsctl's verdicts (``num_method="ks"``, ``cat_method="chisquare"``). A run
is ``Report.run`` plus ``Snapshot.dict()``, so every result is computed. Telemetry is turned off.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's telemetry switch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("reference")
    ap.add_argument("current")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import evidently
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref, cur = pd.read_parquet(args.reference), pd.read_parquet(args.current)
    categorical = ["region", "vintage"]
    numeric = [c for c in ref.columns if c not in categorical]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)

    def run(**options: str) -> tuple[float, int]:
        t0 = time.perf_counter()
        ref_ds = Dataset.from_pandas(ref, data_definition=definition)
        cur_ds = Dataset.from_pandas(cur, data_definition=definition)
        snapshot = Report([DataDriftPreset(**options)]).run(cur_ds, ref_ds)
        result = snapshot.dict()
        return time.perf_counter() - t0, len(json.dumps(result, default=str))

    out: dict[str, object] = {"version": evidently.__version__}
    for key, options in (("default", {}), ("ks_chi2", {"num_method": "ks", "cat_method": "chisquare"})):
        run(**options)  # warm-up
        out[key] = [run(**options)[0] for _ in range(args.repeats)]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
