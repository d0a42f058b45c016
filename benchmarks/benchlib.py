"""What every benchmark does the same way: keep its figures as JSON beside the printout
(``benchmarks/results/`` by default, git-ignored), so runs can be compared later."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["save_results"]


def save_results(path: str | Path, result: Any) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"  written to {out}")
