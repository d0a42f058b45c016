"""Every view of the record says the same thing: the audit store, the CLI in a fresh process,
Dagster's event log. Run on faulted scenarios, where the statuses are the interesting part."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from deltalake import DeltaTable



def _chained_tables_on_disk(home: str) -> dict[str, int]:
    """Every chained table the lakehouse holds, and its record count, read without Tracelake's
    own listing: Delta folders under audit/ plus the journal's unflushed tail (raw SQLite)."""
    import sqlite3

    counts: dict[str, int] = {}
    for folder in sorted((Path(home) / "audit").iterdir()):
        if (folder / "_delta_log").is_dir():
            table = DeltaTable(str(folder)).to_pyarrow_table(columns=["journal_id", "chain_seq"])
            counts[folder.name] = len({(j, s) for j, s in zip(table.column(0).to_pylist(), table.column(1).to_pylist(),
                                                               strict=True)})
    con = sqlite3.connect(Path(home) / "_journal" / "journal.sqlite")
    for tbl, n in con.execute("SELECT tbl, count(*) FROM entries GROUP BY tbl"):
        counts[tbl] = counts.get(tbl, 0) + n  # the flushed part is trimmed from the journal
    return counts


def test_the_cli_verifies_every_chained_table_of_the_lakehouse_in_a_fresh_process(covariate_shift_scenario):
    home = covariate_shift_scenario.home
    on_disk = _chained_tables_on_disk(home)
    assert {"component_runs", "check_results", "metrics", "alerts", "anomalies", "sla_evaluations",
            "profile_specs"} <= set(on_disk)
    out = subprocess.run([sys.executable, "-m", "tracelake.jobs.cli", "--home", home, "audit", "verify", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] and report["tables"] == on_disk
    assert report["records"] == sum(on_disk.values())
