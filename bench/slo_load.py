"""Load and sampling of the SLO benchmark: open-loop reads through the surge, a 1 Hz
sampler of the servers and streams, the event publisher as a process of its own, a
gateway client.

The reads' raw samples are cut into one-second slices (``slices_of``) for the time series;
a stage's percentiles come from all its raw samples, never from merged slices.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from bench.slo_read import metrics_text, parse_histogram
from bench.slo_report import Sample, SliceStats, degraded_count, served_counts
from flashrec.publish import GatewaySink
from flashrec.settings import PROJECT_ROOT


class OpenLoopReads(threading.Thread):
    """Reads at a fixed offered rate through the surge (``bench.open_loop`` in a process of
    its own), then cut into one-second slices *of raw samples* for the time series.

    WHY open loop: wrk paced with ``delay()`` is closed loop, so a slow answer delays the
    requests behind it and its latency never shows (coordinated omission). Here each
    request's latency counts from when it was due, whatever came before it.
    """

    def __init__(self, url: str, paths: list[str], rate: float, max_duration_s: float) -> None:
        super().__init__(name="open-loop-reads", daemon=True)
        self.url, self.paths, self.rate, self.max_duration_s = url, paths, rate, max_duration_s
        self.slices: list[SliceStats] = []
        self.failures: list[str] = []
        self.errors = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import signal
        import tempfile

        import numpy as np

        with tempfile.TemporaryDirectory(prefix="surge-reads-") as tmp:
            paths_file, out = Path(tmp) / "paths.txt", Path(tmp) / "samples.npy"
            paths_file.write_text("\n".join(self.paths))
            proc = subprocess.Popen(
                [
                    sys.executable, "-m", "bench.open_loop", "--url", self.url, "--paths",
                    str(paths_file), "--rate", str(self.rate), "--duration",
                    str(self.max_duration_s), "--out", str(out),
                ],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            while proc.poll() is None and not self.stop.wait(0.5):
                pass
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            stdout, stderr = proc.communicate(timeout=60)
            if proc.returncode != 0 or not out.exists():
                self.failures.append(f"open-loop generator failed: {stderr[-300:]}")
                return
            self.errors = int(json.loads(stdout.strip().splitlines()[-1])["errors"])
            rows = np.load(out)
        offset = time.time() - time.perf_counter()  # wall -> this process's perf_counter
        self.slices = slices_of(rows[:, 0] - offset, rows[:, 1])


def slices_of(due: Any, latency_ms: Any, width_s: float = 1.0) -> list[SliceStats]:
    """One-second slices of raw samples (by due time): rate and every latency in each."""
    import numpy as np

    if len(due) == 0:
        return []
    start = float(np.min(due))
    bins = ((due - start) // width_s).astype(int)
    out = []
    for b in range(int(bins.max()) + 1):
        lat = latency_ms[bins == b]
        t0 = start + b * width_s
        out.append(SliceStats(t0, t0 + width_s, int(len(lat)), 0, width_s, latencies_ms=lat))
    return out


def group_lag(client: redis.Redis, stream: str, group: str) -> int | None:
    try:
        for info in client.xinfo_groups(stream):
            if info["name"] in (group, group.encode()):
                lag = info.get("lag")
                return None if lag is None else int(lag)
    except redis.ResponseError:
        return None
    return None


class Sampler(threading.Thread):
    """About once a second: the read API's /metrics, the event log's length, the Flink job's
    and the scorer's consumer lag, the load average."""

    def __init__(
        self,
        read_port: int,
        redis_url: str,
        events_stream: str,
        rescore_stream: str,
        period_s: float = 1.0,
    ) -> None:
        super().__init__(name="sampler", daemon=True)
        self.read_port = read_port
        self.client = redis.Redis.from_url(redis_url, socket_timeout=5)
        self.events_stream, self.rescore_stream = events_stream, rescore_stream
        self.period_s = period_s
        self.samples: list[Sample] = []
        self.stop = threading.Event()

    def take(self) -> Sample:
        t = time.perf_counter()
        text = metrics_text(self.read_port)
        events = int(self.client.xlen(self.events_stream))
        return Sample(
            t=t,
            events=events,
            latency=parse_histogram(text),
            served=served_counts(text),
            flink_lag=group_lag(self.client, self.events_stream, "flink-features"),
            scorer_lag=group_lag(self.client, self.rescore_stream, "scorer"),
            load1=os.getloadavg()[0],
            degraded=degraded_count(text),
        )

    def run(self) -> None:
        next_at = time.perf_counter()
        while not self.stop.is_set():
            # a missed second shows as a longer interval, not as made-up data
            with contextlib.suppress(redis.RedisError, OSError, ValueError):
                self.samples.append(self.take())
            next_at += self.period_s
            self.stop.wait(max(0.0, next_at - time.perf_counter()))
        self.client.close()


def gateway_client(port: int) -> GatewaySink:
    """The publisher's gateway client on a loopback port: ``post(lines)`` -> verdict."""
    return GatewaySink(f"http://127.0.0.1:{port}")


class ReadClient:
    """GET /recommendations of the read API over one keep-alive connection.

    WHY the standard library's client, not httpx: the probes time the read leg of click ->
    list, and a bare ``http.client`` request adds the least of its own to what is measured
    (httpx costs a few hundred microseconds more per request on this machine)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._conn: http.client.HTTPConnection | None = None

    def items(self, user_id: str, k: int = 20) -> list[str] | None:
        """Item ids served to ``user_id``; None when the read API did not answer 200."""
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self._conn.request("GET", f"/recommendations?user_id={user_id}&k={k}")
                resp = self._conn.getresponse()
                data = resp.read()
            except (ConnectionError, http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    return None
                continue
            if resp.status != 200:
                return None
            return [i["item_id"] for i in json.loads(data)["items"]]
        return None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def spawn_publisher(
    ramp: Sequence[tuple[float, float]], run_id: str, log: Path, *, bootstrap: bool
) -> subprocess.Popen[bytes]:
    """``python -m flashrec.publish`` through the gateway (its own process: generating
    events costs CPU that must not share this process's GIL with the probes)."""
    argv = [
        sys.executable, "-m", "flashrec.publish", "--via", "gateway",
        "--ramp", ",".join(f"{r:g}:{s:g}" for r, s in ramp), "--run-id", run_id,
    ]  # fmt: skip
    if not bootstrap:
        argv.append("--no-bootstrap")
    return subprocess.Popen(
        argv,
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=log.open("ab"),
    )


def publisher_report(proc: subprocess.Popen[bytes], timeout_s: float) -> dict[str, Any]:
    """The publisher's JSON report (after it exits), or ``{"error": ...}``."""
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return {"error": "the publisher overran its time and was killed"}
    lines = [x for x in out.decode(errors="replace").splitlines() if x.startswith("{")]
    if not lines:
        return {"error": f"the publisher exited with {proc.returncode} and no report"}
    return json.loads(lines[-1])
