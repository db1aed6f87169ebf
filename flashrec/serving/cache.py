"""Cached lists: their wire format, the writer helpers the scorer calls, stock and A/B state.

The list format is defined here and only here, for both languages that read it: Python
(``encode_list`` / ``decode_list`` / ``split_ids`` / ``computed_at_of``) and the Lua
scripts that run inside Redis (``LIST_FORMAT_LUA``: the read path's sold-out check and
the freshness-guarded write). A value is three lines::

    <computed_at, epoch ms>\n<item_id>,<item_id>,...\n<JSON header>

The two fields Redis needs come first, as plain text, so the scripts read them with plain
string operations and never decode JSON; the header holds the rest (``scores`` in the
same order, ``model_version``, ``variant``, ``tier``, ``n_interactions``, ``trace``).
Item ids never hold a comma or newline (``flashrec.events.Identifier``).

Writers use these helpers (redis-py, synchronous: batch jobs). Impressions' stream format
is here too: the read API writes it, attribution (``flashrec.attribution``) reads it.

Why one module of ~380 lines: the cached-list contract (both languages) and every writer
helper: what readers and writers must agree on byte for byte stays together.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import orjson
import redis

from flashrec.serving import keys
from flashrec.serving.policy import TIERS, Impression
from flashrec.settings import default_of

MAX_LIST_LEN = 500  # bounds the Lua sold-out check (one SMISMEMBER per list)
DEFAULT_LIST_TTL_S = default_of("scorer_list_ttl_s")
DEFAULT_LKG_TTL_S = default_of("scorer_lkg_ttl_s")
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
    #: When each step of the path that produced this list happened (epoch ms; keys in
    #: ``flashrec.scoring.trace``): how fresh it is, and where the time went. Optional.
    trace: dict[str, int] | None = None

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


#: The list format's two plain fields, read inside Redis: every script that touches a
#: list value starts with these functions (nil / {} for a value that is not a list).
LIST_FORMAT_LUA = """
local function list_computed_at(v)
  local nl = string.find(v, '\\n', 1, true)
  return nl and tonumber(string.sub(v, 1, nl - 1))
end
local function list_ids(v)
  local ids = {}
  local a = string.find(v, '\\n', 1, true)
  if not a then return ids end
  local b = string.find(v, '\\n', a + 1, true)
  for id in string.gmatch(string.sub(v, a + 1, (b or (#v + 1)) - 1), '[^,]+') do
    ids[#ids + 1] = id
  end
  return ids
end
"""


def encode_list(cached: CachedList) -> bytes:
    """``computed_at\\nids\\nheader`` (the module's docstring says why in this order)."""
    cached.validate()
    header = {
        "scores": list(cached.scores),
        "model_version": cached.model_version,
        "variant": cached.variant,
        "tier": cached.tier,
        "n_interactions": cached.n_interactions,
    }
    if cached.trace:
        header["trace"] = cached.trace
    return b"%d\n%s\n%s" % (
        cached.computed_at,
        ",".join(cached.items).encode(),
        orjson.dumps(header),
    )


def split_ids(raw: bytes) -> list[str]:
    """Only the item ids of an encoded list (cheap: no JSON)."""
    parts = raw.split(b"\n", 2)
    return parts[1].decode().split(",") if len(parts) == 3 and parts[1] else []


def computed_at_of(raw: bytes | None) -> int:
    """Only the ``computed_at`` of an encoded list (0 for a missing or corrupt value)."""
    head = raw.partition(b"\n")[0] if raw else b""
    return int(head) if head.isdigit() else 0


def decode_list(raw: bytes | None) -> CachedList | None:
    """Parse an encoded list; None for a missing or corrupt value (corrupt = treated missing,
    so that one bad write degrades to the fallback chain instead of failing requests)."""
    if not raw:
        return None
    try:
        stamp, head, body = raw.split(b"\n", 2)
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
            computed_at=int(stamp),
            tier=str(header.get("tier", "segment")),
            n_interactions=int(header.get("n_interactions", 0)),
            trace=header.get("trace") if isinstance(header.get("trace"), dict) else None,
        )
    except (ValueError, TypeError, orjson.JSONDecodeError):
        return None


# Atomic "current becomes last-known-good, new becomes current": a reader never sees a
# shopper without both, and a failed scorer run (which writes nothing) leaves both intact.
# Writes never go back in time: the current list's ``computed_at`` is read inside the
# script (``list_computed_at``, as the read path reads it), and an older list is refused, so a
# slow consumer's late write cannot replace a fresher one. Equal times are replaced (the
# later writer wins a tie; a replay of the same list changes nothing). A current value
# without a readable ``computed_at`` (corrupt) counts as older than anything.
# KEYS[1] = current, KEYS[2] = last-known-good; ARGV[1] = new value, ARGV[2] / ARGV[3] =
# their TTLs, ARGV[4] = the new value's computed_at. Returns a ``ListWrite``.
_ROTATE_LUA = (
    LIST_FORMAT_LUA
    + """
local old = redis.call('GET', KEYS[1])
if old then
  local ts = list_computed_at(old)
  if ts and ts > tonumber(ARGV[4]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if old then redis.call('SET', KEYS[2], old, 'EX', ARGV[3]) end
return old and 2 or 1
"""
)


class ListWrite(IntEnum):
    """What ``write_user_list`` did (falsy only when nothing was written)."""

    REFUSED_OLDER = 0  # the cached list is newer: left as it was
    WRITTEN = 1  # no list before: the new one is current, no last-known-good yet
    ROTATED = 2  # the previous list became last-known-good


def write_user_list(
    client: redis.Redis,
    shopper: str,
    cached: CachedList,
    *,
    ttl_s: int = DEFAULT_LIST_TTL_S,
    lkg_ttl_s: int = DEFAULT_LKG_TTL_S,
) -> ListWrite:
    """Store a shopper's new list for ``cached.variant``; the previous one becomes LKG,
    unless the cached list is newer (``computed_at``), which is then kept as it is.

    ``shopper`` is ``keys.shopper_ref("u", user_id)`` or ``keys.shopper_ref("s",
    session_id)``. Only write lists you consider good (non-empty, from a healthy model): the
    read API falls back to the LKG when the current list is stale, missing or all sold out.
    Given a pipeline, the EVAL is queued and its ``ListWrite`` value comes from ``execute``.
    """
    if not cached.items:
        raise ValueError("refusing to cache an empty list: it would hide the last good one")
    outcome = client.eval(
        _ROTATE_LUA,
        2,
        keys.rec_list(cached.variant, shopper),
        keys.last_known_good(cached.variant, shopper),
        encode_list(cached),
        ttl_s,
        lkg_ttl_s,
        cached.computed_at,
    )
    if isinstance(outcome, int):
        return ListWrite(outcome)
    return outcome  # a pipeline: queued


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


def read_ab_stats(client: redis.Redis) -> dict[str, dict[str, float]]:
    """Per-variant totals and rates of the variants now configured (shares, shadow, and
    the two rollout arms): CTR (clicks / impressions) and purchases per impression, from
    the attribution worker's exact counters. No keyspace scan: the variants are known."""
    shares, shadow = read_ab_config(client)
    variants = sorted({*shares, *shadow, "champion", "challenger"})
    pipe = client.pipeline(transaction=False)
    for v in variants:
        pipe.hgetall(keys.ab_stats(v))
    out: dict[str, dict[str, float]] = {}
    for v, raw_row in zip(variants, pipe.execute(), strict=True):
        if not raw_row:
            continue
        raw = {_s(a): float(_s(b)) for a, b in raw_row.items()}
        imps = raw.get("impressions", 0.0)
        out[v] = {
            "impressions": imps,
            "clicks": raw.get("clicks", 0.0),
            "carts": raw.get("carts", 0.0),
            "purchases": raw.get("purchases", 0.0),
            "revenue": round(raw.get("revenue", 0.0), 2),
            "ctr": raw.get("clicks", 0.0) / imps if imps else 0.0,
            "conversion_rate": raw.get("purchases", 0.0) / imps if imps else 0.0,
            "revenue_per_impression": raw.get("revenue", 0.0) / imps if imps else 0.0,
        }
    return out


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
