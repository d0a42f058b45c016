"""What code ran: git commit and dirty flag, a hash of the component's source, library versions.

All three are cached per process because they are asked for on every materialisation and must
cost microseconds there; the git state is re-read after ``GIT_TTL_SECONDS`` so a long-lived
``dagster dev`` process notices a new commit or an edit.
"""

from __future__ import annotations

import hashlib
import inspect
import platform
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

__all__ = ["TRACKED_LIBRARIES", "GitState", "git_state", "library_versions", "source_hash"]

GIT_TTL_SECONDS = 30.0
TRACKED_LIBRARIES = (
    "tracelake", "pyspark", "delta-spark", "deltalake", "dagster", "mlflow", "evidently",
    "pandas", "numpy", "pyarrow", "scikit-learn", "scipy",
)


@dataclass(frozen=True)
class GitState:
    commit: str | None
    dirty: bool | None
    branch: str | None


_git_cache: dict[str, tuple[float, GitState]] = {}
_git_lock = threading.Lock()


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(path: str | Path) -> GitState:
    """Commit, dirty flag and branch of the repository containing ``path`` (None outside git)."""
    cwd = Path(path).resolve()
    if cwd.is_file():
        cwd = cwd.parent
    key = str(cwd)
    now = time.monotonic()
    with _git_lock:
        hit = _git_cache.get(key)
        if hit and now - hit[0] < GIT_TTL_SECONDS:
            return hit[1]
    commit = _git(["rev-parse", "HEAD"], cwd)
    if commit is None:
        state = GitState(None, None, None)
    else:
        porcelain = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
        branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
        state = GitState(commit, bool(porcelain) if porcelain is not None else None, branch)
    with _git_lock:
        _git_cache[key] = (now, state)
    return state


def source_hash(fn: Callable) -> str:
    """sha256 of the function's source (dedented), or of its code object if source is missing.

    Used as the Dagster ``code_version`` of a component, so Dagster marks downstream assets stale
    when a component's code changes, and ``tracelake diff`` can say "the code changed".
    """
    target = inspect.unwrap(fn)
    try:
        text = textwrap.dedent(inspect.getsource(target))
    except (OSError, TypeError):
        code = getattr(target, "__code__", None)
        text = repr((code.co_code, code.co_consts)) if code else repr(target)
    return hashlib.sha256(text.encode()).hexdigest()


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
