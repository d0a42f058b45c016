"""Synthetic audit history at production scale, written in bulk (used by trace_latency.py).

Three simulated years of the reference pipeline's shape: daily raw/cleaned/features runs, weekly
training-set and model runs, hourly inference runs - each with a real component-run record
(chained, in the audit store) and real rows carrying its run id in real Delta tables. Each table
is written in one bulk commit and the records say so, which keeps generation to minutes.
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
from deltalake import write_deltalake

from tracelake.lineage import open_lakehouse
from tracelake.lineage.record.audit_tables import COMPONENT_RUNS
from tracelake.lineage.record.provenance import library_versions
from tracelake.lineage.record.runid import new_run_id

# What a real record carries besides lineage, so the size per run is honest.
_LIBS = library_versions()
_SCHEMA = json.dumps([{"name": n, "type": t, "nullable": True} for n, t in
                      [("trip_id", "string"), ("fare", "double"), ("_tl_run_id", "string"), ("_tl_partition", "string")]])
_CONFIG = json.dumps({"resources": {"simulator": {"seed": 7, "trips_per_day": 2000, "faults": []},
                                    "lakehouse": {"home": "/data/lakehouse"}}}, sort_keys=True)

START = date(2023, 1, 2)  # a Monday
RETENTION = {"delta.logRetentionDuration": "interval 2555 days",
             "delta.deletedFileRetentionDuration": "interval 2555 days"}


def _ts(day: date, hour: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc)


def _record(run_id, component, partition, started, *, inputs=(), keys=None, rows=1, models=(), table=None,
            partitions=None, home="") -> dict:
    table = table or component
    return {
        "run_id": run_id, "component": component, "asset_key": component, "partition_key": partition,
        "dagster_run_id": f"bulk-{run_id[-8:]}", "status": "succeeded", "started_at": started,
        "ended_at": started + timedelta(seconds=2), "duration_ms": 2000.0, "code_version": "bulk",
        "source_hash": "ab" * 32, "git_commit": "cd" * 20, "git_dirty": False, "config_json": _CONFIG,
        "library_versions": _LIBS, "output_schema_json": _SCHEMA, "output_schema_hash": "ef" * 32,
        "content_digest": "12" * 32, "host": "worker-1", "pid": 4242, "owner": "team:ml",
        "mlflow_experiment_id": "3", "mlflow_run_id": run_id.lower()[:32],
        "mlflow_run_url": f"http://mlflow.internal/#/experiments/3/runs/{run_id.lower()[:32]}",
        "inputs": list(inputs), "lineage_keys_json": json.dumps(keys) if keys else None,
        "output_table": table, "output_path": f"{home}/tables/{table}", "output_version": 0,
        "output_rows": rows, "output_partitions": partitions or [partition], "write_mode": "partition",
        "models": list(models), "metrics": {},
    }


def generate(home: str, years: int = 3, trips_per_day: int = 24) -> dict:
    """Write the history under ``home``; returns counts and timings."""
    t0 = time.time()
    lake = open_lakehouse(home)
    days = [START + timedelta(days=i) for i in range(365 * years)]
    rng = np.random.default_rng(0)
    records: list[dict] = []
    raw_ids, clean_ids, feat_ids = {}, {}, {}
    cols = {t: {"trip_id": [], "_tl_partition": [], "_tl_run_id": [], "fare": []} for t in ("raw", "clean", "feat")}
    for day in days:
        key = day.isoformat()
        for comp, ids, src, table in (("raw_trips", raw_ids, None, "raw"), ("cleaned_trips", clean_ids, "raw_trips", "clean"),
                                      ("trip_features", feat_ids, "cleaned_trips", "feat")):
            started = _ts(day, {"raw": 1, "clean": 2, "feat": 3}[table])
            rid = new_run_id(int(started.timestamp() * 1000))
            ids[key] = rid
            inputs = [] if src is None else [{"kind": "table", "name": src, "path": f"{home}/tables/{src}", "version": 0,
                                              "partitions": [key]}]
            records.append(_record(rid, comp, key, started, inputs=inputs, keys={src: ["trip_id"]} if src else None,
                                   rows=trips_per_day, home=home))
            c = cols[table]
            c["trip_id"] += [f"T{key}-{h:02d}" for h in range(trips_per_day)]
            c["_tl_partition"] += [key] * trips_per_day
            c["_tl_run_id"] += [rid] * trips_per_day
            c["fare"] += list(np.round(rng.gamma(4, 5, trips_per_day), 2))
    for name, table in (("raw_trips", "raw"), ("cleaned_trips", "clean"), ("trip_features", "feat")):
        write_deltalake(f"{home}/tables/{name}", pa.table(cols[table]), partition_by=["_tl_partition"],
                        configuration=RETENTION)

    weeks = [d for d in days if d.weekday() == 0 and d >= START + timedelta(days=14)]
    ts_cols = {"trip_id": [], "_tl_partition": [], "_tl_run_id": []}
    model_cols = {"model_name": [], "model_version": [], "trained_for_week": [], "_tl_partition": [], "_tl_run_id": []}
    model_of_week: dict[str, str] = {}
    for k, week in enumerate(weeks, start=1):
        wk = week.isoformat()
        window = [(week - timedelta(days=i)).isoformat() for i in range(14, 0, -1)]
        ts_started, m_started = _ts(week, 4), _ts(week, 5)
        ts_id, m_id = new_run_id(int(ts_started.timestamp() * 1000)), new_run_id(int(m_started.timestamp() * 1000))
        records.append(_record(ts_id, "training_set", wk, ts_started, keys={"trip_features": ["trip_id"]},
                               rows=14 * trips_per_day, home=home,
                               inputs=[{"kind": "table", "name": "trip_features", "path": f"{home}/tables/trip_features",
                                        "version": 0, "partitions": window}]))
        records.append(_record(m_id, "tip_model", wk, m_started, rows=1, home=home,
                               inputs=[{"kind": "table", "name": "training_set", "path": f"{home}/tables/training_set",
                                        "version": 0, "partitions": [wk]}],
                               models=[{"role": "registered", "name": "tip_model", "version": str(k), "uri": f"models:/tip_model/{k}"}]))
        for d in window:
            ts_cols["trip_id"] += [f"T{d}-{h:02d}" for h in range(trips_per_day)]
        ts_cols["_tl_partition"] += [wk] * 14 * trips_per_day
        ts_cols["_tl_run_id"] += [ts_id] * 14 * trips_per_day
        for c, v in (("model_name", "tip_model"), ("model_version", str(k)), ("trained_for_week", wk),
                     ("_tl_partition", wk), ("_tl_run_id", m_id)):
            model_cols[c].append(v)
        model_of_week[wk] = str(k)
        model_of_week[f"run:{wk}"] = m_id
    write_deltalake(f"{home}/tables/training_set", pa.table(ts_cols), partition_by=["_tl_partition"], configuration=RETENTION)
    write_deltalake(f"{home}/tables/tip_model", pa.table(model_cols), partition_by=["_tl_partition"], configuration=RETENTION)

    pred_cols = {"trip_id": [], "model_version": [], "tip_probability": [], "_tl_partition": [], "_tl_run_id": []}
    current = None
    for day in days:
        monday = (day - timedelta(days=day.weekday())).isoformat()
        current = model_of_week.get(monday, current)
        if current is None:
            continue
        key = day.isoformat()
        recent = [(date.fromisoformat(monday) - timedelta(weeks=i)).isoformat() for i in range(8, -1, -1)]
        for hour in range(24):
            part = f"{key}T{hour:02d}"
            started = _ts(day, hour)
            rid = new_run_id(int(started.timestamp() * 1000) + 30 * 60 * 1000)
            records.append(_record(
                rid, "tip_predictions", part, started, rows=trips_per_day // 24 or 1, home=home,
                keys={"trip_features": ["trip_id"], "tip_model": ["model_version"]},
                inputs=[{"kind": "table", "name": "trip_features", "path": f"{home}/tables/trip_features", "version": 0,
                         "partitions": [key]},
                        {"kind": "table", "name": "tip_model", "path": f"{home}/tables/tip_model", "version": 0,
                         "partitions": [w for w in recent if w in model_of_week]},
                        {"kind": "model", "name": "tip_model", "model_version": current,
                         "uri": f"models:/tip_model/{current}"}]))
            n = trips_per_day // 24 or 1
            pred_cols["trip_id"] += [f"T{key}-{hour:02d}"][:n]
            pred_cols["model_version"] += [current] * n
            pred_cols["tip_probability"] += list(np.round(rng.random(n), 4))
            pred_cols["_tl_partition"] += [part] * n
            pred_cols["_tl_run_id"] += [rid] * n
    t_data = time.time()
    write_deltalake(f"{home}/tables/tip_predictions", pa.table(pred_cols), partition_by=["_tl_partition"],
                    configuration=RETENTION)
    t_preds = time.time() - t_data
    records.sort(key=lambda r: r["run_id"])
    for i in range(0, len(records), 2000):
        chunk = records[i:i + 2000]
        lake.journal.append_many(COMPONENT_RUNS, [(r["run_id"], r) for r in chunk])
    lake.store.flush()
    lake.store.compact(COMPONENT_RUNS)
    counts: dict[str, int] = {}
    for r in records:
        counts[r["component"]] = counts.get(r["component"], 0) + 1
    return {"runs": len(records), "by_component": counts, "seconds": round(time.time() - t0, 1),
            "predictions_write_seconds": round(t_preds, 1), "first_day": days[0].isoformat(), "last_day": days[-1].isoformat()}
