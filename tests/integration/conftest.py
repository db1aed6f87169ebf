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
