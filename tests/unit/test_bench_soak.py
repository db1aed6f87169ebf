"""The soak's slope arithmetic (the benchmark itself runs under `make bench-soak`)."""

from __future__ import annotations

import math

from bench.soak import windows
from bench.soak_stats import Sample, level, slope_per_million, slopes


def test_slope_is_in_mb_per_million_events() -> None:
    xs = [0, 500_000, 1_000_000, 1_500_000]
    assert math.isclose(slope_per_million(xs, [100, 101, 102, 103]), 2.0)
    assert math.isclose(slope_per_million(xs, [50, 50, 50, 50]), 0.0)
    assert math.isnan(slope_per_million([1], [1]))


def test_only_samples_after_warm_up_are_fitted() -> None:
    growing = [Sample(t=i, events=i * 100_000, redis_mb=10.0 * i) for i in range(5)]
    flat = [Sample(t=5 + i, events=(5 + i) * 100_000, redis_mb=50.0) for i in range(6)]
    got = slopes(growing + flat, warmup_events=500_000)
    assert got["redis"] == 0.0
    assert level(growing + flat, 500_000, "redis") == (50.0, 50.0)
    per = slopes(
        [Sample(t=i, events=i * 1_000_000, rss_mb={"a": 10.0 + i, "b": 5.0}) for i in range(3)], 0
    )
    assert math.isclose(per["rss"], 1.0) and per["rss:b"] == 0.0


def test_every_window_scales_with_the_soak() -> None:
    w = windows(120, 1000.0)
    assert int(w["FLASHREC_FLINK_SESSION_TTL_S"]) < int(w["FLASHREC_FLINK_USER_TTL_S"]) <= 120
    assert int(w["FLASHREC_EVENTS_MAXLEN"]) == 600_000
    assert all(int(v) > 0 for v in w.values())


def test_a_sample_without_a_reading_is_left_out_of_the_fit() -> None:
    samples = [Sample(t=i, events=i * 1_000_000, checkpoint_mb=8.0) for i in range(4)]
    samples[2].checkpoint_mb = math.nan  # the checkpoint was replaced while it was measured
    assert slopes(samples, 0)["checkpoint"] == 0.0
    assert level(samples, 0, "checkpoint") == (8.0, 8.0)
