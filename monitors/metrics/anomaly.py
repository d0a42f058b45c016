"""Anomaly detection on metric history (as LINE's Lupus does): static thresholds, windowed
rules against recent values, and a day-of-week seasonal rule.

The seasonal rule compares each point with the median of the same weekday over the previous
few weeks and scales by the median absolute deviation of the residuals: a robust seasonal
decomposition that needs a handful of weeks, no model fitting and no heavy dependency (Prophet
needs a Stan toolchain), and whose verdict is easy to explain ("Mondays usually have 2,100
rows, this one has 1,200"). Points already judged anomalous are left out of later baselines,
so one bad day does not become the reference for the next (the complaint in Deequ#531).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Anomaly", "StaticThreshold", "RollingBand", "SeasonalBand", "detect"]

_MAD_TO_SIGMA = 1.4826


@dataclass
class Anomaly:
    time: pd.Timestamp
    value: float
    expected: float | None
    lower: float | None
    upper: float | None
    rule: str

    def describe(self) -> str:
        if self.expected is None:
            return f"{self.value:.4g} outside [{self.lower}, {self.upper}] ({self.rule})"
        return f"{self.value:.4g}, expected {self.expected:.4g} in [{self.lower:.4g}, {self.upper:.4g}] ({self.rule})"


@dataclass
class StaticThreshold:
    min: float | None = None
    max: float | None = None

    @property
    def name(self) -> str:
        return f"static[{self.min}, {self.max}]"

    def band(self, history: pd.Series, when: pd.Timestamp) -> tuple[float | None, float | None, float | None]:
        return None, self.min, self.max


@dataclass
class RollingBand:
    """Median (or mean) of the last ``window`` points ± k x MAD (or standard deviation)."""

    window: int = 14
    k: float = 3.0
    robust: bool = True
    min_history: int = 5

    @property
    def name(self) -> str:
        return f"rolling-{'median-mad' if self.robust else 'mean-std'}(w={self.window}, k={self.k:g})"

    def band(self, history: pd.Series, when: pd.Timestamp) -> tuple[float | None, float | None, float | None]:
        recent = history.tail(self.window)
        if len(recent) < self.min_history:
            return None, None, None
        if self.robust:
            center = float(recent.median())
            spread = _MAD_TO_SIGMA * float((recent - center).abs().median())
        else:
            center, spread = float(recent.mean()), float(recent.std(ddof=1))
        spread = max(spread, 1e-9 + 0.01 * abs(center))  # a flat history must not make any wiggle anomalous
        return center, center - self.k * spread, center + self.k * spread


@dataclass
class SeasonalBand:
    """Same-weekday median of the last ``seasons`` weeks ± k x MAD of recent seasonal residuals."""

    period_days: int = 7
    seasons: int = 4
    k: float = 3.0
    min_seasons: int = 2

    @property
    def name(self) -> str:
        return f"seasonal-weekday-median-mad(seasons={self.seasons}, k={self.k:g})"

    def band(self, history: pd.Series, when: pd.Timestamp) -> tuple[float | None, float | None, float | None]:
        same = history[[((when - t).days % self.period_days == 0) for t in history.index]].tail(self.seasons)
        if len(same) < self.min_seasons:
            return None, None, None
        center = float(same.median())
        residuals = []
        for t, v in history.tail(self.period_days * self.seasons).items():
            peers = history[[((t - u).days % self.period_days == 0) and u < t for u in history.index]].tail(self.seasons)
            if len(peers) >= self.min_seasons:
                residuals.append(v - float(peers.median()))
        if len(residuals) >= 3:
            r = np.asarray(residuals)
            spread = _MAD_TO_SIGMA * float(np.median(np.abs(r - np.median(r))))
        else:
            spread = float(same.std(ddof=1)) if len(same) > 1 else 0.0
        spread = max(spread, 1e-9 + 0.02 * abs(center))
        return center, center - self.k * spread, center + self.k * spread


def detect(series: pd.Series, rules: list, *, only_last: int | None = None) -> list[Anomaly]:
    """Walk the series in time order; a point is anomalous when any rule's band excludes it.
    Anomalous points are excluded from the history later points are judged against."""
    series = series.dropna().sort_index()
    clean: dict[pd.Timestamp, float] = {}
    found: list[Anomaly] = []
    start = len(series) - only_last if only_last else 0
    for i, (when, value) in enumerate(series.items()):
        history = pd.Series(clean, dtype=float)
        flagged = None
        for rule in rules:
            expected, lo, hi = rule.band(history, when)
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                flagged = Anomaly(when, float(value), expected, lo, hi, rule.name)
                break
        if flagged is None:
            clean[when] = float(value)
        elif i >= start:
            found.append(flagged)
    return found
