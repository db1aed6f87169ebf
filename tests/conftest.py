"""Session-wide fixtures: heavy services start once per test session, not per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Keep every test off the network and out of the developer's own var/.
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("FEAST_USAGE", "False")

TEST_REDIS_URL = os.environ.get("FLASHREC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server (started by `make setup`); tests own database 15 and flush it."""
    import redis

    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:  # pragma: no cover - environment problem
        raise RuntimeError(
            f"no redis-server answers at {TEST_REDIS_URL}: run `make setup` first"
        ) from exc
    client.flushdb()
    yield TEST_REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def session_var_dir(tmp_path_factory: pytest.TempPathFactory):
    """A var/ for the whole session, so tests never touch the developer's own lake."""
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="session")
def spark(session_var_dir):
    """One real local SparkSession for the whole test session (start-up costs ~10 s)."""
    from flashrec.settings import Settings
    from spark_jobs.session import spark_session

    session = spark_session(Settings.from_env(var_dir=session_var_dir, spark_master="local[2]"))
    yield session
    session.stop()


@pytest.fixture
def lake_settings(tmp_path):
    """Settings whose lake and landing folders are fresh for this test."""
    from flashrec.settings import Settings

    return Settings.from_env(var_dir=tmp_path / "var")
