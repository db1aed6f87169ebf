"""Map e-commerce CSV exports (one interaction per row) into the event model.

Every row ends as an event or as a ``Rejection`` that names the field and keeps the raw
row: exports are messy and a loader that drops rows silently hides data-quality
problems. Rows go through ``flashrec.events.parse_event`` like every other payload.

Why one module of ~340 lines: one loader: column mapping, type coercion and the per-row
verdicts of a CSV export.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from flashrec.events import (
    STOREFRONT_EVENT_TYPES,
    Device,
    Rejection,
    StorefrontEvent,
    parse_event,
)

log = logging.getLogger("flashrec.loaders")

TimeFormat = Literal["iso", "epoch_s", "epoch_ms", "date_offset_ms"]
TIME_FORMATS: tuple[str, ...] = ("iso", "epoch_s", "epoch_ms", "date_offset_ms")
#: User ids that mean "not logged in" in common exports (compared case-insensitively).
ANONYMOUS_VALUES = frozenset({"", "na", "n/a", "nan", "null", "none", "-"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DEVICES = frozenset(d.value for d in Device)


@dataclass(frozen=True)
class CsvMapping:
    """Which column holds which event field, and how to read it.

    ``time_format``: ``iso`` (naive values are rejected unless ``assume_utc``),
    ``epoch_s``, ``epoch_ms``, or ``date_offset_ms`` (a date column read as midnight UTC
    plus the milliseconds in ``offset_ms``). Give either an ``event_type`` column
    (values translated by ``event_type_map``) or a ``constant_event_type``. Without an
    ``event_id`` column the id is ``<id_prefix>-<hash of the row>``, so re-loading the
    same export yields the same ids (and exact duplicate rows dedupe downstream).
    """

    event_time: str
    item_id: str
    session_id: str
    time_format: TimeFormat = "iso"
    offset_ms: str | None = None
    assume_utc: bool = False
    delimiter: str = ","
    event_id: str | None = None
    id_prefix: str = "csv"
    user_id: str | None = None
    event_type: str | None = None
    constant_event_type: str | None = None
    event_type_map: Mapping[str, str] = field(default_factory=dict)
    price: str | None = None
    default_price: float | None = None
    quantity: str | None = None
    device: str | None = None
    referrer: str | None = None
    anonymous_values: frozenset[str] = ANONYMOUS_VALUES

    def __post_init__(self) -> None:
        if (self.event_type is None) == (self.constant_event_type is None):
            raise ValueError("give exactly one of event_type (a column) or constant_event_type")
        if self.constant_event_type not in (None, *STOREFRONT_EVENT_TYPES):
            raise ValueError(f"constant_event_type must be one of {STOREFRONT_EVENT_TYPES}")
        if self.time_format not in TIME_FORMATS:
            raise ValueError(f"time_format must be one of {TIME_FORMATS}")
        if (self.time_format == "date_offset_ms") != (self.offset_ms is not None):
            raise ValueError("offset_ms (a column) goes with time_format='date_offset_ms' only")

    def columns(self) -> list[str]:
        """Header names the file must have."""
        names = (
            self.event_time, self.item_id, self.session_id, self.offset_ms, self.event_id,
            self.user_id, self.event_type, self.price, self.quantity, self.device, self.referrer,
        )  # fmt: skip
        return [n for n in names if n is not None]


@dataclass
class CsvLoadResult:
    """All outcomes of one file; ``rows == accepted + rejected`` always holds."""

    path: Path
    events: list[StorefrontEvent] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return len(self.events)

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    @property
    def rows(self) -> int:
        return self.accepted + self.rejected

    def rejected_by_field(self) -> Counter[str]:
        return Counter(r.field or "?" for r in self.rejections)


class _RowError(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")  # type: ignore[return-value]
    return path.open("r", encoding="utf-8", newline="")


def _event_time(row: dict[str, str], m: CsvMapping) -> datetime:
    raw = row[m.event_time].strip()
    if not raw:
        raise _RowError("event_time", f"column {m.event_time!r} is empty")
    try:
        if m.time_format == "iso":
            value = datetime.fromisoformat(raw)
            if value.tzinfo is None and m.assume_utc:
                value = value.replace(tzinfo=UTC)
            return value  # a naive time stays naive: parse_event refuses it
        if m.time_format == "epoch_s":
            return datetime.fromtimestamp(float(raw), UTC)
        if m.time_format == "epoch_ms":
            return _EPOCH + timedelta(milliseconds=int(raw))
        day = date.fromisoformat(raw)
    except (ValueError, OverflowError, OSError) as exc:
        raise _RowError("event_time", f"{raw!r} is not a {m.time_format} time ({exc})") from None
    offset_raw = row[m.offset_ms].strip()  # type: ignore[index]
    try:
        offset = int(offset_raw)
    except ValueError:
        raise _RowError(
            "event_time", f"offset column {m.offset_ms!r}: {offset_raw!r} is not an integer"
        ) from None
    if offset < 0:
        raise _RowError("event_time", f"offset column {m.offset_ms!r} is negative ({offset})")
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return midnight + timedelta(milliseconds=offset)


def _event_type(row: dict[str, str], m: CsvMapping) -> str:
    if m.constant_event_type is not None:
        return m.constant_event_type
    raw = row[m.event_type].strip()  # type: ignore[index]
    mapped = m.event_type_map.get(raw, m.event_type_map.get(raw.lower(), raw.lower()))
    if mapped not in STOREFRONT_EVENT_TYPES:
        raise _RowError(
            "event_type",
            f"{raw!r} is not a storefront event type ({', '.join(STOREFRONT_EVENT_TYPES)}); "
            "translate it with event_type_map",
        )
    return mapped


def _number(row: dict[str, str], column: str | None, name: str, kind: type) -> Any:
    if column is None or not row[column].strip():
        return None
    raw = row[column].strip()
    try:
        return kind(raw)
    except ValueError:
        raise _RowError(
            name, f"{raw!r} is not a{'n integer' if kind is int else ' number'}"
        ) from None


def row_to_payload(row: dict[str, str], raw_row: str, m: CsvMapping) -> dict[str, Any]:
    """Build the event dict for one row; raises ``_RowError`` naming the field."""
    for name, column in (("item_id", m.item_id), ("session_id", m.session_id)):
        if not row[column].strip():
            raise _RowError(name, f"column {column!r} is empty")
    payload: dict[str, Any] = {
        "event_id": row[m.event_id].strip() if m.event_id else _derived_id(raw_row, m),
        "event_time": _event_time(row, m),
        "event_type": _event_type(row, m),
        "item_id": row[m.item_id].strip(),
        "session_id": row[m.session_id].strip(),
    }
    if m.user_id is not None:
        user = row[m.user_id].strip()
        payload["user_id"] = None if user.lower() in m.anonymous_values else user
    price = _number(row, m.price, "price", float)
    payload["price"] = m.default_price if price is None else price
    quantity = _number(row, m.quantity, "quantity", int)
    if quantity is not None:
        payload["quantity"] = quantity
    if m.device is not None:
        device = row[m.device].strip().lower()
        # Exports use free-form device labels; unknown ones are kept as "other", not refused.
        payload["device"] = device if device in _DEVICES else Device.OTHER.value
    if m.referrer is not None and row[m.referrer].strip():
        payload["referrer"] = row[m.referrer].strip()
    return payload


def _derived_id(raw_row: str, m: CsvMapping) -> str:
    return f"{m.id_prefix}-{hashlib.sha1(raw_row.encode('utf-8')).hexdigest()[:24]}"


def iter_csv(path: Path | str, mapping: CsvMapping) -> Iterator[StorefrontEvent | Rejection]:
    """Yield one event or one ``Rejection`` (raw = the row as in the file) per data row.

    A header lacking a mapped column is a mapping mistake, not bad data: ValueError.
    """
    path = Path(path)
    with _open_text(path) as fh:
        reader = csv.reader(fh, delimiter=mapping.delimiter)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in mapping.columns() if c not in header]
        if missing:
            raise ValueError(f"{path}: columns {missing} not in header {header}")
        for values in reader:
            if not values:
                continue  # blank line: no row at all
            raw_row = mapping.delimiter.join(values)
            if len(values) != len(header):
                yield Rejection(
                    f"row: has {len(values)} fields, the header has {len(header)}", "row", raw_row
                )
                continue
            yield _parse_row(dict(zip(header, values, strict=True)), raw_row, mapping)


def _parse_row(row: dict[str, str], raw_row: str, m: CsvMapping) -> StorefrontEvent | Rejection:
    try:
        payload = row_to_payload(row, raw_row, m)
    except _RowError as exc:
        return Rejection(f"{exc.field}: {exc}", exc.field, raw_row)
    parsed = parse_event(payload)
    if isinstance(parsed, Rejection):
        return Rejection(parsed.reason, parsed.field, raw_row)
    return parsed  # type: ignore[return-value]  # storefront: event_type was checked


def load_csv(path: Path | str, mapping: CsvMapping) -> CsvLoadResult:
    """Load a whole file (plain or .gz) into events and rejections, with counts."""
    result = CsvLoadResult(Path(path))
    for outcome in iter_csv(path, mapping):
        if isinstance(outcome, Rejection):
            result.rejections.append(outcome)
        else:
            result.events.append(outcome)
    log.info(
        "%s: %d rows, %d accepted, %d rejected %s",
        path, result.rows, result.accepted, result.rejected, dict(result.rejected_by_field()),
    )  # fmt: skip
    return result


# --- DIGINETICA (CIKM Cup 2016) raw export, see shared/data/README.md ----------------

#: The purchase export has no price column; 0.0 is a placeholder meaning "unknown" (the
#: event model requires a price on purchases). Revenue features must not use it.
DIGINETICA_PLACEHOLDER_PRICE = 0.0

#: ``session_id;user_id;item_id;timeframe;eventdate``: ``timeframe`` is ms since the
#: session started, ``eventdate`` its date (read as midnight UTC); user NA = anonymous.
DIGINETICA_VIEWS = CsvMapping(
    delimiter=";",
    event_time="eventdate",
    time_format="date_offset_ms",
    offset_ms="timeframe",
    session_id="session_id",
    user_id="user_id",
    item_id="item_id",
    constant_event_type="view",
    id_prefix="dgn-view",
)

#: ``sessionId;userId;timeframe;eventdate;ordernumber;itemId``, one row per bought item.
DIGINETICA_PURCHASES = CsvMapping(
    delimiter=";",
    event_time="eventdate",
    time_format="date_offset_ms",
    offset_ms="timeframe",
    session_id="sessionId",
    user_id="userId",
    item_id="itemId",
    constant_event_type="purchase",
    default_price=DIGINETICA_PLACEHOLDER_PRICE,
    id_prefix="dgn-purchase",
)

DIGINETICA_FILES = {
    "views": "sample_train-item-views.csv",
    "purchases": "train-purchases.csv",
    "categories": "product-categories.csv.gz",
}


def diginetica_raw_events(folder: Path | str) -> Iterator[StorefrontEvent | Rejection]:
    """Views then purchases of the raw DIGINETICA export (each file in file order).

    Not globally time-sorted; purchase ``timeframe`` offsets can reach months (as
    published), so some purchases land well after their session date.
    """
    folder = Path(folder)
    yield from iter_csv(folder / DIGINETICA_FILES["views"], DIGINETICA_VIEWS)
    yield from iter_csv(folder / DIGINETICA_FILES["purchases"], DIGINETICA_PURCHASES)


def load_item_categories(path: Path | str, delimiter: str = ";") -> dict[str, str]:
    """``itemId;categoryId`` as {item_id: category_id}; ``path`` is the file or its folder.

    A folder is searched for product-categories.csv.gz, then product-categories.csv.
    Malformed rows are counted and logged (this is a lookup table, not event data).
    """
    path = Path(path)
    if path.is_dir():
        gz = path / DIGINETICA_FILES["categories"]
        path = gz if gz.exists() else gz.with_suffix("")
    categories: dict[str, str] = {}
    skipped = 0
    with _open_text(path) as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        next(reader, None)
        for values in reader:
            if len(values) == 2 and values[0].strip() and values[1].strip():
                categories[values[0].strip()] = values[1].strip()
            elif values:
                skipped += 1
    if skipped:
        log.warning("%s: skipped %d malformed category rows", path, skipped)
    return categories
