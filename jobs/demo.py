"""``tracelake demo``: run the reference pipeline over simulated days, in-process, then summarise.

The demo plays each simulated day in cadence order (daily ETL and labels; on Mondays the weekly
retrain; inference; evaluation of last week's predictions) through the real Dagster jobs on the
embedded instance, so `dagster dev` afterwards shows every run and materialisation.

A second ``tracelake demo`` continues the simulation where the first stopped (same seed and
faults, or it refuses); ``--fresh`` starts over, and only ever deletes a lakehouse that a demo
created.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

import dagster as dg

from tracelake.assets import SIM_START, parse_faults
from tracelake.lineage import open_lakehouse
from tracelake.lineage.cli_support import CliError
from tracelake.lineage.record.anchors import anchor_store

from . import demo_store
from .compliance import issue_demo_reports
from .monitoring import monitoring_job
from .pipeline import daily_drift_job, daily_etl_job, daily_evaluation_job, daily_inference_job, weekly_training_job

__all__ = ["DEFAULT_FAULTS", "DemoConfig", "demo_day_plan", "run_demo"]

STATE_FILE = "_demo/state.json"
INSTANCE_DIR = "_dagster"   # a lakehouse's own Dagster instance, when it is not the default one (jobs/cli.py)
# The demo's story: a late-label day, an ETL bug, two days of concept drift, a new zone, a
# missing feed and a schema break - each one found by a check, an SLA, a trace or an impact.
DEFAULT_FAULTS = [
    "late_labels@2026-01-13:2", "etl_bug@2026-01-14", "missing_labels@2026-01-15:0.5",
    "concept_drift@2026-01-16..2026-01-17", "covariate_shift@2026-01-16..", "missing_partition@2026-01-18",
    "schema_break@2026-01-21",
]
# Failures are listed in the summary and the Dagster UI; the console stays readable.
_QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class DemoConfig:
    seed: int = 7
    trips_per_day: int = 2000
    faults: list[str] = field(default_factory=lambda: list(DEFAULT_FAULTS))
    start: str = SIM_START


@dataclass
class DayResult:
    day: str
    jobs: dict[str, str]  # job name -> SUCCESS / FAILURE


def demo_day_plan(day: date, start: date, have_model: bool, have_recent_predictions: bool) -> list[tuple[str, str]]:
    """(job name, partition key) to run for one simulated day, in order."""
    plan = [(daily_etl_job.name, day.isoformat())]
    if day.weekday() == 0 and day >= start + timedelta(days=7):
        plan.append((weekly_training_job.name, day.isoformat()))
        have_model = True
    if have_model:
        plan.append((daily_inference_job.name, day.isoformat()))
        # Drift needs the day's predictions: they name the model whose training data is the reference.
        plan.append((daily_drift_job.name, day.isoformat()))
    if have_recent_predictions:
        plan.append((daily_evaluation_job.name, day.isoformat()))
    return plan


def demo_window_end(home: str) -> str | None:
    """The day after the demo's last simulated day (the end of the partitions the UI should
    show), or None when ``home`` holds no demo."""
    state = _load_state(home)
    if not state or not state.get("last_day"):
        return None
    return (date.fromisoformat(state["last_day"]) + timedelta(days=1)).isoformat()


def _state_path(home: str) -> str:
    return f"{home.rstrip('/')}/{STATE_FILE}"


def _load_state(home: str) -> dict[str, Any] | None:
    text = demo_store.read_text(_state_path(home))  # a local folder or an object store (demo_store.py)
    return json.loads(text) if text is not None else None


def _save_state(home: str, state: dict[str, Any]) -> None:
    # whole or absent: a killed demo never leaves half a state file
    demo_store.write_text(_state_path(home), json.dumps(state, indent=2))


def _check_continuation(home: str, state: dict[str, Any], wanted: dict[str, Any]) -> None:
    """A demo continues with the same world; faults may be added or dropped only where they
    start after the last simulated day (the past is never rewritten)."""
    before = {k: v for k, v in state["config"].items() if k != "faults"}
    if before != {k: v for k, v in wanted.items() if k != "faults"}:
        raise CliError(f"{home} holds a demo with a different setup ({state['config']}); continue it with the same "
                       "options, or start over with --fresh")
    last = date.fromisoformat(state["last_day"]) if state.get("last_day") else None
    changed = set(state["config"]["faults"]) ^ set(wanted["faults"])
    past = [f for f in sorted(changed) if last is not None and parse_faults([f]).faults[0].start <= last]
    if past:
        raise CliError(f"fault(s) {', '.join(past)} would change days already simulated (up to {last}); "
                       "faults can only be added after the last simulated day, or start over with --fresh")


def _holds_data(home: str) -> bool:
    """Anything but the lakehouse's own (possibly just created) Dagster instance."""
    return demo_store.has_content(home, ignore=INSTANCE_DIR)


def wipe_demo(home: str) -> None:
    if not demo_store.has_content(home):
        return
    if _load_state(home) is None and _holds_data(home):
        raise CliError(f"{home} is not empty and was not created by `tracelake demo`; refusing to delete it "
                       "(point TRACELAKE_HOME/--home at another folder)")
    demo_store.delete_tree(home)
    # The old lakehouse's signed chain heads would read as records removed from the new one.
    anchor_store(home).retire()


def set_aside_stale_anchors(home: str, say: bool = True) -> None:
    """Before a new demo in an empty folder: a lakehouse deleted by hand at this path (a re-cloned
    checkout) left its signed chain heads behind, and the new demo's verify would report them as
    records deleted from it. They are set aside - kept, renamed - and the user is told where."""
    retired = anchor_store(home).retire()
    if retired is not None and say:
        print(f"tracelake: anchors of an earlier lakehouse at {home} (no longer there) set aside in {retired}",
              file=sys.stderr)


def run_demo(home: str, days: int, config: DemoConfig, *, fresh: bool = False,
             instance: dg.DagsterInstance | None = None, progress: bool = True,
             on_day: Callable[[DayResult], None] | None = None,
             skip_jobs: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Simulate ``days`` more days; ``skip_jobs`` leaves some cadences out (tests that do not
    look at drift spare its cost)."""
    if days < 1:
        raise CliError("--days must be at least 1")
    parse_faults(config.faults)  # bad fault specs fail before anything runs
    if fresh:
        wipe_demo(home)
    state = _load_state(home)
    new_lakehouse = state is None
    wanted = asdict(config)
    if state is not None:
        _check_continuation(home, state, wanted)
        state["config"] = wanted
        first = date.fromisoformat(state["last_day"]) + timedelta(days=1)
    else:
        if _holds_data(home):
            raise CliError(f"{home} already holds data that is not a demo; use an empty folder (--home)")
        state = {"config": wanted, "last_day": None, "days": []}
        first = date.fromisoformat(config.start)
    start = date.fromisoformat(config.start)
    last = first + timedelta(days=days - 1)
    if last >= date.today():
        raise CliError(f"the simulation would reach {last}, which is not in the past; use fewer --days")
    if new_lakehouse:   # no demo and no data here (refused above otherwise)
        set_aside_stale_anchors(home, progress)

    instance = instance or dg.DagsterInstance.get()
    with demo_environment(home, config):
        return _simulate(home, days, config, state, first, last, start, instance, progress, on_day, skip_jobs)


def demo_environment(home: str, config: DemoConfig) -> contextlib.AbstractContextManager:
    """The demo configures the code location the way a deployment would - by environment - and
    runs the code location's own jobs, so the Dagster UI files its runs under them."""
    return _environment({
        "TRACELAKE_HOME": home, "TRACELAKE_SIM_SEED": str(config.seed),
        "TRACELAKE_SIM_TRIPS_PER_DAY": str(config.trips_per_day), "TRACELAKE_SIM_FAULTS": ",".join(config.faults),
        "TRACELAKE_SPARK_SHUFFLE_PARTITIONS": os.environ.get("TRACELAKE_SPARK_SHUFFLE_PARTITIONS", "4"),
    })


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    previous = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _simulate(home: str, days: int, config: DemoConfig, state: dict[str, Any], first: date, last: date, start: date,
              instance: dg.DagsterInstance, progress: bool, on_day: Callable[[DayResult], None] | None,
              skip_jobs: frozenset[str]) -> dict[str, Any]:
    from tracelake.jobs.definitions import CODE_LOCATION_TAGS, defs

    _save_state(home, state)
    lake = open_lakehouse(home)
    have_model = any(d["jobs"].get(weekly_training_job.name) == "SUCCESS" for d in state["days"])
    prediction_days = [d["day"] for d in state["days"] if d["jobs"].get(daily_inference_job.name) == "SUCCESS"]

    from tqdm import tqdm

    days_iter = [first + timedelta(days=i) for i in range(days)]
    bar = tqdm(days_iter, desc="simulating", unit="day", disable=not progress, file=sys.stderr)
    started = time.monotonic()
    for day in bar:
        recent = any(day - timedelta(days=7) <= date.fromisoformat(p) < day for p in prediction_days)
        result = DayResult(day.isoformat(), {})
        for job_name, partition in demo_day_plan(day, start, have_model, recent):
            if job_name in skip_jobs:
                continue
            bar.set_postfix_str(f"{day} {job_name}")
            outcome = defs.resolve_job_def(job_name).execute_in_process(
                partition_key=partition, instance=instance, raise_on_error=False, run_config=_QUIET,
                tags=CODE_LOCATION_TAGS)
            result.jobs[job_name] = "SUCCESS" if outcome.success else "FAILURE"
            if job_name == weekly_training_job.name and outcome.success:
                have_model = True
            if job_name == daily_inference_job.name and outcome.success:
                prediction_days.append(day.isoformat())
        # Monitoring runs "the next morning" of the simulated day, so SLAs are judged in simulated time.
        as_of = f"{day + timedelta(days=1)}T07:00:00+00:00"
        outcome = defs.resolve_job_def(monitoring_job.name).execute_in_process(
            instance=instance, raise_on_error=False, tags=CODE_LOCATION_TAGS,
            run_config={**_QUIET, "ops": {"evaluate_monitoring": {"config": {"as_of": as_of}}}})
        result.jobs[monitoring_job.name] = "SUCCESS" if outcome.success else "FAILURE"
        if "compliance_reports" not in skip_jobs:  # model reports when registered, a month's report at its end
            result.jobs.update(issue_demo_reports(defs, instance, day, tags=CODE_LOCATION_TAGS))
        state["last_day"] = day.isoformat()
        state["days"].append({"day": result.day, "jobs": result.jobs})
        _save_state(home, state)
        if on_day:
            on_day(result)
    lake.flush()
    return {"home": home, "first_day": first.isoformat(), "last_day": last.isoformat(),
            "seconds": round(time.monotonic() - started, 1), "days": state["days"][-days:]}
