"""Whether a process on this machine is still running.

Asked wherever a record outlives the process that wrote it: reconciliation (an open run whose
process is gone was abandoned) and the Spark Connect address file (a server whose process is
gone is not used).
"""

from __future__ import annotations

import os

__all__ = ["pid_alive"]


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists on this machine (also when it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
