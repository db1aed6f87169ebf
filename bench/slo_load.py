"""Load and sampling of the SLO benchmark: wrk in one-second slices, a 1 Hz sampler of the
servers and streams, the event publisher as a process of its own, a gateway client.

WHY wrk in slices: wrk reports once, at its end; run back to back for a second each, it
gives a time series of client-side throughput and percentiles through the surge (the gap
between two slices is a few milliseconds). Each slice's ``done()`` prints its request
count, errors and ~200 latency percentiles, so slices merge into stage-level percentiles
weighted by their requests (``slo_report.merged_quantile``).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
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

# Percentiles each slice reports: fine steps in the tail, where the targets are.
PERCENTS = [x / 2 for x in range(1, 199)] + [99.6, 99.7, 99.8, 99.9, 99.95, 99.99]

WRK_LUA = """
-- the benchmark's read mix: known shoppers and anonymous sessions with a cached list, and
-- fresh anonymous sessions (segment tier); the same sequence in every run and thread
local users = {{{users}}}
local sessions = {{{sessions}}}
local devices = {{"desktop", "mobile", "tablet", "app"}}
local referrers = {{"direct", "search", "social", "email"}}
local n = 0
request = function()
  n = n + 1
  local path
  local slot = n % 5
  if slot == 0 or (slot == 1 and #sessions == 0) then
    path = "/recommendations?session_id=anon" .. n .. "&device=" .. devices[n % 4 + 1]
      .. "&referrer=" .. referrers[math.floor(n / 4) % 4 + 1] .. "&k=20"
  elseif slot == 1 then
    path = "/recommendations?session_id=" .. sessions[(n * 7919) % #sessions + 1] .. "&k=20"
  else
    path = "/recommendations?user_id=" .. users[(n * 7919) % #users + 1] .. "&k=20"
  end
  return wrk.format("GET", path)
end

{pacing}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("SLO_WRK %d %d %d %d %d %d %d\\n", summary.requests,
    summary.duration, e.status, e.connect, e.read, e.write, e.timeout))
  if summary.requests > 0 then
    for _, p in ipairs({{{percents}}}) do
      io.write(string.format("SLO_Q %g %d\\n", p, latency:percentile(p)))
    end
    io.write(string.format("SLO_Q 100 %d\\n", latency.max))
  end
end
"""


def wrk_script(users: Sequence[str], sessions: Sequence[str], delay_ms: float = 0.0) -> str:
    """The Lua script (ids must be plain: the read API's id pattern has no quotes).

    ``delay_ms`` > 0 paces each connection (wrk waits that long before each request), so
    the read load is a steady rate instead of as many requests as the machine can serve.
    """
    if not users:
        raise ValueError("the read mix needs at least one known shopper with a list")

    def table(ids: Sequence[str]) -> str:
        return ", ".join(f'"{i}"' for i in ids)

    pacing = f"delay = function() return {delay_ms:.3f} end" if delay_ms > 0 else ""
    return WRK_LUA.format(
        users=table(users),
        sessions=table(sessions),
        percents=", ".join(map(str, PERCENTS)),
        pacing=pacing,
    )


def pacing_delay_ms(connections: int, target_rps: float, latency_ms: float) -> float:
    """Per-connection wait before each request so that ``connections`` closed-loop
    connections send about ``target_rps`` (each cycle = wait + one request's latency)."""
    if target_rps <= 0:
        return 0.0
    return max(connections * 1000.0 / target_rps - latency_ms, 0.1)


def parse_done(out: str) -> tuple[int, int, float, list[tuple[float, float]]]:
    """(requests, errors, duration_s, [(percent, ms)]) from a slice's ``done()`` lines."""
    m = re.search(r"^SLO_WRK (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", out, re.M)
    if not m:
        raise ValueError(f"no SLO_WRK line in wrk's output: {out[-500:]!r}")
    n = [int(x) for x in m.groups()]
    quantiles = [
        (float(p), int(us) / 1000.0) for p, us in re.findall(r"^SLO_Q (\S+) (\d+)$", out, re.M)
    ]
    return n[0], sum(n[2:]), n[1] / 1e6, quantiles


def run_slice(
    port: int, script: Path, seconds: float, connections: int, nice: int = 10
) -> SliceStats:
    """One wrk run; times are ``time.perf_counter()`` values (made relative later)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            "nice", "-n", str(nice), "wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s",
            "--timeout", "5s", "-s", str(script), f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=False,
    )  # fmt: skip
    t1 = time.perf_counter()
    requests, errors, duration, quantiles = parse_done(proc.stdout)
    return SliceStats(t0, t1, requests, errors, duration, quantiles)


class ReadLoad(threading.Thread):
    """wrk slices against one port, back to back, until ``stop``."""

    def __init__(
        self, port: int, script: Path, connections: int, slice_s: float = 1.0, nice: int = 10
    ) -> None:
        super().__init__(name="wrk-slices", daemon=True)
        self.port, self.script, self.connections = port, script, connections
        self.slice_s, self.nice = slice_s, nice
        self.slices: list[SliceStats] = []
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.slices.append(
                    run_slice(self.port, self.script, self.slice_s, self.connections, self.nice)
                )
            except (ValueError, subprocess.SubprocessError, OSError) as exc:
                self.failures.append(str(exc)[:300])
                time.sleep(0.2)


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
    """GET /recommendations of the read API over one keep-alive connection."""

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
