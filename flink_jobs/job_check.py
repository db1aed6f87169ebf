"""What the online store must hold after the job has seen some events: used by the
integration test and ``bench.parity`` to compare every feature of every key.

The reference is each view's ``fold`` over the key's events in event-time order, with the
category every storefront event gets from its item's ``item_created`` event (the catalog
the job keeps). It calls only ``flashrec.features``; no engine is involved.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from flashrec.events import CatalogEvent, StorefrontEvent
from flashrec.features import FEATURE_VIEWS, FeatureEvent, FeatureView, feature_event


def feature_events(events: Iterable[StorefrontEvent | CatalogEvent]) -> list[FeatureEvent]:
    """Validated events -> FeatureEvents with their item's catalog category, time-ordered."""
    events = list(events)
    categories = {
        e.item_id: e.category
        for e in events
        if isinstance(e, CatalogEvent) and e.event_type == "item_created" and e.category
    }
    out = [feature_event(e, categories.get(e.item_id)) for e in events]
    return sorted(out, key=lambda fe: (fe.event_time_ms, fe.event_id))


def reference_features(
    events: Sequence[FeatureEvent], views: Sequence[FeatureView] = FEATURE_VIEWS
) -> dict[str, dict[str, dict[str, Any]]]:
    """{view name: {key: values}}: each view folded over each key's events."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for view in views:
        per_key: dict[str, list[FeatureEvent]] = {}
        for event in events:
            key = view.key_of(event)
            if key is not None:
                per_key.setdefault(key, []).append(event)
        out[view.name] = {key: view.fold(evs) for key, evs in per_key.items()}
    return out


@dataclass(frozen=True)
class Mismatch:
    view: str
    key: str
    feature: str
    expected: Any
    online: Any


def same(expected: Any, online: Any) -> bool:
    """Equal, with floats compared to 1e-9 (a store may round-trip through float64)."""
    if isinstance(expected, float) and isinstance(online, int | float):
        return math.isclose(expected, online, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(expected, bool) or isinstance(online, bool):
        return expected is not None and online is not None and bool(expected) == bool(online)
    return expected == online


def compare(
    expected: dict[str, dict[str, dict[str, Any]]], read, batch: int = 200
) -> tuple[int, int, list[Mismatch]]:
    """Read every expected key through ``read(view_name, keys)``; returns (keys, values,
    mismatches)."""
    n_keys = n_values = 0
    mismatches: list[Mismatch] = []
    for view_name, per_key in expected.items():
        keys = sorted(per_key)
        for start in range(0, len(keys), batch):
            chunk = keys[start : start + batch]
            for key, row in zip(chunk, read(view_name, chunk), strict=True):
                n_keys += 1
                for feature, value in per_key[key].items():
                    n_values += 1
                    if not same(value, row.get(feature)):
                        mismatches.append(
                            Mismatch(view_name, key, feature, value, row.get(feature))
                        )
    return n_keys, n_values, mismatches
