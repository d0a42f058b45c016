"""The journal in PostgreSQL keeps the SQLite journal's promises, across processes.

- records of one audit table appended by many processes at once form one unbroken chain
  (each ``prev_hash`` is the record before it), none lost, none twice;
- a run is finished exactly once: a second close is refused and writes nothing;
- namespaces (one per lakehouse root) never see each other's records or open runs.
"""

from __future__ import annotations

import multiprocessing as mp
import uuid

import pytest

pytestmark = pytest.mark.cluster


def _journal(url: str, ns: str, tmp: str):
    from tracelake.lineage.record.journal import open_journal

    return open_journal(tmp, url, ns)


def _append(url: str, ns: str, tmp: str, n: int) -> None:
    from tracelake.lineage.record.audit_tables import COMPONENT_RUNS

    journal = _journal(url, ns, tmp)
    for i in range(n):
        journal.append(COMPONENT_RUNS, f"k{i}", {"run_id": uuid.uuid4().hex, "component": "c", "status": "succeeded"})


def test_chain_across_processes(cluster, tmp_path):
    from tracelake.lineage.record.audit_tables import COMPONENT_RUNS
    from tracelake.lineage.record.chain import chain_hash

    url, ns = cluster.env["TRACELAKE_JOURNAL_URL"], f"test-chain-{uuid.uuid4().hex[:8]}"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append, args=(url, ns, str(tmp_path), 25)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(600)
        assert p.exitcode == 0
    entries = _journal(url, ns, str(tmp_path)).pending(COMPONENT_RUNS)
    assert [e.chain_seq for e in entries] == list(range(100))
    prev = None
    for e in entries:
        assert e.row["prev_hash"] == prev
        assert chain_hash(prev, e.row) == e.row["record_hash"]
        prev = e.row["record_hash"]


def test_finished_once_and_namespaces_apart(cluster, tmp_path):
    from tracelake.lineage.record.audit_tables import COMPONENT_RUNS
    from tracelake.lineage.record.journal import RunAlreadyFinished

    url = cluster.env["TRACELAKE_JOURNAL_URL"]
    a, b = (_journal(url, f"test-ns-{uuid.uuid4().hex[:8]}", str(tmp_path)) for _ in range(2))
    a.open_run("r1", {"run_id": "r1", "component": "c"})
    assert [r.run_id for r in a.open_runs()] == ["r1"] and b.open_runs() == []
    a.append(COMPONENT_RUNS, "r1", {"run_id": "r1", "status": "succeeded"}, close_run="r1")
    with pytest.raises(RunAlreadyFinished):
        a.append(COMPONENT_RUNS, "r1", {"run_id": "r1", "status": "abandoned"}, close_run="r1")
    assert [e.row["status"] for e in a.pending(COMPONENT_RUNS)] == ["succeeded"]
    assert b.pending(COMPONENT_RUNS) == [] and a.journal_id != b.journal_id
