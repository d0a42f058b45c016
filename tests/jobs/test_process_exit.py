"""The ``tracelake`` entry point ends with its command's exit code, after every exit handler ran.

It skips CPython's final teardown (jobs/process_exit.py says why: an Arrow I/O thread releasing a
Python buffer during finalisation aborts the process). These tests prove what must still hold in a
real child process: the exit code, exit handlers registered by the command (Spark, MLflow and
OpenLineage register theirs while the command runs), buffered output, logging, and the exit code
of a command that raised.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.unit


def _child(body: str) -> subprocess.CompletedProcess:
    script = textwrap.dedent("""
        import atexit, logging, sys
        from tracelake.jobs.process_exit import exit_after_handlers
        logging.basicConfig(stream=sys.stderr, format="%(message)s")
    """) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_the_commands_code_after_its_exit_handlers_and_buffered_output():
    proc = _child("""
        def command():
            atexit.register(lambda: print("handler ran", flush=False))
            sys.stdout.write("answer without a newline")
            logging.getLogger("x").warning("logged")
            return 3
        exit_after_handlers(command)
    """)
    assert proc.returncode == 3
    assert proc.stdout == "answer without a newlinehandler ran\n"
    assert "logged" in proc.stderr


def test_a_command_that_raises_exits_1_with_its_traceback():
    proc = _child("""
        def command():
            raise RuntimeError("boom")
        exit_after_handlers(command)
    """)
    assert proc.returncode == 1
    assert "RuntimeError: boom" in proc.stderr


def test_the_console_script_is_the_entry_that_exits_this_way():
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "tracelake"]
    assert script.value == "tracelake.jobs.cli:run"
    proc = subprocess.run([sys.executable, "-m", "tracelake.jobs.cli", "runs", "--limit", "-1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--limit" in proc.stderr and "Traceback" not in proc.stderr
