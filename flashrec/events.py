"""The versioned event model: what a storefront and a catalog may send us.

Every engine (gateway, Spark, Flink, loaders) parses through ``parse_event`` so that a
payload is accepted or rejected the same way everywhere. A rejection always carries a
reason that names the field, plus the raw payload, so that nothing is silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

SCHEMA_VERSION = 1

#: Event types a storefront sends about a shopper.
STOREFRONT_EVENT_TYPES = ("view", "click", "add_to_cart", "remove_from_cart", "purchase")
#: Event types the catalog sends about an item.
CATALOG_EVENT_TYPES = ("item_created", "price_change", "stock_change")


_EVENT_TYPES = frozenset(STOREFRONT_EVENT_TYPES + CATALOG_EVENT_TYPES)


class Device(StrEnum):
    DESKTOP = "desktop"
    MOBILE = "mobile"
    TABLET = "tablet"
    APP = "app"
    OTHER = "other"


def _require_utc(value: datetime) -> datetime:
    """Naive times are ambiguous across storefront regions: refuse them, store UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must include a timezone (e.g. 2026-11-24T10:00:00Z)")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_require_utc)]
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Label = Annotated[str, Field(min_length=1, max_length=64)]
# allow_inf_nan=False: NaN fails every comparison, so the bound checks alone would refuse
# it with "less than or equal to 1000000", a reason that sends the sender the wrong way.
Price = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]
INT64_MAX = 2**63 - 1
_INT_DIGITS = 100  # far beyond every integer field's bound (int64 has 19 digits)


def _parse_int(literal: str) -> int:
    """A JSON integer literal, without handing ``int`` more digits than it takes (4,300 by
    default, more raises ValueError, which would refuse a whole batch for one field). A
    longer literal becomes a number of 101 digits with its sign: out of every field's
    range, so the bound check refuses it with the usual reason naming the field."""
    if len(literal) <= _INT_DIGITS:
        return int(literal)
    magnitude = 10**_INT_DIGITS
    return -magnitude if literal.startswith("-") else magnitude


def load_json(text: str | bytes) -> Any:
    """``json.loads`` for client payloads: integers of any length (see ``_parse_int``);
    NaN and Infinity parse, so that the field's check can name them. Raises ValueError
    (not JSON) or RecursionError (nested deeper than the parser's recursion allows)."""
    return json.loads(text, parse_int=_parse_int)


class FieldError(ValueError):
    """A cross-field rule broken by one named field (so the reason can name it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class _EventBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Identifier
    event_time: UtcDatetime
    item_id: Identifier

    def to_json(self) -> str:
        """Compact JSON, the wire and lake format (round-trips through ``parse_event``)."""
        return self.model_dump_json(exclude_none=False)


class StorefrontEvent(_EventBase):
    """A shopper's action. ``user_id`` is None for anonymous shoppers."""

    event_type: Literal["view", "click", "add_to_cart", "remove_from_cart", "purchase"]
    user_id: Identifier | None = None
    session_id: Identifier
    price: Price | None = None
    quantity: Annotated[int, Field(ge=1, le=1000)] = 1
    device: Device = Device.OTHER
    referrer: Label = "direct"

    @model_validator(mode="after")
    def _money_events_need_a_price(self) -> StorefrontEvent:
        if self.event_type in ("add_to_cart", "purchase") and self.price is None:
            raise FieldError("price", f"is required for {self.event_type} events")
        return self

    @property
    def is_anonymous(self) -> bool:
        return self.user_id is None


class CatalogEvent(_EventBase):
    """An item's lifecycle: created, re-priced, restocked or sold down.

    ``stock_level`` is the stock *after* the change (absolute, so replays are idempotent).
    """

    event_type: Literal["item_created", "price_change", "stock_change"]
    category: Label | None = None
    brand: Label | None = None
    price: Price | None = None
    stock_level: Annotated[int, Field(ge=0, le=INT64_MAX)] | None = None  # lake: int64

    @model_validator(mode="after")
    def _required_per_type(self) -> CatalogEvent:
        required = {
            "item_created": ("category", "brand", "price", "stock_level"),
            "price_change": ("price",),
            "stock_change": ("stock_level",),
        }[self.event_type]
        missing = [name for name in required if getattr(self, name) is None]
        if missing:
            raise FieldError(
                missing[0],
                f"is required for {self.event_type} events ({', '.join(missing)} missing)",
            )
        return self


Event = Annotated[StorefrontEvent | CatalogEvent, Field(discriminator="event_type")]
_EVENT_ADAPTER: TypeAdapter[StorefrontEvent | CatalogEvent] = TypeAdapter(Event)


def event_json_schema(ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """JSON Schema of one event (either kind), for published API descriptions."""
    return _EVENT_ADAPTER.json_schema(ref_template=ref_template)


@dataclass(frozen=True)
class Rejection:
    """Why a payload was refused; ``raw`` is kept verbatim for the dead-letter record."""

    reason: str
    field: str | None
    raw: str

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "field": self.field, "raw": self.raw}


_TOO_DEEP = "payload: nested too deeply (an event is a flat JSON object)"


def safe_text(text: str) -> str:
    """``text`` as valid Unicode: lone surrogates (a JSON "\\ud800" escape decodes to one)
    cannot be encoded as UTF-8, so Redis, Kafka and HTTP answers would all fail on them;
    they become visible ``\\ud800`` escapes instead. Valid text is returned as is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _raw_text(payload: str | bytes | Mapping[str, Any]) -> str:
    if isinstance(payload, bytes):
        return payload.decode("utf-8", errors="replace")
    if isinstance(payload, str):
        return payload
    try:
        return json.dumps(payload, default=str, separators=(",", ":"))
    except (TypeError, ValueError):
        pass
    except RecursionError:
        return f"<{type(payload).__name__} nested too deeply to print>"
    try:
        return repr(payload)
    except RecursionError:
        return f"<{type(payload).__name__} nested too deeply to print>"


def _describe(error: ValidationError) -> tuple[str, str | None]:
    """Turn pydantic's errors into one readable reason naming the field(s)."""
    parts: list[str] = []
    first_field: str | None = None
    for item in error.errors(include_url=False):
        # Drop the union's tag from the location: ("view", "price") -> "price".
        loc = [str(p) for p in item["loc"] if str(p) not in _EVENT_TYPES]
        name = ".".join(loc) if loc else None
        msg = item["msg"].removeprefix("Value error, ")
        cause = item.get("ctx", {}).get("error")
        if isinstance(cause, FieldError):
            name, msg = cause.field, str(cause)
        if item["type"] == "union_tag_invalid":
            name = "event_type"
            msg = f"must be one of {', '.join(STOREFRONT_EVENT_TYPES + CATALOG_EVENT_TYPES)}"
        elif item["type"] == "union_tag_not_found":
            name = "event_type"
            msg = "is required"
        elif item["type"] == "extra_forbidden":
            msg = "is not a known field"
        name = safe_text(name) if name else name  # field names come from the client
        first_field = first_field or name
        parts.append(f"{name}: {msg}" if name else msg)
    return safe_text("; ".join(parts)), first_field


def parse_event(
    payload: str | bytes | Mapping[str, Any],
    *,
    now: datetime | None = None,
    max_future_skew: timedelta = timedelta(minutes=5),
    max_bytes: int = 8192,
) -> StorefrontEvent | CatalogEvent | Rejection:
    """Validate one payload into an event, or say precisely why not.

    ``now`` enables the future-dated check (a clock more than ``max_future_skew`` ahead
    of ours is a bug upstream, and would poison time windows); batch replays of
    history pass ``now=None``.
    """
    raw = _raw_text(payload)
    printable = safe_text(raw)
    if printable is not raw:
        return Rejection(
            "payload: not valid Unicode text (lone surrogate)", "payload", printable[:max_bytes]
        )
    if len(raw.encode("utf-8")) > max_bytes:
        return Rejection(f"payload: larger than {max_bytes} bytes", "payload", raw[:max_bytes])
    if isinstance(payload, Mapping):
        data: Any = dict(payload)
    else:
        try:
            data = load_json(raw)
        except json.JSONDecodeError as exc:
            return Rejection(
                f"payload: not valid JSON ({exc.msg} at char {exc.pos})", "payload", raw
            )
        except RecursionError:  # json.loads recurses once per bracket
            return Rejection(_TOO_DEEP, "payload", raw)
    if not isinstance(data, dict):
        return Rejection("payload: must be a JSON object", "payload", raw)
    try:
        event = _EVENT_ADAPTER.validate_python(data)
    except ValidationError as exc:
        reason, name = _describe(exc)
        return Rejection(reason, name, raw)
    except RecursionError:
        return Rejection(_TOO_DEEP, "payload", raw)
    if now is not None and event.event_time > now.astimezone(UTC) + max_future_skew:
        return Rejection(
            f"event_time: {event.event_time.isoformat()} is in the future "
            f"(more than {max_future_skew.total_seconds():.0f}s ahead of {now.isoformat()})",
            "event_time",
            raw,
        )
    return event


def is_rejection(result: object) -> bool:
    return isinstance(result, Rejection)
