"""A multivariate drift signal: can a classifier tell the reference sample from the current one?

Per-column statistics miss shifts in how columns move together (the same zones, the same fares,
but long trips now come from a different zone). A gradient-boosted classifier trained to
separate reference rows from current rows, scored by cross-validated ROC AUC, catches those:
0.5 means indistinguishable, 1.0 means entirely different. It runs on the same bounded,
stratified samples as the Evidently report, so its cost does not grow with the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_AUC_THRESHOLD", "DomainClassifierResult", "domain_classifier_auc"]

# AUC 0.6: clearly above what two samples of one distribution score by chance at a few thousand rows.
DEFAULT_AUC_THRESHOLD = 0.6


@dataclass(frozen=True)
class DomainClassifierResult:
    auc: float
    threshold: float
    reference_rows: int
    current_rows: int
    drifted: bool


def domain_classifier_auc(reference: pd.DataFrame, current: pd.DataFrame, categorical: Sequence[str] = (), *,
                          threshold: float = DEFAULT_AUC_THRESHOLD, folds: int = 5,
                          seed: int = 0) -> DomainClassifierResult:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    if len(reference) < folds or len(current) < folds:
        raise ValueError(f"the domain classifier needs at least {folds} rows per side "
                         f"(reference {len(reference)}, current {len(current)})")
    frame = pd.concat([reference, current], ignore_index=True)
    y = np.r_[np.zeros(len(reference)), np.ones(len(current))]
    cats = [c for c in frame.columns if c in set(categorical) or frame[c].dtype == bool or frame[c].dtype == object]
    for c in cats:
        # Codes over the union of both sides, so a category new in the current window is one value.
        frame[c] = frame[c].astype(str).astype("category").cat.codes
    mask = [c in cats for c in frame.columns]
    model = HistGradientBoostingClassifier(max_iter=100, categorical_features=mask if any(mask) else None,
                                           random_state=seed)
    proba = cross_val_predict(model, frame.to_numpy(dtype=float), y, method="predict_proba",
                              cv=StratifiedKFold(folds, shuffle=True, random_state=seed))[:, 1]
    auc = float(roc_auc_score(y, proba))
    return DomainClassifierResult(auc, threshold, len(reference), len(current), auc >= threshold)
