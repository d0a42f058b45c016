"""Bad input costs one line: ``CliError`` and the argument types ``tracelake`` parses with.

Argument *types* check syntax and ranges while argparse parses (``--limit -1``, ``--retain-days
nan``, a run id that cannot be one, a drift window that cannot be), so a command body only ever
sees values it can use; argparse turns their ``ArgumentTypeError`` into one line and exit 2.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import NoReturn

__all__ = [
    "MAX_WINDOW_DAYS",
    "CliError",
    "OneLineErrorParser",
    "as_of",
    "check_span",
    "count_or_all",
    "drift_reference",
    "drift_window",
    "float_in",
    "home_dir",
    "int_in",
    "iso_date",
    "iso_time",
    "non_negative_float",
    "port",
    "positive_int",
    "record_id",
    "run_id",
    "run_or_table_version",
    "run_or_uuid",
    "table_name",
    "text_arg",
]


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; bad input should cost the user one clear line."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())   # argparse's messages may span lines: keep it to one
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


# --- argument types: syntax and ranges, checked while parsing ------------------------------------
# argparse turns an ArgumentTypeError into "argument --limit: <message>" on one line, exit 2.

def _bad(text: str, what: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"{text!r} {what}")


def _whole(text: str) -> int:
    try:
        return int(text.strip().replace("_", ""))
    except (ValueError, AttributeError):
        raise _bad(text, "is not a whole number") from None


def positive_int(text: str) -> int:
    """1, 2, ... (``--top``, ``--sample-rows`` ...)."""
    value = _whole(text)
    if value < 1:
        raise _bad(text, "must be a positive whole number (1 or more)")
    return value


def count_or_all(text: str) -> int:
    """``--limit``: how many to show, 0 for all; a negative count is refused, never read as 'drop some'."""
    value = _whole(text)
    if value < 0:
        raise _bad(text, "must be 0 (all) or a positive number of rows")
    return value


def int_in(low: int, high: int, unit: str = "") -> Callable[[str], int]:
    """A whole number in [low, high]."""
    def parse(text: str) -> int:
        value = _whole(text)
        if not low <= value <= high:
            raise _bad(text, f"is out of range: give {low}..{high}{' ' + unit if unit else ''}")
        return value
    parse.__name__ = f"int_{low}_{high}"
    return parse


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (``--retain-days``, ``--min-age``): nan and inf are not durations."""
    try:
        value = float(text)
    except (ValueError, TypeError):
        raise _bad(text, "is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise _bad(text, "must be a finite number, 0 or more")
    return value


def float_in(low: float, high: float, unit: str = "") -> Callable[[str], float]:
    """A finite number in [low, high] (nan and inf are refused)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except (ValueError, TypeError):
            raise _bad(text, "is not a number") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise _bad(text, f"is out of range: give a number from {low:g} to {high:g}{' ' + unit if unit else ''}")
        return value
    parse.__name__ = f"float_{low:g}_{high:g}"
    return parse


def port(text: str) -> int:
    value = _whole(text)
    if not 1 <= value <= 65535:
        raise _bad(text, "is not a TCP port: give 1..65535")
    return value


# pandas timestamps (how the audit tables are read) cover 1677..2262; keep well inside.
_EARLIEST, _LATEST = 1900, 2261


def iso_time(text: str) -> str:
    """An ISO date or date-time (UTC unless it says otherwise); returned as given, once checked."""
    raw = (text or "").strip()
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except ValueError:
        raise _bad(text, "is not a date or time: use ISO format like 2026-01-20 or 2026-01-20T06:00") from None
    if not _EARLIEST <= value.year <= _LATEST:
        raise _bad(text, f"is out of range: give a time between {_EARLIEST} and {_LATEST}")
    return raw


def iso_date(text: str) -> str:
    raw = (text or "").strip()
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise _bad(text, "is not a day: use YYYY-MM-DD, e.g. 2026-01-14") from None
    if not _EARLIEST <= value.year <= _LATEST:
        raise _bad(text, f"is out of range: give a day between {_EARLIEST} and {_LATEST}")
    return raw


def check_span(since: str | None, until: str | None) -> None:
    """``--since`` must come before ``--until`` (else every answer would be empty)."""
    if since is None or until is None:
        return
    from tracelake.lineage.query.runs import parse_when

    if parse_when(since) >= parse_when(until):
        raise CliError(f"empty time span: --until {until} is not after --since {since}")


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _run_id_problem(text: str, what: str = "a Tracelake run id") -> str | None:
    """Why ``text`` cannot be a run id (None when it can). Alert and flag ids have the same form."""
    value = (text or "").strip().upper()
    if len(value) != 26:
        return f"is not {what}: ids have 26 characters, this has {len(value)}"
    bad = sorted({c for c in value if c not in _CROCKFORD})
    if bad:
        return f"is not {what}: {''.join(bad)!r} never occurs in one (0-9 and A-Z without I, L, O, U)"
    if value[0] > "7":   # 48 bits of milliseconds: the first character of a real id is 0-7
        return f"is not {what}: its first 10 characters encode a time and start with 0-7"
    return None


_LIST_RUNS = "; list run ids with `tracelake runs`"


def run_id(text: str) -> str:
    """A Tracelake run id (ULID-style, 26 characters); alert and flag ids have the same form."""
    problem = _run_id_problem(text)
    if problem is not None:
        raise _bad(text, problem + _LIST_RUNS)
    return text.strip().upper()


def record_id(what: str, listing: str) -> Callable[[str], str]:
    """An alert or flag id (same form as a run id): ``record_id("an alert id", "tracelake alerts --status all")``."""
    def parse(text: str) -> str:
        problem = _run_id_problem(text, what)
        if problem is not None:
            raise _bad(text, f"{problem}; list them with `{listing}`")
        return text.strip().upper()
    parse.__name__ = what.replace(" ", "_")
    return parse


def run_or_uuid(text: str) -> str:
    """A Tracelake run id, or a run's OpenLineage run id (a UUID, as a lineage backend shows it)."""
    if _UUID.match((text or "").strip()):
        return text.strip().lower()
    problem = _run_id_problem(text)
    if problem is not None:
        raise _bad(text, problem + " (nor an OpenLineage run id, a UUID)" + _LIST_RUNS)
    return text.strip().upper()


_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def table_name(text: str) -> str:
    value = (text or "").strip()
    if not _TABLE.match(value):
        raise _bad(text, "is not a table name (letters, digits and underscores, e.g. tip_predictions)")
    return value


def run_or_table_version(text: str) -> str:
    """``impact``'s target: a run id or ``TABLE@VERSION``."""
    value = (text or "").strip()
    if "@" in value:
        table, _, version = value.partition("@")
        if not _TABLE.match(table) or not version.isdigit():
            raise _bad(text, "is neither a run id nor TABLE@VERSION (e.g. cleaned_trips@14)")
        return f"{table}@{int(version)}"
    if _run_id_problem(value) is not None:
        raise _bad(text, "is neither a run id nor TABLE@VERSION (e.g. cleaned_trips@14)")
    return value.upper()


def as_of(text: str) -> str:
    """A table version number (0, 1, ...) or an ISO time."""
    raw = (text or "").strip()
    if raw.lstrip("-").isdigit():
        if int(raw) < 0:
            raise _bad(text, "is not a table version: versions count from 0")
        return raw
    try:
        return iso_time(raw)
    except argparse.ArgumentTypeError:
        raise _bad(text, "is neither a table version number nor an ISO time (e.g. 12 or 2026-01-20T06:00)") from None


def text_arg(what: str) -> Callable[[str], str]:
    """Non-empty text (a predicate, a reason, a name)."""
    def parse(text: str) -> str:
        if not text or not text.strip():
            raise argparse.ArgumentTypeError(f"{what} is empty")
        if "\x00" in text:
            raise argparse.ArgumentTypeError(f"{what} contains a NUL character")
        return text
    parse.__name__ = what.replace(" ", "_")
    return parse


MAX_WINDOW_DAYS = 3660   # ten years of days: beyond that a window is a typo


def _span(first: str, last: str, text: str, flag: str) -> None:
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    if b < a:
        raise _bad(text, f"ends before it starts: write {flag} START..END with START on or before END")
    if (b - a).days + 1 > MAX_WINDOW_DAYS:
        raise _bad(text, f"spans more than {MAX_WINDOW_DAYS} days; use cumulative for everything profiled")


_WINDOW_HELP = "is not a window: use YYYY-MM-DD, START..END, START.., 7d or cumulative"


def drift_window(text: str) -> str:
    """``--window``: YYYY-MM-DD, START..END, START.., Nd (1..3660) or cumulative."""
    raw = (text or "").strip()
    if raw == "cumulative":
        return raw
    if raw.lower().endswith("d") and raw[:-1].isdigit():
        n = int(raw[:-1])
        if not 1 <= n <= MAX_WINDOW_DAYS:
            raise _bad(text, f"is out of range: give 1d..{MAX_WINDOW_DAYS}d (days before the newest profiled day)")
        return f"{n}d"
    try:
        if ".." in raw:
            first, last = raw.split("..", 1)
            iso_date(first)
            if last:
                iso_date(last)
                _span(first, last, text, "--window")
        else:
            iso_date(raw)
    except argparse.ArgumentTypeError:
        raise _bad(text, _WINDOW_HELP) from None
    return raw


def drift_reference(text: str) -> str:
    """``--reference``: lineage, previous or fixed:START..END."""
    raw = (text or "").strip()
    if raw in ("lineage", "previous"):
        return raw
    if raw.startswith("fixed:") and ".." in raw:
        first, last = raw[len("fixed:"):].split("..", 1)
        try:
            iso_date(first)
            iso_date(last)
        except argparse.ArgumentTypeError:
            raise _bad(text, "is not a fixed baseline: write fixed:YYYY-MM-DD..YYYY-MM-DD") from None
        _span(first, last, text, "--reference fixed:")
        return raw
    raise _bad(text, "is not a reference: use lineage, previous, or fixed:YYYY-MM-DD..YYYY-MM-DD")


def home_dir(text: str) -> str:
    """``--home``: a folder or an object-store URI; a file is never a lakehouse."""
    raw = (text or "").strip()
    if not raw:
        raise argparse.ArgumentTypeError("--home is empty: give the lakehouse folder")
    if "\x00" in raw:
        raise argparse.ArgumentTypeError("--home contains a NUL character")
    if "://" not in raw or raw.startswith("file://"):
        path = Path(raw[len("file://"):] if raw.startswith("file://") else raw).expanduser()
        if path.is_file():
            raise _bad(text, "is a file, not a lakehouse folder; give the folder (e.g. ./lakehouse)")
    return raw
