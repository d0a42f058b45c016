"""Ways to change the record behind Tracelake's back, each a function of a lakehouse root.

Shared by tests/lineage/integrity/test_tampering.py (one test per kind) and
benchmarks/tamper_detection.py (the detected / tried figures). Every kind acts on the files of the
lakehouse only - what someone with write access to its storage, but not to the pipeline host's
anchor key, can do.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, write_deltalake

from tracelake.lineage.record.chain import chain_hash


def _audit(home: str, table: str) -> str:
    return str(Path(home) / "audit" / table)


def _rows(home: str, table: str) -> pa.Table:
    return DeltaTable(_audit(home, table)).to_pyarrow_table()


def _rewrite_audit(home: str, table: str, data: pa.Table) -> None:
    write_deltalake(_audit(home, table), data, mode="overwrite")


def _set(data: pa.Table, index: int, column: str, value) -> pa.Table:
    values = data.column(column).to_pylist()
    values[index] = value
    return data.set_column(data.schema.get_field_index(column), column, pa.array(values, data.schema.field(column).type))


def change_a_flushed_record(home: str) -> str:
    data = _rows(home, "check_results")
    i = data.column("passed").to_pylist().index(False)
    _rewrite_audit(home, "check_results", _set(data, i, "passed", True))  # a failed test now "passed"
    return "check_results"


def change_an_unflushed_record(home: str) -> str:
    con = sqlite3.connect(Path(home) / "_journal" / "journal.sqlite")
    found = con.execute("SELECT seq, tbl, payload FROM entries ORDER BY seq LIMIT 1").fetchone()
    assert found is not None, "this kind needs an unflushed record in the journal"
    seq, table, payload = found
    row = json.loads(payload)
    # edit a text field of that record's own table (whichever table is oldest in the journal)
    field = next(k for k, v in row.items() if isinstance(v, str) and v
                 and k not in ("record_hash", "prev_hash", "journal_id"))
    row[field] = row[field] + " (edited)"
    con.execute("UPDATE entries SET payload=? WHERE seq=?", (json.dumps(row), seq))
    con.commit()
    return table


def delete_a_record_in_the_middle(home: str) -> str:
    data = _rows(home, "component_runs")
    keep = pa.array([i != len(data) // 2 for i in range(len(data))])
    _rewrite_audit(home, "component_runs", data.filter(keep))
    return "component_runs"


def delete_the_newest_records(home: str) -> str:
    data = _rows(home, "check_results")
    order = pc.sort_indices(data, sort_keys=[("chain_seq", "ascending")])
    _rewrite_audit(home, "check_results", data.take(order).slice(0, len(data) - 5))
    return "check_results"


def delete_every_flushed_row(home: str) -> str:
    data = _rows(home, "check_results")
    _rewrite_audit(home, "check_results", data.slice(0, 0))
    return "check_results"


def remove_the_component_runs_table(home: str) -> str:
    shutil.rmtree(_audit(home, "component_runs"))
    return "component_runs"


def change_a_record_and_recompute_the_chain(home: str) -> str:
    """The clever one: change a record, then recompute every hash after it (and the journal's
    head), so the chain is internally consistent again."""
    rows = sorted(_rows(home, "component_runs").to_pylist(), key=lambda r: r["chain_seq"])
    target = next(i for i, r in enumerate(rows) if r["status"] == "succeeded" and r["output_rows"])
    # a claim only the record holds (which commit's code ran): changing the row count would also
    # be caught against the Delta log, without anchors
    rows[target]["git_commit"] = "0" * 40
    _recompute_from(home, "component_runs", rows, target)
    return "component_runs"


def recompute_a_chain_then_let_the_pipeline_append(home: str) -> str:
    """The clever one, then business as usual: the pipeline appends a record on the recomputed
    head, and that new head is anchored - the newest anchor agrees; only the older ones cannot."""
    from tracelake.lineage import METRICS, open_lakehouse
    from tracelake.lineage.lakehouse import forget_lakehouse
    from tracelake.lineage.record.runid import new_run_id

    open_lakehouse(home).store.flush()
    forget_lakehouse(home)
    rows = sorted(_rows(home, "metrics").to_pylist(), key=lambda r: r["chain_seq"])
    rows[len(rows) // 2]["value"] = -1.0
    _recompute_from(home, "metrics", rows, len(rows) // 2)
    mid = new_run_id()
    open_lakehouse(home).journal.append(METRICS, mid, {"metric_id": mid, "component": "tip_predictions",
                                                       "metric": "after", "value": 1.0, "computed_at": rows[0]["computed_at"]})
    forget_lakehouse(home)
    return "metrics"


def _recompute_from(home: str, table: str, rows: list[dict], target: int) -> None:
    schema = _rows(home, table).schema
    prev = rows[target - 1]["record_hash"] if target else None
    for r in rows[target:]:
        r["prev_hash"] = prev
        r["record_hash"] = chain_hash(prev, r)
        prev = r["record_hash"]
    _rewrite_audit(home, table, pa.Table.from_pylist(rows, schema=schema))
    con = sqlite3.connect(Path(home) / "_journal" / "journal.sqlite")
    con.execute("UPDATE chain_heads SET record_hash=? WHERE tbl=?", (prev, table))
    con.execute("DELETE FROM entries WHERE tbl=?", (table,))
    con.commit()


def lose_the_journal(home: str) -> str:
    shutil.rmtree(Path(home) / "_journal")
    return "journal"


def duplicate_a_record(home: str) -> str:
    data = _rows(home, "component_runs")
    _rewrite_audit(home, "component_runs", pa.concat_tables([data, data.slice(3, 1)]))
    return "component_runs"


def forge_an_anchor(home: str, anchor_file: Path) -> str:
    lines = anchor_file.read_text().splitlines()
    data = json.loads(lines[-1])
    data["chain_seq"] += 1000
    lines[-1] = json.dumps(data)
    anchor_file.write_text("\n".join(lines) + "\n")
    return "anchors"


def _first_data_file(home: str, table: str, version: int) -> Path:
    log = Path(home) / "tables" / table / "_delta_log" / f"{version:020d}.json"
    adds = [json.loads(line)["add"] for line in log.read_text().splitlines() if '"add"' in line]
    return Path(home) / "tables" / table / adds[0]["path"]


def _middle_version(home: str, table: str) -> int:
    return DeltaTable(str(Path(home) / "tables" / table)).version() // 2


def rewrite_a_data_file_in_a_middle_version(home: str) -> str:
    table = "cleaned_trips"
    version = next(v for v in range(_middle_version(home, table), -1, -1)
                   if '"add"' in (Path(home) / "tables" / table / "_delta_log" / f"{v:020d}.json").read_text())
    path = _first_data_file(home, table, version)
    data = pq.read_table(path)
    pq.write_table(_set(data, 0, "fare_amount", 1.0), path)
    return f"{table}@v{version}"


def delete_a_data_file(home: str) -> str:
    table = "trip_features"
    version = next(v for v in range(_middle_version(home, table), -1, -1)
                   if '"add"' in (Path(home) / "tables" / table / "_delta_log" / f"{v:020d}.json").read_text())
    _first_data_file(home, table, version).unlink()
    return f"{table}@v{version}"


def a_rogue_delete(home: str) -> str:
    DeltaTable(str(Path(home) / "tables" / "tip_predictions")).delete("pickup_zone = 'Airport'")
    return "tip_predictions"


def a_forged_commit_naming_an_existing_run(home: str) -> str:
    path = Path(home) / "tables" / "tip_predictions"
    data = DeltaTable(str(path)).to_pyarrow_table()
    run_id = data.column("_tl_run_id")[0].as_py()
    fake = data.filter(pc.equal(data.column("_tl_run_id"), run_id)).slice(0, 3)
    write_deltalake(str(path), fake, mode="append", partition_by=["_tl_partition"],
                    commit_properties=CommitProperties(custom_metadata={"userMetadata": json.dumps(
                        {"tracelake_run_id": run_id})}))
    return "tip_predictions"


def delete_a_commit_from_a_log(home: str) -> str:
    table = "trip_labels"
    log = Path(home) / "tables" / table / "_delta_log"
    version = _middle_version(home, table)
    (log / f"{version:020d}.json").unlink()
    return f"{table}@v{version}"


KINDS: dict[str, Callable[[str], str]] = {
    "change a flushed record": change_a_flushed_record,
    "change an unflushed record": change_an_unflushed_record,
    "delete a record in the middle": delete_a_record_in_the_middle,
    "delete the newest records": delete_the_newest_records,
    "delete every flushed row of a table": delete_every_flushed_row,
    "remove audit/component_runs": remove_the_component_runs_table,
    "change a record and recompute the chain": change_a_record_and_recompute_the_chain,
    "recompute a chain, then let the pipeline append": recompute_a_chain_then_let_the_pipeline_append,
    "lose the journal with unflushed records": lose_the_journal,
    "duplicate a record": duplicate_a_record,
    "rewrite a data file in a middle version": rewrite_a_data_file_in_a_middle_version,
    "delete a data file": delete_a_data_file,
    "a rogue DELETE commit": a_rogue_delete,
    "a forged commit naming an existing run": a_forged_commit_naming_an_existing_run,
    "delete a commit from a table's log": delete_a_commit_from_a_log,
}
