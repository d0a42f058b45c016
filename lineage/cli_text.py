"""How ``tracelake`` answers read: words, times and tables for people, ``--json`` for scripts.

Times are always UTC, said once (in a column header, or after a single value); long cells are
cut to their column's width; the JSON form of an answer is the same payload, sorted and indented.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

__all__ = ["emit", "fmt_time", "format_table", "plural", "progress_note", "short"]

_IRREGULAR = {"entry": "entries", "was": "were", "this": "these", "is": "are", "has": "have"}


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 row``, ``2 rows``, ``0 rows``; ``plural(1, "entry")`` -> ``1 entry``."""
    if n == 1:
        return f"{n} {word}"
    return f"{n} {many or _IRREGULAR.get(word) or word + 's'}"


_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$")


def _utc_text(value: Any) -> str | None:
    """``YYYY-MM-DD HH:MM:SS`` in UTC when ``value`` is a point in time (a datetime, a pandas
    Timestamp, an ISO date-time string), else None. Naive times are taken as UTC."""
    if isinstance(value, str):
        text = value.strip()
        if not _ISO_TIME.match(text):
            return None
        try:
            value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            return None
    if type(value).__name__ == "Timestamp":   # pandas, without importing it
        if value != value:  # NaT
            return None
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return None


def _missing(value: Any) -> bool:
    """None, NaN or pandas' NaT: shown as ``-``."""
    return value is None or (isinstance(value, float) and value != value) or type(value).__name__ == "NaTType"


def fmt_time(value: Any) -> str:
    """A point in time as people read it: ``2026-01-14 06:00:03 UTC`` - always UTC, whole
    seconds, the zone said once. Dates stay dates; None/NaT is ``-``."""
    if _missing(value):
        return "-"
    text = _utc_text(value)
    if text is not None:
        return text + " UTC"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def progress_note(text: str) -> None:
    """A note while something slow starts (Spark), for people at a terminal only: a script reading
    stderr sees nothing but errors."""
    if sys.stderr.isatty():
        print(text, file=sys.stderr, flush=True)


def _cell(value: Any, width: int) -> tuple[str, bool]:
    """(text, is a time): times in a table are UTC, said once in the column header."""
    if _missing(value):
        return "-", False
    when = _utc_text(value)
    if when is not None:
        return when, True
    if isinstance(value, bool):
        text = str(value)
    elif isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, date):
        text = value.isoformat()
    else:
        text = str(value)
    if "\n" in text or "\r" in text:
        text = " ".join(text.split())
    return (text if len(text) <= width else text[: width - 1] + "…"), False


def short(value: Any, width: int = 40) -> str:
    """One value as a short cell: floats to 4 significant digits, times as UTC, long text cut."""
    text, is_time = _cell(value, width)
    return text + " UTC" if is_time else text


def format_table(rows: Iterable[dict[str, Any]], columns: Sequence[str], widths: dict[str, int] | None = None,
                 headers: dict[str, str] | None = None) -> str:
    """A plain text table; ``headers`` renames columns for the reader (keys stay the data's).
    A column of times says "(UTC)" in its header instead of in every cell."""
    rows = list(rows)
    widths = widths or {}
    headers = headers or {}
    cells, timed = [], [False] * len(columns)
    for r in rows:
        line = []
        for i, c in enumerate(columns):
            text, is_time = _cell(r.get(c), widths.get(c, 40))
            timed[i] = timed[i] or is_time
            line.append(text)
        cells.append(line)
    names = [headers.get(c, c) + (" (UTC)" if timed[i] and "UTC" not in headers.get(c, "") else "")
             for i, c in enumerate(columns)]
    size = [max([len(names[i])] + [len(row[i]) for row in cells]) for i in range(len(columns))]
    out = ["  ".join(names[i].ljust(size[i]) for i in range(len(columns))).rstrip(),
           "  ".join("-" * s for s in size)]
    out += ["  ".join(row[i].ljust(size[i]) for i in range(len(columns))).rstrip() for row in cells]
    return "\n".join(out)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def emit(args: argparse.Namespace, payload: Any, human: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(payload, default=_default, indent=2, sort_keys=True))
    else:
        print(human)
