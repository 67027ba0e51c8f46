"""The retraining pipeline: trigger → data → train → evaluate → gate → publish → rollout.

Each step reads what the earlier ones recorded and returns what it adds; the run record
(``pipeline/runs.py``) keeps every step's outputs, so a failed run can be resumed from the
step that failed, and production is touched only by the last step. Publishing is idempotent
per training run, so running again never makes a second version of the same run.

- **trigger**: ``always`` and ``schedule`` fire; ``drift`` fires when the production version's
  drift check (captured inputs of the last ``[retrain] drift_window``, or a file) finds dataset
  drift; ``performance`` fires when a live metric from feedback is past its bound in
  ``[monitoring.alerts] min`` / ``max``, a metric's name (``accuracy``, ``f1_macro``, ``rmse``…)
  when that one is (``taskmetrics``, the same judgement as `monitor check`). Not firing ends the
  run as ``skipped``.
- **data**: the training data (the project's file or ``--data``) validated against the schema
  of the data production was trained on; with ``include_feedback``, captured inputs that got a
  ground-truth label are added as rows.
- **train**: the project's config on that data (a normal training run, with lineage).
- **evaluate**: the new model and the production version on the same *fresh* holdout: the new
  run's holdout rows that production never trained on.
- **gate**: the project's primary metric and ``gate_tolerance``, as for ``promote``.
- **publish**: a new immutable version (the same one again for the same run).
- **rollout**: ``direct`` promotes (the approval rule applies: an alias that requires approval
  ends the run as ``awaiting_approval``); ``canary`` starts an A/B canary through the
  experiments machinery, with the guard and the ramp.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, NoReturn

from mlopsctl.config import Config, prometheus_duration
from mlopsctl.errors import DataError, MlopsError, ValidationError
from mlopsctl.monitoring.taskmetrics import CLASSIFICATION, REGRESSION
from mlopsctl.pipeline import runs
from mlopsctl.store.base import Store

METRIC_TRIGGERS = CLASSIFICATION + REGRESSION  # a live metric past its bound
TRIGGERS = ("always", "schedule", "drift", "performance", *METRIC_TRIGGERS)
ROLLOUTS = ("direct", "canary")
Log = Callable[[str], None]


class StepFailed(MlopsError):
    """A pipeline step failed; production is untouched unless the step was the rollout."""

    def __init__(self, run_id: str, step: str, message: str) -> None:
        self.run_id, self.step, self.message = run_id, step, message
        super().__init__(
            f"pipeline {run_id} failed at step {step}: {message} "
            f"(production unchanged; `mlopsctl retrain --resume` continues from {step})"
        )


class Gated(MlopsError):
    """The new model did not pass the gate: published nothing, moved nothing."""


class Ended(MlopsError):
    """The run ended before this step (skipped, gated, awaiting approval or succeeded)."""

    def __init__(self, run_id: str, status: str, summary: str) -> None:
        self.run_id, self.status = run_id, status
        super().__init__(f"pipeline {run_id} has ended: {status}" + (f" ({summary})" if summary else ""))


@dataclass
class Options:
    trigger: str = "always"
    rollout: str = "canary"
    data: str | None = None
    include_feedback: bool = False
    current: str | None = None  # a file for the drift trigger instead of captured inputs
    alias: str = "prod"
    reason: str = ""
    # how --data and --current are read over the project's [data] settings (data.read.FileOptions.but)
    sep: str | None = None
    header: bool | None = None
    columns: str | None = None

    def file_options(self, cfg: Config) -> Any:
        from mlopsctl.data.read import FileOptions

        return FileOptions.of(cfg).but(sep=self.sep, header=self.header, columns=self.columns)

    def check(self) -> None:
        if self.trigger not in TRIGGERS:
            raise ValidationError(
                f"--if {self.trigger!r}: use one of {', '.join(TRIGGERS)}", [("if", f"one of {', '.join(TRIGGERS)}")]
            )
        if not isinstance(self.include_feedback, bool):
            raise ValidationError(
                f"include_feedback {self.include_feedback!r}: expected true or false",
                [("include_feedback", "expected true or false")],
            )
        if self.rollout not in ROLLOUTS:
            raise ValidationError(
                f"--rollout {self.rollout!r}: use one of {', '.join(ROLLOUTS)}",
                [("rollout", f"one of {', '.join(ROLLOUTS)}")],
            )


def trigger_bounds(cfg: Config, trigger: str) -> list[tuple[str, str, float]]:
    """The (metric, side, bound) a live-metric trigger judges: ``performance`` all of the configured ones,
    a metric's name its own. Refused: a metric the project's task does not have, or one with no bound."""
    from mlopsctl.monitoring.taskmetrics import FLOORS, metrics_of

    alerts, task = cfg.monitoring.alerts, cfg.training.task
    have = metrics_of(task)
    if trigger != "performance" and trigger not in have:
        raise ValidationError(
            f"--if {trigger}: {trigger} is not a metric of {task} models: use --if performance or one of "
            + ", ".join(have),
            [("--if", f"one of performance, {', '.join(have)}")],
        )
    bounds = [b for b in alerts.bounds() if trigger in ("performance", b[0])]
    if not bounds:
        metric = have[0] if trigger == "performance" else trigger
        example = f"{'min' if metric in FLOORS else 'max'} = {{ {metric} = ... }}"
        what = "a live metric" if trigger == "performance" else trigger
        raise ValidationError(
            f"--if {trigger} needs a bound on {what} in [monitoring.alerts], e.g. {example}",
            [("monitoring.alerts", f"no bound on {what}")],
        )
    return bounds


class Pipeline:
    def __init__(self, cfg: Config, store: Store, *, log: Log | None = None) -> None:
        self.cfg, self.store = cfg, store
        self.model = cfg.model_name
        self.log = log or (lambda line: None)
        self.rcfg = cfg.retrain
        self.run_id = ""
        self.announce_end = True  # log the outcome (`retrain` prints it itself)

    # -- running --------------------------------------------------------------------------------
    def _new_record(self, options: Options, run_id: str | None = None) -> dict[str, Any]:
        return {
            "id": run_id or runs.new_run_id(),
            "model": self.model,
            "trigger": options.trigger,
            "options": asdict(options),
            "status": "running",
            "started_at": runs.now_iso(),
            "steps": [],
        }

    def _lock(self, record: dict[str, Any]) -> runs.Lock:
        self.run_id = str(record["id"])
        return runs.Lock(self.store, self.model, self.run_id, stale_after=self.rcfg.lock_stale_after)

    def run(self, options: Options, *, resume: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run (or resume) the pipeline; returns the run record. Raises StepFailed or Gated at the end
        of a failed or gated run, after recording it."""
        record, lock = self.begin(options, resume=resume)
        return self.finish(record, lock)

    def begin(
        self, options: Options, *, resume: dict[str, Any] | None = None, run_id: str | None = None
    ) -> tuple[dict[str, Any], runs.Lock]:
        """Take the model's lock and record the run as started (refused at once if another runs)."""
        options.check()
        if options.trigger not in ("always", "schedule", "drift"):
            trigger_bounds(self.cfg, options.trigger)  # refused before a run is recorded
        if resume is not None:
            record = resume
            record["resumed"] = [*record.get("resumed", []), runs.now_iso()]
            record["status"] = "running"
            record.pop("error", None)
        else:
            record = self._new_record(options, run_id)
        lock = self._lock(record)
        lock.acquire()
        try:
            runs.save(self.store, record)
        except BaseException:
            lock.release()
            raise
        return record, lock

    def finish(self, record: dict[str, Any], lock: runs.Lock) -> dict[str, Any]:
        """The steps not done yet, in order; the lock is released at the end whatever happens."""
        try:
            opts = Options(**record["options"])
            for name in runs.STEPS:
                if self._done(record, name) is None and self._execute(record, name, opts, lock):
                    return record
            return self._end(record, "succeeded", record.get("summary", ""))
        finally:
            lock.release()

    def step(self, name: str, run_id: str, options: Options) -> dict[str, Any]:
        """Run one step of run ``run_id`` (one scheduler task per step, e.g. Airflow). ``trigger``
        starts the run; each later step needs the earlier ones done. A step already done is not
        run again (a retried task). The lock is held from the first step to the end of the run.
        Raises Ended when the run already ended before this step (skipped, gated, …)."""
        if name not in runs.STEPS:
            raise ValidationError(f"step {name!r}: use one of {', '.join(runs.STEPS)}", [("step", name)])
        options.check()
        run_id = runs.clean_run_id(run_id)
        record = self.store.get_json_or(runs.run_key(self.model, run_id))
        if record is None:
            if name != runs.STEPS[0]:
                raise ValidationError(
                    f"pipeline run {run_id} of {self.model} does not exist: its first step is {runs.STEPS[0]}",
                    [("run", run_id)],
                )
            record = self._new_record(options, run_id)
        if record["status"] not in ("running", "failed"):
            raise Ended(run_id, record["status"], record.get("summary", ""))
        before = runs.STEPS[: runs.STEPS.index(name)]
        missing = [s for s in before if self._done(record, s) is None]
        if missing:
            raise ValidationError(
                f"pipeline {run_id}: step {name} needs {', '.join(missing)} done first", [("step", name)]
            )
        lock = self._lock(record)
        lock.acquire()
        if self._done(record, name) is not None:
            return record
        record.update(status="running")
        record.pop("error", None)
        runs.save(self.store, record)
        try:
            ended = self._execute(record, name, Options(**record["options"]), lock)
        except MlopsError:
            lock.release()  # a retry takes it again
            raise
        if ended:
            lock.release()
        elif name == runs.STEPS[-1]:
            self._end(record, "succeeded", record.get("summary", ""))
            lock.release()
        return record

    @staticmethod
    def _done(record: dict[str, Any], name: str) -> dict[str, Any] | None:
        return next((s for s in record["steps"] if s["name"] == name and s["status"] == "done"), None)

    def _execute(self, record: dict[str, Any], name: str, options: Options, lock: runs.Lock) -> bool:
        """Run step ``name`` with the outputs of the steps done before it; record it. True when the
        run ends here (skipped, awaiting approval); raises (after recording) when gated or failed."""
        record["steps"] = [s for s in record["steps"] if s["status"] == "done"]
        outputs: dict[str, Any] = {}
        for s in record["steps"]:
            outputs.update(s.get("outputs", {}))
        lock.refresh(name)
        step: dict[str, Any] = {"name": name, "status": "running", "started_at": runs.now_iso()}
        record["steps"].append(step)
        runs.save(self.store, record)
        t0 = time.monotonic()
        try:
            out, ended = getattr(self, f"_{name}")(options, outputs)
        except Gated as exc:
            step.update(status="done", seconds=round(time.monotonic() - t0, 3), outputs={}, message=str(exc))
            self._end(record, "gated", str(exc), raising=True)
            raise
        except MlopsError as exc:
            self._fail(record, step, t0, str(exc))
        except Exception as exc:  # a bug or a library error: recorded with its type, never half-swallowed
            self._fail(record, step, t0, f"{type(exc).__name__}: {exc}")
        step.update(status="done", seconds=round(time.monotonic() - t0, 3), outputs=out)
        record["summary"] = out.get("summary", "")
        runs.save(self.store, record)
        self.log(f"{name}: {out.get('summary') or _short(out)}")
        if ended:
            self._end(record, ended, out.get("summary", ""))
            return True
        return False

    def _fail(self, record: dict[str, Any], step: dict[str, Any], t0: float, message: str) -> NoReturn:
        step.update(status="failed", seconds=round(time.monotonic() - t0, 3), error=message)
        record["error"] = {"step": step["name"], "message": message}
        exc = StepFailed(record["id"], step["name"], message)
        self._end(record, "failed", str(exc), raising=True)
        raise exc

    def _end(self, record: dict[str, Any], status: str, summary: str, *, raising: bool = False) -> dict[str, Any]:
        """Record how the run ended. ``raising``: the caller raises the error next (it says the rest)."""
        record.update(status=status, finished_at=runs.now_iso(), summary=summary)
        runs.save(self.store, record)
        if self.announce_end:
            self.log(f"{record['id']}: {status}" + (f": {summary}" if summary and not raising else ""))
        return record

    # -- the steps: each returns (outputs, how the run ends here or None) ------------------------------
    def _production(self, alias: str) -> int | None:
        from mlopsctl import registry

        doc = registry.get_alias(self.store, self.model, alias)
        return None if doc is None else int(doc["version"])

    def _trigger(self, o: Options, _: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        current = self._production(o.alias)
        base: dict[str, Any] = {"production_version": current}
        if o.trigger in ("always", "schedule"):
            return {**base, "fired": True, "trigger_summary": o.trigger, "summary": f"{o.trigger}: runs"}, None
        if current is None:
            raise DataError(f"{self.model}@{o.alias}", f"--if {o.trigger} needs a version in {o.alias} to check")
        if o.trigger == "drift":
            report, too_few = self._drift(current, o)
            if report is None:
                return {**base, "fired": False, "trigger_summary": too_few, "summary": too_few}, "skipped"
            fired = bool(report["dataset_drift"])
            summary = (
                f"drift on {report['n_drifted']} of {report['n_features']} features "
                f"({', '.join(report['drifted_features'][:5])})"
                if fired
                else f"no dataset drift ({report['n_drifted']} of {report['n_features']} features)"
            )
            out = {**base, "fired": fired, "drift": report, "trigger_summary": summary, "summary": summary}
            return out, None if fired else "skipped"
        return self._performance(o, base)

    def _performance(self, o: Options, base: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        from mlopsctl.monitoring.performance import live_metrics
        from mlopsctl.monitoring.taskmetrics import breaches

        bounds = trigger_bounds(self.cfg, o.trigger)
        alerts = self.cfg.monitoring.alerts
        values, n, _ = live_metrics(self.store, self.model, alerts.labels_window, alerts.min_labels)
        if values is None:
            summary = f"{n} labelled predictions in the window, fewer than {alerts.min_labels}: no verdict"
            out = {**base, "fired": False, "metrics": None, "labelled": n, "trigger_summary": summary}
            return out | {"summary": summary}, "skipped"
        past, within = [], []
        for metric, side, bound in bounds:
            v = values.get(metric)
            if v is None:
                within.append(f"{metric} undefined")
            elif breaches(metric, v, bound):
                past.append(f"live {metric} {v:.4f} on {n} labels {'<' if side == 'min' else '>'} {bound:g}")
            else:
                within.append(f"live {metric} {v:.4f} on {n} labels {'≥' if side == 'min' else '≤'} {bound:g}")
        fired = bool(past)
        summary = "; ".join(past or within)
        shown = {k: v for k, v in values.items() if k != "per_class"}
        out = {**base, "fired": fired, "metrics": shown, "labelled": n, "trigger_summary": summary, "summary": summary}
        if "accuracy" in values:
            out["accuracy"] = values["accuracy"]
        return out, None if fired else "skipped"

    def _drift(self, version: int, o: Options) -> tuple[dict[str, Any] | None, str]:
        """The drift report's verdict; (None, why) when too few inputs were captured for one (a
        scheduled check on a quiet model is skipped, not failed)."""
        from mlopsctl.data.read import read_data
        from mlopsctl.monitoring.captured import captured_current
        from mlopsctl.monitoring.drift import DriftSettings, detect, load_reference, save_report

        reference = load_reference(self.store, self.model, version)
        settings = DriftSettings.from_section(self.cfg.monitoring.drift)
        source: dict[str, Any]
        if o.current:
            frame, source = read_data(o.current, o.file_options(self.cfg)), {"kind": "file", "path": o.current}
        else:
            since = time.time() - self.rcfg.drift_window
            features = [f["name"] for f in reference.features]
            frame, _ = captured_current(self.store, self.model, version, features, since=since)
            source = {"kind": "captured", "since": since, "description": f"capture/{self.model}/ since {since}"}
            if len(frame) < settings.min_rows:
                window = prometheus_duration(self.rcfg.drift_window)
                return None, (
                    f"{len(frame)} inputs of v{version} captured in the last {window}, fewer than "
                    f"{settings.min_rows} ([monitoring.drift] min_rows): no verdict"
                )
        report = detect(reference, frame, settings, source=source)
        key = save_report(self.store, self.model, report)
        d = report.to_dict()
        keep = ("dataset_drift", "n_drifted", "n_features", "drifted_features", "drifted_share", "current_rows")
        return {k: d[k] for k in keep} | {"report": key}, ""

    def _data(self, o: Options, outputs: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        import pandas as pd

        from mlopsctl.data.read import read_data
        from mlopsctl.data.snapshot import ingest
        from mlopsctl.data.validate import validate

        path = o.data or str(self.cfg.data_path())
        d = self.cfg.data
        df = read_data(path, o.file_options(self.cfg))
        production = outputs.get("production_version")
        warnings: list[str] = []
        if production is not None:
            schema = self._training_schema(production)
            report = validate(df, schema, target=d.target)
            if not report.ok:
                first = report.errors[0]
                problem = f"{first.detail} ({len(report.errors)} error(s) against the data v{production} trained on)"
                raise DataError(path, problem, column=first.column or None)
            warnings = [f"{w.column}: {w.detail}" for w in report.warnings][:20]
        n_file = len(df)
        n_feedback = 0
        if o.include_feedback:
            labelled = self._feedback_rows(list(df.columns))
            n_feedback = len(labelled)
            if n_feedback:
                df = pd.concat([df, labelled], ignore_index=True)
        snapshot, _ = ingest(self.store, df, source=path, target=d.target)
        summary = f"{len(df):,} rows ({n_file:,} from {path}" + (
            f", {n_feedback:,} labelled from capture)" if o.include_feedback else ")"
        )
        out = {"dataset": snapshot.sha256, "rows": len(df), "feedback_rows": n_feedback, "source": path}
        return out | {"warnings": warnings, "summary": summary}, None

    def _training_schema(self, version: int) -> Any:
        from mlopsctl import registry
        from mlopsctl.data.snapshot import load_snapshot

        sha = registry.manifest(self.store, self.model, version).get("data_sha256")
        if not sha:
            return None
        _, snap = load_snapshot(self.store, sha, verify=False)
        return snap.schema

    def _feedback_rows(self, columns: list[str]) -> Any:
        """Captured inputs with a ground-truth label, as training rows (the label in the target column)."""
        import pandas as pd

        from mlopsctl.monitoring.performance import labelled_records

        since = time.time() - self.rcfg.feedback_window
        rows = [  # an hour of capture at a time: only the labelled rows are kept
            {**r["inputs"], self.cfg.data.target: r["label"]}
            for r in labelled_records(self.store, self.model, since)
            if r.get("inputs") and not str(r.get("variant") or "").startswith("shadow")
        ]
        return pd.DataFrame.from_records(rows).reindex(columns=columns)

    def _train(self, o: Options, outputs: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        from mlopsctl.data.snapshot import load_snapshot
        from mlopsctl.training.train import train_project

        df, _ = load_snapshot(self.store, outputs["dataset"])
        source = f"dataset {outputs['dataset'][:12]} ({outputs['source']})"
        run = train_project(self.cfg, self.store, frame=(df, source))
        metric = run["primary_metric"]
        value = run["metrics"]["holdout"].get(metric)
        summary = f"run {run['run_id']}: {metric} {value:.4f} on its holdout ({run['data']['n_holdout']} rows)"
        return {"run_id": run["run_id"], "metric": metric, "summary": summary}, None

    def _evaluate(self, o: Options, outputs: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        from mlopsctl.pipeline.evaluate import fresh_holdout_scores

        scores = fresh_holdout_scores(
            self.store,
            self.model,
            outputs["run_id"],
            outputs.get("production_version"),
            min_rows=self.rcfg.min_fresh_rows,
            trusted_types=self.cfg.registry.trusted_types,
        )
        return scores, None

    def _gate(self, o: Options, outputs: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        from mlopsctl.registry.gate import check

        current = outputs.get("production_version")
        result = check(
            outputs["metric"],
            outputs["candidate_score"],
            outputs.get("current_score"),
            self.cfg.registry.gate_tolerance,
            candidate_version=None,
            current_version=current,
            method=outputs["method"],
        )
        if not result.passed:
            raise Gated(f"the gate stopped it: {result.message}")
        return {"gate": result.to_dict(), "summary": result.message}, None

    def _publish(self, o: Options, outputs: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        from mlopsctl.registry.publishing import publish_run
        from mlopsctl.training.runs import get_run

        run = get_run(self.store, outputs["run_id"])
        done = publish_run(self.store, run, name=self.model, trusted_types=self.cfg.registry.trusted_types)
        said = "published" if done.created else "already published as"
        return {"version": done.version, "summary": f"{said} {self.model} v{done.version}"}, None

    def _rollout(self, o: Options, outputs: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        from mlopsctl.errors import GateRefused
        from mlopsctl.registry.promotion import RegistrySettings, promote

        version, alias = int(outputs["version"]), o.alias
        why = o.reason or f"retrain ({outputs.get('trigger_summary') or o.trigger})"
        reason = f"pipeline {self.run_id}: {why}; {outputs['gate']['message']}"
        if o.rollout == "direct" or outputs.get("production_version") is None:
            cur_score = outputs.get("current_score")
            scores = (float(outputs["candidate_score"]), float(cur_score or 0.0), str(outputs["method"]))
            try:
                move = promote(
                    self.store,
                    self.model,
                    version,
                    alias,
                    settings=RegistrySettings.from_config(self.cfg),
                    reason=reason,
                    # the scores of the evaluate step, for the version they were computed against
                    evaluator=lambda cand, cur: (
                        scores if cur_score is not None and cur == outputs.get("production_version") else None
                    ),
                )
            except GateRefused as exc:
                if alias in self.cfg.registry.require_approval and "requires approval" in str(exc):
                    out = {"rollout": "awaiting_approval", "summary": f"v{version} waits for approval: {exc}"}
                    return out, "awaiting_approval"
                raise
            moved = "already served" if move.event is None else "promoted"
            return {"rollout": "direct", "summary": f"{self.model}@{alias} → v{version} ({moved})"}, None
        from mlopsctl.experiments import deployment as dep
        from mlopsctl.experiments.report import planned_rows

        ecfg = self.cfg.experiments
        d = dep.start(
            self.store,
            self.model,
            control=alias,
            candidate=str(version),
            split=self.rcfg.canary_split,
            ramp=self.rcfg.canary_ramp or ecfg.ramp or None,
            reason=reason,
            plan=lambda v: planned_rows(self.store, self.model, v, ecfg),
        )
        e = d.experiment or {}
        summary = f"canary {e.get('id')}: v{version} on {d.weight(dep.CANDIDATE):g}% of {self.model}@{alias}, guarded"
        return {"rollout": "canary", "experiment": e.get("id"), "summary": summary}, None


def _short(out: dict[str, Any]) -> str:
    keep = {k: v for k, v in out.items() if k not in ("drift", "warnings", "gate") and not isinstance(v, dict | list)}
    return ", ".join(f"{k}={v}" for k, v in keep.items())
