"""Drift measures between a training window and a recent window, with their thresholds.

Thresholds (documented in README, "Adaptivity"):
- PSI (population stability index) per numeric feature, on deciles of the training
  window: < 0.1 stable, 0.1-0.25 moderate (warn), > 0.25 drift (retrain). The usual
  credit-scoring bands; they hold up for count features when bins are quantiles.
- KS two-sample statistic as a second opinion on continuous features (drift when the
  p-value < 0.01 and the statistic > 0.1, so huge samples do not flag tiny shifts).
- Catalog drift: share of recent traffic on items the model has no embedding for, and
  items whose traffic share jumped (viral): > 5% unknown-item traffic or any item with a
  share 10x its training share (and >= 1% of traffic, >= 30 events) triggers a retrain.
- Online decay: a variant's CTR below 80% of the model's own baseline CTR.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import special, stats

PSI_WARN = 0.1
PSI_DRIFT = 0.25
KS_STAT = 0.1
KS_P = 0.01
UNKNOWN_ITEM_SHARE = 0.05
VIRAL_RATIO = 10.0
VIRAL_MIN_SHARE = 0.01
VIRAL_MIN_EVENTS = 30
#: A retrain learns an unknown item from its own events: before the recent window holds
#: this many per unknown item (on average), a retrain on catalog drift would learn little.
#: Seen: a retrain at ~22 events per new item placed new items in all of its top 10 for a
#: sale's shoppers; one at a handful did not know them.
NEW_ITEM_MIN_EVENTS = 20
CTR_DECAY_RATIO = 0.8
_EPS = 1e-6


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected`` (quantile bins)."""
    expected = np.asarray(expected, dtype=float)
    actual = np.asarray(actual, dtype=float)
    if len(expected) == 0 or len(actual) == 0:
        raise ValueError("psi needs two non-empty samples")
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:  # constant feature: any change of value is a full shift
        same = np.mean(actual == expected[0])
        return 0.0 if same == 1.0 else float((1 - same) * np.log((1 - same + _EPS) / _EPS))
    edges[0], edges[-1] = -np.inf, np.inf
    e = np.histogram(expected, edges)[0] / len(expected) + _EPS
    a = np.histogram(actual, edges)[0] / len(actual) + _EPS
    # PSI = sum((a - e) * ln(a / e)): the symmetric Kullback-Leibler divergence of the bins.
    return float(np.sum(special.rel_entr(a, e) + special.rel_entr(e, a)))


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    ks_stat: float
    ks_p: float

    @property
    def level(self) -> str:
        if self.psi > PSI_DRIFT or (
            self.ks_p < KS_P and self.ks_stat > KS_STAT and self.psi > PSI_WARN
        ):
            return "drift"
        return "warn" if self.psi > PSI_WARN else "stable"


def feature_drift(
    train: Mapping[str, np.ndarray], recent: Mapping[str, np.ndarray]
) -> list[FeatureDrift]:
    """PSI and KS for every feature present in both windows."""
    out = []
    for name in sorted(set(train) & set(recent)):
        a, b = np.asarray(train[name], float), np.asarray(recent[name], float)
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        if len(a) == 0 or len(b) == 0:
            continue
        ks = stats.ks_2samp(a, b)
        out.append(FeatureDrift(name, psi(a, b), float(ks.statistic), float(ks.pvalue)))
    return out


@dataclass(frozen=True)
class CatalogDrift:
    unknown_item_share: float
    viral_items: list[str] = field(default_factory=list)
    unknown_events: int = 0  # recent events on items the model has no embedding for
    unknown_items: int = 0  # how many such items
    viral_known: int = 0  # viral items the model already knows

    @property
    def drifted(self) -> bool:
        return self.unknown_item_share > UNKNOWN_ITEM_SHARE or bool(self.viral_items)

    @property
    def events_per_unknown_item(self) -> float:
        return self.unknown_events / self.unknown_items if self.unknown_items else 0.0

    @property
    def learnable(self) -> bool:
        """Drift a retrain can learn from now: a known item gone viral, or unknown-item
        traffic with ``NEW_ITEM_MIN_EVENTS`` events per unknown item. Seen: a sale whose
        first minute reached the lake drifts at once (most recent traffic on new items),
        and a retrain then learns each new item from a handful of views."""
        if self.viral_known:
            return True
        return (
            self.unknown_item_share > UNKNOWN_ITEM_SHARE
            and self.events_per_unknown_item >= NEW_ITEM_MIN_EVENTS
        )


def catalog_drift(
    train_items: Sequence[str], recent_items: Sequence[str], known_items: set[str]
) -> CatalogDrift:
    """Traffic on items without embeddings, and items whose share jumped (went viral)."""
    if not recent_items:
        return CatalogDrift(0.0)
    recent_ids, recent_counts = np.unique(np.asarray(recent_items), return_counts=True)
    train_ids, train_counts = np.unique(np.asarray(train_items), return_counts=True)
    train_share = dict(
        zip(train_ids.tolist(), (train_counts / max(len(train_items), 1)).tolist(), strict=True)
    )
    total = len(recent_items)
    unknown_counts = [
        int(c) for i, c in zip(recent_ids, recent_counts, strict=True) if i not in known_items
    ]
    unknown = sum(unknown_counts)
    viral = []
    for item, count in zip(recent_ids.tolist(), recent_counts.tolist(), strict=True):
        share = count / total
        base = train_share.get(item, 0.0)
        enough = count >= VIRAL_MIN_EVENTS  # a few events of a rare item are noise
        if enough and share >= VIRAL_MIN_SHARE and share >= VIRAL_RATIO * max(base, _EPS):
            viral.append(item)
    return CatalogDrift(
        float(unknown / total),
        [str(i) for i in sorted(viral)],
        unknown_events=unknown,
        unknown_items=len(unknown_counts),
        viral_known=sum(1 for i in viral if i in known_items),
    )


def ctr_decayed(
    ctr: float, baseline_ctr: float, impressions: int, min_impressions: int = 500
) -> bool:
    """A variant's click-through fell below 80% of its own baseline, on enough traffic."""
    return (
        impressions >= min_impressions and baseline_ctr > 0 and ctr < CTR_DECAY_RATIO * baseline_ctr
    )


def candidate_positions(
    recommend: Callable[[list[list[str]], int], list[list[str]]],
    sessions: Sequence[Sequence[str]],
    k: int = 50,
) -> np.ndarray:
    """Where the item each shopper took next sits in the model's top ``k`` (k+1 = missed).

    Its distribution is the model's own view of the traffic: when shoppers turn to items
    the model does not rank, positions slide towards ``k+1`` before any metric is computed.
    """
    prefixes, targets = [], []
    for items in sessions:
        if len(items) >= 2:
            cut = max(1, len(items) // 2)
            prefixes.append(list(reversed(items[:cut])))
            targets.append(items[cut])
    if not prefixes:
        return np.empty(0)
    lists = recommend(prefixes, k)
    return np.array(
        [top.index(t) + 1 if t in top else k + 1 for top, t in zip(lists, targets, strict=True)],
        dtype=float,
    )


def candidate_drift(reference: np.ndarray, recent: np.ndarray) -> FeatureDrift | None:
    if len(reference) == 0 or len(recent) == 0:
        return None
    ks = stats.ks_2samp(reference, recent)
    return FeatureDrift(
        "candidate_position", psi(reference, recent), float(ks.statistic), float(ks.pvalue)
    )


@dataclass(frozen=True)
class OnlineDecay:
    """A variant's live CTR and conversion rate against the first figures it showed."""

    variant: str
    ctr: float
    baseline_ctr: float
    impressions: int
    conversion: float = 0.0
    baseline_conversion: float = 0.0

    @property
    def decayed(self) -> bool:
        return ctr_decayed(self.ctr, self.baseline_ctr, self.impressions) or ctr_decayed(
            self.conversion, self.baseline_conversion, self.impressions
        )
