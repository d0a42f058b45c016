"""Anomaly detection on metric history (as LINE's Lupus does): static thresholds, windowed
rules against recent values, and a day-of-week seasonal rule.

The seasonal rule compares each point with the median of the same weekday over the previous
few weeks and scales by the median absolute deviation of the residuals: a robust seasonal
decomposition that needs a handful of weeks, no model fitting and no heavy dependency (Prophet
needs a Stan toolchain), and whose verdict is easy to explain ("Mondays usually have 2,100
rows, this one has 1,200"). Points already judged anomalous are left out of later baselines,
so one bad day does not become the reference for the next (the complaint in Deequ#531).

Alert fatigue is the other failure mode: a rolling band with no notion of weekdays calls every
Sunday an anomaly, and those "anomalies" then never enter the baseline, so the detector keeps
crying wolf. So the statistical rules are ordered from most to least informed and only the first
one with enough history judges a point (a seasonal rule once two same-weekday peers exist, a
wide warm-up band before that, nothing while the history is shorter than a week), while static
thresholds always apply. ``default_rules()`` is calibrated on the reference pipeline: no false
alarm on its quiet days, every injected fault that moves a metric caught
(tests/monitors/metrics/test_anomaly_calibration.py measures both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Anomaly", "RollingBand", "SeasonalBand", "StaticThreshold", "assess", "default_rules", "detect", "judge"]

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
    """Hard limits (e.g. |bias| <= 0.15): they need no history and always apply."""

    min: float | None = None
    max: float | None = None
    always: bool = True

    @property
    def name(self) -> str:
        return f"static[{self.min}, {self.max}]"

    def band(self, history: pd.Series, when: pd.Timestamp) -> tuple[float | None, float | None, float | None]:
        return None, self.min, self.max


@dataclass
class RollingBand:
    """Median (or mean) of the last ``window`` points ± k x MAD (or standard deviation).

    As the warm-up rule before a seasonal one can judge, it needs a full week of history and a
    wide ``k``: the MAD of mixed weekdays already holds the weekday swing, and k=4 keeps a
    quiet Sunday (20 % below a Wednesday) inside the band while a lost half of a feed is not."""

    window: int = 14
    k: float = 3.0
    robust: bool = True
    min_history: int = 5
    rel_floor: float = 0.01
    always: bool = False

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
        spread = max(spread, 1e-9 + self.rel_floor * abs(center))  # a flat history must not make any wiggle anomalous
        return center, center - self.k * spread, center + self.k * spread


def _peers(history: pd.Series, when: pd.Timestamp, period_days: int, seasons: int) -> pd.Series:
    """The same phase (weekday) before ``when``, newest ``seasons`` of them."""
    if history.empty:
        return history
    earlier = history[history.index < when]
    same = [((when - t).days % period_days == 0) for t in earlier.index]
    return earlier[same].tail(seasons)


@dataclass
class SeasonalBand:
    """Same-weekday median of the last ``seasons`` weeks ± k x spread.

    The spread is the MAD of recent seasonal residuals (each point against its own earlier
    peers), floored at ``rel_floor`` of the centre: with only two peers the residuals are too few
    to trust, and a daily count of ~2,000 varies by ~2 % on its own (Poisson noise), so a band
    tighter than that would page on noise."""

    period_days: int = 7
    seasons: int = 4
    k: float = 3.0
    min_seasons: int = 2
    rel_floor: float = 0.03
    always: bool = False

    @property
    def name(self) -> str:
        return f"seasonal-weekday-median-mad(seasons={self.seasons}, k={self.k:g})"

    def band(self, history: pd.Series, when: pd.Timestamp) -> tuple[float | None, float | None, float | None]:
        same = _peers(history, when, self.period_days, self.seasons)
        if len(same) < self.min_seasons:
            return None, None, None
        center = float(same.median())
        residuals = []
        for t, v in history.tail(self.period_days * self.seasons).items():
            peers = _peers(history, t, self.period_days, self.seasons)
            if len(peers) >= self.min_seasons:
                residuals.append(v - float(peers.median()))
        if len(residuals) >= 5:
            r = np.asarray(residuals)
            spread = _MAD_TO_SIGMA * float(np.median(np.abs(r - np.median(r))))
        else:
            spread = float(same.std(ddof=1)) if len(same) > 1 else 0.0
        spread = max(spread, 1e-9 + self.rel_floor * abs(center))
        return center, center - self.k * spread, center + self.k * spread


def default_rules() -> list:
    """The calibrated default for a daily metric: weekday-seasonal once two weeks exist, a wide
    rolling band after the first week, silence (learning) before that."""
    return [SeasonalBand(k=3.5, min_seasons=1), RollingBand(window=14, k=4.0, min_history=7)]


def judge(history: pd.Series, when: pd.Timestamp, value: float, rules: list) -> tuple[bool, Anomaly | None]:
    """(judged, anomaly): static rules always apply; of the others, the first with enough
    history decides. ``judged`` is False while no rule has enough history (learning)."""
    judged = False
    decided = False
    for rule in rules:
        if decided and not getattr(rule, "always", False):
            continue
        expected, lo, hi = rule.band(history, when)
        if lo is None and hi is None:
            continue
        judged = True
        decided = decided or not getattr(rule, "always", False)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            return True, Anomaly(when, float(value), expected, lo, hi, rule.name)
    return judged, None


def assess(series: pd.Series, rules: list) -> list[tuple[pd.Timestamp, float, str, Anomaly | None]]:
    """Every point in time order with its verdict: ``"learning"`` (no rule had enough history),
    ``"ok"`` or ``"anomaly"``. Each point is judged against the clean history before it: anomalous
    points are left out of the history later points are judged against."""
    series = series.dropna().sort_index()
    clean: dict[pd.Timestamp, float] = {}
    verdicts: list[tuple[pd.Timestamp, float, str, Anomaly | None]] = []
    for when, value in series.items():
        judged, flagged = judge(pd.Series(clean, dtype=float), when, float(value), rules)
        if flagged is None:
            clean[when] = float(value)
        verdicts.append((when, float(value), "anomaly" if flagged else ("ok" if judged else "learning"), flagged))
    return verdicts


def detect(series: pd.Series, rules: list, *, only_last: int | None = None) -> list[Anomaly]:
    """The anomalies of ``series`` (of its last ``only_last`` points), see ``assess``."""
    verdicts = assess(series, rules)
    if only_last:
        verdicts = verdicts[-only_last:]
    return [a for _, _, _, a in verdicts if a is not None]
