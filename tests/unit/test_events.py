"""The event model accepts what storefronts send and names the field it refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from flashrec.events import CatalogEvent, Rejection, StorefrontEvent, parse_event

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def view(**overrides) -> dict:
    event = {
        "event_id": "e-1",
        "event_time": "2026-11-24T11:59:00Z",
        "event_type": "view",
        "user_id": "u-1",
        "session_id": "s-1",
        "item_id": "i-1",
        "price": 19.99,
        "device": "mobile",
        "referrer": "search",
    }
    event.update(overrides)
    return event


def test_valid_storefront_event_round_trips_through_json():
    event = parse_event(json.dumps(view()), now=NOW)
    assert isinstance(event, StorefrontEvent)
    assert event.event_time == datetime(2026, 11, 24, 11, 59, tzinfo=UTC)
    again = parse_event(event.to_json(), now=NOW)
    assert again == event


def test_anonymous_shopper_has_no_user_id():
    event = parse_event(view(user_id=None))
    assert isinstance(event, StorefrontEvent) and event.is_anonymous


def test_offsets_are_normalised_to_utc():
    event = parse_event(view(event_time="2026-11-24T13:00:00+02:00"))
    assert event.event_time == datetime(2026, 11, 24, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        (view(event_time="2026-11-24T11:59:00"), "event_time", "timezone"),
        (view(price=-1), "price", "greater than or equal to 0"),
        (view(event_type="teleport"), "event_type", "must be one of"),
        (view(quantity=0), "quantity", "greater than or equal to 1"),
        (view(device="toaster"), "device", ""),
        (view(colour="red"), "colour", "not a known field"),
        (view(event_type="purchase", price=None), "price", "required for purchase"),
        ({k: v for k, v in view().items() if k != "session_id"}, "session_id", "required"),
        ({k: v for k, v in view().items() if k != "event_type"}, "event_type", "required"),
        (view(event_id="has space"), "event_id", "pattern"),
    ],
)
def test_bad_fields_are_rejected_with_the_field_named(payload, field, fragment):
    result = parse_event(payload, now=NOW)
    assert isinstance(result, Rejection)
    assert result.field == field
    assert result.reason.startswith(f"{field}:")
    assert fragment in result.reason
    assert json.loads(result.raw) == payload  # the raw payload is kept for the dead letter


def test_unreadable_payloads_are_rejected_not_raised():
    for raw in ["not json", "[1, 2]", b"\xff\xfe", ""]:
        result = parse_event(raw)
        assert isinstance(result, Rejection)
        assert result.field == "payload"


def test_future_dated_events_are_rejected_only_beyond_the_allowed_skew():
    near = view(event_time=(NOW + timedelta(minutes=4)).isoformat())
    far = view(event_time=(NOW + timedelta(hours=2)).isoformat())
    assert isinstance(parse_event(near, now=NOW), StorefrontEvent)
    rejected = parse_event(far, now=NOW)
    assert isinstance(rejected, Rejection) and rejected.field == "event_time"
    assert "future" in rejected.reason
    assert isinstance(parse_event(far), StorefrontEvent)  # history replays pass now=None


def test_oversized_payloads_are_rejected():
    result = parse_event(view(referrer="x" * 60, session_id="s" * 60), max_bytes=100)
    assert isinstance(result, Rejection) and result.field == "payload"
    assert "larger than 100 bytes" in result.reason


def test_catalog_events_require_their_fields():
    created = {
        "event_id": "c-1",
        "event_time": "2026-11-24T00:00:00Z",
        "event_type": "item_created",
        "item_id": "i-1",
        "category": "shoes",
        "brand": "acme",
        "price": 50,
        "stock_level": 10,
    }
    assert isinstance(parse_event(created), CatalogEvent)
    stock = {
        "event_id": "c-2",
        "event_time": "2026-11-24T00:00:00Z",
        "event_type": "stock_change",
        "item_id": "i-1",
    }
    result = parse_event(stock)
    assert isinstance(result, Rejection) and result.field == "stock_level"
    negative = parse_event({**stock, "stock_level": -1})
    assert isinstance(negative, Rejection) and negative.field == "stock_level"
    assert isinstance(parse_event({**stock, "stock_level": 0}), CatalogEvent)


def test_schema_version_is_checked():
    result = parse_event(view(schema_version=2))
    assert isinstance(result, Rejection) and result.field == "schema_version"


@pytest.mark.parametrize(
    ("raw_value", "field", "reason"),
    [
        ('"price":NaN', "price", "price: Input should be a finite number"),
        ('"price":Infinity', "price", "price: Input should be a finite number"),
        ('"price":-Infinity', "price", "price: Input should be a finite number"),
        ('"quantity":' + "9" * 5000, "quantity", "less than or equal to 1000"),
        ('"quantity":-' + "9" * 5000, "quantity", "greater than or equal to 1"),
        ('"quantity":"²"', "quantity", "valid integer"),
    ],
)
def test_odd_numbers_are_refused_with_a_reason_that_fits(raw_value, field, reason):
    """NaN fails every comparison, so the bound check alone said "less than or equal to
    1000000"; a 5,000-digit integer made json.loads itself raise (Python's digit limit)."""
    text = json.dumps(view())[:-1].replace('"price": 19.99, ', "") + ", " + raw_value + "}"
    result = parse_event(text, now=NOW)
    assert isinstance(result, Rejection)
    assert result.field == field and reason in result.reason
    assert result.raw == text


def test_stock_levels_fit_the_lake_int64_column():
    catalog = {
        "event_id": "c-1",
        "event_time": "2026-11-24T11:59:00Z",
        "event_type": "stock_change",
        "item_id": "i-1",
    }
    assert isinstance(parse_event({**catalog, "stock_level": 2**63 - 1}), CatalogEvent)
    result = parse_event({**catalog, "stock_level": 2**63})
    assert isinstance(result, Rejection) and result.field == "stock_level"


@pytest.mark.parametrize(
    "raw",
    ["[" * 4000 + "]" * 4000, '{"a":' * 3000 + "1" + "}" * 3000],
)
def test_deep_nesting_is_rejected_not_raised(raw):
    result = parse_event(raw, max_bytes=100_000)
    assert isinstance(result, Rejection)
    assert result.reason == "payload: nested too deeply (an event is a flat JSON object)"


def test_lone_surrogates_never_reach_the_dead_letter_as_unencodable_text():
    result = parse_event('{"event_id": "\ud800"}')  # a str holding a lone surrogate
    assert isinstance(result, Rejection) and result.field == "payload"
    result.raw.encode("utf-8")  # storable
    escaped = parse_event('{"\\udfff": 1, "event_id": "x"}')  # a JSON escape of one
    assert isinstance(escaped, Rejection)
    escaped.reason.encode("utf-8")
