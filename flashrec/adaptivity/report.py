"""A drift report between a reference window and a recent window of feature rows.

Windows are defined on event time, relative to the newest row in the data (not the wall
clock), so replayed or simulated history behaves like live traffic: ``recent`` is the
last ``recent_hours``, ``reference`` everything before it (or since the model's training
cutoff, when given).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

from flashrec.adaptivity.drift import (
    KS_P,
    NEW_ITEM_MIN_EVENTS,
    CatalogDrift,
    FeatureDrift,
    catalog_drift,
    feature_drift,
)

#: Fewer rows than this in a window decide nothing: a handful of rows always "drifts".
MIN_WINDOW_ROWS = 200


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

    @property
    def model_stale(self) -> bool:
        """Drift a retrain can fix: shoppers turned to items the model has no embedding
        for, once those have events enough to learn them from, or to known items whose
        traffic jumped (catalog, see ``CatalogDrift.learnable``), or the model ranks what
        they took next lower than before (candidate position). Item funnel rates alone can
        move with the mix of traffic and the same items; that is reported, not retrained on.

        The candidate slide must also be significant (KS p < ``KS_P``): on the few dozen
        sessions of a young live window, the PSI of positions alone passes its threshold by
        chance (seen before a shift, retraining a model on unchanged traffic)."""
        candidate = any(
            f.feature == "candidate_position" and f.ks_p < KS_P for f in self.drifted_features
        )
        return self.catalog.learnable or candidate

    def retrain_reason(self, decayed_variants: Sequence[str] = ()) -> str:
        """Why ``model_stale`` launches a retrain, or why it waits (for the sensor's
        report and the UI; the decision itself is ``model_stale``).

        Online decay (a variant's CTR fell) alone launches nothing: a retrain learns from
        the lake, and until the lake holds the traffic that decayed it learns nothing new.
        Seen: a decay 1m45s into a flash sale launched a retrain on a lake without one
        sale event; its challenger had never heard of the sale's items. The lake's own
        drift (catalog or candidate slide) follows within a refresh or two when the decay
        is real, and launches the retrain then."""
        if self.catalog.learnable:
            return f"catalog drift: {self.summary()}"
        if self.model_stale:
            return "the champion ranks what shoppers took next lower (candidate slide)"
        if self.catalog.drifted and self.catalog.unknown_items:
            return (
                f"catalog drift on {self.catalog.unknown_items} unknown items with "
                f"{self.catalog.events_per_unknown_item:.0f} recent events each: waiting for "
                f"{NEW_ITEM_MIN_EVENTS} each to learn them from"
            )
        if decayed_variants:
            return (
                f"online decay of {', '.join(decayed_variants)} without drift in the lake yet: "
                "waiting for the lake to hold that traffic"
            )
        return "no drift a retrain can fix"

    def summary(self) -> str:
        parts = [f"{f.feature} psi={f.psi:.2f}" for f in self.drifted_features[:5]]
        if self.catalog.drifted:
            parts.append(
                f"unknown-item traffic {self.catalog.unknown_item_share:.1%}, "
                f"viral items {len(self.catalog.viral_items)}"
            )
        return "; ".join(parts) if parts else "no drift"


def split_by_time(
    times: np.ndarray,
    recent_hours: float,
    since: datetime | None = None,
    reference_hours: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, datetime]:
    """Boolean masks (reference, recent) and the cutoff between them. ``reference_hours``
    > 0 keeps only that much time before the cutoff in the reference window."""
    newest = times.max()
    cutoff = newest - np.timedelta64(int(recent_hours * 3600 * 1e6), "us")
    reference = times <= cutoff
    if reference_hours > 0:
        reference &= times > cutoff - np.timedelta64(int(reference_hours * 3600 * 1e6), "us")
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
    reference_hours: float = 0.0,
) -> DriftReport:
    """Feature drift on ``columns`` (rows stamped ``times``) and catalog drift on the item
    traffic (``items`` stamped ``item_times``). Known items are those the serving model
    has embeddings for; without it, those seen in the reference window."""
    ref, rec, cutoff = split_by_time(times, recent_hours, reference_hours=reference_hours)
    notes = []
    if min(ref.sum(), rec.sum()) < MIN_WINDOW_ROWS:
        notes.append(
            f"feature rows {int(ref.sum())} / {int(rec.sum())} (reference / recent) are under "
            f"{MIN_WINDOW_ROWS}: no feature drift computed"
        )
        drifts: list[FeatureDrift] = []
    else:
        drifts = feature_drift(
            {k: v[ref] for k, v in columns.items()}, {k: v[rec] for k, v in columns.items()}
        )
    items_arr = np.asarray(items, dtype=object)
    cut = np.datetime64(cutoff, "us")
    item_rec = item_times > cut
    item_ref = ~item_rec
    if reference_hours > 0:
        item_ref &= item_times > cut - np.timedelta64(int(reference_hours * 3600 * 1e6), "us")
    ref_items = items_arr[item_ref].tolist()
    rec_items = items_arr[item_rec].tolist()
    known = known_items if known_items is not None else set(ref_items)
    if len(rec_items) < MIN_WINDOW_ROWS:
        notes.append(f"{len(rec_items)} recent item events: no catalog drift computed")
        catalog = CatalogDrift(0.0)
    elif len(ref_items) < MIN_WINDOW_ROWS:
        notes.append(f"{len(ref_items)} reference item events: only unknown-item traffic judged")
        unknown = catalog_drift(rec_items, rec_items, known)
        catalog = replace(unknown, viral_items=[], viral_known=0)
    else:
        catalog = catalog_drift(ref_items, rec_items, known)
    return DriftReport(cutoff, int(ref.sum()), int(rec.sum()), drifts, catalog, notes)
