"""Resource key ``delta_io_manager``: Dagster's view of Delta tables, for plain Dagster assets.

Components commit their own output (so the commit and the audit record share one run id) and
report it with a ``MaterializeResult``; this IO manager is never asked to store it. Plain
Dagster assets use it both ways: they return a DataFrame and it writes one commit (no audit
record - that is the difference a ``@component`` makes), and any asset can take a component's
table as a parameter and receive a DataFrame read at a pinned version (reported in metadata).
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from tracelake.lineage.lakehouse import LakehouseResource
from tracelake.lineage.layout import PARTITION_COLUMN
from tracelake.lineage.record import delta_meta
from tracelake.lineage.record.runid import new_run_id
from tracelake.lineage.record.spec import table_name_for
from tracelake.lineage.record.tables import read_version, write_commit

__all__ = ["DeltaIOManager"]


class DeltaIOManager(dg.ConfigurableIOManager):
    lakehouse: LakehouseResource = Field(default_factory=LakehouseResource)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        lake = self.lakehouse.open()
        table = table_name_for(context.asset_key)
        path = lake.layout.table(table)
        partitions = list(context.asset_partition_keys) if context.has_asset_partitions else None
        # Not audited, but still one commit that says who wrote it.
        run_id = f"plain-{new_run_id()}"
        before = delta_meta.latest_version(path)
        write_commit(lake.spark(), path, obj, run_id=run_id, mode="partition" if partitions else "overwrite",
                     partitions=partitions,
                     user_metadata={"tracelake_run_id": run_id, "dagster_run_id": context.run_id,
                                    "asset": context.asset_key.to_user_string(), "audited": False})
        commit = delta_meta.find_commit(path, run_id, oldest=(before + 1) if before is not None else 0)
        context.add_output_metadata({
            "table": dg.MetadataValue.path(path),
            "delta_version": commit.version if commit else -1,
            "dagster/row_count": (commit.rows_added or 0) if commit else 0,
        })

    def load_input(self, context: dg.InputContext) -> Any:
        lake = self.lakehouse.open()
        table = table_name_for(context.asset_key)
        path = lake.layout.table(table)
        version = delta_meta.latest_version(path)
        if version is None:
            raise FileNotFoundError(f"table {table!r} does not exist at {path}; materialise it first")
        partitions = None
        if context.has_asset_partitions:
            from deltalake import DeltaTable

            if PARTITION_COLUMN in DeltaTable(path, version=version).metadata().partition_columns:
                partitions = list(context.asset_partition_keys)
        context.add_input_metadata({"delta_version": version, "table": dg.MetadataValue.path(path)})
        return read_version(lake.spark(), path, version, partitions)
