"""The synthetic rideshare world behind the reference pipeline (the mltrace paper's example).

Deterministic by seed: a day's trips, and the tips they lead to, are a pure function of
``(seed, date, faults)``, so any partition can be regenerated, re-run or compared, and tests
know the right answer. Nothing is downloaded.

Shape: ~12 pickup zones with their own demand, distances and tipping habits; weekday and
hour-of-day seasonality; fares from distance and duration; card/cash/app payments; a little
dirty data (negative distances, missing passenger counts) like real feeds have. Tips are
labels that arrive days later (``label_lag_days``), and the faults in ``faults.py`` bend this
world on chosen dates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from .faults import FaultPlan

__all__ = ["NEW_ZONE", "PAYMENT_TYPES", "TRIP_COLUMNS", "ZONES", "World"]

# name, share of demand, typical distance (km), tipping habit (logit offset)
ZONES = [
    ("Midtown", 0.16, 3.0, 0.30), ("Downtown", 0.13, 3.5, 0.25), ("Airport", 0.08, 18.0, 0.50),
    ("Harbor", 0.07, 5.0, 0.00), ("University", 0.09, 2.5, -0.40), ("Old Town", 0.08, 2.8, 0.10),
    ("Riverside", 0.07, 4.5, 0.00), ("Tech Park", 0.09, 6.0, 0.40), ("Stadium", 0.05, 5.5, -0.10),
    ("North Hills", 0.06, 8.0, 0.20), ("South End", 0.07, 6.5, -0.30), ("Industrial", 0.05, 7.0, -0.50),
]
NEW_ZONE = ("Lakeside", 0.25, 9.0, -0.20)   # appears with the covariate-shift fault
PAYMENT_TYPES = ("card", "cash", "app")
_PAYMENT_P = (0.68, 0.22, 0.10)
_WEEKDAY_FACTOR = (0.95, 0.97, 1.00, 1.03, 1.15, 1.10, 0.80)
_HOUR_WEIGHTS = np.array([2, 1.2, .8, .6, .6, 1, 2.5, 5, 6.5, 5, 4, 4, 4.5, 4.5, 4.2, 4.5, 5.5, 6.5, 6.5, 5.5, 4.5, 4, 3.5, 2.8])
_WEEKEND_HOUR_WEIGHTS = np.array([4.5, 4, 3, 2, 1, 0.8, 1, 1.5, 2.5, 3.5, 4, 4.5, 5, 5, 5, 5, 5, 5, 5.5, 6, 6, 6, 6, 5.5])

TRIP_COLUMNS = ["trip_id", "pickup_ts", "dropoff_ts", "pickup_zone", "dropoff_zone", "distance_km",
                "fare_amount", "passenger_count", "payment_type", "vendor_id"]


@dataclass(frozen=True)
class World:
    seed: int = 7
    trips_per_day: int = 2000
    label_lag_days: int = 2
    faults: FaultPlan = field(default_factory=FaultPlan)

    # -- trips ------------------------------------------------------------------------------------
    def _rng(self, day: date, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, day.toordinal(), stream])

    def zones_on(self, day: date) -> list[tuple[str, float, float, float]]:
        zones = list(ZONES)
        if self.faults.active("covariate_shift", day):
            scale = 1 - NEW_ZONE[1]
            zones = [(n, w * scale, d, t) for n, w, d, t in zones] + [NEW_ZONE]
        return zones

    def trips(self, day: date) -> pd.DataFrame:
        """All trips picked up on ``day`` (UTC), as the upstream feed delivers them."""
        rng = self._rng(day, 0)
        n = int(rng.poisson(self.trips_per_day * _WEEKDAY_FACTOR[day.weekday()]))
        zones = self.zones_on(day)
        names = np.array([z[0] for z in zones])
        weights = np.array([z[1] for z in zones])
        zone_idx = rng.choice(len(zones), size=n, p=weights / weights.sum())
        drop_idx = rng.choice(len(zones), size=n, p=weights / weights.sum())
        hours_w = _WEEKEND_HOUR_WEIGHTS if day.weekday() >= 5 else _HOUR_WEIGHTS
        hours = rng.choice(24, size=n, p=hours_w / hours_w.sum())
        seconds = hours * 3600 + rng.integers(0, 3600, size=n)
        mean_km = np.array([z[2] for z in zones])[zone_idx]
        distance = np.round(rng.lognormal(np.log(mean_km), 0.45), 2)
        rush = np.isin(hours, [7, 8, 9, 16, 17, 18])
        speed = np.where(rush, rng.normal(17, 3, n), rng.normal(27, 4, n)).clip(8, 60)
        duration_min = distance / speed * 60 + rng.exponential(3, n)
        airport = names[zone_idx] == "Airport"
        fare = np.round(3.0 + 1.75 * distance + 0.35 * duration_min + 5.0 * airport, 2)
        passengers = rng.choice([1, 2, 3, 4, 5, 6], size=n, p=[.68, .18, .06, .04, .02, .02]).astype("float64")
        payment = rng.choice(len(PAYMENT_TYPES), size=n, p=_PAYMENT_P)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        pickup = pd.to_datetime(start) + pd.to_timedelta(seconds, unit="s")
        dropoff = pickup + pd.to_timedelta(np.round(duration_min * 60), unit="s")
        # Real feeds are a little dirty: a few negative distances and missing passenger counts.
        dirty = rng.random(n)
        distance = np.where(dirty < 0.002, -distance, distance)
        passengers = np.where((dirty >= 0.002) & (dirty < 0.004), np.nan, passengers)
        frame = pd.DataFrame({
            "trip_id": [f"T{day:%Y%m%d}-{i:05d}" for i in range(n)],
            "pickup_ts": pickup,
            "dropoff_ts": dropoff,
            "pickup_zone": names[zone_idx],
            "dropoff_zone": names[drop_idx],
            "distance_km": distance,
            "fare_amount": fare,
            "passenger_count": passengers,
            "payment_type": np.array(PAYMENT_TYPES)[payment],
            "vendor_id": np.where(rng.random(n) < 0.55, "V1", "V2"),
        })
        return frame

    def raw_feed(self, day: date) -> pd.DataFrame | None:
        """What the raw-trips feed delivers for ``day``; None when the partition never arrives."""
        if self.faults.active("missing_partition", day):
            return None
        frame = self.trips(day)
        if self.faults.active("schema_break", day):
            # The vendor renamed a column and started sending it as formatted text.
            frame = frame.rename(columns={"fare_amount": "fare_usd"})
            frame["fare_usd"] = frame["fare_usd"].map(lambda v: f"${v:,.2f}")
        return frame

    # -- tips (labels) ------------------------------------------------------------------------------
    def tip_probability(self, trips: pd.DataFrame, day: date) -> np.ndarray:
        zone_habit = {z[0]: z[3] for z in [*ZONES, NEW_ZONE]}
        hour = pd.to_datetime(trips["pickup_ts"]).dt.hour.to_numpy()
        night = ((hour >= 22) | (hour <= 4)).astype(float)
        pay = trips["payment_type"].to_numpy()
        card, cash, app = (pay == "card").astype(float), (pay == "cash").astype(float), (pay == "app").astype(float)
        fare = np.abs(trips["fare_amount"].to_numpy(dtype=float))
        weekend = float(day.weekday() >= 5)
        drift = self.faults.active("concept_drift", day) is not None
        # The drift moves tipping from card to cash riders: what the model learned to call a
        # tipper no longer is one, and real tippers are predicted not to tip (recall falls).
        card_effect, cash_effect, app_effect = (-0.8, 2.2, 0.0) if drift else (1.8, -2.0, 1.2)
        logit = (-1.3 + card_effect * card + app_effect * app + cash_effect * cash + 0.04 * fare + 0.25 * night
                 + 0.3 * weekend + trips["pickup_zone"].map(zone_habit).fillna(0).to_numpy())
        return 1 / (1 + np.exp(-logit))

    def outcomes(self, trip_day: date) -> pd.DataFrame:
        """Whether each trip of ``trip_day`` was tipped, and when that label reaches us."""
        trips = self.trips(trip_day)
        rng = self._rng(trip_day, 1)
        p = self.tip_probability(trips, trip_day)
        tipped = rng.random(len(trips)) < p
        tip_amount = np.where(tipped, np.round(np.abs(trips["fare_amount"]) * rng.uniform(0.1, 0.25, len(trips)), 2), 0.0)
        delay = self.label_lag_days
        late = self.faults.active("late_labels", trip_day)
        if late:
            delay += int(late.amount)
        keep = np.ones(len(trips), dtype=bool)
        lost = self.faults.active("missing_labels", trip_day)
        if lost:
            keep = rng.random(len(trips)) >= lost.amount
        frame = pd.DataFrame({
            "trip_id": trips["trip_id"],
            "trip_date": trip_day.isoformat(),
            "tipped": tipped,
            "tip_amount": tip_amount,
            "fare_amount": np.abs(trips["fare_amount"].to_numpy(dtype=float)),
            "label_date": (trip_day + timedelta(days=delay)).isoformat(),
        })
        return frame[keep].reset_index(drop=True)

    def labels_arriving(self, day: date) -> pd.DataFrame:
        """Every label that arrives on ``day`` (for trips ``label_lag_days`` or more earlier)."""
        extra = max([int(f.amount) for f in self.faults.faults if f.kind == "late_labels"] or [0])
        frames = []
        for back in range(self.label_lag_days, self.label_lag_days + extra + 1):
            trip_day = day - timedelta(days=back)
            out = self.outcomes(trip_day)
            frames.append(out[out["label_date"] == day.isoformat()])
        frame = pd.concat(frames, ignore_index=True)
        return frame.astype({"tipped": bool, "tip_amount": float, "fare_amount": float})
