"""The event gateway as storefronts see it: a real ``bentoml serve`` process on real Redis."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from flashrec.settings import PROJECT_ROOT
from tests.kafka_broker import free_port

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Gateway:
    port: int
    events: str
    deadletter: str
    redis: redis.Redis

    def post(self, body: bytes | str | object, raw: bool = False) -> tuple[int, dict]:
        if not raw:
            body = json.dumps(body)
        data = body.encode() if isinstance(body, str) else body
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", "/events", body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"null")
        finally:
            conn.close()

    def get(self, path: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    def counts(self) -> tuple[int, int]:
        return int(self.redis.xlen(self.events)), int(self.redis.xlen(self.deadletter))

    def dead_letters(self) -> list[dict[str, str]]:
        return [
            {k.decode(): v.decode() for k, v in fields.items()}
            for _, fields in self.redis.xrange(self.deadletter)
        ]


@pytest.fixture(scope="module")
def gateway(redis_url: str) -> Iterator[Gateway]:
    """``bentoml serve bentos.gateway:Gateway`` on a free port; streams unique to this run."""
    name = f"test:gw:{uuid.uuid4().hex[:8]}"
    port = free_port()
    home = Path(tempfile.mkdtemp(prefix="bentoml-home-"))
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "FLASHREC_EVENTS_STREAM": name,
        "FLASHREC_DEADLETTER_STREAM": f"{name}:dlq",
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    bentoml = Path(sys.executable).with_name("bentoml")
    cmd = [str(bentoml), "serve", "bentos.gateway:Gateway", "--host", "127.0.0.1"]
    with tempfile.TemporaryFile() as log_file:  # a file: never blocks
        proc = subprocess.Popen(
            [*cmd, "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        client = redis.Redis.from_url(redis_url)
        gw = Gateway(port, name, f"{name}:dlq", client)
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    log_file.seek(0)
                    raise RuntimeError(f"bentoml serve exited: {log_file.read()[-3000:]!r}")
                try:
                    if gw.get("/readyz") == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the gateway was not ready within 60 s")
                time.sleep(0.2)
            yield gw
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            for key in client.scan_iter(match=f"{name}*"):
                client.delete(key)
            client.close()
            shutil.rmtree(home, ignore_errors=True)


def _event(event_id: str | None = None, **fields: object) -> dict[str, object]:
    event: dict[str, object] = {
        "event_id": event_id or f"e-{uuid.uuid4().hex[:12]}",
        "event_time": datetime.now(UTC).isoformat(),
        "event_type": "view",
        "item_id": "item-1",
        "session_id": "s-1",
        "user_id": "u-1",
    }
    event.update(fields)
    return event


def test_single_event_is_accepted_in_canonical_form(gateway: Gateway):
    before = gateway.counts()
    status, body = gateway.post(_event("single-1", price=9.5))
    assert status == 200
    assert body["accepted"] == 1 and body["rejected"] == 0
    assert body["results"] == [
        {"index": 0, "event_id": "single-1", "status": "accepted", "reason": None, "field": None}
    ]
    assert gateway.counts() == (before[0] + 1, before[1])
    _, fields = gateway.redis.xrevrange(gateway.events, count=1)[0]
    stored = json.loads(fields[b"payload"])
    assert stored["event_id"] == "single-1" and stored["schema_version"] == 1
    assert stored["price"] == 9.5 and stored["quantity"] == 1  # defaults filled in


def test_batch_gives_a_verdict_per_event_and_dead_letters_the_rest(gateway: Gateway):
    before = gateway.counts()
    dead_before = len(gateway.dead_letters())
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    batch: list[object] = [
        _event("b-ok-1"),
        _event("b-bad-price", event_type="purchase", price=-3),
        "{not json",
        _event("b-big", referrer="r", session_id="s" * 10, extra_blob="x" * 9000),
        _event("b-future", event_time=future),
        _event("b-ok-1"),  # repeated inside the batch
        _event("b-ok-2", event_type="add_to_cart", price=12.0),
        42,
    ]
    status, body = gateway.post(batch)
    assert status == 200
    statuses = [(r["index"], r["event_id"], r["status"], r["field"]) for r in body["results"]]
    assert statuses == [
        (0, "b-ok-1", "accepted", None),
        (1, "b-bad-price", "rejected", "price"),
        (2, None, "rejected", "payload"),
        (3, "b-big", "rejected", "payload"),
        (4, "b-future", "rejected", "event_time"),
        (5, "b-ok-1", "rejected", "event_id"),
        (6, "b-ok-2", "accepted", None),
        (7, None, "rejected", "payload"),
    ]
    assert body["accepted"] == 2 and body["rejected"] == 6
    assert gateway.counts() == (before[0] + 2, before[1] + 6)

    letters = gateway.dead_letters()[dead_before:]
    assert [d["source"] for d in letters] == ["gateway"] * 6
    reasons = [d["reason"] for d in letters]
    assert reasons[0].startswith("price: Input should be greater than or equal to 0")
    assert reasons[1].startswith("payload: not valid JSON")
    assert reasons[2] == "payload: larger than 8192 bytes"
    assert "in the future" in reasons[3]
    assert "duplicate" in reasons[4] and "same batch" in reasons[4]
    assert reasons[5] == "payload: must be a JSON object"
    assert letters[1]["raw"] == "{not json"  # raw text kept verbatim
    assert json.loads(letters[0]["raw"])["event_id"] == "b-bad-price"
    assert len(letters[2]["raw"]) == 8192  # oversized: the first max_event_bytes are kept
    assert letters[3]["field"] == "event_time" and letters[4]["field"] == "event_id"
    assert all(d["time"] for d in letters)


def test_idempotency_within_the_window(gateway: Gateway):
    event = _event("idem-1")
    assert gateway.post(event)[1]["accepted"] == 1
    before = gateway.counts()
    status, body = gateway.post(event)  # a storefront retry after a timeout
    assert status == 200 and body["rejected"] == 1
    assert body["results"][0]["field"] == "event_id"
    assert "already accepted" in body["results"][0]["reason"]
    assert gateway.counts() == (before[0], before[1] + 1)
    # The id is remembered for the configured window (TTL set on the key).
    ttl = gateway.redis.ttl(f"{gateway.events}:seen:idem-1")
    assert 0 < ttl <= 900


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"", 400, "empty body"),
        (b"   ", 400, "empty body"),
        (b"{oops", 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (b'"just a string"', 400, "not str"),
        (b"17", 400, "not int"),
        (b"[]", 400, "empty batch"),
        (json.dumps([{"n": i} for i in range(1001)]).encode(), 413, "maximum of 1000"),
        (b"[" + b" " * 8_300_000 + b"]", 413, "larger than"),
    ],
    ids=["empty", "blank", "bad-json", "bad-utf8", "string", "number", "empty-array"]
    + ["over-max-batch", "too-large"],
)
def test_unreadable_bodies_get_a_4xx_with_a_reason(gateway: Gateway, body, status, message):
    before = gateway.counts()
    got, answer = gateway.post(body, raw=True)
    assert got == status
    assert message in answer["error"]
    assert gateway.counts() == before  # nothing appended, nothing dead-lettered


def test_health_probes_check_the_event_log(gateway: Gateway):
    assert gateway.get("/healthz") == 200
    assert gateway.get("/readyz") == 200


def test_published_stream_is_fully_accounted_for(gateway: Gateway):
    before = gateway.counts()
    proc = subprocess.run(
        [sys.executable, "-m", "flashrec.publish", "--via", "gateway", "--rate", "200"]
        + ["--duration", "2", "--url", f"http://127.0.0.1:{gateway.port}", "--run-id", "t1"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["sent"] == 400 and report["failed"] == 0
    assert report["accepted"] + report["rejected"] == report["sent"]
    assert report["rejected"] > 0  # the simulator injects malformed lines and duplicates
    after = gateway.counts()
    assert after[0] - before[0] == report["accepted"]
    assert after[1] - before[1] == report["rejected"]
