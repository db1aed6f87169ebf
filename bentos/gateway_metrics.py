"""Prometheus metrics of the event gateway: what came in, where it went, how fast.

WHY: "in = accepted + dead-lettered" is the gateway's promise; these counters let an
operator (and the hostile-input tests) check it from outside over any window, next to the
responses by status code. ``flashrec_gateway_request_total`` keeps the name and the
``http_response_code`` label of BentoML's request counter (switched off here, see
``gateway``), so dashboards and the SLO benchmark read 5xx the same way. Its ``endpoint``
label is the route, or "other": a label per raw path would grow without bound.
Created in the worker, like ``read_metrics``: BentoML sets ``PROMETHEUS_MULTIPROC_DIR`` in
each worker after the module is imported.
"""

from __future__ import annotations

from typing import Any

ROUTES = frozenset({"/events", "/openapi/gateway.json", "/healthz", "/livez", "/readyz"})
#: Seconds from the request's arrival to the response's start (a batch POST appends to the
#: log before it answers, so this is the acceptance latency a producer sees).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class GatewayMetrics:
    """Responses by route and status, events by outcome, whole bodies refused by status."""

    def __init__(self) -> None:
        import prometheus_client as pc

        self.events = pc.Counter(
            "flashrec_gateway_events",
            "Events in readable bodies, by outcome: accepted (appended to the event log), "
            "dead_lettered (rejected, in the dead-letter stream), dead_letter_lost (rejected, "
            "the dead-letter append failed after the accepted ones were appended).",
            ["outcome"],
        )
        self.responses = pc.Counter(
            "flashrec_gateway_request",
            "Responses of the gateway, by route ('other' for any unknown path) and status.",
            ["endpoint", "http_response_code"],
        )
        self.latency = pc.Histogram(
            "flashrec_gateway_request_duration_seconds",
            "Time to the start of the response, by route ('other' for any unknown path).",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
        )
        self.refused = pc.Counter(
            "flashrec_gateway_refused_bodies",
            "Bodies refused as a whole (unreadable, too large, too slow), by status.",
            ["status"],
        )
        self._children: dict[tuple[str, ...], Any] = {}
        for outcome in ("accepted", "dead_lettered", "dead_letter_lost"):
            self._child(self.events, outcome)  # exported as 0 from the start

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def response(self, path: str, status: int, seconds: float | None = None) -> None:
        endpoint = path if path in ROUTES else "other"
        self._child(self.responses, endpoint, str(status)).inc()
        if seconds is not None:
            self._child(self.latency, endpoint).observe(seconds)

    def ingested(self, accepted: int, dead_lettered: int, lost: int) -> None:
        for outcome, n in (
            ("accepted", accepted),
            ("dead_lettered", dead_lettered),
            ("dead_letter_lost", lost),
        ):
            if n:
                self._child(self.events, outcome).inc(n)

    def refused_body(self, status: int) -> None:
        self._child(self.refused, str(status)).inc()
