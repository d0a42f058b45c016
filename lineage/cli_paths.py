"""Where a command may write: never a system folder, a Delta log or the lakehouse itself, and
never over files that are there unless the user says ``--force``."""

from __future__ import annotations

from pathlib import Path

from tracelake.lineage.cli_args import CliError

__all__ = ["output_dir", "output_file"]


# Folders a command never writes into, whatever it is told (and their subfolders).
_SYSTEM = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run", "/sbin", "/sys", "/usr",
           "/var/lib", "/var/log", "/var/cache", "/var/spool", "/var/run", "/snap")


def _refuse_system(path: Path, raw: str, flag: str) -> None:
    for system in _SYSTEM:
        if path == Path(system) or Path(system) in path.parents:
            raise CliError(f"{flag} {raw}: {system} is a system folder; write into a folder of your own")
    if "_delta_log" in path.parts:
        raise CliError(f"{flag} {raw} is inside a Delta log; write into a folder of your own")


def _creatable(path: Path, raw: str, flag: str, what: str) -> None:
    """The nearest existing parent of ``path`` must be a folder, or nothing can be created there."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CliError(f"{flag} {raw}: {parent} is a file, so the {what} cannot be created")
            break


def output_file(text: str, *, force: bool, flag: str = "--out") -> Path:
    """A file a command may write: not a folder, not in a system folder or a Delta log, and not
    over an existing non-empty file unless ``force``."""
    raw = (text or "").strip()
    if not raw:
        raise CliError(f"{flag} is empty: give a file to write")
    path = Path(raw).expanduser().resolve()
    _refuse_system(path, raw, flag)
    if path.is_dir():
        raise CliError(f"{flag} {raw} is a folder; give a file name (e.g. {raw.rstrip('/')}/events.jsonl)")
    if path.exists() and path.stat().st_size > 0 and not force:
        raise CliError(f"{flag} {raw} exists and is not empty; give a new file, or --force to replace it")
    _creatable(path, raw, flag, "file")
    return path


def output_dir(text: str, *, force: bool, inside: str | None = None, flag: str = "--out") -> Path:
    """Where a command may write its files: a new or empty folder (a non-empty one only with
    ``force``), never a file, never inside the lakehouse ``inside``, never a system folder."""
    raw = (text or "").strip()
    if not raw:
        raise CliError(f"{flag} is empty: give a folder to write into")
    path = Path(raw).expanduser().resolve()
    if inside is not None and "://" not in inside:
        home = Path(inside).expanduser().resolve()
        if path == home or home in path.parents or path in home.parents:
            raise CliError(f"{flag} {raw} is inside the lakehouse {home} (or holds it); write outside it")
    _refuse_system(path, raw, flag)
    if path == Path("/") or path == Path.home():
        raise CliError(f"{flag} {raw}: that is {'the root folder' if path == Path('/') else 'your home folder'}; "
                       "give a folder of its own, e.g. ./repro-<run>")
    if path.exists() and not path.is_dir():
        raise CliError(f"{flag} {raw} is a file; give a folder (it is created if missing)")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise CliError(f"{flag} {raw} is not empty; give an empty or new folder, or --force to overwrite "
                       "the files this command writes there")
    _creatable(path, raw, flag, "folder")
    return path
