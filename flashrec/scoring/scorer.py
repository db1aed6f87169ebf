"""The background scorer: rescore signals in, fresh cached lists out.

WHY a consumer group: the scorer must survive restarts without losing signals. It reads
the rescore stream through a group (its position lives in Redis), finishes what it had
taken before a crash first (``read_pending``), and acknowledges a signal only after every
list it asked for is written, so a kill -9 at any point means "redo", never "lost".

Per batch: parse and coalesce signals (one computation per shopper, however many signals),
read online features in one batched call per view, pick the tier (segment: nothing to
write, the read API serves segment lists; content: attributes of what they viewed;
personalized: the model service, once per served and shadow variant, each query carrying
the user's online feature row for the ranker's shopper features), drop sold-out items,
skip writes that would change nothing, write the rest in one pipeline, then acknowledge.
A shopper whose personalized lists could not be computed (model service down) is left
pending and retried: their current list stays as it was rather than being overwritten by
something worse. A variant other than the champion that fails (a broken challenger) only
loses its own list: the failure is counted against it in the running test's counters
(``flashrec.adaptivity.test_counters``, with every list's scores, and how much of the
champion's top 10 the challenger shares), which is what the rollout's shadow checks and
error guardrail read. A shopper whose features read or model call fails on its own (not
an outage: a Redis error is waited out, a model service that is down defers everyone) goes
to the dead-letter stream with the reason, its signals acknowledged; the batch goes on.

Why one module of ~710 lines: one consumer loop and the decisions it takes per batch (tiers,
variants, rollout counters, live blending, write guards) share its state; the parts without
state are ``tiers``, ``catalog``, ``segments``, ``active``, ``trace``, ``isolation``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from flashrec import live_candidates
from flashrec.adaptivity import test_counters
from flashrec.adaptivity.rollout import CHAMPION, RolloutState
from flashrec.adaptivity.rollout_store import read_state
from flashrec.eventlog.base import EventLog, LogRecord
from flashrec.scoring import isolation, trace
from flashrec.scoring.active import ActiveShoppers
from flashrec.scoring.catalog import Catalog, content_list
from flashrec.scoring.model_client import ModelServiceDown
from flashrec.scoring.segments import refresh_segments
from flashrec.scoring.tiers import (
    FeatureReader,
    ShopperState,
    Signal,
    coalesce,
    parse_signal,
)
from flashrec.serving import cache, keys
from flashrec.settings import default_of
from flashrec.supervised_loop import REDIS_ERRORS, run_until_stopped

log = logging.getLogger(__name__)

RankFn = Callable[[Sequence[dict[str, Any]]], list[dict[str, Any]]]
AbConfigFn = Callable[[], tuple[dict[str, float], frozenset[str]]]
RolloutFn = Callable[[], RolloutState | None]
DEFAULT_VARIANT = "champion"


def status_key(group: str) -> str:
    """Hash where a running scorer publishes its counters (read by ``status``)."""
    return f"{keys.PREFIX}scorer:{group}:status"


@dataclass(frozen=True)
class ScorerConfig:
    """Knobs of one scorer process (``from_settings`` picks them from Settings)."""

    group: str = default_of("scorer_group")
    consumer: str = default_of("scorer_consumer")
    batch_size: int = default_of("scorer_batch_size")
    block_ms: int = 500
    top_n: int = default_of("scorer_top_n")
    margin: int = 20  # extra items asked for, so sold-out removal still leaves top_n
    retry_interval_s: float = 2.0  # re-read pending this often while shoppers are deferred
    segment_interval_s: float = default_of("scorer_segment_interval_s")
    segment_k: int = 100
    prewarm_window_s: int = default_of("scorer_prewarm_window_s")
    prewarm_max: int = 10_000
    unchanged_refresh_s: float = 60.0  # an identical list younger than this is not rewritten
    live_slots: int = default_of("scorer_live_slots")  # top-10 positions for live candidates
    list_ttl_s: int = default_of("scorer_list_ttl_s")
    lkg_ttl_s: int = default_of("scorer_lkg_ttl_s")

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> ScorerConfig:
        """Fields from ``settings.scorer_<field>`` when Settings has them (defaults written
        there), else the scorer's own constants."""
        values = {
            f: getattr(settings, f"scorer_{f}")
            for f in cls.__dataclass_fields__
            if hasattr(settings, f"scorer_{f}")
        }
        return cls(**{**values, **overrides})


@dataclass
class ScorerStats:
    batches: int = 0
    signals: int = 0
    shoppers: int = 0
    lists_written: int = 0
    lists_unchanged: int = 0
    lists_refused_older: int = 0
    deferred: int = 0
    segment_lists: int = 0
    redis_errors: int = 0
    model_service_up: bool = True
    last_batch_ms: int = 0
    # where the last batch's time went (ms): online features, planning (content lists and
    # the model service), list writes; and its size
    last_features_ms: float = 0.0
    last_plan_ms: float = 0.0
    last_write_ms: float = 0.0
    last_batch_signals: int = 0
    last_segments_ms: int = 0
    variant_errors: int = 0  # lists of a non-champion variant that failed (not retried)
    dead_lettered: int = 0  # shoppers whose features or model call failed on their own
    step_errors: int = 0  # batches that failed otherwise (left pending, process goes on)
    champion_version: str = ""
    last_error: str = ""


@dataclass
class BatchResult:
    acked: int = 0
    written: int = 0
    unchanged: int = 0
    deferred: list[str] = field(default_factory=list)  # shoppers left pending


@dataclass
class _Planned:
    shopper: str
    variant: str
    items: list[str]
    scores: list[float]
    model_version: str
    tier: str
    n_interactions: int
    model_ms: tuple[int, int] | None = None  # when its model call began and ended


class Scorer:
    """One scorer: ``step`` processes one batch; ``run`` loops until ``stop`` is set."""

    def __init__(
        self,
        client: redis.Redis,
        event_log: EventLog,
        read_features: FeatureReader,
        catalog: Catalog,
        *,
        rank: RankFn | None,
        config: ScorerConfig | None = None,
        rescore_stream: str = "flashrec:rescore",
        catalog_version: str = "catalog",
        ab_config: AbConfigFn | None = None,
        read_items: FeatureReader | None = None,
        refresh_catalog: Callable[[], tuple[Catalog, str] | None] | None = None,
        rollout_state: RolloutFn | None = None,
    ) -> None:
        self.client = client
        self.log = event_log
        self.read_features = read_features
        self.catalog = catalog
        self.catalog_version = catalog_version
        self.rank = rank
        self.config = config or ScorerConfig()
        self.rescore_stream = rescore_stream
        self.ab_config = ab_config or (lambda: cache.read_ab_config(client))
        self.read_items = read_items
        self.refresh_catalog = refresh_catalog
        self.rollout_state = rollout_state or (lambda: read_state(client))
        self._rollout: RolloutState | None = None
        self._categories_of: Catalog | None = None
        self._category_map: dict[str, str] = {}
        self.active = ActiveShoppers()
        self.stats = ScorerStats()
        self._retry_at: float | None = None
        self._segments_at = 0.0
        self._rewarm = False
        self._started = False
        self._poisoned: dict[str, str] = {}  # this batch: shopper -> why it was dead-lettered
        #: Called after each batch with its result and seconds (metrics).
        self.observer: Callable[[BatchResult, float], None] | None = None

    # -- one batch -----------------------------------------------------------------------

    def variants(self) -> list[str]:
        """Served variants (share > 0) plus shadow ones; ``champion`` when none is set."""
        shares, shadow = self.ab_config()
        found = {v for v, s in shares.items() if s > 0} | set(shadow)
        return sorted(found) or [DEFAULT_VARIANT]

    def process(
        self, records: Sequence[LogRecord], *, ack: bool = True, read_ms: int | None = None
    ) -> BatchResult:
        """Score the shoppers named by ``records`` (read at ``read_ms``), write their lists
        with their freshness trace (``scoring.trace``), acknowledge."""
        result = BatchResult()
        read_ms = cache.now_ms() if read_ms is None else read_ms
        signals, bad = [], []
        for rec in records:
            sig = parse_signal(rec)
            if sig is None:
                bad.append(rec.id)
            else:
                signals.append(sig)
        signals, done_categories = self._expand_categories(signals)
        bad.extend(done_categories)
        groups = coalesce(signals)
        self._poisoned = {}
        t0 = time.perf_counter()
        states = self._shopper_states(signals) if signals else {}
        categories = self._item_categories(states)
        self._remember_active(states, categories)
        variants = self.variants()
        self._follow_rollout()
        t1 = time.perf_counter()
        plans, deferred = self._plan(states, variants)
        self._blend_live(plans, states, categories)
        t2 = time.perf_counter()
        written, unchanged = self._write(plans, groups, read_ms)
        t3 = time.perf_counter()
        if self._poisoned:
            self._dead_letter(groups, records)
        done_ids = list(bad)
        for shopper, sigs in groups.items():
            if shopper not in deferred:
                done_ids.extend(s.record_id for s in sigs)
        done_ids = list(dict.fromkeys(done_ids))  # a category signal names many shoppers
        if ack and done_ids:
            self.log.ack(self.config.group, done_ids)
        result.acked = len(done_ids)
        result.written, result.unchanged = written, unchanged
        result.deferred = sorted(deferred)
        st = self.stats
        st.batches += 1
        st.signals += len(signals)
        st.shoppers += len(groups)
        st.lists_written += written
        st.lists_unchanged += unchanged
        st.deferred = len(deferred)
        st.last_batch_ms = cache.now_ms()
        st.last_features_ms = round((t1 - t0) * 1000, 1)
        st.last_plan_ms = round((t2 - t1) * 1000, 1)
        st.last_write_ms = round((t3 - t2) * 1000, 1)
        st.last_batch_signals = len(records)
        self._publish_stats()
        if self.observer is not None:
            self.observer(result, time.perf_counter() - t0)
        return result

    def _shopper_states(self, signals: list[Signal]) -> dict[str, ShopperState]:
        return isolation.shopper_states(signals, self.read_features, self._poisoned, REDIS_ERRORS)

    def _dead_letter(self, groups: dict[str, list[Signal]], records: Sequence[LogRecord]) -> None:
        letters = isolation.dead_letters(self._poisoned, groups, records)
        self.log.append_dead_letters(letters)
        self.stats.dead_lettered += len(letters)
        self.stats.last_error = letters[-1].reason
        log.warning("dead-lettered %d shopper(s): %s", len(letters), letters[-1].reason)

    def _plan(
        self, states: dict[str, ShopperState], variants: list[str]
    ) -> tuple[list[_Planned], set[str]]:
        cfg = self.config
        want = cfg.top_n + cfg.margin
        plans: list[_Planned] = []
        personalized: list[ShopperState] = []
        for st in states.values():
            if st.skip or st.tier == "segment":
                continue
            if st.tier == "personalized":
                personalized.append(st)
                continue
            ranked = content_list(self.catalog, st.recent_items, want)
            if not ranked:
                continue
            for v in variants:
                plans.append(
                    _Planned(
                        st.shopper,
                        v,
                        [i for i, _ in ranked],
                        [s for _, s in ranked],
                        f"content@{self.catalog_version}",
                        "content",
                        st.n_interactions,
                    )
                )
        deferred: set[str] = set()
        if personalized:
            got = self._personalized(personalized, variants, want)
            if got is None:
                deferred = {st.shopper for st in personalized}
            else:
                plans.extend(got[0])
                deferred = got[1]
        return plans, deferred

    def _personalized(
        self, states: list[ShopperState], variants: list[str], want: int
    ) -> tuple[list[_Planned], set[str]] | None:
        """Lists from the model service; None when it is down (every shopper deferred).

        A bad answer for the champion defers its shopper (retried: their list stays as it
        was); a bad answer for another variant drops only that list and is counted.
        """
        if self.rank is None:
            return None
        pairs = [(st, v) for st in states for v in variants]
        queries = [
            {
                "recent_items": list(st.recent_items),
                "k": want,
                "variant": v,
                "user": dict(st.user_row) if st.user_row is not None else None,
            }
            for st, v in pairs
        ]
        model_start = cache.now_ms()
        try:
            try:
                answers = self.rank(queries)
            except ModelServiceDown:
                raise
            except Exception:  # noqa: BLE001 - something in the batch's content: find whom
                answers = None
            answers = isolation.isolate(
                self.rank, pairs, queries, answers, _usable, self._poisoned, DEFAULT_VARIANT
            )
            self.stats.model_service_up = True
        except ModelServiceDown as exc:
            if self.stats.model_service_up:
                log.warning("model service down, personalized shoppers deferred: %s", exc)
            self.stats.model_service_up = False
            self.stats.last_error = str(exc)[:300]
            return None
        model_ms = (model_start, cache.now_ms())
        if self._poisoned:
            kept = [i for i, (st, _) in enumerate(pairs) if st.shopper not in self._poisoned]
            pairs, answers = [pairs[i] for i in kept], [answers[i] for i in kept]
        plans, deferred = [], set()
        good: dict[tuple[str, str], tuple[list[str], list[float], str]] = {}
        for (st, v), ans in zip(pairs, answers, strict=True):
            items, scores = ans.get("items") or [], ans.get("scores") or []
            version = str(ans.get("model_version") or "unknown")
            if ans.get("error") or not _sane(items, scores):
                if v == DEFAULT_VARIANT:
                    deferred.add(st.shopper)  # never cache garbage: keep the list, retry
                else:
                    self.stats.variant_errors += 1
                    self.stats.last_error = f"{v}: {ans.get('error') or 'unusable answer'}"[:300]
                continue
            good[st.shopper, v] = ([str(i) for i in items], [float(x) for x in scores], version)
        self._count_lists(pairs, answers, good)
        by_shopper = {st.shopper: st for st in states}
        for (shopper, v), (items, scores, version) in good.items():
            if shopper in deferred:
                continue
            st = by_shopper[shopper]
            plans.append(
                _Planned(
                    shopper,
                    v,
                    items,
                    scores,
                    version,
                    "personalized",
                    st.n_interactions,
                    model_ms,
                )  # fmt: skip
            )
        return plans, deferred

    def _blend_live(
        self, plans: list[_Planned], states: dict[str, ShopperState], categories: dict[str, str]
    ) -> None:
        """Live candidates (stream-updated co-visitation and trending, see
        ``flashrec.live_candidates``) into the reserved slots of every list: what went
        viral a few seconds ago reaches the shoppers it fits before any retrain."""
        slots = self.config.live_slots
        if slots <= 0 or not plans:
            return
        recent = {p.shopper: states[p.shopper].recent_items for p in plans if p.shopper in states}
        recent = {k: v for k, v in recent.items() if v}
        if not recent:
            return
        live = live_candidates.read(self.client, recent, categories)
        for plan in plans:
            cands = live.get(plan.shopper)
            if cands:
                ranked = list(zip(plan.items, plan.scores, strict=True))
                blended = live_candidates.blend(ranked, cands, slots)
                plan.items = [i for i, _ in blended]
                plan.scores = [s for _, s in blended]

    def _item_categories(self, states: dict[str, ShopperState]) -> dict[str, str]:
        """Categories of the shoppers' newest items: the model's catalog, and the stream
        job's catalog hash for items created since the model was trained."""
        items = {i for st in states.values() for i in st.recent_items[:3]}
        if not items:
            return {}
        known = self._categories()
        out = {i: known[i] for i in items if i in known}
        missing = sorted(items - out.keys())
        if missing:
            found = self.client.hmget(keys.CATALOG_CATEGORY, missing)
            out.update({i: _s(c) for i, c in zip(missing, found, strict=True) if c})
        return out

    def _expand_categories(self, signals: list[Signal]) -> tuple[list[Signal], list[str]]:
        """Category signals become signals of that category's recently active shoppers;
        returns the signals to score and the ids of category signals that reached none."""
        out = [s for s in signals if s.kind != "c"]
        empty = []
        for sig in (s for s in signals if s.kind == "c"):
            shoppers = self.active.in_category(sig.shopper_id)
            if not shoppers:
                empty.append(sig.record_id)
            for ref in shoppers:
                kind, _, shopper_id = ref.partition(":")
                out.append(Signal(sig.record_id, kind, shopper_id, sig.reason))
        return out, empty

    def _remember_active(self, states: dict[str, ShopperState], categories: dict[str, str]) -> None:
        for st in states.values():
            if st.skip or not st.recent_items:
                continue
            cats = [categories[i] for i in st.recent_items[:3] if i in categories]
            if cats:
                self.active.saw(st.shopper, cats)

    def _categories(self) -> dict[str, str]:
        """The catalog's item -> category, built once per catalog (not per batch)."""
        if self._categories_of is not self.catalog:
            self._category_map = self.catalog.attributes()
            self._categories_of = self.catalog
        return self._category_map

    def _follow_rollout(self) -> None:
        """The running test (for its counters); a new champion re-warms recent shoppers."""
        try:
            state = self.rollout_state()
        except REDIS_ERRORS:
            return
        if state is not None and state.champion_version != self.stats.champion_version:
            if self.stats.champion_version:
                log.info("champion is now %s: re-scoring recent shoppers", state.champion_version)
                self._rewarm = True
            self.stats.champion_version = state.champion_version
        self._rollout = state

    def _count_lists(
        self,
        pairs: list[tuple[ShopperState, str]],
        answers: list[dict[str, Any]],
        good: dict[tuple[str, str], tuple[list[str], list[float], str]],
    ) -> None:
        """Add this batch's lists to the running test's counters, per arm (only answers
        from the arm's pinned version count: a swap in flight answers with the old one)."""
        state = self._rollout
        key = state.counters_key if state is not None else None
        if state is None or key is None:
            return
        pins = state.pins()
        per_arm: dict[str, list[tuple[list[str], list[float]] | None]] = {}
        overlap: list[float] = []
        for (st, v), ans in zip(pairs, answers, strict=True):
            if v not in pins or str(ans.get("model_version")) != pins[v]:
                continue
            got = good.get((st.shopper, v))
            per_arm.setdefault(v, []).append(None if got is None else (got[0], got[1]))
            champion = good.get((st.shopper, CHAMPION))
            if v != CHAMPION and got is not None and champion is not None:
                overlap.append(test_counters.overlap_at(champion[0], got[0]))
        if not per_arm:
            return
        pipe = self.client.pipeline(transaction=False)
        for arm, lists in per_arm.items():
            fields = test_counters.lists_fields(lists)
            if arm != CHAMPION and overlap:
                fields.update(overlap_sum=float(sum(overlap)), overlap_n=len(overlap))
            test_counters.add(pipe, key, arm, fields)
        pipe.execute()

    def _write(
        self, plans: list[_Planned], groups: dict[str, list[Signal]], read_ms: int
    ) -> tuple[int, int]:
        """Sold-out filter, unchanged check, then one pipeline of list writes."""
        if not plans:
            return 0, 0
        cfg = self.config
        every = list({i for p in plans for i in p.items})
        sold = cache.read_sold_out(self.client, every)
        current = self.client.mget([keys.rec_list(p.variant, p.shopper) for p in plans])
        now = cache.now_ms()
        pipe = self.client.pipeline(transaction=False)
        written = unchanged = 0
        for plan, raw in zip(plans, current, strict=True):
            kept = [(i, s) for i, s in zip(plan.items, plan.scores, strict=True) if i not in sold]
            kept = kept[: cfg.top_n]
            if not kept:
                continue
            items = tuple(i for i, _ in kept)
            old = cache.decode_list(raw)
            if (
                old is not None
                and old.items == items
                and old.model_version == plan.model_version
                and old.tier == plan.tier
                and now - old.computed_at < cfg.unchanged_refresh_s * 1000
            ):
                unchanged += 1
                continue
            cached = cache.CachedList(
                items=items,
                scores=tuple(s for _, s in kept),
                model_version=plan.model_version,
                variant=plan.variant,
                computed_at=now,
                tier=plan.tier,
                n_interactions=plan.n_interactions,
                trace=trace.for_signals(groups.get(plan.shopper, ()), read_ms, plan.model_ms, now),
            )
            cache.write_user_list(
                pipe,  # type: ignore[arg-type]  # a pipeline queues the same EVAL
                plan.shopper,
                cached,
                ttl_s=cfg.list_ttl_s,
                lkg_ttl_s=cfg.lkg_ttl_s,
            )
            written += 1
        if written:
            # a list computed from older inputs than the cached one is refused (0): a
            # slower consumer never replaces a fresher list
            refused = sum(1 for outcome in pipe.execute() if outcome == 0)
            self.stats.lists_refused_older += refused
            written -= refused
        return written, unchanged

    def _publish_stats(self) -> None:
        fields = {k: str(v) for k, v in asdict(self.stats).items()}
        self.client.hset(status_key(self.config.group), mapping=fields)

    # -- the loop ------------------------------------------------------------------------

    def start(self) -> None:
        """Create the group, finish our own pending records, pre-warm, write segments."""
        self.log.ensure_group(self.config.group)
        self.drain_pending()
        self.prewarm()
        self.refresh_segments()
        self._started = True

    def drain_pending(self) -> int:
        """Re-process what this consumer took and never acknowledged (crash recovery)."""
        total = 0
        while True:
            recs = self.log.read_pending(
                self.config.group, self.config.consumer, self.config.batch_size
            )
            if not recs:
                self._retry_at = None
                return total
            res = self.process(recs)
            total += res.acked
            if res.deferred:
                self._retry_at = time.monotonic() + self.config.retry_interval_s
            if res.acked == 0:
                return total

    def prewarm(self) -> int:
        """Score shoppers who signalled within ``prewarm_window_s`` before they ask.

        WHY from the rescore stream: it is the one index of recently active shoppers (the
        online store cannot be listed). Not acknowledged: these are not group reads.
        """
        cfg = self.config
        since = cache.now_ms() - cfg.prewarm_window_s * 1000
        # only what the group already delivered: undelivered signals come through the group
        last = self.log.health(cfg.group).last_delivered_id or "0-0"
        if last == "0-0":
            return 0
        entries = self.client.xrevrange(
            self.rescore_stream, max=last, min=str(since), count=cfg.prewarm_max
        )
        if not entries:
            return 0
        recs = [
            LogRecord(_s(entry_id), json.dumps({_s(k): _s(v) for k, v in fields.items()}))
            for entry_id, fields in entries
        ]
        total = 0
        for start in range(0, len(recs), cfg.batch_size):
            total += self.process(recs[start : start + cfg.batch_size], ack=False).written
        log.info("pre-warmed %d lists from %d recent signals", total, len(recs))
        return total

    def refresh_segments(self) -> int:
        """Segment lists now (and the catalog first, if the champion changed)."""
        if self.refresh_catalog is not None:
            try:
                fresh = self.refresh_catalog()
            except Exception as exc:  # noqa: BLE001 - the old catalog stays usable
                log.warning("catalog refresh failed, keeping %s: %s", self.catalog_version, exc)
                fresh = None
            if fresh is not None:
                self.catalog, self.catalog_version = fresh
        n = refresh_segments(
            self.client,
            self.catalog,
            self.read_items,
            k=self.config.segment_k,
            model_version=f"segment@{self.catalog_version}",
        )
        self.stats.segment_lists += n
        self.stats.last_segments_ms = cache.now_ms()
        self._segments_at = time.monotonic() + self.config.segment_interval_s
        return n

    def step(self) -> BatchResult | None:
        """One iteration: retries due, segments due, then new signals (blocking briefly)."""
        if not self._started or self._rewarm:
            self.start()
            if self._rewarm:
                log.info("reconnected to Redis: segment lists and recent shoppers re-warmed")
            self._rewarm = False
        now = time.monotonic()
        if self._retry_at is not None and now >= self._retry_at:
            self.drain_pending()
        if now >= self._segments_at:
            self.refresh_segments()
        recs = self.log.read_group(
            self.config.group,
            self.config.consumer,
            self.config.batch_size,
            self.config.block_ms,
        )
        if not recs:
            return None
        res = self.process(recs)
        if res.deferred and self._retry_at is None:
            self._retry_at = time.monotonic() + self.config.retry_interval_s
        return res

    def run(self, stop: threading.Event | None = None) -> None:
        """Loop until ``stop`` is set; Redis outages are waited out, then re-warmed."""
        run_until_stopped(
            self.step, stop or threading.Event(),
            on_redis_error=self._redis_lost, on_error=self._step_failed,
        )  # fmt: skip

    def _redis_lost(self, exc: BaseException) -> None:
        self.stats.redis_errors += 1
        self.stats.last_error = f"redis: {exc}"[:300]
        if not self._rewarm:
            log.warning("Redis unreachable, retrying: %s", exc)
        self._rewarm = True

    def _step_failed(self, exc: Exception) -> None:
        self.stats.step_errors += 1
        self.stats.last_error = repr(exc)[:300]
        log.exception("scorer step failed; its signals stay pending for a retry")


def _sane(items: Any, scores: Any) -> bool:
    """A model answer worth caching: non-empty ids without separators, one score each."""
    return (
        isinstance(items, list)
        and isinstance(scores, list)
        and 0 < len(items) == len(scores)
        and all(isinstance(i, str) and i and "," not in i and "\n" not in i for i in items)
    )


def _usable(answer: dict[str, Any]) -> bool:
    return not answer.get("error") and _sane(answer.get("items") or [], answer.get("scores") or [])


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_status(client: redis.Redis, event_log: EventLog, group: str) -> dict[str, Any]:
    """What ``python -m bentos.scorer_process status`` prints: group lag/pending + counters."""
    out: dict[str, Any] = {"group": group}
    try:
        h = event_log.health(group)
        out.update(
            consumers=h.consumers,
            pending=h.pending,
            lag=h.lag,
            last_delivered_id=h.last_delivered_id,
        )
    except (KeyError, redis.ResponseError) as exc:
        out["group_error"] = str(exc)
    out.update({_s(k): _s(v) for k, v in client.hgetall(status_key(group)).items()})
    return out
