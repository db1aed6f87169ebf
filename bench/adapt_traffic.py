"""The adaptivity benchmark's storefront: reactive shoppers through the real HTTP APIs.

Open loop at a stated rate of shopper *steps* per second: every 100 ms the driver starts
``rate / 10`` steps whatever happened to the previous ones (a slow answer never delays
the schedule). A step is what a storefront page does: ask the read API for the shopper's
list (``GET /recommendations``, which logs the impression), show it to the simulated
shopper (``flashrec.simulator.reactive``), and send what the shopper did next to the
gateway (``POST /events``). Every answer is kept in compact form for the probes: which
model version served, and when each new item first appeared in a personalized list of a
shopper browsing its category.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from flashrec.simulator.reactive import ReactiveTraffic

TICK_S = 0.1


@dataclass
class TrafficStats:
    steps: int = 0
    took: int = 0  # steps whose item came from the shown list
    reads: int = 0
    read_errors: int = 0  # transport errors and non-2xx
    posts: int = 0
    events_sent: int = 0
    accepted: int = 0
    rejected: int = 0
    gateway_errors: int = 0  # transport errors and 5xx (events then not accepted)
    late_ticks: int = 0  # ticks that started after their schedule (the driver fell behind)
    driver_errors: int = 0  # steps the driver itself failed (counted as errors)
    served_versions: Counter = field(default_factory=Counter)
    sources: Counter = field(default_factory=Counter)
    #: item -> first time (epoch s) a personalized answer showed it to a shopper who had
    #: browsed its category in this session
    first_personalized: dict[str, float] = field(default_factory=dict)
    #: item -> when the gateway accepted its first event (the start of its surge)
    first_sent: dict[str, float] = field(default_factory=dict)
    versions_timeline: list[tuple[float, str, str]] = field(default_factory=list)


class Driver:
    def __init__(
        self,
        traffic: ReactiveTraffic,
        gateway_url: str,
        read_url: str,
        *,
        k: int = 10,
        watch: set[str] | None = None,
    ) -> None:
        self.traffic = traffic
        self.gateway_url = gateway_url.rstrip("/")
        self.read_url = read_url.rstrip("/")
        self.k = k
        self.watch = watch if watch is not None else set()  # items whose first showing counts
        self.stats = TrafficStats()
        self._last_version: dict[str, str] = {}

    async def send_lines(self, client: httpx.AsyncClient, lines: list[str]) -> None:
        """POST a batch (``[...]`` of raw lines); counts verdicts and errors."""
        if not lines:
            return
        body = b"[" + b",".join(line.encode() for line in lines) + b"]"
        self.stats.posts += 1
        self.stats.events_sent += len(lines)
        try:
            resp = await client.post(
                self.gateway_url + "/events",
                content=body,
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError:
            self.stats.gateway_errors += len(lines)
            return
        if resp.status_code != 200:
            self.stats.gateway_errors += len(lines)
            return
        verdict = orjson.loads(resp.content)
        self.stats.accepted += int(verdict.get("accepted", 0))
        self.stats.rejected += int(verdict.get("rejected", 0))

    async def _read(self, client: httpx.AsyncClient, slot: int) -> list[str] | None:
        shopper = self.traffic.active[slot]
        params: dict[str, Any] = {"k": self.k, "device": shopper.device}
        if shopper.user_id:
            params["user_id"] = shopper.user_id
        else:
            params["session_id"] = shopper.session_id
        self.stats.reads += 1
        try:
            resp = await client.get(self.read_url + "/recommendations", params=params)
        except httpx.HTTPError:
            self.stats.read_errors += 1
            return None
        if resp.status_code != 200:
            self.stats.read_errors += 1
            return None
        doc = orjson.loads(resp.content)
        items = [x["item_id"] for x in doc.get("items", [])]
        self._observe(slot, doc, items)
        return items

    def _observe(self, slot: int, doc: dict[str, Any], items: list[str]) -> None:
        st = self.stats
        source, tier = str(doc.get("source")), str(doc.get("tier"))
        st.sources[f"{source}/{tier}"] += 1
        version = str(doc.get("model_version"))
        variant = str(doc.get("variant"))
        if source == "cache" and tier == "personalized":
            st.served_versions[f"{variant}:{version}"] += 1
            if self._last_version.get(variant) != version:
                self._last_version[variant] = version
                st.versions_timeline.append((time.time(), variant, version))
            if self.watch:
                cats = {self.traffic.category_of(i) for i in self.traffic.active[slot].seen}
                now = time.time()
                for item in items:
                    fresh = item in self.watch and item not in st.first_personalized
                    if fresh and self.traffic.category_of(item) in cats:
                        st.first_personalized[item] = now

    async def _tick(self, client: httpx.AsyncClient, n: int) -> None:
        try:
            await self._tick_steps(client, n)
        except Exception as exc:  # noqa: BLE001 - counted, reported, never silent
            self.stats.driver_errors += 1
            if self.stats.driver_errors <= 3:
                print(f"traffic driver error: {exc!r}", flush=True)

    async def _tick_steps(self, client: httpx.AsyncClient, n: int) -> None:
        slots = []
        seen = set()
        for _ in range(n):
            slot = self.traffic.pick()
            if slot not in seen:
                seen.add(slot)
                slots.append(slot)
        shown = await asyncio.gather(*(self._read(client, s) for s in slots))
        lines: list[str] = []
        stepped: list[str] = []
        for slot, items in zip(slots, shown, strict=True):
            step, took = self.traffic.step(slot, items)
            lines.extend(step)
            stepped.append(self.traffic.last_item)
            self.stats.steps += 1
            self.stats.took += took
        await self.send_lines(client, lines)
        if self.watch:
            now = time.time()
            for item in stepped:
                if item in self.watch and item not in self.stats.first_sent:
                    self.stats.first_sent[item] = now

    async def run(self, rate: float, seconds: float, stop: asyncio.Event | None = None) -> None:
        """``rate`` steps/s for ``seconds``, open loop; ticks overlap when answers are slow."""
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
            t0 = time.monotonic()
            pending: set[asyncio.Task[None]] = set()
            carry = 0.0
            tick = 0
            while time.monotonic() - t0 < seconds and not (stop and stop.is_set()):
                due = t0 + tick * TICK_S
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -TICK_S:
                    self.stats.late_ticks += 1
                carry += rate * TICK_S
                n = int(carry)
                carry -= n
                if n:
                    task = asyncio.create_task(self._tick(client, n))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                tick += 1
            if pending:
                await asyncio.gather(*pending)
