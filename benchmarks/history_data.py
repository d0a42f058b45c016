"""The data side of the simulated history (used by history.py): synthetic rows of the reference
pipeline's tables, and a writer that makes each run exactly one Delta commit with delta-rs.

Rows are generated per day from a seeded generator, at the size the recorded config says
(``trips_per_day``), with the columns the reference pipeline writes; every row carries the run
id in ``_tl_run_id`` and its partition in ``_tl_partition``, and each commit's ``userMetadata``
names the run - the layout the product's Spark writer leaves, written here by delta-rs so three
years take minutes, not hours.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, write_deltalake

from tracelake.lineage.layout import PARTITION_COLUMN, RUN_ID_COLUMN
from tracelake.lineage.record import delta_meta

__all__ = [
    "TableWriter",
    "cleaned",
    "features",
    "labels",
    "model_row",
    "predictions_of_hour",
    "raw_day",
    "stamp",
    "table_properties",
    "training_set",
]

ZONES = np.array(["Airport", "Downtown", "Harbor", "Midtown", "Northside", "Old Town", "Riverside", "University"])
PAYMENTS = np.array(["card", "cash", "app"])
TS = pa.timestamp("us", tz="UTC")


def table_properties(interval: int = 10) -> dict[str, str]:
    # Spark's Delta writer checkpoints every 10 commits; the product's data tables look like that.
    return {"delta.logRetentionDuration": "interval 2555 days",
            "delta.deletedFileRetentionDuration": "interval 2555 days",
            "delta.checkpointInterval": str(interval)}


def raw_day(day: date, n: int, rng: np.random.Generator) -> pa.Table:
    """One day of raw trips: pickup time, zone, distance, fare, passengers, payment (1% bad rows)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    seconds = np.sort(rng.integers(0, 86_400, n))
    distance = np.round(rng.gamma(2.0, 2.5, n), 2)
    distance[rng.random(n) < 0.01] = 0.0  # bad rows the ETL drops
    fare = np.round(2.5 + distance * 1.9 + rng.normal(0, 1.5, n).clip(-2, None), 2)
    return pa.table({
        "trip_id": [f"T{day:%Y%m%d}-{i:05d}" for i in range(n)],
        "pickup_ts": pa.array([start + timedelta(seconds=int(s)) for s in seconds], TS),
        "pickup_zone": pa.array(ZONES[rng.integers(0, len(ZONES), n)]),
        "dropoff_zone": pa.array(ZONES[rng.integers(0, len(ZONES), n)]),
        "distance_km": distance,
        "fare_amount": fare,
        "passengers": pa.array(rng.integers(1, 5, n), pa.int32()),
        "payment_type": pa.array(PAYMENTS[rng.integers(0, len(PAYMENTS), n)]),
    })


def cleaned(raw: pa.Table) -> pa.Table:
    """Raw trips with positive distance, plus pickup date and hour."""
    kept = raw.filter(pc.greater(raw.column("distance_km"), 0.0))
    ts = kept.column("pickup_ts")
    return kept.append_column("pickup_date", pc.cast(ts, pa.date32())) \
        .append_column("pickup_hour", pc.cast(pc.hour(ts), pa.int32()))


def features(clean: pa.Table) -> pa.Table:
    """The model's inputs per trip."""
    per_km = pc.round(pc.divide(clean.column("fare_amount"), clean.column("distance_km")), 3)
    weekend = pc.greater_equal(pc.day_of_week(clean.column("pickup_ts")), 5)
    return clean.select(["trip_id", "pickup_date", "pickup_ts", "pickup_zone", "payment_type", "pickup_hour",
                         "distance_km", "fare_amount", "passengers"]) \
        .append_column("fare_per_km", per_km).append_column("is_weekend", weekend)


def labels(clean: pa.Table, label_day: date, rng: np.random.Generator) -> pa.Table:
    """Whether each trip of a day was tipped, known two days later."""
    n = clean.num_rows
    tipped = rng.random(n) < 0.42
    return pa.table({
        "trip_id": clean.column("trip_id"), "trip_date": clean.column("pickup_date"),
        "tipped": tipped, "tip_amount": np.round(np.where(tipped, rng.gamma(2.0, 1.5, n), 0.0), 2),
        "label_date": pa.array([label_day] * n, pa.date32()),
    })


def training_set(feature_days: list[pa.Table], label_days: list[pa.Table]) -> pa.Table:
    """Features joined with the labels that had arrived (inner join on trip_id)."""
    feats = pa.concat_tables(feature_days)
    labs = pa.concat_tables(label_days).select(["trip_id", "tipped", "trip_date", "label_date"])
    joined = feats.join(labs, "trip_id", join_type="inner")
    return joined.append_column("label", pc.cast(joined.column("tipped"), pa.int32()))


def model_row(version: int, week: str, training_rows: int, mlflow_run_id: str) -> pa.Table:
    return pa.table({
        "model_name": ["tip_model"], "model_version": [str(version)], "model_uri": [f"models:/tip_model/{version}"],
        "mlflow_run_id": [mlflow_run_id], "trained_for_week": [week],
        "training_rows": pa.array([training_rows], pa.int64()),
        "val_auc": [0.71], "val_log_loss": [0.62], "threshold": [0.5], "features_json": [json.dumps(["distance_km"])],
    })


def predictions_of_hour(feats: pa.Table, hour: int, model_version: str, rng: np.random.Generator) -> pa.Table:
    """Tip probability for the trips of one hour of a day."""
    rows = feats.filter(pc.equal(feats.column("pickup_hour"), hour))
    n = rows.num_rows
    proba = np.round(rng.random(n), 4)
    return pa.table({
        "trip_id": rows.column("trip_id"), "pickup_date": rows.column("pickup_date"),
        "pickup_ts": rows.column("pickup_ts"), "pickup_zone": rows.column("pickup_zone"),
        "payment_type": rows.column("payment_type"), "pickup_hour": rows.column("pickup_hour"),
        "tip_probability": proba, "predicted_tip": proba >= 0.5,
        "model_name": pa.array(["tip_model"] * n, pa.string()),
        "model_version": pa.array([model_version] * n, pa.string()),
    })


def stamp(data: pa.Table, run_id: str, partition: str) -> pa.Table:
    """The reserved columns every row of a product table carries."""
    n = data.num_rows
    return data.append_column(RUN_ID_COLUMN, pa.array([run_id] * n, pa.string())) \
        .append_column(PARTITION_COLUMN, pa.array([partition] * n, pa.string()))


@dataclass
class TableWriter:
    """One data table: each write is one commit naming its run; remembers when each version landed
    (simulated time), so a run can pin the version that was newest when it started."""

    path: str
    dt: DeltaTable | None = None
    landed: list[tuple[datetime, int]] = field(default_factory=list)
    partitions: set[str] = field(default_factory=set)

    def write(self, data: pa.Table, *, run_id: str, component: str, partition: str, at: datetime,
              user_metadata: dict | None = None) -> delta_meta.Commit:
        """Write one run's rows as one commit: a blind append for a new partition, a replace of
        the partition (``predicate``) for a re-run - what the product's writer does."""
        meta = user_metadata or {"tracelake_run_id": run_id, "component": component, "partition": partition,
                                 "dagster_run_id": f"sim-{run_id[-12:].lower()}"}
        props = CommitProperties(custom_metadata={"userMetadata": json.dumps(meta, sort_keys=True)})
        replace = partition in self.partitions
        write_deltalake(self.dt if self.dt is not None else self.path, data, partition_by=[PARTITION_COLUMN],
                        mode="overwrite" if replace else "append", commit_properties=props,
                        predicate=f"{PARTITION_COLUMN} = '{partition}'" if replace else None,
                        configuration=None if self.dt is not None else table_properties())
        if self.dt is None:
            self.dt = DeltaTable(self.path)
        self.partitions.add(partition)
        version = self.dt.version()
        self.landed.append((at, version))
        return delta_meta.read_commit(self.path, version)

    def reload(self, at: datetime) -> int:
        """After a commit made elsewhere (a rollback): follow the table to its newest version."""
        assert self.dt is not None
        self.dt.update_incremental()
        self.landed.append((at, self.dt.version()))
        return self.dt.version()

    def version_at(self, when: datetime) -> int | None:
        """The newest version committed at or before ``when`` (simulated time)."""
        i = bisect.bisect_right(self.landed, (when, 1 << 62))
        return self.landed[i - 1][1] if i else None
