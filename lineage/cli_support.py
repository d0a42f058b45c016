"""Shared plumbing for ``tracelake`` subcommands: one-line errors, tables, ``--json``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any, Iterable, Sequence

__all__ = ["CliError", "format_table", "emit", "add_json_flag", "short", "OneLineErrorParser"]


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; bad input should cost the user one clear line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable JSON instead of a table")


def short(value: Any, width: int = 40) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(rows: Iterable[dict[str, Any]], columns: Sequence[str], widths: dict[str, int] | None = None) -> str:
    rows = list(rows)
    widths = widths or {}
    cells = [[short(r.get(c), widths.get(c, 40)) for c in columns] for r in rows]
    size = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(size[i]) for i, c in enumerate(columns))
    out = [line, "  ".join("-" * s for s in size)]
    out += ["  ".join(row[i].ljust(size[i]) for i in range(len(columns))) for row in cells]
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
