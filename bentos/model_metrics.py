"""Prometheus metrics of the model service, on its admin port (``/metrics``).

Batch sizes (queries per model call, after BentoML's adaptive batcher merged requests),
rank latency, queries a model failed (per variant), and the versions being served
(``flashrec_model_served_info{variant,model_version} 1``, read from the hot-swapped pins
at scrape time). Created in the worker, like ``read_metrics`` (BentoML sets the
multiprocess directory there); the admin route adds every worker's files (BentoML's own
request metrics included) to the versions of the worker that answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ModelMetrics:
    def __init__(self) -> None:
        import prometheus_client as pc

        self.batch = pc.Histogram(
            "flashrec_model_batch_queries",
            "Queries per batched rank call (after the adaptive batcher).",
            buckets=BATCH_BUCKETS,
        )
        self.latency = pc.Histogram(
            "flashrec_model_rank_seconds",
            "Time of one batched rank call (every model it needed).",
            buckets=LATENCY_BUCKETS,
        )
        self.failed = pc.Counter(
            "flashrec_model_failed_queries",
            "Queries answered with an error because their model failed, by variant.",
            ["variant"],
        )

    def ranked(self, queries: int, seconds: float, failed_by_variant: dict[str, int]) -> None:
        self.batch.observe(queries)
        self.latency.observe(seconds)
        for variant, n in failed_by_variant.items():
            self.failed.labels(variant).inc(n)


class ServedVersions:
    """``flashrec_model_served_info`` and the swap count, from the pinned models now."""

    def __init__(self, pinned: Any) -> None:
        self.pinned = pinned

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        info = GaugeMetricFamily(
            "flashrec_model_served_info",
            "1 for each (variant, model version) the service answers with now.",
            labels=["variant", "model_version"],
        )
        for variant, model in self.pinned.current.models.items():
            info.add_metric([variant, str(model.model_version)], 1.0)
        yield info
        yield CounterMetricFamily(
            "flashrec_model_swaps", "Hot swaps of the served models.", value=self.pinned.swaps
        )


def admin_metrics(pinned: Any) -> tuple[int, bytes, str]:
    """GET /metrics of the model service: every worker's metrics plus the served versions."""
    import prometheus_client as pc
    from prometheus_client import multiprocess

    registry = pc.CollectorRegistry()
    try:
        multiprocess.MultiProcessCollector(registry)
    except ValueError:  # outside BentoML: this process's own metrics
        registry = pc.REGISTRY
    served = pc.CollectorRegistry()
    served.register(ServedVersions(pinned))
    body = pc.generate_latest(registry) + pc.generate_latest(served)
    return 200, body, pc.CONTENT_TYPE_LATEST
