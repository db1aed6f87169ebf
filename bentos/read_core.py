"""The storefront read path without any web framework: one Redis round trip, then policy.

WHY framework-free: the same object serves the BentoML service (``read_api.py``) and the
bare-ASGI baseline (``bench/bare_asgi.py``), so a benchmark of the two measures only the
framework's overhead. Imports: stdlib, orjson, redis-py and ``flashrec.serving`` (no
training, Spark, Flink or model code: the read path never runs a model).

Why one module of ~460 lines: the whole request path (Lua round trip, fallback chain, A/B,
impressions) in one place on purpose: it is the latency-critical code, read top to bottom.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bentos.read_query import Query
from flashrec.serving import keys
from flashrec.serving.cache import (
    LIST_FORMAT_LUA,
    decode_list,
    impression_fields,
    parse_ab_config,
)
from flashrec.serving.policy import Decision, Impression, assign_variant, select
from flashrec.settings import Settings, default_of

log = logging.getLogger(__name__)

# One round trip: GET the candidate lists in fallback order and check their ids against the
# sold-out set inside Redis. Ids and ``computed_at`` (for the freshness of the first two
# groups) are read with the list format's own functions (``cache.LIST_FORMAT_LUA``).
# Lists come in groups (the fallback chain; segment lists form one group because they are
# interleaved); once the groups read so far hold ``need`` in-stock ids, later groups are not
# read at all (returned as 0), which spares Redis most SMISMEMBER work on the common path.
# KEYS[1] = sold-out set, KEYS[2..] = lists then shadow lists (never checked).
# ARGV[1] = need, ARGV[2] / ARGV[3] = oldest usable computed_at of group 1 / group 2,
# ARGV[4] = number of shadow keys, ARGV[5] = group digit of each non-shadow list key, as one
# string ("1234": fewer arguments to pack per request).
# Returns one value per list key (bulk, nil = missing, 0 = skipped), then the sold-out ids.
READ_LUA = (
    LIST_FORMAT_LUA
    + """
local need = tonumber(ARGV[1])
local n_shadow = tonumber(ARGV[4])
local last = #KEYS - n_shadow
local out, sold = {}, {}
local any_sold = redis.call('SCARD', KEYS[1]) > 0
local have, group = 0, 0
for i = 2, #KEYS do
  local g = (i <= last) and (string.byte(ARGV[5], i - 1) - 48) or -1
  if g ~= group and g ~= -1 then
    if have >= need then g = -2 end
    group = g
  end
  if i <= last and group == -2 then
    out[i - 1] = 0
  else
    local v = redis.call('GET', KEYS[i])
    out[i - 1] = v or false
    if v and i <= last then
      local usable = true
      if g == 1 or g == 2 then
        local ts = list_computed_at(v)
        usable = ts ~= nil and ts >= tonumber(ARGV[1 + g])
      end
      if usable then
        local ids = list_ids(v)
        if any_sold and #ids > 0 then
          local flags = redis.call('SMISMEMBER', KEYS[1], unpack(ids))
          for j = 1, #ids do
            if flags[j] == 1 then sold[#sold + 1] = ids[j] else have = have + 1 end
          end
        else
          have = have + #ids
        end
      end
    end
  end
end
out[#KEYS] = sold
return out
"""
)


# Impressions of one flush in a single command (redis-py packs and parses each pipelined
# command in Python: N XADDs cost N times that; one script call costs it once).
# ARGV[1] = maxlen, ARGV[2] = fields per impression, then the flattened field/value pairs.
FLUSH_LUA = """
local step = tonumber(ARGV[2]) * 2
for i = 3, #ARGV, step do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, i, i + step - 1))
end
return (#ARGV - 2) / step
"""

_SHARED_DECODED: dict[bytes, Any] = {}


def decode_shared(raw: bytes | None) -> Any:
    """``decode_list`` memoised by value, for lists many shoppers share (popularity and
    segments): the same bytes come back on most requests, so they are parsed once."""
    if raw is None:
        return None
    hit = _SHARED_DECODED.get(raw)
    if hit is None:
        if len(_SHARED_DECODED) >= 256:  # bounded: replaced lists age out wholesale
            _SHARED_DECODED.clear()
        hit = _SHARED_DECODED[raw] = decode_list(raw)
    return hit


@dataclass(frozen=True)
class ServingConfig:
    """Read-path knobs: ``Settings``' ``serving_*`` fields (defaults written there), plus
    the read path's own constants."""

    redis_url: str = default_of("redis_url")
    max_age_s: float = default_of("serving_max_age_s")
    lkg_max_age_s: float = default_of("serving_lkg_max_age_s")
    redis_timeout_ms: float = default_of("serving_redis_timeout_ms")
    default_variant: str = default_of("serving_default_variant")
    ab_refresh_s: float = default_of("serving_ab_refresh_s")
    ab_salt: str = "flashrec-ab"
    impressions_maxlen: int = default_of("serving_impressions_maxlen")
    impressions_flush_ms: float = 100.0
    redis_pool_size: int = 64
    recent_lists: int = 10_000

    @classmethod
    def from_settings(cls, settings: Settings) -> ServingConfig:
        base = cls(redis_url=settings.redis_url)
        overrides = {
            f: getattr(settings, f"serving_{f}")
            for f in base.__dataclass_fields__
            if f != "redis_url" and hasattr(settings, f"serving_{f}")
        }
        return cls(**{**base.__dict__, **overrides})


Observer = Callable[[Decision, str, float, bool], None]


class ReadPath:
    """Answers one query with one Redis round trip; keeps A/B config, a popularity copy and
    the impression buffer in process, refreshed by background tasks (off the request path).
    """

    def __init__(self, config: ServingConfig, observer: Observer | None = None) -> None:
        self.config = config
        self.observer = observer
        self.redis: aioredis.Redis | None = None
        self._script: Any = None
        self._flush_script: Any = None
        self.shares: dict[str, float] = {}
        self.shadow: frozenset[str] = frozenset()
        self.local_popular = None
        self.local_sold_out: frozenset[str] = frozenset()
        self._buffer: list[dict[str, str]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._down_until = 0.0
        self._failures = 0
        self._timeout_s = config.redis_timeout_ms / 1000.0
        self._recent: dict[tuple[str, str], Any] = {}  # insertion-ordered, bounded
        self._seq = 0
        self._rid_prefix = f"{os.getpid():x}-{int(time.time()):x}-"
        self.dropped_impressions = 0

    async def start(self) -> None:
        """Open one connection pool per worker and start the refreshers."""
        timeout = self._timeout_s
        self.redis = aioredis.Redis.from_url(
            self.config.redis_url,
            socket_timeout=None,  # the hot path bounds its own wait (see _read)
            socket_connect_timeout=max(timeout, 0.2),
            max_connections=self.config.redis_pool_size,
        )
        self._script = self.redis.register_script(READ_LUA)
        self._flush_script = self.redis.register_script(FLUSH_LUA)
        with contextlib.suppress(RedisError, OSError):
            await self.refresh()
        # Everything imported so far (BentoML, Starlette, pydantic, OpenTelemetry...) lives as
        # long as the process: move it out of the collector's reach, so a full collection
        # walks only request garbage instead of pausing a worker for tens of milliseconds
        # (a tail-latency source seen only under the framework's much larger heap).
        gc.collect()
        gc.freeze()
        self._tasks = [
            asyncio.create_task(self._every(self.config.ab_refresh_s, self.refresh)),
            asyncio.create_task(
                self._every(self.config.impressions_flush_ms / 1000.0, self.flush_impressions)
            ),
        ]

    async def redis_ok(self, timeout_s: float = 0.1) -> bool:
        """Readiness: a PING answered within ``timeout_s`` (the read path can still serve
        from process memory without Redis, but a balancer should prefer a pod that has it)."""
        if self.redis is None:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                return bool(await self.redis.ping())
        except (TimeoutError, RedisError, OSError):
            return False

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await self.flush_impressions()
        if self.redis is not None:
            await self.redis.aclose()

    async def _every(self, period: float, fn: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                async with asyncio.timeout(max(period, 1.0)):
                    await fn()
            except (TimeoutError, RedisError, OSError) as exc:
                log.warning("background refresh failed (next tick retries): %r", exc)

    async def refresh(self) -> None:
        """A/B shares, shadow set, popularity and sold-out copies: one pipeline per second.
        The copies only serve when Redis itself is unreachable."""
        assert self.redis is not None
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.AB_SHARES)
        pipe.smembers(keys.AB_SHADOW)
        pipe.get(keys.POPULAR)
        pipe.smembers(keys.SOLDOUT)
        raw_shares, raw_shadow, popular, sold = await pipe.execute()
        self.shares, self.shadow = parse_ab_config(raw_shares, raw_shadow)
        # Keep the last good copy if the key vanished: it is the answer of last resort.
        self.local_popular = decode_list(popular) or self.local_popular
        self.local_sold_out = frozenset(x.decode() for x in sold)

    async def flush_impressions(self) -> None:
        """Impressions go out in batches (one script call per ~100 ms), not one write per
        request; at most ~100 ms of them are lost if a worker dies."""
        if not self._buffer or self.redis is None:
            return
        batch, self._buffer = self._buffer, []
        for start in range(0, len(batch), 1000):  # bounded script runs: Redis stays responsive
            chunk = batch[start : start + 1000]
            args: list[str | int] = [self.config.impressions_maxlen, len(chunk[0])]
            for fields in chunk:
                for pair in fields.items():
                    args.extend(pair)
            try:
                await self._flush_script(keys=[keys.IMPRESSIONS], args=args)
            except BaseException:  # errors and cancellation (timeout) alike: count the loss
                self.dropped_impressions += len(batch) - start
                raise

    def _log(self, imp: Impression) -> None:
        if len(self._buffer) >= 50_000:  # Redis away for long: drop, never grow unbounded
            self.dropped_impressions += 1
            return
        self._buffer.append(impression_fields(imp))

    def request_id(self) -> str:
        self._seq += 1
        return f"{self._rid_prefix}{self._seq:x}"

    def _decide(
        self, q: Query, values: list[Any], n_seg: int, now: int, exclude: tuple[str, ...]
    ) -> tuple[Decision, Any]:
        cfg = self.config

        def dec(raw: Any, shared: bool = False) -> Any:
            if raw is None or raw == 0:
                return None
            return decode_shared(raw) if shared else decode_list(raw)

        sold = frozenset(x.decode() for x in values[-1])
        popular = dec(values[2], shared=True)
        if values[2] is None:
            # Key vanished: the in-process copy stands in; its ids were not checked by
            # the script, so filter them with the last sold-out snapshot (<= ~1 s old).
            popular = self.local_popular
            sold = sold | self.local_sold_out
        current = dec(values[0])
        decision = select(
            k=q.k,
            now_ms=now,
            max_age_ms=int(cfg.max_age_s * 1000),
            lkg_max_age_ms=int(cfg.lkg_max_age_s * 1000),
            current=current,
            lkg=dec(values[1]),
            popular=popular,
            segments=[dec(v, shared=True) for v in values[3 : 3 + n_seg]],
            sold_out=sold,
            exclude=exclude,
            anonymous=q.anonymous,
        )
        return decision, current

    async def _read(
        self, q: Query, variant: str, shadows: list[str], segs: list[str], need: int, now: int
    ) -> list[Any] | None:
        """Values of [rec, lkg, popular, *segs, *shadows] (None = missing, 0 = skipped)
        followed by the sold-out ids; None when Redis cannot answer."""
        rec, lkg = keys.rec_list(variant, q.shopper), keys.last_known_good(variant, q.shopper)
        # fallback order (see policy.select): anonymous -> segments before popularity
        if q.anonymous:
            ordered = [rec, lkg, *segs, keys.POPULAR]
            groups = "12" + "3" * len(segs) + "4"
        else:
            ordered = [rec, lkg, keys.POPULAR, *segs]
            groups = "123" + "4" * len(segs)
        shadow_keys = [keys.rec_list(s, q.shopper) for s in shadows]
        cfg = self.config
        args = [
            need,
            now - int(cfg.max_age_s * 1000),
            now - int(cfg.lkg_max_age_s * 1000),
            len(shadow_keys),
            groups,
        ]
        if time.monotonic() < self._down_until:
            return None
        try:
            # asyncio.timeout here instead of redis-py's socket_timeout: the latter wraps
            # every send in asyncio.wait_for, a new Task per command.
            async with asyncio.timeout(self._timeout_s):
                raw = await self._script(keys=[keys.SOLDOUT, *ordered, *shadow_keys], args=args)
            self._failures = 0
        except (TimeoutError, RedisError, OSError) as exc:
            # Several in a row: stop asking for half a second so requests do not queue on a
            # sick Redis (one slow reply on a busy event loop is not enough).
            self._failures += 1
            if self._failures >= 3:
                self._down_until = time.monotonic() + 0.5
            log.warning("redis read failed, serving from process memory: %r", exc)
            return None
        by_key = dict(zip(ordered, raw, strict=False))
        n = len(ordered)
        return [
            by_key[rec],
            by_key[lkg],
            by_key[keys.POPULAR],
            *(by_key[k] for k in segs),
            *raw[n : n + len(shadow_keys)],
            raw[-1],
        ]

    async def answer(self, q: Query, request_id: str | None = None) -> bytes:
        """JSON bytes of the answer. Never raises for Redis trouble: degrades instead."""
        t0 = time.perf_counter()
        cfg = self.config
        rid = request_id or self.request_id()
        variant = assign_variant(
            q.shopper, self.shares, self.shadow, cfg.default_variant, cfg.ab_salt
        )
        shadows = sorted(self.shadow)
        segs: list[str] = []
        if q.item_id:
            segs.append(keys.segment("item", q.item_id))
        if q.category:
            segs.append(keys.segment("category", q.category))
        if q.anonymous:
            if q.device:
                segs.append(keys.segment("device", q.device))
            if q.referrer:
                segs.append(keys.segment("referrer", q.referrer))
            segs.append(keys.segment("tod", keys.tod_bucket(time.gmtime().tm_hour)))
            segs.append(keys.TRENDING)
        now = int(time.time() * 1000)
        exclude = (q.item_id,) if q.item_id else ()
        need = q.k + len(exclude)
        values = await self._read(q, variant, shadows, segs, need, now)
        decision = None
        recent_key = (variant, q.shopper)
        degraded = values is None
        if values is not None:
            decision, current = self._decide(q, values, len(segs), now, exclude)
            if len(decision.items) < q.k and any(v == 0 for v in values[: 3 + len(segs)]):
                # Lists overlapped, so the early stop was too early: read everything (rare).
                values = await self._read(q, variant, shadows, segs, 1 << 30, now)
                degraded = values is None
                if values is not None:
                    decision, current = self._decide(q, values, len(segs), now, exclude)
        if values is None:
            decision = select(
                k=q.k,
                now_ms=now,
                max_age_ms=0,
                lkg_max_age_ms=int(cfg.lkg_max_age_s * 1000),
                lkg=self._recent.get(recent_key),
                popular=self.local_popular,
                sold_out=self.local_sold_out,
                exclude=exclude,
                anonymous=q.anonymous,
            )
        else:
            assert decision is not None
            if current is not None and decision.source == "cache":
                # This worker's own last-known-good, for when Redis cannot be reached.
                self._recent[recent_key] = current
                if len(self._recent) > cfg.recent_lists:
                    self._recent.pop(next(iter(self._recent)))
            n_seg = len(segs)
            for name, raw in zip(shadows, values[3 + n_seg : -1], strict=True):
                shadow_list = decode_list(raw)
                if shadow_list is not None:
                    self._log(
                        Impression(
                            rid,
                            q.shopper,
                            name,
                            shadow_list.model_version,
                            "shadow",
                            shadow_list.items[: q.k],
                            False,
                            now,
                        )
                    )
        self._log(
            Impression(
                rid,
                q.shopper,
                variant,
                decision.model_version,
                decision.source,
                decision.items,
                True,
                now,
            )
        )
        body = orjson.dumps(
            {
                "request_id": rid,
                "shopper": q.shopper,
                "variant": variant,
                "model_version": decision.model_version,
                "tier": decision.tier,
                "source": decision.source,
                "age_ms": decision.age_ms,
                "degraded": degraded,
                "padded": decision.padded,
                "items": [
                    {"item_id": i, "score": s}
                    for i, s in zip(decision.items, decision.scores, strict=True)
                ],
            }
        )
        if self.observer is not None:
            self.observer(decision, variant, time.perf_counter() - t0, degraded)
        return body
