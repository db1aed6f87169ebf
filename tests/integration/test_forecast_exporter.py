"""The forecast exporter as a process against a real Redis: counters in, metrics out."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import httpx
import pytest
import redis

from flashrec.forecast.counters import entries_added
from flashrec.serving.keys import IMPRESSIONS
from flashrec.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration
EVENTS = "flashrec:test:forecast:events"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def test_entries_added_counts_past_trimming(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.delete(EVENTS)
    assert entries_added(client, EVENTS) == 0
    for i in range(50):
        client.xadd(EVENTS, {"i": i}, maxlen=10, approximate=False)
    assert client.xlen(EVENTS) == 10
    assert entries_added(client, EVENTS) == 50
    client.delete(EVENTS)


def test_exporter_process_forecasts_the_live_rates(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.delete(EVENTS, IMPRESSIONS)
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "FLASHREC_EVENTS_STREAM": EVENTS,
        "FLASHREC_FORECAST_INTERVAL_S": "0.25",
        "FLASHREC_FORECAST_HORIZON_S": "30",
    }
    cmd = [sys.executable, "-m", "flashrec.forecast", "run", "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], cwd=PROJECT_ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/livez", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        # ~200 events/s and ~400 reads/s for 4 s, in 20 ms ticks.
        start = time.monotonic()
        while time.monotonic() - start < 4:
            pipe = client.pipeline(transaction=False)
            for _ in range(4):
                pipe.xadd(EVENTS, {"e": 1})
            for _ in range(8):
                pipe.xadd(IMPRESSIONS, {"r": 1}, maxlen=100)
            pipe.execute()
            time.sleep(0.02)
        sent_rate = entries_added(client, EVENTS) / (time.monotonic() - start)
        time.sleep(0.6)  # let the exporter take its next samples
        assert httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        text = httpx.get(f"{base}/metrics", timeout=2).text
        # The last sample interval may straddle the end of the load: compare the smoothed
        # forecast (alpha 0.3 over 0.25 s samples) with what was sent, loosely.
        events = metric(text, "flashrec_forecast_events_per_second")
        reads = metric(text, "flashrec_forecast_reads_per_second")
        assert 0.2 * sent_rate < events < 3 * sent_rate, (events, sent_rate)
        assert reads > events  # twice as many reads as events were sent
        assert metric(text, "flashrec_forecast_horizon_seconds") == 30.0
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0].decode()
        client.delete(EVENTS, IMPRESSIONS)
    assert proc.returncode == 0, out
    assert "forecast exporter on" in out
