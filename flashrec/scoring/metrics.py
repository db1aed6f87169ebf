"""Prometheus metrics of the scorer, on its own port (``FLASHREC_SCORER_METRICS_PORT``).

WHY mostly read at scrape time: the scorer already keeps its counters (``ScorerStats``)
for ``status``; a collector turns them into counters and gauges when Prometheus asks, so
the batch loop does no extra work for them. Only the batch time is a histogram, fed by the
scorer's ``observer`` hook. The rescore group's lag (signals not yet read) and pending
(read, not yet acknowledged) are asked from Redis per scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from flashrec.admin_http import AdminConfig, AdminServer, process_metrics
from flashrec.scoring.scorer import BatchResult, Scorer
from flashrec.settings import Settings

log = logging.getLogger(__name__)

BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ScorerCollector:
    """Counters and gauges of one running scorer, read when scraped."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        st = self.scorer.stats

        def counter(name: str, doc: str, value: float) -> Any:
            return CounterMetricFamily(f"flashrec_scorer_{name}", doc, value=value)

        def by_label(name: str, doc: str, label: str, values: dict[str, float]) -> Any:
            family = CounterMetricFamily(f"flashrec_scorer_{name}", doc, labels=[label])
            for key, value in values.items():
                family.add_metric([key], value)
            return family

        yield counter("signals", "Rescore signals processed.", st.signals)
        yield counter("batches", "Batches processed.", st.batches)
        yield counter("shoppers", "Shoppers computed (signals coalesced per batch).", st.shoppers)
        yield by_label(
            "lists",
            "Lists by outcome: written, unchanged (identical and fresh: not rewritten), "
            "refused_older (a newer list was already cached).",
            "outcome",
            {
                "written": st.lists_written,
                "unchanged": st.lists_unchanged,
                "refused_older": st.lists_refused_older,
            },
        )
        yield counter("segment_lists", "Popularity and segment lists refreshed.", st.segment_lists)
        yield counter(
            "dead_lettered",
            "Shoppers dead-lettered: their own features read or model call failed.",
            st.dead_lettered,
        )
        yield by_label(
            "errors",
            "Errors by kind: redis (an outage, waited out), variant (a non-champion list that "
            "failed), step (a batch that failed otherwise; its signals are retried).",
            "kind",
            {"redis": st.redis_errors, "variant": st.variant_errors, "step": st.step_errors},
        )
        yield GaugeMetricFamily(
            "flashrec_scorer_deferred",
            "Shoppers of the last batch left pending (model service down or failing).",
            value=st.deferred,
        )
        yield GaugeMetricFamily(
            "flashrec_scorer_model_service_up",
            "1 while the model service answers the scorer.",
            value=1.0 if st.model_service_up else 0.0,
        )
        try:
            health = self.scorer.log.health(self.scorer.config.group)
        except Exception:  # noqa: BLE001 - Redis away: the lag is unknown, not zero
            return
        yield GaugeMetricFamily(
            "flashrec_scorer_lag",
            "Rescore signals not yet read by the scorer's group.",
            value=float(health.lag or 0),
        )
        yield GaugeMetricFamily(
            "flashrec_scorer_pending",
            "Signals read but not yet acknowledged (in a batch, or deferred).",
            value=float(health.pending),
        )


def serve(scorer: Scorer, settings: Settings) -> AdminServer:
    """Register the scorer's metrics and start its /metrics (and /livez) listener."""
    import prometheus_client as pc

    batch = pc.Histogram(
        "flashrec_scorer_batch_seconds",
        "Time to process one batch (features, model, writes).",
        buckets=BATCH_BUCKETS,
    )

    def observe(_: BatchResult, seconds: float) -> None:
        batch.observe(seconds)

    scorer.observer = observe
    pc.REGISTRY.register(ScorerCollector(scorer))
    server = AdminServer(
        "scorer", AdminConfig.for_service(settings, "scorer"), {"/metrics": process_metrics}
    )
    server.start()
    return server
