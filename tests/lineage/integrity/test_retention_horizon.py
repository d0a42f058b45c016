"""History kept readable for years: Delta's log cleanup under the retention horizon Tracelake sets."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake


def _hundreds_of_old_commits(path: Path, retention: str | None, n: int = 300) -> float:
    config = {"delta.logRetentionDuration": retention, "delta.deletedFileRetentionDuration": retention} if retention else None
    for i in range(n):
        write_deltalake(str(path), pa.table({"version_written": [i], "value": [i * 1.5]}), mode="append",
                        configuration=config if i == 0 else None)
    # Pretend the commits happened two years ago, one hour apart (timestamp travel uses these).
    start = time.time() - 2 * 365 * 86400
    for f in (path / "_delta_log").glob("*.json"):
        version = int(f.name[:20])
        os.utime(f, (start + version * 3600, start + version * 3600))
    return start


def test_time_travel_across_hundreds_of_old_versions_survives_log_cleanup(tmp_path, spark):
    kept, default = tmp_path / "kept", tmp_path / "default"
    start = _hundreds_of_old_commits(kept, "interval 2555 days")
    _hundreds_of_old_commits(default, None)
    for path in (kept, default):
        dt = DeltaTable(str(path))
        dt.create_checkpoint()
        dt.cleanup_metadata()  # what a checkpointing writer does: drop log entries past retention
    # Under Delta's defaults the two-year-old versions are gone ...
    assert not (default / "_delta_log" / f"{1:020d}.json").exists()
    with pytest.raises(Exception, match=r"(?i)version|not found|no such file|reconstruct"):
        spark.read.format("delta").option("versionAsOf", 1).load(str(default)).collect()
    # ... with the configured horizon every one of them is still readable, by version and by time.
    assert (kept / "_delta_log" / f"{1:020d}.json").exists()
    for v in (0, 1, 150, 299):
        rows = spark.read.format("delta").option("versionAsOf", v).load(str(kept)).count()
        assert rows == v + 1
    when = pd.Timestamp(start + 10.5 * 3600, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M:%S")
    at = spark.read.format("delta").option("timestampAsOf", when).load(str(kept))
    assert at.count() == 11  # version 10 was the newest commit at that time
    assert DeltaTable(str(kept), version=1).to_pyarrow_table().num_rows == 2  # and for delta-rs too
