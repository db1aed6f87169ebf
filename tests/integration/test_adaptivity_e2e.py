"""The adaptive loop end to end on live traffic, at small scale, with nothing injected.

The same code as ``make bench-adapt`` (its ``ci`` preset): day-1 history -> lake ->
features -> champion through Dagster; then the whole stack as ``make up`` starts it
(model service, read API, Flink job with the live lake, scorer, gateway, attribution,
Dagster with its sensors running by default); reactive shoppers through the HTTP APIs;
mid-run a flash sale of new items shifts what they want. From then on the platform alone
detects drift on live data, retrains, hot-loads the challenger, shadows it, serves it to
a canary, promotes it on the sequential test, and the read API starts answering with the
new version. The test only watches: it writes no counter, label or rollout state.
"""

from __future__ import annotations

import os

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture
def clean_environment():
    """``bench.adapt.run`` points the processes it starts at its own folders and ports
    through the environment; the rest of the test session must not inherit them."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_a_live_shift_is_detected_retrained_and_promoted(redis_url, tmp_path, clean_environment):
    from bench.adapt import PRESETS, report, run

    result = run(PRESETS["ci"], redis_url, tmp_path / "adapt")
    print(report(result))
    timeline = result.timeline
    assert timeline.drift_at is not None, "drift was not detected on live data"
    assert timeline.loaded_at is not None, "the model service never served the challenger"
    assert timeline.canary_at is not None, "the challenger never reached its canary"
    assert timeline.decision == "promote", timeline.decision_reason
    assert timeline.served_changed_at is not None, "the read API kept the old version"
    assert result.arms["challenger"]["sessions"] > 0 and result.arms["champion"]["sessions"] > 0
    assert result.lost_events == 0, f"{result.lost_events} accepted events missing in bronze"
    assert result.errors == 0
