"""Validate bronze lines with the shared event model, inside Spark executors.

The same ``flashrec.events.parse_event`` that the gateway and the stream job use decides
here, so a payload is accepted or rejected identically in batch and stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import pyarrow as pa

from flashrec.events import CatalogEvent, Rejection, StorefrontEvent, parse_event

#: Columns parse_batches adds to each bronze row.
PARSED_FIELDS: list[pa.Field] = [
    pa.field("ok", pa.bool_()),
    pa.field("reason", pa.string()),
    pa.field("reject_field", pa.string()),
    pa.field("event_kind", pa.string()),
    pa.field("schema_version", pa.int32()),
    pa.field("event_id", pa.string()),
    pa.field("event_time", pa.timestamp("us", tz="UTC")),
    pa.field("event_date", pa.string()),
    pa.field("event_type", pa.string()),
    pa.field("item_id", pa.string()),
    pa.field("user_id", pa.string()),
    pa.field("session_id", pa.string()),
    pa.field("price", pa.float64()),
    pa.field("quantity", pa.int32()),
    pa.field("device", pa.string()),
    pa.field("referrer", pa.string()),
    pa.field("category", pa.string()),
    pa.field("brand", pa.string()),
    pa.field("stock_level", pa.int64()),
]

_EMPTY: dict[str, object] = {f.name: None for f in PARSED_FIELDS}


def ingestion_deadline(ingest_date: str) -> datetime:
    """The end of the landing day: events stamped after it (plus skew) are future-dated."""
    day = datetime.strptime(ingest_date, "%Y-%m-%d").date()
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)


def parse_row(
    raw: str | None, ingest_date: str, *, max_future_skew_s: float, max_bytes: int
) -> dict[str, object]:
    """One bronze line -> the parsed columns (``ok`` False with a reason when rejected)."""
    out = dict(_EMPTY)
    if raw is None or not raw.strip():
        out.update(ok=False, reason="payload: empty line", reject_field="payload")
        return out
    result = parse_event(
        raw,
        now=ingestion_deadline(ingest_date),
        max_future_skew=timedelta(seconds=max_future_skew_s),
        max_bytes=max_bytes,
    )
    if isinstance(result, Rejection):
        out.update(ok=False, reason=result.reason, reject_field=result.field)
        return out
    out.update(
        ok=True,
        schema_version=result.schema_version,
        event_id=result.event_id,
        event_time=result.event_time,
        event_date=result.event_time.strftime("%Y-%m-%d"),
        event_type=result.event_type,
        item_id=result.item_id,
        price=result.price,
    )
    if isinstance(result, StorefrontEvent):
        out.update(
            event_kind="storefront",
            user_id=result.user_id,
            session_id=result.session_id,
            quantity=result.quantity,
            device=str(result.device),
            referrer=result.referrer,
        )
    elif isinstance(result, CatalogEvent):
        out.update(
            event_kind="catalog",
            category=result.category,
            brand=result.brand,
            stock_level=result.stock_level,
        )
    return out


def parse_batches(
    batches: Iterator[pa.RecordBatch], *, max_future_skew_s: float, max_bytes: int
) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: append the parsed columns to every bronze batch."""
    for batch in batches:
        raws = batch.column("raw").to_pylist()
        days = batch.column("ingest_date").to_pylist()
        rows = [
            parse_row(r, d, max_future_skew_s=max_future_skew_s, max_bytes=max_bytes)
            for r, d in zip(raws, days, strict=True)
        ]
        parsed = pa.RecordBatch.from_pylist(rows, schema=pa.schema(PARSED_FIELDS))
        columns = list(batch.columns) + list(parsed.columns)
        names = list(batch.schema.names) + list(parsed.schema.names)
        yield pa.RecordBatch.from_arrays(columns, names=names)
