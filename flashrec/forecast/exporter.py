"""The forecast exporter: samples the stream counters, forecasts, serves Prometheus metrics.

One small process (``python -m flashrec.forecast run``) so that the autoscalers have a
leading signal: the Kubernetes HPAs of the gateway, the read API and the scorer scale on
``flashrec_forecast_*_per_second`` (an External metric through the Prometheus adapter)
next to CPU. It reads two counters from Redis once per ``forecast_interval_s`` and keeps
no other state, so a restart costs only a few seconds of smoothing.

HTTP: ``/metrics`` (Prometheus text), ``/livez`` (the process answers: never depends on
Redis, so a Redis outage does not restart it) and ``/readyz`` (the last sample reached
Redis within three intervals).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from flashrec.forecast.counters import CounterRate, StreamInfo, entries_added
from flashrec.forecast.holt import HoltForecaster
from flashrec.serving.keys import IMPRESSIONS
from flashrec.settings import Settings

log = logging.getLogger("flashrec.forecast")


@dataclass
class Series:
    """One forecast rate: its counter, its smoother and its gauges."""

    name: str
    stream: str
    counter: CounterRate = field(default_factory=CounterRate)
    model: HoltForecaster = field(default_factory=HoltForecaster)


class ForecastExporter:
    """Samples the counters (``sample``) and holds the metrics to serve."""

    def __init__(self, settings: Settings, client: StreamInfo) -> None:
        self.client = client
        self.horizon_s = settings.forecast_horizon_s
        self.interval_s = settings.forecast_interval_s
        # Reads are served lists: the read API appends one impression per answer.
        self.series = [
            Series("events", settings.events_stream),
            Series("reads", IMPRESSIONS),
        ]
        self.registry = CollectorRegistry()
        self.observed = {
            s.name: Gauge(
                f"flashrec_observed_{s.name}_per_second",
                f"{s.name} per second over the last sample interval",
                registry=self.registry,
            )
            for s in self.series
        }
        self.forecast = {
            s.name: Gauge(
                f"flashrec_forecast_{s.name}_per_second",
                f"{s.name} per second expected flashrec_forecast_horizon_seconds from now",
                registry=self.registry,
            )
            for s in self.series
        }
        Gauge(
            "flashrec_forecast_horizon_seconds", "how far ahead the forecasts look",
            registry=self.registry,
        ).set(self.horizon_s)  # fmt: skip
        self.errors = Gauge(
            "flashrec_forecast_sample_errors", "samples that could not read Redis",
            registry=self.registry,
        )  # fmt: skip
        self.last_ok: float | None = None

    def sample(self, now: float | None = None) -> dict[str, float]:
        """Read each counter once, update the forecasts; returns ``{name: forecast}``."""
        now = time.monotonic() if now is None else now
        out = {}
        try:
            values = {s.name: entries_added(self.client, s.stream) for s in self.series}
        except Exception as exc:
            self.errors.inc()
            log.warning("could not read the stream counters: %r", exc)
            return out
        for s in self.series:
            previous = s.counter.last_time
            rate = s.counter.observe(values[s.name], now)
            if rate is None or previous is None:
                continue
            s.model.update(rate, dt=now - previous)
            out[s.name] = s.model.forecast(self.horizon_s)
            self.observed[s.name].set(rate)
            self.forecast[s.name].set(out[s.name])
        self.last_ok = now
        return out

    def ready(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.last_ok is not None and now - self.last_ok <= 3 * self.interval_s + 1

    def metrics(self) -> bytes:
        return generate_latest(self.registry)

    def run(self, stop: threading.Event) -> None:
        """Sample every ``interval_s`` until ``stop`` is set."""
        while not stop.is_set():
            started = time.monotonic()
            self.sample(started)
            stop.wait(max(self.interval_s - (time.monotonic() - started), 0.0))


def make_server(exporter: ForecastExporter, host: str, port: int) -> ThreadingHTTPServer:
    """``/metrics``, ``/livez`` and ``/readyz`` on ``host:port`` (port 0: any free one)."""
    routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
        "/metrics": lambda: (200, CONTENT_TYPE_LATEST, exporter.metrics()),
        "/livez": lambda: (200, "text/plain", b"alive\n"),
        "/readyz": lambda: (
            (200, "text/plain", b"ready\n")
            if exporter.ready()
            else (503, "text/plain", b"no recent sample from Redis\n")
        ),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            route = routes.get(self.path.split("?", 1)[0])
            status, kind, body = route() if route else (404, "text/plain", b"not found\n")
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # quiet: scraped every few seconds
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
