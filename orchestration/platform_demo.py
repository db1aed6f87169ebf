"""The online half of `make demo`: start the serving stack, send a short simulated flash
sale through the gateway, ask for recommendations as storefronts would, and summarise.

Components are started through orchestration.stack (supervised, logs under var/logs/)
and stopped again at the end unless they were already running (e.g. after `make up`).
"""

from __future__ import annotations

import json
import logging
import statistics
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

import redis

from flashrec.publish import publish
from flashrec.serving import keys
from flashrec.settings import Settings
from orchestration import stack

log = logging.getLogger("flashrec.demo")
SERVING = ("model_service", "read_api", "flink_features", "scorer", "gateway")


@dataclass
class ReadSummary:
    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    sources: Counter = field(default_factory=Counter)
    tiers: Counter = field(default_factory=Counter)
    sold_out_served: int = 0
    sold_out_in_cache: int = 0


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def shoppers_seen(client: redis.Redis, stream: str, limit: int = 400) -> list[tuple[str, str]]:
    """(kind, id) of shoppers in the newest events: who the storefront would ask for."""
    seen: dict[tuple[str, str], None] = {}
    for _, fields in client.xrevrange(stream, count=5000):
        event = json.loads(fields.get(b"payload", b"{}"))
        if event.get("user_id"):
            seen[("user_id", event["user_id"])] = None
        elif event.get("session_id"):
            seen[("session_id", event["session_id"])] = None
        if len(seen) >= limit:
            break
    return list(seen)


def read_recommendations(settings: Settings, shoppers: list[tuple[str, str]]) -> ReadSummary:
    client = redis.Redis.from_url(settings.redis_url)
    summary = ReadSummary()
    base = f"http://127.0.0.1:{settings.read_api_port}/recommendations"
    for kind, shopper in shoppers:
        started = time.perf_counter()
        status, body = _get(f"{base}?{kind}={shopper}&k=10&device=mobile&referrer=search")
        summary.latencies_ms.append((time.perf_counter() - started) * 1000)
        summary.requests += 1
        if status != 200 or not body.get("items"):
            summary.errors += 1
            continue
        summary.sources[body["source"]] += 1
        summary.tiers[body["tier"]] += 1
        served = [i["item_id"] for i in body["items"]]
        sold_out = {m.decode() for m in client.smembers(keys.SOLDOUT)}
        summary.sold_out_served += len(sold_out.intersection(served))
    summary.sold_out_in_cache = client.scard(keys.SOLDOUT)
    return summary


def run(settings: Settings, rate_eps: float = 200.0, duration_s: float = 20.0) -> str:
    already = {name for name in SERVING if stack._pid(settings, name)}
    chosen = [c for c in stack.components(settings) if c.name in SERVING]
    for component in chosen:
        log.info(stack.start(settings, component))
    try:
        report = publish(
            "gateway",
            rate_eps,
            duration_s,
            settings=settings,
            ramp=[
                (rate_eps / 10, duration_s / 4),
                (rate_eps, duration_s / 2),
                (rate_eps / 2, duration_s / 4),
            ],
        )
        log.info("flash sale sent: %s", report)
        time.sleep(3.0)  # let the stream job and the scorer catch up
        client = redis.Redis.from_url(settings.redis_url)
        reads = read_recommendations(settings, shoppers_seen(client, settings.events_stream))
    finally:
        for component in reversed(chosen):
            if component.name not in already:
                log.info(stack.stop(settings, component.name))
        if not already:  # nothing of `make up` ran before: no supervisord left behind
            log.info(stack.shutdown(settings))
    lat = sorted(reads.latencies_ms) or [0.0]
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    return "\n".join(
        [
            f"Flash sale through the gateway: {report.sent} events sent "
            f"({report.accepted} accepted, {report.rejected} rejected to the dead-letter stream, "
            f"{report.failed} failed), {report.achieved_rate_eps:.0f} events/s at peak target "
            f"{rate_eps:.0f}",
            f"Recommendations: {reads.requests} requests, {reads.errors} errors, "
            f"latency p50 {statistics.median(lat):.1f} ms p99 {p99:.1f} ms (client side, "
            "sequential)",
            f"  sources: {dict(reads.sources)}",
            f"  tiers:   {dict(reads.tiers)}",
            f"  sold-out items now: {reads.sold_out_in_cache}; served anyway: "
            f"{reads.sold_out_served}",
        ]
    )
