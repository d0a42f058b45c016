"""What every benchmark does the same way: keep its figures as JSON beside the printout
(``benchmarks/results/`` by default, git-ignored), so runs can be compared later; summarise
samples as p50/p95 (nearest rank, no interpolation that invents values); put a bootstrap
confidence interval on a median; print each figure beside its target, met or not."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["bootstrap_median_ci", "figure", "pct", "save_results"]


def save_results(path: str | Path, result: Any) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"  written to {out}")


def pct(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile by nearest rank (p50 of an even count is the upper middle sample)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no samples")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def bootstrap_median_ci(values: Sequence[float], level: float = 0.95, resamples: int = 5000,
                        seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median of ``values``."""
    rng = random.Random(seed)
    n = len(values)
    medians = sorted(pct([values[rng.randrange(n)] for _ in range(n)], 0.5) for _ in range(resamples))
    lo = medians[int((1 - level) / 2 * (resamples - 1))]
    hi = medians[int((1 + level) / 2 * (resamples - 1))]
    return lo, hi


def figure(name: str, samples: Sequence[float], target: float | None, result: dict[str, Any], *,
           scale: float = 1.0, unit: str = "s") -> str:
    """One line: p50 and p95 of ``samples`` against a p50 target (None: a figure without one,
    printed for context); also stored in ``result["figures"]``."""
    p50, p95 = pct(samples, 0.5) * scale, pct(samples, 0.95) * scale
    met = None if target is None else p50 <= target
    result.setdefault("figures", {})[name] = {"p50": p50, "p95": p95, "n": len(samples), "target_p50": target,
                                              "unit": unit, "met": met}
    digits = 3 if unit == "s" else 1
    verdict = "no target" if target is None else f"target p50 <= {target:g} {unit}: {'met' if met else 'NOT met'}"
    return (f"  {name:<28} p50 {p50:8.{digits}f} {unit}   p95 {p95:8.{digits}f} {unit}   (n={len(samples)})   "
            f"{verdict}")
