"""The demo's closing summary: what was recorded, and where to look at it."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from tracelake.lineage import open_lakehouse
from tracelake.lineage.cli_support import format_table
from tracelake.lineage.verify import verify_lakehouse

__all__ = ["print_summary"]


def print_summary(home: str, result: dict[str, Any], dagster_home: Path, out=sys.stdout) -> None:
    lake = open_lakehouse(home)
    runs = lake.store.component_runs(include_open=True)
    counts = (runs.groupby(["component", "status"]).size().unstack(fill_value=0).reset_index()
              if not runs.empty else None)
    print(f"\nSimulated {result['first_day']} .. {result['last_day']} in {result['seconds']} s.", file=out)
    if counts is not None:
        cols = ["component"] + [c for c in ("succeeded", "failed", "skipped", "abandoned", "started") if c in counts]
        order = ["raw_trips", "trip_labels", "cleaned_trips", "trip_features", "training_set", "tip_model",
                 "tip_predictions", "model_evaluation"]
        rows = sorted(counts.to_dict("records"), key=lambda r: order.index(r["component"]) if r["component"] in order else 99)
        print("\nComponent runs recorded:\n" + format_table(rows, cols), file=out)
    failed = runs[runs["status"] == "failed"] if not runs.empty else runs
    if len(failed):
        print("\nFailed runs:", file=out)
        for rec in failed.sort_values("run_id").to_dict("records")[:10]:
            print(f"  {rec['run_id']}  {rec['component']} {rec['partition_key']}: {str(rec['error_message'])[:120]}",
                  file=out)
    report = verify_lakehouse(lake)
    print(f"\nAudit check: {'OK' if report.ok else 'PROBLEMS'} - {report.checked_records} chained records, "
          f"{report.checked_runs} outputs matched to their Delta commits.", file=out)
    for problem in report.problems[:5]:
        print(f"  - {problem}", file=out)
    example = runs[(runs["component"] == "tip_predictions") & (runs["status"] == "succeeded")] if not runs.empty else runs
    run_id = example.sort_values("run_id").iloc[-1]["run_id"] if len(example) else "<run id>"
    db = Path(home) / "mlflow" / "mlflow.db"
    q = shlex.quote
    print(f"""
Look at it:
  Dagster UI (asset graph, runs, metadata):   DAGSTER_HOME={q(str(dagster_home))} .venv/bin/dagster dev -w workspace.yaml
                                              (or: .venv/bin/tracelake ui)  then open http://127.0.0.1:3000
  MLflow UI (one experiment per component):   .venv/bin/mlflow ui --backend-store-uri {q('sqlite:///' + str(db))} --port 5000
  Latest prediction run, everything recorded: .venv/bin/tracelake run show {run_id}
  Runs of a component over time:              .venv/bin/tracelake runs --component cleaned_trips
  Integrity of the audit log:                 .venv/bin/tracelake audit verify""", file=out)
