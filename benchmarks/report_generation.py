"""Compliance report generation time on the demo data (issue: compliance reports).

Times ``tracelake report model tip_model`` - the dossier of the newest model version: JSON, HTML
with the Graphviz lineage graph, PDF, the audit verify and retention verify it includes, and the
chained record - as a user runs it: a fresh process each time (interpreter start and imports
included; no Spark is started, by design). Also times the period report of the month and, in
one warm process, each stage of the model report, so the figure can be explained.

Baseline measured in the same run: `tracelake runs --limit 1`, the floor any CLI answer pays.

Run:  .venv/bin/python benchmarks/report_generation.py [--home LAKEHOUSE]
      (default: ./lakehouse if it holds a demo, else a 15-day demo with the ETL bug is simulated
      into a temporary folder first, ~10 minutes). The lakehouse is copied before reports are
      issued, so the original is never written to.
Target: <= 30 s per model report, including any Spark start.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from benchlib import figure, save_results

TARGET_S = 30.0


def _time_cmd(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr.strip()[-400:]}")
    return time.perf_counter() - t


def _demo(home: Path, days: int) -> None:
    import dagster as dg

    from tracelake.jobs.demo import DemoConfig, run_demo

    instance_dir = home.parent / "dagster"
    instance_dir.mkdir(parents=True, exist_ok=True)
    instance = dg.DagsterInstance.local_temp(str(instance_dir))
    print(f"simulating {days} demo days into {home} (once) ...", flush=True)
    result = run_demo(str(home), days, DemoConfig(seed=11, trips_per_day=400, faults=["etl_bug@2026-01-14"]),
                      instance=instance, progress=False, skip_jobs=frozenset({"compliance_reports"}))
    print(f"  simulated in {result['seconds']} s")


def _stages(home: str) -> dict[str, float]:
    """One warm process: where the time of one model report goes."""
    from tracelake.lineage import open_lakehouse
    from tracelake.monitors.compliance.integrity import integrity_checks
    from tracelake.monitors.compliance.model_report import build_model_report
    from tracelake.monitors.compliance.records import Records
    from tracelake.monitors.compliance.render_html import render_html
    from tracelake.monitors.compliance.render_pdf import render_pdf

    lake = open_lakehouse(home)
    out: dict[str, float] = {}
    t = time.perf_counter()
    records = Records(lake)
    _ = records.index
    out["read_audit_index_s"] = time.perf_counter() - t
    t = time.perf_counter()
    doc = build_model_report(records, "tip_model", None, integrity=False)
    out["build_sections_s"] = time.perf_counter() - t
    t = time.perf_counter()
    integrity_checks(records)
    out["audit_and_retention_verify_s"] = time.perf_counter() - t
    t = time.perf_counter()
    html = render_html(doc)
    out["render_html_with_graphviz_s"] = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        render_pdf(html, Path(tmp) / "r.pdf")
        out["render_pdf_s"] = time.perf_counter() - t
    out["sections"] = len(doc["sections"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="a demo lakehouse (default: ./lakehouse, else a fresh 15-day demo)")
    parser.add_argument("--days", type=int, default=15, help="days to simulate when no demo lakehouse is given")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "report_generation.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tracelake-report-bench-"))
    source = Path(args.home) if args.home else Path("lakehouse")
    if not (source / "audit" / "component_runs").exists() and not (source / "_journal").exists():
        source = work / "demo" / "lakehouse"
        _demo(source, args.days)
    home = work / "copy"
    shutil.copytree(source, home)
    env = {**os.environ, "TRACELAKE_HOME": str(home)}
    cli = [str(Path(sys.executable).with_name("tracelake"))]

    base = [_time_cmd([*cli, "runs", "--limit", "1", "--json"], env) for _ in range(3)]
    model = [_time_cmd([*cli, "report", "model", "tip_model", "--out", str(work / f"model-{i}")], env)
             for i in range(args.repeat)]
    from tracelake.lineage import open_lakehouse
    from tracelake.monitors.compliance.records import Records

    days = sorted(d for d in Records(open_lakehouse(str(home))).run_days if d is not None)
    first, last = days[0].replace(day=1).isoformat(), days[-1].isoformat()
    period = [_time_cmd([*cli, "report", "period", "--from", first, "--to", last, "--out", str(work / f"period-{i}")],
                        env) for i in range(args.repeat)]
    stages = _stages(str(home))
    pdf = next((work / "model-0").glob("*.pdf"))
    result: dict = {"lakehouse": str(source), "days_of_data": f"{days[0]}..{days[-1]}",
                    "model_report_pdf_bytes": pdf.stat().st_size, "load_average": os.getloadavg(),
                    **{f"stage_{k}": v for k, v in stages.items()}}
    print(f"\nCompliance report generation on demo data {days[0]}..{days[-1]} (a fresh process each; no Spark). "
          f"Load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (the machine is shared).")
    print(figure("baseline `tracelake runs`", base, None, result))
    print(figure("report model (newest)", model, TARGET_S, result))
    print(figure(f"report period {first}..{last}", period, None, result))
    print("  where one model report's time goes (warm process): " + ", ".join(
        f"{k.removesuffix('_s')} {v:.2f} s" for k, v in stages.items() if k.endswith("_s")))
    save_results(args.out, result)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
