"""Compliance reports on the faulted reference pipeline (``etl_bug_scenario``).

The first model (v1) is trained on Monday 2026-01-12 from 2026-01-05..11; fares are in cents on
2026-01-14 (that day's cleaned_trips run fails its non-blocking ``fare_amount_range`` test); the
retrain of Monday 2026-01-19 (v2) learns from the two weeks before, bad day included. Every
report here is built on a private copy of the scenario (issuing writes audit records).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

BAD_DAY = "2026-01-14"


@pytest.fixture(scope="module")
def lake_copy(etl_bug_scenario, tmp_path_factory):
    from tracelake.lineage import open_lakehouse

    home = etl_bug_scenario.copy(tmp_path_factory.mktemp("compliance") / "lake")
    return open_lakehouse(home)


@pytest.fixture(scope="module")
def bad_etl(lake_copy):
    """The cleaned_trips run of the bad day, found from the check results (independently of the reports)."""
    from tracelake.lineage import CHECK_RESULTS

    checks = lake_copy.store.read(CHECK_RESULTS)
    hit = checks[(checks["check_name"] == "fare_amount_range") & ~checks["passed"].astype(bool)]
    assert list(hit["partition_key"]) == [BAD_DAY]
    run_id = hit.iloc[0]["run_id"]
    runs = lake_copy.store.component_runs(include_open=False)
    rec = runs[runs["run_id"] == run_id].iloc[0]
    assert rec["component"] == "cleaned_trips"
    return {"run_id": run_id, "version": int(rec["output_version"]), "content_digest": rec["content_digest"],
            "schema_hash": rec["output_schema_hash"]}


@pytest.fixture(scope="module")
def issued_v2(lake_copy, tmp_path_factory):
    """The model report of v2, issued through the CLI (files + record), once for this module."""
    from tracelake.jobs.cli import main

    out = tmp_path_factory.mktemp("report-v2")
    assert main(["--home", lake_copy.settings.home, "report", "model", "tip_model", "--version", "2",
                 "--out", str(out)]) == 0
    doc = json.loads(next(out.glob("*.json")).read_text())
    return doc, out


def _section(doc: dict, section: str) -> dict:
    return next(s for s in doc["sections"] if s["id"] == section)


def _rows(doc: dict, section: str, title_start: str) -> list[dict]:
    return next(t for t in _section(doc, section)["tables"] if t["title"].startswith(title_start))["rows"]


def test_model_report_after_the_bug_names_the_failed_fare_check_and_the_bad_version(issued_v2, bad_etl):
    doc, _ = issued_v2
    assert doc["subject"]["model"] == "tip_model" and doc["subject"]["version"] == "2"
    failures = _rows(doc, "data_quality", "Failures and warnings upstream")
    fare = [r for r in failures if r["check"] == "fare_amount_range"]
    assert [(r["side"], r["component"], r["partition_key"], r["outcome"], r["run_id"]) for r in fare] == \
        [("training", "cleaned_trips", BAD_DAY, "failed", bad_etl["run_id"])]
    upstream = _rows(doc, "training_data", "Every upstream run")
    bad = [r for r in upstream if r["run_id"] == bad_etl["run_id"]]
    assert len(bad) == 1 and bad[0]["table"] == "cleaned_trips" and bad[0]["version"] == bad_etl["version"]
    assert bad[0]["rows"] > 0
    # As recorded at write time, whole: the JSON is evidence a machine compares with the audit record.
    assert bad[0]["content_digest"] == bad_etl["content_digest"] and len(bad_etl["content_digest"]) == 64
    assert bad[0]["schema_hash"] == bad_etl["schema_hash"] and len(bad_etl["schema_hash"]) == 64
    # Down to the sources: the raw trips of the bad day are there too, and read no table.
    raw = [r for r in upstream if r["component"] == "raw_trips" and r["partition_key"] == BAD_DAY]
    assert len(raw) == 1 and raw[0]["source"] == "source"
    # The lineage graph is drawn (and the failing component is marked red).
    figure = _section(doc, "training_data")["figures"][0]
    assert any("cleaned_trips" in n["label"] and n["state"] == "failed" for n in figure["nodes"])
    # Changes against v1: the training window moved.
    changes = _rows(doc, "changes", "Training data compared")
    assert any(r["table"] == "cleaned_trips" and r["previous_partitions"] != r["this_partitions"] for r in changes)
    integrity = _section(doc, "integrity")
    assert integrity["facts"][0][1].startswith("OK")
    # The record cites the bad run with its record hash.
    assert bad_etl["run_id"] in {c["run_id"] for c in doc["built_from"]["cited_runs"]}


def test_model_report_before_the_bug_does_not(lake_copy, bad_etl):
    from tracelake.monitors.compliance.model_report import build_model_report
    from tracelake.monitors.compliance.records import Records

    doc = build_model_report(Records(lake_copy), "tip_model", "1", integrity=False)
    failures = _rows(doc, "data_quality", "Failures and warnings upstream")
    assert not [r for r in failures if r["side"] == "training"]
    upstream = _rows(doc, "training_data", "Every upstream run")
    assert bad_etl["run_id"] not in {r["run_id"] for r in upstream}
    assert max(r["partition_key"] for r in upstream if r["component"] == "cleaned_trips") < BAD_DAY
    # v1 served the bad day: the serving side shows it, and the performance section has its evaluation.
    assert any(r["run_id"] == bad_etl["run_id"] and r["side"] == "serving" for r in failures)
    served = _rows(doc, "performance", "Serving runs")
    assert BAD_DAY in {r["partition_key"] for r in served}
    assert _rows(doc, "performance", "Evaluation per day scored")
    assert _rows(doc, "performance", "Label arrival")
    assert _section(doc, "changes")["facts"][0][1].startswith("none")


def test_html_is_self_contained_and_pdf_has_the_same_sections(issued_v2, external_references):
    from pypdf import PdfReader

    doc, out = issued_v2
    html_text = next(out.glob("*.html")).read_text()
    assert external_references(html_text) == []
    assert "<svg" in html_text and 'class="lineage"' in html_text
    text = "\n".join(p.extract_text() for p in PdfReader(str(next(out.glob("*.pdf")))).pages)
    for i, s in enumerate(doc["sections"], start=1):
        assert f"{i}. {s['title']}" in html_text
        assert f"{i}. {s['title']}" in text, s["title"]
    assert "fare_amount_range" in text


def test_editing_one_byte_of_an_issued_report_fails_verify_and_names_the_record(issued_v2, lake_copy, tmp_path,
                                                                                capsys):
    from tracelake.jobs.cli import main

    doc, out = issued_v2
    html = next(out.glob("*.html"))
    assert main(["--home", lake_copy.settings.home, "report", "verify", str(html)]) == 0
    assert capsys.readouterr().out.startswith(f"OK: unaltered: this is the html of report {doc['report_id']}")
    data = bytearray(html.read_bytes())
    at = data.index(b"fare_amount_range") + 5
    data[at] ^= 0x01
    tampered = tmp_path / html.name
    tampered.write_bytes(bytes(data))
    assert main(["--home", lake_copy.settings.home, "report", "verify", str(tampered), "--json"]) == 1
    verdict = json.loads(capsys.readouterr().out)
    assert not verdict["ok"] and verdict["record"]["report_id"] == doc["report_id"]
    assert "ALTERED" in verdict["message"] and "audit.reports position" in verdict["message"]


def _independent_period_counts(lake, first: date, last: date) -> dict:
    """Runs, failures and alerts of a window, straight from the audit tables."""
    from tracelake.lineage import CHECK_RESULTS
    from tracelake.monitors.audit_tables import ALERTS

    runs = lake.store.component_runs(include_open=True)
    days = runs["partition_key"].str[:10].map(date.fromisoformat)
    mine = runs[(days >= first) & (days <= last)]
    checks = lake.store.read(CHECK_RESULTS)
    checks = checks[checks["run_id"].isin(set(mine["run_id"]))]
    alerts = lake.store.read(ALERTS)
    opened = alerts[alerts["event"] == "opened"]
    first_seen = pd.to_datetime(opened["first_seen"], utc=True)
    lo, hi = pd.Timestamp(first, tz="UTC"), pd.Timestamp(last, tz="UTC") + pd.Timedelta(days=1)
    return {"runs": len(mine), "failed_runs": int((mine["status"] == "failed").sum()),
            "by_component": mine["component"].value_counts().to_dict(),
            "checks": len(checks), "checks_failed": int((~checks["passed"] & (checks["severity"] == "error")).sum()),
            "checks_warned": int((~checks["passed"] & (checks["severity"] == "warn")).sum()),
            "alerts": int(((first_seen >= lo) & (first_seen < hi)).sum())}


def test_period_report_asset_counts_what_the_audit_tables_hold(lake_copy, tmp_path):
    """The monthly asset (as its schedule runs it) issues the month's report; its counts equal what
    the audit tables hold, computed here independently; its materialisation links the files."""
    import dagster as dg

    from tracelake.assets.compliance import COMPLIANCE_ASSETS, reports_base
    from tracelake.jobs.compliance import COMPLIANCE_JOBS, period_report_job
    from tracelake.lineage import LakehouseResource
    from tracelake.monitors.compliance.issue import issued_reports

    first, last = date(2026, 1, 1), date(2026, 1, 31)
    expected = _independent_period_counts(lake_copy, first, last)
    defs = dg.Definitions(assets=COMPLIANCE_ASSETS, jobs=COMPLIANCE_JOBS,
                          resources={"lakehouse": LakehouseResource(home=lake_copy.settings.home)})
    (tmp_path / "dagster").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "dagster")) as instance:
        result = defs.resolve_job_def(period_report_job.name).execute_in_process(
            partition_key="2026-01-01", instance=instance,
            tags={"dagster/schedule_name": "monthly_compliance_job_schedule"})   # as its schedule launches it
        assert result.success
        meta = instance.get_latest_materialization_event(
            dg.AssetKey("period_compliance_report")).asset_materialization.metadata
    record = issued_reports(lake_copy)[-1]
    assert record["subject"] == "2026-01-01..2026-01-31" and record["trigger"] == "schedule"
    html = Path(next(f["path"] for f in record["files"] if f["format"] == "html"))
    served = html.relative_to(Path(lake_copy.settings.home, "reports").resolve()).as_posix()
    assert meta["report_id"].value == record["report_id"] and meta["report_html"].value == f"{reports_base()}/{served}"
    document = json.loads(Path(next(f["path"] for f in record["files"] if f["format"] == "json")).read_text())
    counts = document["counts"]
    assert counts["runs"] == expected["runs"] > 0
    assert counts["runs_by_status"]["failed"] == expected["failed_runs"]
    assert counts["runs_by_component"] == expected["by_component"]
    assert counts["checks_evaluated"] == expected["checks"]
    assert counts["checks_failed"] == expected["checks_failed"] >= 1
    assert counts["checks_warned"] == expected["checks_warned"]
    assert counts["alerts_opened"] == expected["alerts"]
    assert [m["model"] for m in _rows(document, "models", "Models in service")] == ["tip_model v1", "tip_model v2"]
    failed = _rows(document, "checks", "Failed and warned")
    assert any(r["check"] == "fare_amount_range" and r["partition_key"] == BAD_DAY for r in failed)
    assert _section(document, "scope")["facts"][2][1].startswith("no: the newest data is of 2026-01-19")


def test_decision_names_the_bad_etl_run_and_the_model_of_that_time(lake_copy, bad_etl, capsys):
    from tracelake.jobs.cli import main

    where = f"pickup_date = '{BAD_DAY}' AND pickup_zone = 'Airport'"
    assert main(["--home", lake_copy.settings.home, "report", "decision", "tip_predictions", "--where", where,
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    answer = doc["answer"]
    assert [m["model"] for m in answer["models"]] == ["tip_model v1"]
    assert answer["models"][0]["trained_on"].startswith("training_set@v")
    assert bad_etl["run_id"] in answer["upstream_runs"]
    assert {"component": "cleaned_trips", "partition_key": BAD_DAY, "check": "fare_amount_range",
            "outcome": "failed", "run_id": bad_etl["run_id"]} in answer["failed_or_warned"]
    features = _rows(doc, "features", "Feature values: trip_features@v")
    assert features and {r["pickup_zone"] for r in features} == {"Airport"}
    # The fares the model saw are the bad day's (in cents: far above any real fare).
    assert min(r["fare_amount"] for r in features) > 100


def test_bad_input_is_one_line_and_exit_2(lake_copy, capsys):
    from tracelake.jobs.cli import main

    home = ["--home", lake_copy.settings.home, "report"]
    cases = [
        (["model", "no_such_model"], "unknown model 'no_such_model'"),
        (["model", "tip_model", "--version", "9"], "model tip_model has no version '9'"),
        (["period", "--from", "2026-01-20", "--to", "2026-01-10"], "empty window"),
        (["period", "--from", "2025-01-01", "--to", "2025-01-31"], "before any data"),
        (["period", "--from", "2026-03-01", "--to", "2026-03-31"], "no component run processed data"),
        (["decision", "tip_predictions", "--where", "pickup_date = '1999-01-01'"], "no rows of tip_predictions"),
        (["decision", "no_table", "--where", "true"], "no table 'no_table'"),
    ]
    for argv, message in cases:
        assert main(home + argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)


def _metric_facts(lake, record: dict) -> str:
    """The performance section's "metrics recorded" fact of an issued model report's JSON."""
    from tracelake.monitors.compliance.evidence import resolve_report_path

    recorded = next(f["path"] for f in record["files"] if f["format"] == "json")
    document = json.loads(Path(resolve_report_path(lake.settings.home, recorded) or recorded).read_text())
    return dict(_section(document, "performance")["facts"])["metrics recorded"]


def test_the_demo_issues_a_model_report_when_a_version_is_registered(etl_bug_scenario):
    """The scenario is the demo: its sensor issued a dossier the day each model was registered and
    re-issued v1's when v2 replaced it, the Dagster materialisation links the HTML over http (served
    by the docs server of `tracelake ui`), the summary names the files, and every file verifies
    (read-only: nothing is written to the shared scenario)."""
    import io
    import urllib.request

    import dagster as dg

    from tracelake.assets.compliance import reports_base
    from tracelake.jobs.compliance import print_report_files
    from tracelake.jobs.docs_server import DocsServer
    from tracelake.monitors.compliance.issue import issued_reports, verify_file

    lake = etl_bug_scenario.lake
    issued = issued_reports(lake)
    by_subject: dict[str, list[dict]] = {}
    for r in issued:
        by_subject.setdefault(r["subject"], []).append(r)
    assert {"tip_model v1", "tip_model v2"} <= set(by_subject)
    assert {r["trigger"] for r in by_subject["tip_model v1"] + by_subject["tip_model v2"]} == {"sensor"}
    # v1's first dossier was issued the day it was registered (no labels yet); when v2 replaced it,
    # it was re-issued with its serving life evaluated, naming the dossier it supersedes.
    v1s = by_subject["tip_model v1"]
    assert len(v1s) == 2, [r["report_id"] for r in v1s]
    first_v1, last_v1 = v1s
    assert last_v1["supersedes"] == first_v1["report_id"]
    assert _metric_facts(lake, first_v1).startswith("none (no labels evaluated yet)")
    assert "recall" in _metric_facts(lake, last_v1).split(", ")
    v2 = by_subject["tip_model v2"][-1]
    for f in v2["files"]:
        verdict = verify_file(lake, f["path"])
        assert verdict.ok, verdict.message
    document = json.loads(Path(next(f["path"] for f in v2["files"] if f["format"] == "json")).read_text())
    assert any(r["check"] == "fare_amount_range" for r in _rows(document, "data_quality", "Failures and warnings"))
    # The Dagster UI: the report asset's materialisation links the HTML and names the record.
    event = etl_bug_scenario.instance.get_latest_materialization_event(dg.AssetKey("model_compliance_report"))
    meta = event.asset_materialization.metadata
    assert event.asset_materialization.partition == "tip_model:v2"
    assert meta["report_id"].value == v2["report_id"] and meta["report_html"].value.startswith(reports_base() + "/")
    v2_html = next(f["path"] for f in v2["files"] if f["format"] == "html")
    assert meta["html_sha256"].value == next(f["sha256"] for f in v2["files"] if f["format"] == "html")
    # ... and that link opens: the docs server of `tracelake ui` serves <home>/reports at it.
    with DocsServer(Path(etl_bug_scenario.home) / "reports", port=0) as server:
        url = f"{server.url}/reports/" + meta["report_html"].value[len(reports_base()) + 1:]
        with urllib.request.urlopen(url, timeout=30) as answer:
            assert answer.status == 200 and answer.read() == Path(v2_html).read_bytes()
    # The demo summary names the files.
    out = io.StringIO()
    print_report_files(lake, out)
    assert v2_html in out.getvalue()
