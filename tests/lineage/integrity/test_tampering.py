"""Every way of changing the record behind Tracelake's back that `audit verify` must catch - on a
private copy of the ETL-bug scenario, anchored as a live lakehouse is - and what it cannot."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tampering import KINDS, forge_an_anchor

from tracelake.lineage import METRICS, open_lakehouse
from tracelake.lineage.integrity.anchoring import anchor_current_heads
from tracelake.lineage.integrity.verify import verify_lakehouse
from tracelake.lineage.lakehouse import forget_lakehouse
from tracelake.lineage.record.anchors import anchor_store
from tracelake.lineage.record.runid import new_run_id


@pytest.fixture
def live_copy(etl_bug_scenario, tmp_path):
    """A copy of the scenario as a live lakehouse is: anchored, with records not flushed yet."""
    home = etl_bug_scenario.copy(tmp_path / "lake")
    lake = open_lakehouse(home)
    anchor_current_heads(lake)
    for i in range(3):
        mid = new_run_id()
        lake.journal.append(METRICS, mid, {"metric_id": mid, "component": "tip_predictions", "metric": "drill",
                                           "value": float(i), "computed_at": datetime.now(UTC)})
    forget_lakehouse(home)
    return home


def _verify(home: str):
    forget_lakehouse(home)  # read the files as they are now, as a fresh process would
    return verify_lakehouse(open_lakehouse(home))


def test_an_untouched_copy_verifies_clean(live_copy):
    report = _verify(live_copy)
    assert report.ok, report.problems
    assert report.checked_versions > 50


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_of_tampering_is_caught_and_named(live_copy, kind):
    target = KINDS[kind](live_copy)
    report = _verify(live_copy)
    assert not report.ok, f"{kind} went unnoticed"
    name = target.split("@")[0]
    # a lost journal is named by the chains whose anchored records went with it
    assert any(name in p or (name == "journal" and "is gone" in p) for p in report.problems), report.problems


def test_a_forged_anchor_is_caught(live_copy):
    forge_an_anchor(live_copy, anchor_store(live_copy).path)
    report = _verify(live_copy)
    assert any("fail their signature" in p for p in report.problems)


def test_what_the_anchors_are_for(live_copy, tmp_path, monkeypatch):
    """Without anchors, a chain recomputed after a change is internally consistent: the anchor is
    what catches it (docs/security.md says so)."""
    KINDS["change a record and recompute the chain"](live_copy)
    monkeypatch.setenv("TRACELAKE_ANCHOR_DIR", str(tmp_path / "no-anchors"))
    assert _verify(live_copy).ok


def test_a_home_that_is_not_a_lakehouse_is_refused(tmp_path, capsys):
    from tracelake.jobs.cli import main

    assert main(["--home", str(tmp_path / "a" / "typo"), "audit", "verify"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["--home", str(tmp_path / "file"), "runs"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()  # asking created nothing
