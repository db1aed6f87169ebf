"""Incremental candidates between retrains: co-visitation and trending from the stream.

WHY: a retrain takes minutes and happens after drift is seen; an item that goes viral in
a flash sale, or one created minutes ago, must reach the shoppers it fits within seconds.
The stream job keeps two cheap candidate sources current in Redis, and the scorer blends
them into every list it writes (``blend``: a few reserved positions of the top 10), for
every variant alike, so an A/B test still compares the models themselves.

Sources (written by the stream job's flush, ``write_items`` / ``write_sessions``):
- trending per category: ``flashrec:live:trend:<category>`` (ZSET item -> the item
  view's ``item_trending_score``: demand of the last 5 minutes against the last hour);
  sold-out items leave it at once; bounded to ``TREND_KEEP`` items per category;
- co-visitation: ``flashrec:live:covis:<item>`` (ZSET next item -> weight): when a
  session moves on to a new item, the items it saw just before point to it (weight 1 for
  the one right before, 0.5 for the two before that), and it points back to them with
  half the weight. Keys expire ``COVIS_TTL_S`` after their last update and are trimmed
  to ``COVIS_KEEP`` entries. Counts are approximate by design: after a restore, events
  replayed since the checkpoint add their pairs again.

Plain redis-py commands in pipelines (no multi-key script), so it runs on Redis Cluster.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from cachetools import LRUCache

PREFIX = "flashrec:live:"
TREND_KEEP = 50
COVIS_KEEP = 50
COVIS_TTL_S = 6 * 3600
TREND_TTL_S = 24 * 3600
#: Session -> the newest item already paired, kept per writer process (bounded).
SEEN_SESSIONS = 100_000
BACK = 3  # how many earlier items of the session a new item is paired with
#: Positions (0-based) of the top 10 that live candidates may take, in order of use.
SLOT_POSITIONS = (2, 5, 8, 1, 4, 7, 9)


def trend_key(category: str) -> str:
    return f"{PREFIX}trend:{category}"


def covis_key(item: str) -> str:
    return f"{PREFIX}covis:{item}"


# -- writing (the stream job) ------------------------------------------------------------


class TrendWatch:
    """Notices an item entering the top ``top`` of its category's live trending list.

    WHY: a shopper's list is recomputed on their own next event; an item that jumps to the
    top of a category should reach that category's shoppers sooner. When it does, the
    stream job sends one rescore signal for the category (at most one per ``every_s``),
    and the scorer recomputes the lists of that category's recently active shoppers. The
    view is per writer process (each shard sees its own items), bounded by the number
    of categories times ``keep``.
    """

    def __init__(self, top: int = 3, every_s: float = 3.0, keep: int = TREND_KEEP) -> None:
        self.top, self.every_s, self.keep = top, every_s, keep
        self._scores: dict[str, dict[str, float]] = {}
        self._leaders: dict[str, set[str]] = {}
        self._signalled: dict[str, float] = {}

    def update(
        self, rows: Iterable[tuple[str, str | None, float, bool]], now_s: float
    ) -> list[tuple[str, str]]:
        """(category, item) for each category whose top gained an item and may be
        signalled now."""
        touched: set[str] = set()
        for item, category, score, sold_out in rows:
            if not category:
                continue
            scores = self._scores.setdefault(category, {})
            if sold_out or score <= 0:
                scores.pop(item, None)
            else:
                scores[item] = float(score)
            touched.add(category)
        out = []
        for category in touched:
            scores = self._scores[category]
            if len(scores) > self.keep:  # bounded: keep the best
                for item, _ in sorted(scores.items(), key=lambda kv: kv[1])[
                    : len(scores) - self.keep
                ]:
                    del scores[item]
            leaders = {i for i, _ in sorted(scores.items(), key=lambda kv: -kv[1])[: self.top]}
            entered = leaders - self._leaders.get(category, set())
            self._leaders[category] = leaders
            if entered and now_s - self._signalled.get(category, -1e9) >= self.every_s:
                self._signalled[category] = now_s
                out.append((category, sorted(entered)[0]))
        return out


def write_items(pipe: Any, items: Iterable[tuple[str, str | None, float, bool]]) -> int:
    """Queue trending updates for ``(item, category, trending score, sold out)`` rows."""
    touched: set[str] = set()
    for item, category, score, sold_out in items:
        if not category:
            continue
        key = trend_key(category)
        if sold_out or score <= 0:
            pipe.zrem(key, item)
        else:
            pipe.zadd(key, {item: float(score)})
            touched.add(key)
    for key in touched:
        pipe.zremrangebyrank(key, 0, -(TREND_KEEP + 1))
        pipe.expire(key, TREND_TTL_S)
    return len(touched)


class SessionPairs:
    """Turns a session's "recent items" (newest first) into new co-visitation pairs.

    Remembers, per session, the newest item it already paired, so a flush that finds the
    same recent list again adds nothing; a session it does not remember (new, or evicted
    from the bounded memory) pairs only its newest item.
    """

    def __init__(self, capacity: int = SEEN_SESSIONS) -> None:
        self.capacity = capacity
        self._newest: LRUCache[str, str] = LRUCache(capacity)

    def new_pairs(self, session: str, recent: Sequence[str]) -> list[tuple[str, str, float]]:
        """``(earlier item, new item, weight)`` for the items that arrived since last time."""
        if not recent:
            return []
        last = self._newest.pop(session, None)
        new = list(recent[: recent.index(last)]) if last in recent else list(recent[:1])
        self._newest[session] = recent[0]
        pairs = []
        for n in reversed(new):  # oldest new item first
            earlier = list(recent[recent.index(n) + 1 : recent.index(n) + 1 + BACK])
            for distance, e in enumerate(earlier):
                pairs.append((e, n, 1.0 if distance == 0 else 0.5))
        return pairs


def write_pairs(pipe: Any, pairs: Iterable[tuple[str, str, float]], rng: random.Random) -> int:
    """Queue co-visitation increments (both directions) with TTLs; trims now and then."""
    touched: set[str] = set()
    n = 0
    for earlier, new, weight in pairs:
        if earlier == new:
            continue
        pipe.zincrby(covis_key(earlier), weight, new)
        pipe.zincrby(covis_key(new), weight / 2, earlier)
        touched.update((covis_key(earlier), covis_key(new)))
        n += 1
    for key in touched:
        pipe.expire(key, COVIS_TTL_S)
        if rng.random() < 0.1:  # trimming every write would double the commands
            pipe.zremrangebyrank(key, 0, -(COVIS_KEEP + 1))
    return n


def recent_items(raw: Any) -> list[str]:
    """The feature value ``session_recent_items`` (a JSON list, newest first)."""
    if isinstance(raw, list):
        return [str(x) for x in raw]
    try:
        out = json.loads(raw) if raw else []
    except (TypeError, ValueError):
        return []
    return [str(x) for x in out] if isinstance(out, list) else []


# -- reading (the scorer) ----------------------------------------------------------------


def read(
    client: Any,
    shoppers: dict[str, Sequence[str]],
    categories: dict[str, str],
    *,
    per_item: int = 10,
    per_category: int = 10,
    recent: int = 3,
) -> dict[str, list[tuple[str, float]]]:
    """Live candidates per shopper: co-visitation of their ``recent`` newest items and
    what trends in those items' categories, best first, without the items themselves.

    Trending scores get a per-shopper jitter (a stable hash of shopper and item, within
    +-40%): items trending about as much are then shown to different shoppers, instead
    of the same three to everyone (a little exploration: each new item gets seen).

    ``categories``: item -> category for the items involved (the stream job's catalog
    hash covers items created minutes ago). Two pipelined round trips in all.
    """
    items = sorted({i for r in shoppers.values() for i in r[:recent]})
    cats = sorted({categories[i] for i in items if categories.get(i)})
    pipe = client.pipeline(transaction=False)
    for item in items:
        pipe.zrevrange(covis_key(item), 0, per_item - 1, withscores=True)
    for cat in cats:
        pipe.zrevrange(trend_key(cat), 0, per_category - 1, withscores=True)
    replies = pipe.execute()
    covis = {i: _norm(r) for i, r in zip(items, replies[: len(items)], strict=True)}
    trend = {c: _norm(r) for c, r in zip(cats, replies[len(items) :], strict=True)}
    out: dict[str, list[tuple[str, float]]] = {}
    for shopper, rec in shoppers.items():
        seen = set(rec)
        score: dict[str, float] = {}
        for rank, item in enumerate(rec[:recent]):
            decay = 1.0 / (1 + rank)
            for cand, s in covis.get(item, ()):
                score[cand] = score.get(cand, 0.0) + decay * s
            for cand, s in trend.get(categories.get(item) or "", ()):
                jitter = 0.6 + 0.8 * _unit_hash(shopper, cand)
                score[cand] = score.get(cand, 0.0) + 0.5 * decay * s * jitter
        ranked = sorted(
            ((c, s) for c, s in score.items() if c not in seen), key=lambda cs: (-cs[1], cs[0])
        )
        if ranked:
            out[shopper] = ranked
    return out


def _unit_hash(a: str, b: str) -> float:
    """A stable number in [0, 1) for a pair (crc32: the same in every process)."""
    return zlib.crc32(f"{a}\x1f{b}".encode()) / 2**32


def _norm(reply: Sequence[tuple[Any, float]]) -> list[tuple[str, float]]:
    """Scores scaled to the source's best (1.0), so sources add on one scale."""
    if not reply:
        return []
    top = max(float(s) for _, s in reply) or 1.0
    return [(_s(m), float(s) / top) for m, s in reply]


def blend(
    ranked: Sequence[tuple[str, float]], live: Sequence[tuple[str, float]], slots: int
) -> list[tuple[str, float]]:
    """The model's list with up to ``slots`` live candidates placed at the reserved
    positions (``SLOT_POSITIONS``) of its top 10.

    A live candidate the model already ranks in its top 10 keeps its place (and uses no
    slot); one ranked lower moves up to the slot. Scores stay non-increasing: a placed
    item takes the score of the position it lands on.
    """
    out = list(ranked)
    if slots <= 0 or not live or not out:
        return out
    top = {item for item, _ in out[:10]}
    picks = [item for item, _ in live if item not in top][:slots]
    positions = sorted(p for p in SLOT_POSITIONS[: len(picks)] if p <= len(out))
    if not positions:
        return out
    rest = [(i, s) for i, s in out if i not in set(picks)]
    for pos, item in zip(positions, picks, strict=False):
        score = rest[pos][1] if pos < len(rest) else (rest[-1][1] if rest else 0.0)
        rest.insert(pos, (item, score))
    return rest


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
