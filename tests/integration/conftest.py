"""Integration fixtures shared by several modules (started once per test session)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def model_server() -> Iterator[object]:
    """A real `bentoml serve` model service with a tiny champion, for the scorer tests."""
    from tests.integration.test_scorer import start_model_service, stop_process

    tmp = Path(tempfile.mkdtemp(prefix="flashrec-model-"))
    proc, server, _ = start_model_service(tmp)
    try:
        yield server
    finally:
        stop_process(proc)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def gateway(redis_url: str) -> Iterator[object]:
    """``bentoml serve bentos.gateway:Gateway``; streams unique to this session, admin surface
    on its own port without a token (the read API's has one)."""
    import uuid

    import redis

    from tests.integration.servers import GATEWAY_BODY_TIMEOUT_S, Gateway, serve

    name = f"test:gw:{uuid.uuid4().hex[:8]}"
    server = serve(
        "bentos.gateway:Gateway",
        "FLASHREC_GATEWAY_ADMIN_PORT",
        {
            "REDIS_URL": redis_url,
            "FLASHREC_EVENTS_STREAM": name,
            "FLASHREC_DEADLETTER_STREAM": f"{name}:dlq",
            "FLASHREC_GATEWAY_BODY_TIMEOUT_S": str(GATEWAY_BODY_TIMEOUT_S),
            "FLASHREC_ADMIN_TOKEN": "",
        },
    )
    client = redis.Redis.from_url(redis_url)
    try:
        yield Gateway(server, name, f"{name}:dlq", client)
    finally:
        server.stop()
        for key in client.scan_iter(match=f"{name}*"):
            client.delete(key)
        client.close()
        shutil.rmtree(server.home, ignore_errors=True)


@pytest.fixture(scope="session")
def read_api(redis_url: str) -> Iterator[object]:
    """``bentoml serve bentos.read_api:ReadAPI``; admin surface on its own port with a token."""
    from tests.integration.servers import READ_ADMIN_TOKEN, serve

    server = serve(
        "bentos.read_api:ReadAPI",
        "FLASHREC_READ_API_ADMIN_PORT",
        {"REDIS_URL": redis_url, "FLASHREC_ADMIN_TOKEN": READ_ADMIN_TOKEN},
    )
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.home, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The requests the fuzz runs and the hostile corpus tried, and their 5xx (target: 0)."""
    from tests.integration.fuzz import TALLY

    if TALLY:
        terminalreporter.section("requests tried against the real servers")
        for line in TALLY:
            terminalreporter.write_line(line)
