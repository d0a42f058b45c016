"""Rendering, issuing and verifying compliance reports - without Spark.

A report document is rendered to self-contained HTML (checked by parsing it for anything that
points outside the file) and to PDF (checked by extracting its text with pypdf); issuing chains
the files' SHA-256 into ``audit.reports`` of a real (delta-rs) audit store; one changed byte, or
a rewritten issuing record, is caught by ``verify_file`` and named.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC
from pathlib import Path

import pytest

from tracelake.monitors.compliance.issue import REPORTS, issue_report, verify_file
from tracelake.monitors.compliance.render_html import render_html
from tracelake.monitors.compliance.render_pdf import render_pdf


def _document() -> dict:
    return {
        "kind": "model", "title": "Model report: toy v3",
        "summary": [["model", "toy v3"], ["upstream failures", "1 failed, 0 warned"]],
        "generated_at": "2026-02-01T00:00:00+00:00", "lakehouse": "/nowhere",
        "sections": [
            {"id": "identity", "title": "Identity", "proves": "Which model this is.",
             "facts": [["registry version", "toy v3"], ["MLflow run", "http://127.0.0.1:5000/#/experiments/1/runs/ab"]]},
            {"id": "training_data", "title": "Training data", "proves": "What it learned from.",
             "figures": [{"kind": "graph", "title": "Lineage of toy v3", "nodes": [
                 {"id": "a", "label": "raw\n3 runs", "state": "ok"},
                 {"id": "b", "label": "clean\n3 runs\n1 run(s) failed checks", "state": "failed"},
                 {"id": "m", "label": "model toy v3", "state": "model", "kind": "model"}],
                 "edges": [{"from": "a", "to": "b", "label": "raw@v1..v3"},
                           {"from": "b", "to": "m", "label": "clean@v4"}]}],
             "tables": [{"title": "Upstream tables", "columns": ["table", "versions", "rows"],
                         "rows": [{"table": "clean", "versions": "v4", "rows": 1200}]}]},
            {"id": "data_quality", "title": "Data quality", "proves": "Every declared test upstream.",
             "tables": [{"title": "Failures and warnings upstream", "columns": ["component", "check", "outcome"],
                         "rows": [{"component": "clean", "check": "fare_amount_range", "outcome": "failed"}]}]},
            {"id": "integrity", "title": "Integrity", "proves": "The records were intact.", "notes": ["see verify"]},
        ],
        "built_from": {"chain_heads": [{"table": "component_runs", "journal_id": "j", "records": 3, "chain_seq": 2,
                                        "record_hash": "ab" * 32}]},
    }


def test_html_is_self_contained_and_draws_the_graph_with_graphviz(external_references):
    html_text = render_html({**_document(), "report_id": "01TESTREPORT0000000000000000"[:26]})
    assert external_references(html_text) == []
    # The lineage graph is inline SVG laid out by dot (Graphviz writes its node groups as class="node").
    assert html_text.count('<g id="node') == 3 and 'class="lineage"' in html_text
    assert "<!DOCTYPE svg" not in html_text and "<?xml" not in html_text
    # Links the records hold are shown as text, not followed.
    assert "http://127.0.0.1:5000/#/experiments/1/runs/ab" in html_text.replace("<wbr>", "")
    for title in ("Identity", "Training data", "Data quality", "Integrity"):
        assert f"{title}</h2>" in html_text


def test_html_shortens_digests_for_display_only():
    """The JSON carries schema hashes and content digests whole; a page shows a prefix (the whole
    value in the cell's title) and says where the full value is."""
    digest, other = "c0ffee" * 10 + "abcd", "beef" * 16
    doc = _document()
    doc["sections"][1]["tables"].append({
        "title": "Every upstream run", "columns": ["table", "content_digest", "schema_hashes"],
        "rows": [{"table": "clean", "content_digest": digest, "schema_hashes": f"{digest}, {other}"}]})
    html_text = render_html(doc)
    assert f'<td title="{digest}"><code>{digest[:16]}…</code></td>' in html_text
    assert f"<code>{digest[:16]}…, {other[:16]}…</code>" in html_text
    assert "the JSON report issued with this file holds them in full" in html_text
    assert doc["sections"][1]["tables"][-1]["rows"][0]["content_digest"] == digest     # the document is not changed


def test_pdf_has_the_same_sections(tmp_path):
    from pypdf import PdfReader

    html_text = render_html({**_document(), "report_id": "01TESTREPORT00000000000000"})
    render_pdf(html_text, tmp_path / "r.pdf")
    reader = PdfReader(str(tmp_path / "r.pdf"))
    text = "\n".join(p.extract_text() for p in reader.pages)
    for i, title in enumerate(("Identity", "Training data", "Data quality", "Integrity"), start=1):
        assert f"{i}. {title}" in text
    assert "fare_amount_range" in text and "What this proves" in text
    assert "tracelake-report-id:01TESTREPORT00000000000000" in str(reader.metadata.get("/Keywords"))


def test_rendering_refuses_anything_outside_the_file(tmp_path):
    html_text = render_html(_document()).replace("</header>", '<img src="http://example.invalid/x.png"></header>')
    with pytest.raises(ValueError, match=r"example\.invalid"):
        render_pdf(html_text, tmp_path / "r.pdf")


@pytest.fixture
def issued(tmp_path):
    from tracelake.lineage import open_lakehouse

    lake = open_lakehouse(str(tmp_path / "lake"))
    report = issue_report(lake, _document(), subject="toy v3", cited=[], params={"model": "toy"},
                          out_dir=tmp_path / "out", trigger="test")
    return lake, report


def test_issue_records_every_file_hash_in_the_chain(issued):
    lake, report = issued
    rows = lake.store.read(REPORTS)
    assert list(rows["report_id"]) == [report.report_id]
    recorded = {f["format"]: f["sha256"] for f in rows.iloc[0]["files"]}
    assert recorded == {fmt: f["sha256"] for fmt, f in report.files.items()}
    assert set(recorded) == {"json", "html", "pdf"}
    doc = json.loads(Path(report.files["json"]["path"]).read_text())
    assert doc["report_id"] == report.report_id and doc["sections"][0]["id"] == "identity"
    for fmt, f in report.files.items():
        verdict = verify_file(lake, f["path"])
        assert verdict.ok, verdict.message
        assert verdict.file_format == fmt and verdict.record["report_id"] == report.report_id
    # A second issue of the same subject names the one it supersedes.
    again = issue_report(lake, _document(), subject="toy v3", cited=[], trigger="test",
                         out_dir=Path(report.html).parent.parent / "again")
    assert lake.store.read(REPORTS).iloc[-1]["supersedes"] == report.report_id
    assert verify_file(lake, again.html).ok


@pytest.mark.parametrize("fmt", ["html", "pdf", "json"])
def test_one_changed_byte_fails_verification_and_names_the_record(issued, tmp_path, fmt):
    lake, report = issued
    original = Path(report.files[fmt]["path"])
    data = bytearray(original.read_bytes())
    # One byte in the body of the document (not the report id), e.g. a digit of a figure.
    at = data.index(b"1200") if fmt != "pdf" else len(data) // 2
    data[at] = ord("7") if data[at] != ord("7") else ord("8")
    tampered = tmp_path / "copy" / original.name
    tampered.parent.mkdir()
    tampered.write_bytes(bytes(data))
    verdict = verify_file(lake, tampered)
    assert not verdict.ok
    assert "ALTERED" in verdict.message and report.report_id in verdict.message
    assert f"position {report.record['chain_seq']}" in verdict.message
    assert verdict.record["record_hash"] == report.record["record_hash"]


def test_a_rewritten_issuing_record_is_caught(issued):
    lake, report = issued
    con = sqlite3.connect(lake.journal.path)
    payload = json.loads(con.execute("SELECT payload FROM entries WHERE tbl='reports'").fetchone()[0])
    payload["issued_by"] = "someone-else"
    con.execute("UPDATE entries SET payload=? WHERE tbl='reports'", (json.dumps(payload),))
    con.commit()
    con.close()
    verdict = verify_file(lake, report.html)
    assert not verdict.ok and "fails the audit chain" in verdict.message and "modified" in verdict.message


def test_a_file_never_issued_is_not_vouched_for(issued, tmp_path):
    lake, _ = issued
    other = tmp_path / "other.html"
    other.write_text("<html><body>hello</body></html>")
    verdict = verify_file(lake, other)
    assert not verdict.ok and "no issued report" in verdict.message


def test_cli_bad_window_is_one_line_and_exit_2(capsys, tmp_path):
    from tracelake.jobs.cli import main

    assert main(["--home", str(tmp_path / "lake"), "report", "period", "--from", "2026-02-01", "--to",
                 "2026-01-01"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["tracelake: error: empty window: --to 2026-01-01 is before --from 2026-02-01"]
    assert main(["--home", str(tmp_path / "lake"), "report", "period", "--from", "January", "--to", "2026-01-01"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["--home", str(tmp_path / "lake"), "report", "model", "tip_model"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]         # a typo in --home creates nothing
    from tracelake.lineage import open_lakehouse

    open_lakehouse(str(tmp_path / "lake"))                      # an empty lakehouse: no model yet
    assert main(["--home", str(tmp_path / "lake"), "report", "model", "tip_model"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no model version was registered" in err[0]
    assert main(["--home", str(tmp_path / "lake"), "report", "verify", str(tmp_path / "missing.html")]) == 2


def test_alert_lifecycles_say_who_acknowledged_and_resolved_with_the_runbook(tmp_path):
    """The incidents section's rows, from real alert events (no Spark)."""
    from datetime import datetime

    from tracelake.lineage import open_lakehouse
    from tracelake.monitors.alerts.manager import AlertManager, AlertPolicy
    from tracelake.monitors.compliance.common import alert_lifecycles
    from tracelake.monitors.compliance.records import Records

    lake = open_lakehouse(str(tmp_path / "lake"))
    manager = AlertManager(lake)
    policy = AlertPolicy("tip_recall_sla", runbook_url="http://runbooks.invalid/#tip-recall", channels=())
    opened = datetime(2026, 1, 15, 7, tzinfo=UTC)
    assert manager.observe(policy, "tip_predictions", True, "recall 0.61 < 0.80", when=opened) == "opened"
    alert_id = manager.alerts()[0].alert_id
    manager.acknowledge(alert_id, actor="oncall-ana")
    manager.resolve(alert_id, actor="oncall-ana", reason="retrained")
    [row] = alert_lifecycles(Records(lake).alert_events)
    assert row["alert_id"] == alert_id and row["status"] == "resolved"
    assert row["opened"] == opened and row["acknowledged_by"] == "oncall-ana" and row["resolved_by"] == "oncall-ana"
    assert row["runbook"] == "http://runbooks.invalid/#tip-recall"
    assert row["resolution"] == "resolved by hand: retrained"
