"""The faulted reference pipeline on the cluster answers exactly as it does embedded.

The same seed, faults and simulated days run twice, at the same time: once on the embedded
profile (local Spark, a lakehouse folder, the SQLite journal, MLflow on SQLite, Dagster on
SQLite) and once on the cluster (Spark standalone, s3a:// on SeaweedFS, the journal in
PostgreSQL, the MLflow server, Dagster in PostgreSQL). Run ids differ (they are made of time
and randomness); everything else a lineage answer consists of must not: which runs happened
and how they ended, the exact input versions each read, the output version it wrote and its
rows, the declared tests' verdicts, and the rows of a trace and an impact.

Then every CLI command is run against the cluster's lakehouse.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cluster_lab import REPO, save_timing

pytestmark = pytest.mark.cluster

SEED, TRIPS = 11, 200
DAYS = int(os.environ.get("TRACELAKE_CLUSTER_TEST_DAYS", "4"))
FAULTS = ["late_labels@2026-01-05:2", "etl_bug@2026-01-06", "missing_partition@2026-01-07", "schema_break@2026-01-08"]
TRACE = ("trip_features", "pickup_date = '2026-01-06'")
DRIVER = Path(__file__).with_name("run_reference.py")
_CLUSTER_ONLY = ("TRACELAKE_JOURNAL_URL", "TRACELAKE_SPARK_CONF", "TRACELAKE_SPARK_CONNECT_URL", "DAGSTER_HOME",
                 "MLFLOW_TRACKING_URI", "TRACELAKE_MLFLOW_UI_URL", "TRACELAKE_OPENLINEAGE_DIR", "TRACELAKE_HOME")


def _start(env: dict[str, str], home: str, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, str(DRIVER), "--home", home, "--days", str(DAYS), "--seed", str(SEED),
           "--trips", str(TRIPS), "--faults", ",".join(FAULTS)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True, cwd=str(REPO))


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("reference")
    embedded_env = {k: v for k, v in os.environ.items() if k not in _CLUSTER_ONLY and not k.startswith("AWS_")}
    embedded_env.update(TRACELAKE_SPARK_MASTER="local[2]", DAGSTER_HOME=str(root / "dagster"), PYTHONUNBUFFERED="1")
    (root / "dagster").mkdir()
    homes = {"embedded": str(root / "lakehouse"), "cluster": cluster.new_home("reference")}
    t0 = time.monotonic()
    procs = {"embedded": _start(embedded_env, homes["embedded"], root / "embedded.log"),
             "cluster": _start(cluster.client_env(homes["cluster"]), homes["cluster"], root / "cluster.log")}
    results = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=3600)
        log = (root / f"{name}.log").read_text()
        assert proc.returncode == 0, f"{name} run failed ({proc.returncode}):\n{log[-5000:]}"
        results[name] = json.loads(out.strip().splitlines()[-1])
        save_timing(f"reference_{DAYS}_days_{name}", results[name]["seconds"], days=DAYS, trips_per_day=TRIPS)
    save_timing("reference_both_wall", time.monotonic() - t0)
    return {"homes": homes, "results": results, "embedded_env": embedded_env}


def _lake(cluster, home: str):
    from tracelake.lineage import open_lakehouse

    remote = home.startswith("s3a://")
    return open_lakehouse(home, journal_url=cluster.env["TRACELAKE_JOURNAL_URL"] if remote else None)


def _runs_view(lake) -> dict[tuple, list[tuple]]:
    """(component, partition) -> what each of its runs read, wrote and how it ended - no ids, no paths."""
    view: dict[tuple, list[tuple]] = {}
    for r in lake.store.component_runs().to_dict("records"):
        inputs = sorted((i["kind"], i["name"], i["version"], _tuple(i["partitions"]),
                         _tuple(i.get("missing_partitions"))) for i in _tuple(r["inputs"]))
        view.setdefault((r["component"], r["partition_key"]), []).append(
            (r["status"], r["output_table"], r["output_version"], r["output_rows"], r["error_type"], tuple(inputs)))
    return {k: sorted(v, key=repr) for k, v in view.items()}


def _tuple(values: Any) -> tuple:
    """A list column read back (a NumPy array, a list or None) as a tuple."""
    return () if values is None else tuple(values)


def _checks_view(lake) -> list[tuple]:
    runs = {r["run_id"]: (r["component"], r["partition_key"]) for r in lake.store.component_runs().to_dict("records")}
    frame = lake.store.read("check_results")
    return sorted((runs.get(r["run_id"]), r["check_name"], bool(r["passed"]), _rounded(r.get("observed_value")))
                  for r in frame.to_dict("records"))


def _rounded(value: Any) -> str:
    """Observed values to 9 significant digits: a float sum's last bits depend on how Spark split
    the rows (2 local threads vs 2 executors), the verdicts and the values do not."""
    return f"{value:.9g}" if isinstance(value, float) else repr(value)


def _graph_view(answer: dict[str, Any], labels: dict[str, str]) -> tuple[list, list]:
    """A trace/impact answer with run ids replaced by component[partition]."""
    name = lambda i: labels.get(i, i)  # noqa: E731
    nodes = sorted((name(n["id"]), n["kind"], n["status"], n["table"], n["version"], n["rows"], n["depth"],
                    sorted(c.get("name", c.get("check", "")) for c in n.get("checks") or []))
                   for n in answer["nodes"])
    edges = sorted((name(e["child"]), name(e["parent"]), e["via"], e["input"], e.get("rows")) for e in answer["edges"])
    return nodes, edges


def _labels(lake) -> dict[str, str]:
    records = lake.store.component_runs().to_dict("records")
    return {r["run_id"]: f"{r['component']}[{r['partition_key']}]" for r in records}


def test_same_runs_versions_and_checks(cluster, runs):
    days = {p: [d["jobs"] for d in runs["results"][p]["days"]] for p in ("embedded", "cluster")}
    assert days["cluster"] == days["embedded"]
    embedded, on_cluster = (_lake(cluster, runs["homes"][k]) for k in ("embedded", "cluster"))
    assert _runs_view(on_cluster) == _runs_view(embedded)
    assert _checks_view(on_cluster) == _checks_view(embedded)
    statuses = {s for v in _runs_view(on_cluster).values() for s, *_ in v}
    assert {"succeeded", "failed"} <= statuses, "the faults made some runs fail, on both profiles"


def test_same_trace_and_impact(cluster, runs):
    answers = {}
    for profile, home in runs["homes"].items():
        env = runs["embedded_env"] if profile == "embedded" else {}
        lake = _lake(cluster, home)
        labels = _labels(lake)
        trace = _cli(cluster, profile, home, env, "trace", TRACE[0], "--where", TRACE[1], "--json")
        impact = _cli(cluster, profile, home, env, "impact", "cleaned_trips@1", "--json")
        answers[profile] = (_graph_view(trace, labels), _graph_view(impact, labels))
    assert answers["cluster"] == answers["embedded"]
    (trace_nodes, _), (impact_nodes, _) = answers["cluster"]
    assert any(n[0].startswith("raw_trips[") for n in trace_nodes), "the trace reaches the raw data"
    assert any(n[0].startswith("trip_features[") for n in impact_nodes), "the impact reaches the features"


def _cli(cluster, profile: str, home: str, env: dict[str, str], *args: str) -> Any:
    if profile == "cluster":
        return cluster.cli(home, *args)
    proc = subprocess.run([sys.executable, "-m", "tracelake.jobs.cli", "--home", home, *args], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_every_cli_command_on_the_cluster(cluster, runs, tmp_path: Path):
    """Each command answers on the production profile (exit 0, no traceback); time travel on s3a://."""
    home = runs["homes"]["cluster"]
    lake = _lake(cluster, home)
    frame = lake.store.component_runs()
    ok = frame[frame["status"] == "succeeded"].sort_values("started_at")
    first, last = ok.iloc[0]["run_id"], ok.iloc[-1]["run_id"]
    etl = ok[ok["component"] == "cleaned_trips"]
    commands = [
        ["runs", "--limit", "0", "--json"], ["run", "show", last, "--json"], ["history", "cleaned_trips", "--json"],
        ["diff", etl.iloc[0]["run_id"], etl.iloc[-1]["run_id"], "--json"],
        ["trace", TRACE[0], "--where", TRACE[1], "--format", "mermaid"], ["impact", first, "--json"],
        ["upstream-checks", TRACE[0], "--where", TRACE[1], "--json"],
        ["flag", TRACE[0], "--where", TRACE[1], "--reason", "fares look wrong", "--json"], ["flags", "--json"],
        ["review", "--json"], ["checks", "--failed", "--json"], ["metrics", "trip_features", "--json"],
        ["alerts", "--json"], ["drift", "trip_features", "--json"],
        ["sql", "SELECT count(*) AS n FROM cleaned_trips VERSION AS OF 0", "--json"],
        ["sql", "SELECT component, status, count(*) AS n FROM audit.component_runs GROUP BY 1, 2", "--json"],
        ["reproduce", etl.iloc[-1]["run_id"], "--out", str(tmp_path / "repro"), "--json"],
        ["vacuum", "--json"], ["retention", "verify", "--json"],
        ["audit", "status", "--json"], ["audit", "reconcile", "--json"], ["audit", "flush", "--json"],
        ["audit", "compact", "--json"], ["audit", "verify", "--json"], ["openlineage", "status", "--json"],
    ]
    # Four days hold no model yet, so no drift profiles: `drift` must say so in one line (exit 2).
    expected = {"drift": (2, "profile")}
    failed = {}
    for args in commands:
        proc = cluster.cli(home, *args, check=False)
        code, words = expected.get(args[0], (0, ""))
        if proc.returncode != code or words not in proc.stderr or "Traceback" in proc.stderr:
            failed[" ".join(args[:2])] = f"exit {proc.returncode}: {proc.stderr.strip()[-600:]}"
    assert not failed, "\n".join(f"tracelake {k}: {v}" for k, v in failed.items())

    rows = cluster.cli(home, "sql", "SELECT count(*) AS n FROM cleaned_trips VERSION AS OF 0", "--json")
    first_etl = lake.store.component_runs()
    first_etl = first_etl[(first_etl["component"] == "cleaned_trips") & (first_etl["output_version"] == 0)]
    assert rows[0]["n"] == int(first_etl.iloc[0]["output_rows"]), "time travel on s3a:// reads version 0"
    assert cluster.cli(home, "audit", "verify", "--json")["ok"]
    retention = cluster.cli(home, "retention", "verify", "--json")
    assert all(r["ok"] for r in (retention if isinstance(retention, list) else retention["tables"])), retention
