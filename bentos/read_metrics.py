"""Prometheus metrics of the read path, exposed on the admin surface's /metrics.

WHY created lazily: BentoML sets ``PROMETHEUS_MULTIPROC_DIR`` in each worker after the
service module is imported; metrics made earlier would be invisible to its multiprocess
collector. WHY cached label children: ``labels(...)`` costs a dict lookup and a lock per
call; the set of (source, tier) and variant values is small, so each child is made once.
"""

from __future__ import annotations

from typing import Any

from flashrec.serving.policy import Decision

LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
AGE_BUCKETS = (1, 5, 15, 60, 300, 600, 1800, 3600, 86_400)


class ReadMetrics:
    """Latency histogram, source/tier counter, cache age, per-variant counter."""

    def __init__(self) -> None:
        import prometheus_client as pc

        self.latency = pc.Histogram(
            "flashrec_read_latency_seconds",
            "Server-side time to answer GET /recommendations (Redis read + policy).",
            buckets=LATENCY_BUCKETS,
        )
        self.served = pc.Counter(
            "flashrec_read_served", "Answers by source and tier.", ["source", "tier"]
        )
        self.age = pc.Histogram(
            "flashrec_read_cache_age_seconds",
            "Age of the cached list served (cache and last_known_good sources).",
            buckets=AGE_BUCKETS,
        )
        self.variant = pc.Counter("flashrec_read_variant", "Answers per A/B variant.", ["variant"])
        self.degraded = pc.Counter(
            "flashrec_read_degraded", "Answers served from the in-process copy (Redis away)."
        )
        self.bad_requests = pc.Counter(
            "flashrec_read_bad_requests", "Requests refused with 400 (bad parameters)."
        )
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, decision: Decision, variant: str, seconds: float, degraded: bool) -> None:
        self.latency.observe(seconds)
        self._child(self.served, decision.source, decision.tier).inc()
        self._child(self.variant, variant).inc()
        if decision.age_ms is not None:
            self.age.observe(decision.age_ms / 1000.0)
        if degraded:
            self.degraded.inc()

    def bad_request(self) -> None:
        self.bad_requests.inc()
