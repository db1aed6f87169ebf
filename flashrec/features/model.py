"""The vocabulary of feature definitions: the event they read and what a view declares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from flashrec.events import CatalogEvent, StorefrontEvent


class FeatureEvent(NamedTuple):
    """The fields features read, flat so that Spark rows and stream records both fit.

    ``event_time_ms`` is epoch milliseconds (UTC). ``category`` is the item's category,
    joined from the catalog by the engine (None when unknown).
    """

    event_id: str
    event_time_ms: int
    event_type: str
    item_id: str
    user_id: str | None = None
    session_id: str | None = None
    price: float | None = None
    quantity: int = 1
    category: str | None = None
    stock_level: int | None = None


def feature_event(event: StorefrontEvent | CatalogEvent, category: str | None) -> FeatureEvent:
    """Build the feature input from a validated event (the stream path)."""
    time_ms = int(event.event_time.timestamp() * 1000)
    if isinstance(event, StorefrontEvent):
        return FeatureEvent(
            event.event_id,
            time_ms,
            event.event_type,
            event.item_id,
            event.user_id,
            event.session_id,
            event.price,
            event.quantity,
            category,
        )
    return FeatureEvent(
        event.event_id,
        time_ms,
        event.event_type,
        event.item_id,
        price=event.price,
        stock_level=event.stock_level,
        category=event.category or category,
    )


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    dtype: str  # "int64" | "float64" | "string" | "bool"
    description: str


@dataclass(frozen=True)
class FeatureView:
    """A named group of features about one entity, with its incremental aggregator."""

    name: str
    entity: str  # join key: "user_id" | "session_id" | "item_id"
    description: str
    features: tuple[FeatureSpec, ...]
    key_of: Callable[[FeatureEvent], str | None]
    new_state: Callable[[], dict[str, Any]]
    update: Callable[[dict[str, Any], FeatureEvent], None]
    values: Callable[[dict[str, Any]], dict[str, Any]]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def fold(self, events: list[FeatureEvent]) -> dict[str, Any]:
        """Fold events into a fresh state and read the final values (tests, parity)."""
        state = self.new_state()
        for event in events:
            self.update(state, event)
        return self.values(state)
