"""Mergeable column profiles: one Spark pass, per time window and slice, summed to any coarser
window without rereading data.

Per numeric column: count, nulls, sum, sum of squares (taken about the middle of the column's
bins, so a large mean with a small spread keeps its precision), min, max and a histogram over bins fixed
by a :class:`ProfileSpec` (equal-width bins between the reference's 0.1% and 99.9% quantiles,
plus an underflow and an overflow bin). Because every window of a table is binned the same way,
profiles add up: 24 hourly profiles sum to the day's, exactly. The histogram is also the
quantile sketch: a quantile read from it is within one bin of the true one (its rank error is
at most the mass of that bin, its value error at most the bin width).

Non-finite values (NaN, +-inf) count as nulls: they have no place on a distance scale.

Per categorical column: counts of the reference's top categories, of any other value seen (up to
``top_k``, so a new category shows up by name), an ``other`` remainder and nulls.

On Spark the pass is one aggregation inside the JVM (``spark_profiles``): every row is binned
by SQL expressions doing the same arithmetic as :func:`_bins`, and only the small per-bin groups
reach the driver. ``profile_pandas`` is the in-process path (and the reference the Spark path is
tested against).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = [
    "GRANULARITY_SECONDS",
    "ColumnSpec",
    "Profile",
    "ProfileSpec",
    "derive_spec",
    "from_rows",
    "merge",
    "profile_pandas",
    "profile_spark",
    "quantile",
    "to_rows",
    "whole_window",
]

GRANULARITY_SECONDS = {"hour": 3600, "day": 86400, "all": None}
ALL = "all"


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    kind: str                       # "numeric" | "categorical"
    lo: float | None = None
    hi: float | None = None
    bins: int = 0
    categories: tuple[str, ...] = ()

    def bounds(self) -> tuple[float, float]:
        """(lo, hi) of a numeric column's fixed bins."""
        if self.lo is None or self.hi is None:
            raise ValueError(f"column {self.name!r} is {self.kind}: it has no numeric bins")
        return self.lo, self.hi

    def edges(self) -> np.ndarray:
        lo, hi = self.bounds()
        return np.linspace(lo, hi, self.bins + 1)

    @property
    def center(self) -> float:
        return 0.0 if self.lo is None or self.hi is None else (self.lo + self.hi) / 2


@dataclass(frozen=True)
class ProfileSpec:
    columns: tuple[ColumnSpec, ...]
    time_column: str | None = None
    granularity: str = "hour"
    slices: tuple[str, ...] = ()
    top_k: int = 50

    @property
    def spec_id(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ProfileSpec:
        raw = json.loads(text)
        cols = tuple(ColumnSpec(**{**c, "categories": tuple(c["categories"])}) for c in raw.pop("columns"))
        return cls(columns=cols, **{**raw, "slices": tuple(raw["slices"])})

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)


@dataclass
class Profile:
    """One column in one window and slice."""

    column: str
    kind: str
    window_start: int | None        # epoch seconds (None: the whole data)
    slice_key: str = ALL
    slice_value: str = ALL
    count: int = 0
    nulls: int = 0
    sum: float = 0.0
    sum_sq: float = 0.0             # sum of (x - center)^2
    min: float = float("inf")
    max: float = float("-inf")
    hist: np.ndarray | None = None
    categories: dict[str, int] = field(default_factory=dict)
    other: int = 0
    center: float = 0.0             # the ColumnSpec's center; the same for every profile of a column

    @property
    def key(self) -> tuple:
        return (self.column, self.window_start, self.slice_key, self.slice_value)

    def add(self, other: Profile, top_k: int = 10_000) -> None:
        self.count += other.count
        self.nulls += other.nulls
        self.sum += other.sum
        self.sum_sq += other.sum_sq
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        if other.hist is not None:
            self.hist = other.hist.copy() if self.hist is None else self.hist + other.hist
        for k, v in other.categories.items():
            self.categories[k] = self.categories.get(k, 0) + v
        self.other += other.other
        if len(self.categories) > top_k:
            keep = sorted(self.categories.items(), key=lambda kv: -kv[1])
            self.other += sum(v for _, v in keep[top_k:])
            self.categories = dict(keep[:top_k])

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None

    @property
    def std(self) -> float | None:
        if self.count < 2:
            return None
        shifted_mean = self.sum / self.count - self.center
        var = (self.sum_sq - self.count * shifted_mean * shifted_mean) / (self.count - 1)
        return float(np.sqrt(max(var, 0.0)))

    @property
    def population_std(self) -> float | None:
        if self.count < 1:
            return None
        shifted_mean = self.sum / self.count - self.center
        return float(np.sqrt(max(self.sum_sq / self.count - shifted_mean * shifted_mean, 0.0)))


def whole_window(spec: ProfileSpec) -> ProfileSpec:
    """The same bins with no time windows: one profile per column and slice (e.g. a reference)."""
    return replace(spec, time_column=None, granularity="all")


def derive_spec(reference: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str], *, bins: int = 256,
                top_k: int = 50, time_column: str | None = None, granularity: str = "hour",
                slices: Sequence[str] = ()) -> ProfileSpec:
    """Bins and categories from a reference sample (the 0.1%-99.9% range, equal width)."""
    cols = []
    for name in numeric:
        values = pd.to_numeric(reference[name], errors="coerce").dropna().to_numpy(dtype=float)
        if len(values) == 0:
            raise ValueError(f"reference has no values for numeric column {name!r}")
        lo, hi = np.quantile(values, [0.001, 0.999])
        if hi <= lo:
            hi = lo + max(abs(lo) * 1e-6, 1e-9)
        cols.append(ColumnSpec(name, "numeric", float(lo), float(hi), bins))
    for name in categorical:
        counts = reference[name].dropna().astype(str).value_counts()
        cols.append(ColumnSpec(name, "categorical", categories=tuple(counts.index[:top_k])))
    return ProfileSpec(tuple(cols), time_column, granularity, tuple(slices), top_k)


def _bins(values: np.ndarray, spec: ColumnSpec) -> np.ndarray:
    lo, hi = spec.bounds()
    width = (hi - lo) / spec.bins
    idx = np.floor((values - lo) / width).astype(np.int64) + 1
    idx = np.where(values >= hi, spec.bins + 1, idx)  # the top edge belongs to the overflow bin
    return np.clip(idx, 0, spec.bins + 1)


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense group codes and their values (one group: no hashing at all)."""
    if len(values) and (values == values[0]).all():
        return np.zeros(len(values), dtype=np.int64), values[:1]
    codes, uniques = pd.factorize(values)
    return codes.astype(np.int64), np.asarray(uniques)


def _factorize(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes (-1 = null) and names as text. Arrow batches arrive with strings as pandas
    categoricals (see ``profile_spark``), whose codes are free; other columns are hashed."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.codes.to_numpy().astype(np.int64), [str(c) for c in series.cat.categories]
    codes, uniques = pd.factorize(series.astype(str).where(series.notna(), None))
    return codes.astype(np.int64), [str(u) for u in uniques]


def _group_min_max(g: np.ndarray, v: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    if n == 1:
        return (np.array([v.min()]), np.array([v.max()])) if len(v) else (np.full(1, np.inf), np.full(1, -np.inf))
    mins, maxs = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(mins, g, v)
    np.maximum.at(maxs, g, v)
    return mins, maxs


def profile_pandas(frame: pd.DataFrame, spec: ProfileSpec) -> list[Profile]:
    """Profiles of a pandas frame (also what each Spark partition runs): vectorised over groups
    with ``np.bincount``, so cost grows with rows, not with windows x slices."""
    if frame.empty:
        return []
    win_codes, win_values = _codes(_windows(frame, spec))
    numeric = {c.name: _numeric_values(frame[c.name], c) for c in spec.columns if c.kind == "numeric"}
    categorical = {c.name: _factorize(frame[c.name]) for c in spec.columns if c.kind == "categorical"}
    out: list[Profile] = []
    for slice_key, slice_codes, slice_values in _slicings(frame, spec):
        combined = win_codes * len(slice_values) + slice_codes
        codes, pairs = _codes(combined)
        n = len(pairs)
        groups = [(win_values[p // len(slice_values)], slice_values[p % len(slice_values)]) for p in pairs]
        for col in spec.columns:
            profs = [Profile(col.name, col.kind, None if w == -1 else int(w), slice_key, str(sv)) for w, sv in groups]
            if col.kind == "numeric":
                _fill_numeric(profs, col, numeric[col.name], codes, n)
            else:
                _fill_categorical(profs, col, categorical[col.name], codes, n, spec.top_k)
            out.extend(profs)
    return out


def _windows(frame: pd.DataFrame, spec: ProfileSpec) -> np.ndarray:
    """Per row, the epoch second its window starts at (-1: no window, or no time)."""
    rows = len(frame)
    if spec.time_column is None or not GRANULARITY_SECONDS[spec.granularity]:
        return np.full(rows, -1, dtype=np.int64)
    seconds = GRANULARITY_SECONDS[spec.granularity]
    # Arrow batches carry microseconds, pandas frames nanoseconds: normalise the unit first.
    ts = pd.to_datetime(frame[spec.time_column], utc=True).dt.as_unit("ns")
    # Rows without a time land in the "no window" bucket (None) rather than being dropped.
    epoch = ts.fillna(pd.Timestamp(0, tz="UTC")).astype("int64") // 10**9 // seconds * seconds
    return np.where(ts.notna().to_numpy(), epoch.to_numpy(), -1)


def _slicings(frame: pd.DataFrame, spec: ProfileSpec) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(slice key, per-row slice code, slice values): the whole table first, then each slice column."""
    rows = len(frame)
    slicings = [(ALL, np.zeros(rows, dtype=np.int64), np.array([ALL], dtype=object))]
    for s in spec.slices:
        codes, names = _factorize(frame[s])
        if (codes < 0).any():                   # a null slice value is its own slice, "null"
            codes = np.where(codes < 0, len(names), codes)
            names = [*names, "null"]
        slicings.append((s, codes.astype(np.int64), np.asarray(names, dtype=object)))
    return slicings


def _numeric_values(col: pd.Series, spec: ColumnSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(finite mask per row, the finite values, their bins)."""
    values = (col.to_numpy(dtype=float, na_value=np.nan) if pd.api.types.is_numeric_dtype(col)
              else pd.to_numeric(col, errors="coerce").to_numpy(dtype=float))
    ok = np.isfinite(values)            # NaN, None and +-inf are all nulls here
    v = values[ok]
    return ok, v, _bins(v, spec)


def _fill_numeric(profs: list[Profile], col: ColumnSpec, numeric: tuple[np.ndarray, np.ndarray, np.ndarray],
                  codes: np.ndarray, n: int) -> None:
    ok, v, binned = numeric
    g = codes[ok]
    counts = np.bincount(g, minlength=n)
    nulls = np.bincount(codes[~ok], minlength=n)
    sums = np.bincount(g, weights=v, minlength=n)
    centred = v - col.center
    sqs = np.bincount(g, weights=centred * centred, minlength=n)
    width = col.bins + 2
    hist = np.bincount(g * width + binned, minlength=n * width).reshape(n, width)
    mins, maxs = _group_min_max(g, v, n)
    for k, prof in enumerate(profs):
        prof.count, prof.nulls = int(counts[k]), int(nulls[k])
        prof.sum, prof.sum_sq = float(sums[k]), float(sqs[k])
        if counts[k]:
            prof.min, prof.max = float(mins[k]), float(maxs[k])
        prof.hist = hist[k].astype(np.int64)
        prof.center = col.center


def _fill_categorical(profs: list[Profile], col: ColumnSpec, categorical: tuple[np.ndarray, list[str]],
                      codes: np.ndarray, n: int, top_k: int) -> None:
    value_codes, names = categorical
    present = value_codes >= 0
    k_values = max(len(names), 1)
    nulls = np.bincount(codes[~present], minlength=n)
    table = np.bincount(codes[present] * k_values + value_codes[present],
                        minlength=n * k_values).reshape(n, k_values)
    known = set(col.categories)
    for k, prof in enumerate(profs):
        row = table[k]
        prof.nulls = int(nulls[k])
        prof.count = int(row.sum())
        cats = {names[i]: int(row[i]) for i in np.flatnonzero(row) if names[i] in known}
        extra = sorted(((names[i], int(row[i])) for i in np.flatnonzero(row) if names[i] not in known),
                       key=lambda kv: -kv[1])
        cats.update(extra[:top_k])
        prof.categories, prof.other = cats, sum(c for _, c in extra[top_k:])


def merge(profiles: Iterable[Profile], *, window: str | None = None, top_k: int = 10_000) -> list[Profile]:
    """Sum profiles that share (column, window, slice); ``window`` re-buckets first:
    "day" turns hourly windows into days, "all" merges every window (cumulative)."""
    merged: dict[tuple, Profile] = {}
    seconds = GRANULARITY_SECONDS.get(window) if window else None
    for p in profiles:
        w = p.window_start
        if window == "all":
            w = None
        elif seconds and w is not None:
            w = w // seconds * seconds
        key = (p.column, w, p.slice_key, p.slice_value)
        if key not in merged:
            merged[key] = Profile(p.column, p.kind, w, p.slice_key, p.slice_value, center=p.center)
        merged[key].add(p, top_k)
    return list(merged.values())


def quantile(p: Profile, spec: ColumnSpec, q: float) -> float:
    """Quantile from the histogram (linear within a bin; overflow bins span to min/max)."""
    if p.hist is None or p.hist.sum() == 0:
        return float("nan")
    lo, hi = spec.bounds()
    edges = np.concatenate([[lo if p.min is None else min(p.min, lo)], spec.edges(),
                            [hi if p.max is None else max(p.max, hi)]])
    cdf = np.cumsum(p.hist) / p.hist.sum()
    i = int(np.searchsorted(cdf, q))
    prev = cdf[i - 1] if i > 0 else 0.0
    frac = (q - prev) / (cdf[i] - prev) if cdf[i] > prev else 0.0
    return float(edges[i] + frac * (edges[i + 1] - edges[i]))


# -- Spark ------------------------------------------------------------------------------------

def profile_spark(df: DataFrame, spec: ProfileSpec) -> list[Profile]:
    """Profiles of a Spark DataFrame in one pass, aggregated inside the JVM: only the per-bin and
    per-category groups reach the driver (see :mod:`tracelake.monitors.drift.spark_profiles`)."""
    from tracelake.monitors.drift.spark_profiles import profile_spark_sql

    return profile_spark_sql(df, spec)


# -- storage rows -------------------------------------------------------------------------------

def to_rows(profiles: Iterable[Profile], spec: ProfileSpec, *, table: str, granularity: str,
            source_version: int | None = None) -> pd.DataFrame:
    seconds = GRANULARITY_SECONDS.get(granularity)
    rows = []
    for p in profiles:
        start = None if p.window_start is None else datetime.fromtimestamp(p.window_start, tz=UTC)
        end = None if start is None or not seconds else start + timedelta(seconds=seconds)
        rows.append({"table_name": table, "column_name": p.column, "kind": p.kind, "granularity": granularity,
                     "window_start": start, "window_end": end, "slice_key": p.slice_key, "slice_value": p.slice_value,
                     "spec_id": spec.spec_id, "count": p.count, "nulls": p.nulls, "sum": p.sum, "sum_sq": p.sum_sq,
                     "min": None if p.count == 0 or p.kind != "numeric" else p.min,
                     "max": None if p.count == 0 or p.kind != "numeric" else p.max,
                     "hist": None if p.hist is None else [int(x) for x in p.hist],
                     "categories": json.dumps(p.categories, sort_keys=True), "other": p.other,
                     "center": p.center, "source_version": source_version})
    return pd.DataFrame(rows)


def from_rows(frame: pd.DataFrame) -> list[Profile]:
    out = []
    for r in frame.to_dict("records"):
        start = r["window_start"]
        window = None if start is None or pd.isna(start) else int(pd.Timestamp(start).timestamp())
        out.append(Profile(r["column_name"], r["kind"], window,
                           r["slice_key"], r["slice_value"], int(r["count"]), int(r["nulls"]), float(r["sum"]),
                           float(r["sum_sq"]), float("inf") if r["min"] is None or pd.isna(r["min"]) else float(r["min"]),
                           float("-inf") if r["max"] is None or pd.isna(r["max"]) else float(r["max"]),
                           None if r["hist"] is None else np.asarray(r["hist"], dtype=np.int64),
                           json.loads(r["categories"] or "{}"), int(r["other"] or 0),
                           float(r.get("center") or 0.0)))
    return out
