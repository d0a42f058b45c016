"""How the Dagster side reaches the reports - without Spark.

- the report asset's metadata links the HTML over http (a browser refuses ``file://`` links from
  the Dagster UI's http page), under ``TRACELAKE_REPORTS_BASE``, and the docs server that
  ``tracelake ui`` starts really serves that URL;
- the new-model-version sensor, evaluated on a real Dagster instance, issues each new version once
  and re-issues the version it replaces once (its first dossier had no labels yet).
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from tracelake.assets.compliance import DEFAULT_REPORTS_BASE, report_metadata, report_url


def _document() -> dict:
    digest = "c0ffee" * 10 + "abcd"
    return {
        "kind": "model", "title": "Model report: toy v1", "summary": [["model", "toy v1"]],
        "generated_at": "2026-02-01T00:00:00+00:00", "lakehouse": "/nowhere",
        "sections": [{"id": "training_data", "title": "Training data", "proves": "What it learned from.",
                      "tables": [{"title": "Every upstream run", "columns": ["table", "content_digest"],
                                  "rows": [{"table": "clean", "content_digest": digest}]}]}],
    }


@pytest.fixture
def issued_in_lake(tmp_path):
    """A report issued to its default folder, ``<home>/reports/compliance/...`` (no PDF: not under test)."""
    from tracelake.lineage import open_lakehouse
    from tracelake.monitors.compliance.issue import issue_report

    lake = open_lakehouse(str(tmp_path / "lake"))
    issued = issue_report(lake, _document(), subject="toy v1", cited=[], trigger="test", pdf=False)
    return lake, issued, Path(lake.layout.local_path(lake.layout.reports_root))


def test_report_link_is_http_and_the_docs_server_serves_it(issued_in_lake, monkeypatch):
    from tracelake.jobs.docs_server import DocsServer

    _, issued, reports_root = issued_in_lake
    monkeypatch.delenv("TRACELAKE_REPORTS_BASE", raising=False)
    default = report_metadata(issued, reports_root)["report_html"].value
    assert default.startswith(DEFAULT_REPORTS_BASE + "/compliance/models/toy-v1/") and default.endswith(".html")
    with DocsServer(reports_root, port=0) as server:     # what `tracelake ui` starts, on a free port
        # Read when the asset runs: `tracelake ui --docs-port` points the code location at its server.
        monkeypatch.setenv("TRACELAKE_REPORTS_BASE", f"{server.url}/reports/")
        meta = report_metadata(issued, reports_root)
        url = meta["report_html"].value
        assert isinstance(meta["report_html"], dg.UrlMetadataValue) and url.startswith(f"{server.url}/reports/")
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/html")
            assert answer.read() == Path(issued.html).read_bytes()
    # The file on disk is still named, as text to copy.
    assert meta["html_path"].value == issued.html and issued.html in meta["verify"].value


def test_a_report_outside_the_served_folder_gets_its_path_not_a_dead_link(issued_in_lake, tmp_path):
    from tracelake.monitors.compliance.issue import issue_report

    lake, _, reports_root = issued_in_lake
    elsewhere = issue_report(lake, _document(), subject="toy v1", cited=[], trigger="test", pdf=False,
                             out_dir=tmp_path / "out")        # `tracelake report model --out DIR`
    assert report_url(elsewhere.html, reports_root) is None
    meta = report_metadata(elsewhere, reports_root)
    assert isinstance(meta["report_html"], dg.PathMetadataValue) and meta["report_html"].value == elsewhere.html


# -- the sensor -------------------------------------------------------------------------------------

def _tick(instance: dg.DagsterInstance, home: str) -> dg.SensorResult:
    """One evaluation of the sensor, applying its partition requests as the daemon would."""
    from tracelake.jobs.compliance import new_model_version_sensor
    from tracelake.lineage import LakehouseResource

    with dg.build_sensor_context(instance=instance, resources={"lakehouse": LakehouseResource(home=home)}) as context:
        result = new_model_version_sensor(context)
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def _requests(result: dg.SensorResult) -> list[tuple[str, str]]:
    return [(r.run_key, r.partition_key) for r in result.run_requests or []]


def test_sensor_issues_each_new_version_and_reissues_the_one_it_replaces(tmp_path, monkeypatch):
    from tracelake.lineage import open_lakehouse
    from tracelake.monitors.compliance.records import Records

    home = str(tmp_path / "lake")
    open_lakehouse(home)
    registered: list[dict] = []      # what the audit records say was registered (read at each tick)
    monkeypatch.setattr(Records, "registered_versions",      # ordered as the real one orders them
                        lambda self, name=None: sorted(registered, key=lambda r: (r["name"], int(r["version"]))))

    def register(name: str, version: str) -> None:
        registered.append({"name": name, "version": version, "run_id": f"run-{name}-{version}"})

    with dg.DagsterInstance.ephemeral() as instance:
        register("tip_model", "1")
        assert _requests(_tick(instance, home)) == [("tip_model:v1", "tip_model:v1")]
        assert _tick(instance, home).skip_reason                       # nothing new: nothing requested
        register("tip_model", "2")
        register("fare_model", "1")
        result = _tick(instance, home)
        assert _requests(result) == [("tip_model:v1@retired", "tip_model:v1"),   # v1's life ended: re-issued
                                     ("fare_model:v1", "fare_model:v1"), ("tip_model:v2", "tip_model:v2")]
        assert result.run_requests[0].tags["tracelake/report_reason"] == "replaced by tip_model:v2"
        assert _tick(instance, home).skip_reason                       # each is requested once
        # Two versions registered between ticks: the middle one is issued after its life ended,
        # so only the one that was issued before it is re-issued.
        register("tip_model", "3")
        register("tip_model", "4")
        assert _requests(_tick(instance, home)) == [("tip_model:v2@retired", "tip_model:v2"),
                                                    ("tip_model:v3", "tip_model:v3"), ("tip_model:v4", "tip_model:v4")]
        assert set(instance.get_dynamic_partitions("registered_model_versions")) == {
            "tip_model:v1", "tip_model:v2", "tip_model:v3", "tip_model:v4", "fare_model:v1"}
