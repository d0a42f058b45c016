"""Evidently drift reports on bounded, stratified samples.

Evidently works on pandas in one process, so it sees a sample: at most ``max_rows`` rows per
side, drawn per stratum (e.g. pickup zone) in proportion to its size but never fewer than
``min_per_stratum`` rows, so small slices stay visible. The HTML report and JSON snapshot are
saved under the lakehouse (``<home>/reports/drift/<table>/<window>/``) and their paths go to the
drift table and the Dagster metadata. Evidently's per-column verdicts are parsed so they can be
recorded next to the full-data verdicts; where they disagree, both are kept.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from tracelake.lineage.settings import arrow_filesystem, is_local_uri, to_local_path

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["EvidentlyReport", "EvidentlyVerdict", "evidently_drift", "evidently_verdicts", "stratified_sample"]


@dataclass(frozen=True)
class EvidentlyVerdict:
    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass
class EvidentlyReport:
    html_path: str
    json_path: str
    reference_rows: int
    current_rows: int
    verdicts: dict[str, EvidentlyVerdict] = field(default_factory=dict)
    samples: tuple[pd.DataFrame, pd.DataFrame] | None = None   # the rows it saw (reference, current)


def stratified_sample(df: DataFrame, columns: Sequence[str], strata: str | None, counts: Mapping[str, int] | None,
                      *, max_rows: int = 5000, min_per_stratum: int = 50, seed: int = 7) -> pd.DataFrame:
    """At most about ``max_rows`` rows of ``df``; per stratum proportional with a floor.

    ``counts`` (rows per stratum value) come from the profiles, so sampling needs no extra pass.
    """
    if isinstance(df, pd.DataFrame):
        return _stratified_pandas(df[list(columns)], strata, counts, max_rows, min_per_stratum, seed)
    frame = df.select(*columns)
    if strata is None or not counts:
        total = sum(counts.values()) if counts else frame.count()
        fraction = min(1.0, max_rows / max(total, 1))
        return frame.sample(fraction=fraction, seed=seed).limit(max_rows).toPandas()
    total = sum(counts.values())
    fractions = {}
    for value, n in counts.items():
        want = max(min_per_stratum, math.ceil(max_rows * n / max(total, 1)))
        fractions[value] = min(1.0, want / max(n, 1))
    from pyspark.sql import functions as F

    keyed = frame.withColumn("_tl_stratum", F.coalesce(F.col(strata).cast("string"), F.lit("null")))
    sample = keyed.sampleBy("_tl_stratum", fractions, seed=seed).drop("_tl_stratum")
    return sample.toPandas()


def _stratified_pandas(frame: pd.DataFrame, strata: str | None, counts: Mapping[str, int] | None, max_rows: int,
                       min_per_stratum: int, seed: int) -> pd.DataFrame:
    if strata is None or not counts or frame.empty:
        return frame.sample(n=min(max_rows, len(frame)), random_state=seed) if len(frame) else frame
    total = sum(counts.values())
    parts = []
    for value, group in frame.groupby(frame[strata].astype(str).fillna("null"), dropna=False):
        n = counts.get(str(value), len(group))
        want = max(min_per_stratum, math.ceil(max_rows * n / max(total, 1)))
        parts.append(group.sample(n=min(want, len(group)), random_state=seed))
    return pd.concat(parts) if parts else frame.head(0)


def evidently_verdicts(snapshot_dict: dict) -> dict[str, EvidentlyVerdict]:
    """Per-column verdicts from a report's snapshot, ``Snapshot.dict()`` - the same document
    ``save_json`` writes and ``Snapshot.load`` reads back, i.e. Evidently's stored format, not
    its internals; ``ValueDrift`` is the type id that format gives each column's drift metric.
    (The live ``metric_results`` are keyed by fingerprints that name no column.)"""
    out = {}
    for metric in snapshot_dict.get("metrics", []):
        config = metric.get("config") or {}
        if config.get("type") != "evidently:metric_v2:ValueDrift":
            continue
        method, threshold, value = str(config.get("method")), config.get("threshold"), metric.get("value")
        if value is None or threshold is None:
            continue
        threshold = float(threshold)
        score = float(value)
        # Evidently reports either a p-value (drift when below) or a distance (drift when above).
        drifted = score < threshold if "p_value" in method.lower() else score >= threshold
        out[config["column"]] = EvidentlyVerdict(config["column"], method, score, threshold, bool(drifted))
    return out


def evidently_drift(reference: pd.DataFrame, current: pd.DataFrame, out_dir: str | Path, name: str) -> EvidentlyReport:
    """Run Evidently's DataDriftPreset and save ``<name>.html`` and ``<name>.json`` in ``out_dir``,
    a folder or an object-store prefix (``s3a://...``: saved locally, then uploaded)."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    if reference.empty or current.empty:
        raise ValueError(f"Evidently needs rows on both sides (reference {len(reference)}, current {len(current)})")
    # Booleans become strings so Evidently treats them as categories on both sides alike.
    ref, cur = (f.apply(lambda s: s.astype(str).where(s.notna(), None) if s.dtype == bool else s)
                for f in (reference, current))
    snapshot = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
    with _saved_in(str(out_dir)) as (local, final):
        snapshot.save_html(str(local / f"{name}.html"))
        snapshot.save_json(str(local / f"{name}.json"))
    html, js = f"{final}/{name}.html", f"{final}/{name}.json"
    return EvidentlyReport(html, js, len(reference), len(current), evidently_verdicts(snapshot.dict()))


@contextlib.contextmanager
def _saved_in(out_dir: str) -> Iterator[tuple[Path, str]]:
    """(local folder to save into, where the files end up). Evidently saves to local paths only;
    on an object store the files are uploaded when saving is done, so the recorded paths name
    the shared copy every machine reads, not a worker's temporary disk."""
    if is_local_uri(out_dir):
        local = to_local_path(out_dir)
        local.mkdir(parents=True, exist_ok=True)
        yield local, str(local)
        return
    from pyarrow import fs as pafs

    with tempfile.TemporaryDirectory(prefix="tracelake-evidently-") as tmp:
        yield Path(tmp), out_dir.rstrip("/")
        filesystem, prefix = arrow_filesystem(out_dir)
        filesystem.create_dir(prefix, recursive=True)
        pafs.copy_files(tmp, prefix, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=filesystem)
