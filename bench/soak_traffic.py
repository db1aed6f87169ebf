"""The soak's traffic: shoppers and sessions that come and go, through the gateway.

    python -m bench.soak_traffic --events 2000000 --rate 1000 --cohort-s 60 --run-id R

WHY its own generator (not the simulator's stream): a soak must show that nothing grows
with the number of shoppers ever seen, so every ``cohort_s`` a new cohort of known
shoppers and anonymous sessions replaces the last one; each shopper browses the catalog
(views, clicks, carts, purchases over the simulator's items, popular ones more often) and
gets a dozen or more events, enough to be scored by the model. A reader thread asks the
read API for the current cohort's lists (impressions, so attribution has work too).

Runs as its own process (building and posting events costs CPU that must not share the
sampler's GIL). Prints one JSON report: sent, accepted, rejected, failed, elapsed, rate.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from datetime import UTC, datetime

from flashrec.publish import GatewaySink, publish
from flashrec.settings import Settings
from flashrec.simulator import SimulationConfig
from flashrec.simulator.stream import LiveTraffic

EVENT_TYPES = ("view", "click", "add_to_cart", "purchase")
WEIGHTS = (0.72, 0.17, 0.08, 0.03)


class Cohorts:
    """Event lines of the cohort that is current at each moment."""

    def __init__(
        self, items: list[str], run_id: str, cohort_s: float, users: int, seed: int = 7
    ) -> None:
        self.items = items
        self.popularity = [1.0 / (rank + 1) ** 0.8 for rank in range(len(items))]
        self.run_id, self.cohort_s, self.users = run_id, cohort_s, users
        self.rng = random.Random(seed)
        self.t0 = time.monotonic()
        self.seq = 0

    def cohort(self) -> int:
        return int((time.monotonic() - self.t0) // self.cohort_s)

    def shopper(self, cohort: int | None = None) -> tuple[str | None, str]:
        """(user_id or None for an anonymous shopper, session_id) of the given cohort."""
        c = self.cohort() if cohort is None else cohort
        i = self.rng.randrange(self.users)
        if i % 10 < 3:
            return None, f"soak-{self.run_id}-c{c}-a{i}"
        user = f"soak-{self.run_id}-c{c}-u{i}"
        return user, f"{user}-s"

    def lines(self, n: int) -> list[str]:
        now = datetime.now(UTC).isoformat()
        items = self.rng.choices(self.items, weights=self.popularity, k=n)
        kinds = self.rng.choices(EVENT_TYPES, weights=WEIGHTS, k=n)
        cohort = self.cohort()
        out = []
        for item, kind in zip(items, kinds, strict=True):
            user, session = self.shopper(cohort)
            self.seq += 1
            event = {
                "event_id": f"soak-{self.run_id}-{self.seq}",
                "event_time": now,
                "event_type": kind,
                "user_id": user,
                "session_id": session,
                "item_id": item,
            }
            if kind in ("add_to_cart", "purchase"):
                event.update(price=19.99, quantity=1)
            out.append(json.dumps(event, separators=(",", ":")))
        return out


def read_loop(cohorts: Cohorts, port: int, rate: float, stop: threading.Event) -> None:
    from bench.slo_load import ReadClient

    client = ReadClient(port)
    while not stop.is_set():
        user, _ = cohorts.shopper()
        if user is not None:
            client.items(user)
        stop.wait(1.0 / rate)
    client.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.soak_traffic")
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--rate", type=float, default=1000.0, help="events/s")
    ap.add_argument("--cohort-s", type=float, default=60.0, help="a new cohort this often")
    ap.add_argument("--users", type=int, default=2000, help="shoppers per cohort")
    ap.add_argument("--reads", type=float, default=20.0, help="reads/s of the read API")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--run-id", default="soak")
    args = ap.parse_args(argv)
    settings = Settings.from_env()
    # the catalog's item_created events first (categories), as the simulator's stream does
    publish("gateway", 100.0, 2.0, settings=settings, run_id=f"{args.run_id}-boot")
    traffic = LiveTraffic(SimulationConfig.from_settings(settings), run_id="catalog")
    cohorts = Cohorts(list(traffic.catalog.item_ids), args.run_id, args.cohort_s, args.users)
    stop = threading.Event()
    reader = threading.Thread(
        target=read_loop, args=(cohorts, settings.read_api_port, args.reads, stop), daemon=True
    )
    reader.start()
    sink = GatewaySink(f"http://127.0.0.1:{settings.gateway_port}")
    t0 = time.monotonic()
    sent = 0
    while sent < args.events:
        n = min(args.batch, args.events - sent)
        sink(cohorts.lines(n))
        sent += n
        ahead = sent / args.rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    elapsed = time.monotonic() - t0
    stop.set()
    reader.join(5)
    sink.close()
    s = sink.stats
    report = {
        "sent": sent,
        "accepted": s.accepted,
        "rejected": s.rejected,
        "failed": s.failed,
        "elapsed_s": round(elapsed, 1),
        "achieved_eps": round(sent / max(elapsed, 1e-9), 1),
        "cohorts": cohorts.cohort() + 1,
    }
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
