"""Drift statistics from profiles: full-data figures without rereading the data.

Numeric columns are compared on the profile histograms (the same bins on both sides, see
:mod:`tracelake.monitors.drift.profiles`):

* **PSI** and **Jensen-Shannon distance** are computed over ten buckets of roughly equal
  reference mass (fine bins grouped at the reference deciles, the usual PSI convention; on the
  256 fine bins a small window would inflate both). They are exact for those buckets: what you
  would get by bucketing the full data the same way.
* **Wasserstein (earth mover's) distance** integrates |F_ref - F_cur| with each CDF linear
  inside a bin. The true distance differs by at most ``sum_b width_b * (p_b + q_b)``, reported
  as ``wasserstein_bound``; on smooth data the error is far smaller. It is normed by the
  reference's standard deviation, as Evidently does, and the verdict acts on the normed value.
* **Kolmogorov-Smirnov** is evaluated at the bin edges: the true statistic D satisfies
  ``D_edges <= D <= D_edges + max_b max(p_b, q_b)`` (``ks_bound``). Its p-value is reported,
  but at millions of rows a p-value flags negligible shifts, so no verdict acts on it.

Categorical columns get chi-square (2 x k contingency test of homogeneity, as
``scipy.stats.chi2_contingency``), Jensen-Shannon distance and PSI over category frequencies.

Default verdicts follow Evidently's defaults for large samples (normed Wasserstein >= 0.1 for
numeric, Jensen-Shannon >= 0.1 for categorical), so the full-data verdict and Evidently's sample
verdict are comparable; both are recorded. A distance over its threshold counts only if it is
also significant (p < ``alpha``), which matters only for small windows and slices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

from tracelake.monitors.drift.profiles import ColumnSpec, Profile, ProfileSpec

__all__ = [
    "PSI_BUCKETS",
    "PSI_EPSILON",
    "DriftResult",
    "DriftThresholds",
    "categorical_drift",
    "coarse_groups",
    "compare_profiles",
    "numeric_drift",
]

# Empty bins get this share before PSI's log ratio (Evidently's and most references' convention).
PSI_EPSILON = 1e-4
# Fewer rows than this on either side gives no verdict: small slices are noise, not drift.
MIN_ROWS = 100


@dataclass(frozen=True)
class DriftThresholds:
    """Where a distance becomes drift. Verdicts act on effect sizes, never on p-values."""

    numeric_method: str = "wasserstein_norm"   # or "psi", "js", "ks"
    numeric: float = 0.1
    categorical_method: str = "js"             # or "psi"
    categorical: float = 0.1
    min_rows: int = MIN_ROWS
    # A distance over its threshold must also be significant (KS / chi-square p-value below
    # alpha): on a few hundred rows sampling noise alone reaches the distance thresholds. At
    # large n every real shift is significant, so the distance decides.
    alpha: float = 0.01


@dataclass
class DriftResult:
    column: str
    kind: str
    slice_key: str
    slice_value: str
    ref_rows: int
    cur_rows: int
    psi: float | None = None
    js: float | None = None
    wasserstein: float | None = None
    wasserstein_norm: float | None = None
    wasserstein_bound: float | None = None
    ks: float | None = None
    ks_bound: float | None = None
    ks_pvalue: float | None = None
    chi2: float | None = None
    chi2_pvalue: float | None = None
    mean_ref: float | None = None
    mean_cur: float | None = None
    null_rate_ref: float | None = None
    null_rate_cur: float | None = None
    method: str = ""
    score: float | None = None
    threshold: float | None = None
    drifted: bool | None = None     # None: too few rows to judge
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros_like(counts, dtype=float)


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    p = np.where(p == 0, PSI_EPSILON, p)
    q = np.where(q == 0, PSI_EPSILON, q)
    return float(np.sum((q - p) * np.log(q / p)))


def _js(p: np.ndarray, q: np.ndarray) -> float:
    from scipy.spatial import distance

    return float(distance.jensenshannon(p, q))


PSI_BUCKETS = 10


def coarse_groups(p: np.ndarray, buckets: int = PSI_BUCKETS) -> np.ndarray:
    """Group index per fine bin: cut where the reference CDF crosses k/buckets."""
    cdf = np.cumsum(p)
    return np.minimum((np.floor(np.concatenate([[0.0], cdf[:-1]]) * buckets + 1e-9)).astype(int), buckets - 1)


def _coarse(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    groups = coarse_groups(p)
    return np.bincount(groups, weights=p), np.bincount(groups, weights=q)


def _null_rate(p: Profile) -> float | None:
    total = p.count + p.nulls
    return p.nulls / total if total else None


def _edges(ref: Profile, cur: Profile, spec: ColumnSpec) -> np.ndarray:
    """Bin edges including the under/overflow bins, which span out to the observed min/max."""
    lo = min(ref.min, cur.min, spec.lo)
    hi = max(ref.max, cur.max, spec.hi)
    return np.concatenate([[lo], spec.edges(), [hi]])


def _wasserstein(p: np.ndarray, q: np.ndarray, edges: np.ndarray) -> tuple[float, float]:
    """W1 with CDFs linear inside each bin, and its worst-case error."""
    widths = np.diff(edges)
    cdf_p = np.concatenate([[0.0], np.cumsum(p)])
    cdf_q = np.concatenate([[0.0], np.cumsum(q)])
    a, b = (cdf_p - cdf_q)[:-1], (cdf_p - cdf_q)[1:]
    same = a * b >= 0
    denom = np.abs(a) + np.abs(b)
    crossing = np.divide(a * a + b * b, 2 * denom, out=np.zeros_like(denom), where=denom > 0)
    area = np.where(same, (np.abs(a) + np.abs(b)) / 2, crossing) * widths
    return float(area.sum()), float(np.sum(widths * (p + q)))


def _ks(p: np.ndarray, q: np.ndarray, n: int, m: int) -> tuple[float, float, float]:
    from scipy import stats

    d = float(np.max(np.abs(np.cumsum(p) - np.cumsum(q))))
    bound = float(np.max(np.maximum(p, q)))
    en = n * m / (n + m)
    # scipy.stats.ks_2samp's asymptotic p-value; past 10k effective rows the limiting (Kolmogorov)
    # distribution is as accurate and orders of magnitude cheaper to evaluate.
    if en <= 0:
        pvalue = float("nan")
    elif en > 10_000:
        pvalue = float(stats.kstwobign.sf(d * np.sqrt(en)))
    else:
        pvalue = float(stats.kstwo.sf(d, round(en)))
    return d, bound, pvalue


def numeric_drift(ref: Profile, cur: Profile, spec: ColumnSpec,
                  thresholds: DriftThresholds = DriftThresholds()) -> DriftResult:
    result = DriftResult(cur.column, "numeric", cur.slice_key, cur.slice_value, ref.count, cur.count,
                         mean_ref=ref.mean, mean_cur=cur.mean, null_rate_ref=_null_rate(ref),
                         null_rate_cur=_null_rate(cur), method=thresholds.numeric_method,
                         threshold=thresholds.numeric)
    if ref.count < thresholds.min_rows or cur.count < thresholds.min_rows or ref.hist is None or cur.hist is None:
        result.detail = f"too few rows to judge (reference {ref.count}, current {cur.count}, need {thresholds.min_rows})"
        return result
    p, q = _shares(ref.hist.astype(float)), _shares(cur.hist.astype(float))
    cp, cq = _coarse(p, q)
    result.psi, result.js = _psi(cp, cq), _js(cp, cq)
    result.wasserstein, result.wasserstein_bound = _wasserstein(p, q, _edges(ref, cur, spec))
    # Population std of the reference, floored as Evidently does, so a constant column cannot divide by 0.
    std = max(ref.population_std or 0.0, 0.001)
    result.wasserstein_norm = result.wasserstein / std
    result.ks, result.ks_bound, result.ks_pvalue = _ks(p, q, ref.count, cur.count)
    result.score = {"wasserstein_norm": result.wasserstein_norm, "psi": result.psi, "js": result.js,
                    "ks": result.ks}[thresholds.numeric_method]
    result.drifted = _verdict(result, thresholds.numeric, result.ks_pvalue, thresholds.alpha)
    return result


def _verdict(result: DriftResult, threshold: float, pvalue: float | None, alpha: float) -> bool:
    over = result.score is not None and result.score >= threshold
    significant = pvalue is not None and pvalue == pvalue and pvalue < alpha
    if over and not significant:
        note = f"distance over threshold but not significant (p={pvalue:.3g} >= {alpha}) at these row counts"
        result.detail = f"{result.detail}; {note}" if result.detail else note
    return bool(over and significant)


def _category_counts(ref: Profile, cur: Profile) -> tuple[list[str], np.ndarray, np.ndarray]:
    keys = sorted(set(ref.categories) | set(cur.categories))
    r = np.array([ref.categories.get(k, 0) for k in keys] + [ref.other], dtype=float)
    c = np.array([cur.categories.get(k, 0) for k in keys] + [cur.other], dtype=float)
    keep = (r + c) > 0
    return [k for k, ok in zip([*keys, "__other__"], keep, strict=True) if ok], r[keep], c[keep]


def categorical_drift(ref: Profile, cur: Profile, thresholds: DriftThresholds = DriftThresholds()) -> DriftResult:
    from scipy import stats

    result = DriftResult(cur.column, "categorical", cur.slice_key, cur.slice_value, ref.count, cur.count,
                         null_rate_ref=_null_rate(ref), null_rate_cur=_null_rate(cur),
                         method=thresholds.categorical_method, threshold=thresholds.categorical)
    if ref.count < thresholds.min_rows or cur.count < thresholds.min_rows:
        result.detail = f"too few rows to judge (reference {ref.count}, current {cur.count}, need {thresholds.min_rows})"
        return result
    keys, r, c = _category_counts(ref, cur)
    p, q = _shares(r), _shares(c)
    result.psi, result.js = _psi(p, q), _js(p, q)
    if len(keys) > 1:
        chi2, pvalue, _, _ = stats.chi2_contingency(np.vstack([r, c]), correction=False)
        result.chi2, result.chi2_pvalue = float(chi2), float(pvalue)
    else:
        result.chi2, result.chi2_pvalue = 0.0, 1.0
    new = [k for k in keys if k != "__other__" and ref.categories.get(k, 0) == 0]
    if new:
        result.detail = "new categories: " + ", ".join(new[:5])
    result.score = result.js if thresholds.categorical_method == "js" else result.psi
    result.drifted = _verdict(result, thresholds.categorical, result.chi2_pvalue, thresholds.alpha)
    return result


def _by_key(profiles: Iterable[Profile], side: str) -> dict[tuple, Profile]:
    out: dict[tuple, Profile] = {}
    for p in profiles:
        key = (p.column, p.slice_key, p.slice_value)
        if key in out:
            raise ValueError(f"{side} profiles hold several windows for {key}; merge them first "
                             "(profiles.merge(profiles, window='all'))")
        out[key] = p
    return out


def compare_profiles(reference: Iterable[Profile], current: Iterable[Profile], spec: ProfileSpec,
                     thresholds: DriftThresholds = DriftThresholds(),
                     per_column: Mapping[str, DriftThresholds] | None = None) -> list[DriftResult]:
    """Drift of every (column, slice) of ``current`` against the same column and slice of
    ``reference``; both must be single-window profiles (merge them first). A slice the reference
    never saw is compared against the reference's whole column, so a new zone is judged against
    the overall distribution rather than skipped."""
    ref = _by_key(reference, "reference")
    out = []
    for cur in _by_key(current, "current").values():
        base = ref.get((cur.column, cur.slice_key, cur.slice_value)) or ref.get((cur.column, "all", "all"))
        if base is None:
            continue
        th = (per_column or {}).get(cur.column, thresholds)
        col = spec.column(cur.column)
        result = numeric_drift(base, cur, col, th) if col.kind == "numeric" else categorical_drift(base, cur, th)
        if base.slice_value != cur.slice_value:
            absent = "slice absent from reference: compared with all rows"
            result.detail = f"{result.detail}; {absent}" if result.detail else absent
        out.append(result)
    return out
