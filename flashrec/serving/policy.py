"""Pure decisions of the read path: tier, fallback chain, stock filter, A/B, impressions.

WHY pure: every rule that decides what a shopper sees is here, with no Redis, clock or
framework, so each one is unit-tested in microseconds and the read API stays a thin shell
(read Redis once, call ``select``, write bytes). Time and sold-out sets come in as
arguments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

TIERS = ("personalized", "content", "segment")
#: Where an answer came from, best first (the order of the fallback chain).
SOURCES = ("cache", "last_known_good", "segment", "popularity")
PERSONALIZED_MIN_INTERACTIONS = 10


class RankedList(Protocol):
    """What ``select`` needs of a cached list (``cache.CachedList`` satisfies it)."""

    items: tuple[str, ...]
    scores: tuple[float, ...]
    model_version: str
    computed_at: int
    tier: str


def tier_for(n_interactions: int, known: bool) -> str:
    """The cold-start tier a scorer should compute for a shopper.

    Anonymous shoppers with no interactions get segment heuristics; 1-9 interactions are too
    few for collaborative signals, so content-based; 10+ personalized. The tier follows the
    count, so a growing session moves up by itself at its next rescoring.
    """
    if n_interactions >= PERSONALIZED_MIN_INTERACTIONS:
        return "personalized"
    if n_interactions >= 1:
        return "content"
    return "segment" if not known else "content"


#: Scorer and API hosts' clocks differ a little: a list "from the future" by less is fresh.
CLOCK_SKEW_MS = 60_000


def is_fresh(cached: RankedList | None, now_ms: int, max_age_ms: int) -> bool:
    """A list is usable while younger than ``max_age_ms`` (a dead scorer shows up here)."""
    return cached is not None and -CLOCK_SKEW_MS <= now_ms - cached.computed_at <= max_age_ms


# --- A/B --------------------------------------------------------------------------------


def bucket(shopper: str, salt: str = "flashrec-ab") -> float:
    """Deterministic position of a shopper in [0, 1): same shopper, same variant, every
    worker, every restart (no assignment table to store)."""
    digest = hashlib.blake2b(f"{salt}:{shopper}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def assign_variant(
    shopper: str,
    shares: Mapping[str, float],
    shadow: Iterable[str] = (),
    default: str = "champion",
    salt: str = "flashrec-ab",
) -> str:
    """Variant served to ``shopper``: cumulative shares in variant-name order.

    Shadow variants are removed before the walk, so they can never be served even if an
    operator gave them a share. Name order is fixed, so raising one variant's share only
    moves shoppers from its neighbour instead of reshuffling everyone.
    """
    hidden = set(shadow)
    live = [(v, s) for v, s in sorted(shares.items()) if s > 0 and v not in hidden]
    total = sum(s for _, s in live)
    if total <= 0:
        return default
    point = bucket(shopper, salt) * total
    acc = 0.0
    for variant, share in live:
        acc += share
        if point < acc:
            return variant
    return live[-1][0]


# --- the fallback chain -----------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What to serve and why. ``padded`` counts items taken from later sources."""

    items: tuple[str, ...]
    scores: tuple[float, ...]
    source: str
    tier: str
    model_version: str
    age_ms: int | None
    padded: int


def _available(
    cached: RankedList | None,
    sold_out: set[str] | frozenset[str],
    exclude: set[str],
    limit: int,
) -> list[tuple[str, float]]:
    """The first ``limit`` in-stock, not excluded (item, score) pairs of a list.

    ``limit = k`` is always enough: a later source can repeat at most the items already
    taken, so its first k usable entries hold every new item the answer can still need.
    """
    out: list[tuple[str, float]] = []
    if cached is None:
        return out
    for item, score in zip(cached.items, cached.scores, strict=False):
        if item not in sold_out and item not in exclude:
            out.append((item, score))
            if len(out) >= limit:
                break
    return out


def interleave(
    lists: Sequence[RankedList | None],
    sold_out: set[str] | frozenset[str] = frozenset(),
    exclude: set[str] | frozenset[str] = frozenset(),
    limit: int | None = None,
) -> list[tuple[str, float]]:
    """Round-robin merge of segment lists (first list leads), without duplicates: a shopper
    matching several segments sees a bit of each instead of only the first. Stops after
    ``limit`` usable items (the read path needs k, not the whole merge)."""
    present = [lst for lst in lists if lst is not None and lst.items]
    out: list[tuple[str, float]] = []
    seen: set[str] = set()
    depth = max((len(lst.items) for lst in present), default=0)
    for rank in range(depth):
        for lst in present:
            if rank < len(lst.items):
                item = lst.items[rank]
                if item in seen or item in sold_out or item in exclude:
                    continue
                seen.add(item)
                out.append((item, lst.scores[rank] if rank < len(lst.scores) else 0.0))
                if limit is not None and len(out) >= limit:
                    return out
    return out


def select(
    *,
    k: int,
    now_ms: int,
    max_age_ms: int,
    lkg_max_age_ms: int,
    current: RankedList | None = None,
    lkg: RankedList | None = None,
    segments: Sequence[RankedList | None] = (),
    popular: RankedList | None = None,
    sold_out: set[str] | frozenset[str] = frozenset(),
    exclude: Iterable[str] = (),
    anonymous: bool = False,
) -> Decision:
    """Walk the chain cache -> last-known-good -> segment -> popularity.

    The first source with at least one in-stock item decides ``source``/``tier``; later
    sources pad the answer up to ``k`` items (an empty or short answer is a bug while the
    catalog has items). Sold-out and excluded items (e.g. the product being viewed) are
    dropped from every source at read time, even when a cached list still holds them.
    Segment lists are only a primary source for anonymous shoppers; for known shoppers
    without a list, popularity is the honest answer.
    """
    excl = set(exclude)
    chain: list[tuple[str, str, str, int | None, list[tuple[str, float]]]] = []
    if current is not None and is_fresh(current, now_ms, max_age_ms):
        chain.append(
            (
                "cache",
                current.tier,
                current.model_version,
                now_ms - current.computed_at,
                _available(current, sold_out, excl, k),
            )
        )
    if lkg is not None and is_fresh(lkg, now_ms, lkg_max_age_ms):
        chain.append(
            (
                "last_known_good",
                lkg.tier,
                lkg.model_version,
                now_ms - lkg.computed_at,
                _available(lkg, sold_out, excl, k),
            )
        )
    seg = interleave(segments, sold_out, excl, k)
    if anonymous:
        chain.append(("segment", "segment", "segment", None, seg))
    pop = _available(popular, sold_out, excl, k)
    pop_version = popular.model_version if popular is not None else "none"
    chain.append(("popularity", "segment" if anonymous else "popularity", pop_version, None, pop))
    if not anonymous:
        chain.append(("segment", "segment", "segment", None, seg))

    # Nothing in stock anywhere: report popularity (the last resort) with what it has.
    primary = next((c for c in chain if c[4]), next(c for c in chain if c[0] == "popularity"))
    source, tier, version, age, first = primary
    items: list[str] = []
    scores: list[float] = []
    seen: set[str] = set()
    padded = 0
    for c in chain[chain.index(primary) :]:
        for item, score in c[4]:
            if len(items) >= k:
                break
            if item in seen:
                continue
            seen.add(item)
            items.append(item)
            scores.append(float(score))
            if c is not primary:
                padded += 1
    return Decision(tuple(items), tuple(scores), source, tier, version, age, padded)


# --- impressions and attribution --------------------------------------------------------


@dataclass(frozen=True)
class Impression:
    """One list shown (``served``) or only computed for a shadow variant (not served)."""

    request_id: str
    shopper: str
    variant: str
    model_version: str
    source: str
    items: tuple[str, ...]
    served: bool
    ts_ms: int
