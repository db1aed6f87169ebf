"""Cached lists: their wire format, the writer helpers the scorer calls, stock and A/B state.

WHY here and not in the scorer: the read API and every writer must agree byte for byte on
the list format (see ``keys``). Writers use these helpers (redis-py, synchronous: batch
jobs); the read API only uses ``decode_list``/``split_ids``. The attribution aggregator
(``run_attribution``) lives here too because it is I/O around the pure
``policy.attribute`` function.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis

from flashrec.serving import keys
from flashrec.serving.policy import (
    TIERS,
    AttributionState,
    Impression,
    attribute,
)

MAX_LIST_LEN = 500  # bounds the Lua sold-out check (one SMISMEMBER per list)
DEFAULT_LIST_TTL_S = 86_400
DEFAULT_LKG_TTL_S = 7 * 86_400
DEFAULT_IMPRESSIONS_MAXLEN = 1_000_000


@dataclass(frozen=True)
class CachedList:
    """One ranked list as the scorer wrote it. ``computed_at`` is epoch milliseconds."""

    items: tuple[str, ...]
    scores: tuple[float, ...]
    model_version: str
    variant: str
    computed_at: int
    tier: str
    n_interactions: int = 0

    def validate(self) -> CachedList:
        """Writer-side checks (the reader skips them: it must stay cheap and total)."""
        if len(self.items) != len(self.scores):
            raise ValueError("items and scores must have the same length")
        if self.tier not in TIERS:
            raise ValueError(f"tier must be one of {TIERS}, got {self.tier!r}")
        if any("," in i or "\n" in i or not i for i in self.items):
            raise ValueError("item ids must be non-empty and hold no comma or newline")
        if len(self.items) > MAX_LIST_LEN:
            raise ValueError(f"a cached list holds at most {MAX_LIST_LEN} items")
        return self


def now_ms() -> int:
    return int(time.time() * 1000)


def encode_list(cached: CachedList) -> bytes:
    """``ids\\nheader`` (see ``keys``): ids first so Lua can read them without JSON."""
    cached.validate()
    header = {
        "scores": list(cached.scores),
        "model_version": cached.model_version,
        "variant": cached.variant,
        "computed_at": cached.computed_at,
        "tier": cached.tier,
        "n_interactions": cached.n_interactions,
    }
    return ",".join(cached.items).encode() + b"\n" + orjson.dumps(header)


def split_ids(raw: bytes) -> list[str]:
    """Only the item ids of an encoded list (cheap: no JSON)."""
    head, _, _ = raw.partition(b"\n")
    return head.decode().split(",") if head else []


def decode_list(raw: bytes | None) -> CachedList | None:
    """Parse an encoded list; None for a missing or corrupt value (corrupt = treated missing,
    so that one bad write degrades to the fallback chain instead of failing requests)."""
    if not raw:
        return None
    try:
        head, _, body = raw.partition(b"\n")
        header: dict[str, Any] = orjson.loads(body)
        items = tuple(head.decode().split(",")) if head else ()
        scores = tuple(header.get("scores") or (0.0,) * len(items))
        if len(scores) != len(items):
            return None
        return CachedList(
            items=items,
            scores=scores,
            model_version=str(header.get("model_version", "")),
            variant=str(header.get("variant", "")),
            computed_at=int(header.get("computed_at", 0)),
            tier=str(header.get("tier", "segment")),
            n_interactions=int(header.get("n_interactions", 0)),
        )
    except (ValueError, TypeError, orjson.JSONDecodeError):
        return None


# Atomic "current becomes last-known-good, new becomes current": a reader never sees a
# shopper without both, and a failed scorer run (which writes nothing) leaves both intact.
_ROTATE_LUA = """
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if old then redis.call('SET', KEYS[2], old, 'EX', ARGV[3]) end
return old and 1 or 0
"""


def write_user_list(
    client: redis.Redis,
    shopper: str,
    cached: CachedList,
    *,
    ttl_s: int = DEFAULT_LIST_TTL_S,
    lkg_ttl_s: int = DEFAULT_LKG_TTL_S,
) -> bool:
    """Store a shopper's new list for ``cached.variant``; the previous one becomes LKG.

    ``shopper`` is ``keys.shopper_ref("u", user_id)`` or ``keys.shopper_ref("s",
    session_id)``. Only write lists you consider good (non-empty, from a healthy model): the
    read API falls back to the LKG when the current list is stale, missing or all sold out.
    Returns True when a previous list was rotated into the LKG slot.
    """
    if not cached.items:
        raise ValueError("refusing to cache an empty list: it would hide the last good one")
    rotated = client.eval(
        _ROTATE_LUA,
        2,
        keys.rec_list(cached.variant, shopper),
        keys.last_known_good(cached.variant, shopper),
        encode_list(cached),
        ttl_s,
        lkg_ttl_s,
    )
    return bool(rotated)


def write_segment_list(
    client: redis.Redis,
    key: str,
    items: Sequence[str],
    scores: Sequence[float] | None = None,
    *,
    model_version: str = "segment",
    computed_at: int | None = None,
) -> None:
    """Store a segment/popularity list under ``key`` (``keys.POPULAR``, ``keys.TRENDING`` or
    ``keys.segment(kind, value)``). No TTL: a popularity list never expires, it is only
    replaced, because it is the read path's last resort."""
    if not items:
        raise ValueError("refusing to cache an empty segment list")
    cached = CachedList(
        items=tuple(items),
        scores=tuple(scores) if scores is not None else tuple(float(-i) for i in range(len(items))),
        model_version=model_version,
        variant="",
        computed_at=now_ms() if computed_at is None else computed_at,
        tier="segment",
    )
    client.set(key, encode_list(cached))


def set_ab_shares(
    client: redis.Redis, shares: Mapping[str, float], shadow: Iterable[str] | None = None
) -> None:
    """Replace the A/B traffic shares (and, if given, the shadow set) atomically.

    Takes effect in every API worker within ~1 s (they re-read it in the background).
    """
    if not shares or any(s < 0 for s in shares.values()) or sum(shares.values()) <= 0:
        raise ValueError("shares must be non-negative with a positive sum")
    pipe = client.pipeline(transaction=True)
    pipe.delete(keys.AB_SHARES)
    pipe.hset(keys.AB_SHARES, mapping={k: float(v) for k, v in shares.items()})
    if shadow is not None:
        pipe.delete(keys.AB_SHADOW)
        shadow = list(shadow)
        if shadow:
            pipe.sadd(keys.AB_SHADOW, *shadow)
    pipe.execute()


def read_ab_config(client: redis.Redis) -> tuple[dict[str, float], frozenset[str]]:
    """Current shares and shadow variants (the read API's async copy does the same)."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.AB_SHARES)
    pipe.smembers(keys.AB_SHADOW)
    raw_shares, raw_shadow = pipe.execute()
    return parse_ab_config(raw_shares, raw_shadow)


def parse_ab_config(
    raw_shares: Mapping[Any, Any], raw_shadow: Iterable[Any]
) -> tuple[dict[str, float], frozenset[str]]:
    shares: dict[str, float] = {}
    for k, v in raw_shares.items():
        try:
            shares[_s(k)] = float(_s(v))
        except ValueError:
            continue
    return shares, frozenset(_s(x) for x in raw_shadow)


def mark_sold_out(client: redis.Redis, item_ids: Iterable[str]) -> None:
    """Add items to the sold-out set and zero their stock level (same names as the stream
    job). Items sold out here disappear from every answer at the next request."""
    ids = list(item_ids)
    if not ids:
        return
    pipe = client.pipeline(transaction=True)
    pipe.sadd(keys.SOLDOUT, *ids)
    pipe.hset(keys.STOCK, mapping=dict.fromkeys(ids, 0))
    pipe.execute()


def set_stock(client: redis.Redis, levels: Mapping[str, int]) -> None:
    """Write absolute stock levels and keep the sold-out set consistent with them."""
    if not levels:
        return
    pipe = client.pipeline(transaction=True)
    pipe.hset(keys.STOCK, mapping=dict(levels))
    out = [i for i, lvl in levels.items() if lvl <= 0]
    back = [i for i, lvl in levels.items() if lvl > 0]
    if out:
        pipe.sadd(keys.SOLDOUT, *out)
    if back:
        pipe.srem(keys.SOLDOUT, *back)
    pipe.execute()


def read_sold_out(client: redis.Redis, item_ids: Sequence[str] | None = None) -> set[str]:
    """The sold-out items among ``item_ids`` (or the whole set when None)."""
    if item_ids is None:
        return {_s(x) for x in client.smembers(keys.SOLDOUT)}
    if not item_ids:
        return set()
    flags = client.smismember(keys.SOLDOUT, list(item_ids))
    return {i for i, f in zip(item_ids, flags, strict=True) if f}


# --- impressions and attribution -------------------------------------------------------


def impression_fields(imp: Impression) -> dict[str, str]:
    """Stream entry fields of an impression (flat strings: readable with redis-cli)."""
    return {
        "request_id": imp.request_id,
        "shopper": imp.shopper,
        "variant": imp.variant,
        "model_version": imp.model_version,
        "source": imp.source,
        "items": ",".join(imp.items),
        "served": "1" if imp.served else "0",
        "ts": str(imp.ts_ms),
    }


def parse_impression(fields: Mapping[Any, Any]) -> Impression | None:
    f = {_s(k): _s(v) for k, v in fields.items()}
    try:
        return Impression(
            request_id=f["request_id"],
            shopper=f["shopper"],
            variant=f["variant"],
            model_version=f.get("model_version", ""),
            source=f.get("source", ""),
            items=tuple(x for x in f.get("items", "").split(",") if x),
            served=f.get("served", "1") == "1",
            ts_ms=int(f.get("ts", "0")),
        )
    except (KeyError, ValueError):
        return None


@dataclass
class AttributionAggregator:
    """Periodic job: read new impressions and events, attribute, add up per variant.

    WHY stateful: a click is attributed to the latest served impression of the same shopper
    that showed the item within ``window_ms``; the aggregator keeps those recent impressions
    in memory between runs and its stream cursors in Redis (``keys.AB_CURSOR``). Call
    ``run_once`` every few seconds (a Dagster sensor or a loop).
    """

    client: redis.Redis
    events_stream: str = "flashrec:events"
    window_ms: int = 30 * 60 * 1000
    state: AttributionState = field(default_factory=AttributionState)

    def run_once(self, count: int = 10_000) -> dict[str, dict[str, float]]:
        cursors = {_s(k): _s(v) for k, v in self.client.hgetall(keys.AB_CURSOR).items()}
        imp_id = cursors.get("impressions", "0")
        ev_id = cursors.get("events", "0")
        imps = self.client.xrange(
            keys.IMPRESSIONS, min="-" if imp_id == "0" else f"({imp_id}", count=count
        )
        evs = self.client.xrange(
            self.events_stream, min="-" if ev_id == "0" else f"({ev_id}", count=count
        )
        parsed_imps = [p for _, f in imps if (p := parse_impression(f))]
        parsed_evs = [_event_of(f) for _, f in evs]
        deltas = attribute(
            self.state, parsed_imps, [e for e in parsed_evs if e], window_ms=self.window_ms
        )
        pipe = self.client.pipeline(transaction=True)
        for variant, d in deltas.counters.items():
            for name, value in d.items():
                if isinstance(value, float):
                    pipe.hincrbyfloat(keys.ab_stats(variant), name, value)
                else:
                    pipe.hincrby(keys.ab_stats(variant), name, value)
        for variant, shoppers in deltas.shoppers.items():
            pipe.pfadd(keys.ab_shoppers(variant), *shoppers)
        for variant, shoppers in deltas.converters.items():
            pipe.pfadd(keys.ab_converters(variant), *shoppers)
        new_cursors = {}
        if imps:
            new_cursors["impressions"] = _s(imps[-1][0])
        if evs:
            new_cursors["events"] = _s(evs[-1][0])
        if new_cursors:
            pipe.hset(keys.AB_CURSOR, mapping=new_cursors)
        pipe.execute()
        return read_ab_stats(self.client)


def _event_of(fields: Mapping[Any, Any]) -> dict[str, Any] | None:
    """A storefront event as a dict from an event-log entry (``payload`` JSON), else None."""
    raw = fields.get(b"payload", fields.get("payload"))
    if raw is None:
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) and "event_type" in doc else None


def read_ab_stats(client: redis.Redis) -> dict[str, dict[str, float]]:
    """Per-variant totals and rates: CTR (clicks / impressions), conversion rate (shoppers
    who bought / shoppers shown), revenue per shopper session."""
    variants = {
        _s(k).rsplit(":", 1)[-1] for k in client.scan_iter(match=keys.PREFIX + "ab:stats:*")
    }
    out: dict[str, dict[str, float]] = {}
    for v in sorted(variants):
        raw = {_s(a): float(_s(b)) for a, b in client.hgetall(keys.ab_stats(v)).items()}
        shoppers = client.pfcount(keys.ab_shoppers(v))
        converters = client.pfcount(keys.ab_converters(v))
        imps = raw.get("impressions", 0.0)
        out[v] = {
            "impressions": imps,
            "clicks": raw.get("clicks", 0.0),
            "carts": raw.get("carts", 0.0),
            "purchases": raw.get("purchases", 0.0),
            "revenue": round(raw.get("revenue", 0.0), 2),
            "shoppers": float(shoppers),
            "ctr": raw.get("clicks", 0.0) / imps if imps else 0.0,
            "conversion_rate": converters / shoppers if shoppers else 0.0,
            "revenue_per_session": raw.get("revenue", 0.0) / shoppers if shoppers else 0.0,
        }
    return out


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
