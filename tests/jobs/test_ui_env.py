"""``tracelake ui`` starts Dagster configured for the demo it shows - without Spark, without Dagster.

The Dagster process is replaced by a stand-in that records the command and environment it was
given and, while ``tracelake ui`` waits on it, fetches what the Dagster UI would link to: the
docs server is up exactly as long as Dagster runs.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from typing import Any

import pytest

from tracelake.jobs.cli import main

LAST_DAY = "2026-01-25"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _runbook_links() -> dict[str, Any]:
    """Every runbook link a check result or an alert carries: the declared tests of the reference
    pipeline's components and the monitoring policies, by name."""
    from tracelake.assets import PIPELINE_ASSETS
    from tracelake.assets.monitoring import BLOCKED, SLAS
    from tracelake.lineage.record.component import component_spec

    links = {f"{spec.name}.{check.name}": check.runbook_url
             for spec in map(component_spec, PIPELINE_ASSETS)
             for check in spec.checks if getattr(check, "runbook_url", None) is not None}
    links.update({f"policy {s.policy.name}": s.policy.runbook_url for s in SLAS if s.policy is not None})
    links[f"policy {BLOCKED.policy.name}"] = BLOCKED.policy.runbook_url
    return links


@pytest.fixture
def ui_started(tmp_path, monkeypatch):
    """``tracelake --home <demo> ui`` with a stand-in for Dagster; returns what it was started with."""
    home = tmp_path / "lakehouse"
    (home / "_demo").mkdir(parents=True)
    (home / "_demo" / "state.json").write_text(json.dumps({"config": {}, "last_day": LAST_DAY, "days": []}))
    for name in ("TRACELAKE_PARTITIONS_END", "TRACELAKE_RUNBOOK_BASE", "TRACELAKE_REPORTS_BASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))   # not the checkout's own instance
    monkeypatch.setenv("TRACELAKE_HOME", str(home))                 # main() sets it; restored after the test
    seen: dict[str, Any] = {}
    links = _runbook_links()

    class StandInDagster:
        def __init__(self, cmd, env):
            seen["cmd"], seen["env"] = cmd, env

        def wait(self, timeout=None) -> int:
            # What a user clicks in the Dagster UI, resolved as the code location resolves it.
            with monkeypatch.context() as m:
                m.setenv("TRACELAKE_RUNBOOK_BASE", seen["env"]["TRACELAKE_RUNBOOK_BASE"])
                seen["links"] = {name: str(url) for name, url in links.items()}
            page = seen["env"]["TRACELAKE_RUNBOOK_BASE"]
            with urllib.request.urlopen(page, timeout=10) as answer:
                seen["runbooks"] = (answer.status, answer.read().decode())
            return 0

        def terminate(self) -> None:
            pass

    port, docs_port = _free_port(), _free_port()
    with monkeypatch.context() as m:   # only `tracelake ui` gets the stand-in; the tests start real processes
        m.setattr(subprocess, "Popen", StandInDagster)
        assert main(["--home", str(home), "ui", "--port", str(port), "--docs-port", str(docs_port)]) == 0
    seen["port"], seen["docs_port"] = port, docs_port
    return seen


def test_ui_bounds_the_partitions_to_the_demo_window(ui_started):
    env = ui_started["env"]
    assert env["TRACELAKE_PARTITIONS_END"] == "2026-01-26"   # exclusive: the day after the last simulated day
    assert str(ui_started["port"]) in ui_started["cmd"]
    # The code location Dagster loads with that environment ends its daily partitions on the last day.
    probe = "from tracelake.assets.partitions import daily; print(daily.get_last_partition_key())"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == LAST_DAY


def test_ui_points_runbook_links_at_its_docs_server_and_it_serves_their_anchors(ui_started):
    env, links = ui_started["env"], ui_started["links"]
    base = f"http://127.0.0.1:{ui_started['docs_port']}"
    assert env["TRACELAKE_RUNBOOK_BASE"] == f"{base}/runbooks"
    assert env["TRACELAKE_REPORTS_BASE"] == f"{base}/reports"
    status, page = ui_started["runbooks"]
    assert status == 200
    assert {"cleaned_trips.fare_amount_range", "raw_trips.schema", "policy tip_recall_sla"} <= set(links)
    for name, url in links.items():
        target, _, anchor = url.partition("#")
        assert target == env["TRACELAKE_RUNBOOK_BASE"] and anchor, (name, url)
        assert f'id="{anchor}"' in page, f"{name} links to #{anchor}, which the runbook page does not have"

