"""Freshness probes of the SLO benchmark: click -> updated cached list, sold-out -> gone.

Probe shoppers are known users of their own (``slo-click-NN``, ``slo-out-NN``), warmed
before the surge with a dozen views each so the scorer keeps a personalized list for them;
nothing else in the traffic touches them, so a change of their list can only come from a
probe.

- Click: a click on an item the shopper has not seen yet goes through the gateway; the
  clock starts when the gateway has accepted it and stops when the shopper's cached list
  (``flashrec:rec:<variant>:u:<id>``) carries a newer ``computed_at`` than before the
  click. One click per shopper in flight, so an earlier click's update is never taken for
  a later one's (a busy second skips a probe instead: counted in ``skipped``).
- Sold-out: an item the read API serves to a probe shopper gets ``stock_change`` to 0;
  the clock stops at the first read API answer for that shopper without it. The sold-out
  set in Redis is polled first (cheap) and the read API asked once the item is in it, so
  the probe costs a few requests, not a hundred per second. The item is restocked after.

Timestamps are ``time.perf_counter()``; ``results`` hold one ``Result`` per probe. A click
probe never seen is told apart at the end (``ClickProbes.classify``): when the scorer has
already processed its rescore signal, it recomputed a list identical to the cached one and
by design rewrote nothing (``unchanged``: no latency to report); otherwise it was slow.

Why one module of ~450 lines: both freshness probes (click -> list, sold-out -> gone) share
the polling, timing and trace reading.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from bench.slo_load import ReadClient, gateway_client
from flashrec.events import CatalogEvent, StorefrontEvent
from flashrec.scoring import trace
from flashrec.serving import cache, keys

POLL_S = 0.005


computed_at = cache.computed_at_of


def probe_event(event_id: str, event_type: str, user: str, item: str) -> StorefrontEvent:
    """A probe shopper's storefront event (one session per probe shopper: ``<user>-s``)."""
    return StorefrontEvent(
        event_id=event_id,
        event_time=datetime.now(UTC),
        event_type=event_type,
        item_id=item,
        user_id=user,
        session_id=f"{user}-s",
        price=10.0,
        device="mobile",
        referrer="search",
    )


def warm_up_events(users: Sequence[str], items: Sequence[str], n: int, seed: int) -> list[str]:
    """``n`` views of distinct items per probe shopper (>= 10 makes them personalized)."""
    rng = random.Random(seed)
    out = []
    for u in users:
        for k, item in enumerate(rng.sample(list(items), n)):
            out.append(
                probe_event(f"{u}-warm-{k}-{rng.getrandbits(32):x}", "view", u, item).to_json()
            )
    return out


def warm_lists(client: redis.Redis, variant: str, users: Sequence[str]) -> dict[str, str]:
    """user -> tier of the cached list of each probe shopper that has one."""
    raws = client.mget([keys.rec_list(variant, keys.shopper_ref("u", u)) for u in users])
    out = {}
    for u, raw in zip(users, raws, strict=True):
        lst = cache.decode_list(raw)
        if lst is not None:
            out[u] = lst.tier
    return out


@dataclass
class Result:
    at: float  # perf_counter when the gateway accepted the probe's event
    ms: float | None  # None: never seen
    ref: str  # the probe shopper (click) or item (sold-out)
    wall_ms: int  # epoch ms at acceptance (to find its rescore signal)
    outcome: str = "seen"  # "seen" | "unseen" | "unchanged" | "superseded"
    #: click probes: ms per leg of the path (``flashrec.scoring.trace``, plus the gateway)
    legs: dict[str, float] | None = None


def _wall_ms() -> int:
    return int(time.time() * 1000)


class _Prober:
    def __init__(self, rate: float, timeout_s: float, name: str) -> None:
        self.rate, self.timeout_s = rate, timeout_s
        self.results: list[Result] = []
        self.skipped = 0
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.sending = threading.Event()
        self.stopped = threading.Event()
        self._threads = [
            threading.Thread(target=self._send_loop, name=f"{name}-send", daemon=True),
            threading.Thread(target=self._poll_loop, name=f"{name}-poll", daemon=True),
        ]

    def start(self) -> None:
        self.sending.set()
        for t in self._threads:
            t.start()

    def stop_sending(self) -> None:
        self.sending.clear()

    def pending_count(self) -> int:
        raise NotImplementedError

    def finish(self, deadline: float) -> None:
        """Stop sending; wait for what is in flight until ``deadline`` (perf_counter)."""
        self.stop_sending()
        while time.perf_counter() < deadline and self.pending_count():
            time.sleep(0.05)
        self.stopped.set()
        for t in self._threads:
            t.join(10)
        self._give_up_all()

    def _send_loop(self) -> None:
        period = 1.0 / self.rate
        next_at = time.perf_counter()
        while self.sending.is_set():
            try:
                self.send_one()
            except Exception as exc:  # noqa: BLE001 - counted as a failed probe send
                with self.lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}"[:300])
            next_at += period
            wait = next_at - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            else:
                next_at = time.perf_counter()  # behind: do not burst to catch up

    def _poll_loop(self) -> None:
        while not self.stopped.is_set():
            try:
                self.poll_once()
            except (redis.RedisError, OSError) as exc:
                with self.lock:
                    self.failures.append(f"poll: {exc}"[:300])
                time.sleep(0.2)
            self._expire()
            time.sleep(POLL_S)

    def send_one(self) -> None:
        raise NotImplementedError

    def poll_once(self) -> None:
        raise NotImplementedError

    def _expire(self) -> None:
        raise NotImplementedError

    def _give_up_all(self) -> None:
        raise NotImplementedError


class ClickProbes(_Prober):
    def __init__(
        self,
        client: redis.Redis,
        gateway_port: int,
        users: Sequence[str],
        items: Sequence[str],
        *,
        variant: str = "champion",
        rate: float = 5.0,
        timeout_s: float = 60.0,
        seed: int = 7,
    ) -> None:
        super().__init__(rate, timeout_s, "click")
        self.client, self.gateway = client, gateway_client(gateway_port)
        self.users, self.items, self.variant = list(users), list(items), variant
        self.rng = random.Random(seed)
        self.seen: dict[str, set[str]] = {u: set() for u in self.users}
        self.pending: dict[str, tuple[float, int, int]] = {}  # user -> (at, baseline, wall)
        self.gateway_ms: dict[str, float] = {}  # user -> the last probe's POST round trip
        self._next = 0

    def key(self, user: str) -> str:
        return keys.rec_list(self.variant, keys.shopper_ref("u", user))

    def pending_count(self) -> int:
        with self.lock:
            return len(self.pending)

    def send_one(self) -> None:
        with self.lock:
            free = [u for u in self.users if u not in self.pending]
        if not free:
            self.skipped += 1
            return
        user = free[self._next % len(free)]
        self._next += 1
        raw = self.client.get(self.key(user))
        baseline = computed_at(raw)
        # an item neither seen nor in the current list: the new list then almost surely
        # differs (the scorer rewrites nothing when the recomputed list is identical)
        listed = set(cache.split_ids(raw)) if raw else set()
        fresh = [i for i in self.items if i not in self.seen[user] and i not in listed]
        item = self.rng.choice(fresh or self.items)
        self.seen[user].add(item)
        event = probe_event(f"{user}-click-{self.rng.getrandbits(48):x}", "click", user, item)
        sent = time.perf_counter()
        verdict = self.gateway.post([event.to_json()])
        accepted_at, wall = time.perf_counter(), _wall_ms()
        if verdict.get("accepted") != 1:
            raise RuntimeError(f"probe click not accepted: {str(verdict)[:200]}")
        with self.lock:
            self.pending[user] = (accepted_at, baseline, wall)
            self.gateway_ms[user] = (accepted_at - sent) * 1000

    def poll_once(self) -> None:
        with self.lock:
            users = list(self.pending)
        if not users:
            return
        raws = self.client.mget([self.key(u) for u in users])
        seen, seen_wall = time.perf_counter(), _wall_ms()
        with self.lock:
            for user, raw in zip(users, raws, strict=True):
                at, baseline, wall = self.pending.get(user, (0.0, 0, 0))
                if at and computed_at(raw) > baseline:
                    del self.pending[user]
                    cached = cache.decode_list(raw)
                    legs = {"gateway": self.gateway_ms.get(user, math.nan)}
                    if cached is not None and cached.trace:
                        legs.update(trace.legs(cached.trace, seen_wall))
                    self.results.append(Result(at, (seen - at) * 1000, user, wall, legs=legs))

    def _expire(self) -> None:
        now = time.perf_counter()
        with self.lock:
            for user, (at, _, wall) in list(self.pending.items()):
                if now - at > self.timeout_s:
                    del self.pending[user]
                    self.results.append(Result(at, None, user, wall, "unseen"))

    def _give_up_all(self) -> None:
        with self.lock:
            self.results += [
                Result(at, None, u, wall, "unseen") for u, (at, _, wall) in self.pending.items()
            ]
            self.pending.clear()
        self.gateway.close()

    def classify(self, rescore_stream: str, group: str = "scorer") -> int:
        """Mark unseen clicks whose rescore signal the scorer has processed (delivered and
        acknowledged) as ``unchanged``; returns how many. Call after ``finish``."""
        unseen = [r for r in self.results if r.outcome == "unseen"]
        if not unseen:
            return 0
        users = {r.ref for r in unseen}
        signals: dict[str, list[str]] = {}
        start = str(min(r.wall_ms for r in unseen) - 5)
        for entry_id, fields in self.client.xrange(rescore_stream, min=start):
            user = fields.get(b"user_id", b"").decode()
            if user in users:
                signals.setdefault(user, []).append(entry_id.decode())
        last = "0-0"
        for info in self.client.xinfo_groups(rescore_stream):
            if info["name"] in (group, group.encode()):
                raw = info["last-delivered-id"]
                last = raw.decode() if isinstance(raw, bytes) else str(raw)
        pending = {
            (p["message_id"].decode() if isinstance(p["message_id"], bytes) else p["message_id"])
            for p in self.client.xpending_range(rescore_stream, group, "-", "+", 100_000)
        }
        n = 0
        for r in unseen:
            after = [i for i in signals.get(r.ref, []) if _id(i) >= (r.wall_ms - 5, 0)]
            if after and _id(after[0]) <= _id(last) and after[0] not in pending:
                r.outcome = "unchanged"
                n += 1
        return n


def _id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


#: A sold-out probe is superseded only by a restock (stock > 0) this soon after it.
SUPERSEDE_WINDOW_S = 2.0


class SoldOutProbes(_Prober):
    def __init__(
        self,
        client: redis.Redis,
        gateway_port: int,
        read_port: int,
        users: Sequence[str],
        *,
        avoid: Sequence[str] = (),
        events_stream: str = "flashrec:events",
        rate: float = 1.0,
        timeout_s: float = 60.0,
        seed: int = 11,
    ) -> None:
        super().__init__(rate, timeout_s, "soldout")
        self.client = client
        self.gateway = gateway_client(gateway_port)
        self.restock_gateway = gateway_client(gateway_port)
        self.sender_reads, self.poller_reads = ReadClient(read_port), ReadClient(read_port)
        self.users = list(users)
        self.avoid = set(avoid)  # the sale's items: the simulator itself sells and restocks them
        self.events_stream = events_stream
        self.rng = random.Random(seed)
        self.probed: set[str] = set()
        self.pending: dict[str, tuple[float, str, int, int]] = {}  # item -> (at, user, level, wall)
        self._next = 0

    def pending_count(self) -> int:
        with self.lock:
            return len(self.pending)

    def _event(self, item: str, level: int) -> str:
        return CatalogEvent(
            event_id=f"slo-stock-{item}-{level}-{self.rng.getrandbits(48):x}",
            event_time=datetime.now(UTC),
            event_type="stock_change",
            item_id=item,
            stock_level=level,
        ).to_json()

    def send_one(self) -> None:
        with self.lock:
            busy = {entry[1] for entry in self.pending.values()}
        free = [u for u in self.users if u not in busy]
        if not free:
            self.skipped += 1
            return
        user = free[self._next % len(free)]
        self._next += 1
        served = self.sender_reads.items(user)
        if served is None:
            raise RuntimeError(f"read API did not answer for probe shopper {user}")
        choices = [i for i in served if i not in self.probed and i not in self.avoid]
        if not choices:
            self.skipped += 1
            return
        item = self.rng.choice(choices)
        self.probed.add(item)
        old = self.client.hget(keys.STOCK, item)
        level = int(old) if old and int(old) > 0 else 50
        verdict = self.gateway.post([self._event(item, 0)])
        accepted_at, wall = time.perf_counter(), _wall_ms()
        if verdict.get("accepted") != 1:
            raise RuntimeError(f"probe stock_change not accepted: {str(verdict)[:200]}")
        with self.lock:
            self.pending[item] = (accepted_at, user, level, wall)

    def poll_once(self) -> None:
        with self.lock:
            items = list(self.pending)
        if not items:
            return
        flags = self.client.smismember(keys.SOLDOUT, items)
        for item, flag in zip(items, flags, strict=True):
            if not flag:
                continue
            with self.lock:
                entry = self.pending.get(item)
            if entry is None:
                continue
            at, user, level, wall = entry
            served = self.poller_reads.items(user)
            seen = time.perf_counter()
            if served is not None and item not in served:
                with self.lock:
                    self.pending.pop(item, None)
                    self.results.append(Result(at, (seen - at) * 1000, item, wall))
                self._restock(item, level)

    def _restock(self, item: str, level: int) -> None:
        try:
            self.restock_gateway.post([self._event(item, level)])
        except (RuntimeError, OSError) as exc:
            with self.lock:
                self.failures.append(f"restock {item}: {exc}"[:300])

    def _expire(self) -> None:
        now = time.perf_counter()
        with self.lock:
            for item, (at, _, _, wall) in list(self.pending.items()):
                if now - at > self.timeout_s:
                    del self.pending[item]
                    self.results.append(Result(at, None, item, wall, "unseen"))

    def _give_up_all(self) -> None:
        with self.lock:
            self.results += [
                Result(at, None, i, wall, "unseen") for i, (at, _, _, wall) in self.pending.items()
            ]
            self.pending.clear()
        for c in (self.gateway, self.restock_gateway, self.sender_reads, self.poller_reads):
            c.close()

    def classify(self, window_s: float = SUPERSEDE_WINDOW_S) -> int:
        """Mark unseen probes ``superseded`` when another producer's ``stock_change`` set
        the item's stock *above zero* within ``window_s`` after our stock-out; returns how
        many. Call after ``finish``.

        WHY: the simulator also restocks items, and a restock right after ours (seen: 18 ms
        later) legitimately puts the item back: the probe has nothing left to measure. Any
        later or non-restocking change does not count: such a probe stays unseen.
        """
        n = 0
        for k, r in enumerate(self.results):
            if r.outcome == "unseen" and self._restocked_by_others(r.ref, r.wall_ms, window_s):
                self.results[k] = dataclasses.replace(r, outcome="superseded")
                n += 1
        return n

    def _restocked_by_others(self, item: str, wall_ms: int, window_s: float) -> bool:
        end = f"{wall_ms + int(window_s * 1000)}-0"
        for _, fields in self.client.xrange(self.events_stream, min=f"{wall_ms}-0", max=end):
            raw = fields.get(b"payload") or fields.get("payload") or b""
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if (
                event.get("item_id") == item
                and event.get("event_type") == "stock_change"
                and not str(event.get("event_id", "")).startswith("slo-stock-")
                and int(event.get("stock_level") or 0) > 0
            ):
                return True
        return False
