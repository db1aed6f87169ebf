"""Session-wide fixtures: heavy services start once per test session, not per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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


#: ``spark`` targets. ``LOCAL`` is None on purpose: pytest caches a fixture under its
#: request's param, None when a test does not parametrize it, so local tests of every module
#: share one session and only ``CLUSTER`` tests switch to the standalone cluster.
LOCAL, CLUSTER = None, "cluster"
SPARK_TARGETS = pytest.mark.parametrize(
    "spark", [LOCAL, CLUSTER], ids=["local", "spark-cluster"], indirect=True
)


@pytest.fixture(scope="session")
def spark(request, session_var_dir):
    """One real SparkSession at a time (start-up ~10 s): ``local[2]``, or on the Spark
    standalone cluster for tests marked with ``SPARK_TARGETS`` (pytest groups them)."""
    from flashrec.settings import Settings
    from spark_jobs.session import spark_session

    target = getattr(request, "param", LOCAL)
    master = "local[2]"
    if target == CLUSTER:
        master = request.getfixturevalue("spark_cluster").master_url
    session = spark_session(Settings.from_env(var_dir=session_var_dir, spark_master=master))
    assert session.sparkContext.master == master, "another SparkSession is still active"
    if target == CLUSTER:  # the work must run on the worker's executors, not the driver
        _wait_for_executors(session)
    yield session
    session.stop()


def _wait_for_executors(session, timeout_s: float = 120.0) -> None:
    import time

    status = session.sparkContext._jsc.sc().getExecutorMemoryStatus()  # driver + executors
    deadline = time.monotonic() + timeout_s
    while status.size() < 2:
        if time.monotonic() > deadline:
            raise RuntimeError("no executor registered with the Spark standalone cluster")
        time.sleep(0.5)
        status = session.sparkContext._jsc.sc().getExecutorMemoryStatus()


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory):
    """A Spark standalone master and worker (separate processes), started once."""
    from flashrec.settings import PROJECT_ROOT
    from tests.clusters import spark_standalone_cluster

    with spark_standalone_cluster(
        tmp_path_factory.mktemp("spark-cluster"), pythonpath=str(PROJECT_ROOT)
    ) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def flink_cluster(tmp_path_factory):
    """A Flink session cluster: one JobManager, one TaskManager (2 slots), started once."""
    from tests.clusters import flink_session_cluster

    with flink_session_cluster(tmp_path_factory.mktemp("flink-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_tls_url(tmp_path_factory) -> Iterator[str]:
    """A TLS-only redis-server for the session: its ``rediss://`` URL (CA in the query)."""
    from tests.redis_tls import tls_redis

    with tls_redis(tmp_path_factory.mktemp("redis-tls")) as url:
        yield url


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A Kafka-protocol broker (tansu, memory-only) for the whole session."""
    from tests.kafka_broker import kafka_broker

    with kafka_broker() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def kafka_connector_dir() -> Path:
    """Flink's Kafka connector jars (fetched once into the project's var/)."""
    from flashrec.settings import Settings
    from flink_jobs import kafka_jars

    folder = Settings.from_env().flink_connector_dir
    kafka_jars.ensure(folder, log=lambda _msg: None)
    return folder


@pytest.fixture(params=["redis", "kafka"])
def event_log_backend(request) -> str:
    """The event log a stream test runs against: each such test runs once per backend."""
    return request.param


@pytest.fixture
def lake_settings(tmp_path):
    """Settings whose lake and landing folders are fresh for this test."""
    from flashrec.settings import Settings

    return Settings.from_env(var_dir=tmp_path / "var")
