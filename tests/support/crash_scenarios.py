"""The crash scenarios, each a function of a base lab and a folder: what is done to the processes
and disks, then what the lakehouse says afterwards, judged (``crash_checks.judge``).

Shared by ``tests/crash`` (which asserts on each :class:`Outcome`) and
``benchmarks/crash_consistency.py`` (which sums the figures). Every scenario starts from a copy
of one base lakehouse (:func:`build_base`: eight partitions of ``numbers``, one of ``doubled``),
and asks every question afterwards in fresh processes: ``audit reconcile`` (with ``DAGSTER_HOME``
so Dagster runs are failed too), ``audit verify``, and the observation.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crash_checks import Expect, judge, records_by_run
from crash_lab import Lab, SmallDisk, Worker

__all__ = [
    "KILL_POINTS",
    "Outcome",
    "build_base",
    "concurrent_writers",
    "external_session",
    "flush_kill",
    "full_disk",
    "inject_duplicate",
    "kill_matrix",
    "lost_history",
    "racing_reconcilers",
    "read_only_journal",
]

BASE_PARTITIONS = [f"2026-01-{d:02d}" for d in range(1, 9)]
HORIZON = "interval 2555 days"

# (point, partition of `doubled`): a new partition each, and a re-run of one that exists.
KILL_POINTS = [
    ("after_open", "2026-01-02"),
    ("after_inputs", "2026-01-03"),
    ("after_function", "2026-01-04"),
    ("before_commit", "2026-01-05"),
    ("after_commit", "2026-01-06"),
    ("after_final", "2026-01-07"),
    ("flush_after_commit", "2026-01-08"),
    ("after_commit", "2026-01-01"),          # a re-run: the rows it replaced must come back
]
_BEFORE_FINAL = {"after_open", "after_inputs", "after_function", "before_commit"}


@dataclass
class Outcome:
    name: str
    lab: Lab
    found: dict[str, list[str]]
    observation: dict[str, Any]
    verify: dict[str, Any]
    kills: dict[str, int] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def records(self) -> dict[str, list[dict[str, Any]]]:
        return records_by_run(self.observation)

    def record(self, run_id: str) -> dict[str, Any]:
        recs = self.records()[run_id]
        assert len(recs) == 1, recs
        return recs[0]


def _kill_count(workers: Sequence[Worker]) -> dict[str, int]:
    kills: dict[str, int] = {}
    for w in workers:
        for point in w.killed_at:
            kills[point] = kills.get(point, 0) + 1
    return kills


def _settle(lab: Lab, name: str, started: list[str], expect: dict[str, Expect], t0: float,
            kills: dict[str, int] | None = None, facts: dict[str, Any] | None = None,
            flush_first: bool = False) -> Outcome:
    """After the processes are gone: reconcile, (flush), verify, observe and judge - all fresh processes."""
    facts = dict(facts or {})
    facts["reconcile"] = lab.reconcile()
    if flush_first:
        flushed = lab.flush()
        facts["flush"] = {"returncode": flushed.returncode, "stdout": flushed.stdout, "stderr": flushed.stderr[-3000:]}
    observation = lab.observe(verify=True)
    verify = observation.pop("verify")
    found = judge(observation, started, expect, verify)
    return Outcome(name, lab, found, observation, verify, kills or {}, facts, time.monotonic() - t0)


# -- the base -------------------------------------------------------------------------------------
def build_base(root: Path) -> Lab:
    """Eight partitions of ``numbers`` and one of ``doubled``; records left in the journal."""
    lab = Lab(root)
    worker = lab.start("base", ["numbers"], BASE_PARTITIONS, runs=["doubled:2026-01-01"], flush_records=100000)
    rc = worker.wait(1200)
    runs = worker.result()["runs"]
    if rc != 0 or len(runs) != len(BASE_PARTITIONS) + 1 or not all(r["success"] for r in runs):
        raise AssertionError(f"the base lakehouse could not be built:\n{worker.log_text()[-4000:]}")
    return lab


# -- 1. kill at each point of a materialisation ----------------------------------------------------
def kill_matrix(base: Lab, root: Path, points: Sequence[tuple[str, str]] = KILL_POINTS) -> Outcome:
    """One worker per point, all at once in one lakehouse; each killed (whole process group) where
    it pauses. Then reconcile and judge: killed before the final record -> abandoned (and, when
    its commit had landed, rolled back with the rollback recorded); after it -> succeeded."""
    t0 = time.monotonic()
    lab = Lab.copy_of(base, root)
    workers = []
    for point, partition in points:
        name = f"{point}-{partition}"
        workers.append((point, partition, lab.start(name, ["doubled"], [partition], failpoints=f"{point}=pause",
                                                     flush_records=1)))
    expect: dict[str, Expect] = {}
    started: list[str] = []
    try:
        for point, partition, worker in workers:
            worker.wait_marker(900, point)
            worker.kill()
            ids = worker.run_ids()
            assert len(ids) == 1, (worker.name, ids)
            started += ids
            note = f"killed at {point}, {partition}"
            if point in _BEFORE_FINAL:
                expect[ids[0]] = Expect({"abandoned"}, landed=False, note=note)
            elif point == "after_commit":
                expect[ids[0]] = Expect({"abandoned"}, landed=True, note=note)
            else:
                expect[ids[0]] = Expect({"succeeded"}, landed=True, note=note)
    finally:
        lab.kill_all()
    out = _settle(lab, "kill at each point", started, expect, t0, _kill_count([w for _, _, w in workers]))
    out.facts["by_point"] = {f"{p}-{part}": w.run_ids()[0] for p, part, w in workers}
    # The flush killed between its Delta commit and the journal trim: flushing again adds nothing twice.
    again = lab.flush()
    assert again.returncode == 0, again
    out.facts["second_flush"] = again.json()
    out.facts["observation_after_flush"] = lab.observe(verify=True)
    out.facts["verify_after_flush"] = out.facts["observation_after_flush"].pop("verify")
    after = judge(out.facts["observation_after_flush"], started, expect, out.facts["verify_after_flush"])
    for figure, items in after.items():
        out.found[figure] += [f"(after a second flush) {i}" for i in items if i not in out.found[figure]]
    return out


# -- 2. kill inside the audit flush (the CLI, no Spark) ---------------------------------------------
def flush_kill(base: Lab, root: Path) -> Outcome:
    t0 = time.monotonic()
    lab = Lab.copy_of(base, root)
    pending_before = lab.pending_records()
    worker = lab.start_cli("flush", "audit", "flush", failpoints="flush_after_commit=pause")
    try:
        worker.wait_marker(300, "flush_after_commit")
        worker.kill()
    finally:
        lab.kill_all()
    # Straight after the kill, before anything repairs it: the record reads whole and verify is clean.
    seen_now = lab.observe(verify=True)
    verify_now = seen_now.pop("verify")
    out = _settle(lab, "kill inside the audit flush", [], {}, t0, _kill_count([worker]))
    out.found["false_tamper_alarms"] += [f"(right after the kill) audit verify: {p}" for p in verify_now["problems"]]
    flushed = lab.flush()
    assert flushed.returncode == 0, flushed
    final = lab.observe(verify=True)
    verify_final = final.pop("verify")
    after = judge(final, [], {}, verify_final)
    for figure, items in after.items():
        out.found[figure] += [f"(after a second flush) {i}" for i in items]
    out.facts.update(pending_before=pending_before, pending_after_kill=seen_now["pending_journal_records"],
                     duplicates_after_kill=seen_now["audit_position_duplicates"], second_flush=flushed.json(),
                     pending_final=final["pending_journal_records"], records_after_kill=len(seen_now["records"]),
                     records_final=len(final["records"]))
    return out


# -- 3. racing reconcilers --------------------------------------------------------------------------
_DEAD_RUNS = r'''
import json, sys
from datetime import datetime, timezone
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from tracelake.lineage import open_lakehouse
from tracelake.lineage.record.runid import new_run_id

home, n, landed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lake = open_lakehouse(home)
path = lake.layout.table("numbers")
schema = pa.schema(DeltaTable(path).schema().to_arrow())
ids = []
for i in range(n):
    run_id = new_run_id()
    partition = f"2026-02-{i + 1:02d}"
    row = {"run_id": run_id, "component": "numbers", "asset_key": "numbers", "partition_key": partition,
           "status": "started", "started_at": datetime.now(timezone.utc), "output_table": "numbers",
           "output_path": path, "write_mode": "partition", "config_json": "{}"}
    lake.journal.open_run(run_id, row)
    if i < landed:
        # What a run killed straight after its commit leaves: a commit naming it, its rows visible.
        data = {"key": [f"{partition}-{k}" for k in range(10)], "value": list(range(10)), "writer": [0] * 10,
                "_tl_run_id": [run_id] * 10, "_tl_partition": [partition] * 10}
        table = pa.table({f.name: pa.array(data[f.name], f.type) for f in schema})
        meta = {"tracelake_run_id": run_id, "component": "numbers", "partition": partition}
        write_deltalake(path, table, mode="append", partition_by=["_tl_partition"], commit_properties=CommitProperties(
            custom_metadata={"userMetadata": json.dumps(meta, sort_keys=True)}))
    ids.append(run_id)
print(json.dumps(ids))
'''


def racing_reconcilers(base: Lab, root: Path, runs: int = 20, landed: int = 5, reconcilers: int = 4) -> Outcome:
    """``runs`` dead runs (open markers of a process that is gone; ``landed`` of them with their
    commit in the table), then ``reconcilers`` ``tracelake audit reconcile`` processes at once."""
    t0 = time.monotonic()
    lab = Lab.copy_of(base, root)
    ids = json.loads(lab.python(_DEAD_RUNS, str(lab.home), str(runs), str(landed)))
    go = lab.logs / "reconcilers.go"
    procs = [lab.start_cli(f"reconcile-{i}", "audit", "reconcile", "--json", at=go) for i in range(reconcilers)]
    for p in procs:  # every one imported and waiting: then all start at the same instant
        p.wait_marker(300, "ready")
    go.touch()
    for p in procs:
        p.wait(600)
    actions: dict[str, list[str]] = {}
    for p in procs:
        text = p.log_text()
        payload = json.loads(text[text.index("["):]) if "[" in text else []
        for r in payload:
            actions.setdefault(r["run_id"], []).append(r["action"])
    expect = {rid: Expect({"abandoned"}, landed=i < landed, note=f"dead run {i}") for i, rid in enumerate(ids)}
    out = _settle(lab, "racing reconcilers", ids, expect, t0,
                  facts={"actions": actions, "exit_codes": [p.proc.returncode for p in procs], "ids": ids})
    return out


_DUPLICATE = r'''
import sys
from tracelake.lineage import open_lakehouse
from tracelake.lineage.record.audit_tables import COMPONENT_RUNS
home, run_id = sys.argv[1], sys.argv[2]
lake = open_lakehouse(home)
rec = lake.store.component_runs(include_open=False).set_index("run_id").loc[run_id].to_dict()
rec["run_id"] = run_id
rec = {k: v for k, v in rec.items() if k not in ("journal_id", "chain_seq", "prev_hash", "record_hash", "recorded_at")}
# A second, properly chained record of a finished run - what a racing reconciler used to write.
lake.journal.append(COMPONENT_RUNS, run_id, rec)
'''


def inject_duplicate(lab: Lab, run_id: str) -> dict[str, Any]:
    """Append a second (validly chained) record of ``run_id`` by hand; returns verify's answer."""
    lab.python(_DUPLICATE, str(lab.home), run_id)
    return lab.verify()


# -- 4. concurrent writers of one new partition ----------------------------------------------------
def concurrent_writers(base: Lab, root: Path, writers: int = 6, partition: str = "2026-01-20") -> Outcome:
    """``writers`` processes write the same new partition of ``numbers``; held at the commit until
    every one is there, then released together."""
    t0 = time.monotonic()
    lab = Lab.copy_of(base, root)
    procs = [lab.start(f"writer-{i}", ["numbers"], [partition], failpoints="before_commit=pause", scale=i + 1)
             for i in range(writers)]
    try:
        for p in procs:
            p.wait_marker(900, "before_commit")
        for p in procs:
            p.resume()
        for p in procs:
            p.wait(900)
    finally:
        lab.kill_all()
    started = [rid for p in procs for rid in p.run_ids()]
    # Who won is only known afterwards; the judge checks that whoever succeeded owns the partition.
    out = _settle(lab, "concurrent writers of a new partition", started, {}, t0,
                  facts={"results": [p.result() for p in procs], "started": started})
    recs = {rid: out.record(rid) for rid in started if rid in out.records()}
    winners = [rid for rid, r in recs.items() if r["status"] == "succeeded"]
    out.facts["winners"] = winners
    out.facts["losers"] = {rid: (r["status"], r["error_type"], r["rolled_back_version"])
                           for rid, r in recs.items() if rid not in winners}
    return out


# -- 5. full disk at each write, read-only storage --------------------------------------------------
FULL_DISK_PARTITIONS = {"data_commit": "2026-01-21", "journal_final": "2026-01-22", "audit_flush": "2026-01-23",
                        "anchor_write": "2026-01-24", "read_only_tables": "2026-01-25",
                        "journal_full_then_killed": "2026-01-26"}
_NO_SPACE = "No space left on device"


def full_disk(base: Lab, root: Path) -> Outcome:
    """One worker, one Dagster run per write point, the storage of that write on its own small tmpfs
    (tables, audit tables, journal, anchors): at the failpoint just before the write the disk is
    filled to the last byte (or remounted read-only), the worker goes on and meets the real error,
    then the space comes back. The last run's journal stays full until the process is killed."""
    t0 = time.monotonic()
    lab = Lab.copy_of(base, root)
    disks = {name: SmallDisk(path, "16m") for name, path in (
        ("tables", lab.home / "tables"), ("audit", lab.home / "audit"), ("journal", lab.home / "_journal"),
        ("anchors", lab.anchors))}
    for disk in disks.values():
        disk.mount()
    order = list(FULL_DISK_PARTITIONS.values())
    worker = lab.start("disk", ["numbers"], order, flush_records=1,
                       failpoints="before_commit=pause,after_commit=pause,after_final=pause,between_runs=pause,"
                                  "worker_exit=pause")
    tables, audit, journal, anchors = (disks[n] for n in ("tables", "audit", "journal", "anchors"))
    steps: list[tuple[str, Callable[[], None] | None]] = [
        # data commit: the tables' disk is full when Spark writes
        ("before_commit", tables.fill), ("between_runs", tables.free),
        # the journal's final record: full after the commit landed (rolled back; retried once there is room)
        ("before_commit", None), ("after_commit", journal.fill), ("between_runs", journal.free),
        # the audit flush at the end of the Dagster run
        ("before_commit", None), ("after_commit", None), ("after_final", audit.fill), ("between_runs", audit.free),
        # the anchor of the new chain head: a line that only partly fits (the hardest case)
        ("before_commit", None), ("after_commit", lambda: (_anchor_tail_short(lab), anchors.fill())),
        ("after_final", None), ("between_runs", anchors.free),
        # a read-only lakehouse
        ("before_commit", tables.read_only), ("between_runs", tables.read_write),
        # the journal full after the commit, and the process killed before there is room again
        ("before_commit", None), ("after_commit", journal.fill), ("between_runs", None),
    ]
    facts: dict[str, Any] = {}
    try:
        for point, action in steps:
            worker.wait_marker(900, point)
            if action is not None:
                action()
            worker.resume()
        worker.wait_marker(300, "worker_exit")
        facts["result"] = worker.result()
        worker.kill()
        journal.free()
        facts["log"] = worker.log_text()
    except BaseException:
        lab.kill_all()
        for disk in disks.values():
            disk.unmount()
        raise
    ids = {s["partition"]: s["run_id"] for s in worker.started()}
    by_case = {case: ids.get(partition) for case, partition in FULL_DISK_PARTITIONS.items()}
    facts["by_case"] = by_case
    expect = {
        by_case["data_commit"]: Expect({"failed"}, landed=False, error_first=_NO_SPACE, note="data commit, full disk"),
        by_case["journal_final"]: Expect({"failed"}, landed=True, note="final record, full journal",
                                         error_first=f"the run's final record could not be written: {_NO_SPACE}"),
        by_case["audit_flush"]: Expect({"succeeded"}, landed=True, note="audit flush, full disk"),
        by_case["anchor_write"]: Expect({"succeeded"}, landed=True, note="anchor write, full disk"),
        by_case["read_only_tables"]: Expect({"failed"}, landed=False, error_first="Read-only file system",
                                            note="read-only tables"),
        by_case["journal_full_then_killed"]: Expect({"abandoned"}, landed=True,
                                                    note="final record refused, then killed"),
    }
    try:
        out = _settle(lab, "full disk at each write", [s["run_id"] for s in worker.started()],
                      {k: v for k, v in expect.items() if k}, t0, _kill_count([worker]), facts, flush_first=True)
    finally:
        for disk in disks.values():
            disk.unmount()
    lost = [case for case, rid in by_case.items() if rid is None]
    out.found["records_lost"] += [f"{case}: no run started" for case in lost]
    # Writes that are not the run's record say what went wrong in the log, root cause first.
    for case, pattern in (("audit_flush", f"audit flush failed: {_NO_SPACE}"),
                          ("anchor_write", rf"could not anchor component_runs position \d+: \[Errno 28\] {_NO_SPACE}")):
        hits = [line for line in facts["log"].splitlines() if re.search(pattern, line)]
        out.facts[f"{case}_log"] = hits
        if not hits:
            out.found["root_cause_missing"].append(f"{case}: no log line matching {pattern!r}")
    return out


_PAD_ANCHORS = r'''
import json, os, sys
from tracelake.lineage import open_lakehouse
from tracelake.lineage.record.anchors import anchor_store
lake = open_lakehouse(sys.argv[1])
store = anchor_store(lake.settings.home, lake.settings.anchor_dir)
seq, record_hash = lake.journal.chain_head("component_runs")
size = os.path.getsize(store.path) if store.path.exists() else 0
for _ in range(400):
    store.note("component_runs", lake.journal.journal_id, seq, record_hash)   # what `tracelake audit anchor` does
    grown, size = os.path.getsize(store.path) - size, os.path.getsize(store.path)
    room = -size % 4096
    if 16 < room < grown - 16:
        break
print(json.dumps({"size": size, "room": room, "line": grown}))
'''


def _anchor_tail_short(lab: Lab) -> dict[str, Any]:
    """Legitimately re-anchor the current head (as ``tracelake audit anchor`` does) until the
    anchor file's last memory page has less room than one more line: on a full tmpfs the next
    anchor write is then a *short* write - part of a line - not a clean ENOSPC."""
    return json.loads(lab.python(_PAD_ANCHORS, str(lab.home)))


def read_only_journal(base: Lab, root: Path, partition: str = "2026-01-28") -> Outcome:
    """A worker started on a lakehouse whose journal is on a read-only disk: nothing may run."""
    t0 = time.monotonic()
    lab = Lab.copy_of(base, root)
    journal = SmallDisk(lab.home / "_journal", "16m").mount()
    before = lab.table_versions()
    journal.read_only()
    try:
        worker = lab.start("ro-journal", ["numbers"], [partition])
        worker.wait(900)
        facts = {"result": worker.result(), "started": worker.started(), "tables_before": before}
    finally:
        lab.kill_all()
        journal.read_write()
    try:
        out = _settle(lab, "read-only journal", [], {}, t0, facts=facts)
    finally:
        journal.unmount()
    out.facts["tables_after"] = {name: info["latest"] for name, info in out.observation["tables"].items()}
    failures = "\n".join(f for r in facts["result"]["runs"] for f in r["failures"])
    if not re.search(r"OSError: \[Errno 30\] Read-only file system: the audit journal", failures):
        out.found["root_cause_missing"].append(f"read-only journal: the step failure does not say so: "
                                               f"{failures[-600:]}")
    if any(r["success"] for r in facts["result"]["runs"]):
        out.found["false_successes"].append("a run succeeded with a read-only journal")
    if out.facts["tables_after"] != before or facts["started"]:
        out.found["false_successes"].append(f"work was done without a record: tables {before} -> "
                                            f"{out.facts['tables_after']}, runs started {facts['started']}")
    return out


# -- 6. a Spark session built elsewhere -------------------------------------------------------------
def external_session(base: Lab, root: Path) -> Outcome:
    t0 = time.monotonic()
    lab = Lab.copy_of(base, root)
    worker = lab.start("external", ["fresh_table"], external_spark=True)
    worker.wait(900)
    facts = {"result": worker.result(), "retention_verify": None}
    out = _settle(lab, "external Spark session", worker.run_ids(),
                  {rid: Expect({"succeeded"}, landed=True, note="external session") for rid in worker.run_ids()},
                  t0, facts=facts)
    res = lab.cli("retention", "verify", "--json")
    out.facts["retention_verify"] = {"returncode": res.returncode, "stdout": res.stdout, "stderr": res.stderr[-3000:]}
    return out


# -- 7. history lost under the retention check ---------------------------------------------------
def lost_history(base: Lab, root: Path) -> dict[str, Any]:
    """A data file of the oldest version removed, and separately the first commit of a table:
    ``tracelake retention verify`` must report both, not crash."""
    lab = Lab.copy_of(base, root)
    numbers = lab.home / "tables" / "numbers"
    log = (numbers / "_delta_log" / f"{0:020d}.json").read_text().splitlines()
    first = json.loads(next(line for line in log if '"add"' in line))["add"]["path"]
    from urllib.parse import unquote

    (numbers / unquote(first)).unlink()
    gone_file = lab.cli("retention", "verify", "--json")
    log0 = numbers / "_delta_log" / f"{0:020d}.json"
    log0.unlink()
    gone_commit = lab.cli("retention", "verify", "--json")
    return {"file": gone_file, "commit": gone_commit, "verify": lab.verify()}
