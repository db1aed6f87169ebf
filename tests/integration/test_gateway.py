"""The event gateway as storefronts see it: a real ``bentoml serve`` process on real Redis
(the session's ``gateway`` fixture, see ``conftest`` and ``servers``)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from flashrec.settings import PROJECT_ROOT
from tests.integration import fuzz
from tests.integration.servers import Gateway, admin_get

pytestmark = pytest.mark.integration


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
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, 400, "nested too deeply"),
    ],
    ids=["empty", "blank", "bad-json", "bad-utf8", "string", "number", "empty-array"]
    + ["over-max-batch", "too-large", "deep-arrays", "deep-objects"],
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


def test_non_finite_and_huge_numbers_are_refused_per_event_with_the_right_reason(gateway):
    before = gateway.counts()
    body = (
        "["
        + json.dumps(_event("nan-1", event_type="purchase"))[:-1]
        + ',"price":NaN},'
        + json.dumps(_event("inf-1", event_type="purchase"))[:-1]
        + ',"price":-Infinity},'
        + json.dumps(_event("huge-1"))[:-1]
        + ',"quantity":'
        + "9" * 5_000
        + "}]"
    )
    status, answer = gateway.post(body, raw=True)
    assert status == 200, answer
    reasons = [r["reason"] for r in answer["results"]]
    assert reasons[0] == reasons[1] == "price: Input should be a finite number"
    assert reasons[2] == "quantity: Input should be less than or equal to 1000"
    assert answer["dead_lettered"] == 3 and gateway.counts() == (before[0], before[1] + 3)


def test_metrics_are_on_the_admin_surface_not_the_storefront_port(gateway: Gateway):
    assert gateway.get("/metrics") == 404
    status, body = admin_get(gateway.server.admin, "/metrics")  # this one needs no token
    text = body.decode()
    assert status == 200
    assert 'flashrec_gateway_events_total{outcome="accepted"}' in text
    assert 'flashrec_gateway_request_total{endpoint="/events",http_response_code="200"}' in text
    assert 'endpoint="/metrics"' not in text  # unknown paths share one label value
    spec = json.loads(admin_get(gateway.server.base, "/openapi/gateway.json")[1])
    body_schema = spec["paths"]["/events"]["post"]["requestBody"]["content"]
    assert body_schema["application/json"]["schema"]["oneOf"][1]["maxItems"] == 1000
    assert {"StorefrontEvent", "CatalogEvent"} <= set(spec["components"]["schemas"])


def test_dead_letter_failure_after_the_append_keeps_accepted_events_accepted(gateway: Gateway):
    """The dead-letter stream fails (here: its key holds a string, so XADD is refused) after
    the valid events were appended. The client must not hear "nothing was accepted": those
    events are in the log and their ids claimed, so a retry would be refused as duplicates."""
    saved = f"{gateway.deadletter}:saved"
    had_letters = gateway.redis.exists(gateway.deadletter)
    if had_letters:
        gateway.redis.rename(gateway.deadletter, saved)
    gateway.redis.set(gateway.deadletter, "not a stream")
    try:
        events_before = gateway.redis.xlen(gateway.events)
        status, body = gateway.post([_event("dlq-down-ok"), _event("dlq-down-bad", price=-1)])
        assert status == 200, body
        assert (body["accepted"], body["rejected"], body["dead_lettered"]) == (1, 1, 0)
        assert gateway.redis.xlen(gateway.events) == events_before + 1
        # Nothing accepted and the dead letters down: then a plain retry is right (503).
        status, body = gateway.post([_event("dlq-down-bad-2", price=-1)])
        assert status == 503 and "nothing was accepted" in body["error"]
    finally:
        gateway.redis.delete(gateway.deadletter)
        if had_letters:
            gateway.redis.rename(saved, gateway.deadletter)
    lost = admin_get(gateway.server.admin, "/metrics")[1].decode()
    assert 'flashrec_gateway_events_total{outcome="dead_letter_lost"} 1.0' in lost
    # The retry of the first batch: the accepted event is a duplicate, as it should be.
    status, body = gateway.post([_event("dlq-down-ok"), _event("dlq-down-bad", price=-1)])
    assert [r["field"] for r in body["results"]] == ["event_id", "price"]
    assert "already accepted" in body["results"][0]["reason"]


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_schemathesis_finds_no_server_error(gateway: Gateway, mode: str, tmp_path) -> None:
    """Requests generated from the gateway's OpenAPI schema, valid events and batches
    (positive) and bodies violating it (negative): never a 5xx, answers as documented."""
    base = gateway.server.base
    before = gateway.counts()
    run = fuzz.schemathesis(
        f"{base}/openapi/gateway.json", base, mode, tmp_path / "report.ndjson", max_examples=60
    )
    fuzz.record(f"schemathesis gateway {mode}", run.requests, run.statuses)
    assert run.returncode == 0, run.output[-3000:]
    assert run.requests > 0 and run.server_errors == 0, run.statuses
    after = gateway.counts()
    assert after != before  # it reached the event log and the dead letters
