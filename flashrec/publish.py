"""Drive the simulator's live stream into the gateway (HTTP) or straight into the event log.

    python -m flashrec.publish --via gateway --rate 500 --duration 10
    python -m flashrec.publish --via log --ramp "100:10,1000:10,10000:10"

Prints one JSON report: lines sent, accepted, rejected, target and achieved rate, and the
POST latencies. Every line is accounted for (``sent == accepted + rejected + failed``), so a
run doubles as an end-to-end check. ``--via log`` still validates through ``ingest`` (the
same verdicts and dead letters as the gateway), minus HTTP.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import numpy as np

from flashrec.ingest import IngestLimits, RedisDedupeStore, ingest
from flashrec.settings import Settings
from flashrec.simulator import SimulationConfig, emit_stream


class GatewayRefused(RuntimeError):
    """The gateway answered a batch with a non-200 status (a wholly unreadable request)."""


@dataclass
class SinkStats:
    accepted: int = 0
    rejected: int = 0
    failed: int = 0  # lines of batches the gateway did not take (non-2xx, connection lost)
    latencies_ms: list[float] = field(default_factory=list)


class GatewaySink:
    """POSTs each batch as a JSON array of raw lines over a keep-alive connection (httpx)."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.stats = SinkStats()
        # one retry of a failed connect: the server may have closed an idle connection
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            timeout=timeout_s,
            transport=httpx.HTTPTransport(retries=1),
            headers={"Content-Type": "application/json"},
        )

    def post(self, lines: list[str]) -> dict[str, Any]:
        """The gateway's verdict for one batch of raw lines.

        Raises ``GatewayRefused`` for a non-200 answer, ``httpx.HTTPError`` when the
        connection fails.
        """
        resp = self._http.post("/events", content=json.dumps(lines).encode("utf-8"))
        if resp.status_code != 200:
            raise GatewayRefused(f"gateway answered {resp.status_code}: {resp.content[:200]!r}")
        return resp.json()

    def __call__(self, lines: list[str]) -> None:
        t0 = time.perf_counter()
        try:
            verdict = self.post(lines)
        except GatewayRefused as exc:
            self.stats.latencies_ms.append((time.perf_counter() - t0) * 1000)
            print(f"publish: {exc}", file=sys.stderr)
            self.stats.failed += len(lines)
            return
        except httpx.HTTPError as exc:
            print(f"publish: POST failed: {exc!r}", file=sys.stderr)
            self.stats.failed += len(lines)
            return
        self.stats.latencies_ms.append((time.perf_counter() - t0) * 1000)
        self.stats.accepted += int(verdict["accepted"])
        self.stats.rejected += int(verdict["rejected"])

    def close(self) -> None:
        self._http.close()


class LogSink:
    """Validates and appends in-process through ``ingest`` (source ``publish``)."""

    def __init__(self, settings: Settings) -> None:
        from flashrec.eventlog.factory import build_event_log

        self.log = build_event_log(settings)
        window = settings.dedupe_window_s
        prefix = f"{settings.events_stream}:seen:"  # the gateway's: one id space per log
        self.dedupe = RedisDedupeStore(settings.redis_url, prefix, window)
        self.limits = IngestLimits.from_settings(settings)
        self.stats = SinkStats()

    def __call__(self, lines: list[str]) -> None:
        t0 = time.perf_counter()
        result = ingest(lines, self.log, self.dedupe, limits=self.limits, source="publish")
        self.stats.latencies_ms.append((time.perf_counter() - t0) * 1000)
        self.stats.accepted += result.accepted
        self.stats.rejected += result.rejected

    def close(self) -> None:
        self.log.close()
        self.dedupe.close()


@dataclass(frozen=True)
class PublishReport:
    via: str
    sent: int
    accepted: int
    rejected: int
    failed: int
    batches: int
    elapsed_s: float
    target_rate_eps: float
    achieved_rate_eps: float
    stages: list[dict[str, float]]
    batch_p50_ms: float | None
    batch_p99_ms: float | None
    #: Deliberate faults among ``sent`` (the simulator's malformed lines and duplicates):
    #: rejections beyond ``bad_lines + duplicates`` are not the simulator's doing.
    bad_lines: int = 0
    duplicates: int = 0
    late_events: int = 0


def _quantile(values: Sequence[float], q: float) -> float | None:
    return round(float(np.quantile(values, q)), 2) if len(values) else None


def parse_ramp(text: str) -> list[tuple[float, float]]:
    """``"100:10,1000:10"`` -> [(100.0, 10.0), (1000.0, 10.0)] (events/s : seconds)."""
    stages = []
    for part in text.split(","):
        rate, _, seconds = part.strip().partition(":")
        if not seconds:
            raise ValueError(f"ramp stage {part!r} is not RATE:SECONDS")
        stages.append((float(rate), float(seconds)))
    return stages


def publish(
    via: str,
    rate_eps: float,
    duration_s: float,
    *,
    settings: Settings | None = None,
    url: str | None = None,
    ramp: Sequence[tuple[float, float]] | None = None,
    batch_size: int = 100,
    run_id: str | None = None,
    bootstrap: bool = True,
) -> PublishReport:
    """Emit the simulator's stream at the given pace into the gateway or the event log."""
    settings = settings or Settings.from_env()
    url = url or f"http://127.0.0.1:{settings.gateway_port}"
    sink: GatewaySink | LogSink = GatewaySink(url) if via == "gateway" else LogSink(settings)
    try:
        stats = emit_stream(
            SimulationConfig.from_settings(settings),
            rate_eps,
            duration_s,
            sink,
            batch_size=batch_size,
            ramp=ramp,
            run_id=run_id,
            bootstrap=bootstrap,
        )
    finally:
        sink.close()
    s = sink.stats
    return PublishReport(
        via=via,
        sent=stats.sent,
        accepted=s.accepted,
        rejected=s.rejected,
        failed=s.failed,
        batches=stats.batches,
        elapsed_s=round(stats.elapsed_s, 3),
        target_rate_eps=round(stats.target_rate_eps, 1),
        achieved_rate_eps=round(stats.achieved_rate_eps, 1),
        stages=[
            {"target_eps": st.target_rate_eps, "achieved_eps": round(st.achieved_rate_eps, 1)}
            for st in stats.stages
        ],
        batch_p50_ms=_quantile(s.latencies_ms, 0.50),
        batch_p99_ms=_quantile(s.latencies_ms, 0.99),
        bad_lines=stats.bad_lines,
        duplicates=stats.duplicates,
        late_events=stats.late_events,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flashrec.publish", description=__doc__)
    parser.add_argument("--via", choices=("gateway", "log"), default="gateway")
    parser.add_argument("--rate", type=float, default=200.0, help="events per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--ramp", help='stages "RATE:SECONDS,...", replaces --rate/--duration')
    parser.add_argument(
        "--url", default=None, help="gateway base URL (default: 127.0.0.1 on FLASHREC_GATEWAY_PORT)"
    )
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--run-id", help="keeps event ids of separate runs apart")
    parser.add_argument(
        "--no-bootstrap",
        action="store_true",
        help="leave out the catalog lines (item_created, sale prices) a previous run sent",
    )
    args = parser.parse_args(argv)
    report = publish(
        args.via,
        args.rate,
        args.duration,
        url=args.url,
        ramp=parse_ramp(args.ramp) if args.ramp else None,
        batch_size=args.batch_size,
        run_id=args.run_id,
        bootstrap=not args.no_bootstrap,
    )
    print(json.dumps(asdict(report)))
    accounted = report.accepted + report.rejected + report.failed == report.sent
    return 0 if accounted and report.failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
