"""Every ``tracelake`` command refuses bad input the same way: exit code 2, one line on stderr that
names the problem, no traceback, nothing written where it must not be - checked in fresh
processes, the whole table at once in parallel threads (see ``bad_inputs.py`` for the table)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _table():
    name = "tracelake_tests_cli_bad_inputs"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("bad_inputs.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


bad_inputs = _table()
CASES = bad_inputs.CASES


@pytest.fixture(scope="module")
def tried(etl_bug_scenario, tmp_path_factory):
    """Every case of the table, run once against a private copy of the ETL-bug lakehouse."""
    ws = bad_inputs.prepare(tmp_path_factory.mktemp("bad-inputs"), etl_bug_scenario.home)
    before = bad_inputs.snapshot(ws.home)
    outcomes = {o.case.name: o for o in bad_inputs.run_all(ws)}
    return ws, outcomes, before, bad_inputs.snapshot(ws.home)


def _commands(parser, prefix=()) -> list[tuple[str, ...]]:
    import argparse

    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _commands(child, (*prefix, name)) or [(*prefix, name)]
    return found


def test_the_table_has_a_hundred_cases_and_reaches_every_command():
    from tracelake.jobs.cli import build_parser

    assert len(CASES) >= 100
    assert len({c.name for c in CASES}) == len(CASES)
    missing = [" ".join(cmd) for cmd in _commands(build_parser())
               if not any(c.argv[: len(cmd)] == cmd or c.argv[2: 2 + len(cmd)] == cmd for c in CASES)]
    assert not missing, f"no bad input tried for: {missing}"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=[pytest.mark.xfail(reason=c.known, strict=True)]
                                               if c.known else []) for c in CASES])
def test_bad_input_is_one_line_and_exit_2(case, tried):
    _, outcomes, _, _ = tried
    outcome = outcomes[case.name]
    assert outcome.clean, outcome.describe()


def test_no_bad_input_wrote_into_the_lakehouse(tried):
    _, _, before, after = tried
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"the lakehouse changed under bad input: {changed[:10]}"

