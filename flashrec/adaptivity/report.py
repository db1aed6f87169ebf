"""A drift report between a reference window and a recent window of feature rows.

Windows are defined on event time, relative to the newest row in the data (not the wall
clock), so replayed or simulated history behaves like live traffic: ``recent`` is the
last ``recent_hours``, ``reference`` everything before it (or since the model's training
cutoff, when given).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from flashrec.adaptivity.drift import CatalogDrift, FeatureDrift, catalog_drift, feature_drift


@dataclass(frozen=True)
class DriftReport:
    cutoff: datetime
    reference_rows: int
    recent_rows: int
    features: list[FeatureDrift]
    catalog: CatalogDrift
    notes: list[str] = field(default_factory=list)

    @property
    def drifted_features(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.level == "drift"]

    @property
    def drift_detected(self) -> bool:
        return bool(self.drifted_features) or self.catalog.drifted

    def summary(self) -> str:
        parts = [f"{f.feature} psi={f.psi:.2f}" for f in self.drifted_features[:5]]
        if self.catalog.drifted:
            parts.append(
                f"unknown-item traffic {self.catalog.unknown_item_share:.1%}, "
                f"viral items {len(self.catalog.viral_items)}"
            )
        return "; ".join(parts) if parts else "no drift"


def split_by_time(
    times: np.ndarray, recent_hours: float, since: datetime | None = None
) -> tuple[np.ndarray, np.ndarray, datetime]:
    """Boolean masks (reference, recent) and the cutoff between them."""
    newest = times.max()
    cutoff = newest - np.timedelta64(int(recent_hours * 3600 * 1e6), "us")
    reference = times <= cutoff
    if since is not None:
        reference &= times >= np.datetime64(since.replace(tzinfo=None), "us")
    cutoff_dt: datetime = cutoff.astype("datetime64[us]").item()  # naive, UTC
    return reference, times > cutoff, cutoff_dt


def build_report(
    times: np.ndarray,
    columns: Mapping[str, np.ndarray],
    item_times: np.ndarray,
    items: Sequence[str],
    recent_hours: float,
    known_items: set[str] | None = None,
) -> DriftReport:
    """Feature drift on ``columns`` (rows stamped ``times``) and catalog drift on the item
    traffic (``items`` stamped ``item_times``). Known items default to those seen in the
    reference window: an item never seen before has no behavioural embedding yet."""
    ref, rec, cutoff = split_by_time(times, recent_hours)
    notes = []
    if ref.sum() == 0 or rec.sum() == 0:
        notes.append("one window is empty: no feature drift computed")
        drifts: list[FeatureDrift] = []
    else:
        drifts = feature_drift(
            {k: v[ref] for k, v in columns.items()}, {k: v[rec] for k, v in columns.items()}
        )
    items_arr = np.asarray(items, dtype=object)
    item_ref = item_times <= np.datetime64(cutoff, "us")
    ref_items = items_arr[item_ref].tolist()
    known = known_items if known_items is not None else set(ref_items)
    catalog = catalog_drift(ref_items, items_arr[~item_ref].tolist(), known)
    return DriftReport(cutoff, int(ref.sum()), int(rec.sum()), drifts, catalog, notes)
