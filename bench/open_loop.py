"""An open-loop HTTP load generator: requests leave at a fixed rate, whatever the server does.

WHY not wrk: wrk is closed loop (each connection waits for its answer before sending the
next request; pacing with ``delay()`` only spaces them), so a slow answer delays every
request behind it and the latencies it reports leave that waiting out (coordinated
omission). Here request ``i`` is *due* at ``t0 + i / rate``; its latency is measured from
that due time to the end of its answer, so time spent queued behind a slow answer, in the
client or the server, is counted. Connections are opened on demand (up to ``max_conns``)
so the schedule never waits for a free one; a request that finds every connection busy
waits in the generator's queue, and that wait is counted too.

Raw samples come back as numpy arrays (each completed request's latency, and its due
time as wall-clock seconds so other processes can line them up with their own events):
percentiles are computed from all of them, never merged from per-second summaries.

    python -m bench.open_loop --url http://127.0.0.1:3002 --paths paths.txt --rate 1000 \
        --duration 10 --out samples.npy

Costs about 60-90 us of CPU per request in this process (asyncio protocols over uvloop,
pre-built request bytes, minimal response parsing); the benchmarks measure the bare
baseline with the same generator in the same run, so its cost weighs on both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from bench.stats import percentile


@dataclass
class OpenLoopResult:
    rate: float  # offered requests per second
    duration_s: float
    latencies_ms: np.ndarray  # per completed request, from its due time
    due_s: np.ndarray  # the same requests' due times (epoch seconds)
    sent: int
    completed: int
    errors: int  # non-2xx, transport errors
    unfinished: int  # still in flight or queued at the end (counted apart, not in latency)
    elapsed_s: float
    max_conns_used: int

    @property
    def achieved_rps(self) -> float:
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    def to_dict(self) -> dict[str, float]:
        return {
            "offered_rps": self.rate,
            "achieved_rps": round(self.achieved_rps, 1),
            "p50_ms": round(self.percentile(50), 3),
            "p99_ms": round(self.percentile(99), 3),
            "p999_ms": round(self.percentile(99.9), 3),
            "sent": self.sent,
            "completed": self.completed,
            "errors": self.errors,
            "unfinished": self.unfinished,
            "max_conns_used": self.max_conns_used,
        }


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request at a time, answers parsed minimally."""

    def __init__(self, on_done) -> None:
        self.on_done = on_done
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.due = 0.0
        self.busy = False
        self.closed = False

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes, due: float) -> None:
        self.busy, self.due = True, due
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = bytes(self.buf[:head_end]).lower()
        length = 0
        start = head.find(b"content-length:")
        if start >= 0:
            end = head.find(b"\r\n", start)
            length = int(head[start + 15 : end if end > 0 else None].strip() or 0)
        total = head_end + 4 + length
        if len(self.buf) < total:
            return
        status = int(bytes(self.buf[9:12]))
        del self.buf[:total]
        self.busy = False
        self.on_done(self, status, self.due)

    def connection_lost(self, exc) -> None:  # type: ignore[override]
        self.closed = True
        if self.busy:
            self.busy = False
            self.on_done(self, 0, self.due)


async def run_open_loop(
    url: str,
    paths: list[str],
    rate: float,
    duration_s: float,
    *,
    max_conns: int = 256,
    drain_s: float = 5.0,
    stop: asyncio.Event | None = None,
) -> OpenLoopResult:
    """Send ``rate`` requests/s for ``duration_s`` (paths round-robin; ``stop`` ends the
    sending early), then wait up to ``drain_s`` for answers still due."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    requests = [
        f"GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: keep-alive\r\n\r\n".encode()
        for p in paths
    ]
    loop = asyncio.get_running_loop()
    idle: deque[_Conn] = deque()
    waiting: deque[tuple[bytes, float]] = deque()
    conns: list[_Conn] = []
    latencies: list[float] = []
    dues: list[float] = []
    errors = 0
    opening = 0
    done_event = asyncio.Event()
    outstanding = 0

    def on_done(conn: _Conn, status: int, due: float) -> None:
        nonlocal errors, outstanding
        outstanding -= 1
        if 200 <= status < 300:
            latencies.append((time.perf_counter() - due) * 1000)
            dues.append(due)
        else:
            errors += 1
        if not conn.closed:
            if waiting:
                req, d = waiting.popleft()
                conn.send(req, d)
            else:
                idle.append(conn)
        if outstanding == 0:
            done_event.set()

    async def open_conn() -> None:
        nonlocal opening
        opening += 1
        try:
            _, proto = await loop.create_connection(lambda: _Conn(on_done), host, port)
        except OSError:
            opening -= 1
            return
        opening -= 1
        conns.append(proto)
        if waiting:
            req, d = waiting.popleft()
            proto.send(req, d)
        else:
            idle.append(proto)

    for _ in range(min(8, max_conns)):
        await open_conn()
    interval = 1.0 / rate
    total = int(rate * duration_s)
    t0 = time.perf_counter()
    sent = 0
    while sent < total and not (stop is not None and stop.is_set()):
        now = time.perf_counter()
        due_count = min(total, int((now - t0) / interval) + 1)
        while sent < due_count:
            due = t0 + sent * interval
            req = requests[sent % len(requests)]
            outstanding += 1
            done_event.clear()
            while idle and idle[0].closed:
                idle.popleft()
            if idle:
                idle.popleft().send(req, due)
            else:
                waiting.append((req, due))
                if len(conns) + opening < max_conns:
                    loop.create_task(open_conn())
            sent += 1
        next_due = t0 + sent * interval
        await asyncio.sleep(max(0.0, next_due - time.perf_counter()))
    end_send = time.perf_counter()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done_event.wait(), timeout=drain_s)
    elapsed = max(end_send - t0, 1e-9)
    wall_offset = time.time() - time.perf_counter()
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    return OpenLoopResult(
        rate=rate,
        duration_s=duration_s,
        latencies_ms=np.asarray(latencies, dtype=np.float64),
        due_s=np.asarray(dues, dtype=np.float64) + wall_offset,
        sent=sent,
        completed=len(latencies),
        errors=errors,
        unfinished=max(outstanding, 0),
        elapsed_s=elapsed,
        max_conns_used=len(conns),
    )


def measure(url: str, paths: list[str], rate: float, duration_s: float, **kw) -> OpenLoopResult:
    """Run one constant-rate stage on uvloop (in this process); SIGTERM ends it early and
    still returns (and saves) what it measured."""
    import signal

    import uvloop

    async def main() -> OpenLoopResult:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        return await run_open_loop(url, paths, rate, duration_s, stop=stop, **kw)

    return uvloop.run(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.open_loop", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--paths", type=Path, required=True, help="one request path per line")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--max-conns", type=int, default=256)
    parser.add_argument(
        "--out", type=Path, help="raw samples (.npy): rows of (due epoch s, latency ms)"
    )
    args = parser.parse_args(argv)
    paths = [line for line in args.paths.read_text().splitlines() if line]
    res = measure(args.url, paths, args.rate, args.duration, max_conns=args.max_conns)
    if args.out:
        np.save(args.out, np.column_stack([res.due_s, res.latencies_ms]))
    print(json.dumps(res.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
