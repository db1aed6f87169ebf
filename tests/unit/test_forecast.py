"""The rate forecaster, the counter-to-rate step and the exporter's metrics (no Redis)."""

from __future__ import annotations

import pytest

from flashrec.forecast.counters import CounterRate, entries_added
from flashrec.forecast.exporter import ForecastExporter
from flashrec.forecast.holt import HoltForecaster
from flashrec.settings import Settings


def test_a_constant_rate_is_forecast_as_itself():
    model = HoltForecaster()
    for _ in range(200):
        model.update(500.0)
    assert model.forecast(60) == pytest.approx(500.0, rel=1e-6)


def test_a_ramp_is_extrapolated_ahead_of_the_level():
    model = HoltForecaster(phi=1.0)
    for t in range(300):
        model.update(10.0 * t)  # +10/s every second
    now = 10.0 * 299
    ahead = model.forecast(60)
    assert ahead > now + 0.8 * 600  # most of the 60 s of ramp
    assert ahead < now + 1.2 * 600


def test_damping_shortens_the_projection():
    plain, damped = HoltForecaster(phi=1.0), HoltForecaster(phi=0.95)
    for t in range(100):
        plain.update(5.0 * t)
        damped.update(5.0 * t)
    assert damped.forecast(60) < plain.forecast(60)
    assert damped.forecast(60) > damped.level


def test_falls_are_not_projected_unless_asked_and_never_below_zero():
    holding, falling = HoltForecaster(), HoltForecaster(project_falls=True)
    for t in range(100):
        holding.update(1000.0 - 10 * t)
        falling.update(1000.0 - 10 * t)
    assert holding.forecast(60) == pytest.approx(holding.level)
    assert falling.forecast(60) < falling.level
    assert falling.forecast(10_000) == 0.0


def test_uneven_sampling_smooths_over_the_same_span():
    every_second, every_two = HoltForecaster(), HoltForecaster()
    for _ in range(50):
        every_second.update(100.0)
        every_two.update(100.0, dt=2.0)
    every_second.update(200.0)
    every_second.update(200.0)
    every_two.update(200.0, dt=2.0)
    assert every_two.level == pytest.approx(every_second.level, rel=0.15)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        HoltForecaster(alpha=0)
    with pytest.raises(ValueError):
        HoltForecaster().update(1.0, dt=0)


def test_counter_rates_and_resets():
    rate = CounterRate()
    assert rate.observe(100, now=10.0) is None
    assert rate.observe(300, now=12.0) == 100.0
    assert rate.observe(50, now=13.0) == 0.0  # stream recreated: a new baseline
    assert rate.observe(80, now=14.0) == 30.0


class FakeStreams:
    """``xinfo_stream`` of a few counters (the real one is tested against Redis)."""

    def __init__(self) -> None:
        self.added: dict[str, int] = {}
        self.down = False

    def xinfo_stream(self, name: str) -> dict:
        if self.down:
            raise ConnectionError("redis is down")
        if name not in self.added:
            raise RuntimeError("ERR no such key")
        return {"entries-added": self.added[name], "length": 10}


def test_missing_stream_counts_zero():
    assert entries_added(FakeStreams(), "nope") == 0


def test_exporter_serves_observed_and_forecast_rates():
    settings = Settings.from_env(environ={}, forecast_horizon_s=30.0)
    streams = FakeStreams()
    exporter = ForecastExporter(settings, streams)
    streams.added = {settings.events_stream: 0, "flashrec:impressions": 0}
    assert exporter.sample(now=0.0) == {}
    assert exporter.ready(now=0.5)
    for t in range(1, 31):
        streams.added[settings.events_stream] += 200
        streams.added["flashrec:impressions"] += 1000 + 20 * t  # reads ramping up
        out = exporter.sample(now=float(t))
    assert out["events"] == pytest.approx(200.0)
    assert out["reads"] > 1000 + 20 * 30  # ahead of the last observation
    text = exporter.metrics().decode()
    assert "flashrec_forecast_reads_per_second" in text
    assert "flashrec_observed_events_per_second 200.0" in text
    assert "flashrec_forecast_horizon_seconds 30.0" in text
    streams.down = True
    assert exporter.sample(now=31.0) == {}
    assert not exporter.ready(now=40.0)
    assert "flashrec_forecast_sample_errors 1.0" in exporter.metrics().decode()
