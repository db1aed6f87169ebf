"""Prometheus metrics of the attribution worker (``FLASHREC_ATTRIBUTION_METRICS_PORT``).

Read at scrape time from the worker's own counters (``AttributionStats``) and, from Redis,
the lag of its two consumer groups: events not yet read from the event log, impressions
not yet read from the impression stream. A growing lag means conversions are counted late
(the rollout decides on them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flashrec.admin_http import AdminConfig, AdminServer, process_metrics
from flashrec.attribution.worker import AttributionWorker
from flashrec.serving import keys
from flashrec.settings import Settings


class AttributionCollector:
    def __init__(self, worker: AttributionWorker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        st = self.worker.stats
        for name, doc, value in (
            ("impressions", "Served impressions remembered (shadow ones are not).", st.impressions),
            (
                "impressions_in_test",
                "Impressions counted for a canary arm.",
                st.impressions_in_test,
            ),
            ("events", "Events read from the event log.", st.events),
            ("attributed", "Clicks, carts and purchases credited to an impression.", st.attributed),
            ("replayed", "Events seen before (a replay), not counted again.", st.replayed),
            ("bad_payloads", "Log entries that were not events.", st.bad_payloads),
            ("errors", "Steps that failed (Redis away, or a bad batch), retried.", st.errors),
        ):
            yield CounterMetricFamily(f"flashrec_attribution_{name}", doc, value=value)
        lag = GaugeMetricFamily(
            "flashrec_attribution_lag",
            "Entries not yet read by the worker, by stream (events, impressions).",
            labels=["stream"],
        )
        group = self.worker.config.group
        try:
            lag.add_metric(["events"], float(self.worker.log.health(group).lag or 0))
            for info in self.worker.client.xinfo_groups(keys.IMPRESSIONS):
                name = info.get("name", info.get(b"name"))
                if name in (group, group.encode()):
                    lag.add_metric(["impressions"], float(info.get("lag", info.get(b"lag")) or 0))
        except Exception:  # noqa: BLE001 - Redis away (or no stream yet): lag unknown
            pass
        yield lag


def serve(worker: AttributionWorker, settings: Settings) -> AdminServer:
    import prometheus_client as pc

    pc.REGISTRY.register(AttributionCollector(worker))
    server = AdminServer(
        "attribution",
        AdminConfig.for_service(settings, "attribution"),
        {"/metrics": process_metrics},
    )
    server.start()
    return server
