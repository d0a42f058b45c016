"""What the bad-input rules must not break: ``--home``/``--json`` before or after the subcommand,
``reproduce`` writing only inside its folder (``--force`` for a non-empty one), and a lakehouse
whose path holds a quote or a space."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tracelake.jobs.cli import main


def _a_run(lake, component: str = "cleaned_trips", partition: str = "2026-01-14") -> str:
    runs = lake.store.component_runs()
    hit = runs[(runs["component"] == component) & (runs["partition_key"] == partition)
               & (runs["status"] == "succeeded")]
    return hit.sort_values("run_id").iloc[-1]["run_id"]


def test_home_and_json_go_before_or_after_the_subcommand(etl_bug_scenario, capsys, monkeypatch):
    home = etl_bug_scenario.home
    monkeypatch.setenv("TRACELAKE_HOME", "/nonexistent/on/purpose")
    answers = []
    for argv in (["--home", home, "--json", "runs", "--limit", "2"], ["runs", "--limit", "2", "--home", home, "--json"],
                 ["--json", "runs", "--home", home, "--limit", "2"]):
        assert main(argv) == 0, argv
        answers.append([r["run_id"] for r in json.loads(capsys.readouterr().out)])
    assert answers[0] == answers[1] == answers[2] and len(answers[0]) == 2
    # Nested subcommands take them at every level; a value given earlier stands when absent later.
    assert main(["audit", "--home", home, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["home"] == home
    assert main(["--home", home, "alerts", "--status", "all", "--json", "list"]) == 0
    json.loads(capsys.readouterr().out)


def test_reproduce_writes_only_inside_its_folder_and_overwrites_only_with_force(etl_bug_scenario, tmp_path, capsys):
    home, run = etl_bug_scenario.home, _a_run(etl_bug_scenario.lake)
    out = tmp_path / "repro"
    assert main(["reproduce", run, "--out", str(out), "--home", home]) == 0
    first = sorted(p.name for p in out.iterdir())
    assert "manifest.json" in first and all(n == "manifest.json" or n.endswith(".parquet") for n in first)
    assert "1 rows" not in capsys.readouterr().out
    (out / "notes.txt").write_text("mine")
    assert main(["reproduce", run, "--out", str(out), "--home", home]) == 2        # not empty: refused
    assert "is not empty" in capsys.readouterr().err
    assert main(["reproduce", run, "--out", str(out), "--home", home, "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*first, "notes.txt"])
    assert (out / "notes.txt").read_text() == "mine"
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(Path(i["file"]).parent == out.resolve() for i in manifest["inputs"] if i["kind"] == "table")


def test_a_lakehouse_path_with_a_quote_and_a_space_answers_sql(etl_bug_scenario, tmp_path):
    home = tmp_path / "o'brien's lake house"
    shutil.copytree(etl_bug_scenario.home, home)
    env = {**os.environ, "TRACELAKE_SPARK_MASTER": "local[1]", "TRACELAKE_SPARK_DRIVER_MEMORY": "1g",
           "TRACELAKE_ANCHOR_DIR": str(tmp_path / "anchors")}
    env.pop("TRACELAKE_HOME", None)
    done = subprocess.run([sys.executable, "-m", "tracelake.jobs.cli", "--home", str(home), "sql",
                           "SELECT count(*) AS n FROM cleaned_trips WHERE _tl_partition = '2026-01-14'", "--json"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)[0]["n"] > 0
    assert "Traceback" not in done.stderr
    assert "Using incubator modules" not in done.stderr   # Spark's JVM line is filtered (lineage/jvm_stderr.py)
