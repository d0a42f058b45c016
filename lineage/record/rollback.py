"""Taking a failed or abandoned run's rows back out of a table.

A run can fail - or be killed - after its commit landed: the final record could not be written,
another run appended the same new partition at the same moment, the process died between the
commit and the record. Readers of the latest table must never see rows that no succeeded run
produced, so such a run is *rolled back*: one more commit that gives the table the content it
would have had without the run. The rollback commit names the run it undoes in its
``userMetadata`` (``tracelake_rollback_of``), its version is kept in the run's record
(``rolled_back_version``), and time travel to the versions in between still shows exactly what
happened - nothing is erased from history.

Done with delta-rs (no Spark), by write mode:

- **partition** - each partition the run wrote gets back the rows of other runs now in it, plus,
  when the run's commit had replaced the partition, the rows it replaced (read at the version
  before the commit);
- **append** - the run's rows are deleted;
- **overwrite** - the table gets back its content from before the commit (if the commit replaced
  it: a quarantine commit of an overwriting run is an append), plus rows other runs appended
  after it.

A run none of whose rows are visible any more (a later re-run replaced them) needs nothing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from tracelake.lineage.layout import PARTITION_COLUMN, RUN_ID_COLUMN
from tracelake.lineage.record import delta_meta

__all__ = ["Rollback", "in_predicate", "roll_back", "visible_rows"]

log = logging.getLogger("tracelake.rollback")


@dataclass(frozen=True)
class Rollback:
    version: int | None      # the rollback commit; None when nothing of the run was visible
    rows_removed: int
    rows_restored: int


def visible_rows(path: str, run_id: str, storage_options: dict[str, str] | None = None) -> int:
    """Rows of ``run_id`` in the newest version of the table at ``path``."""
    data = DeltaTable(path, storage_options=storage_options).to_pyarrow_dataset()
    if RUN_ID_COLUMN not in data.schema.names:
        return 0
    return data.count_rows(filter=ds.field(RUN_ID_COLUMN) == run_id)


def _aligned(table: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
            for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def in_predicate(column: str, values: Sequence[str]) -> str:
    """``column IN ('a', 'b')`` for delta-rs' predicates (DataFusion SQL: a quote is doubled)."""
    quoted = ("'" + v.replace("'", "''") + "'" for v in values)
    return f"{column} IN ({', '.join(quoted)})"


def roll_back(path: str, run_id: str, commit_version: int, mode: str, partitions: list[str] | None,
              storage_options: dict[str, str] | None = None, attempts: int = 8) -> Rollback:
    """Remove what ``run_id`` committed at ``commit_version`` from the latest table (see module doc)."""
    for attempt in range(1, attempts + 1):
        try:
            return _roll_back_once(path, run_id, commit_version, mode, partitions, storage_options)
        except CommitFailedError:
            if attempt == attempts:
                raise
            log.warning("rollback of run %s on %s conflicted with a concurrent commit; retrying", run_id, path)
            time.sleep(0.05 * 2 ** attempt)
    raise AssertionError("unreachable")


def _roll_back_once(path: str, run_id: str, commit_version: int, mode: str, partitions: list[str] | None,
                    storage_options: dict[str, str] | None) -> Rollback:
    dt = DeltaTable(path, storage_options=storage_options)
    latest = dt.to_pyarrow_dataset()
    mine = latest.count_rows(filter=ds.field(RUN_ID_COLUMN) == run_id)
    if mine == 0:
        return Rollback(None, 0, 0)
    props = CommitProperties(custom_metadata={"userMetadata": json.dumps(
        {"tracelake_rollback_of": run_id, "rolled_back_version": commit_version}, sort_keys=True)})
    commit = delta_meta.read_commit(path, commit_version, storage_options)
    replaced = bool(commit.removes) and commit_version > 0
    schema = pa.schema(dt.schema().to_arrow())
    partition_by = list(dt.metadata().partition_columns) or None
    others = ds.field(RUN_ID_COLUMN) != run_id
    if mode == "append" or (mode == "partition" and not partitions):
        dt.delete(f"{RUN_ID_COLUMN} = '{run_id}'", commit_properties=props)
        return Rollback(dt.version(), mine, 0)  # dt is at its own commit (not a later one)
    if mode == "partition":
        where = ds.field(PARTITION_COLUMN).isin(list(partitions or []))
        kept = latest.to_table(filter=where & others)
        before = DeltaTable(path, version=commit_version - 1, storage_options=storage_options).to_pyarrow_dataset() \
            .to_table(filter=where) if replaced else schema.empty_table()
        predicate: str | None = in_predicate(PARTITION_COLUMN, list(partitions or []))
    else:  # overwrite
        kept = latest.to_table(filter=others)
        # Only what the commit removed comes back: a commit that replaced nothing (the quarantine
        # of an overwriting run is an append) left the earlier rows in `kept` already.
        before = DeltaTable(path, version=commit_version - 1, storage_options=storage_options).to_pyarrow_table() \
            if replaced else schema.empty_table()
        # Rows appended after the overwrite are in `kept`; what it replaced comes back from `before`.
        predicate = None
    restored = pa.concat_tables([_aligned(kept, schema), _aligned(before, schema)])
    # Written on the snapshot read above (`dt`), so a commit that landed in between is a conflict
    # (retried on fresh state), never silently overwritten with what this rollback read before it.
    write_deltalake(dt, restored, mode="overwrite", predicate=predicate, partition_by=partition_by,
                    storage_options=storage_options, commit_properties=props)
    return Rollback(dt.version(), mine, before.num_rows)
