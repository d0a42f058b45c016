"""The monitors' evidence for ``review``: drift and anomalies on a run's output.

``lineage.query.review`` ranks the runs behind flagged outputs with what the audit record holds
(failed tests, changed code or config). The monitors know more about a run's output: whether
the drift job found its day's data drifted against its reference, and whether a metric of the
run (its output rows, or a stored anomaly of its component that day) left its usual band. Both
are read from what the monitors stored - no Spark, no recomputation of drift.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import pandas as pd

from tracelake.lineage import Lakehouse
from tracelake.lineage.layout import PARTITION_COLUMN
from tracelake.lineage.query.review import Evidence, EvidenceSource, lineage_evidence, review
from tracelake.lineage.query.trace import LineageWalker, TraceNode
from tracelake.lineage.record.delta_meta import latest_version
from tracelake.monitors.audit_tables import ANOMALIES
from tracelake.monitors.metrics.anomaly import assess, default_rules
from tracelake.monitors.metrics.history import run_metric

__all__ = ["DRIFT_TABLE", "REVIEW_EVIDENCE", "monitor_evidence", "review_with_monitors"]

DRIFT_TABLE = "data_drift"   # the drift job's output: one row per table, column and slice per day
MULTIVARIATE = "multivariate"  # its `kind` for the domain classifier's score of all columns together


def _day(node: TraceNode) -> str | None:
    return str(node.partition_key)[:10] if node.partition_key else None


def _drifted(lake: Lakehouse, days: set[str]) -> pd.DataFrame:
    path = lake.layout.table(DRIFT_TABLE)
    if not days or latest_version(path) is None:
        return pd.DataFrame(columns=["table_name", "column_name", "kind", "score", "threshold", "method",
                                     PARTITION_COLUMN])
    import pyarrow.dataset as ds
    from deltalake import DeltaTable

    # `drifted` is filtered after the scan: Spark writes no min/max statistics for booleans, and
    # delta-rs turns the missing bounds into a guarantee that the column is null in every file,
    # so a pushed-down `drifted == true` matches nothing.
    wanted = ds.field(PARTITION_COLUMN).isin(sorted(days)) & (ds.field("slice_key") == "all")
    columns = ["table_name", "column_name", "kind", "score", "threshold", "method", "drifted", PARTITION_COLUMN]
    rows = DeltaTable(path).to_pyarrow_dataset().to_table(columns=columns, filter=wanted).to_pandas()
    return rows[rows["drifted"].fillna(False).astype(bool)].drop(columns="drifted")


def _drift_item(row) -> str:
    """One drifted score as a person reads it. The domain classifier scores all columns together,
    so it is said as what it is - not as a column named "(all columns)" - with its AUC."""
    if row.kind == MULTIVARIATE:
        method = "domain-classifier AUC" if row.method == "domain_classifier_auc" else row.method
        return f"multivariate ({method} {row.score:.2f} > {row.threshold:g})"
    return f"{row.column_name} ({row.method} {row.score:.3g} > {row.threshold:.3g})"


def _drift_evidence(lake: Lakehouse, walker: LineageWalker, node: TraceNode, drifted: pd.DataFrame) -> list[Evidence]:
    table = walker.index.record(node.id).get("output_table") if walker.index.has(node.id) else None
    hit = drifted[(drifted["table_name"] == table) & (drifted[PARTITION_COLUMN] == _day(node))]
    if hit.empty:
        return []
    # The whole-table verdict first, then the columns that moved most.
    ordered = hit.assign(_columns=hit["kind"] != MULTIVARIATE).sort_values(["_columns", "score"], ascending=[True, False])
    shown = ", ".join(_drift_item(r) for r in ordered.head(4).itertuples())
    more = f" and {len(hit) - 4} more" if len(hit) > 4 else ""
    return [Evidence("drift", f"its output drifted: {shown}{more}")]


def _anomaly_evidence(node: TraceNode, stored: pd.DataFrame, rows_verdicts: dict[str, str]) -> list[Evidence]:
    found = []
    day = _day(node)
    if not stored.empty and day:
        hit = stored[(stored["component"] == node.component) & (stored["time"].dt.strftime("%Y-%m-%d") == day)]
        for r in hit.drop_duplicates(["monitor"]).itertuples():
            found.append(Evidence("anomaly", f"{r.metric} anomalous ({r.value:.4g}, expected {r.expected:.4g})"
                                  if pd.notna(r.expected) else f"{r.metric} anomalous ({r.value:.4g}, {r.rule})"))
    if node.id in rows_verdicts:
        found.append(Evidence("anomaly", f"output rows {rows_verdicts[node.id]}"))
    return found


def monitor_evidence(lake: Lakehouse, walker: LineageWalker, nodes: Sequence[TraceNode]) -> dict[str, list[Evidence]]:
    """Drift on each run's output day, stored anomalies of its component that day, and whether its
    output row count left the component's usual band (judged like ``metrics --anomalies``)."""
    drifted = _drifted(lake, {d for n in nodes if (d := _day(n))})
    stored = lake.store.read(ANOMALIES)
    rows_verdicts: dict[str, str] = {}
    for component in {n.component for n in nodes if n.component}:
        series = run_metric(lake, component, "output_rows")
        by_time = dict(zip(series["time"], series["run_id"], strict=True))
        for when, _value, verdict, anomaly in assess(series.set_index("time")["value"], default_rules()):
            if verdict == "anomaly" and anomaly is not None:
                rows_verdicts[by_time[when]] = anomaly.describe()
    return {n.id: _drift_evidence(lake, walker, n, drifted) + _anomaly_evidence(n, stored, rows_verdicts)
            for n in nodes}


REVIEW_EVIDENCE: tuple[EvidenceSource, ...] = (lineage_evidence, monitor_evidence)
review_with_monitors = functools.partial(review, evidence=REVIEW_EVIDENCE)
