"""The crash suite: real worker processes killed as whole process groups, racing commands, small
disks filled or remounted read-only (``tests/support/crash_*.py`` has the machinery).

Run on its own: ``.venv/bin/python -m pytest -q -m crash tests/crash``. Every test starts from a
copy of one base lakehouse built once per session by a worker process (the test process itself
never starts Spark); the tests that need a small disk are skipped, with the reason, on a machine
that refuses ``mount -t tmpfs``.
"""

from __future__ import annotations

import pytest
from crash_lab import Lab, SmallDisk
from crash_scenarios import build_base


@pytest.fixture(scope="session")
def crash_base(tmp_path_factory) -> Lab:
    """Eight partitions of ``numbers``, one of ``doubled``, their records still in the journal."""
    return build_base(tmp_path_factory.mktemp("crash-base"))


@pytest.fixture(scope="session")
def small_disks(tmp_path_factory) -> None:
    ok, why = SmallDisk.available(tmp_path_factory.mktemp("mount-probe"))
    if not ok:
        pytest.skip(f"this machine refuses to mount a small tmpfs ({why}): the full-disk and read-only tests "
                    "need one (run them as root on a machine that allows mount)")
