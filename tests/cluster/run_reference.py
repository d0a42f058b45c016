"""Run the faulted reference pipeline over a few simulated days, on whatever profile the
environment names (the embedded one, or the cluster's), and print the demo's result as JSON.

    python tests/cluster/run_reference.py --home H --days 4 --seed 11 --trips 200 --faults a,b

The same days, jobs and order as ``tracelake demo`` (it is ``run_demo``), without the drift job
and the compliance reports, whose cost tells nothing about the profile.
"""

from __future__ import annotations

import argparse
import json
import sys

import dagster as dg

from tracelake.jobs.demo import DemoConfig, run_demo


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--trips", type=int, required=True)
    parser.add_argument("--faults", default="")
    args = parser.parse_args()
    config = DemoConfig(seed=args.seed, trips_per_day=args.trips, faults=[f for f in args.faults.split(",") if f])
    result = run_demo(args.home, args.days, config, instance=dg.DagsterInstance.get(), progress=False,
                      skip_jobs=frozenset({"daily_drift", "compliance_reports"}))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
