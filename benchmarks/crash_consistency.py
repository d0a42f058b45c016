"""Crash consistency: after any crash, race or full disk, do the record and the tables say exactly
what happened? The same scenarios as the crash suite (``tests/support/crash_scenarios.py``), run
with real processes, real kills of whole process groups and real small disks, summed into the
figures below - every one with target 0.

Scenarios: a materialisation killed at each step boundary (``--rounds`` times; one worker per
point, all at once), the audit flush killed between its Delta commit and the journal trim,
20 dead runs reconciled by 4 racing reconcilers (plus one duplicate injected by hand, which
verification must name), 6 processes writing one new partition at once, a full disk at each
write (data commit, journal final record, audit flush, anchor) and read-only tables, a read-only
journal, and a Spark session built without Tracelake's options.

Figures (each counted from the final state as read by fresh processes after reconciliation;
``tests/support/crash_checks.py`` defines them):

- kills x points - how many kills, at how many distinct points (context, no target);
- records lost, records duplicated, false successes, false tamper alarms (``audit verify`` not
  clean although nothing was tampered with), rows of failed/abandoned runs visible in the newest
  table version (the invisible-failed-rows check), rollbacks not recorded, unreadable versions,
  runs left running (Dagster STARTED, MLflow RUNNING, open markers), status mismatches between
  the record, Dagster and MLflow, errors not naming their root cause first - all target 0;
- injected duplicates missed by ``audit verify`` - target 0.

Run:  .venv/bin/python benchmarks/crash_consistency.py [--rounds 2] [--keep]
(needs root for the small tmpfs disks; without, the disk scenarios are reported as not run.)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "tests" / "support"))

import crash_scenarios as scenarios  # noqa: E402
from benchlib import save_results  # noqa: E402
from crash_checks import FIGURES, Tally  # noqa: E402
from crash_lab import SmallDisk  # noqa: E402

_LABELS = {
    "records_lost": "records lost",
    "records_duplicated": "records duplicated",
    "false_successes": "false successes",
    "false_tamper_alarms": "false tamper alarms",
    "failed_rows_visible": "failed/abandoned rows visible",
    "rollback_unrecorded": "rollbacks not recorded",
    "unreadable_versions": "unreadable table versions",
    "left_running": "runs left running",
    "status_mismatch": "record/Dagster/MLflow mismatches",
    "root_cause_missing": "errors without root cause first",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the kill-at-each-point matrix")
    parser.add_argument("--keep", action="store_true", help="keep the labs (printed) for inspection")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "crash_consistency.json"))
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="tracelake-crash-"))
    tally = Tally()
    timings: dict[str, float] = {}
    not_run: dict[str, str] = {}
    missed_duplicates = injected = 0
    started = time.monotonic()
    try:
        t0 = time.monotonic()
        base = scenarios.build_base(root / "base")
        timings["base lakehouse"] = time.monotonic() - t0
        plan = [(f"kill at each point (round {i + 1})", scenarios.kill_matrix) for i in range(args.rounds)]
        plan += [("kill inside the audit flush", scenarios.flush_kill),
                 ("racing reconcilers", scenarios.racing_reconcilers),
                 ("concurrent writers of a new partition", scenarios.concurrent_writers),
                 ("full disk at each write", scenarios.full_disk),
                 ("read-only journal", scenarios.read_only_journal),
                 ("external Spark session", scenarios.external_session)]
        disks_ok, why = SmallDisk.available(root)
        for i, (name, scenario) in enumerate(plan):
            if scenario in (scenarios.full_disk, scenarios.read_only_journal) and not disks_ok:
                not_run[name] = f"no small disk: {why}"
                continue
            print(f"- {name} ...", flush=True)
            out = scenario(base, root / f"s{i}")
            timings[name] = out.seconds
            tally.add(name, out.found)
            for point, n in out.kills.items():
                tally.kills[point] = tally.kills.get(point, 0) + n
            if scenario is scenarios.racing_reconcilers:
                injected += 1
                answer = scenarios.inject_duplicate(out.lab, out.facts["ids"][0])
                if not any("is recorded 2 times" in p for p in answer["problems"]):
                    missed_duplicates += 1
    finally:
        if args.keep:
            print(f"  labs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    total = time.monotonic() - started

    kills = sum(tally.kills.values())
    print("\nCrash consistency")
    print(f"  kills x points: {kills} kills at {len(tally.kills)} points "
          f"({', '.join(f'{p} {n}' for p, n in sorted(tally.kills.items()))})")
    rows = [(_LABELS[name], tally.figures[name]) for name in FIGURES]
    rows.append(("injected duplicates missed by verify", missed_duplicates))
    for label, value in rows:
        print(f"  {label:<36} {value:>4}   target 0: {'met' if value == 0 else 'NOT met'}")
    for name, items in tally.details.items():
        for item in items:
            print(f"    ! {_LABELS[name]}: {item}")
    for name, why in not_run.items():
        print(f"  not run: {name} ({why})")
    print(f"  wall time {total:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())})")
    result = {"kills": tally.kills, "figures": {**tally.figures, "injected_duplicates_missed": missed_duplicates},
              "injected_duplicates": injected, "details": tally.details, "not_run": not_run,
              "timings_s": timings, "wall_s": total, "rounds": args.rounds,
              "all_met": all(v == 0 for _, v in rows)}
    save_results(args.out, result)
    return 0 if result["all_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
