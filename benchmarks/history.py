"""Three simulated years of the reference pipeline's history, as the product would have left it
(used by trace_latency.py).

Why it is shaped like this: a lineage query's cost depends on how many table versions it has to
open, so the history must have the versions a real deployment has. Every run is exactly one
Delta commit of its own (``userMetadata`` names the run, rows carry ``_tl_run_id``), each run
pins the version that was newest when it started - so records pin ~1,100 different versions per
table - and the data is as large as the recorded config says (``trips_per_day``). Only the
hourly predictions (~26,000 runs) share one bulk commit, which keeps generation to minutes; their
records say so (all point at that version) and each still lists its own files and digest.

What a daily cadence produces, per simulated day D:
  01:00 raw_trips D      02:00 cleaned_trips D (reads raw_trips, keys trip_id)
  03:00 trip_features D  (reads cleaned_trips, keys trip_id)      04:00 trip_labels D-2 (late labels)
  Monday 05:00 training_set (14 days of features and labels, the newest labels still missing)
  Monday 06:00 tip_model (reads the training set, registers model version k)
  D+1 every hour h:30    tip_predictions D h (features of D, the recent models table, model vk)
plus re-runs of a partition every ~97 days (the partition is replaced) and one failed re-run
whose commit was rolled back - the history a real pipeline has.

Records are made by the product: ``Recorder._record`` (the same fields, code and library
versions a live run records), chained through the journal (``append_many``) and flushed to the
Delta audit tables every 100 runs, then compacted as the hourly maintenance does; check results
go through ``check_result_rows``. Content digests hash the bytes written (``files_digest``).

The history is cached under ``benchmarks/results/history/<key>`` (git-ignored); the key names
the generator version, the size and the audit record's fields, so a change to any of them makes
a new one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from dataclasses import fields as dc_fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))

import history_data as data

from tracelake.lineage import open_lakehouse
from tracelake.lineage.record import delta_meta
from tracelake.lineage.record.audit_tables import CHECK_RESULTS, COMPONENT_RUNS
from tracelake.lineage.record.checks import CheckResult, check_result_rows
from tracelake.lineage.record.recorder import Recorder
from tracelake.lineage.record.rollback import roll_back
from tracelake.lineage.record.run import ComponentRun, OutputRecord
from tracelake.lineage.record.runid import new_run_id

__all__ = ["GENERATOR_VERSION", "cache_key", "ensure_history", "generate"]

GENERATOR_VERSION = 2
CACHE_ROOT = Path(__file__).with_name("results") / "history"
START = date(2023, 1, 2)  # a Monday
RERUN_EVERY = 97          # a partition re-run (replaced) every ~97 days
ROLLED_BACK_DAY = 500     # the re-run of this day fails after its commit and is rolled back
_REPO = Path(__file__).resolve().parent.parent
_SOURCES = {"raw_trips": "assets/simulation.py", "cleaned_trips": "assets/etl.py",
            "trip_features": "assets/features.py", "trip_labels": "assets/labels.py",
            "training_set": "assets/training.py", "tip_model": "assets/training.py",
            "tip_predictions": "assets/inference.py"}
_KEYS = {"cleaned_trips": {"raw_trips": ["trip_id"]}, "trip_features": {"cleaned_trips": ["trip_id"]},
         "training_set": {"trip_features": ["trip_id"], "trip_labels": ["trip_id"]},
         "tip_predictions": {"trip_features": ["trip_id"], "tip_model": ["model_version"]}}


def cache_key(years: int, trips_per_day: int, days: int | None = None) -> str:
    """Generator version, size and the record's fields: any change makes a new history."""
    fields = ",".join(COMPONENT_RUNS.schema.names) + "|" + ",".join(f.name for f in dc_fields(OutputRecord))
    span = f"{days}d" if days else f"{years}y"
    return f"v{GENERATOR_VERSION}-{span}-{trips_per_day}t-{hashlib.sha256(fields.encode()).hexdigest()[:8]}"


def ensure_history(years: int = 3, trips_per_day: int = 2000, root: Path = CACHE_ROOT,
                   days: int | None = None) -> tuple[str, dict]:
    """The cached history (generated first if missing): (lakehouse home, generation summary)."""
    home = root / cache_key(years, trips_per_day, days)
    done = home / "history.json"
    if done.exists():
        return str(home), json.loads(done.read_text())
    building = home.with_name(home.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    print(f"generating {years} simulated years ({trips_per_day} trips/day) under {building} ...", flush=True)
    summary = generate(str(building), years=years, trips_per_day=trips_per_day, days=days)
    (building / "history.json").write_text(json.dumps(summary, indent=2))
    building.rename(home)  # only a finished history is ever found under the key
    return str(home), summary


def _ts(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


class _History:
    """The simulation: writes each run's commit, then its record (see the module docstring)."""

    def __init__(self, home: str, trips_per_day: int):
        self.lake = open_lakehouse(home)
        self.home = home
        self.trips = trips_per_day
        # The product's recorder, without MLflow or Spark: only its record builder is used.
        self.recorder = Recorder(layout=self.lake.layout, store=self.lake.store, mlflow=None,  # type: ignore[arg-type]
                                 spark_provider=lambda: None)
        self.writers = {t: data.TableWriter(self.lake.layout.table(t)) for t in _SOURCES if t != "tip_predictions"}
        self.config = {"resources": {"simulator": {"seed": 7, "trips_per_day": trips_per_day, "faults": []},
                                     "lakehouse": {"home": home}}}
        self.runs: list[dict[str, Any]] = []
        self.checks: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}
        self.added = "added_files" in {f.name for f in dc_fields(OutputRecord)}

    # -- records ---------------------------------------------------------------------------------
    def begin(self, component: str, partition: str, started: datetime, inputs: list[dict]) -> ComponentRun:
        run = ComponentRun(
            recorder=self.recorder, run_id=new_run_id(int(started.timestamp() * 1000)), component=component,
            asset_key=component, partition_key=partition, partition_keys=[partition],
            dagster_run_id=f"sim-{started:%Y%m%d%H%M}-{component}", code_version=f"{component}-v3",
            source_hash=hashlib.sha256(component.encode()).hexdigest(), source_path=str(_REPO / _SOURCES[component]),
            owner="team:ml", tags={"tracelake/kind": "simulated-history"}, config=self.config, started_at=started,
            lineage_keys=_KEYS.get(component), planned_table=component, planned_mode="partition")
        run.inputs = inputs
        return run

    def pin(self, table: str, at: datetime, partitions: list[str]) -> dict[str, Any]:
        """Input ``table`` at the version newest at ``at``, with the partitions it had then."""
        writer = self.writers[table]
        version = writer.version_at(at)
        present = [p for p in partitions if p in writer.partitions]
        return {"kind": "table", "name": table, "path": writer.path, "version": version, "partitions": partitions,
                "missing_partitions": [p for p in partitions if p not in present] or None}

    def output(self, run: ComponentRun, path: str, commit: delta_meta.Commit, schema_json: str) -> None:
        """What the recorder records about a run's commit: rows, files, bytes, schema, digest."""
        schema_hash, schema_text = delta_meta.schema_fingerprint(schema_json)
        extra = {"added_files": delta_meta.added_files(commit)} if self.added else {}
        run.output = OutputRecord(
            table=run.component, path=path, version=commit.version, rows=commit.rows_added, files=len(commit.adds),
            bytes=commit.bytes_added, partitions=[run.partition_key], schema_hash=schema_hash, schema_json=schema_text,
            content_digest=delta_meta.files_digest(path, commit), write_mode="partition", **extra)

    def finish(self, run: ComponentRun, status: str = "succeeded", error: str | None = None,
               checks: list[CheckResult] = ()) -> None:
        record = self.recorder._record(run)
        ended = run.started_at + timedelta(seconds=2 + int(run.run_id[-2:], 36) % 7)
        mlflow_id = hashlib.md5(run.run_id.encode()).hexdigest()
        record.update(status=status, ended_at=ended, duration_ms=(ended - run.started_at).total_seconds() * 1000,
                      mlflow_experiment_id="3", mlflow_run_id=mlflow_id,
                      mlflow_run_url=f"http://127.0.0.1:5000/#/experiments/3/runs/{mlflow_id}")
        if error:
            record.update(error_type="RuntimeError", error_message=error)
        self.runs.append(record)
        self.checks += check_result_rows(run, list(checks))
        self.counts[run.component] = self.counts.get(run.component, 0) + 1
        if len(self.runs) >= 100:
            self.flush()

    def flush(self) -> None:
        """Journal the records (chained), then flush them to Delta: what a live deployment does."""
        journal = self.lake.journal
        if self.runs:
            journal.append_many(COMPONENT_RUNS, [(r["run_id"], r) for r in self.runs])
        if self.checks:
            journal.append_many(CHECK_RESULTS, [(r["check_id"], r) for r in self.checks])
        self.runs, self.checks = [], []
        self.lake.store.flush()

    # -- one run, written and recorded --------------------------------------------------------------
    def run_and_write(self, component: str, partition: str, started: datetime, inputs: list[dict],
                      rows: pa.Table, checks: list[CheckResult], models: list[dict] | None = None,
                      fail_after_commit: bool = False) -> ComponentRun:
        run = self.begin(component, partition, started, inputs)
        run.models = models or []
        writer = self.writers[component]
        commit = writer.write(data.stamp(rows, run.run_id, partition), run_id=run.run_id, component=component,
                              partition=partition, at=started + timedelta(seconds=2))
        self.output(run, writer.path, commit, writer.dt.schema().to_json())
        if not fail_after_commit:
            self.finish(run, checks=checks)
            return run
        done = roll_back(writer.path, run.run_id, commit.version, "partition", [partition])
        run.rolled_back_version = writer.reload(started + timedelta(seconds=3))
        assert done.version == run.rolled_back_version
        self.finish(run, "failed", f"simulated failure after commit; {component}@v{commit.version} rolled back "
                                   f"at v{done.version}", checks)
        return run


def _passed(name: str, value: float, threshold: str) -> CheckResult:
    return CheckResult(name=name, passed=True, observed_value=value, threshold_text=threshold)


def _etl_day(h: _History, day: date, rng: np.random.Generator, state: dict) -> None:
    """raw -> cleaned -> features for one day, and the labels of two days before."""
    key = day.isoformat()
    raw = data.raw_day(day, h.trips, rng)
    h.run_and_write("raw_trips", key, _ts(day, 1), [], raw,
                    [_passed("schema", 0, "raw schema"), _passed("fare_amount_range", 0.0, "[2.5, 400]")])
    clean = data.cleaned(raw)
    h.run_and_write("cleaned_trips", key, _ts(day, 2), [h.pin("raw_trips", _ts(day, 2), [key])], clean,
                    [_passed("row_count_vs_history", clean.num_rows, "+-35%")])
    feats = data.features(clean)
    h.run_and_write("trip_features", key, _ts(day, 3), [h.pin("cleaned_trips", _ts(day, 3), [key])], feats,
                    [_passed("distance_km_range", 0.0, "(0, 200]")])
    state["features"][key] = feats
    state["clean"][key] = clean
    label_day = day - timedelta(days=2)
    if label_day.isoformat() in state["clean"]:
        lab = data.labels(state["clean"][label_day.isoformat()], day, rng)
        h.run_and_write("trip_labels", label_day.isoformat(), _ts(day, 4), [], lab,
                        [_passed("tipped_not_null", 0.0, "0 nulls")])
        state["labels"][label_day.isoformat()] = lab


def _rerun(h: _History, day: date, when: date, state: dict, *, fail: bool) -> None:
    """A partition run again a day later (replaced): the cleaned trips, then its features."""
    key = day.isoformat()
    clean = state["clean"][key]
    h.run_and_write("cleaned_trips", key, _ts(when, 5, 30), [h.pin("raw_trips", _ts(when, 5, 30), [key])], clean,
                    [_passed("row_count_vs_history", clean.num_rows, "+-35%")], fail_after_commit=fail)
    if not fail:
        h.run_and_write("trip_features", key, _ts(when, 5, 45), [h.pin("cleaned_trips", _ts(when, 5, 45), [key])],
                        state["features"][key], [_passed("distance_km_range", 0.0, "(0, 200]")])


def _train(h: _History, week: date, state: dict) -> None:
    """Monday: the training set of the two weeks before, then the model, registered in MLflow."""
    wk = week.isoformat()
    window = [(week - timedelta(days=i)).isoformat() for i in range(14, 0, -1)]
    inputs = [h.pin("trip_features", _ts(week, 5), window), h.pin("trip_labels", _ts(week, 5), window)]
    fresh = [d for d in window if d in state["labels"]]
    rows = data.training_set([state["features"][d] for d in fresh], [state["labels"][d] for d in fresh])
    missing = len(window) - len(fresh)
    h.run_and_write("training_set", wk, _ts(week, 5), inputs, rows,
                    [CheckResult(name="input_freshness", passed=missing <= 1, severity="warn", observed_value=missing,
                                 threshold_text="<= 1 missing partition")])
    state["model_version"] += 1
    version = state["model_version"]
    started = _ts(week, 6)
    mlflow_run = hashlib.md5(f"model-{version}".encode()).hexdigest()
    models = [{"role": "registered", "name": "tip_model", "version": str(version),
               "uri": f"models:/tip_model/{version}", "mlflow_run_id": mlflow_run}]
    h.run_and_write("tip_model", wk, started, [h.pin("training_set", started, [wk])],
                    data.model_row(version, wk, rows.num_rows, mlflow_run), [], models=models)
    state["models"].append((started + timedelta(minutes=5), str(version), mlflow_run, wk))


def _predictions(h: _History, days: list[date], rng: np.random.Generator, state: dict) -> int:
    """Hourly inference over every day that had a model: one bulk commit, one record per run."""
    plan, parts = [], []
    for day in days:
        feats = data.features(data.cleaned(data.raw_day(day, h.trips, np.random.default_rng(day.toordinal()))))
        for hour in range(24):
            started = _ts(day + timedelta(days=1), hour, 30)
            usable = [m for m in state["models"] if m[0] <= started]
            if not usable:
                continue
            _, version, mlflow_run, _ = usable[-1]
            recent = [m[3] for m in usable if date.fromisoformat(m[3]) > started.date() - timedelta(weeks=8)]
            run = h.begin("tip_predictions", f"{day.isoformat()}T{hour:02d}", started, [
                h.pin("trip_features", started, [day.isoformat()]), h.pin("tip_model", started, recent),
                {"kind": "model", "name": "tip_model", "model_version": version, "mlflow_run_id": mlflow_run,
                 "uri": f"models:/tip_model/{version}"}])
            run.models = [{"role": "loaded", "name": "tip_model", "version": version,
                           "uri": f"models:/tip_model/{version}", "mlflow_run_id": mlflow_run}]
            plan.append(run)
            parts.append(data.stamp(data.predictions_of_hour(feats, hour, version, rng), run.run_id, run.partition_key))
    path = h.lake.layout.table("tip_predictions")
    from deltalake import CommitProperties, DeltaTable, write_deltalake

    meta = {"tracelake_bulk_write": "tip_predictions", "runs": len(plan)}
    write_deltalake(path, pa.concat_tables(parts), partition_by=["_tl_partition"],
                    configuration=data.table_properties(),
                    commit_properties=CommitProperties(custom_metadata={"userMetadata": json.dumps(meta)}))
    dt = DeltaTable(path)
    dt.create_checkpoint()
    bulk = delta_meta.read_commit(path, dt.version())
    by_part: dict[str, list[dict]] = {}
    for add in bulk.adds:
        by_part.setdefault(add["partitionValues"]["_tl_partition"], []).append(add)
    schema_json = dt.schema().to_json()
    for run in plan:
        own = delta_meta.Commit(version=bulk.version, info=bulk.info, adds=by_part.get(run.partition_key, []))
        h.output(run, path, own, schema_json)
        h.finish(run, checks=[_passed("tip_probability_range", 0.0, "[0, 1]"), _passed("trip_id_unique", 0.0, "0 dup")])
    return len(plan)


def generate(home: str, years: int = 3, trips_per_day: int = 2000, days: int | None = None) -> dict:
    """Write the history under ``home`` (see the module docstring); returns counts and timings.
    ``days`` shortens it (tests)."""
    t0 = time.time()
    h = _History(home, trips_per_day)
    days = [START + timedelta(days=i) for i in range(days or 365 * years)]
    rng = np.random.default_rng(0)
    state: dict[str, Any] = {"features": {}, "clean": {}, "labels": {}, "models": [], "model_version": 0}
    for i, day in enumerate(days):
        _etl_day(h, day, np.random.default_rng(day.toordinal()), state)
        if (i >= 1 and i % RERUN_EVERY == 0) or i == ROLLED_BACK_DAY:
            _rerun(h, day - timedelta(days=1), day, state, fail=i == ROLLED_BACK_DAY)
        if day.weekday() == 0 and day >= START + timedelta(days=14):
            _train(h, day, state)
        for kind in ("clean", "features", "labels"):  # older days are never read again
            for old in [k for k in state[kind] if date.fromisoformat(k) < day - timedelta(days=20)]:
                state[kind].pop(old)
        if i % 100 == 0:
            print(f"  {day}: {sum(h.counts.values())} runs, {time.time() - t0:.0f} s", flush=True)
    t_etl = time.time() - t0
    n_pred = _predictions(h, days, rng, state)
    h.flush()
    for table in (COMPONENT_RUNS, CHECK_RESULTS):  # what the hourly audit maintenance does
        h.lake.store.compact(table)
    return {"generator_version": GENERATOR_VERSION, "runs": sum(h.counts.values()), "by_component": h.counts,
            "prediction_runs": n_pred, "trips_per_day": trips_per_day, "seconds": round(time.time() - t0, 1),
            "etl_seconds": round(t_etl, 1), "first_day": days[0].isoformat(), "last_day": days[-1].isoformat(),
            "versions": {t: w.dt.version() for t, w in h.writers.items() if w.dt is not None},
            "records_carry_added_files": h.added}
