"""The SLO benchmark's pure parts on invented samples (no servers; nothing is timed)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from bench.slo_plots import plot
from bench.slo_report import (
    Probe,
    ReadRun,
    Sample,
    SliceStats,
    SloRun,
    Stage,
    console,
    degraded_count,
    headline,
    last_line,
    leg_breakdown,
    markdown,
    merged_quantile,
    per_second,
    served_counts,
    server_errors,
    source_shares,
    summarize_stages,
    surge_line,
)
from bench.stats import histogram_buckets, histogram_quantile, percentile, samples

LAST_LINE = re.compile(
    r"^slo cores=\d+ read_p99_ms=[\d.]+ read_offered_rps=\d+ read_sat_rps=\d+ "
    r"baseline_sat_rps=\d+ click_to_recs_p99_ms=(\d+|inf) soldout_p99_ms=(\d+|inf) "
    r"soldout_superseded=\d+ errors=\d+$"
)


def test_percentile_interpolates_and_counts_unseen_as_slowest() -> None:
    assert percentile([10, 20, 30, 40, 50], 50) == 30
    assert percentile([10, 20], 50) == 15
    assert percentile([5.0], 99) == 5.0
    assert math.isnan(percentile([], 50))
    values = [1.0] * 98 + [2.0, None]
    assert percentile(values, 50) == 1.0
    assert math.isinf(percentile(values, 99.5))  # falls between 2.0 and an unseen probe
    assert percentile([1.0, 2.0, 3.0, None], 50) == 2.5


def _slice(t0: float, requests: int, fast: float, slow: float) -> SliceStats:
    """Half the requests at ``fast`` ms, the slowest 1% at ``slow`` ms."""
    return SliceStats(t0, t0 + 1, requests, 0, 1.0, [(50.0, fast), (99.0, fast), (100.0, slow)])


def test_slices_merge_weighted_by_requests() -> None:
    busy, quiet = _slice(0, 9000, 1.0, 9.0), _slice(1, 1000, 20.0, 50.0)
    assert busy.q(50) == 1.0 and busy.rps == 9000
    assert busy.q(99.5) == pytest.approx(5.0)  # linear between the 99th and the max
    assert merged_quantile([busy, quiet], 50) == 1.0  # 90% of requests are the busy ones
    assert merged_quantile([busy, quiet], 95) == 20.0
    assert merged_quantile([busy, quiet], 100) == 50.0
    assert math.isnan(merged_quantile([], 50))


def _hist(n_fast: float, n_slow: float) -> dict[float, float]:
    """Cumulative buckets: ``n_fast`` answers under 1 ms, ``n_slow`` in (5, 10] ms."""
    return {0.001: n_fast, 0.005: n_fast, 0.01: n_fast + n_slow, math.inf: n_fast + n_slow}


def fake_run() -> SloRun:
    stages = [Stage(10, 0, 10), Stage(100, 10, 20)]
    samples = []
    for t in range(-1, 22):
        n = max(t + 1, 0)
        samples.append(
            Sample(
                t=float(t),
                events=10 * n if t <= 10 else 110 + 100 * (t - 10),
                latency=_hist(900.0 * n, 100.0 * n),
                served={
                    ("cache", "personalized"): 600.0 * n,
                    ("cache", "content"): 200.0 * n,
                    ("segment", "segment"): 150.0 * n,
                    ("popularity", "popularity"): 50.0 * n,
                },
                flink_lag=0 if t < 15 else 50,
                scorer_lag=0 if t < 20 else 5000,
                load1=1.5,
                degraded=10.0 * n,
            )
        )
    slices = [_slice(float(t), 1000, 2.0, 8.0) for t in range(-1, 20)]
    probes = [Probe("click", 1.0 + i, 40.0 + i) for i in range(9)]
    legs = {"gateway": 2.0, "rescore stream wait": 5.0, "model service": 30.0}
    probes += [Probe("click", 11.0, 60.0, legs=legs)]
    probes += [Probe("click", 12.0, 80.0), Probe("click", 13.0, None, "u1", "unseen")]
    probes += [Probe("click", 14.0, None, "u2", "unchanged")]
    probes += [Probe("soldout", 2.0, 300.0), Probe("soldout", 15.0, 700.0)]
    return SloRun(
        cores=2,
        connections=16,
        quiet=[
            ReadRun("bare_asgi", 2000, 1.0, 3.0, math.nan, math.nan, 0, 30000, 300.0, 2000, 4000),
            ReadRun("read_api", 2000, 1.5, 4.5, 1.2, 4.0, 0, 30000, 500.0, 2000, 2600),
        ],
        stages=stages,
        slices=slices,
        samples=samples,
        probes=probes,
        probe_timeout_s=60.0,
        errors={"read_api_non2xx_surge": 0, "gateway_failed_lines": 2},
        quiet_served={("cache", "personalized"): 800.0, ("segment", "segment"): 200.0},
        quiet_degraded=0.0,
        load={"start": (0.5, 0.4, 0.3), "end": (1.9, 1.2, 0.8)},
        meta={"ramp": "10:10,100:10", "model": "m1", "model_origin": "fitted", "notes": ["n"]},
    )


def test_per_second_rates_and_server_quantiles() -> None:
    rows = per_second(fake_run().samples)
    row = next(r for r in rows if r["t"] == 5.0)
    assert row["events_per_s"] == 10 and row["server_rps"] == 1000
    assert row["server_p50_ms"] < 1.0 < 5.0 < row["server_p99_ms"] <= 10.0


def test_stages_take_their_own_slices_probes_and_lag() -> None:
    first, second = summarize_stages(fake_run())
    assert (first.rate, second.rate) == (10, 100)
    assert first.achieved_eps == pytest.approx(10) and second.achieved_eps == pytest.approx(100)
    assert first.read_rps == pytest.approx(1000) and first.read_p99_ms == 2.0
    assert len(first.click) == 9 and second.click == [60.0, 80.0, None]  # unchanged: apart
    assert (first.click_unchanged, second.click_unchanged) == (0, 1)
    assert first.soldout == [300.0] and second.soldout == [700.0]
    assert first.flink_lag_end == 0 and second.flink_lag_end == 50
    assert second.scorer_lag_end == 5000  # the scorer fell behind: not sustained
    assert first.sustained and not second.sustained


def test_headline_and_last_line() -> None:
    run = fake_run()
    h = headline(run)
    assert (h.read_sat_rps, h.baseline_sat_rps, h.read_p99_ms) == (2600, 4000, 4.5)
    assert h.read_offered_rps == 2000 and h.sat_share == 0.65
    assert math.isinf(h.click_p99_ms)  # the top stage has an unseen click probe
    assert h.soldout_p99_ms == 700 and h.errors == 2 and h.top_rate == 100
    line = last_line(h)
    assert line == (
        "slo cores=2 read_p99_ms=4.50 read_offered_rps=2000 read_sat_rps=2600 "
        "baseline_sat_rps=4000 click_to_recs_p99_ms=inf soldout_p99_ms=700 "
        "soldout_superseded=0 errors=2"
    )
    assert LAST_LINE.match(line)
    assert surge_line(run).startswith("slo_surge events_eps=100 ")


def test_sources_group_into_the_report_words() -> None:
    shares = source_shares(
        {
            ("cache", "personalized"): 6,
            ("cache", "content"): 2,
            ("segment", "segment"): 1,
            ("last_known_good", "personalized"): 0.5,
            ("popularity", "popularity"): 0.5,
        }
    )
    assert shares == {
        "personalized": 0.6,
        "content": 0.2,
        "segment": 0.1,
        "last_known_good": 0.05,
        "popularity": 0.05,
    }
    assert all(math.isnan(v) for v in source_shares({}).values())


EXPOSITION = """# HELP flashrec_read_served_total Answers by source and tier.
# TYPE flashrec_read_served_total counter
flashrec_read_served_total{source="cache",tier="personalized"} 120.0
flashrec_read_served_total{tier="segment",source="segment"} 30.0
flashrec_read_degraded_total 4.0
flashrec_read_latency_seconds_bucket{le="0.001"} 10.0
bentoml_service_request_total{endpoint="/events",http_response_code="200",service_name="g"} 99.0
bentoml_service_request_total{endpoint="/events",http_response_code="503",service_name="g"} 2.0
bentoml_service_request_total{endpoint="/rank",http_response_code="500",service_name="m"} 1.0
"""


def test_prometheus_text_parsing() -> None:
    assert served_counts(EXPOSITION) == {
        ("cache", "personalized"): 120.0,
        ("segment", "segment"): 30.0,
    }
    assert degraded_count(EXPOSITION) == 4.0
    assert server_errors(EXPOSITION) == 3.0
    assert samples(EXPOSITION, "flashrec_read_latency_seconds_bucket") == [({"le": "0.001"}, 10.0)]
    assert histogram_buckets(EXPOSITION, "flashrec_read_latency_seconds") == {0.001: 10.0}
    # between two scrapes: 100 observations, half under 1 ms, all under 2 ms
    before, after = {0.001: 0.0, 0.002: 0.0}, {0.001: 50.0, 0.002: 100.0}
    assert histogram_quantile(before, after, 0.5) == 1.0
    assert histogram_quantile(before, after, 0.75) == 1.5
    assert served_counts("") == {} and server_errors("") == 0.0


def test_open_loop_counts_the_wait_behind_a_slow_answer() -> None:
    """One connection, one answer that stalls 300 ms: the requests due during the stall
    queue behind it and their latencies (from their due times) show the wait, where a
    closed-loop client would simply have sent them later and reported them fast."""
    import asyncio

    from bench.open_loop import run_open_loop

    async def scenario():
        served = 0

        async def handle(reader, writer):
            nonlocal served
            while await reader.readuntil(b"\r\n\r\n"):
                served += 1
                if served == 10:
                    await asyncio.sleep(0.3)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await run_open_loop(
                f"http://127.0.0.1:{port}", ["/a"], 100.0, 1.0, max_conns=1, drain_s=2.0
            )
        finally:
            server.close()

    res = asyncio.run(scenario())
    assert res.completed == res.sent == 100 and res.errors == 0
    slow = np.sort(res.latencies_ms)[::-1]
    assert slow[0] >= 290  # the stalled one
    assert (res.latencies_ms > 100).sum() >= 15  # ~30 requests were due during the stall
    assert len(res.due_s) == res.completed


def test_surge_slices_come_from_raw_samples() -> None:
    from bench.slo_load import slices_of

    due = np.array([0.1, 0.5, 0.9, 1.2, 1.3, 2.7])
    lat = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 5.0])
    sl = slices_of(due, lat)
    assert [s.requests for s in sl] == [3, 2, 1]
    assert sl[0].q(50) == 2.0 and sl[1].q(100) == 20.0
    assert merged_quantile(sl, 100) == 20.0 and merged_quantile(sl[:1], 0) == 1.0


def test_the_read_mix_names_cached_shoppers_and_fresh_sessions() -> None:
    from bench.read_sweep import read_paths

    paths = read_paths(["u:u1", "s:s1"], n=1000)
    assert all(p.startswith("/recommendations?") for p in paths)
    fresh = sum("fresh-" in p for p in paths)
    assert 150 < fresh < 250
    assert any("user_id=u1" in p for p in paths) and any("session_id=s1" in p for p in paths)


def test_report_and_plots_are_written(tmp_path) -> None:
    run = fake_run()
    files = plot(run, tmp_path)
    assert set(files) == {"latency", "throughput", "freshness"}
    for name in files.values():
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    last = last_line(headline(run))
    text = markdown(run, files, last)
    assert text.startswith("# Flash-sale SLO benchmark")
    assert "![latency](latency.png)" in text
    row = next(line for line in text.splitlines() if line.startswith("| read_api"))
    assert [cell.strip() for cell in row.strip("|").split("|")][:2] == ["read_api", "2600"]
    assert "MISSED" in text and text.rstrip().endswith("```") and last in text
    table = console(run)
    assert "read API / bare ASGI saturation throughput: 65%" in table
    assert "1 unseen, 1 unchanged" in table
    assert "click -> updated list, leg by leg at 100 events/s" in table
    assert leg_breakdown(run)[0] == ("gateway", 2.0, 2.0, 1)


def test_a_second_run_can_leave_the_catalog_bootstrap_out() -> None:
    import json

    from flashrec.simulator import SimulationConfig
    from flashrec.simulator.stream import LiveTraffic

    config = SimulationConfig(seed=7, n_users=50, n_items=40, n_brands=12, n_sale_items=5)

    def types(bootstrap: bool) -> list[str]:
        lines = LiveTraffic(config, run_id="r", bootstrap=bootstrap).next_lines(60)
        return [json.loads(x).get("event_type", "?") for x in lines if x.startswith("{")]

    assert types(True)[:40] == ["item_created"] * 40
    assert "item_created" not in types(False) and "price_change" not in types(False)


def test_a_sold_out_probe_restocked_by_the_simulator_is_superseded_not_lost(redis_url):
    """An item another producer restocked right after the probe's stock-out has nothing
    left to measure; an item nobody touched stays unseen (a real miss)."""
    import json

    import redis

    from bench.slo_probes import Result, SoldOutProbes

    client = redis.Redis.from_url(redis_url)
    stream = "test:slo:events"
    client.delete(stream)
    probes = SoldOutProbes(client, 1, 1, ["u1"], events_stream=stream)
    wall = int(client.time()[0] * 1000) - 1000

    def stock(event_id: str, item: str, level: int) -> None:
        event = {"event_id": event_id, "event_type": "stock_change", "item_id": item}
        client.xadd(
            stream, {"payload": json.dumps({**event, "stock_level": level}, separators=(",", ":"))}
        )

    stock("slo-stock-i1-0-1", "i1", 0)
    stock("slo-stock-i2-0-2", "i2", 0)
    stock("live-sale-7", "i1", 97)  # the simulator's purchase, just after ours
    probes.results = [
        Result(0.0, None, "i1", wall, "unseen"),
        Result(0.0, None, "i2", wall, "unseen"),
    ]
    assert probes.classify() == 1
    assert [r.outcome for r in probes.results] == ["superseded", "unseen"]
    client.delete(stream)
    client.close()
